//! `strata-runtime` as engines drive it, as root: real bundles
//! (a busybox rootfs, config.json from `strata-runtime spec`), the create → start →
//! state → kill → delete lifecycle, `run`'s exit status, refused fields, JSON logs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{find_cgroups, skip_unless_root};
use serde_json::{Value, json};

/// The binary under test.
fn runtime() -> &'static str {
    env!("CARGO_BIN_EXE_strata-runtime")
}

/// Applets linked to busybox in the test rootfs.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "id", "hostname", "touch", "true", "false", "ls", "test", "[",
    "grep", "wc", "readlink", "tty", "tr", "pwd",
];

/// A bundle with a busybox rootfs, its state root and a host directory bound at
/// `/shared` in the container.
struct Bundle {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    shared: PathBuf,
}

/// A test that fails midway must not leave its containers running (they would keep
/// the CPU busy for every later test): whatever is left under the state root is
/// deleted with `--force`.
impl Drop for Bundle {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            if e.path().is_dir()
                && let Some(id) = e.file_name().to_str()
            {
                let _ = self.rt(&["delete", "--force", id]);
            }
        }
    }
}

/// What one run of the runtime did.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn show(&self) -> String {
        format!(
            "status {:?}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Bundle {
    /// A bundle whose process runs `sh -c SCRIPT`.
    fn new(script: &str) -> Bundle {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("bundle");
        let bin = dir.join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("rootfs/bin");
        std::fs::copy(busybox(), bin.join("busybox")).expect("copying busybox");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(a)).expect("applet link");
        }
        for d in ["proc", "dev", "sys", "tmp", "shared"] {
            std::fs::create_dir_all(dir.join("rootfs").join(d)).expect("rootfs dir");
        }
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).expect("shared dir");
        let b = Bundle {
            root: tmp.path().join("state"),
            dir,
            shared,
            _tmp: tmp,
        };
        let o = b.rt(&["spec", "--bundle", b.dir.to_str().expect("utf-8 path")]);
        assert_eq!(o.code, Some(0), "spec: {}", o.show());
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(["sh", "-c", script]);
            if let Some(m) = c["mounts"].as_array_mut() {
                m.push(json!({"destination": "/shared", "type": "bind",
                              "source": b.shared, "options": ["rbind", "rw"]}));
            }
        });
        b
    }

    /// Changes config.json.
    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let p = self.dir.join("config.json");
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("config.json"))
            .expect("config.json is JSON");
        f(&mut c);
        std::fs::write(&p, c.to_string()).expect("writing config.json");
    }

    /// Runs `strata-runtime --root STATE ARGS` (stdio to files: a created container
    /// keeps them) and waits at most 60 s.
    fn rt(&self, args: &[&str]) -> Out {
        let mut all = vec!["--root", self.root.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        run_runtime(&all)
    }

    fn create(&self, id: &str) -> Out {
        self.rt(&["create", "--bundle", self.dir.to_str().expect("utf-8"), id])
    }

    fn state(&self, id: &str) -> Value {
        let o = self.rt(&["state", id]);
        assert_eq!(o.code, Some(0), "state: {}", o.show());
        serde_json::from_str(&o.stdout).expect("state is JSON")
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.state(id);
            if s["status"] == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never got {want}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_file(&self, name: &str) -> String {
        let p = self.shared.join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.exists() {
            assert!(Instant::now() < deadline, "{} never appeared", p.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read_to_string(&p).expect("reading a shared file")
    }
}

/// How many live processes have `id` in their command line (a created container's
/// init is a fork of `strata-runtime create ... ID` until it execs).
fn processes_naming(id: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == id.as_bytes()))
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        })
        .count()
}

fn busybox() -> &'static Path {
    let p = Path::new("/bin/busybox");
    if !p.is_file() {
        panic!("these tests need busybox-static at /bin/busybox (scripts/deps installs it)");
    }
    p
}

fn run_runtime(args: &[&str]) -> Out {
    let out = tempfile::NamedTempFile::new().expect("stdout file");
    let err = tempfile::NamedTempFile::new().expect("stderr file");
    let mut child = Command::new(runtime())
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(err.reopen().expect("reopen"))
        .spawn()
        .expect("spawning strata-runtime");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("strata-runtime {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code(),
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
    }
}

/// A container id unique to this test process.
fn id(name: &str) -> String {
    format!("oci-{}-{name}", std::process::id())
}

