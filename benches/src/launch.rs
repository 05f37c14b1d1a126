//! The launcher workload: `strata run --rm demo true`, start to exit, with `--driver
//! kernel`, `--driver fuse` (stratafs) and `--driver fuse` with fuse-overlayfs (1.10 and
//! 2.0) as `$STRATA_FUSE_PROGRAM`, on a private store under the scratch dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fixtures::images::{DEMO_TAG, ImageFormat, build_demo_image};

use crate::impls::{Impl, UringParam};

/// Row name of the launcher workload.
pub const NAME: &str = "strata run --rm demo true";

/// The release `strata` binary built next to this one (`cargo build --release
/// --workspace` or `-p launcher` puts both in the same dir).
pub fn strata_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benches executable")?;
    let dir = exe
        .parent()
        .with_context(|| format!("{} has no parent dir", exe.display()))?;
    let strata = dir.join("strata");
    if !strata.is_file() {
        bail!(
            "the launcher and registry pull workloads need the strata binary at {} (build \
             it first: cargo build --release -p launcher; or leave them out with --only)",
            strata.display()
        );
    }
    Ok(strata)
}

/// A private store holding the demo image, and the `strata` binary to run it with.
pub struct Launcher {
    strata: PathBuf,
    store: PathBuf,
}

impl Launcher {
    /// Builds the demo image under `base` and imports it into the store `base/store`.
    pub fn prepare(strata: PathBuf, base: &Path) -> Result<Launcher> {
        let tar = base.join("demo.tar");
        build_demo_image(&tar, ImageFormat::DockerArchive)
            .with_context(|| format!("build the demo image at {}", tar.display()))?;
        let store = base.join("store");
        let out = Command::new(&strata)
            .arg("--root")
            .arg(&store)
            .args(["image", "import"])
            .arg(&tar)
            .args(["--tag", DEMO_TAG])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", strata.display()))?;
        if !out.status.success() {
            bail!(
                "strata image import {} failed ({}): {}",
                tar.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Launcher { strata, store })
    }

    /// Runs the demo container once through `imp` and returns the seconds from start to
    /// exit (the plain directory has no container to run).
    pub fn run_once(&self, imp: Impl) -> Result<f64> {
        let mut cmd = Command::new(&self.strata);
        cmd.arg("--root").arg(&self.store).args(["run", "--rm"]);
        match imp {
            Impl::Native => bail!("the plain directory runs no container"),
            Impl::StratafsPassthrough => bail!("strata run mounts stratafs with its default io="),
            Impl::Kernel => {
                cmd.args(["--driver", "kernel"]);
            }
            Impl::FuseOverlayfs | Impl::FuseOverlayfs2 => {
                cmd.args(["--driver", "fuse"])
                    .env("STRATA_FUSE_PROGRAM", imp.fuse_overlayfs_binary()?);
            }
            Impl::Stratafs | Impl::StratafsUring => {
                cmd.args(["--driver", "fuse"])
                    .env_remove("STRATA_FUSE_PROGRAM");
            }
        }
        // strata mounts stratafs with its defaults: io_uring where the kernel offers
        // it, so the parameter decides which column this is.
        let _uring = match imp {
            Impl::StratafsUring => Some(UringParam::set(true)?),
            Impl::Stratafs if UringParam::available() => Some(UringParam::set(false)?),
            _ => None,
        };
        cmd.args([DEMO_TAG, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let start = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("run {}", self.strata.display()))?;
        let secs = start.elapsed().as_secs_f64();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!(
                "strata run ({}) failed ({}): {}",
                imp.name(),
                out.status,
                err.lines().last().unwrap_or("").trim()
            );
        }
        Ok(secs)
    }
}
