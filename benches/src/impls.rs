//! The implementations compared: the plain directory, kernel overlayfs, fuse-overlayfs
//! and stratafs (on /dev/fuse, through io_uring queues, and with lower files passed
//! through), each mounted over the same layers with a fresh upper per run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::requests::{self, Requests};

/// One implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// The flattened tree in a plain directory (no union at all).
    Native,
    /// Kernel overlayfs (redirect_dir=on,index=on,xino=on): the limit we chase.
    Kernel,
    /// fuse-overlayfs 1.10 (Debian's, in C): the peer stratafs replaces.
    FuseOverlayfs,
    /// fuse-overlayfs 2.0 (the Rust rewrite), from `$STRATA_FUSE_OVERLAYFS2` or where
    /// `scripts/deps` installs it.
    FuseOverlayfs2,
    /// stratafs on `/dev/fuse` alone (`noio_uring`): what a stock kernel gives.
    Stratafs,
    /// stratafs through FUSE-over-io_uring queues (the fuse module's `enable_uring`
    /// turned on for its mounts; kernel 6.14+, root).
    StratafsUring,
    /// stratafs with `io=passthrough-all`: files of 64 KiB and more, lower ones
    /// included, passed through to the kernel (root only).
    StratafsPassthrough,
}

impl Impl {
    /// All implementations, in table order.
    pub const ALL: [Impl; 7] = [
        Impl::Native,
        Impl::Kernel,
        Impl::FuseOverlayfs,
        Impl::FuseOverlayfs2,
        Impl::Stratafs,
        Impl::StratafsUring,
        Impl::StratafsPassthrough,
    ];

    /// Column name.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Native => "native",
            Impl::Kernel => "kernel",
            Impl::FuseOverlayfs => "fuse-overlayfs 1.10",
            Impl::FuseOverlayfs2 => "fuse-overlayfs 2.0",
            Impl::Stratafs => "stratafs",
            Impl::StratafsUring => "stratafs io_uring",
            Impl::StratafsPassthrough => "stratafs io=passthrough-all",
        }
    }

    /// True for the fuse-overlayfs columns.
    pub fn is_fuse_overlayfs(self) -> bool {
        matches!(self, Impl::FuseOverlayfs | Impl::FuseOverlayfs2)
    }

    /// True for the stratafs columns.
    pub fn is_stratafs(self) -> bool {
        matches!(
            self,
            Impl::Stratafs | Impl::StratafsUring | Impl::StratafsPassthrough
        )
    }

    /// The daemon binary of a fuse-overlayfs column.
    pub fn fuse_overlayfs_binary(self) -> Result<PathBuf> {
        match self {
            Impl::FuseOverlayfs => Ok(PathBuf::from(FUSE_OVERLAYFS_1)),
            Impl::FuseOverlayfs2 => fuse_overlayfs2(),
            _ => bail!("{} is not fuse-overlayfs", self.name()),
        }
    }

    /// True when this is the fuse-overlayfs 2.0 column and its binary is not there.
    pub fn not_installed(self) -> bool {
        self == Impl::FuseOverlayfs2
            && fuse_overlayfs2().is_err_and(|e| e.to_string().starts_with("not installed"))
    }

    /// Why this implementation cannot run here, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        match self {
            Impl::FuseOverlayfs if !Path::new(FUSE_OVERLAYFS_1).exists() => Some(format!(
                "{FUSE_OVERLAYFS_1} missing (apt-get install fuse-overlayfs)"
            )),
            Impl::FuseOverlayfs2 => fuse_overlayfs2().err().map(|e| format!("{e:#}")),
            Impl::StratafsPassthrough if !nix::unistd::geteuid().is_root() => {
                Some("FUSE passthrough needs root".into())
            }
            Impl::StratafsUring if !UringParam::available() => Some(format!(
                "{ENABLE_URING} missing or not writable (kernel 6.14+, root)"
            )),
            _ => None,
        }
    }
}

