//! The registry pull workload: a multi-layer image, made here (seeded, so every run
//! pulls the same bytes), served by Debian's `docker-registry` on a loopback port
//! (plain HTTP) and pulled, each run into a fresh empty store with caches dropped, by
//! `strata pull` (download, verify, extract, register), `skopeo copy` to an OCI layout
//! (download and verify only) and `podman pull` where podman is installed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fixtures::images::{Compression, Entry, ImageFormat, ImageSpec, LayerSpec, write_image};
use fixtures::registry::{RegistryOptions, TestRegistry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Cell, NOT_INSTALLED, cell_text, drop_caches, median, sh};

/// Row name of the registry pull workload (what `--only` matches).
pub const NAME: &str = "registry pull";

/// Repository and tag the image is pushed to.
const REPO: &str = "bench/pull";
const TAG: &str = "v1";

/// The shape of the pulled image.
#[derive(Debug, Clone, Copy)]
pub struct PullSizes {
    /// gzip layers.
    pub layers: usize,
    /// Files of random bytes per layer.
    pub big_files: usize,
    /// Size of each of them.
    pub big_size: usize,
    /// Small text files per layer.
    pub small_files: usize,
}

impl PullSizes {
    /// Full run: 5 layers, 100 MiB of random bytes, 4000 small files.
    pub const FULL: PullSizes = PullSizes {
        layers: 5,
        big_files: 4,
        big_size: 5 << 20,
        small_files: 800,
    };
    /// `--quick`: 5 layers, 10 MiB of random bytes, 500 small files.
    pub const QUICK: PullSizes = PullSizes {
        layers: 5,
        big_files: 1,
        big_size: 2 << 20,
        small_files: 100,
    };
}

/// The pullers compared, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `strata pull`: download, verify, extract the layers, register the image.
    Strata,
    /// `skopeo copy docker://… oci:DIR`: download and verify only (the reference).
    Skopeo,
    /// `podman pull` into a private root: download, verify, extract.
    Podman,
}

impl Tool {
    /// All of them, in table order.
    pub const ALL: [Tool; 3] = [Tool::Strata, Tool::Skopeo, Tool::Podman];

    /// Column name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Strata => "strata pull",
            Tool::Skopeo => "skopeo copy (download only)",
            Tool::Podman => "podman pull",
        }
    }

    /// The program run (for messages).
    fn program(self) -> &'static str {
        match self {
            Tool::Strata => "strata",
            Tool::Skopeo => "skopeo",
            Tool::Podman => "podman",
        }
    }
}

/// Whether `program` is on `$PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// The image in a running loopback registry, and where each run's fresh store goes.
pub struct PullBench {
    reg: TestRegistry,
    /// `127.0.0.1:PORT/REPO:TAG`.
    reference: String,
    /// Holds the runs' stores, the auth file and the HOME of the pullers.
    dir: PathBuf,
    /// Bytes a pull downloads: the layers, the config and the manifest.
    bytes: u64,
    /// Regular files in the image.
    files: usize,
}

/// The image: `sizes.layers` gzip layers, each with its own dir of random-byte files
/// and of small text files (a few lines each, 64 B to 4 KiB), seeded per layer.
fn image_spec(sizes: PullSizes) -> ImageSpec {
    let mut layers = Vec::new();
    for l in 0..sizes.layers {
        let mut rng = StdRng::seed_from_u64(0x5eed_0000 + l as u64);
        let top = format!("layer{l}");
        let mut entries = vec![
            Entry::Dir {
                path: top.clone(),
                mode: 0o755,
            },
            Entry::Dir {
                path: format!("{top}/big"),
                mode: 0o755,
            },
        ];
        for k in 0..sizes.big_files {
            let mut data = vec![0u8; sizes.big_size];
            rng.fill(&mut data[..]);
            entries.push(Entry::File {
                path: format!("{top}/big/{k}.bin"),
                mode: 0o644,
                data,
            });
        }
        const PER_DIR: usize = 50;
        for i in 0..sizes.small_files {
            let dir = format!("{top}/small/{:02}", i / PER_DIR);
            if i % PER_DIR == 0 {
                if i == 0 {
                    entries.push(Entry::Dir {
                        path: format!("{top}/small"),
                        mode: 0o755,
                    });
                }
                entries.push(Entry::Dir {
                    path: dir.clone(),
                    mode: 0o755,
                });
            }
            let len = rng.random_range(64..4096);
            let mut data = String::with_capacity(len + 64);
            let mut line = 0;
            while data.len() < len {
                let _ = writeln!(
                    data,
                    "layer {l} file {i} line {line}: {:016x}",
                    rng.random::<u64>()
                );
                line += 1;
            }
            data.truncate(len);
            entries.push(Entry::File {
                path: format!("{dir}/{i:04}.txt"),
                mode: 0o644,
                data: data.into_bytes(),
            });
        }
        layers.push(LayerSpec {
            entries,
            compression: Compression::Gzip,
            created_by: format!("bench layer {l}"),
        });
    }
    ImageSpec {
        layers,
        config: serde_json::json!({"Cmd": ["/bin/sh"]}),
        tag: Some(format!("{REPO}:{TAG}")),
    }
}