#[test]
fn create_start_state_delete() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "echo $$ $(hostname) $(id -u) > /shared/out; \
         while [ ! -e /shared/stop ]; do sleep 0.05; done; exit 3",
    );
    let c = id("life");
    let pid_file = b.shared.join("../pid");
    let hooked = |name: &str| {
        let out = b.shared.join(format!("../{name}.json"));
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]})
    };
    let (poststart, poststop) = (hooked("poststart"), hooked("poststop"));
    let (create_runtime, create_container) = (hooked("createRuntime"), hooked("createContainer"));
    // Run in the container after pivot_root: its own sh, its /shared.
    let start_container =
        json!({"path": "/bin/sh", "args": ["sh", "-c", "cat > /shared/startContainer.json"]});
    b.edit(|c| {
        c["hooks"] = json!({"poststart": [poststart], "poststop": [poststop],
                            "createRuntime": [create_runtime],
                            "createContainer": [create_container],
                            "startContainer": [start_container]})
    });
    let o = b.rt(&[
        "create",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        &c,
    ]);
    assert_eq!(o.code, Some(0), "create: {}", o.show());
    let s = b.state(&c);
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], c.as_str());
    assert_eq!(s["bundle"], b.dir.to_str().expect("utf-8"));
    let pid = s["pid"].as_i64().expect("a pid");
    assert!(pid > 0);
    let written = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(written.trim(), pid.to_string());
    assert!(b.root.join(&c).join("exec.fifo").exists());
    // The creation hooks ran with the init's pid; startContainer waits for start.
    for name in ["createRuntime", "createContainer"] {
        let text = std::fs::read_to_string(b.shared.join(format!("../{name}.json")))
            .unwrap_or_else(|e| panic!("{name} did not run: {e}"));
        let hs: Value = serde_json::from_str(&text).expect("state JSON");
        assert_eq!(hs["id"], c.as_str(), "{name}");
        assert_eq!(hs["pid"], pid, "{name}");
    }
    assert!(!b.shared.join("startContainer.json").exists());
    // Nothing ran yet.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!b.shared.join("out").exists());
    // Its cgroup exists while it lives.
    assert!(!find_cgroups(&c).is_empty(), "no cgroup for {c}");

    let o = b.rt(&["start", &c]);
    assert_eq!(o.code, Some(0), "start: {}", o.show());
    assert_eq!(b.wait_file("out").trim(), "1 strata 0");
    // The poststart hook got the state on its stdin.
    let hook_state: Value = serde_json::from_str(
        &std::fs::read_to_string(b.shared.join("../poststart.json")).expect("poststart ran"),
    )
    .expect("state JSON");
    assert_eq!(hook_state["id"], c.as_str());
    assert_eq!(hook_state["status"], "running");
    let hook_state: Value = serde_json::from_str(
        &std::fs::read_to_string(b.shared.join("startContainer.json")).expect("startContainer"),
    )
    .expect("state JSON");
    assert_eq!(hook_state["pid"], pid);
    assert_eq!(b.state(&c)["status"], "running");
    let o = b.rt(&["start", &c]);
    assert_ne!(o.code, Some(0), "a second start must fail: {}", o.show());

    let o = b.rt(&["ps", "--format", "json", &c]);
    assert_eq!(o.code, Some(0), "ps: {}", o.show());
    let pids: Vec<i64> = serde_json::from_str(&o.stdout).expect("ps json");
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");

    std::fs::write(b.shared.join("stop"), "").expect("stop file");
    b.wait_status(&c, "stopped");
    assert_eq!(b.state(&c)["pid"], 0);
    let o = b.rt(&["delete", &c]);
    assert_eq!(o.code, Some(0), "delete: {}", o.show());
    assert!(!b.root.join(&c).exists());
    assert!(find_cgroups(&c).is_empty(), "cgroup of {c} left");
    let hook_state: Value = serde_json::from_str(
        &std::fs::read_to_string(b.shared.join("../poststop.json")).expect("poststop ran"),
    )
    .expect("state JSON");
    assert_eq!(hook_state["status"], "stopped");
    let o = b.rt(&["state", &c]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("does not exist"), "{}", o.show());
}

