//! `delete [--force] ID`: removes a stopped (or created) container's cgroup and state
//! directory; a running one only with `--force`, which kills it first. With `--force`,
//! a container that does not exist is no error, as with runc.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::oci::state::{Record, StateDir, Status};
use crate::runtime::cgroups::kill_and_rmdir;

/// Deletes container `id`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = StateDir::new(root, id)?;
    if force && !dir.dir.exists() {
        // Already gone: `--force` asks only that it be gone (runc answers the same;
        // containerd's shim deletes twice).
        return Ok(());
    }
    let _lock = dir.lock()?;
    if force && !dir.dir.join("state.json").exists() {
        // A create that failed before it wrote its state left only the directory.
        return dir.remove();
    }
    let record = dir.load()?;
    match record.status() {
        Status::Running | Status::Paused if !force => {
            bail!("cannot delete container {id}: it is running (stop it first, or use --force)")
        }
        Status::Stopped => {}
        _ => stop(&record),
    }
    let mut first = Ok(());
    for p in &record.cgroup_paths {
        if let Err(e) = kill_and_rmdir(p)
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    dir.remove()?;
    first?;
    let mut gone = record.to_oci();
    gone["status"] = "stopped".into();
    gone["pid"] = 0.into();
    crate::oci::hooks::run(&record.hooks.poststop, &gone).context("poststop")
}

/// SIGKILLs the init (and so its pid namespace), thaws it if paused (a frozen process
/// dies only once thawed) and waits a while for it to go.
fn stop(record: &Record) {
    let _ = nix::sys::signal::kill(Pid::from_raw(record.pid), Signal::SIGKILL);
    if crate::runtime::cgroups::is_frozen(&record.cgroup_paths) {
        let _ = crate::runtime::cgroups::freeze(&record.cgroup_paths, false);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while record.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}
