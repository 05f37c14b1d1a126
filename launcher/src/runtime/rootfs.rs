//! The container's root filesystem, prepared inside its mount namespace before
//! `pivot_root`: `/proc`, `/dev`, read-only `/sys`, volumes; after it, crun's masked
//! and read-only `/proc` and `/sys` paths.

use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::devices::{make_links, make_nodes, setup_dev};
use super::mounts::{MountSpec, do_mount, ensure_dir, ensure_file, mount_entry, remount_ro};
use super::paths::secure_join;
use super::spec::Volume;
use super::syscall::Syscall;

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
    /// An explicit mount list (OCI `mounts`) in place of the standard `/proc`, `/dev`,
    /// `/sys`; `None` for the standard ones.
    pub mounts: Option<&'a [MountSpec]>,
}

/// Makes a plain directory `rootfs` a mount point (a bind of itself), as pivot_root
/// needs; the union mount is one already.
pub fn bind_self(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    do_mount(
        sys,
        Some(rootfs),
        None,
        rootfs,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
}

/// Mounts `/proc`, `/dev`, `/sys` and the volumes under the rootfs (or, with an
/// explicit mount list, its entries in order, then the standard device nodes and
/// symlinks in `/dev`).
pub fn prepare(sys: &dyn Syscall, plan: &RootfsPlan<'_>) -> Result<()> {
    let root = plan.rootfs;
    if let Some(list) = plan.mounts {
        for m in list {
            mount_entry(sys, root, m)?;
        }
        let dev = secure_join(root, Path::new("/dev"))?;
        ensure_dir(&dev)?;
        make_nodes(sys, &dev, plan.rootless)?;
        make_links(&dev)?;
        for v in plan.volumes {
            bind_volume(sys, root, v)?;
        }
        return Ok(());
    }
    let proc_dir = secure_join(root, Path::new("/proc"))?;
    ensure_dir(&proc_dir)?;
    do_mount(
        sys,
        Some(Path::new("proc")),
        Some("proc"),
        &proc_dir,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    setup_dev(sys, root, plan.rootless)?;
    let sys_dir = secure_join(root, Path::new("/sys"))?;
    ensure_dir(&sys_dir)?;
    let sys_flags =
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    let fresh = if !plan.rootless || plan.own_netns {
        do_mount(
            sys,
            Some(Path::new("sysfs")),
            Some("sysfs"),
            &sys_dir,
            sys_flags,
            None,
        )
    } else {
        Err(anyhow::anyhow!("sysfs needs an owned network namespace"))
    };
    if fresh.is_err() {
        // A user namespace without its own netns may not mount sysfs: bind the host's.
        do_mount(
            sys,
            Some(Path::new("/sys")),
            None,
            &sys_dir,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_ro(sys, &sys_dir)?;
    }
    for v in plan.volumes {
        bind_volume(sys, root, v)?;
    }
    Ok(())
}

fn bind_volume(sys: &dyn Syscall, root: &Path, v: &Volume) -> Result<()> {
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
        sys,
        Some(&v.source),
        None,
        &target,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if v.readonly {
        remount_ro(sys, &target)?;
    }
    Ok(())
}

/// Makes `rootfs` the root: `pivot_root(".", ".")` and a lazy unmount of the old root
/// stacked beneath (no directory needed, as runc does it). Falls back to `chroot` only
/// where pivot_root cannot work (the rootfs on an initramfs).
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    let here = Path::new(".");
    sys.chdir(rootfs)
        .with_context(|| format!("chdir {}", rootfs.display()))?;
    match sys.pivot_root(here, here) {
        Ok(()) => {
            sys.umount2(here, MntFlags::MNT_DETACH)
                .context("detaching the old root after pivot_root")?;
        }
        Err(Errno::EINVAL) => {
            sys.chroot(here).context("chroot into the rootfs")?;
        }
        Err(e) => return Err(e).context(format!("pivot_root into {}", rootfs.display())),
    }
    sys.chdir(Path::new("/"))
        .context("chdir / in the container")?;
    Ok(())
}

/// Makes `rootfs` the root without pivot_root, as runc's `--no-pivot`: the rootfs
/// mount (a mount point: a bind of itself at least) is moved onto `/` and chrooted
/// into. The old root stays mounted beneath it, unreachable by path.
pub fn move_root(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    let here = Path::new(".");
    sys.chdir(rootfs)
        .with_context(|| format!("chdir {}", rootfs.display()))?;
    sys.mount(Some(here), Path::new("/"), None, MsFlags::MS_MOVE, None)
        .with_context(|| format!("moving the rootfs {} onto / (MS_MOVE)", rootfs.display()))?;
    sys.chroot(here)
        .with_context(|| format!("chroot into the rootfs {}", rootfs.display()))?;
    sys.chdir(Path::new("/"))
        .context("chdir / in the container")?;
    Ok(())
}

/// After pivoting: masks `masked` and makes `readonly` read-only (`strata run` passes
/// [`MASKED_PATHS`] and [`READONLY_PATHS`]). `root` is `/` (the pivoted root; a test
/// passes a directory standing for it), under which the paths are looked up.
pub fn finish<S: AsRef<str>>(
    sys: &dyn Syscall,
    root: &Path,
    masked: &[S],
    readonly: &[S],
) -> Result<()> {
    for p in masked {
        let p = p.as_ref();
        let path = root.join(p.trim_start_matches('/'));
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if md.is_dir() {
            do_mount(
                sys,
                Some(Path::new("tmpfs")),
                Some("tmpfs"),
                &path,
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?;
        } else {
            do_mount(
                sys,
                Some(Path::new("/dev/null")),
                None,
                &path,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    for p in readonly {
        let p = p.as_ref();
        let path = root.join(p.trim_start_matches('/'));
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        do_mount(
            sys,
            Some(&path),
            None,
            &path,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_ro(sys, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
