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

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::options::MountConfig;

/// The file system type the mount shows.
pub const FS_TYPE: &str = "fuse.stratafs";

/// Opens `/dev/fuse` and mounts it at the configured mount point. `Ok(None)` when this
/// process may not mount (EPERM): the caller then goes through fusermount3.
pub fn mount_fuse(
    cfg: &MountConfig,
    writable: bool,
    allow_other: bool,
) -> io::Result<Option<OwnedFd>> {
    let dev = CString::new("/dev/fuse").map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path; the result is checked.
    let raw = unsafe { libc::open(dev.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a freshly opened fd we own.
    let fuse = unsafe { OwnedFd::from_raw_fd(raw) };
    let target = CString::new(cfg.mountpoint.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let root_mode = {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: target is NUL-terminated; st is writable.
        if unsafe { libc::stat(target.as_ptr(), st.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: stat succeeded and filled st.
        unsafe { st.assume_init() }.st_mode
    };
    // SAFETY: getuid/getgid have no failure mode.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={uid},group_id={gid},default_permissions",
        fuse.as_raw_fd()
    );
    if allow_other {
        data.push_str(",allow_other");
    }
    let data = CString::new(data).map_err(io::Error::other)?;
    let source = CString::new(cfg.source.clone().unwrap_or_else(|| "stratafs".into()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fstype = CString::new(FS_TYPE).map_err(io::Error::other)?;
    let flags = mount_flags(&cfg.kernel_flags, writable);
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EPERM) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(fuse))
}

/// Detaches a mount made by [`mount_fuse`] whose session could not start.
pub fn detach(cfg: &MountConfig) {
    if let Ok(target) = CString::new(cfg.mountpoint.as_os_str().as_bytes()) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// mount(2) flags from the generic options: nodev and nosuid unless `dev`/`suid` (as
/// fusermount3 does), read-only without an upper, the last of each pair winning.
fn mount_flags(generic: &[String], writable: bool) -> libc::c_ulong {
    let mut flags = libc::MS_NODEV | libc::MS_NOSUID;
    if !writable {
        flags |= libc::MS_RDONLY;
    }
    for o in generic {
        let (set, clear) = match o.as_str() {
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            _ => (0, 0),
        };
        flags = (flags | set) & !clear;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_options_become_flags() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = mount_flags(&o(&[]), true);
        assert_eq!(f, libc::MS_NODEV | libc::MS_NOSUID);
        let f = mount_flags(&o(&["dev", "noexec", "noatime"]), false);
        assert_eq!(
            f,
            libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NOATIME | libc::MS_RDONLY
        );
        let f = mount_flags(&o(&["noexec", "exec", "suid", "nosuid"]), true);
        assert_eq!(f, libc::MS_NODEV | libc::MS_NOSUID);
    }
}
