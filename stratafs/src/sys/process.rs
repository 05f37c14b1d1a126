//! The daemon's own process: who it runs as, the page size, detaching from the
//! terminal and forking into the background.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// Whether the daemon runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The effective uid.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The real uid and gid (what the kernel's FUSE mount is told the mounter is).
pub fn real_ids() -> (u32, u32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}

/// The page size (at least 4096).
pub fn page_size() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n >= 4096 => n as usize,
        _ => 4096,
    }
}

/// The CPUs configured (`_SC_NPROCESSORS_CONF`, at least 1).
pub fn cpus_configured() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_CONF) {
        Ok(Some(n)) if n >= 1 => n as usize,
        _ => 1,
    }
}

/// Keeps the calling thread on `cpu` (best effort: a CPU that is not there is ignored).
pub fn pin_to_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Whether the calling user may write to `path` (access(2), W_OK).
pub fn writable_by_caller(path: &std::path::Path) -> io::Result<()> {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).map_err(io::Error::from)
}

/// Points stdin, stdout and stderr at `null`.
pub fn redirect_stdio(null: impl AsFd) {
    let _ = nix::unistd::dup2_stdin(null.as_fd());
    let _ = nix::unistd::dup2_stdout(null.as_fd());
    let _ = nix::unistd::dup2_stderr(null.as_fd());
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Which side of a fork this is.
pub enum Forked {
    /// The child, in a new session.
    Child,
    /// The parent.
    Parent,
}

/// Forks; the child starts a new session (setsid). Refused (EBUSY) once the process
/// has more than one thread: the child would hold copies of locks other threads held.
pub fn fork_detached() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot fork a process of {threads} threads"
        )));
    }
    // SAFETY: the process has a single thread (checked above), so no lock is held by
    // another thread at the fork.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            Ok(Forked::Child)
        }
        nix::unistd::ForkResult::Parent { .. } => Ok(Forked::Parent),
    }
}
