//! strata's own container lifecycle on real containers: `run -d` under a monitor,
//! `ps [-a]`, `logs [-f] [--tail]`, `exec`, `stop`, `kill`, `wait`, `restart`,
//! `inspect`, `top`, `stats`, `cp`, `create`/`start`, `rm [-f]`, a killed monitor,
//! and a detached container run by an unprivileged user. Root needed (skipped with a
//! reason otherwise, never under CI=true); every container is removed by a guard.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

/// A detached container of the shared demo store, removed (`rm -f`) on drop, its
/// monitor killed if it is still there.
struct Ctr {
    root: PathBuf,
    name: String,
    /// Runs strata as another user (the rootless test).
    runner: Option<fn(&Path, &[&str]) -> Output>,
}

impl Ctr {
    /// `strata run -d --name NAME ARGS` on the demo store (kernel overlayfs).
    fn run(name: &str, args: &[&str]) -> Ctr {
        let root = demo_store().to_path_buf();
        // A container left by an earlier, interrupted run of this test goes first.
        let _ = run_strata(&root, &["rm", "-f", name]);
        let mut all = vec!["run", "-d", "--driver", "kernel", "--name", name];
        all.extend_from_slice(args);
        let o = run_strata(&root, &all);
        let c = Ctr {
            root,
            name: name.to_string(),
            runner: None,
        };
        assert_eq!(o.status.code(), Some(0), "run -d: {}", show(&o));
        let id = stdout(&o).trim().to_string();
        assert_eq!(id.len(), 64, "run -d prints the id: {}", show(&o));
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{}", show(&o));
        c
    }

    /// `strata --root ROOT ARGS`.
    fn strata(&self, args: &[&str]) -> Output {
        match self.runner {
            Some(r) => r(&self.root, args),
            None => run_strata(&self.root, args),
        }
    }

    /// `strata CMD NAME REST...`.
    fn on(&self, cmd: &str, rest: &[&str]) -> Output {
        let mut all = vec![cmd, self.name.as_str()];
        all.extend_from_slice(rest);
        self.strata(&all)
    }

    /// `strata inspect NAME` parsed.
    fn inspect(&self) -> serde_json::Value {
        let o = self.strata(&["inspect", &self.name]);
        assert_eq!(o.status.code(), Some(0), "inspect: {}", show(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("inspect is no JSON ({e}): {}", show(&o)));
        v[0].clone()
    }

    /// The container's line in `strata ps -a` (empty if absent).
    fn ps_line(&self, all: bool) -> String {
        let o = if all {
            self.strata(&["ps", "-a"])
        } else {
            self.strata(&["ps"])
        };
        assert_eq!(o.status.code(), Some(0), "ps: {}", show(&o));
        stdout(&o)
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(self.name.as_str()))
            .unwrap_or_default()
            .to_string()
    }

    /// The container's log.
    fn logs(&self, rest: &[&str]) -> String {
        let mut args = vec!["logs"];
        args.extend_from_slice(rest);
        args.push(&self.name);
        let o = self.strata(&args);
        assert_eq!(o.status.code(), Some(0), "logs: {}", show(&o));
        stdout(&o)
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let monitor = self.strata(&["inspect", &self.name]).stdout.clone();
        let _ = self.strata(&["rm", "-f", &self.name]);
        // Whatever rm could not stop (a test failing half way) goes too.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&monitor)
            && let Some(pid) = v[0]["State"]["MonitorPid"].as_i64()
            && v[0]["State"]["Running"].as_bool() == Some(true)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn run_d_prints_the_id_and_ps_shows_it_running() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-ps", &["demo", "sleep", "1000"]);
    let line = c.ps_line(false);
    assert!(line.contains("running (pid "), "ps: {line}");
    assert!(line.contains("sleep 1000"), "ps: {line}");
    assert!(line.contains("ago"), "ps shows the creation time: {line}");
    let o = c.strata(&["ps", "-q"]);
    let v = c.inspect();
    let id = v["Id"].as_str().unwrap_or_default();
    assert!(stdout(&o).contains(&id[..12]), "ps -q: {}", show(&o));
}

#[test]
fn logs_hold_the_output_with_tail_and_follow() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-logs",
        &[
            "demo",
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2; sleep 2; echo last",
        ],
    );
    // -f follows until the container ends, so it sees the last line.
    let followed = c.logs(&["-f"]);
    assert_eq!(
        followed, "line1\nline2\nline3\nline4\nline5\nerr\nlast\n",
        "logs -f"
    );
    // Kept after the end.
    assert_eq!(c.logs(&[]), followed);
    assert_eq!(c.logs(&["--tail", "2"]), "err\nlast\n");
    assert_eq!(c.logs(&["--tail", "0"]), "");
}

