//! The mount itself, as root: `/dev/fuse` opened, mount(2) of a `fuse.stratafs`, and a
//! lazy detach.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Opens `/dev/fuse` read-write (close-on-exec).
pub fn open_fuse_device() -> io::Result<OwnedFd> {
    nix::fcntl::open(
        "/dev/fuse",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// The mode of `path` (following symlinks), for the mount's `rootmode=`.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    nix::sys::stat::stat(path)
        .map(|st| st.st_mode)
        .map_err(io::Error::from)
}

/// mount(2) of file system type `fstype` from `source` on `target` with `flags` and
/// the file system's own `data` options.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    nix::mount::mount(
        Some(source),
        target,
        Some(fstype),
        nix::mount::MsFlags::from_bits_retain(flags),
        Some(data),
    )
    .map_err(io::Error::from)
}

/// Detaches the mount at `target` lazily (MNT_DETACH).
pub fn detach(target: &Path) -> io::Result<()> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)
}
