//! `pause ID` and `resume ID`: freeze and thaw a running container's cgroup (v2
//! `cgroup.freeze`, v1 freezer); `state` says `paused` meanwhile.

use std::path::Path;

use anyhow::{Result, bail};

use crate::oci::state::{StateDir, Status};
use crate::runtime::cgroups;

/// Freezes (`frozen`) or thaws container `id`.
pub fn pause(root: &Path, id: &str, frozen: bool) -> Result<()> {
    let dir = StateDir::new(root, id)?;
    let _lock = dir.lock()?;
    let record = dir.load()?;
    match (record.status(), frozen) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (other, true) => bail!("cannot pause container {id}: it is {other}, not running"),
        (other, false) => bail!("cannot resume container {id}: it is {other}, not paused"),
    }
    cgroups::freeze(&record.cgroup_paths, frozen)
}
