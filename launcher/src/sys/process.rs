//! Processes: fork, signal dispositions, hooks that run between fork and exec.

use std::io;
use std::process::Command;

use nix::sys::signal::{SigHandler, Signal};
use nix::unistd::ForkResult;

/// How many threads this process has (the entries of `/proc/self/task`).
fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Forks this process. Exists because `nix::unistd::fork` is `unsafe`: after a fork
/// of a multithreaded process the child may only run async-signal-safe code (other
/// threads' locks are copied held). This wrapper refuses (EBUSY) unless the process
/// has exactly one thread, so both sides may run any code afterwards. The launcher,
/// its setup process and the container's init never start threads.
pub fn fork() -> io::Result<ForkResult> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!("cannot fork a process of {threads} threads"),
        ));
    }
    // SAFETY: the process has one thread (checked just above; only this thread could
    // have started another since), so no lock or other state of another thread is
    // copied into the child half-updated: the child may run arbitrary code.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

/// Sets `sig` to be ignored. Exists because `nix::sys::signal::signal` is `unsafe`
/// for its general case (a handler function must be async-signal-safe).
pub fn ignore_signal(sig: Signal) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code, so there is no handler whose
    // async-signal-safety could be violated.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Gives `sig` its default disposition. Exists because `nix::sys::signal::signal` is
/// `unsafe` for its general case (a handler function must be async-signal-safe).
pub fn default_signal(sig: Signal) -> io::Result<()> {
    // SAFETY: SIG_DFL installs no handler code, so there is no handler whose
    // async-signal-safety could be violated.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Makes the process `cmd` spawns receive SIGKILL when its parent thread exits
/// (`PR_SET_PDEATHSIG`, set between fork and exec). Exists because
/// `CommandExt::pre_exec` is `unsafe`: its closure runs in the forked child, where
/// only async-signal-safe work is allowed.
pub fn kill_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure makes one prctl(2) system call (async-signal-safe), does not
    // allocate, lock or touch memory shared with the parent, and builds its error from
    // an errno value only.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
}
