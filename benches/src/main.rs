//! Runs the same workloads on stratafs, kernel overlayfs, fuse-overlayfs (1.10 and 2.0)
//! and the plain directory, over the same deterministic layers, and prints one table: the
//! median seconds of several runs and each one's ratio to kernel overlayfs, measured in
//! the same run, plus the FUSE daemons' peak memory. The runs are interleaved: run 1 on
//! every file system, then run 2 on every one, and so on, so a disk whose speed drifts
//! over minutes weighs on every column alike; each run starts at another column, so
//! none always runs first or last. Also writes the table as Markdown and a
//! chart of the ratios as SVG: `benches/results/latest.*` for a full run,
//! `target/bench-results/quick.*` for `--quick` (or `--out DIR`).
//!
//! `cargo run --release -p benches` (root) for the full sizes; `-- --quick` for a short
//! pass (what CI runs as a smoke test; it never asserts speed). The launcher workload
//! runs the release `strata` binary next to this one, and so does the registry pull row
//! (`strata pull` against `skopeo copy` and `podman pull` from a loopback registry, in a
//! table of its own: see `pull.rs`), and the OCI runtime row (`podman run --rm` with runc
//! and with the `strata-runtime` next to it, in a table of its own: see `engines.rs`).

mod chart;
mod cproject;
mod engines;
mod impls;
mod launch;
mod netbench;
mod pull;
mod requests;
mod soak;
mod workloads;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use fixtures::bench_trees::{self, BenchSizes};
use impls::{Impl, RunDirs};
use launch::Launcher;
use pull::PullSizes;
use requests::Requests;
use workloads::{Ctx, Warm, Workload};

