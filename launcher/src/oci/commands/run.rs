//! `run [--detach] [--keep] ... ID`: `create` then `start`; without `--detach` it
//! waits for the container's init (the runtime is its subreaper), deletes the
//! container unless `--keep`, and exits with the init's status (128+N on signal N).
//! Signals the runtime gets while waiting (TERM, INT, HUP, QUIT, USR1, USR2, WINCH)
//! are passed on to the init.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::sys::signal::SigSet;
use nix::unistd::Pid;

use super::{create, delete, start};
use crate::runtime::reap;

/// Runs the container of `a`; returns the exit status.
pub fn run(root: &Path, a: &liboci_cli::Run, rootless: bool) -> Result<u8> {
    if a.no_subreaper && !a.detach {
        bail!("--no-subreaper is not supported: run waits for the container as its subreaper");
    }
    let mut forwarded = SigSet::empty();
    if !a.detach {
        // The setup process exits after forking the init: make the init ours to reap.
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
        forwarded = reap::block_forwarded()?;
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
    let code = reap::wait(Pid::from_raw(pid), &forwarded)?;
    if !a.keep {
        delete::delete(root, &a.container_id, true)?;
    }
    Ok(u8::try_from(code).unwrap_or(255))
}
