//! `run [--detach] [--keep] ... ID`: `create` then `start`; without `--detach` it
//! waits for the container's init (the runtime is its subreaper), deletes the
//! container unless `--keep`, and exits with the init's status (128+N on signal N).

use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{create, delete, start};

/// Runs the container of `a`; returns the exit status.
pub fn run(root: &Path, a: &liboci_cli::Run, rootless: bool) -> Result<u8> {
    if a.no_subreaper && !a.detach {
        bail!("--no-subreaper is not supported: run waits for the container as its subreaper");
    }
    if !a.detach {
        // The setup process exits after forking the init: make the init ours to reap.
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    let opts = create::Options {
        id: &a.container_id,
        bundle: &a.bundle,
        console_socket: a.console_socket.as_deref(),
        pid_file: a.pid_file.as_deref(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
    };
    let pid = create::create(root, &opts, rootless)?;
    if let Err(e) = start::start(root, &a.container_id) {
        let _ = delete::delete(root, &a.container_id, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = wait(Pid::from_raw(pid))?;
    if !a.keep {
        delete::delete(root, &a.container_id, true)?;
    }
    Ok(u8::try_from(code).unwrap_or(255))
}

/// Waits for `pid` (a child or an orphan reparented to this subreaper).
fn wait(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the container"),
        }
    }
}
