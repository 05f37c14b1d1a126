//! The container's root filesystem, prepared inside its mount namespace before
//! `pivot_root`: `/proc`, `/dev`, read-only `/sys`, volumes; after it, crun's masked
//! and read-only `/proc` and `/sys` paths.

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::MsFlags;

use super::devices::setup_dev;
use super::mounts::{do_mount, ensure_dir, ensure_file, remount_ro};
use super::paths::secure_join;
use super::spec::Volume;

/// Paths hidden from the container (as crun masks them).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];

/// Paths the container sees read-only (as crun sets them).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Everything mounted under `rootfs` before pivoting into it.
pub struct RootfsPlan<'a> {
    /// The union mount point.
    pub rootfs: &'a Path,
    /// Rootless (user namespace): bind devices, sysfs may need a bind fallback.
    pub rootless: bool,
    /// The container has its own network namespace (sysfs can be mounted fresh).
    pub own_netns: bool,
    /// Host bind mounts.
    pub volumes: &'a [Volume],
}

/// Mounts `/proc`, `/dev`, `/sys` and the volumes under the rootfs.
pub fn prepare(plan: &RootfsPlan<'_>) -> Result<()> {
    let root = plan.rootfs;
    let proc_dir = secure_join(root, Path::new("/proc"))?;
    ensure_dir(&proc_dir)?;
    do_mount(
        Some(Path::new("proc")),
        Some("proc"),
        &proc_dir,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    setup_dev(root, plan.rootless)?;
    let sys = secure_join(root, Path::new("/sys"))?;
    ensure_dir(&sys)?;
    let sys_flags =
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    let fresh = if !plan.rootless || plan.own_netns {
        do_mount(
            Some(Path::new("sysfs")),
            Some("sysfs"),
            &sys,
            sys_flags,
            None,
        )
    } else {
        Err(anyhow::anyhow!("sysfs needs an owned network namespace"))
    };
    if fresh.is_err() {
        // A user namespace without its own netns may not mount sysfs: bind the host's.
        do_mount(
            Some(Path::new("/sys")),
            None,
            &sys,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_ro(&sys)?;
    }
    for v in plan.volumes {
        bind_volume(root, v)?;
    }
    Ok(())
}

fn bind_volume(root: &Path, v: &Volume) -> Result<()> {
    let target = secure_join(root, &v.target)?;
    let is_dir = std::fs::metadata(&v.source)
        .with_context(|| format!("volume source {}", v.source.display()))?
        .is_dir();
    if is_dir {
        ensure_dir(&target)?;
    } else {
        ensure_file(&target)?;
    }
    do_mount(
        Some(&v.source),
        None,
        &target,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if v.readonly {
        remount_ro(&target)?;
    }
    Ok(())
}

/// Makes `rootfs` the root: `pivot_root(".", ".")` and a lazy unmount of the old root
/// stacked beneath (no directory needed, as runc does it). Falls back to `chroot` only
/// where pivot_root cannot work (the rootfs on an initramfs).
pub fn pivot(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).with_context(|| format!("chdir {}", rootfs.display()))?;
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
                .context("detaching the old root after pivot_root")?;
        }
        Err(nix::errno::Errno::EINVAL) => {
            nix::unistd::chroot(".").context("chroot into the rootfs")?;
        }
        Err(e) => return Err(e).context(format!("pivot_root into {}", rootfs.display())),
    }
    nix::unistd::chdir("/").context("chdir / in the container")?;
    Ok(())
}

/// After pivoting: masks and read-only paths.
pub fn finish() -> Result<()> {
    for p in MASKED_PATHS {
        let path = Path::new(p);
        let Ok(md) = std::fs::metadata(path) else {
            continue;
        };
        if md.is_dir() {
            do_mount(
                Some(Path::new("tmpfs")),
                Some("tmpfs"),
                path,
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?;
        } else {
            do_mount(
                Some(Path::new("/dev/null")),
                None,
                path,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    for p in READONLY_PATHS {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        do_mount(
            Some(path),
            None,
            path,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_ro(path)?;
    }
    Ok(())
}
