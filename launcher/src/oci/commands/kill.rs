//! `kill [--all] ID SIGNAL`: sends a signal (`15`, `TERM`, `SIGTERM`) to the
//! container's init, or with `--all` to every process in its cgroup.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::unistd::Pid;

use crate::oci::names;
use crate::oci::state::{StateDir, Status};

/// Signals container `id`.
pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = names::signal(signal)?;
    let record = StateDir::new(root, id)?.load()?;
    if record.status() == Status::Stopped {
        bail!("container {id} is not running");
    }
    if all {
        let pids = super::ps::cgroup_pids(&record.cgroup_paths);
        // Without a cgroup (rootless, no limits) the init stands for them all: its pid
        // namespace goes with it.
        if !pids.is_empty() {
            for pid in pids {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
            }
            return Ok(());
        }
    }
    nix::sys::signal::kill(Pid::from_raw(record.pid), sig)
        .with_context(|| format!("sending {sig} to container {id} (pid {})", record.pid))
}
