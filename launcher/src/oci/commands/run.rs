//! `run [--detach] [--keep] ... ID`: `create` then `start`; without `--detach` it
//! waits for the container's init (the runtime is its subreaper), deletes the
//! container unless `--keep`, and exits with the init's status (128+N on signal N).
//! Signals the runtime gets while waiting (TERM, INT, HUP, QUIT, USR1, USR2, WINCH)
//! are passed on to the init.

use std::path::Path;

use std::os::fd::AsFd;

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{create, delete, start};

/// Runs the container of `a`; returns the exit status.
pub fn run(root: &Path, a: &liboci_cli::Run, rootless: bool) -> Result<u8> {
    if a.no_subreaper && !a.detach {
        bail!("--no-subreaper is not supported: run waits for the container as its subreaper");
    }
    let mut forwarded = SigSet::empty();
    if !a.detach {
        // The setup process exits after forking the init: make the init ours to reap.
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
        forwarded = block_forwarded()?;
    }
    let opts = create::Options {
        id: &a.container_id,
        bundle: &a.bundle,
        console_socket: a.console_socket.as_deref(),
        pid_file: a.pid_file.as_deref(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        no_new_keyring: a.no_new_keyring,
    };
    let pid = create::create(root, &opts, rootless)?;
    if let Err(e) = start::start(root, &a.container_id) {
        let _ = delete::delete(root, &a.container_id, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = wait(Pid::from_raw(pid), &forwarded)?;
    if !a.keep {
        delete::delete(root, &a.container_id, true)?;
    }
    Ok(u8::try_from(code).unwrap_or(255))
}

/// The signals `run` passes on to the container's init.
const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Blocks the signals passed on to a waited-for process, and SIGCHLD, from here on, so
/// none is lost before it runs (the container's processes unblock every signal before
/// exec); returns them, for [`wait`].
pub(super) fn block_forwarded() -> Result<SigSet> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).context("blocking signals")?;
    Ok(mask)
}

/// Waits for `pid` (a child or an orphan reparented to this subreaper), passing the
/// signals of `mask` (blocked) on to it; reaps other orphans on the way.
pub(super) fn wait(pid: Pid, mask: &SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating a signalfd")?;
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) if p == pid => return Ok(c),
                Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waiting for the container"),
            }
        }
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
                && sig != Signal::SIGCHLD
            {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    }
}