/// Debian's fuse-overlayfs (1.10 on bookworm).
pub const FUSE_OVERLAYFS_1: &str = "/usr/bin/fuse-overlayfs";

/// Where `scripts/deps` installs fuse-overlayfs 2.0.
pub const FUSE_OVERLAYFS_2: &str =
    "/usr/local/lib/strata-deps/fuse-overlayfs-2.0/bin/fuse-overlayfs";

/// Environment variable naming the fuse-overlayfs 2.0 binary to use instead.
pub const FUSE_OVERLAYFS_2_ENV: &str = "STRATA_FUSE_OVERLAYFS2";

/// The fuse-overlayfs 2.x binary: `$STRATA_FUSE_OVERLAYFS2` if set, else where
/// `scripts/deps` installs it; an error says which was tried and what it said. Looked up
/// once.
pub fn fuse_overlayfs2() -> Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| find_fuse_overlayfs2().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn find_fuse_overlayfs2() -> Result<PathBuf> {
    let bin = std::env::var_os(FUSE_OVERLAYFS_2_ENV)
        .filter(|b| !b.is_empty())
        .map_or_else(|| PathBuf::from(FUSE_OVERLAYFS_2), PathBuf::from);
    if !bin.exists() {
        bail!(
            "not installed: no {} (scripts/deps installs it; or set ${FUSE_OVERLAYFS_2_ENV})",
            bin.display()
        );
    }
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .with_context(|| format!("run {} --version", bin.display()))?;
    let v = String::from_utf8_lossy(&out.stdout);
    if !v.contains("version 2.") {
        bail!(
            "{} is not fuse-overlayfs 2.x (--version says {:?})",
            bin.display(),
            v.trim()
        );
    }
    Ok(bin)
}

/// A mounted (or prepared) union; unmounts on drop.
pub struct Mounted {
    /// Where the merged tree is.
    pub root: PathBuf,
    mounted: bool,
    /// The FUSE daemon's pid, for its memory use.
    pub daemon: Option<u32>,
    /// Where a stratafs daemon writes its request counts (`-o stats`).
    stats: Option<PathBuf>,
}

