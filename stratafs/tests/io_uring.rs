//! FUSE over io_uring: with the fuse module's `enable_uring` on, stratafs serves
//! requests through per-CPU io_uring queues, with the same results as kernel overlayfs;
//! `noio_uring`, or the module's `enable_uring` off, keeps it on /dev/fuse.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use fixtures::layers;

use stratafs::transport::ENABLE_URING;

/// Turns the fuse module's `enable_uring` on (it is read when a mount starts) and back
/// to what it was when dropped.
struct UringEnabled {
    was: String,
}

impl UringEnabled {
    /// `None` (with the reason printed) where the kernel has no FUSE io_uring; never
    /// under `CI=true`, whose machine has it.
    fn on() -> Option<UringEnabled> {
        let Ok(was) = fs::read_to_string(ENABLE_URING) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and {ENABLE_URING} is missing (kernel without FUSE io_uring)"
            );
            eprintln!("skipped: {ENABLE_URING} is missing (kernel before 6.14)");
            return None;
        };
        fs::write(ENABLE_URING, "Y").unwrap_or_else(|e| panic!("write {ENABLE_URING}: {e}"));
        Some(UringEnabled {
            was: was.trim().to_string(),
        })
    }
}

impl Drop for UringEnabled {
    fn drop(&mut self) {
        let _ = fs::write(ENABLE_URING, &self.was);
    }
}

/// The pid of the stratafs daemon serving `mnt`.
fn daemon_of(mnt: &Path) -> Option<u32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = fs::read(e.path().join("cmdline")).ok()?;
        let mut args = cmd.split(|&b| b == 0);
        let bin = args.next()?;
        (bin.ends_with(b"stratafs") && args.any(|a| a == want)).then_some(pid)
    })
}

/// The daemon's io_uring instances and the completions each has delivered so far.
fn ring_completions(pid: u32) -> Vec<u64> {
    let fds = PathBuf::from(format!("/proc/{pid}/fd"));
    let mut out = Vec::new();
    for e in fs::read_dir(&fds).into_iter().flatten().flatten() {
        let is_ring =
            fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("io_uring"));
        if !is_ring {
            continue;
        }
        let info = fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let head = info
            .lines()
            .find_map(|l| l.strip_prefix("CqHead:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.push(head);
    }
    out
}

fn possible_cpus() -> usize {
    let s = fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    s.trim()
        .split(',')
        .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
        .max()
        .map_or(1, |m| m + 1)
}

#[test]
fn requests_go_through_io_uring_queues_with_kernel_results() {
    if !privileged_or_skip() {
        return;
    }
    let Some(_on) = UringEnabled::on() else {
        return;
    };
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    let pid = daemon_of(d.um()).expect("the stratafs daemon of the mount");
    let before: u64 = ring_completions(pid).iter().sum();
    let rings = ring_completions(pid).len();
    assert!(
        rings >= possible_cpus() && rings % possible_cpus() == 0,
        "{rings} io_urings: expected the same number of serving threads for each possible CPU"
    );
    // Every kind of request the ring carries: names, data both ways, attributes,
    // xattrs, listings, links, renames, and errors.
    d.step_expect(Op::Mkdir(p("ring"), 0o755), 0);
    d.step_expect(Op::Write(p("ring/a"), "through the ring".repeat(5000)), 0);
    d.step_expect(Op::Read(p("ring/a")), 0);
    d.step_expect(Op::Append(p("top"), "appended".into()), 0);
    d.step_expect(Op::WriteAt(p("d/keep"), 3, "xyz".into()), 0);
    d.step_expect(Op::Truncate(p("ring/a"), 7), 0);
    d.step_expect(Op::Fallocate(p("ring/a"), 0, 1 << 16), 0);
    d.step_expect(Op::Fsync(p("ring/a"), "synced".into()), 0);
    d.step_expect(Op::Symlink(p("ring/a"), p("ring/l")), 0);
    d.step_expect(Op::Readlink(p("ring/l")), 0);
    d.step_expect(Op::Link(p("ring/a"), p("ring/h")), 0);
    d.step_expect(Op::Mkfifo(p("ring/fifo")), 0);
    d.step_expect(Op::Chmod(p("ring/a"), 0o600), 0);
    d.step_expect(Op::Chown(p("ring/a"), 7, 8), 0);
    d.step_expect(Op::Utimes(p("ring/a"), 1_000_000), 0);
    d.step_expect(Op::SetXattr(p("ring/a"), p("user.k"), b"v".to_vec()), 0);
    d.step_expect(Op::RemoveXattr(p("ring/a"), p("user.k")), 0);
    d.step_expect(Op::RemoveXattr(p("ring/a"), p("user.k")), libc::ENODATA);
    d.step_expect(Op::Rename(p("ring/h"), p("ring/h2"), 0), 0);
    d.step_expect(Op::Rename(p("ren"), p("ring/ren"), 0), 0);
    d.step_expect(Op::ListDir(p("ring")), 0);
    d.step_expect(Op::ListDir(p("d")), 0);
    d.step_expect(Op::Stat(p("ring/missing")), libc::ENOENT);
    d.step_expect(Op::Create(p("ring/a"), 0o644), libc::EEXIST);
    d.step_expect(Op::Unlink(p("ring/h2")), 0);
    d.step_expect(Op::Rmdir(p("ring")), libc::ENOTEMPTY);
    d.compare("after requests through the ring");
    let after: u64 = ring_completions(pid).iter().sum();
    assert!(
        after >= before + 26,
        "the requests did not go through the io_uring queues ({before} -> {after} completions)"
    );

    // noio_uring: /dev/fuse alone, same results.
    d.remount_under_with(",noio_uring");
    let pid = daemon_of(d.um()).expect("the stratafs daemon of the mount");
    assert!(
        ring_completions(pid).is_empty(),
        "noio_uring still set up io_uring queues"
    );
    d.step_expect(Op::Write(p("ring/b"), "through /dev/fuse".into()), 0);
    d.compare("after requests through /dev/fuse");

    // The module's `enable_uring` off: the kernel will not offer the queues, so the
    // daemon sets none up (no rings, threads or buffers), and serves on /dev/fuse.
    fs::write(ENABLE_URING, "N").unwrap_or_else(|e| panic!("write {ENABLE_URING}: {e}"));
    d.remount_under_with("");
    let pid = daemon_of(d.um()).expect("the stratafs daemon of the mount");
    assert!(
        ring_completions(pid).is_empty(),
        "io_uring queues set up while the kernel does not offer them (enable_uring=N)"
    );
    let ring_threads = fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .flatten()
        .filter(|t| {
            fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "stratafs-ring")
        })
        .count();
    assert_eq!(
        ring_threads, 0,
        "io_uring queue threads with enable_uring=N"
    );
    d.step_expect(Op::Write(p("ring/c"), "through /dev/fuse again".into()), 0);
    d.compare("after requests with enable_uring off");
    d.finish();
}