/// The total size of the files in `dir` (not recursive).
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let e = e.with_context(|| format!("read {}", dir.display()))?;
        total += e
            .metadata()
            .with_context(|| format!("stat {}", e.path().display()))?
            .len();
    }
    Ok(total)
}

/// Why `tool` cannot run here, if it cannot (`strata`: the binary, or why it is missing).
fn unavailable(tool: Tool, strata: &Result<PathBuf, String>) -> Option<Cell> {
    match tool {
        Tool::Strata => strata.as_ref().err().map(|e| Cell::Failed(e.clone())),
        Tool::Skopeo => None,
        Tool::Podman if on_path("podman") => None,
        Tool::Podman => Some(Cell::NotInstalled),
    }
}

/// The mount points at or below `dir`, from `/proc/self/mountinfo`.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect())
}

/// A mountinfo path with its `\NNN` octal escapes (space, tab, newline, backslash)
/// decoded.
fn unescape_mount_path(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The last line of a failed command's stderr (or stdout), for a table cell.
fn last_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let text = if err.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        err
    };
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

impl PullBench {
    /// Writes the image as an OCI layout under `base/pull`, starts the registry and
    /// copies the image in with skopeo.
    pub fn prepare(base: &Path, sizes: PullSizes) -> Result<PullBench> {
        if !TestRegistry::available() {
            bail!(
                "needs {} (package docker-registry; scripts/deps installs it)",
                fixtures::registry::DOCKER_REGISTRY
            );
        }
        if !on_path("skopeo") {
            bail!("needs skopeo (scripts/deps installs it)");
        }
        let dir = base.join("pull");
        let layout = dir.join("layout");
        write_image(&image_spec(sizes), &layout, ImageFormat::OciLayout)
            .with_context(|| format!("write the image at {}", layout.display()))?;
        let bytes = dir_bytes(&layout.join("blobs/sha256"))?;
        let files = sizes.layers * (sizes.big_files + sizes.small_files);
        let reg = TestRegistry::start(&RegistryOptions::default()).context("start the registry")?;
        let reference = format!("{}/{REPO}:{TAG}", reg.addr);
        let out = Command::new("skopeo")
            .args(["copy", "--quiet"])
            .args(reg.skopeo_flags("dest"))
            .arg(format!("oci:{}:{TAG}", layout.display()))
            .arg(format!("docker://{reference}"))
            .stdin(Stdio::null())
            .output()
            .context("run skopeo")?;
        if !out.status.success() {
            bail!(
                "skopeo copy of the image into the registry failed ({}): {}",
                out.status,
                last_line(&out)
            );
        }
        // The registry has its own copy now.
        std::fs::remove_dir_all(&layout).with_context(|| format!("remove {}", layout.display()))?;
        std::fs::create_dir_all(dir.join("home"))
            .with_context(|| format!("mkdir {}", dir.join("home").display()))?;
        // An empty auth file: podman refuses a `$REGISTRY_AUTH_FILE` that is missing.
        std::fs::write(dir.join("auth.json"), "{\"auths\":{}}\n")
            .with_context(|| format!("write {}", dir.join("auth.json").display()))?;
        Ok(PullBench {
            reg,
            reference,
            dir,
            bytes,
            files,
        })
    }

