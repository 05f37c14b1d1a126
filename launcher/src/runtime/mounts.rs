//! Mount helpers shared by the rootfs steps: mount with a message naming the target,
//! read-only remounts that keep the flags the kernel locked, mkdir/touch for targets.

use std::path::{Path, PathBuf};

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
        .with_context(|| what_where(source, fstype, target))
}

/// "mounting SOURCE (TYPE) at TARGET", for errors.
fn what_where(source: Option<&Path>, fstype: Option<&str>, target: &Path) -> String {
    format!(
        "mounting {} ({}) at {}",
        source.map(|s| s.display().to_string()).unwrap_or_default(),
        fstype.unwrap_or("bind"),
        target.display()
    )
}

/// Remounts a bind mount read-only, keeping nosuid/nodev/noexec that may be locked
/// (in a user namespace they cannot be cleared).
pub fn remount_ro(sys: &dyn Syscall, target: &Path) -> Result<()> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    do_mount(
        sys,
        None,
        None,
        target,
        flags | locked_flags(sys, target)?,
        None,
    )
}

/// The flags of the mount at `target` a user namespace may not clear (nosuid, nodev,
/// noexec, the atime ones), as `MS_*` bits.
fn locked_flags(sys: &dyn Syscall, target: &Path) -> Result<MsFlags> {
    let f = sys
        .statvfs_flags(target)
        .with_context(|| format!("statvfs {}", target.display()))?;
    let mut flags = MsFlags::empty();
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
    Ok(flags)
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

/// One entry of an explicit mount list (OCI `mounts`), already translated from its
/// options: what [`mount_entry`] performs under the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Where, inside the container (absolute).
    pub destination: PathBuf,
    /// The source (a host path for binds, a name such as `proc` otherwise).
    pub source: Option<PathBuf>,
    /// The file system type (`None` for a bind).
    pub fstype: Option<String>,
    /// `MS_*` flags (for a bind: applied by a remount after it).
    pub flags: MsFlags,
    /// File-system-specific options (`size=...,mode=...`).
    pub data: Option<String>,
    /// A bind mount (`bind`), recursive with `rbind`.
    pub bind: Option<Bind>,
    /// A propagation type to set after mounting (`MS_PRIVATE`, `MS_SLAVE`, ...,
    /// with `MS_REC` for the `r` forms), empty for none.
    pub propagation: MsFlags,
}

/// How a bind mount binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// `bind`: only the mount at the source.
    Single,
    /// `rbind`: with the mounts beneath it.
    Recursive,
}

/// Mounts `m` under `root` (its destination resolved without leaving `root`): a bind,
/// remounted with its flags when it has any, or a fresh file system; then its
/// propagation.
pub fn mount_entry(sys: &dyn Syscall, root: &Path, m: &MountSpec) -> Result<()> {
    let target = super::paths::secure_join(root, &m.destination)?;
    match m.bind {
        Some(bind) => {
            let src = m.source.as_deref().with_context(|| {
                format!("bind mount at {} has no source", m.destination.display())
            })?;
            let is_dir = std::fs::metadata(src)
                .with_context(|| format!("bind mount source {}", src.display()))?
                .is_dir();
            if is_dir {
                ensure_dir(&target)?;
            } else {
                ensure_file(&target)?;
            }
            let mut flags = MsFlags::MS_BIND;
            if bind == Bind::Recursive {
                flags |= MsFlags::MS_REC;
            }
            do_mount(sys, Some(src), None, &target, flags, None)?;
            let extra = m.flags - MsFlags::MS_BIND - MsFlags::MS_REC;
            if !extra.is_empty() {
                let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra;
                if sys.mount(None, &target, None, flags, None).is_err() {
                    // In a user namespace the flags the source has are locked: keep them.
                    do_mount(
                        sys,
                        None,
                        None,
                        &target,
                        flags | locked_flags(sys, &target)?,
                        None,
                    )?;
                }
            }
        }
        None => {
            ensure_dir(&target)?;
            let cgroup2 = m.fstype.as_deref() == Some("cgroup2");
            let r = sys.mount(
                m.source.as_deref(),
                &target,
                m.fstype.as_deref(),
                m.flags,
                m.data.as_deref(),
            );
            match r {
                // Root of a user namespace without a cgroup namespace of its own (rootless
                // podman on a host that gives none) may not mount cgroup2: the host's
                // view is bound instead, as runc does.
                Err(nix::Error::EPERM | nix::Error::EBUSY) if cgroup2 => {
                    bind_host_cgroup2(sys, &target, m.flags)?
                }
                r => r.with_context(|| {
                    what_where(m.source.as_deref(), m.fstype.as_deref(), &target)
                })?,
            }
        }
    }
    if !m.propagation.is_empty() {
        do_mount(sys, None, None, &target, m.propagation, None)?;
    }
    Ok(())
}

/// Binds the host's cgroup2 hierarchy (`/sys/fs/cgroup/unified` on a hybrid host, else
/// `/sys/fs/cgroup`) at `target` with the mount's `flags` (read-only, nosuid, ...).
fn bind_host_cgroup2(sys: &dyn Syscall, target: &Path, flags: MsFlags) -> Result<()> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let host = if unified.join("cgroup.controllers").exists() {
        unified
    } else {
        Path::new("/sys/fs/cgroup")
    };
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    do_mount(sys, Some(host), None, target, bind, None)?;
    let extra =
        flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    if !extra.is_empty() {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra;
        do_mount(
            sys,
            None,
            None,
            target,
            flags | locked_flags(sys, target)?,
            None,
        )?;
    }
    Ok(())
}
