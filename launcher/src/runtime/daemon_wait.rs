//! Waiting on a FUSE daemon: for its mount to appear, or for it to exit.
//!
//! Both waits are woken by the kernel, not by a timer: `/proc/self/mountinfo` polls
//! readable-with-priority when the mount table changes, and a pidfd polls readable
//! when its process exits. A 5 ms sleep loop cost a container start up to 5 ms at
//! each end (mount, and the daemon's exit after the unmount).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use store::mountinfo::is_mount_point;

/// How a wait for a daemon's mount ended.
#[derive(Debug)]
pub enum MountWait {
    /// The target is mounted.
    Mounted,
    /// The daemon exited first (a daemonizing one exits once its child serves).
    Exited(ExitStatus),
    /// The deadline passed.
    TimedOut,
}

/// A pidfd for `child` (Linux >= 5.3); `None` where the kernel has none.
fn pidfd(child: &Child) -> Option<OwnedFd> {
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    pidfd_open(Pid::from_child(child), PidfdFlags::empty()).ok()
}

/// The poll timeout until `deadline`, at most `cap`.
fn timeout_until(deadline: Instant, cap: Duration) -> PollTimeout {
    let left = deadline.saturating_duration_since(Instant::now()).min(cap);
    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
}

/// Waits until `target` is mounted, `child` (when given) exits, or `deadline` passes.
pub fn wait_for_mount(
    mut child: Option<&mut Child>,
    target: &Path,
    deadline: Instant,
) -> Result<MountWait> {
    // Opened before the first check: a mount made after it wakes the poll.
    let mountinfo = File::open("/proc/self/mountinfo").context("open /proc/self/mountinfo")?;
    let exit = child.as_deref().and_then(pidfd);
    loop {
        if is_mount_point(target) {
            return Ok(MountWait::Mounted);
        }
        if let Some(c) = child.as_deref_mut() {
            if let Some(status) = c.try_wait().context("waiting for the FUSE daemon")? {
                return Ok(MountWait::Exited(status));
            }
        }
        if Instant::now() >= deadline {
            return Ok(MountWait::TimedOut);
        }
        let mut fds = vec![PollFd::new(mountinfo.as_fd(), PollFlags::POLLPRI)];
        if let Some(p) = &exit {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        // Without a pidfd the daemon's exit is noticed within 5 ms.
        let cap = if exit.is_some() || child.is_none() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(5)
        };
        match poll(&mut fds, timeout_until(deadline, cap)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll /proc/self/mountinfo"),
        }
    }
}

/// Waits for `child` to exit until `deadline`; true when it has.
pub fn wait_for_exit(child: &mut Child, deadline: Instant) -> bool {
    let exit = pidfd(child);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => {}
        }
        match &exit {
            Some(p) => {
                let mut fds = [PollFd::new(p.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, timeout_until(deadline, Duration::from_secs(1)));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