impl Mounted {
    /// The requests a stratafs daemon has served so far (None for the others).
    pub fn requests(&self) -> Result<Option<Requests>> {
        match (self.daemon, &self.stats) {
            (Some(pid), Some(path)) => requests::snapshot(pid, path).map(Some),
            _ => Ok(None),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            for _ in 0..50 {
                let ok = Command::new("umount")
                    .arg(&self.root)
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    self.wait_daemon_exit();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("umount").arg("-l").arg(&self.root).status();
            self.wait_daemon_exit();
        }
    }
}

impl Mounted {
    /// Waits (up to 10 s) for the daemon to exit after its unmount: the next run mounts
    /// at the same path, and fuse-overlayfs 2.0's daemon, on its way out, unmounts
    /// whatever is mounted at its path by then (fuser's drop) — the next run's mount.
    fn wait_daemon_exit(&self) {
        let Some(pid) = self.daemon else { return };
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let start = Instant::now();
        while proc.exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The layers of one run: lowers (top-most first), a fresh upper and work dir, a mount point.
pub struct RunDirs {
    /// Lower layers, top-most first.
    pub lowers: Vec<PathBuf>,
    /// The flattened copy for the native column.
    pub flat: PathBuf,
    /// Fresh upper.
    pub upper: PathBuf,
    /// Fresh work dir.
    pub work: PathBuf,
    /// Mount point.
    pub mnt: PathBuf,
}

fn lowerdir(lowers: &[PathBuf]) -> String {
    lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn wait_mounted(mnt: &Path) -> Result<()> {
    let want = mnt
        .to_str()
        .context("mount point is not UTF-8")?
        .to_string();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let info = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
        if info
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("{} did not appear in mountinfo", mnt.display())
}

fn daemon_pid(pattern: &str) -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-n", "-f", pattern])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Environment variable with `-o` options added to every stratafs mount of the bench.
pub const EXTRA_STRATAFS_OPTIONS: &str = "STRATA_BENCH_STRATAFS_OPTIONS";

/// Mounts `imp` over `dirs` (the native column just uses the flat copy).
pub fn mount(imp: Impl, dirs: &RunDirs) -> Result<Mounted> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir(&dirs.lowers),
        dirs.upper.display(),
        dirs.work.display()
    );
    let mnt = dirs.mnt.clone();
    let stats = dirs.work.with_file_name("stratafs-stats.tsv");
    match imp {
        Impl::Native => {
            return Ok(Mounted {
                root: dirs.flat.clone(),
                mounted: false,
                daemon: None,
                stats: None,
            });
        }
        Impl::Kernel => {
            let st = Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!("{opts},redirect_dir=on,index=on,xino=on"))
                .arg(&mnt)
                .status()
                .context("run mount")?;
            if !st.success() {
                bail!("mount -t overlay failed ({st})");
            }
        }
        Impl::FuseOverlayfs | Impl::FuseOverlayfs2 => {
            let bin = imp.fuse_overlayfs_binary()?;
            let out = Command::new(&bin)
                .args(["-o", &opts])
                .arg(&mnt)
                .output()
                .with_context(|| format!("run {}", bin.display()))?;
            if !out.status.success() {
                bail!(
                    "{}: {}",
                    imp.name(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Impl::Stratafs | Impl::StratafsUring | Impl::StratafsPassthrough => {
            let mut opts = match imp {
                Impl::StratafsPassthrough => format!("{opts},io=passthrough-all,noio_uring"),
                Impl::StratafsUring => opts,
                _ => format!("{opts},noio_uring"),
            };
            opts.push_str(&format!(",stats={}", stats.display()));
            // Options to try on every stratafs column (e.g. threads=4).
            if let Some(extra) = std::env::var_os(EXTRA_STRATAFS_OPTIONS).filter(|e| !e.is_empty())
            {
                opts.push(',');
                opts.push_str(&extra.to_string_lossy());
            }
            // The kernel reads the parameter at INIT, over once the daemon is up.
            let _uring = (imp == Impl::StratafsUring)
                .then(|| UringParam::set(true))
                .transpose()?;
            let exe = std::env::current_exe().context("current exe")?;
            let out = Command::new(exe)
                .args(["__stratafs", "-o", &opts])
                .arg(&mnt)
                .output()
                .context("run stratafs")?;
            if !out.status.success() {
                bail!("stratafs: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
    }
    wait_mounted(&mnt)?;
    let daemon = if imp.is_fuse_overlayfs() {
        daemon_pid(&format!("fuse-overlayfs.*{}", mnt.display()))
    } else if imp.is_stratafs() {
        daemon_pid(&format!("__stratafs.*{}", mnt.display()))
    } else {
        None
    };
    let stats = imp.is_stratafs().then_some(stats);
    Ok(Mounted {
        root: mnt,
        mounted: true,
        daemon,
        stats,
    })
}

use stratafs::transport::ENABLE_URING;

/// The fuse module's `enable_uring` set one way for as long as this lives, then put
/// back as it was.
pub struct UringParam {
    was: String,
}

impl UringParam {
    /// The parameter exists and may be written here.
    pub fn available() -> bool {
        std::fs::OpenOptions::new()
            .write(true)
            .open(ENABLE_URING)
            .is_ok()
    }

    /// Sets the parameter to `on`.
    pub fn set(on: bool) -> Result<UringParam> {
        let was = std::fs::read_to_string(ENABLE_URING)
            .with_context(|| format!("read {ENABLE_URING}"))?;
        std::fs::write(ENABLE_URING, if on { "Y" } else { "N" })
            .with_context(|| format!("write {ENABLE_URING}"))?;
        Ok(UringParam {
            was: was.trim().to_string(),
        })
    }
}

impl Drop for UringParam {
    fn drop(&mut self) {
        let _ = std::fs::write(ENABLE_URING, &self.was);
    }
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