#[test]
fn kill_by_number_and_name_and_delete_needs_force_while_running() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "trap 'echo term > /shared/term-$N; exit 0' TERM; echo up > /shared/up-$N; \
         while true; do sleep 0.05; done",
    );
    for (n, sig) in [("1", "15"), ("2", "TERM"), ("3", "SIGTERM")] {
        b.edit(|c| c["process"]["env"] = json!(["PATH=/bin", format!("N={n}")]));
        let c = id(&format!("kill{n}"));
        let o = b.create(&c);
        assert_eq!(o.code, Some(0), "create: {}", o.show());
        let o = b.rt(&["start", &c]);
        assert_eq!(o.code, Some(0), "start: {}", o.show());
        b.wait_file(&format!("up-{n}"));
        if n == "1" {
            let o = b.rt(&["delete", &c]);
            assert_ne!(
                o.code,
                Some(0),
                "delete of a running container: {}",
                o.show()
            );
            assert!(o.stderr.contains("running"), "{}", o.show());
            assert_eq!(b.state(&c)["status"], "running");
        }
        let o = b.rt(&["kill", &c, sig]);
        assert_eq!(o.code, Some(0), "kill {sig}: {}", o.show());
        assert_eq!(b.wait_file(&format!("term-{n}")).trim(), "term");
        b.wait_status(&c, "stopped");
        let o = b.rt(&["delete", &c]);
        assert_eq!(o.code, Some(0), "delete: {}", o.show());
    }
    // --force kills a running container.
    let c = id("force");
    b.edit(|c| c["process"]["env"] = json!(["PATH=/bin", "N=f"]));
    assert_eq!(b.create(&c).code, Some(0));
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    b.wait_file("up-f");
    let o = b.rt(&["delete", "--force", &c]);
    assert_eq!(o.code, Some(0), "delete --force: {}", o.show());
    assert!(!b.root.join(&c).exists());
    assert!(find_cgroups(&c).is_empty());
    // Gone: a second delete --force succeeds (containerd's shim sends one), a plain
    // delete names the missing container.
    let o = b.rt(&["delete", "--force", &c]);
    assert_eq!(o.code, Some(0), "delete --force again: {}", o.show());
    let o = b.rt(&["delete", &c]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("does not exist"), "{}", o.show());
}

#[test]
fn run_exits_with_the_container_status() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("echo ran > /shared/ran; exit 7");
    let c = id("run");
    let o = b.rt(&["run", "--bundle", b.dir.to_str().expect("utf-8"), &c]);
    assert_eq!(o.code, Some(7), "run: {}", o.show());
    assert_eq!(b.wait_file("ran").trim(), "ran");
    assert!(!b.root.join(&c).exists(), "run leaves no state behind");

    // SIGTERM to `run` reaches the container's init.
    let b =
        Bundle::new("trap 'exit 5' TERM; echo up > /shared/up; while true; do sleep 0.05; done");
    let c = id("runterm");
    let mut child = Command::new(runtime())
        .args(["--root", b.root.to_str().expect("utf-8"), "run", "--bundle"])
        .arg(&b.dir)
        .arg(&c)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning run");
    b.wait_file("up");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signalling run");
    let status = child.wait().expect("waiting for run");
    assert_eq!(status.code(), Some(5));
    assert!(!b.root.join(&c).exists());
}