#[test]
fn exec_runs_in_the_container() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-exec",
        &[
            "-e",
            "FROMRUN=1",
            "demo",
            "sh",
            "-c",
            "echo marker > /tmp/m; sleep 1000",
        ],
    );
    // Its pid namespace: PID 1 is the container's command.
    let o = c.on("exec", &["cat", "/proc/1/cmdline"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("sleep"), "{}", show(&o));
    // Its files, its environment plus -e, -w, -u.
    let o = c.on("exec", &["cat", "/tmp/m"]);
    assert_ok_output(&o, "marker");
    let o = c.on(
        "exec",
        &[
            "-e",
            "X=y",
            "-w",
            "/tmp",
            "sh",
            "-c",
            "echo $FROMRUN $X $(pwd)",
        ],
    );
    assert_ok_output(&o, "1 y /tmp");
    let o = c.on("exec", &["-u", "65534:65534", "id", "-u"]);
    assert_ok_output(&o, "65534");
    // The process's exit code is passed through; a missing command is 127.
    let o = c.on("exec", &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    let o = c.on("exec", &["no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    // Not a container: a strata error.
    let o = c.strata(&["exec", "lc-no-such-container", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
}

#[test]
fn exec_with_a_tty() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-exec-t", &["demo", "sleep", "1000"]);
    let o = c.on(
        "exec",
        &["-t", "sh", "-c", "test -t 0 && readlink /proc/self/fd/0"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).contains("/dev/pts/"), "{}", show(&o));
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_timeout() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-stop",
        &[
            "demo",
            "sh",
            "-c",
            "trap 'echo got-term' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    );
    assert!(until(30, || c.logs(&[]).contains("ready")), "never ready");
    let t = Instant::now();
    let o = c.strata(&["stop", "-t", "2", &c.name]);
    let took = t.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        took >= Duration::from_secs(2),
        "SIGKILL before -t: {took:?}"
    );
    assert!(took < Duration::from_secs(30), "stop took {took:?}");
    assert!(
        until(10, || c.logs(&[]).contains("got-term")),
        "SIGTERM reached the trap: {}",
        c.logs(&[])
    );
    let o = c.on("wait", &[]);
    assert_ok_output(&o, "137");
    assert!(
        c.ps_line(true).contains("exited (137)"),
        "{}",
        c.ps_line(true)
    );
    assert!(
        c.ps_line(false).is_empty(),
        "ps without -a lists only running ones"
    );
}

#[test]
fn stop_of_a_command_without_a_handler_does_not_wait() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-stop-quick", &["demo", "sleep", "1000"]);
    let t = Instant::now();
    let o = c.strata(&["stop", "-t", "60", &c.name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_ok_output(&c.on("wait", &[]), "143");
}

#[test]
fn wait_returns_the_exit_code_and_ps_a_shows_it() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-wait", &["demo", "sh", "-c", "sleep 1; exit 3"]);
    let o = c.on("wait", &[]);
    assert_ok_output(&o, "3");
    let line = c.ps_line(true);
    assert!(line.contains("exited (3)"), "ps -a: {line}");
    let v = c.inspect();
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["State"]["Running"], false);
    assert!(v["State"]["FinishedAt"].is_string(), "{v}");
}

#[test]
fn kill_sends_the_signal_to_pid_1() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-kill",
        &[
            "demo",
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done",
        ],
    );
    assert!(until(30, || c.logs(&[]).contains("ready")), "never ready");
    let o = c.strata(&["kill", "-s", "USR1", &c.name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        until(10, || c.logs(&[]).contains("got-usr1")),
        "{}",
        c.logs(&[])
    );
    assert!(c.ps_line(false).contains("running"), "USR1 is caught");
    let o = c.strata(&["kill", &c.name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_ok_output(&c.on("wait", &[]), "137");
    let o = c.strata(&["kill", "-s", "NOPE", &c.name]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
}

#[test]
fn restart_runs_the_container_again() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-restart",
        &["demo", "sh", "-c", "echo started; exec sleep 1000"],
    );
    let first = c.inspect()["State"]["Pid"].as_i64().unwrap_or_default();
    assert!(first > 0);
    let o = c.strata(&["restart", "-t", "1", &c.name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v = c.inspect();
    assert_eq!(v["State"]["Running"], true, "{v}");
    let second = v["State"]["Pid"].as_i64().unwrap_or_default();
    assert!(second > 0 && second != first, "{first} {second}");
    assert!(
        until(10, || c.logs(&[]) == "started\nstarted\n"),
        "{}",
        c.logs(&[])
    );
    // Restarting a stopped container starts it.
    assert_eq!(c.strata(&["stop", &c.name]).status.code(), Some(0));
    assert_eq!(c.strata(&["restart", &c.name]).status.code(), Some(0));
    assert!(c.ps_line(false).contains("running"), "{}", c.ps_line(true));
}

#[test]
fn inspect_shows_the_container_as_json() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-inspect",
        &["-e", "K=V", "-w", "/tmp", "demo", "sleep", "1000"],
    );
    let v = c.inspect();
    assert_eq!(v["Name"], "lc-inspect");
    assert_eq!(v["Id"].as_str().map(str::len), Some(64));
    assert_eq!(v["ImageName"], "demo");
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"][0], "1000");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert!(v["State"]["Pid"].as_i64().unwrap_or_default() > 0, "{v}");
    assert!(
        v["State"]["MonitorPid"].as_i64().unwrap_or_default() > 0,
        "{v}"
    );
    assert!(
        v["State"]["StartedAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(v["State"]["ExitCode"].is_null());
    assert!(v["Created"].as_str().is_some_and(|s| s.contains('T')));
    assert_eq!(v["Config"]["WorkingDir"], "/tmp");
    assert!(
        v["Config"]["Env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x == "K=V")),
        "{v}"
    );
    assert!(v["LogPath"].as_str().is_some_and(|p| Path::new(p).exists()));
    let o = c.strata(&["inspect", "lc-no-such-container"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
}

#[test]
fn stats_show_memory_cpu_and_pids() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-stats", &["-m", "64m", "demo", "sleep", "1000"]);
    let o = c.strata(&["stats", "--no-stream", &c.name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("lc-stats"))
        .unwrap_or_else(|| panic!("no line for the container: {out}"));
    assert!(line.contains("iB /"), "memory in use: {line}");
    assert!(line.contains("64.0MiB"), "memory limit: {line}");
    let pids = line.split_whitespace().last().unwrap_or_default();
    assert!(pids.parse::<u64>().is_ok_and(|n| n >= 1), "pids: {line}");
}

#[test]
fn top_lists_the_container_processes() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run(
        "lc-top",
        &["demo", "sh", "-c", "sleep 1234 & sleep 4321; wait"],
    );
    assert!(
        until(30, || {
            let out = stdout(&c.on("top", &[]));
            out.contains("sleep 1234") && out.contains("sleep 4321")
        }),
        "{}",
        show(&c.on("top", &[]))
    );
    // Nothing of the host's.
    let out = stdout(&c.on("top", &[]));
    assert!(!out.contains("cargo"), "{out}");
}

#[test]
fn cp_into_and_out_of_a_container() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-cp", &["demo", "sleep", "1000"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("tree");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/file"), "payload\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).expect("symlink");
    let into = format!("{}:/tmp", c.name);
    let o = c.strata(&["cp", src.to_str().expect("utf8"), &into]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_ok_output(&c.on("exec", &["cat", "/tmp/tree/sub/file"]), "payload");
    // The symlink is copied as one, not followed on the host.
    assert_ok_output(
        &c.on("exec", &["readlink", "/tmp/tree/link"]),
        "/etc/passwd",
    );
    // A file to a new name.
    let o = c.strata(&[
        "cp",
        src.join("sub/file").to_str().expect("utf8"),
        &format!("{}:/renamed", c.name),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_ok_output(&c.on("exec", &["cat", "/renamed"]), "payload");
    // Out of the container.
    let o = c.on(
        "exec",
        &["sh", "-c", "mkdir -p /out/d && echo inside > /out/d/f"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let dst = tmp.path().join("back");
    let o = c.strata(&[
        "cp",
        &format!("{}:/out", c.name),
        dst.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        std::fs::read_to_string(dst.join("d/f")).expect("copied out"),
        "inside\n"
    );
    // From a stopped container: its union is mounted for the copy.
    assert_eq!(c.strata(&["stop", &c.name]).status.code(), Some(0));
    let dst2 = tmp.path().join("stopped");
    let o = c.strata(&[
        "cp",
        &format!("{}:/tmp/tree/sub/file", c.name),
        dst2.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(std::fs::read_to_string(&dst2).expect("copied"), "payload\n");
    let o = c.strata(&["cp", "/etc/hostname", "/tmp/x"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
}

#[test]
fn a_killed_monitor_is_never_shown_running() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-monitor", &["demo", "sleep", "1000"]);
    let v = c.inspect();
    let monitor = v["State"]["MonitorPid"].as_i64().expect("monitor pid") as i32;
    let pid = v["State"]["Pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the monitor");
    assert!(
        until(30, || c.ps_line(true).contains("monitor died")),
        "{}",
        c.ps_line(true)
    );
    assert!(c.ps_line(false).is_empty(), "ps lists it running");
    let v = c.inspect();
    assert_eq!(v["State"]["Running"], false, "{v}");
    // The container's processes go with it (the setup dies with the monitor).
    assert!(
        until(30, || !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))),
        "the container's command outlived its monitor"
    );
    let o = c.on("wait", &[]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
}

#[test]
fn rm_of_a_running_container_needs_f() {
    if skip_unless_root() {
        return;
    }
    let c = Ctr::run("lc-rm", &["demo", "sleep", "1000"]);
    let o = c.strata(&["rm", &c.name]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("running"),
        "{}",
        show(&o)
    );
    assert!(c.ps_line(false).contains("running"));
    let o = c.strata(&["rm", "-f", &c.name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(c.ps_line(true).is_empty(), "{}", c.ps_line(true));
}

#[test]
fn create_then_start_and_start_a_passes_the_exit_code() {
    if skip_unless_root() {
        return;
    }
    let root = demo_store().to_path_buf();
    let name = "lc-create";
    let _ = run_strata(&root, &["rm", "-f", name]);
    let o = run_strata(
        &root,
        &[
            "create",
            "--driver",
            "kernel",
            "--name",
            name,
            "demo",
            "sh",
            "-c",
            "echo out-$RUNS; exit 5",
        ],
    );
    let c = Ctr {
        root: root.clone(),
        name: name.to_string(),
        runner: None,
    };
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o).trim().len(), 64, "{}", show(&o));
    assert!(c.ps_line(true).contains("created"), "{}", c.ps_line(true));
    assert!(
        c.ps_line(false).is_empty(),
        "a created container is not running"
    );
    let v = c.inspect();
    assert_eq!(v["State"]["Status"], "created", "{v}");
    // Set up and waiting on its exec fifo: its init is there, its command not yet run.
    let monitor = v["State"]["MonitorPid"].as_i64().unwrap_or_default();
    assert!(monitor > 0, "{v}");
    assert!(c.logs(&[]).is_empty(), "{}", c.logs(&[]));
    let o = c.on("exec", &["true"]);
    assert_eq!(
        o.status.code(),
        Some(125),
        "exec in a created container: {}",
        show(&o)
    );
    let o = c.strata(&["start", "-a", name]);
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    assert_eq!(stdout(&o), "out-\n", "{}", show(&o));
    // Plain start: returns at once, the code kept.
    let o = c.strata(&["start", name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_ok_output(&c.on("wait", &[]), "5");
    assert_eq!(c.logs(&[]), "out-\nout-\n");
}

#[test]
fn a_created_container_stops_without_running() {
    if skip_unless_root() {
        return;
    }
    let root = demo_store().to_path_buf();
    let name = "lc-create-stop";
    let _ = run_strata(&root, &["rm", "-f", name]);
    let o = run_strata(
        &root,
        &[
            "create", "--driver", "kernel", "--name", name, "demo", "sh", "-c", "echo ran",
        ],
    );
    let c = Ctr {
        root,
        name: name.to_string(),
        runner: None,
    };
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let t = Instant::now();
    let o = c.strata(&["stop", "-t", "60", name]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_ok_output(&c.on("wait", &[]), "137");
    assert_eq!(c.logs(&[]), "", "the command never ran");
    // Started again afterwards: it runs.
    assert_eq!(c.strata(&["start", name]).status.code(), Some(0));
    assert_ok_output(&c.on("wait", &[]), "0");
    assert_eq!(c.logs(&[]), "ran\n");
}

#[test]
fn run_d_on_stratafs() {
    if skip_unless_root() {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("/dev/fuse is missing and CI=true forbids skipping");
        }
        eprintln!("skipping: no /dev/fuse");
        return;
    }
    let root = demo_store().to_path_buf();
    let name = "lc-fuse";
    let _ = run_strata(&root, &["rm", "-f", name]);
    let o = run_strata(
        &root,
        &[
            "run",
            "-d",
            "--name",
            name,
            "demo",
            "sh",
            "-c",
            "echo fused > /f; sleep 1000",
        ],
    );
    let c = Ctr {
        root,
        name: name.to_string(),
        runner: None,
    };
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        until(30, || stdout(&c.on("exec", &["cat", "/f"])).trim()
            == "fused"),
        "{}",
        show(&c.on("exec", &["cat", "/f"]))
    );
    assert_eq!(c.strata(&["stop", "-t", "1", name]).status.code(), Some(0));
    assert_ok_output(&c.on("wait", &[]), "143");
    let merged = c.inspect()["GraphDriver"]["MergedDir"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        until(10, || !mounted(&merged)),
        "the union stays mounted after the end"
    );
}

// ---- rootless: a detached container of an unprivileged user ----

const USER: &str = "strata-rl";

fn rootless_user(dir: &Path, args: &[&str]) -> Output {
    strata_as(USER, dir, args)
}

/// `runner` for [`Ctr`]: its root is the work dir of [`rootless_user`].
fn rootless_runner(root: &Path, args: &[&str]) -> Output {
    rootless_user(root, args)
}

#[test]
fn rootless_run_d_exec_cp_stop() {
    if skip_unless_root() {
        return;
    }
    ensure_user(USER);
    let dir = tempfile::Builder::new()
        .prefix("strata-lc-rl")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    std::fs::copy(strata(), dir.path().join("strata")).expect("copying strata");
    let archive = dir.path().join("demo.tar");
    fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
        .expect("demo image");
    std::fs::set_permissions(
        &archive,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let o = rootless_user(
        dir.path(),
        &["image", "import", "demo.tar", "--tag", "demo:latest"],
    );
    assert_eq!(o.status.code(), Some(0), "import: {}", show(&o));
    let o = rootless_user(
        dir.path(),
        &[
            "run",
            "-d",
            "--driver",
            "kernel",
            "--name",
            "rl",
            "demo",
            "sh",
            "-c",
            "echo rootless-up; id -u; exec sleep 1000",
        ],
    );
    let c = Ctr {
        root: dir.path().to_path_buf(),
        name: "rl".into(),
        runner: Some(rootless_runner),
    };
    assert_eq!(o.status.code(), Some(0), "run -d as a user: {}", show(&o));
    assert!(c.ps_line(false).contains("running"), "{}", c.ps_line(true));
    assert!(
        until(30, || c.logs(&[]) == "rootless-up\n0\n"),
        "{}",
        c.logs(&[])
    );
    let o = c.on("exec", &["sh", "-c", "id -u; cat /proc/1/cmdline"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).starts_with("0\nsleep"), "{}", show(&o));
    // cp both ways through the container's user and mount namespaces.
    let file = dir.path().join("to-copy");
    std::fs::write(&file, "rootless-payload\n").expect("write");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let o = c.strata(&["cp", "to-copy", "rl:/tmp/copied"]);
    assert_eq!(o.status.code(), Some(0), "cp in: {}", show(&o));
    assert_ok_output(&c.on("exec", &["cat", "/tmp/copied"]), "rootless-payload");
    let o = c.strata(&["cp", "rl:/tmp/copied", "back"]);
    assert_eq!(o.status.code(), Some(0), "cp out: {}", show(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("back")).expect("copied out"),
        "rootless-payload\n"
    );
    let o = c.on("top", &[]);
    assert!(stdout(&o).contains("sleep 1000"), "{}", show(&o));
    let o = c.strata(&["stop", "rl"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_ok_output(&c.on("wait", &[]), "143");
    assert!(
        c.ps_line(true).contains("exited (143)"),
        "{}",
        c.ps_line(true)
    );
    drop(c);
}
