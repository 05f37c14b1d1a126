//! containerd drives `strata-runtime` through its runc shim (`io.containerd.runc.v2`
//! with `--runc-binary`, the `BinaryName` of a runtime entry), as Kubernetes nodes do:
//! a containerd of its own started on a private socket, the demo image imported, and
//! `ctr` running it — output and PID 1, the exit code, a detached task with exec, ps,
//! pause, resume, kill and delete. Root only.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{find_cgroups, have_tools, show, skip_unless_root};

/// The binary under test.
fn runtime() -> &'static str {
    env!("CARGO_BIN_EXE_strata-runtime")
}

/// A containerd of the test's own: state, root and sockets in a temporary directory,
/// the CRI plugin off. Dropped: its tasks killed, its shims (which outlive it) and
/// mounts gone, then containerd stopped.
struct Containerd {
    tmp: tempfile::TempDir,
    daemon: Child,
    /// The ctr namespace (also the shim's runc root `/run/containerd/runc/<ns>`).
    ns: String,
}

impl Containerd {
    fn start() -> Containerd {
        let tmp = tempfile::Builder::new()
            .prefix("strata-ctd")
            .tempdir()
            .expect("tempdir");
        let d = tmp.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/c.sock\"\n\
             [ttrpc]\n  address = \"{0}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"{0}/debug.sock\"\n",
            d.display()
        );
        std::fs::write(d.join("config.toml"), config).expect("config.toml");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let c = Containerd {
            tmp,
            daemon,
            ns: format!("strata-test-{}", std::process::id()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` against this containerd, in the test's namespace, stdin closed.
    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir().join("c.sock"))
            .args(["--namespace", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// `ctr ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(o.status.success(), "ctr {args:?}: {}", show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The task's status as `ctr task ls` shows it (RUNNING, PAUSED, STOPPED).
    fn status(&self, id: &str) -> Option<String> {
        self.ok(&["task", "ls"]).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).unwrap_or(&"").to_string())
        })
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status(id);
            if s.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} is {s:?}, not {want}, after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(tasks) = std::str::from_utf8(&self.ctr(&["task", "ls", "-q"]).stdout) {
            for id in tasks.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
                let deadline = Instant::now() + Duration::from_secs(10);
                while self.ctr(&["task", "rm", id]).status.code() != Some(0)
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        // A shim outlives containerd: end those of this namespace.
        let _ = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                &format!("containerd-shim-runc-v2 -namespace {}", self.ns),
            ])
            .status();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.daemon.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The namespace's parent cgroups and the shim's runc root.
        for d in find_cgroups(&self.ns) {
            let _ = std::fs::remove_dir(d);
        }
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(&self.ns));
        // Whatever is still mounted under the directory (a failed test's rootfs).
        let prefix = self.dir().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The demo image as an OCI archive, imported as `demo:latest`.
fn import_demo(c: &Containerd) {
    let archive: PathBuf = c.dir().join("demo.tar");
    fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::OciArchive)
        .expect("demo archive");
    c.ok(&["images", "import", archive.to_str().expect("utf-8")]);
}

#[test]
fn containerd_runs_tasks_through_strata_runtime() {
    if skip_unless_root() || !have_tools(&["containerd", "ctr", "containerd-shim-runc-v2"]) {
        return;
    }
    let c = Containerd::start();
    import_demo(&c);
    let rt = runtime();

    // Run to completion: the output, PID 1, root, the cgroup containerd named.
    let out = c.ok(&[
        "run",
        "--rm",
        "--runc-binary",
        rt,
        "demo:latest",
        "once",
        "sh",
        "-c",
        "echo hi $(id -u) $$; grep -c once /proc/self/cgroup",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"hi 0 1"), "{out}");
    assert_ne!(
        lines.get(1),
        Some(&"0"),
        "not in the cgroup /{}/once: {out}",
        c.ns
    );

    // The exit code reaches ctr.
    let o = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt,
        "demo:latest",
        "three",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));

    // A detached task: exec in it, its processes, pause and resume, kill, delete.
    c.ok(&[
        "run",
        "-d",
        "--runc-binary",
        rt,
        "demo:latest",
        "bg",
        "sleep",
        "300",
    ]);
    c.wait_status("bg", "RUNNING");
    let out = c.ok(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "bg",
        "sh",
        "-c",
        "echo in; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_eq!(out.trim(), "in\nsleep 300", "{out}");
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x2",
        "bg",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let ps = c.ok(&["task", "ps", "bg"]);
    assert_eq!(ps.lines().count(), 2, "one process, sleep: {ps}");
    c.ok(&["task", "pause", "bg"]);
    c.wait_status("bg", "PAUSED");
    c.ok(&["task", "resume", "bg"]);
    c.wait_status("bg", "RUNNING");
    c.ok(&["task", "kill", "-s", "SIGKILL", "bg"]);
    c.wait_status("bg", "STOPPED");
    c.ok(&["task", "rm", "bg"]);
    c.ok(&["container", "rm", "bg"]);
    assert_eq!(c.status("bg"), None);
    assert!(
        find_cgroups("bg").is_empty(),
        "cgroup left: {:?}",
        find_cgroups("bg")
    );
    let left = Command::new("pgrep")
        .args(["-f", "^sleep 300$"])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