#[test]
fn an_unsupported_field_fails_create_and_leaves_nothing() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("true");
    b.edit(|c| c["hooks"] = json!({"onBoot": [{"path": "/bin/true"}]}));
    let c = id("hooks");
    let o = b.create(&c);
    assert_ne!(o.code, Some(0), "{}", o.show());
    assert!(o.stderr.contains("hooks"), "{}", o.show());
    assert!(
        !b.root.join(&c).exists(),
        "a failed create left its state dir"
    );
    // The same failure with --log-format json: one JSON object with msg in the log.
    let log = b.shared.join("../log.json");
    let o = b.rt(&[
        "--log",
        log.to_str().expect("utf-8"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        &c,
    ]);
    assert_ne!(o.code, Some(0));
    let text = std::fs::read_to_string(&log).expect("the log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert!(
        v["msg"].as_str().is_some_and(|m| m.contains("hooks")),
        "{v}"
    );
    assert_eq!(v["level"], "error");
    // A failure after the init started (a pid file that cannot be written) takes the
    // init along.
    let b2 = Bundle::new("true");
    let c = id("pidfile");
    let o = b2.rt(&[
        "create",
        "--bundle",
        b2.dir.to_str().expect("utf-8"),
        "--pid-file",
        "/nonexistent-strata/pid",
        &c,
    ]);
    assert_ne!(o.code, Some(0), "{}", o.show());
    assert!(!b2.root.join(&c).exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_naming(&c) > 0 {
        assert!(
            Instant::now() < deadline,
            "the init of a failed create lives on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // An error in the init (a bind source that is not there) is reported by create.
    let b = Bundle::new("true");
    b.edit(|c| {
        if let Some(m) = c["mounts"].as_array_mut() {
            m.push(
                json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                          "options": ["size=nonsense"]}),
            );
        }
    });
    let c = id("badmount");
    let o = b.create(&c);
    assert_ne!(o.code, Some(0), "{}", o.show());
    assert!(o.stderr.contains("/x"), "{}", o.show());
    assert!(!b.root.join(&c).exists());
    assert!(find_cgroups(&c).is_empty());
}

#[test]
fn list_json_and_version() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("sleep 30");
    let (c1, c2) = (id("list1"), id("list2"));
    assert_eq!(b.create(&c1).code, Some(0));
    assert_eq!(b.create(&c2).code, Some(0));
    assert_eq!(b.rt(&["start", &c2]).code, Some(0));
    let o = b.rt(&["list", "--format", "json"]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    let all: Vec<Value> = serde_json::from_str(&o.stdout).expect("list json");
    let status = |id: &str| {
        all.iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status(&c1), Some(json!("created")), "{all:?}");
    assert_eq!(status(&c2), Some(json!("running")), "{all:?}");
    // update writes new limits into the running container's cgroup.
    let o = b.rt(&["update", "--memory", "33554432", "--pids-limit", "20", &c2]);
    assert_eq!(o.code, Some(0), "update: {}", o.show());
    let dirs = find_cgroups(&c2);
    let read = |names: &[&str]| {
        dirs.iter()
            .flat_map(|d| names.iter().map(move |n| d.join(n)))
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
    };
    assert_eq!(
        read(&["memory.max", "memory.limit_in_bytes"]).as_deref(),
        Some("33554432"),
        "{dirs:?}"
    );
    assert_eq!(read(&["pids.max"]).as_deref(), Some("20"), "{dirs:?}");
    let o = b.rt(&["update", "--cpu-share", "2", &c2]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("--cpu-share"), "{}", o.show());
    // kill --all signals every process in the cgroup.
    let o = b.rt(&["kill", "--all", &c2, "KILL"]);
    assert_eq!(o.code, Some(0), "kill --all: {}", o.show());
    b.wait_status(&c2, "stopped");
    assert_eq!(b.rt(&["delete", &c2]).code, Some(0));
    // A created container is deleted without --force (its init is killed).
    let o = b.rt(&["delete", &c1]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(find_cgroups(&c1).is_empty());

    let o = run_runtime(&["--version"]);
    assert_eq!(o.code, Some(0));
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    assert!(
        lines[0].starts_with("strata-runtime version "),
        "{}",
        o.stdout
    );
    assert!(lines[1].starts_with("spec: 1."), "{}", o.stdout);
    assert!(lines[2].starts_with("commit: "), "{}", o.stdout);
    let o = run_runtime(&["features"]);
    let f: Value = serde_json::from_str(&o.stdout).expect("features json");
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
}

#[test]
fn config_fields_are_honoured() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "{ touch /x 2>/dev/null && echo rw || echo ro; ulimit -n; \
           grep CapEff /proc/self/status; id -G; cat /proc/cmdline | wc -c; \
           readlink /proc/self/ns/net; hostname; echo $K; pwd; \
           touch /tmp/t && echo tmp-ok; echo x > /dev/null && echo null-ok; \
           cat /proc/sys/kernel/shmmax /proc/self/oom_score_adj /proc/sys/kernel/domainname; \
           grep -E '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ' /proc/self/mountinfo | grep -c shared:; \
         } > /shared/out 2>&1; cat /proc/keys > /shared/keys",
    );
    b.edit(|c| {
        c["hostname"] = json!("honoured");
        c["domainname"] = json!("example.test");
        c["process"]["env"] = json!(["PATH=/bin", "K=v1"]);
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 321, "soft": 123}]);
        c["process"]["user"]["additionalGids"] = json!([10, 20]);
        c["mounts"].as_array_mut().expect("mounts").push(json!(
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=1m"]}));
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": "/proc/self/ns/net"}));
        c["linux"]["maskedPaths"] = json!(["/proc/cmdline"]);
        c["linux"]["sysctl"] = json!({"kernel.shmmax": "123456789"});
        c["linux"]["rootfsPropagation"] = json!("rshared");
        c["process"]["oomScoreAdj"] = json!(500);
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50},
                                         "devices": [{"allow": false, "access": "rwm"}]});
    });
    let c = id("fields");
    let o = b.rt(&[
        "run",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        "--keep",
        &c,
    ]);
    assert_eq!(o.code, Some(0), "run: {}", o.show());
    let host_net = std::fs::read_link("/proc/self/ns/net").expect("host netns");
    let out = std::fs::read_to_string(b.shared.join("out")).expect("out");
    let want = format!(
        "ro\n123\nCapEff:\t0000000020000420\n0 10 20\n0\n{}\nhonoured\nv1\n/tmp\ntmp-ok\nnull-ok\n123456789\n500\nexample.test\n1\n",
        host_net.display()
    );
    assert_eq!(out, want);
    // A session keyring of its own, named after the container.
    let keys = std::fs::read_to_string(b.shared.join("keys")).expect("keys");
    assert!(keys.contains(&c), "{keys}");
    // The limits went to the container's cgroup (v2 or v1, whichever holds them).
    let dirs = find_cgroups(&c);
    let read = |names: &[&str]| {
        dirs.iter()
            .flat_map(|d| names.iter().map(move |n| d.join(n)))
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
    };
    assert_eq!(
        read(&["memory.max", "memory.limit_in_bytes"]).as_deref(),
        Some("67108864"),
        "{dirs:?}"
    );
    assert_eq!(read(&["pids.max"]).as_deref(), Some("50"), "{dirs:?}");
    // Device rules: all denied, then the standard nodes allowed (cgroup v1 here; on a
    // unified host create refuses device rules).
    if let Some(list) = read(&["devices.list"]) {
        assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
        assert!(!list.lines().any(|l| l == "a *:* rwm"), "{list}");
    }
    let o = b.rt(&["delete", &c]);
    assert_eq!(o.code, Some(0), "delete: {}", o.show());
    assert!(find_cgroups(&c).is_empty());
}