    /// Pulls the image once with `tool` into a fresh empty store, caches dropped
    /// first, and returns the seconds from start to exit.
    fn pull_once(&self, tool: Tool, strata: &Path) -> Result<f64> {
        let run = self.dir.join("run");
        self.clean()?;
        std::fs::create_dir_all(&run).with_context(|| format!("mkdir {}", run.display()))?;
        let mut cmd = match tool {
            Tool::Strata => {
                let mut c = Command::new(strata);
                c.arg("--root").arg(run.join("store")).args([
                    "pull",
                    "-q",
                    "--tls-verify=false",
                    &self.reference,
                ]);
                c
            }
            Tool::Skopeo => {
                let mut c = Command::new("skopeo");
                c.args(["copy", "--quiet"])
                    .args(self.reg.skopeo_flags("src"))
                    .arg(format!("docker://{}", self.reference))
                    .arg(format!("oci:{}:x", run.join("oci").display()));
                c
            }
            Tool::Podman => {
                let mut c = Command::new("podman");
                c.arg("--root")
                    .arg(run.join("root"))
                    .arg("--runroot")
                    .arg(run.join("runroot"))
                    .args(["pull", "-q", "--tls-verify=false"])
                    .arg(format!("docker://{}", self.reference));
                c
            }
        };
        // No credentials or client config of the machine's: anonymous pulls, alike.
        cmd.env("REGISTRY_AUTH_FILE", self.dir.join("auth.json"))
            .env("HOME", self.dir.join("home"))
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::null());
        drop_caches();
        let start = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("run {}", tool.program()))?;
        let secs = start.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "{} failed ({}): {}",
                tool.program(),
                out.status,
                last_line(&out)
            );
        }
        Ok(secs)
    }

    /// Removes the last run's store, unmounting what is mounted in it first (podman's
    /// overlay driver leaves its `overlay` dir bind-mounted on itself).
    fn clean(&self) -> Result<()> {
        let run = self.dir.join("run");
        if !run.exists() {
            return Ok(());
        }
        let mut mounts = mounts_under(&run)?;
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            sh(Command::new("umount").arg(&m))?;
        }
        sh(Command::new("rm").arg("-rf").arg(&run))
    }
}

/// The measured row: a cell per tool, and what the image holds.
pub struct PullRow {
    cells: Vec<(Tool, Cell)>,
    sizes: PullSizes,
    /// Bytes a pull downloads, once the set-up got that far.
    bytes: Option<u64>,
    files: usize,
}

/// Sets the image and the registry up under `base` and times `runs` cold pulls per
/// tool, interleaved (run 1 of every tool, then run 2, ...). Never fails: a set-up
/// failure fails every cell, a failed pull its tool's cell, with the reason.
pub fn measure(
    strata: Result<PathBuf, String>,
    base: &Path,
    sizes: PullSizes,
    runs: usize,
) -> PullRow {
    let label = format!("{NAME} (cold)");
    let start = Instant::now();
    let bench = match PullBench::prepare(base, sizes) {
        Ok(b) => b,
        Err(e) => {
            let why = format!("set-up: {e:#}");
            eprintln!("  {label}: {why}");
            return PullRow {
                cells: Tool::ALL
                    .iter()
                    .map(|&t| (t, Cell::Failed(why.clone())))
                    .collect(),
                sizes,
                bytes: None,
                files: 0,
            };
        }
    };
    eprintln!(
        "  {NAME} set-up: done in {:.1} s ({} at {})",
        start.elapsed().as_secs_f64(),
        bench.reference,
        bench.reg.storage.display()
    );
    let start = Instant::now();
    let mut times: Vec<(Tool, Vec<f64>, Option<String>)> = Vec::new();
    let mut cells: Vec<(Tool, Cell)> = Vec::new();
    for tool in Tool::ALL {
        match unavailable(tool, &strata) {
            Some(cell) => {
                let why = match &cell {
                    Cell::NotInstalled => format!("{} is not installed", tool.program()),
                    Cell::Failed(e) => e.clone(),
                    _ => String::new(),
                };
                eprintln!("  {label}: the {} column is skipped: {why}", tool.name());
                cells.push((tool, cell));
            }
            None => times.push((tool, Vec::new(), None)),
        }
    }
    let strata_bin = strata.as_deref().unwrap_or(Path::new("strata"));
    for _ in 0..runs {
        for (tool, ts, failed) in &mut times {
            if failed.is_some() {
                continue;
            }
            match bench.pull_once(*tool, strata_bin) {
                Ok(t) => ts.push(t),
                Err(e) => {
                    let e = format!("{e:#}");
                    eprintln!("  {label} with {}: {e}", tool.name());
                    *failed = Some(e);
                }
            }
        }
    }
    if let Err(e) = bench.clean() {
        eprintln!("  {label}: cleaning up: {e:#}");
    }
    for (tool, ts, failed) in times {
        let cell = match failed {
            Some(e) => Cell::Failed(e),
            None => median(ts).into(),
        };
        cells.push((tool, cell));
    }
    cells.sort_by_key(|(t, _)| Tool::ALL.iter().position(|a| a == t));
    eprintln!("  {label}: done in {:.1} s", start.elapsed().as_secs_f64());
    PullRow {
        cells,
        sizes,
        bytes: Some(bench.bytes),
        files: bench.files,
    }
}

