//! `/dev` in the container: a tmpfs with the standard device nodes (created with mknod
//! as root, bind-mounted from the host when rootless), a private devpts instance,
//! `/dev/shm`, `/dev/mqueue`-free, and the usual symlinks.

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag, makedev};

use super::mounts::{do_mount, ensure_dir, ensure_file};
use super::syscall::Syscall;

/// The device nodes every container gets: (name, major, minor).
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Builds `rootfs/dev`. `rootless` selects bind mounts instead of mknod. (`-t` adds
/// `/dev/console` later, once the container's pty exists.)
pub fn setup_dev(sys: &dyn Syscall, rootfs: &Path, rootless: bool) -> Result<()> {
    let dev = rootfs.join("dev");
    ensure_dir(&dev)?;
    do_mount(
        sys,
        Some(Path::new("tmpfs")),
        Some("tmpfs"),
        &dev,
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    make_nodes(sys, &dev, rootless)?;
    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    let pts_opts = if rootless {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    do_mount(
        sys,
        Some(Path::new("devpts")),
        Some("devpts"),
        &pts,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_opts),
    )?;
    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    do_mount(
        sys,
        Some(Path::new("shm")),
        Some("tmpfs"),
        &shm,
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    make_links(&dev)
}

/// Makes the [`DEVICES`] nodes in `dev` (mknod as root, binds of the host's when
/// `rootless`); a node that exists already is left as it is.
pub fn make_nodes(sys: &dyn Syscall, dev: &Path, rootless: bool) -> Result<()> {
    for (name, major, minor) in DEVICES {
        let p = dev.join(name);
        if std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        if rootless {
            ensure_file(&p)?;
            do_mount(
                sys,
                Some(&Path::new("/dev").join(name)),
                None,
                &p,
                MsFlags::MS_BIND,
                None,
            )?;
        } else {
            sys.mknod(
                &p,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(*major, *minor),
            )
            .with_context(|| format!("mknod {}", p.display()))?;
            // mknod is subject to the umask.
            sys.chmod(&p, Mode::from_bits_truncate(0o666))
                .with_context(|| format!("chmod {}", p.display()))?;
        }
    }
    Ok(())
}

/// Makes the usual symlinks in `dev` (`ptmx`, `fd`, `stdin`, `stdout`, `stderr`),
/// those missing.
pub fn make_links(dev: &Path) -> Result<()> {
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(link);
        if std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        std::os::unix::fs::symlink(target, &p)
            .with_context(|| format!("symlink {} -> {target}", p.display()))?;
    }
    Ok(())
}