#[test]
fn a_terminal_goes_to_the_console_socket() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("tty > /shared/tty; echo hello-pty; sleep 0.3");
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let sock = b.shared.join("../console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("console socket");
    let c = id("tty");
    let o = b.rt(&[
        "create",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        "--console-socket",
        sock.to_str().expect("utf-8"),
        &c,
    ]);
    assert_eq!(o.code, Some(0), "create: {}", o.show());
    let (conn, _) = listener.accept().expect("the runtime connects");
    let mut byte = [0u8; 16];
    let (_, fds) = launcher::sys::fd::recv_with_fds(std::os::fd::AsFd::as_fd(&conn), &mut byte)
        .expect("receiving the master");
    let master = std::fs::File::from(fds.into_iter().next().expect("a pty master"));
    let o = b.rt(&["start", &c]);
    assert_eq!(o.code, Some(0), "start: {}", o.show());
    let mut seen = String::new();
    let mut reader = std::io::BufReader::new(master);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains("hello-pty") && Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("hello-pty"), "{seen:?}");
    assert!(b.wait_file("tty").starts_with("/dev/pts/"));
    b.wait_status(&c, "stopped");
    assert_eq!(b.rt(&["delete", &c]).code, Some(0));
    // A terminal without a console socket is refused.
    let o = b.create(&id("tty2"));
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("console-socket"), "{}", o.show());
}

/// The unprivileged user of the rootless test (made with useradd if missing).
const ROOTLESS_USER: &str = "strata-oci";

#[test]
fn rootless_create_start_delete_as_an_unprivileged_user() {
    if skip_unless_root() {
        return;
    }
    let known = Command::new("id")
        .arg(ROOTLESS_USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !known {
        let st = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", ROOTLESS_USER])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd failed");
    }
    let user = nix::unistd::User::from_name(ROOTLESS_USER)
        .expect("getpwnam")
        .expect("the user exists");
    let b = Bundle::new("echo $(id -u) $(hostname) $$ > /shared/out; touch /shared/made");
    // The user's own copy of the binary, bundle and state root (the build tree may
    // not be open to it).
    let bin = b.dir.join("../strata-runtime");
    std::fs::copy(runtime(), &bin).expect("copying the runtime");
    std::fs::remove_file(b.dir.join("config.json")).expect("removing config.json");
    let chown = |p: &Path| {
        let st = Command::new("chown")
            .args(["-R", &format!("{ROOTLESS_USER}:")])
            .arg(p)
            .status()
            .expect("chown");
        assert!(st.success());
    };
    let top = b.dir.parent().expect("the bundle's parent");
    std::fs::set_permissions(top, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    chown(top);
    let as_user = |args: &[&str]| {
        let o = Command::new("runuser")
            .args(["-u", ROOTLESS_USER, "--"])
            .arg(&bin)
            .arg("--root")
            .arg(&b.root)
            .args(args)
            .current_dir(&b.dir)
            .stdin(Stdio::null())
            .output()
            .expect("runuser");
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    let o = as_user(&["spec", "--rootless"]);
    assert_eq!(o.code, Some(0), "spec --rootless: {}", o.show());
    b.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "echo $(id -u) $(hostname) $$ > /shared/out; touch /shared/made"
        ]);
        c["mounts"].as_array_mut().expect("mounts").push(json!(
            {"destination": "/shared", "type": "bind", "source": b.shared,
             "options": ["rbind", "rw"]}));
    });
    let c = id("rootless");
    // stdout/stderr to /dev/null: the created init keeps them.
    let o = Command::new("runuser")
        .args(["-u", ROOTLESS_USER, "--"])
        .arg(&bin)
        .arg("--root")
        .arg(&b.root)
        .args(["create", "--bundle"])
        .arg(&b.dir)
        .arg(&c)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runuser create");
    assert_eq!(o.code(), Some(0), "rootless create");
    let o = as_user(&["state", &c]);
    let s: Value = serde_json::from_str(&o.stdout).expect("state json");
    assert_eq!(s["status"], "created", "{}", o.show());
    let o = as_user(&["start", &c]);
    assert_eq!(o.code, Some(0), "start: {}", o.show());
    assert_eq!(b.wait_file("out").trim(), "0 strata 1");
    let made = std::fs::metadata(b.shared.join("made")).expect("made");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&made),
        user.uid.as_raw(),
        "uid 0 inside is the user outside"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = as_user(&["state", &c]);
        if o.stdout.contains("\"stopped\"") {
            break;
        }
        assert!(Instant::now() < deadline, "never stopped: {}", o.show());
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = as_user(&["delete", &c]);
    assert_eq!(o.code, Some(0), "delete: {}", o.show());
    assert!(!b.root.join(&c).exists());
}

