//! `--init`: a minimal init as the container's PID 1 (the part of catatonit/tini a
//! container needs). It forks the command, forwards signals to it, reaps every process
//! re-parented to it, and exits with the command's status (128+N on signal N).
//!
//! The init is the container process itself after the rootfs is ready (same binary,
//! forked, no exec): it has already pivoted, switched user and dropped capabilities,
//! so the command starts exactly as it would without `--init`.

use std::convert::Infallible;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::EXIT_STRATA_ERROR;

/// Signals the init passes on to the command.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGALRM,
    Signal::SIGCONT,
];

/// Runs as PID 1: forks, runs `exec_command` in the child (which exec's or exits),
/// and serves as init until the command exits. With `tty`, the command becomes a
/// session leader and takes the terminal on fd 0 as its controlling tty.
pub fn init_main(tty: bool, exec_command: impl FnOnce() -> Infallible) -> ! {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    let sfd = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC));
    let sfd = match sfd {
        Ok(s) => s,
        Err(e) => fail(&format!("init: setting up signal handling: {e}")),
    };
    let child = match crate::sys::process::fork() {
        Ok(ForkResult::Child) => {
            drop(sfd);
            if tty {
                let session = nix::unistd::setsid()
                    .map_err(anyhow::Error::from)
                    .and_then(|_| super::pty::take_controlling_tty(std::io::stdin().as_fd()));
                if let Err(e) = session {
                    fail(&format!("init: giving the terminal to the command: {e:#}"));
                }
            }
            match exec_command() {}
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(&format!("init: fork of the command: {e}")),
    };
    std::process::exit(serve(child, &sfd))
}

/// Forwards signals to `child` and reaps until it exits; returns its exit status.
fn serve(child: Pid, sfd: &SignalFd) -> i32 {
    loop {
        let sig = match sfd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            Ok(None) | Err(Errno::EINTR) => None,
            Err(e) => {
                eprintln!("strata: init: reading signals: {e}");
                // Without signals, still wait for the command so its status is kept.
                return wait_blocking(child);
            }
        };
        match sig {
            Some(Signal::SIGCHLD) | None => {}
            Some(s) => {
                let _ = kill(child, s);
            }
        }
        if let Some(code) = reap(child) {
            return code;
        }
    }
}

/// Reaps every exited process; the command's exit status once it is among them.
fn reap(child: Pid) -> Option<i32> {
    let mut status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => status = Some(code),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => {
                status = Some(128 + s as i32);
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return status,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return status,
        }
    }
}

/// Waits for `child` alone (the fallback when signals cannot be read).
fn wait_blocking(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return EXIT_STRATA_ERROR,
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("strata: {msg}");
    std::process::exit(EXIT_STRATA_ERROR)
}
