//! The network row: TCP throughput from the host into a container (iperf3 client on
//! the host, `iperf3 -s` in the container on a published port), `--network host`
//! against `pasta` and `slirp4netns`. The container runs the host's iperf3 (the host's
//! `/usr`, `/lib`, `/lib64` bound read-only over the demo image).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use fixtures::images::{DEMO_TAG, ImageFormat, build_demo_image};

/// Row name of the network workload.
pub const NAME: &str = "iperf3 host->container";

/// The modes measured, in column order.
const MODES: [&str; 3] = ["host", "pasta", "slirp4netns"];

/// Seconds of each iperf3 run.
const SECS: &str = "3";

/// Median Gbit/s per mode, or why it has none.
pub struct NetRow {
    cells: Vec<(&'static str, Result<f64, String>)>,
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn strata(strata: &Path, store: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(strata)
        .arg("--root")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", strata.display()))?;
    if !out.status.success() {
        bail!(
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port())
}

/// One run through `mode`: Gbit/s received by the container's iperf3.
fn once(bin: &Path, store: &Path, mode: &str) -> Result<f64> {
    let port = free_port()?;
    let p = port.to_string();
    let publish = format!("{port}:{port}");
    let mut args = vec!["run", "-d", "--driver", "kernel", "--network", mode];
    if mode != "host" {
        args.extend(["-p", &publish]);
    }
    args.extend([
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/lib:/lib:ro",
        "-v",
        "/lib64:/lib64:ro",
        DEMO_TAG,
        "/usr/bin/iperf3",
        "-s",
        "-1",
        "-p",
        &p,
    ]);
    let id = strata(bin, store, &args)?;
    let r = (|| -> Result<f64> {
        let mut last = String::new();
        for _ in 0..50 {
            let out = Command::new("iperf3")
                .args(["-c", "127.0.0.1", "-p", &p, "-t", SECS, "-J"])
                .stdin(Stdio::null())
                .output()
                .context("run iperf3")?;
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
            if let Some(bps) = v
                .pointer("/end/sum_received/bits_per_second")
                .and_then(|b| b.as_f64())
            {
                return Ok(bps / 1e9);
            }
            last = v
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no result")
                .to_string();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        bail!("iperf3: {last}")
    })();
    let _ = strata(bin, store, &["rm", "-f", &id]);
    r
}

/// Measures `runs` interleaved rounds, after building the demo image into a store of
/// its own under `base`.
pub fn measure(bin: Result<PathBuf, String>, base: &Path, runs: usize) -> NetRow {
    let fail = |why: String| NetRow {
        cells: MODES.iter().map(|m| (*m, Err(why.clone()))).collect(),
    };
    let bin = match bin {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if !have("iperf3") {
        return fail("n/a (iperf3 not installed)".into());
    }
    let dir = base.join("net");
    let tar = dir.join("demo.tar");
    let store = dir.join("store");
    let prepared = std::fs::create_dir_all(&dir)
        .context("mkdir")
        .and_then(|()| build_demo_image(&tar, ImageFormat::DockerArchive).map(|_| ()))
        .and_then(|()| {
            let t = tar.to_string_lossy().into_owned();
            strata(&bin, &store, &["image", "import", &t, "--tag", DEMO_TAG]).map(|_| ())
        });
    if let Err(e) = prepared {
        return fail(format!("{e:#}"));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut errors: Vec<Option<String>> = vec![None; MODES.len()];
    for _ in 0..runs.max(1) {
        for (i, mode) in MODES.iter().enumerate() {
            let needs = if *mode == "host" {
                None
            } else {
                Some(if *mode == "pasta" {
                    "pasta"
                } else {
                    "slirp4netns"
                })
            };
            if needs.is_some_and(|t| !have(t)) {
                errors[i] = Some("n/a (not installed)".into());
                continue;
            }
            match once(&bin, &store, mode) {
                Ok(g) => samples[i].push(g),
                Err(e) => errors[i] = Some(format!("failed: {e:#}")),
            }
        }
    }
    eprintln!("  {NAME}: done");
    NetRow {
        cells: MODES
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let s = &mut samples[i];
                s.sort_by(f64::total_cmp);
                let cell = match (s.get(s.len() / 2), &errors[i]) {
                    (Some(g), _) => Ok(*g),
                    (None, Some(e)) => Err(e.clone()),
                    (None, None) => Err("no sample".into()),
                };
                (*m, cell)
            })
            .collect(),
    }
}

/// The row as its own Markdown table, ratios to `--network host`.
pub fn render(row: &NetRow, runs: usize, machine: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nNetwork: TCP from the host into a container, `iperf3 -c 127.0.0.1 -t {SECS}` to \
         `iperf3 -s` on a published port, median Gbit/s of {runs} interleaved runs; (x) = \
         ratio to `--network host`; {machine}\n"
    );
    let _ = write!(s, "| workload |");
    for (m, _) in &row.cells {
        let _ = write!(s, " --network {m} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|".repeat(row.cells.len()));
    let host = row
        .cells
        .first()
        .and_then(|(_, c)| c.as_ref().ok().copied());
    let _ = write!(s, "| {NAME} |");
    for (_, cell) in &row.cells {
        let text = match (cell, host) {
            (Ok(g), Some(h)) if h > 0.0 => format!("{g:.2} ({:.2}x)", g / h),
            (Ok(g), _) => format!("{g:.2}"),
            (Err(e), _) => e.replace('|', "/").replace('\n', " "),
        };
        let _ = write!(s, " {text} |");
    }
    let _ = writeln!(s);
    s
}