#[test]
fn seccomp_filters_syscalls() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "{ mkdir /tmp/d 2>&1 || echo refused; echo x > /tmp/f && echo write-ok; } > /shared/out",
    );
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!(
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]
        });
    });
    let o = b.rt(&[
        "run",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        &id("seccomp"),
    ]);
    assert_eq!(o.code, Some(0), "run: {}", o.show());
    let out = std::fs::read_to_string(b.shared.join("out")).expect("out");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("refused\nwrite-ok"), "{out}");
}

#[test]
fn pause_and_resume_freeze_the_container() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("i=0; while true; do i=$((i+1)); echo $i > /shared/n; sleep 0.02; done");
    let c = id("pause");
    assert_eq!(b.create(&c).code, Some(0));
    let o = b.rt(&["pause", &c]);
    assert_ne!(
        o.code,
        Some(0),
        "pause of a created container: {}",
        o.show()
    );
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    b.wait_file("n");
    let o = b.rt(&["pause", &c]);
    assert_eq!(o.code, Some(0), "pause: {}", o.show());
    assert_eq!(b.state(&c)["status"], "paused");
    let read = || std::fs::read_to_string(b.shared.join("n")).unwrap_or_default();
    let frozen = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), frozen, "the counter moved while paused");
    let o = b.rt(&["delete", &c]);
    assert_ne!(
        o.code,
        Some(0),
        "delete of a paused container: {}",
        o.show()
    );
    let o = b.rt(&["resume", &c]);
    assert_eq!(o.code, Some(0), "resume: {}", o.show());
    assert_eq!(b.state(&c)["status"], "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while read() == frozen {
        assert!(
            Instant::now() < deadline,
            "the counter never moved after resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A paused container goes with delete --force.
    assert_eq!(b.rt(&["pause", &c]).code, Some(0));
    let o = b.rt(&["delete", "--force", &c]);
    assert_eq!(o.code, Some(0), "delete --force: {}", o.show());
    assert!(find_cgroups(&c).is_empty());
}

#[test]
fn exec_runs_a_process_in_the_container() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("echo $$ > /shared/up; while [ ! -e /shared/stop ]; do sleep 0.05; done");
    let c = id("exec");
    assert_eq!(b.create(&c).code, Some(0));
    let o = b.rt(&["exec", &c, "true"]);
    assert_ne!(o.code, Some(0), "exec in a created container: {}", o.show());
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    b.wait_file("up");
    // Same namespaces (pid, uts, mount) and the exit status comes back.
    let o = b.rt(&[
        "exec",
        "--env",
        "X=from-exec",
        "--cwd",
        "/shared",
        &c,
        "sh",
        "-c",
        "echo $(hostname) $X $(pwd) $(cat /proc/1/cmdline | tr '\\0' ' ') > /shared/exec; exit 4",
    ]);
    assert_eq!(o.code, Some(4), "exec: {}", o.show());
    let out = std::fs::read_to_string(b.shared.join("exec")).expect("exec output");
    assert!(out.starts_with("strata from-exec /shared sh -c"), "{out}");
    // Its processes are in the container's cgroup: ps lists the exec'd one.
    let o = b.rt(&["exec", "--detach", &c, "sleep", "5"]);
    assert_eq!(o.code, Some(0), "exec --detach: {}", o.show());
    let o = b.rt(&["ps", "--format", "json", &c]);
    let pids: Vec<i64> = serde_json::from_str(&o.stdout).expect("ps json");
    let exec_sleep = pids
        .iter()
        .any(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x005\x00"));
    assert!(
        exec_sleep,
        "the exec'd sleep is not in the cgroup: {pids:?}"
    );
    // --user (the exec'd process writes to the runtime's stdout), and a command that is
    // not there.
    let o = b.rt(&["exec", "--user", "1000:1000", &c, "id", "-u"]);
    assert_eq!(o.code, Some(0), "exec --user: {}", o.show());
    assert_eq!(o.stdout.trim(), "1000", "{}", o.show());
    // --process: a whole process object, checked as config.json's.
    let pf = b.shared.join("../process.json");
    let mut process = json!({"args": ["sh", "-c", "echo from-file $Y"], "cwd": "/",
                             "env": ["PATH=/bin", "Y=yy"], "user": {"uid": 0, "gid": 0}});
    std::fs::write(&pf, process.to_string()).expect("process.json");
    let o = b.rt(&["exec", "--process", pf.to_str().expect("utf-8"), &c]);
    assert_eq!(o.code, Some(0), "exec --process: {}", o.show());
    assert_eq!(o.stdout.trim(), "from-file yy");
    process["apparmorProfile"] = json!("strict");
    std::fs::write(&pf, process.to_string()).expect("process.json");
    let o = b.rt(&["exec", "--process", pf.to_str().expect("utf-8"), &c]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("process.apparmorProfile"), "{}", o.show());
    let o = b.rt(&["exec", &c, "/no/such/cmd"]);
    assert_eq!(o.code, Some(127), "{}", o.show());
    std::fs::write(b.shared.join("stop"), "").expect("stop");
    b.wait_status(&c, "stopped");
    assert_eq!(b.rt(&["delete", &c]).code, Some(0));
}

#[test]
fn preserve_fds_passes_on_that_many_descriptors() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "echo via-fd3 >&3; [ -e /proc/self/fd/4 ] && echo fd4-open > /shared/fd4 \
         || echo fd4-closed > /shared/fd4",
    );
    let c = id("fds");
    // The host's sh opens fd 3 and fd 4 (neither close-on-exec) for the runtime.
    let script = format!(
        "exec 3>{} 4>/dev/null; exec {} --root {} run --preserve-fds 1 --bundle {} {c}",
        b.shared.join("fd3").display(),
        runtime(),
        b.root.display(),
        b.dir.display(),
    );
    let o = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(b.wait_file("fd3").trim(), "via-fd3");
    assert_eq!(b.wait_file("fd4").trim(), "fd4-closed");
}

