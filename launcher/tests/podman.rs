//! podman (Debian's, with conmon) drives `strata-runtime` through `--runtime`, and
//! runc beside it on the same cases: what a user of podman sees (output, PID 1, exit
//! codes, a signal's status, stdin, a terminal, an OOM kill, a detached container with
//! exec, logs and stop) must be the same with either runtime. Root only; podman's
//! default seccomp profile, capabilities, device rules and mounts, cgroupfs.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{have_tools, show, skip_unless_root};

/// The binary under test.
fn strata_runtime() -> &'static str {
    env!("CARGO_BIN_EXE_strata-runtime")
}

/// One podman store (vfs, cgroupfs) with the demo image loaded, driving one runtime.
/// Dropped: its containers and images removed.
struct Podman {
    tmp: tempfile::TempDir,
    runtime: String,
    /// Run by this unprivileged user (rootless podman), else by root.
    user: Option<&'static str>,
    /// `--ulimit` options within this process's hard limits: podman asks for 1048576
    /// open files, and raising a hard limit needs CAP_SYS_RESOURCE, which some hosts
    /// (this CI's) withhold, for runc as for strata-runtime.
    ulimits: Vec<String>,
}

impl Podman {
    fn new(runtime: &str) -> Podman {
        Podman::new_as(runtime, None)
    }

    /// A store of `user`'s (rootless podman: its user namespace from /etc/subuid), in a
    /// directory the user may write, with a copy of the runtime it can run.
    fn new_as(runtime: &str, user: Option<&'static str>) -> Podman {
        let tmp = tempfile::Builder::new()
            .prefix("strata-podman")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let mut runtime = runtime.to_string();
        if user.is_some() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777))
                .expect("chmod the store dir");
            if runtime.contains('/') {
                let copy = tmp.path().join("runtime");
                std::fs::copy(&runtime, &copy).expect("copy the runtime");
                runtime = copy.to_string_lossy().into_owned();
            }
        }
        let hard = |r| {
            nix::sys::resource::getrlimit(r)
                .map(|(_, h)| h.min(4096))
                .expect("getrlimit")
        };
        use nix::sys::resource::Resource;
        let ulimits = vec![
            "--ulimit".to_string(),
            format!("nofile={0}:{0}", hard(Resource::RLIMIT_NOFILE)),
            "--ulimit".to_string(),
            format!("nproc={0}:{0}", hard(Resource::RLIMIT_NPROC)),
        ];
        let p = Podman {
            tmp,
            runtime,
            user,
            ulimits,
        };
        let archive: PathBuf = p.tmp.path().join("demo.tar");
        fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
            .expect("demo archive");
        let o = p.podman(
            &["load", "-q", "-i", archive.to_str().expect("utf-8")],
            None,
        );
        assert!(o.status.success(), "podman load: {}", show(&o));
        p
    }

    /// `podman ARGS` with `stdin` written to it (else stdin closed), within 120 s.
    fn podman(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let d = self.tmp.path();
        let mut cmd = match self.user {
            Some(u) => {
                let xdg = d.join("xdg");
                let _ = std::fs::create_dir(&xdg);
                let _ = nix::unistd::chown(
                    &xdg,
                    nix::unistd::User::from_name(u)
                        .ok()
                        .flatten()
                        .map(|u| u.uid),
                    None,
                );
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", "env"])
                    .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
                    .arg(format!("HOME={}", d.display()))
                    .arg("podman");
                c
            }
            None => Command::new("podman"),
        };
        let mut child = cmd
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--runtime", &self.runtime])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running podman");
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            w.write_all(data).expect("podman's stdin");
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let waiter = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                if nix::sys::signal::kill(pid, None).is_err() {
                    return;
                }
            }
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        });
        let o = child.wait_with_output().expect("podman's output");
        drop(waiter);
        o
    }

    /// `podman run --rm --network none ULIMITS OPTS demo CMD...`.
    fn run(&self, opts: &[&str], cmd: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(self.ulimits.iter().map(String::as_str));
        args.extend(opts);
        args.push("localhost/demo:latest");
        args.extend(cmd);
        self.podman(&args, stdin)
    }

    /// `podman ARGS`, which must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.podman(args, None);
        assert!(
            o.status.success(),
            "{}: podman {args:?}: {}",
            self.runtime,
            show(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"], None);
        let _ = self.podman(&["rmi", "-a", "-f"], None);
        if let Some(u) = self.user {
            // Rootless podman leaves its user namespace's pause process behind.
            let _ = Command::new("pkill").args(["-KILL", "-u", u]).status();
        }
    }
}

