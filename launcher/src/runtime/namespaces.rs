//! Which namespaces a container gets, and unsharing them in the right order: user
//! first (rootless), then mount, then pid/uts/ipc/net/cgroup once the cgroup is joined.

use anyhow::{Context, Result};
use nix::sched::{CloneFlags, unshare};

use super::spec::Network;

/// The namespaces unshared after the union is mounted (the command's children live
/// in the new pid namespace; the cgroup namespace is rooted at the joined cgroup).
pub fn container_flags(network: Network) -> CloneFlags {
    let mut f = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    if network == Network::None {
        f |= CloneFlags::CLONE_NEWNET;
    }
    f
}

/// Unshares `flags`, naming them on error.
pub fn unshare_ns(flags: CloneFlags) -> Result<()> {
    unshare(flags).with_context(|| format!("unshare({flags:?})"))
}

/// A new mount namespace whose mounts do not propagate back to the host.
pub fn private_mount_ns() -> Result<()> {
    unshare_ns(CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / a private mount tree")
}
