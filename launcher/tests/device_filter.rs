//! The cgroup v2 device filter in the kernel: rules compiled to eBPF
//! (`runtime/cgroups/device_filter.rs`), attached to a fresh cgroup of the unified
//! hierarchy (`/sys/fs/cgroup` on a v2 host, `/sys/fs/cgroup/unified` on a hybrid
//! one, where a device program applies as well), and a shell moved into it opening
//! and making device nodes: each answer must be the one `decide` gives. Root needed
//! (skipped with a reason otherwise, never under CI=true).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use launcher::runtime::cgroups::device_filter::{Request, apply_v2, decide};
use launcher::runtime::cgroups::devices::DeviceRule;

/// The unified hierarchy's mount.
fn unified_mount() -> PathBuf {
    let v2 = nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    let is_v2 = |p: &str| {
        nix::sys::statfs::statfs(p)
            .map(|s| s.filesystem_type() == v2)
            .unwrap_or(false)
    };
    if is_v2("/sys/fs/cgroup") {
        PathBuf::from("/sys/fs/cgroup")
    } else if is_v2("/sys/fs/cgroup/unified") {
        PathBuf::from("/sys/fs/cgroup/unified")
    } else {
        panic!("no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
    }
}

/// A cgroup removed on drop (its processes have exited by then).
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `script` in `sh` after moving the shell into `cg`; whether it succeeded.
fn in_cgroup(cg: &Path, script: &str) -> bool {
    let procs = cg.join("cgroup.procs");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("echo $$ > {} && {script}", procs.display()))
        .output()
        .expect("running sh");
    eprintln!(
        "{script}: {:?} {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).trim()
    );
    o.status.success()
}

#[test]
fn the_kernel_answers_as_the_rules_decide() {
    if skip_unless_root() {
        return;
    }
    let dir = unified_mount().join(format!("strata-device-filter-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("creating the test cgroup");
    let cg = TestCgroup(dir);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let t = tmp.path().display();
    // podman's list: nothing, then what it grants (here /dev/fuse, and loop
    // devices for reading).
    let rules = [
        DeviceRule::new(false, 'a', None, None, "rwm").expect("rule"),
        DeviceRule::new(true, 'c', Some(10), Some(229), "rwm").expect("rule"),
        DeviceRule::new(true, 'b', Some(7), None, "r").expect("rule"),
    ];
    apply_v2(&cg.0, &rules).expect("attaching the device program");
    let cases: [(&str, Request); 7] = [
        (": < /dev/null", Request::new('c', 1, 3, "r")),
        (": <> /dev/fuse", Request::new('c', 10, 229, "rw")),
        (": < /dev/loop-control", Request::new('c', 10, 237, "r")),
        (": < /dev/loop0", Request::new('b', 7, 0, "r")),
        (": <> /dev/loop0", Request::new('b', 7, 0, "rw")),
        (
            &format!("mknod {t}/null c 1 3"),
            Request::new('c', 1, 3, "m"),
        ),
        (
            &format!("mknod {t}/sda b 8 0"),
            Request::new('b', 8, 0, "m"),
        ),
    ];
    let mut wrong = Vec::new();
    for (script, r) in &cases {
        let want = decide(&rules, r);
        if in_cgroup(&cg.0, script) != want {
            wrong.push(format!("{script}: the rules say {want}"));
        }
    }
    assert!(wrong.is_empty(), "the kernel disagreed: {wrong:#?}");
    // Each outcome was seen at least once, so the filter was in force.
    let answers: Vec<bool> = cases.iter().map(|(_, r)| decide(&rules, r)).collect();
    assert!(answers.contains(&true) && answers.contains(&false));
}