/// What a podman user sees of each case, one line per case: the same with runc.
fn observe(p: &Podman) -> Vec<String> {
    let mut seen = Vec::new();
    let mut case = |name: &str, o: Output| {
        let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
        seen.push(format!(
            "{name}: exit {:?} out {:?}",
            o.status.code(),
            out.trim()
        ));
    };
    case(
        "pid 1",
        p.run(&[], &["sh", "-c", "echo hi $(id -u) $$"], None),
    );
    case("exit code", p.run(&[], &["sh", "-c", "exit 3"], None));
    // PID 1 of a pid namespace gets no signal it has no handler for from inside.
    case(
        "pid 1 ignores its own SIGKILL",
        p.run(&[], &["sh", "-c", "kill -9 $$; echo alive"], None),
    );
    case("stdin", p.run(&["-i"], &["cat"], Some(b"hello\nworld\n")));
    case("tty", p.run(&["-t"], &["sh", "-c", "tty"], None));
    case(
        "oom",
        p.run(
            &["-m", "32m"],
            &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
            None,
        ),
    );
    case(
        "read-only /proc/sys",
        p.run(&[], &["sh", "-c", "echo 1 > /proc/sys/kernel/shmmax"], None),
    );

    // Detached: exec (its output and exit code), logs, stop with the TERM trapped.
    let name = format!("web-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name, "--network", "none"];
    args.extend(p.ulimits.iter().map(String::as_str));
    args.extend([
        "localhost/demo:latest",
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    p.ok(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.ok(&["logs", &name]).contains("started") {
        assert!(
            Instant::now() < deadline,
            "{}: no output in 20 s",
            p.runtime
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    case(
        "exec",
        p.podman(
            &[
                "exec",
                &name,
                "sh",
                "-c",
                "cat /proc/1/cmdline | tr '\\0' ' '",
            ],
            None,
        ),
    );
    case(
        "exec exit code",
        p.podman(&["exec", &name, "sh", "-c", "exit 5"], None),
    );
    case(
        "exec killed",
        p.podman(&["exec", &name, "sh", "-c", "kill -9 $$"], None),
    );
    case(
        "exec stdin",
        p.podman(&["exec", "-i", &name, "cat"], Some(b"in\n")),
    );
    case("stop", p.podman(&["stop", "-t", "20", &name], None));
    case(
        "after stop",
        p.podman(
            &[
                "inspect",
                &name,
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
            ],
            None,
        ),
    );
    case("logs", p.podman(&["logs", &name], None));
    p.ok(&["rm", &name]);
    seen
}

#[test]
fn podman_sees_strata_runtime_as_it_sees_runc() {
    if skip_unless_root() || !have_tools(&["podman", "conmon", "runc"]) {
        return;
    }
    let strata = observe(&Podman::new(strata_runtime()));
    let runc = observe(&Podman::new("runc"));
    let name = format!("web-{}", std::process::id());
    let want = [
        r#"pid 1: exit Some(0) out "hi 0 1""#.to_string(),
        r#"exit code: exit Some(3) out """#.to_string(),
        r#"pid 1 ignores its own SIGKILL: exit Some(0) out "alive""#.to_string(),
        r#"stdin: exit Some(0) out "hello\nworld""#.to_string(),
        r#"tty: exit Some(0) out "/dev/pts/0""#.to_string(),
        r#"oom: exit Some(137) out """#.to_string(),
        r#"read-only /proc/sys: exit Some(1) out """#.to_string(),
        r#"exec: exit Some(0) out "sh -c echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done""#.to_string(),
        r#"exec exit code: exit Some(5) out """#.to_string(),
        r#"exec killed: exit Some(137) out """#.to_string(),
        r#"exec stdin: exit Some(0) out "in""#.to_string(),
        format!(r#"stop: exit Some(0) out "{name}""#),
        r#"after stop: exit Some(0) out "exited 0""#.to_string(),
        r#"logs: exit Some(0) out "started\nbye""#.to_string(),
    ];
    assert_eq!(strata, runc, "strata-runtime (left) against runc (right)");
    assert_eq!(strata, want);
}

/// A setting strata-runtime cannot honour fails the run, and podman shows the field's
/// name (read back from the runtime's JSON log).
#[test]
fn podman_shows_the_field_strata_runtime_refuses() {
    if skip_unless_root() || !have_tools(&["podman", "conmon", "runc"]) {
        return;
    }
    let p = Podman::new(strata_runtime());
    let o = p.run(&["--cpuset-cpus", "0"], &["true"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("linux.resources.cpu.cpus"), "{err}");
}

/// The unprivileged user of the rootless case (useradd gives it /etc/subuid ranges).
const ROOTLESS_USER: &str = "strata-podman";

/// Rootless podman (the runtime runs as root of podman's user namespace, with no user
/// namespace in config.json and no cgroup of its own) through strata-runtime and runc.
#[test]
fn rootless_podman_sees_strata_runtime_as_it_sees_runc() {
    if skip_unless_root() || !have_tools(&["podman", "conmon", "runc", "newuidmap"]) {
        return;
    }
    common::ensure_user(ROOTLESS_USER);
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    if !subuid
        .lines()
        .any(|l| l.starts_with(&format!("{ROOTLESS_USER}:")))
    {
        let st = Command::new("usermod")
            .args([
                "--add-subuids",
                "400000-465535",
                "--add-subgids",
                "400000-465535",
            ])
            .arg(ROOTLESS_USER)
            .status()
            .expect("usermod");
        assert!(st.success(), "usermod --add-subuids failed");
    }
    let observe = |p: &Podman| -> Vec<String> {
        let mut seen = Vec::new();
        for (name, opts, cmd, stdin) in [
            (
                "pid 1",
                &[][..],
                &[
                    "sh",
                    "-c",
                    "echo hi $(id -u) $$; grep -c . /proc/self/uid_map",
                ][..],
                None,
            ),
            ("exit code", &[], &["sh", "-c", "exit 3"], None),
            ("stdin", &["-i"], &["cat"], Some(&b"hello\n"[..])),
            ("tty", &["-t"], &["sh", "-c", "tty"], None),
        ] {
            let o = p.run(opts, cmd, stdin);
            seen.push(format!(
                "{name}: exit {:?} out {:?}",
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).replace('\r', "").trim()
            ));
        }
        seen
    };
    let strata = observe(&Podman::new_as(strata_runtime(), Some(ROOTLESS_USER)));
    let runc = observe(&Podman::new_as("runc", Some(ROOTLESS_USER)));
    assert_eq!(strata, runc, "strata-runtime (left) against runc (right)");
    assert_eq!(
        strata,
        [
            r#"pid 1: exit Some(0) out "hi 0 1\n2""#,
            r#"exit code: exit Some(3) out """#,
            r#"stdin: exit Some(0) out "hello""#,
            r#"tty: exit Some(0) out "/dev/pts/0""#,
        ]
    );
}
