//! `start ID`: lets a created container's init exec its process (opens the exec fifo
//! for reading) and records it running.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::oci::state::{StateDir, Status};
use crate::runtime::exec_fifo;

/// Starts container `id`.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::new(root, id)?;
    let _lock = dir.lock()?;
    let mut record = dir.load()?;
    match record.status() {
        Status::Created => {}
        other => bail!("cannot start container {id}: it is {other}, not created"),
    }
    let probe = record.clone();
    exec_fifo::release(&dir.exec_fifo(), || probe.alive())?;
    record.status = Status::Running;
    dir.save(&record)?;
    // A failed poststart hook is reported; the container keeps running.
    crate::oci::hooks::run(&record.hooks.poststart, &record.to_oci())
        .context("poststart (the container runs on)")
}
