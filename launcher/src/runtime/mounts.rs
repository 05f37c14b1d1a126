//! Mount helpers shared by the rootfs steps: mount with a message naming the target,
//! read-only remounts that keep the flags the kernel locked, mkdir/touch for targets.

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::MsFlags;

use super::syscall::Syscall;

/// `mount(2)` with an error naming what and where.
pub fn do_mount(
    sys: &dyn Syscall,
    source: Option<&Path>,
    fstype: Option<&str>,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    sys.mount(source, target, fstype, flags, data)
        .with_context(|| {
            format!(
                "mounting {} ({}) at {}",
                source.map(|s| s.display().to_string()).unwrap_or_default(),
                fstype.unwrap_or("bind"),
                target.display()
            )
        })
}

/// Remounts a bind mount read-only, keeping nosuid/nodev/noexec that may be locked
/// (in a user namespace they cannot be cleared).
pub fn remount_ro(sys: &dyn Syscall, target: &Path) -> Result<()> {
    let f = sys
        .statvfs_flags(target)
        .with_context(|| format!("statvfs {}", target.display()))?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    use nix::sys::statvfs::FsFlags;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            flags |= ms;
        }
    }
    do_mount(sys, None, None, target, flags, None)
}

/// Creates `path` as a directory (with parents) if missing.
pub fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating directory {}", path.display()))
}

/// Creates `path` as an empty file (and its parents) if missing.
pub fn ensure_file(path: &Path) -> Result<()> {
    if let Some(p) = path.parent() {
        ensure_dir(p)?;
    }
    if std::fs::symlink_metadata(path).is_err() {
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}