/// Runs `strata-runtime --root ROOT events ARGS` in the background, its stdout to
/// `out`.
fn spawn_events(b: &Bundle, args: &[&str], out: &Path) -> std::process::Child {
    Command::new(runtime())
        .args(["--root", b.root.to_str().expect("utf-8"), "events"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).expect("events stdout"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning events")
}

/// Waits (20 s at most) for an `events` process to exit once its container is gone.
fn events_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("events did not exit after the container was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_stats_reads_the_cgroup() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo up > /shared/up; \
         while true; do sleep 0.1; done",
    );
    b.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    });
    let c = id("evstats");
    assert_eq!(b.create(&c).code, Some(0));
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    b.wait_file("up");
    let o = b.rt(&["events", "--stats", &c]);
    assert_eq!(o.code, Some(0), "events --stats: {}", o.show());
    assert_eq!(o.stdout.lines().count(), 1, "one line: {}", o.show());
    let e: Value = serde_json::from_str(&o.stdout).expect("events --stats prints JSON");
    assert_eq!(e["type"], "stats", "{e}");
    assert_eq!(e["id"], c.as_str(), "{e}");
    let d = &e["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864, "{e}");
    assert!(d["memory"]["usage"]["usage"].as_u64() > Some(0), "{e}");
    assert!(d["pids"]["current"].as_u64() >= Some(1), "{e}");
    assert!(d["cpu"]["usage"]["total"].as_u64() > Some(0), "{e}");
    assert!(d["cpu"]["usage"]["percpu"].is_array(), "{e}");
    assert!(d["cpu"]["throttling"].is_object(), "{e}");
    assert!(d["memory"]["swap"].is_object(), "{e}");
    let o = b.rt(&["delete", "--force", &c]);
    assert_eq!(o.code, Some(0), "delete --force: {}", o.show());
}

