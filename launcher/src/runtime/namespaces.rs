//! Which namespaces a container gets, and unsharing them in the right order: user
//! first (rootless), then mount, then pid/uts/ipc/net/cgroup once the cgroup is joined.

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::spec::Network;
use super::syscall::Syscall;

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
pub fn unshare_ns(sys: &dyn Syscall, flags: CloneFlags) -> Result<()> {
    sys.unshare(flags)
        .with_context(|| format!("unshare({flags:?})"))
}

/// A new mount namespace whose mounts do not propagate back to the host.
pub fn private_mount_ns(sys: &dyn Syscall) -> Result<()> {
    unshare_ns(sys, CloneFlags::CLONE_NEWNS)?;
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .context("making / a private mount tree")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::runtime::syscall::recording::{Call, RecordingSyscall};

    #[test]
    fn a_private_mount_namespace_is_unshared_then_made_private() {
        let sys = RecordingSyscall::new();
        private_mount_ns(&sys).expect("private mount ns");
        assert_eq!(
            sys.calls(),
            vec![
                Call::Unshare(CloneFlags::CLONE_NEWNS),
                Call::Mount {
                    source: None,
                    target: PathBuf::from("/"),
                    fstype: None,
                    flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    data: None,
                },
            ]
        );
    }

    #[test]
    fn own_netns_only_with_network_none() {
        assert!(container_flags(Network::None).contains(CloneFlags::CLONE_NEWNET));
        assert!(!container_flags(Network::Host).contains(CloneFlags::CLONE_NEWNET));
    }
}