#[derive(Parser)]
#[command(
    about = "stratafs vs kernel overlayfs vs fuse-overlayfs 1.10 and 2.0 vs native, side by side"
)]
struct Args {
    /// Small trees and fewer runs (a smoke pass).
    #[arg(long)]
    quick: bool,
    /// Runs per implementation and workload (median reported; default 5, 1 with `--quick`).
    #[arg(long)]
    runs: Option<usize>,
    /// Only workloads whose name contains this, or one of these comma-separated names
    /// ("memory" for the daemons' memory).
    #[arg(long)]
    only: Option<String>,
    /// Where to build the trees (same disk as the layers you care about).
    #[arg(long, default_value = "/var/tmp")]
    scratch: PathBuf,
    /// Where to write the table and the chart (default: `benches/results/` for a full
    /// run, `bench-results/` in the target dir for `--quick`, outside the source tree).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of the table: the soak (8 writers + 8 readers of random operations) for
    /// this many seconds on stratafs, replayed on kernel overlayfs, trees compared.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<u64>,
    /// The soak's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "__stratafs") {
        let mut a = vec![std::ffi::OsString::from("stratafs")];
        a.extend(argv.into_iter().skip(2));
        return stratafs::cli::main(a);
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benches: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One measurement in the table.
enum Cell {
    /// Median seconds.
    Secs(f64),
    /// The workload does not apply to this implementation.
    NotApplicable,
    /// The implementation is not installed here.
    NotInstalled,
    /// It could not run: why.
    Failed(String),
}

impl Cell {
    fn secs(&self) -> Option<f64> {
        match self {
            Cell::Secs(t) => Some(*t),
            _ => None,
        }
    }
}

impl From<Result<f64>> for Cell {
    fn from(r: Result<f64>) -> Cell {
        match r {
            Ok(t) => Cell::Secs(t),
            Err(e) => Cell::Failed(format!("{e:#}")),
        }
    }
}

/// One table row: the label and a cell per implementation.
type Row = (String, BTreeMap<&'static str, Cell>);

/// One workload's requests served per stratafs column, in its last timed pass.
type Served = (String, BTreeMap<&'static str, Requests>);

/// Peak RSS (KiB) of one FUSE daemon: right after mounting, after a stat walk of the wide
/// dir, after a stat walk of the small-file tree, after a stat walk of the big walk tree
/// (1M files at full size).
type Memory = [u64; 4];

/// What every measurement shares: the scratch dir, the layers and the sizes.
struct Setup<'a> {
    base: &'a Path,
    lowers: &'a [PathBuf],
    flat: &'a Path,
    ctx: &'a Ctx,
}

fn sh(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

fn drop_caches() {
    nix::unistd::sync();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn fresh_dirs(
    base: &Path,
    lowers: &[PathBuf],
    flat_src: &Path,
    copy_flat: bool,
) -> Result<RunDirs> {
    let run = base.join("run");
    // A FUSE daemon may still be tidying its work dir after the last unmount: retry.
    let mut tries = 0;
    while run.exists() {
        match sh(Command::new("rm").arg("-rf").arg(&run)) {
            Err(e) if tries >= 20 => return Err(e),
            Err(_) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(()) => {}
        }
    }
    for d in ["upper", "work", "mnt"] {
        std::fs::create_dir_all(run.join(d))
            .with_context(|| format!("mkdir {}", run.join(d).display()))?;
    }
    let flat = if copy_flat {
        let f = run.join("flat");
        sh(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(flat_src)
            .arg(&f))?;
        f
    } else {
        flat_src.to_path_buf()
    };
    Ok(RunDirs {
        lowers: lowers.to_vec(),
        flat,
        upper: run.join("upper"),
        work: run.join("work"),
        mnt: run.join("mnt"),
    })
}

fn median(mut times: Vec<f64>) -> Result<f64> {
    if times.is_empty() {
        bail!("no runs");
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// Times one pass of one (workload, implementation) on a fresh upper, cold (caches
/// dropped) or warm (a pass before the timed one); and, for stratafs, the requests its
/// daemon served during the timed pass.
fn measure_once(
    w: &Workload,
    imp: Impl,
    set: &Setup<'_>,
    warm: bool,
) -> Result<(f64, Option<Requests>)> {
    let dirs = fresh_dirs(
        set.base,
        set.lowers,
        set.flat,
        w.writes && imp == Impl::Native,
    )?;
    let m = impls::mount(imp, &dirs)?;
    if warm {
        match w.warm {
            Warm::After(first) => first(&m.root, set.ctx)?,
            Warm::Rerun | Warm::No => (w.run)(&m.root, set.ctx)?,
        }
    } else {
        drop_caches();
    }
    let before = m.requests()?;
    let t = Instant::now();
    (w.run)(&m.root, set.ctx)?;
    let secs = t.elapsed().as_secs_f64();
    let served = match (before, m.requests()?) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    Ok((secs, served))
}

/// Times `strata run --rm demo true` through `imp` once, cold or warm (a run first).
fn measure_launch_once(l: &Launcher, imp: Impl, warm: bool) -> Result<f64> {
    if warm {
        l.run_once(imp)?;
    } else {
        drop_caches();
    }
    l.run_once(imp)
}

/// What one column of one row has gathered so far.
#[derive(Default)]
struct Series {
    times: Vec<f64>,
    served: Option<Requests>,
    failed: Option<String>,
}

/// Runs one row: for each run index, one pass on every implementation (interleaved,
/// so drift of the disk over minutes hits every column alike; each run starts at
/// another column, see `run_order`), then each one's median. `pass` times one pass;
/// `skip` says which cells are not timed.
fn measure_row(
    label: &str,
    runs: usize,
    skip: impl Fn(Impl) -> Option<Cell>,
    mut pass: impl FnMut(Impl) -> Result<(f64, Option<Requests>)>,
) -> (
    BTreeMap<&'static str, Cell>,
    BTreeMap<&'static str, Requests>,
) {
    let start = Instant::now();
    let mut series: BTreeMap<&'static str, Series> = BTreeMap::new();
    for run in 0..runs {
        for imp in run_order(run, runs) {
            if skip(imp).is_some() {
                continue;
            }
            let s = series.entry(imp.name()).or_default();
            if s.failed.is_some() {
                continue;
            }
            match pass(imp) {
                Ok((t, r)) => {
                    s.times.push(t);
                    if r.is_some() {
                        s.served = r;
                    }
                }
                Err(e) => s.failed = Some(format!("{e:#}")),
            }
        }
    }
    let mut cols = BTreeMap::new();
    let mut requests = BTreeMap::new();
    for imp in Impl::ALL {
        let cell = match skip(imp) {
            Some(cell) => cell,
            None => {
                let s = series.remove(imp.name()).unwrap_or_default();
                if let Some(r) = s.served {
                    requests.insert(imp.name(), r);
                }
                match s.failed {
                    Some(e) => Cell::Failed(e),
                    None => median(s.times).into(),
                }
            }
        };
        if let Cell::Failed(e) = &cell {
            eprintln!("  {label} on {}: {e}", imp.name());
        }
        cols.insert(imp.name(), cell);
    }
    eprintln!("  {label}: done in {:.1} s", start.elapsed().as_secs_f64());
    (cols, requests)
}

/// The implementations in the order run `run` of `runs` passes them: table order,
/// rotated by an even share of the columns per run, so no column always comes first,
/// right after the page cache was dropped for the previous one, or last.
fn run_order(run: usize, runs: usize) -> impl Iterator<Item = Impl> {
    let n = Impl::ALL.len();
    let start = run * n / runs.max(1);
    (0..n).map(move |i| Impl::ALL[(start + i) % n])
}

/// The cell of an implementation that cannot run here, if it cannot.
fn unavailable_cell(imp: Impl) -> Option<Cell> {
    if imp.not_installed() {
        return Some(Cell::NotInstalled);
    }
    imp.unavailable().map(Cell::Failed)
}

/// The FUSE daemon's peak RSS after mounting and after a stat walk of `wide`, of
/// `tree` and of the big walk tree (`walk`, a lower of its own), each walk on a fresh
/// mount with caches dropped first.
fn measure_memory(imp: Impl, set: &Setup<'_>, walk_layer: &Path) -> Result<Memory> {
    let mut out = [0; 4];
    let walk_lowers = [walk_layer.to_path_buf()];
    for (i, sub) in ["wide", "tree", "walk"].into_iter().enumerate() {
        let lowers = if sub == "walk" {
            &walk_lowers[..]
        } else {
            set.lowers
        };
        let dirs = fresh_dirs(set.base, lowers, set.flat, false)?;
        let m = impls::mount(imp, &dirs)?;
        let pid = m
            .daemon
            .with_context(|| format!("no {} daemon found for {}", imp.name(), m.root.display()))?;
        let rss = || {
            impls::peak_rss_kib(pid)
                .with_context(|| format!("no VmHWM in /proc/{pid}/status ({})", imp.name()))
        };
        if i == 0 {
            out[0] = rss()?;
        }
        drop_caches();
        workloads::stat_walk(&m.root.join(sub))?;
        out[i + 1] = rss()?;
    }
    Ok(out)
}

/// The soak alone: its report to stdout and to `soak.md` in the results dir.
fn run_soak(args: &Args, seconds: u64) -> Result<()> {
    std::fs::create_dir_all(&args.scratch)
        .with_context(|| format!("mkdir {}", args.scratch.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("strata-soak")
        .tempdir_in(&args.scratch)
        .with_context(|| format!("make a scratch dir in {}", args.scratch.display()))?;
    let report = soak::run(
        tmp.path(),
        &soak::SoakArgs {
            duration: std::time::Duration::from_secs(seconds),
            seed: args.seed,
        },
    )?;
    println!("{report}");
    let out = match &args.out {
        Some(o) => o.clone(),
        None => quick_results_dir()?,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let path = out.join("soak.md");
    std::fs::write(&path, report).with_context(|| format!("write {}", path.display()))?;
    eprintln!("soak report written to {}", path.display());
    Ok(())
}

fn run(args: Args) -> Result<()> {
    if let Some(seconds) = args.soak {
        return run_soak(&args, seconds);
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root (kernel overlayfs mounts, dropping caches)");
    }
    if std::env::var("CI").as_deref() == Ok("true")
        && let Err(e) = impls::fuse_overlayfs2()
    {
        bail!("CI=true and the fuse-overlayfs 2.0 column cannot run: {e:#}");
    }
    let selected = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.split(',').any(|o| name.contains(o)))
    };
    let strata = if selected(launch::NAME) {
        Some(launch::strata_binary()?)
    } else {
        None
    };
    let sizes = if args.quick {
        BenchSizes::QUICK
    } else {
        BenchSizes::FULL
    };
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    std::fs::create_dir_all(&args.scratch)
        .with_context(|| format!("mkdir {}", args.scratch.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("strata-bench")
        .tempdir_in(&args.scratch)
        .with_context(|| format!("make a scratch dir in {}", args.scratch.display()))?;
    let base = tmp.path();
    let (bottom, top, flat) = (base.join("lower0"), base.join("lower1"), base.join("flat"));
    let start = Instant::now();
    let archive = base.join("untar.tar");
    let walk_layer = base.join("walk-layer");
    // The trees, for the workloads and the memory table (the launcher and pull rows
    // read none).
    if workloads::ALL.iter().any(|w| selected(w.name)) || selected("memory") {
        eprintln!("building trees under {} ...", base.display());
        bench_trees::write_lower(&bottom, sizes)?;
        bench_trees::write_top(&top, sizes)?;
        cproject::generate(&top, sizes.c_files)?;
        if workloads::ALL
            .iter()
            .any(|w| selected(w.name) && w.name == "git status")
        {
            workloads::make_checkout(&bottom)?;
        }
        if selected("memory") {
            bench_trees::write_walk(&walk_layer, sizes)?;
        }
        std::fs::write(&archive, workloads::untar_archive(&sizes)?)
            .with_context(|| format!("write {}", archive.display()))?;
        sh(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&bottom)
            .arg(&flat))?;
        sh(Command::new("cp")
            .args(["-a", "--reflink=auto", "-T"])
            .arg(&top)
            .arg(&flat))?;
        if flat.join(workloads::CHECKOUT).exists() {
            // The copy's files have new inode numbers and ctimes: refresh its index once,
            // as a clone would have it.
            workloads::refresh_checkout(&flat)?;
        }
    }
    let launcher = match strata {
        Some(s) => Some(Launcher::prepare(s, base)?),
        None => None,
    };
    eprintln!("  set-up: done in {:.1} s", start.elapsed().as_secs_f64());
    let lowers = vec![top.clone(), bottom.clone()];
    let setup = Setup {
        base,
        lowers: &lowers,
        flat: &flat,
        ctx: &Ctx { sizes, archive },
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut served: Vec<Served> = Vec::new();
    for w in workloads::ALL {
        if !selected(w.name) {
            continue;
        }
        let passes: &[bool] = match w.warm {
            Warm::No => &[false],
            Warm::Rerun | Warm::After(_) => &[false, true],
        };
        for &warm in passes {
            let label = format!("{} ({})", w.name, if warm { "warm" } else { "cold" });
            let (cols, requests) = measure_row(&label, runs, unavailable_cell, |imp| {
                measure_once(w, imp, &setup, warm)
            });
            served.push((label.clone(), requests));
            rows.push((label, cols));
        }
    }
    if let Some(l) = &launcher {
        for warm in [false, true] {
            let label = format!("{} ({})", launch::NAME, if warm { "warm" } else { "cold" });
            let skip = |imp: Impl| match imp {
                Impl::Native | Impl::StratafsPassthrough => Some(Cell::NotApplicable),
                _ => unavailable_cell(imp),
            };
            let (cols, _) = measure_row(&label, runs, skip, |imp| {
                measure_launch_once(l, imp, warm).map(|t| (t, None))
            });
            rows.push((label, cols));
        }
    }
    let mut pull_table = String::new();
    if selected(pull::NAME) {
        let strata = launch::strata_binary().map_err(|e| format!("{e:#}"));
        let sizes = if args.quick {
            PullSizes::QUICK
        } else {
            PullSizes::FULL
        };
        pull_table = pull::render(&pull::measure(strata, base, sizes, runs), runs);
    }
    let mut engines_table = String::new();
    if selected(engines::NAME) {
        let strata_runtime = launch::strata_binary()
            .map(|s| s.with_file_name("strata-runtime"))
            .map_err(|e| format!("{e:#}"))
            .and_then(|p| {
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!(
                        "{} is not built (cargo build --release -p launcher)",
                        p.display()
                    ))
                }
            });
        engines_table = engines::render(&engines::measure(strata_runtime, base, runs), runs);
    }
    let mut net_table = String::new();
    if selected(netbench::NAME) {
        let strata = launch::strata_binary().map_err(|e| format!("{e:#}"));
        net_table = netbench::render(&netbench::measure(strata, base, runs), runs, &machine());
    }
    let mut memory: Vec<(&'static str, Result<Memory, String>)> = Vec::new();
    if selected("memory") {
        for imp in [
            Impl::FuseOverlayfs,
            Impl::FuseOverlayfs2,
            Impl::Stratafs,
            Impl::StratafsUring,
        ] {
            let m = match imp.unavailable() {
                Some(_) if imp.not_installed() => Err(NOT_INSTALLED.to_string()),
                Some(why) => Err(why),
                None => measure_memory(imp, &setup, &walk_layer).map_err(|e| format!("{e:#}")),
            };
            if let Err(e) = &m {
                eprintln!("  daemon memory of {}: {e}", imp.name());
            }
            memory.push((imp.name(), m));
        }
        eprintln!("  daemon memory: done");
    }

    let stem = if args.quick { "quick" } else { "latest" };
    let mut table = render(&rows, &memory, &sizes, runs, stem);
    table.push_str(&render_requests(&rows, &served));
    table.push_str(&pull_table);
    table.push_str(&engines_table);
    table.push_str(&net_table);
    println!("{table}");
    let out = match args.out {
        Some(dir) => dir,
        None if args.quick => quick_results_dir()?,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("results"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let md = out.join(format!("{stem}.md"));
    std::fs::write(&md, &table).with_context(|| format!("write {}", md.display()))?;
    if rows.is_empty() {
        eprintln!(
            "table written to {} (no chart: no workload row)",
            md.display()
        );
    } else {
        let svg = out.join(format!("{stem}.svg"));
        write_chart(&svg, &rows, &sizes, runs)?;
        eprintln!(
            "table written to {}, chart to {}",
            md.display(),
            svg.display()
        );
    }
    Ok(())
}

/// What a column that is not installed says.
const NOT_INSTALLED: &str = "n/a (not installed)";

/// Where `--quick` writes its table and chart: `bench-results/` in the target dir (this
/// executable's profile dir's parent), so the smoke pass leaves the source tree as it was.
fn quick_results_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benches executable")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("{} has no target dir above it", exe.display()))?;
    Ok(target.join("bench-results"))
}

/// The machine: kernel release and CPU count.
fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("kernel {}, {cpus} cpus", kernel.trim())
}

/// The sizes in words.
fn sizes_text(s: &BenchSizes) -> String {
    format!(
        "{} dirs x {} files, {}-entry dir, {} MiB file, untar {} files, create {} files, C project of {} files",
        s.dirs,
        s.files_per_dir,
        s.wide_entries,
        s.big_size >> 20,
        s.untar_files,
        s.create_files,
        s.c_files + 1
    )
}

/// The implementations drawn as bars (kernel overlayfs is the 1x line).
const CHART_SERIES: [Impl; 6] = [
    Impl::Native,
    Impl::FuseOverlayfs,
    Impl::FuseOverlayfs2,
    Impl::Stratafs,
    Impl::StratafsUring,
    Impl::StratafsPassthrough,
];

fn write_chart(path: &Path, rows: &[Row], sizes: &BenchSizes, runs: usize) -> Result<()> {
    let chart_rows: Vec<chart::ChartRow> = rows
        .iter()
        .map(|(label, cols)| {
            let kernel = cols.get("kernel").and_then(Cell::secs).filter(|k| *k > 0.0);
            chart::ChartRow {
                label: label.clone(),
                ratios: CHART_SERIES
                    .iter()
                    .map(|imp| Some(cols.get(imp.name())?.secs()? / kernel?))
                    .collect(),
            }
        })
        .collect();
    let names: Vec<&str> = CHART_SERIES.iter().map(|i| i.name()).collect();
    chart::write_svg(
        path,
        "Time relative to kernel overlayfs (median of each workload)",
        &format!(
            "{}; {}; median of {runs} runs",
            machine(),
            sizes_text(sizes)
        ),
        &names,
        &chart_rows,
    )
}

/// Text for a Markdown table cell (a `|` escaped).
fn cell_text(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The fuse-overlayfs binaries in words, for the notes under the table.
fn fuse_overlayfs_text() -> String {
    let two = match impls::fuse_overlayfs2() {
        Ok(bin) => format!("`{}`", bin.display()),
        Err(_) => NOT_INSTALLED.to_string(),
    };
    format!(
        "`fuse-overlayfs 1.10` is Debian's `{}` (C), `fuse-overlayfs 2.0` the Rust rewrite \
         ({two}).",
        impls::FUSE_OVERLAYFS_1
    )
}

/// The table of seconds per workload and implementation, its notes and the chart's link.
fn render_times(rows: &[Row], sizes: &BenchSizes, runs: usize, stem: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Median seconds of {runs} runs ({}; {}); (x) = ratio to kernel overlayfs\n",
        sizes_text(sizes),
        machine()
    );
    let _ = write!(s, "| workload |");
    for imp in Impl::ALL {
        let _ = write!(s, " {} |", imp.name());
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(Impl::ALL.len()));
    for (label, cols) in rows {
        let kernel = cols.get("kernel").and_then(Cell::secs);
        let _ = write!(s, "| {} |", cell_text(label));
        for imp in Impl::ALL {
            match cols.get(imp.name()) {
                Some(Cell::Secs(t)) => match kernel {
                    Some(k) if k > 0.0 => {
                        let _ = write!(s, " {t:.4} ({:.2}x) |", t / k);
                    }
                    _ => {
                        let _ = write!(s, " {t:.4} |");
                    }
                },
                Some(Cell::NotApplicable) => {
                    let _ = write!(s, " n/a |");
                }
                Some(Cell::NotInstalled) => {
                    let _ = write!(s, " {NOT_INSTALLED} |");
                }
                Some(Cell::Failed(e)) => {
                    let short: String = e.chars().take(60).collect();
                    let _ = write!(s, " failed: {} |", short.replace('|', "/"));
                }
                None => {
                    let _ = write!(s, " - |");
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\n`stratafs` serves requests on `/dev/fuse` (`noio_uring`), as on a stock kernel; \
         `stratafs io_uring` through per-CPU FUSE-over-io_uring queues, the bench turning the \
         fuse module's `enable_uring` on for its mounts (kernel 6.14+, off by default); \
         `stratafs io=passthrough-all` on `/dev/fuse` with files of 64 KiB and more passed \
         through. {} Each cell is the median of its runs; run by run, every column \
         ran once before the next run began.",
        fuse_overlayfs_text()
    );
    if rows
        .iter()
        .any(|(label, _)| label.starts_with(launch::NAME))
    {
        let _ = writeln!(
            s,
            "\nThe launcher row runs `strata run --rm demo true` with `--driver kernel`, \
         `--driver fuse` (stratafs, the fuse module's `enable_uring` off, then on for the \
         io_uring column) and `--driver fuse` with `STRATA_FUSE_PROGRAM` set to each \
         fuse-overlayfs binary."
        );
    }
    let _ = writeln!(s, "\n![time relative to kernel overlayfs]({stem}.svg)");
    s
}

fn render(
    rows: &[Row],
    memory: &[(&'static str, Result<Memory, String>)],
    sizes: &BenchSizes,
    runs: usize,
    stem: &str,
) -> String {
    // Only the pull row or the memory table selected: no empty table, no chart.
    let mut s = if rows.is_empty() {
        String::new()
    } else {
        render_times(rows, sizes, runs, stem)
    };
    if !memory.is_empty() {
        let _ = writeln!(
            s,
            "\nDaemon peak RSS (VmHWM, MiB; each walk lstats every entry, on a fresh mount, caches dropped):\n"
        );
        let _ = writeln!(
            s,
            "| daemon | after mount | after walking the {}-entry dir | after walking {} files in {} dirs | after walking {} files in {} dirs |",
            sizes.wide_entries,
            sizes.dirs * sizes.files_per_dir,
            sizes.dirs,
            sizes.walk_dirs * sizes.walk_files_per_dir,
            sizes.walk_dirs
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for (name, m) in memory {
            match m {
                Ok(m) => {
                    let mib = |k: u64| k as f64 / 1024.0;
                    let _ = writeln!(
                        s,
                        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
                        mib(m[0]),
                        mib(m[1]),
                        mib(m[2]),
                        mib(m[3])
                    );
                }
                Err(e) if e == NOT_INSTALLED => {
                    let _ = writeln!(s, "| {name} | {NOT_INSTALLED} | | | |");
                }
                Err(e) => {
                    let short: String = e.chars().take(80).collect();
                    let _ = writeln!(s, "| {name} | failed: {} | | | |", short.replace('|', "/"));
                }
            }
        }
    }
    s
}

/// The columns whose round trips are set against their time.
const REQUEST_COLUMNS: [Impl; 2] = [Impl::Stratafs, Impl::StratafsUring];

/// The round trips of each workload's timed pass on stratafs, and what each one costs
/// beyond kernel overlayfs's time: (stratafs - kernel) / round trips.
fn render_requests(rows: &[Row], served: &[Served]) -> String {
    let mut s = String::new();
    if served.iter().all(|(_, r)| r.is_empty()) {
        return s;
    }
    let _ = writeln!(
        s,
        "\nFUSE round trips per timed pass (counted by the daemon, `-o stats`), and the time \
         each adds: (stratafs - kernel overlayfs) / round trips:\n"
    );
    let _ = write!(s, "| workload | round trips | most frequent |");
    for imp in REQUEST_COLUMNS {
        let _ = write!(s, " us per round trip, {} |", imp.name());
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|---:|---|{}", "---:|".repeat(REQUEST_COLUMNS.len()));
    for (label, requests) in served {
        let Some(first) = requests.get(Impl::Stratafs.name()) else {
            continue;
        };
        let cols = rows.iter().find(|(l, _)| l == label).map(|(_, c)| c);
        let secs = |imp: Impl| cols.and_then(|c| c.get(imp.name())).and_then(Cell::secs);
        let _ = write!(
            s,
            "| {} | {} | {} |",
            cell_text(label),
            first.round_trips,
            first.most_frequent(3)
        );
        for imp in REQUEST_COLUMNS {
            let r = requests.get(imp.name()).map(|r| r.round_trips);
            match (secs(imp), secs(Impl::Kernel), r) {
                (Some(t), Some(k), Some(n)) if n > 0 => {
                    let _ = write!(s, " {:.1} |", (t - k) / n as f64 * 1e6);
                }
                _ => {
                    let _ = write!(s, " - |");
                }
            }
        }
        let _ = writeln!(s);
    }
    s
}
