//! Which namespaces a container gets, and unsharing them in the right order: user
//! first (rootless), then mount, then pid/uts/ipc/net/cgroup once the cgroup is joined.

use std::path::{Path, PathBuf};

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

/// The namespaces of a container: those made new and those joined (OCI
/// `linux.namespaces` entries with a `path`). `strata run` only makes new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsPlan {
    /// Unshared by the setup process after the union mount (never user or mount: the
    /// setup process and the container's init make those themselves).
    pub unshare: CloneFlags,
    /// Namespace files joined with setns(2) before unsharing, with their type.
    pub join: Vec<(CloneFlags, PathBuf)>,
}

impl NsPlan {
    /// What `strata run` uses: [`container_flags`], nothing joined.
    pub fn for_network(network: Network) -> NsPlan {
        NsPlan {
            unshare: container_flags(network),
            join: Vec::new(),
        }
    }

    /// Joins the namespaces of `join`, then unshares `unshare`.
    pub fn enter(&self, sys: &dyn Syscall) -> Result<()> {
        for (kind, path) in &self.join {
            let f = std::fs::File::open(path)
                .with_context(|| format!("opening namespace {}", path.display()))?;
            sys.setns(std::os::fd::AsFd::as_fd(&f), *kind)
                .with_context(|| format!("setns({kind:?}) into {}", path.display()))?;
        }
        unshare_ns(sys, self.unshare)
    }
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
