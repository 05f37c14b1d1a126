//! Mounting the union (image layers + init layer + upper) at the container's `merged`
//! dir: kernel overlayfs, or a FUSE daemon speaking fuse-overlayfs' command line
//! (stratafs via `strata stratafs`, or `$STRATA_FUSE_PROGRAM`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::daemon_wait::{MountWait, wait_for_exit, wait_for_mount};
use super::spec::Driver;

/// The directories of one union.
#[derive(Debug, Clone)]
pub struct UnionDirs {
    /// Lower dirs, top-most first.
    pub lowers: Vec<PathBuf>,
    /// Writable upper (None: read-only union).
    pub upper: Option<PathBuf>,
    /// Work dir (with `upper`).
    pub work: Option<PathBuf>,
}

impl UnionDirs {
    /// The `lowerdir=...,upperdir=...,workdir=...` option string.
    pub fn options(&self) -> Result<String> {
        let mut lowers = Vec::new();
        for l in &self.lowers {
            lowers.push(opt_path(l)?);
        }
        let mut s = format!("lowerdir={}", lowers.join(":"));
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            s.push_str(&format!(
                ",upperdir={},workdir={}",
                opt_path(u)?,
                opt_path(w)?
            ));
        }
        Ok(s)
    }
}

/// `p` as an overlay option value: `,`, `:` and `\` escaped, as stratafs and kernel
/// overlayfs both read them.
fn opt_path(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .with_context(|| format!("path {} is not UTF-8", p.display()))?;
    String::from_utf8(stratafs::options::escape_path(s.as_bytes()))
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}

/// A mounted union; for FUSE, the daemon serving it when run in the foreground.
#[derive(Debug)]
pub struct MountedUnion {
    /// Mount point.
    pub target: PathBuf,
    /// The FUSE daemon (foreground mode only).
    pub daemon: Option<Child>,
}

/// The program and leading arguments used for `--driver fuse`.
pub fn fuse_program() -> Result<(PathBuf, Vec<String>)> {
    if let Some(p) = std::env::var_os("STRATA_FUSE_PROGRAM") {
        return Ok((PathBuf::from(p), Vec::new()));
    }
    let exe = std::env::current_exe().context("locating the strata executable")?;
    Ok((exe, vec!["stratafs".into()]))
}

/// Checks that FUSE can be used by this process before anything is created: /dev/fuse
/// must open read-write (the mode, a missing module or a device cgroup can prevent it).
pub fn check_fuse_available() -> Result<()> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse");
    let Err(e) = opened else {
        return Ok(());
    };
    let rootless = !nix::unistd::geteuid().is_root();
    let fix = match e.kind() {
        std::io::ErrorKind::NotFound => "load the fuse module (modprobe fuse)",
        std::io::ErrorKind::PermissionDenied if rootless => {
            "make it usable by this user (chmod 0666 /dev/fuse, the usual mode)"
        }
        _ => "check the fuse module and the device's permissions",
    };
    let alternative = if kernel_overlay_possible(rootless) {
        ", or use --driver kernel"
    } else {
        ""
    };
    bail!("cannot open /dev/fuse for the fuse driver: {e}; {fix}{alternative}")
}

/// Whether kernel overlayfs can plausibly serve `--driver kernel` here: the kernel knows
/// overlay (or can load it), and rootless, the kernel mounts it in a user namespace
/// (Linux 5.11 or newer).
pub fn kernel_overlay_possible(rootless: bool) -> bool {
    let known = std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    }) || Path::new("/sys/module/overlay").exists();
    if !known {
        return false;
    }
    if !rootless {
        return true;
    }
    let Ok(uts) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = uts.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 11),
        _ => false,
    }
}

/// Mounts the union at `target` in the current mount namespace. With `foreground`, a FUSE
/// daemon stays this process's child (killed with it); otherwise it daemonizes.
pub fn mount_union(
    driver: Driver,
    dirs: &UnionDirs,
    target: &Path,
    rootless: bool,
    foreground: bool,
) -> Result<MountedUnion> {
    match driver {
        Driver::Kernel => {
            mount_kernel(dirs, target, rootless)?;
            Ok(MountedUnion {
                target: target.to_path_buf(),
                daemon: None,
            })
        }
        Driver::Fuse => mount_fuse(dirs, target, foreground),
    }
}

fn mount_kernel(dirs: &UnionDirs, target: &Path, rootless: bool) -> Result<()> {
    let base = dirs.options()?;
    let mut attempts = Vec::new();
    if rootless {
        attempts.push(format!("{base},userxattr"));
    } else {
        attempts.push(format!("{base},redirect_dir=on,index=on,xino=on"));
        attempts.push(format!("{base},redirect_dir=on,index=on"));
        attempts.push(base.clone());
    }
    let mut last = None;
    for opts in &attempts {
        match mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        ) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    let e = last.map(|e| e.to_string()).unwrap_or_default();
    bail!(
        "mounting kernel overlayfs at {} failed: {e} (options: {})",
        target.display(),
        attempts.last().map(String::as_str).unwrap_or("")
    )
}

fn mount_fuse(dirs: &UnionDirs, target: &Path, foreground: bool) -> Result<MountedUnion> {
    check_fuse_available()?;
    let (prog, lead) = fuse_program()?;
    let mut cmd = Command::new(&prog);
    cmd.args(&lead);
    if foreground {
        cmd.arg("-f");
    }
    cmd.arg("-o").arg(dirs.options()?).arg(target);
    cmd.stdin(std::process::Stdio::null());
    if foreground {
        crate::sys::process::kill_with_parent(&mut cmd);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting FUSE daemon {}", prog.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    match wait_for_mount(Some(&mut child), target, deadline)? {
        MountWait::Mounted => {}
        // Daemonized: the parent returned; the mount appears when the child serves.
        MountWait::Exited(status)
            if !foreground
                && status.success()
                && matches!(
                    wait_for_mount(None, target, deadline),
                    Ok(MountWait::Mounted)
                ) => {}
        MountWait::Exited(status) => bail!(
            "FUSE daemon {} exited ({status}) without mounting {}",
            prog.display(),
            target.display()
        ),
        MountWait::TimedOut => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "FUSE daemon {} did not mount {} within 30s",
                prog.display(),
                target.display()
            );
        }
    }
    if !foreground {
        let _ = child.wait();
    }
    Ok(MountedUnion {
        target: target.to_path_buf(),
        daemon: if foreground { Some(child) } else { None },
    })
}

impl MountedUnion {
    /// Unmounts (lazily) and waits for a foreground FUSE daemon to exit.
    pub fn unmount(mut self) -> Result<()> {
        let r = umount2(&self.target, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", self.target.display()));
        if let Some(mut d) = self.daemon.take() {
            if !wait_for_exit(&mut d, Instant::now() + Duration::from_secs(10)) {
                let _ = d.kill();
                let _ = d.wait();
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_with_separators_are_escaped_not_refused() {
        let dirs = UnionDirs {
            lowers: vec![PathBuf::from("/s/a,b"), PathBuf::from("/s/c:d")],
            upper: Some(PathBuf::from("/s/u\\p")),
            work: Some(PathBuf::from("/s/w")),
        };
        assert_eq!(
            dirs.options().expect("options"),
            "lowerdir=/s/a\\,b:/s/c\\:d,upperdir=/s/u\\\\p,workdir=/s/w"
        );
    }
}
