//! Runs the same workloads on stratafs, kernel overlayfs, fuse-overlayfs and the plain
//! directory, over the same deterministic layers, and prints one table: the median
//! seconds of several runs and each one's ratio to kernel overlayfs, measured in the same
//! run. Also writes the table as Markdown under `benches/results/`.
//!
//! `cargo run --release -p benches` (root) for the full sizes; `-- --quick` for a short
//! pass (what CI runs as a smoke test; it never asserts speed).

mod impls;
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
use workloads::Workload;

#[derive(Parser)]
#[command(about = "stratafs vs kernel overlayfs vs fuse-overlayfs vs native, side by side")]
struct Args {
    /// Small trees and fewer runs (a smoke pass).
    #[arg(long)]
    quick: bool,
    /// Runs per implementation and workload (median reported).
    #[arg(long)]
    runs: Option<usize>,
    /// Only workloads whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Where to build the trees (same disk as the layers you care about).
    #[arg(long, default_value = "/var/tmp")]
    scratch: PathBuf,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "__stratafs") {
        let mut a = vec![std::ffi::OsString::from("stratafs")];
        a.extend(argv.into_iter().skip(2));
        return unionfs::cli::main(a);
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benches: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One table row: the label and, per implementation, median seconds or why it failed.
type Row = (String, BTreeMap<&'static str, Result<f64, String>>);

/// What every measurement shares: the scratch dir, the layers and the sizes.
struct Setup<'a> {
    base: &'a Path,
    lowers: &'a [PathBuf],
    flat: &'a Path,
    sizes: &'a BenchSizes,
    runs: usize,
}

fn sh(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

fn drop_caches() {
    // SAFETY: sync has no failure mode.
    unsafe { libc::sync() };
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn fresh_dirs(
    base: &Path,
    lowers: &[PathBuf],
    flat_src: &Path,
    copy_flat: bool,
) -> Result<RunDirs> {
    let run = base.join("run");
    if run.exists() {
        sh(Command::new("rm").arg("-rf").arg(&run))?;
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

/// Times one (workload, implementation): median seconds over `runs`, cold (caches
/// dropped) and, where asked, warm (a pass before the timed one). Also the daemon's
/// peak RSS after the run.
fn measure(w: &Workload, imp: Impl, set: &Setup<'_>, warm: bool) -> Result<(f64, Option<u64>)> {
    let (sizes, runs) = (set.sizes, set.runs);
    let mut times = Vec::with_capacity(runs);
    let mut rss = None;
    for _ in 0..runs {
        let dirs = fresh_dirs(
            set.base,
            set.lowers,
            set.flat,
            w.writes && imp == Impl::Native,
        )?;
        let m = impls::mount(imp, &dirs)?;
        if warm {
            (w.run)(&m.root, sizes)?;
        } else {
            drop_caches();
        }
        let t = Instant::now();
        (w.run)(&m.root, sizes)?;
        times.push(t.elapsed().as_secs_f64());
        if let Some(pid) = m.daemon {
            rss = impls::peak_rss_kib(pid);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times[times.len() / 2], rss))
}

fn run(args: Args) -> Result<()> {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (kernel overlayfs mounts, dropping caches)");
    }
    let sizes = if args.quick {
        BenchSizes::QUICK
    } else {
        BenchSizes::FULL
    };
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 5 });
    std::fs::create_dir_all(&args.scratch)
        .with_context(|| format!("mkdir {}", args.scratch.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("strata-bench")
        .tempdir_in(&args.scratch)
        .context("scratch dir")?;
    let base = tmp.path();
    let (bottom, top, flat) = (base.join("lower0"), base.join("lower1"), base.join("flat"));
    eprintln!("building trees under {} ...", base.display());
    bench_trees::write_lower(&bottom, sizes)?;
    bench_trees::write_top(&top, sizes)?;
    sh(Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&bottom)
        .arg(&flat))?;
    sh(Command::new("cp")
        .args(["-a", "--reflink=auto", "-T"])
        .arg(&top)
        .arg(&flat))?;
    let lowers = vec![top.clone(), bottom.clone()];
    let setup = Setup {
        base,
        lowers: &lowers,
        flat: &flat,
        sizes: &sizes,
        runs,
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut rss: BTreeMap<&'static str, u64> = BTreeMap::new();
    for w in workloads::ALL {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !w.name.contains(o.as_str()))
        {
            continue;
        }
        let passes: &[bool] = if w.warm_too { &[false, true] } else { &[false] };
        for &warm in passes {
            let label = format!("{} ({})", w.name, if warm { "warm" } else { "cold" });
            let mut cols = BTreeMap::new();
            for imp in Impl::ALL {
                let r = match imp.unavailable() {
                    Some(why) => Err(why),
                    None => measure(w, imp, &setup, warm).map_err(|e| format!("{e:#}")),
                };
                if let (Ok((_, Some(k))), true) = (
                    &r,
                    w.name.starts_with("stat every") || w.name.starts_with("readdir wide"),
                ) {
                    let e = rss.entry(imp.name()).or_insert(0);
                    *e = (*e).max(*k);
                }
                cols.insert(imp.name(), r.map(|(t, _)| t));
            }
            eprintln!("  {label}: done");
            rows.push((label, cols));
        }
    }
    let table = render(&rows, &rss, &sizes, runs);
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let name = if args.quick { "quick.md" } else { "latest.md" };
    std::fs::write(out.join(name), &table)
        .with_context(|| format!("write {}", out.join(name).display()))?;
    eprintln!("table written to {}", out.join(name).display());
    Ok(())
}

fn render(
    rows: &[Row],
    rss: &BTreeMap<&'static str, u64>,
    sizes: &BenchSizes,
    runs: usize,
) -> String {
    let mut s = String::new();
    let machine = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(
        s,
        "Median seconds of {runs} runs ({} dirs x {} files, {}-entry dir, {} MiB file; kernel {}, {} cpus); (x) = ratio to kernel overlayfs\n",
        sizes.dirs,
        sizes.files_per_dir,
        sizes.wide_entries,
        sizes.big_size >> 20,
        machine.trim(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let _ = write!(s, "| workload |");
    for imp in Impl::ALL {
        let _ = write!(s, " {} |", imp.name());
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(Impl::ALL.len()));
    for (label, cols) in rows {
        let kernel = cols.get("kernel").and_then(|r| r.as_ref().ok()).copied();
        let _ = write!(s, "| {label} |");
        for imp in Impl::ALL {
            match cols.get(imp.name()) {
                Some(Ok(t)) => match kernel {
                    Some(k) if k > 0.0 => {
                        let _ = write!(s, " {t:.4} ({:.2}x) |", t / k);
                    }
                    _ => {
                        let _ = write!(s, " {t:.4} |");
                    }
                },
                Some(Err(e)) => {
                    let short: String = e.chars().take(60).collect();
                    let _ = write!(s, " failed: {short} |");
                }
                None => {
                    let _ = write!(s, " - |");
                }
            }
        }
        let _ = writeln!(s);
    }
    if !rss.is_empty() {
        let _ = writeln!(
            s,
            "\nDaemon peak RSS after the stat walk and the wide readdir:"
        );
        for (k, v) in rss {
            let _ = writeln!(s, "* {k}: {} MiB", v / 1024);
        }
    }
    s
}
