//! `strata run` as root with kernel overlayfs: namespaces, rootfs, exit codes, cleanup.

mod common;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn pid_hostname_and_uid() {
    if skip_unless_root() {
        return;
    }
    let o = run_kernel(&[
        "--hostname",
        "box1",
        "demo",
        "/bin/sh",
        "-c",
        "echo $$ $(hostname) $(id -u)",
    ]);
    assert_ok_output(&o, "1 box1 0");
}

#[test]
fn exit_codes() {
    if skip_unless_root() {
        return;
    }
    for (cmd, want) in [("exit 0", 0), ("exit 7", 7)] {
        let o = run_kernel(&["demo", "/bin/sh", "-c", cmd]);
        assert_eq!(o.status.code(), Some(want), "{cmd}: {}", show(&o));
    }
    let o = run_kernel(&["demo", "/no/such/cmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    let o = run_kernel(&["demo", "no-such-cmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    // /etc/hostname exists but is not executable.
    let o = run_kernel(&["demo", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(126), "{}", show(&o));
}

#[test]
fn sigterm_to_launcher_reaches_the_command() {
    if skip_unless_root() {
        return;
    }
    let (_, code) = signal_launcher(&[], "echo up; sleep 60", Signal::SIGTERM);
    assert_eq!(code, 143);
}

#[test]
fn trapped_sigterm_is_delivered() {
    if skip_unless_root() {
        return;
    }
    let script = "trap 'echo got-term; exit 3' TERM; echo up; while true; do sleep 0.1; done";
    let (rest, code) = signal_launcher(&[], script, Signal::SIGTERM);
    assert_eq!(rest.trim(), "got-term");
    assert_eq!(code, 3);
}

#[test]
fn writes_land_in_upper_and_rm_cleans_up() {
    if skip_unless_root() {
        return;
    }
    let root = demo_store();
    let name = "writes-upper";
    let o = run_strata(
        root,
        &[
            "run",
            "--driver",
            "kernel",
            "--name",
            name,
            "demo",
            "/bin/sh",
            "-c",
            "echo hi > /etc/newfile; rm -f /etc/hostname.bak; echo ok",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let store = store::Store::open(Some(root.to_path_buf())).expect("store");
    let c = store.container(name).expect("container kept without --rm");
    assert_eq!(
        std::fs::read_to_string(c.upper.join("etc/newfile")).expect("upper file"),
        "hi\n"
    );
    assert_not_in_lowers(&store, "demo", "etc/newfile");
    // Nothing stays mounted on the host.
    assert!(!mounted(c.merged.to_str().expect("utf8")));
    let ps = run_strata(root, &["ps", "-a"]);
    assert!(stdout(&ps).contains(name), "{}", show(&ps));
    assert!(stdout(&ps).contains("exited (0)"), "{}", show(&ps));
    let rm = run_strata(root, &["rm", name]);
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert!(!c.dir.exists());

    // --rm: the container is gone afterwards.
    let o = run_strata(
        root,
        &[
            "run",
            "--rm",
            "--name",
            "rm-check",
            "--driver",
            "kernel",
            "demo",
            "/bin/true",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(
        store.container("rm-check").is_err(),
        "--rm left the container"
    );
}

#[test]
fn rootfs_layout() {
    if skip_unless_root() {
        return;
    }
    let script = "test -c /dev/null && test -c /dev/urandom && test -c /dev/tty && test -L /dev/ptmx \
        && test -d /dev/pts && test -d /dev/shm && test -r /proc/self/status \
        && ! touch /sys/x 2>/dev/null && ! echo 1 > /proc/sys/kernel/domainname \
        && test ! -s /proc/kcore && ip -o link | cut -d: -f2 | tr -d ' ' && echo done";
    // `--network none` (pasta is the default when installed): only lo.
    let o = run_kernel(&["--network", "none", "demo", "/bin/sh", "-c", script]);
    assert_ok_output(&o, "lo\ndone");
}

#[test]
fn env_workdir_user_volumes() {
    if skip_unless_root() {
        return;
    }
    let vol = tempfile::tempdir().expect("tempdir");
    std::fs::write(vol.path().join("in"), "from-host\n").expect("write");
    std::fs::set_permissions(
        vol.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let rw = format!("{}:/data", vol.path().display());
    let ro_dir = tempfile::tempdir().expect("tempdir");
    let ro = format!("{}:/ro:ro", ro_dir.path().display());
    let o = run_kernel(&[
        "-e",
        "FOO=bar",
        "-w",
        "/tmp/work",
        "-u",
        "1000:1000",
        "-v",
        &rw,
        "-v",
        &ro,
        "demo",
        "/bin/sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; cat /data/in; echo out > /data/out; touch /ro/x 2>/dev/null || echo ro-ok",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        stdout(&o),
        "bar\n/tmp/work\n1000\n1000\nfrom-host\nro-ok\n",
        "{}",
        show(&o)
    );
    assert_eq!(
        std::fs::read_to_string(vol.path().join("out")).expect("out"),
        "out\n"
    );
}

#[test]
fn bad_input_is_one_line_and_125() {
    let root = demo_store();
    let store = store::Store::open(Some(root.to_path_buf())).expect("store");
    for args in [
        vec!["run", "--rm", "--name", "bad", "no-such-image", "/bin/true"],
        vec![
            "run",
            "--rm",
            "--name",
            "bad",
            "-m",
            "12q",
            "demo",
            "/bin/true",
        ],
        vec![
            "run",
            "--rm",
            "--name",
            "bad",
            "--cpus",
            "abc",
            "demo",
            "/bin/true",
        ],
        vec![
            "run",
            "--rm",
            "--name",
            "bad",
            "--pids-limit",
            "0",
            "demo",
            "/bin/true",
        ],
        vec![
            "run",
            "--rm",
            "--name",
            "bad",
            "-v",
            "/no/such/dir:/x",
            "demo",
            "/bin/true",
        ],
    ] {
        let o = run_strata(root, &args);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("strata: "), "{err}");
    }
    assert!(
        store.container("bad").is_err(),
        "bad input left a container"
    );
}

/// A command that orphans a process and then never reaps (it exec's `sleep`), while a
/// background check lists every process's state: an orphan re-parented to a PID 1
/// that does not reap stays a zombie.
const ORPHAN_SCRIPT: &str = "(sleep 0 &); sh -c 'sleep 1; cat /proc/[0-9]*/stat' & exec sleep 2";

/// The `pid (comm) STATE ...` lines in `out` whose state is Z.
fn zombies(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            l.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn init_reaps_orphaned_zombies() {
    if skip_unless_root() {
        return;
    }
    // Without --init the command is PID 1 and the orphan stays a zombie.
    let o = run_kernel(&["demo", "/bin/sh", "-c", ORPHAN_SCRIPT]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!zombies(&stdout(&o)).is_empty(), "{}", show(&o));
    // With --init, the init reaps it.
    let o = run_kernel(&["--init", "demo", "/bin/sh", "-c", ORPHAN_SCRIPT]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.lines().count() >= 3, "{}", show(&o));
    assert_eq!(zombies(&out), Vec::<String>::new(), "{}", show(&o));
}

#[test]
fn init_is_pid_1_and_keeps_exit_codes() {
    if skip_unless_root() {
        return;
    }
    let o = run_kernel(&["--init", "demo", "/bin/sh", "-c", "echo $$ $PPID"]);
    assert_ok_output(&o, "2 1");
    for (args, want) in [
        (vec!["/bin/sh", "-c", "exit 7"], 7),
        (vec!["/bin/sh", "-c", "kill -TERM $$"], 143),
        (vec!["/bin/sh", "-c", "kill -KILL $$"], 137),
        (vec!["/no/such/cmd"], 127),
        (vec!["/etc/hostname"], 126),
    ] {
        let mut all = vec!["--init", "demo"];
        all.extend(args.iter().copied());
        let o = run_kernel(&all);
        assert_eq!(o.status.code(), Some(want), "{args:?}: {}", show(&o));
    }
}

/// Starts `strata run --rm --driver kernel EXTRA... demo sh -c SCRIPT`, waits for the
/// first line `up`, sends `sig` to the launcher, and returns the rest of stdout and the
/// exit code.
fn signal_launcher(extra: &[&str], script: &str, sig: Signal) -> (String, i32) {
    let mut args = vec!["run", "--rm", "--driver", "kernel"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["demo", "/bin/sh", "-c", script]);
    let mut running = Running::start(demo_store(), &args);
    running.expect_line("up");
    running.signal(sig);
    running.finish()
}

#[test]
fn init_forwards_signals() {
    if skip_unless_root() {
        return;
    }
    // The command has no handler: SIGTERM kills it (it is not PID 1), 143. (`exec`:
    // a shell waiting for a foreground child defers SIGINT until the child exits.)
    let (_, code) = signal_launcher(&["--init"], "echo up; exec sleep 60", Signal::SIGTERM);
    assert_eq!(code, 143);
    let (_, code) = signal_launcher(&["--init"], "echo up; exec sleep 60", Signal::SIGINT);
    assert_eq!(code, 130);
    // Trapped signals reach the command's handler.
    for (sig, name) in [
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGQUIT, "QUIT"),
    ] {
        let script = format!(
            "trap 'echo got-{name}; exit 3' {name}; echo up; while true; do sleep 0.1; done"
        );
        let (rest, code) = signal_launcher(&["--init"], &script, sig);
        assert_eq!(rest.trim(), format!("got-{name}"), "{sig}");
        assert_eq!(code, 3, "{sig}");
    }
}

#[test]
fn fuse_driver_as_root() {
    if skip_unless_root() {
        return;
    }
    let root = demo_store();
    let o = run_strata(
        root,
        &[
            "run",
            "--name",
            "fuse-root",
            "demo",
            "/bin/sh",
            "-c",
            "set -e; echo $$; echo hi > /etc/fuse-root",
        ],
    );
    assert_ok_output(&o, "1");
    let store = store::Store::open(Some(root.to_path_buf())).expect("store");
    let c = store
        .container("fuse-root")
        .expect("container kept without --rm");
    assert!(
        c.upper.join("etc/fuse-root").exists(),
        "write not in the upper"
    );
    assert_not_in_lowers(&store, "demo", "etc/fuse-root");
    assert!(!mounted(&c.id), "a mount of the container is left");
    let rm = run_strata(root, &["rm", "fuse-root"]);
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));

    // SIGTERM to the launcher reaches the command (PID 1, no handler): 143, and the
    // FUSE mount and its daemon are gone.
    let mut running = Running::start(
        root,
        &[
            "run",
            "--rm",
            "--name",
            "fuse-term",
            "demo",
            "/bin/sh",
            "-c",
            "echo up; sleep 60",
        ],
    );
    running.expect_line("up");
    let c = store
        .container("fuse-term")
        .expect("container while running");
    running.signal(Signal::SIGTERM);
    assert_eq!(running.finish().1, 143);
    assert!(!mounted(&c.id), "a mount of the container is left");
    assert!(!c.dir.exists(), "--rm left {}", c.dir.display());
}

/// The command runs with the default capability set effective and permitted, bounded
/// by it, and an empty inheritable set (runc and moby since CVE-2022-24769).
#[test]
fn capabilities_default_set_and_no_inheritable() {
    if skip_unless_root() {
        return;
    }
    let o = run_kernel(&["demo", "/bin/sh", "-c", "grep ^Cap /proc/self/status"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap_or(u64::MAX))
            .unwrap_or_else(|| panic!("{name} missing in:\n{out}"))
    };
    assert_eq!(field("CapInh:"), 0, "inheritable set:\n{out}");
    let eff = field("CapEff:");
    assert!(
        eff != 0 && eff == field("CapPrm:") && eff == field("CapBnd:"),
        "{out}"
    );
    // CAP_SYS_ADMIN (21) is not in the default set; CAP_CHOWN (0) is.
    assert!(eff & (1 << 21) == 0 && eff & 1 == 1, "{out}");
}
