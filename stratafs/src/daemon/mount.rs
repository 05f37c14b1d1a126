//! The FUSE mount itself, made with mount(2) where the daemon may (root, or root in a
//! user namespace), so that
//! * the mount shows as `fuse.stratafs` in `/proc/mounts` (as fuse-overlayfs shows as
//!   `fuse.fuse-overlayfs`), which `findmnt -t` and `umount -t` select on;
//! * the daemon never unmounts by path when it exits: the kernel ends the session
//!   when the mount goes, and an unmount by path after that would hit whatever was
//!   mounted at the same place since (fuser 0.18's unmount-on-exit does exactly that,
//!   its already-unmounted check reading POLLERR the wrong way round).
//!
//! Without the privilege to mount (a plain unprivileged user), the caller falls back to
//! fuser's mount through fusermount3.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::daemon::options::MountConfig;
use crate::sys;

/// The file system type the mount shows.
pub const FS_TYPE: &str = "fuse.stratafs";

/// Opens `/dev/fuse` and mounts it at the configured mount point. `Ok(None)` when this
/// process may not mount (EPERM): the caller then goes through fusermount3.
pub fn mount_fuse(
    cfg: &MountConfig,
    writable: bool,
    allow_other: bool,
) -> io::Result<Option<OwnedFd>> {
    let fuse = sys::mount::open_fuse_device()?;
    let root_mode = sys::mount::mode_of(&cfg.mountpoint)?;
    let (uid, gid) = sys::process::real_ids();
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={uid},group_id={gid},default_permissions",
        fuse.as_raw_fd()
    );
    if allow_other {
        data.push_str(",allow_other");
    }
    let source = cfg.source.as_deref().unwrap_or("stratafs");
    let flags = crate::daemon::mount_flag::ms_flags(&cfg.kernel_flags, writable);
    if let Err(e) = sys::mount::mount(source, &cfg.mountpoint, FS_TYPE, flags, &data) {
        return match e.raw_os_error() {
            Some(libc::EPERM) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(fuse))
}

/// Detaches a mount made by [`mount_fuse`] whose session could not start.
pub fn detach(cfg: &MountConfig) {
    let _ = sys::mount::detach(&cfg.mountpoint);
}