#[test]
fn events_streams_until_the_container_is_gone() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("echo up > /shared/up; while true; do sleep 0.1; done");
    let c = id("evstream");
    assert_eq!(b.create(&c).code, Some(0));
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    b.wait_file("up");
    let out = b.shared.join("events.out");
    let mut child = spawn_events(&b, &["--interval", "200ms", &c], &out);
    let lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines().len() < 2 {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fewer than 2 events in 20 s: {:?}", lines());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = b.rt(&["kill", &c, "KILL"]);
    assert_eq!(o.code, Some(0), "kill: {}", o.show());
    let status = events_exit(&mut child);
    assert_eq!(status.code(), Some(0), "events: {:?}", lines());
    let all = lines();
    assert!(all.len() >= 2, "{all:?}");
    for l in &all {
        let e: Value = serde_json::from_str(l).expect("each event is a JSON line");
        assert_eq!(e["type"], "stats", "{l}");
        assert_eq!(e["id"], c.as_str(), "{l}");
        assert!(e["data"]["pids"].is_object(), "{l}");
    }
    b.wait_status(&c, "stopped");
    // A stopped container has no events.
    let o = b.rt(&["events", "--stats", &c]);
    assert_ne!(
        o.code,
        Some(0),
        "events of a stopped container: {}",
        o.show()
    );
    assert!(o.stderr.contains(&c), "{}", o.show());
    assert_eq!(b.rt(&["delete", &c]).code, Some(0));
}

#[test]
fn events_of_a_missing_container_fails_naming_it() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new("true");
    let c = id("evnone");
    for args in [&["events", "--stats", &c][..], &["events", &c][..]] {
        let o = b.rt(args);
        assert_ne!(o.code, Some(0), "{args:?}: {}", o.show());
        assert!(o.stderr.contains(&c), "{args:?}: {}", o.show());
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.show());
    }
    let o = b.rt(&["events", "--interval", "5parsecs", &c]);
    assert_ne!(o.code, Some(0), "a bad --interval: {}", o.show());
}

#[test]
fn no_pivot_moves_the_rootfs_onto_slash() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "cat /proc/self/mountinfo > /shared/mountinfo; \
         cd /..; ls > /shared/ls; \
         if [ -e /usr ] || [ -e /etc/os-release ] || [ -e /bin/busybox.host ]; \
         then echo host > /shared/reach; else echo none > /shared/reach; fi; exit 7",
    );
    let c = id("nopivot");
    let o = b.rt(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        &c,
    ]);
    assert_eq!(o.code, Some(7), "run --no-pivot: {}", o.show());
    assert!(!b.root.join(&c).exists(), "run leaves no state behind");
    assert_eq!(b.wait_file("reach").trim(), "none");
    let ls = b.wait_file("ls");
    let mut names: Vec<&str> = ls.split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["bin", "dev", "proc", "shared", "sys", "tmp"],
        "/.. is the rootfs"
    );
    // The mount at / is the bundle's rootfs (its root, field 4, is that directory).
    let mi = b.wait_file("mountinfo");
    let root_mount = mi
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .rfind(|f| f.get(4) == Some(&"/"))
        .unwrap_or_else(|| panic!("no mount at /: {mi}"));
    assert!(
        root_mount
            .get(3)
            .is_some_and(|r| r.ends_with("/bundle/rootfs")),
        "/ is not the rootfs: {root_mount:?}\n{mi}"
    );

    // create --no-pivot then start: the same, and state sees it run and stop.
    let b = Bundle::new("echo ok > /shared/ok; exit 3");
    let c = id("nopivot2");
    let o = b.rt(&[
        "create",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().expect("utf-8"),
        &c,
    ]);
    assert_eq!(o.code, Some(0), "create --no-pivot: {}", o.show());
    assert_eq!(b.state(&c)["status"], "created");
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    assert_eq!(b.wait_file("ok").trim(), "ok");
    b.wait_status(&c, "stopped");
    assert_eq!(b.rt(&["delete", &c]).code, Some(0));
}

#[test]
fn events_reports_an_oom_kill() {
    if skip_unless_root() {
        return;
    }
    let b = Bundle::new(
        "echo up > /shared/up; while [ ! -e /shared/go ]; do sleep 0.05; done; \
         busybox dd if=/dev/zero of=/dev/null bs=64M count=1; echo $? > /shared/dd; \
         while true; do sleep 0.1; done",
    );
    b.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    });
    let c = id("evoom");
    assert_eq!(b.create(&c).code, Some(0));
    assert_eq!(b.rt(&["start", &c]).code, Some(0));
    b.wait_file("up");
    let out = b.shared.join("events.out");
    let mut child = spawn_events(&b, &["--interval", "10s", &c], &out);
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while read().lines().count() < 1 {
        assert!(Instant::now() < deadline, "no first stats event");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(b.shared.join("go"), "").expect("go");
    let dd = b.wait_file("dd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read().contains("\"oom\"") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = b.rt(&["kill", &c, "KILL"]);
    let status = events_exit(&mut child);
    assert_eq!(status.code(), Some(0));
    let text = read();
    let oom: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "oom")
        .collect();
    assert_eq!(oom.len(), 1, "dd exited {dd}; events: {text}");
    assert_eq!(oom[0], json!({"type": "oom", "id": c}));
    b.wait_status(&c, "stopped");
    assert_eq!(b.rt(&["delete", &c]).code, Some(0));
}
