//! The OCI runtime row: `podman run --rm demo true` (a container made, started, waited
//! for and deleted by podman and conmon through the runtime's command line) with runc
//! and with `strata-runtime`, runs interleaved, in a table of its own. What it weighs
//! is the runtime's share of a container's life: podman's own work is the same in both
//! columns.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fixtures::images::ImageFormat;

use crate::{Cell, NOT_INSTALLED, cell_text, median};

/// Row name of the workload (what `--only` matches).
pub const NAME: &str = "podman run";

/// The runtimes compared, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Debian's runc, the reference.
    Runc,
    /// This repo's `strata-runtime`.
    Strata,
}

impl Runtime {
    /// Every runtime, in table order.
    pub const ALL: [Runtime; 2] = [Runtime::Runc, Runtime::Strata];

    /// The column title.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Strata => "strata-runtime",
        }
    }
}

/// The measured row: one cell per runtime.
pub struct EngineRow {
    /// (runtime, median seconds or why not).
    pub cells: Vec<(Runtime, Cell)>,
}

/// A podman store of the bench's own (vfs, cgroupfs) holding the demo image.
struct PodmanStore {
    dir: tempfile::TempDir,
}

impl PodmanStore {
    fn prepare(base: &Path) -> Result<PodmanStore> {
        let dir = tempfile::Builder::new()
            .prefix("podman-bench")
            .tempdir_in(base)
            .with_context(|| format!("a scratch dir in {}", base.display()))?;
        let tar = dir.path().join("demo.tar");
        fixtures::images::build_demo_image(&tar, ImageFormat::DockerArchive)
            .context("build the demo image")?;
        let store = PodmanStore { dir };
        let tar = tar.to_str().context("a scratch path that is not UTF-8")?;
        store.podman(None, &["load", "-q", "-i", tar])?;
        Ok(store)
    }

    /// `podman ARGS` on this store with `runtime` (podman's default without one).
    fn podman(&self, runtime: Option<&Path>, args: &[&str]) -> Result<()> {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"]);
        if let Some(r) = runtime {
            cmd.arg("--runtime").arg(r);
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run podman")?;
        if !out.status.success() {
            bail!(
                "podman {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for PodmanStore {
    fn drop(&mut self) {
        let _ = self.podman(None, &["rm", "-a", "-f"]);
        let _ = self.podman(None, &["rmi", "-a", "-f"]);
    }
}

/// The binary of each runtime, or why it cannot run.
fn binary(rt: Runtime, strata_runtime: &Result<PathBuf, String>) -> Result<PathBuf, String> {
    match rt {
        Runtime::Runc => which("runc").ok_or_else(|| NOT_INSTALLED.to_string()),
        Runtime::Strata => strata_runtime.clone(),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Times `runs` rounds of `podman run --rm demo true`, one per runtime per round, after
/// one untimed run each (podman's first run sets up its store and network config).
pub fn measure(strata_runtime: Result<PathBuf, String>, base: &Path, runs: usize) -> EngineRow {
    let fail_all = |why: String| EngineRow {
        cells: Runtime::ALL
            .iter()
            .map(|&r| (r, Cell::Failed(why.clone())))
            .collect(),
    };
    if which("podman").is_none() || which("conmon").is_none() {
        return EngineRow {
            cells: Runtime::ALL
                .iter()
                .map(|&r| (r, Cell::NotInstalled))
                .collect(),
        };
    }
    let store = match PodmanStore::prepare(base) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("set-up: {e:#}")),
    };
    // podman asks for 1048576 open files and processes; a hard limit is raised only
    // with CAP_SYS_RESOURCE, which some hosts withhold: stay within this process's.
    let hard = |r| {
        nix::sys::resource::getrlimit(r)
            .map(|(_, h)| h.min(4096))
            .unwrap_or(1024)
    };
    use nix::sys::resource::Resource;
    let nofile = hard(Resource::RLIMIT_NOFILE);
    let nproc = hard(Resource::RLIMIT_NPROC);
    let (nofile, nproc) = (
        format!("nofile={nofile}:{nofile}"),
        format!("nproc={nproc}:{nproc}"),
    );
    let args = [
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        &nofile,
        "--ulimit",
        &nproc,
        "localhost/demo:latest",
        "true",
    ];
    let mut times: Vec<(Runtime, Result<Vec<f64>, String>)> = Runtime::ALL
        .iter()
        .map(|&r| (r, binary(r, &strata_runtime).map(|_| Vec::new())))
        .collect();
    for round in 0..=runs {
        for (rt, t) in times.iter_mut() {
            let Ok(list) = t else { continue };
            let bin = match binary(*rt, &strata_runtime) {
                Ok(b) => b,
                Err(e) => {
                    *t = Err(e);
                    continue;
                }
            };
            let start = Instant::now();
            match store.podman(Some(&bin), &args) {
                Ok(()) if round > 0 => list.push(start.elapsed().as_secs_f64()),
                Ok(()) => {}
                Err(e) => *t = Err(format!("{e:#}")),
            }
        }
    }
    let cells = times
        .into_iter()
        .map(|(rt, t)| {
            let cell = match t {
                Ok(list) => median(list).into(),
                Err(e) if e == NOT_INSTALLED => Cell::NotInstalled,
                Err(e) => Cell::Failed(e),
            };
            if let Cell::Failed(e) = &cell {
                eprintln!("  {NAME} with {}: {e}", rt.name());
            }
            (rt, cell)
        })
        .collect();
    eprintln!("  {NAME}: done");
    EngineRow { cells }
}

/// The row as its own Markdown table, ratios to runc.
pub fn render(row: &EngineRow, runs: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nOCI runtimes under podman (conmon, vfs storage, cgroupfs): `podman run --rm \
         --network none demo true`, median seconds of {runs} interleaved runs; (x) = ratio \
         to runc; {}\n",
        crate::machine()
    );
    let _ = write!(s, "| workload |");
    for (rt, _) in &row.cells {
        let _ = write!(s, " {} |", rt.name());
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(row.cells.len()));
    let runc = row
        .cells
        .iter()
        .find(|(r, _)| *r == Runtime::Runc)
        .and_then(|(_, c)| c.secs());
    let _ = write!(s, "| {NAME} --rm demo true |");
    for (_, cell) in &row.cells {
        let text = match cell {
            Cell::Secs(t) => match runc {
                Some(r) if r > 0.0 => format!("{t:.3} ({:.2}x)", t / r),
                _ => format!("{t:.3}"),
            },
            Cell::NotApplicable => "n/a".to_string(),
            Cell::NotInstalled => NOT_INSTALLED.to_string(),
            Cell::Failed(e) => format!("failed: {}", cell_text(e)),
        };
        let _ = write!(s, " {text} |");
    }
    let _ = writeln!(s);
    s
}
