//! cgroup limits and leak checks for `strata run` as root (v1 or v2, whichever the
//! host has; the v2 logic is also unit-tested against a prepared tree).

mod common;

use common::*;

#[test]
fn memory_limit_oom_kills() {
    if skip_unless_root() {
        return;
    }
    // Allocate and touch 256 MiB under a 32 MiB limit (no swap on the test host or
    // swap limited with it).
    let o = run_kernel(&[
        "-m",
        "32m",
        "demo",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=256M",
        "count=1",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
}

#[test]
fn pids_limit_stops_forks() {
    if skip_unless_root() {
        return;
    }
    let o = run_kernel(&[
        "--pids-limit",
        "5",
        "demo",
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all-forked",
    ]);
    assert!(
        !stdout(&o).contains("all-forked"),
        "all forks succeeded under --pids-limit 5: {}",
        show(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("fork") || err.contains("Resource temporarily unavailable"),
        "{}",
        show(&o)
    );
}

#[test]
fn cpu_quota_is_set() {
    if skip_unless_root() {
        return;
    }
    // Inside the cgroup namespace the container's cgroup is the root of its view;
    // the launcher-side files are checked through /proc/<pid>/cgroup from the host.
    let o = run_kernel(&[
        "--cpus",
        "0.5",
        "demo",
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // cgroup namespace: our own cgroup shows as "/".
    assert!(
        stdout(&o).lines().any(|l| l.ends_with(":/")),
        "{}",
        show(&o)
    );
}

/// Starts `strata run --rm --name NAME --driver kernel EXTRA... demo sh -c SCRIPT` in
/// the background, waits for the script's first line `up`, and returns the running
/// launcher and the container's record.
fn start_named(name: &str, extra: &[&str], script: &str) -> (Running, store::Container) {
    let mut args = vec!["run", "--rm", "--name", name, "--driver", "kernel"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["demo", "/bin/sh", "-c", script]);
    let mut running = Running::start(demo_store(), &args);
    running.expect_line("up");
    let store = store::Store::open(Some(demo_store().to_path_buf())).expect("store");
    let c = store.container(name).expect("container while running");
    (running, c)
}

#[test]
fn sigkill_of_launcher_leaves_nothing() {
    if skip_unless_root() {
        return;
    }
    let (running, c) = start_named(
        "killed",
        &["-m", "64m", "--pids-limit", "50"],
        "echo up; sleep 60",
    );
    let cgroups = find_cgroups(&c.id);
    assert!(
        !cgroups.is_empty(),
        "no cgroup found for the running container"
    );
    running.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = running.finish();
    // The guard cleans up once the container's processes are gone.
    let mut gone = false;
    for _ in 0..500 {
        if !c.dir.exists() && cgroups.iter().all(|p| !p.exists()) {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        gone,
        "left behind: dir {} exists={}, cgroups {:?}",
        c.dir.display(),
        c.dir.exists(),
        cgroups.iter().filter(|p| p.exists()).collect::<Vec<_>>()
    );
    assert!(!mounted(&c.id), "a mount of the container is left");
}

/// The value of `key` in a cgroup `cpu.stat` text.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

#[test]
fn cpu_quota_throttles() {
    if skip_unless_root() {
        return;
    }
    // A fixed amount of work (about a second of CPU), then idle until killed.
    let (mut running, c) = start_named(
        "cpu-throttle",
        &["--cpus", "0.2"],
        "echo up; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo busy-done; sleep 60",
    );
    // The cgroup holding the cpu controller: cpu.cfs_quota_us (v1) or cpu.max (v2).
    let cpu_dir = find_cgroups(&c.id)
        .into_iter()
        .find(|d| {
            d.join("cpu.stat").exists()
                && (d.join("cpu.cfs_quota_us").exists() || d.join("cpu.max").exists())
        })
        .expect("no cpu cgroup for the running container");
    let quota = if cpu_dir.join("cpu.max").exists() {
        std::fs::read_to_string(cpu_dir.join("cpu.max")).expect("cpu.max")
    } else {
        let q = std::fs::read_to_string(cpu_dir.join("cpu.cfs_quota_us")).expect("quota");
        let p = std::fs::read_to_string(cpu_dir.join("cpu.cfs_period_us")).expect("period");
        format!("{} {}", q.trim(), p.trim())
    };
    assert_eq!(quota.trim(), "20000 100000", "{}", cpu_dir.display());
    running.expect_line("busy-done");
    let stat = std::fs::read_to_string(cpu_dir.join("cpu.stat")).expect("cpu.stat");
    let throttled = stat_value(&stat, "nr_throttled");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(running.finish().1, 143);
    assert!(
        throttled.is_some_and(|n| n > 0),
        "no throttling under --cpus 0.2 in {}:\n{stat}",
        cpu_dir.display()
    );
}