/// The row as its own Markdown table, with the notes that say what each tool does.
pub fn render(row: &PullRow, runs: usize) -> String {
    let mut s = String::new();
    let mb = |b: u64| b as f64 / 1e6;
    let image = match row.bytes {
        Some(b) => format!(
            "{} gzip layers, {:.1} MB to download, {} files ({} of {} MiB random bytes)",
            row.sizes.layers,
            mb(b),
            row.files,
            row.sizes.layers * row.sizes.big_files,
            row.sizes.big_size >> 20
        ),
        None => format!("{} gzip layers", row.sizes.layers),
    };
    let _ = writeln!(
        s,
        "\nRegistry pull from a loopback `docker-registry` (plain HTTP), cold: median seconds \
         of {runs} runs ({image}; {}); (x) = ratio to skopeo; MB/s = downloaded bytes \
         (10^6) per second\n",
        crate::machine()
    );
    let _ = write!(s, "| workload |");
    for (tool, _) in &row.cells {
        let _ = write!(s, " {} |", tool.name());
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(row.cells.len()));
    let skopeo = row
        .cells
        .iter()
        .find(|(t, _)| *t == Tool::Skopeo)
        .and_then(|(_, c)| c.secs())
        .filter(|t| *t > 0.0);
    let _ = write!(s, "| {} |", cell_text(&format!("{NAME} (cold)")));
    for (_, cell) in &row.cells {
        match cell {
            Cell::Secs(t) => {
                let _ = write!(s, " {t:.3}");
                if let Some(k) = skopeo {
                    let _ = write!(s, " ({:.2}x)", t / k);
                }
                if let Some(b) = row.bytes.filter(|_| *t > 0.0) {
                    let _ = write!(s, ", {:.0} MB/s", mb(b) / t);
                }
                let _ = write!(s, " |");
            }
            Cell::NotApplicable => {
                let _ = write!(s, " n/a |");
            }
            Cell::NotInstalled => {
                let _ = write!(s, " {NOT_INSTALLED} |");
            }
            Cell::Failed(e) => {
                let short: String = e.chars().take(60).collect();
                let _ = write!(s, " failed: {} |", short.replace('|', "/"));
            }
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "\nEach run pulls `{REPO}:{TAG}` into a fresh empty store after `sync` and dropping \
         the page cache (the registry's files included); run by run, every column ran once \
         before the next run began. `strata pull -q --tls-verify=false` downloads the layers \
         in parallel, verifies them, extracts them and registers the image; `skopeo copy \
         --src-tls-verify=false docker://… oci:DIR` only downloads and verifies the blobs into \
         an OCI layout (no extraction), so it is the floor, not a peer; `podman pull` (own \
         `--root`/`--runroot`) extracts like strata. Times are start to exit, each tool's own \
         fsyncs included, no `sync` after."
    );
    s
}
