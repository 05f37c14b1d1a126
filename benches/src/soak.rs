//! The soak: 8 writers and 8 readers doing random creates, appends, copy-ups,
//! truncations, renames, unlinks, hard links and directory changes for a while on
//! stratafs, then the same operations on kernel overlayfs with the same seeds, and the
//! two merged trees compared entry by entry. Each writer owns a part of the tree (its
//! own new directory, and one lower directory it copies up, renames and removes in), so
//! what it leaves does not depend on how the threads interleave: the trees must be
//! equal. Readers list and read anywhere, and may only see names come and go.
//!
//! Reported: operations done, the daemon's RSS and open fds over time (sampled), the
//! requests still waiting in the FUSE connection at the end (must be none), and any
//! difference between the trees. A watchdog prints every daemon thread's kernel stack
//! and gives up if no operation completes for 60 s.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::impls::{self, Impl, RunDirs};

/// Writer threads (each with its own part of the tree).
pub const WRITERS: usize = 8;
/// Reader threads.
pub const READERS: usize = 8;
/// Files in each writer's lower directory.
const LOWER_FILES: usize = 40;

/// What a soak run is given.
pub struct SoakArgs {
    /// How long the stratafs pass runs; the kernel pass replays its operation counts.
    pub duration: Duration,
    /// Base seed: writer `t` uses `seed + t`.
    pub seed: u64,
}

/// Builds the one lower: `lower/w{t}/f{i}` small files, a nested dir and hard links
/// per writer.
fn write_lower(root: &Path) -> Result<()> {
    for t in 0..WRITERS {
        let d = root.join(format!("lower/w{t}"));
        fs::create_dir_all(d.join("sub/deep")).with_context(|| format!("mkdir {}", d.display()))?;
        for i in 0..LOWER_FILES {
            fs::write(
                d.join(format!("f{i}")),
                format!("lower {t} {i}\n").repeat(i + 1),
            )
            .with_context(|| format!("write in {}", d.display()))?;
        }
        fs::write(d.join("sub/deep/x"), b"deep").context("write deep file")?;
        fs::hard_link(d.join("f0"), d.join("hl")).context("hard link")?;
    }
    Ok(())
}

/// One writer's random operation in its own part: `mine` (a new dir it made) and
/// `low` (its lower dir, copied up as it goes). Errors that the sequence itself can
/// cause (a name already gone) are part of the outcome, alike on both file systems.
fn writer_op(rng: &mut StdRng, mine: &Path, low: &Path) {
    let n = rng.random_range(0..16u32);
    let a = rng.random_range(0..12u32);
    let b = rng.random_range(0..12u32);
    let fa = mine.join(format!("n{a}"));
    let fb = mine.join(format!("n{b}"));
    let la = low.join(format!("f{}", rng.random_range(0..LOWER_FILES)));
    let data = format!("{n}-{a}-{b}\n").repeat(1 + a as usize * 7);
    let _ = match n {
        0 | 1 => fs::write(&fa, &data),
        2 | 3 => fs::OpenOptions::new()
            .append(true)
            .open(&fa)
            .and_then(|mut f| f.write_all(data.as_bytes())),
        4 | 5 => fs::OpenOptions::new()
            .append(true)
            .open(&la)
            .and_then(|mut f| f.write_all(data.as_bytes())),
        6 => fs::rename(&fa, &fb),
        7 => fs::remove_file(&fa),
        8 => fs::hard_link(&fa, mine.join(format!("l{b}"))),
        9 => fs::OpenOptions::new()
            .write(true)
            .open(&la)
            .and_then(|f| f.set_len(u64::from(b) * 3)),
        10 => fs::remove_file(&la),
        11 => fs::create_dir(mine.join(format!("d{a}"))),
        12 => fs::remove_dir(mine.join(format!("d{a}"))),
        13 => fs::rename(low.join("sub"), low.join(format!("sub{a}")))
            .or_else(|_| fs::rename(low.join(format!("sub{a}")), low.join("sub"))),
        14 => fs::OpenOptions::new()
            .append(true)
            .open(low.join("hl"))
            .and_then(|mut f| f.write_all(b"+")),
        _ => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(mine.join(format!("m{a}")))
            .and_then(|mut f| f.write_all(data.as_bytes())),
    };
}

/// A reader's pass: lists a random part and reads what it finds. Only "gone" errors
/// are expected (a writer removed or renamed the name); anything else is counted.
fn reader_op(rng: &mut StdRng, root: &Path) -> u64 {
    let t = rng.random_range(0..WRITERS);
    let dir = if rng.random_bool(0.5) {
        root.join(format!("w{t}"))
    } else {
        root.join(format!("new{t}"))
    };
    let mut odd = 0;
    let Ok(rd) = fs::read_dir(&dir) else {
        return 0;
    };
    for e in rd.flatten() {
        match fs::read(e.path()) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EISDIR | libc::ESTALE)
                ) => {}
            Err(_) => odd += 1,
        }
    }
    odd
}

/// A sample of the daemon: seconds into the pass, RSS (KiB), open fds.
type Sample = (f64, u64, usize);

/// One pass over a mounted tree. With `counts` None the writers run for `duration`;
/// otherwise each does exactly its count. Returns the counts, the readers' unexpected
/// errors and the samples (seconds, RSS KiB, fds) of `daemon`.
fn pass(
    root: &Path,
    args: &SoakArgs,
    counts: Option<&[u64]>,
    daemon: Option<u32>,
) -> Result<(Vec<u64>, u64, Vec<Sample>)> {
    for t in 0..WRITERS {
        fs::create_dir_all(root.join(format!("new{t}"))).context("mkdir the writer's dir")?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut writers = Vec::new();
    for t in 0..WRITERS {
        let (root, stop, progress) = (root.to_path_buf(), stop.clone(), progress.clone());
        let (seed, duration) = (args.seed + t as u64, args.duration);
        let limit = counts.map(|c| c[t]);
        writers.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let (mine, low) = (root.join(format!("new{t}")), root.join(format!("w{t}")));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match limit {
                    Some(l) if n >= l => break,
                    None if start.elapsed() >= duration => break,
                    _ => {}
                }
                writer_op(&mut rng, &mine, &low);
                n += 1;
                progress.fetch_add(1, Ordering::Relaxed);
            }
            n
        }));
    }
    let mut readers = Vec::new();
    for r in 0..READERS {
        let (root, stop) = (root.to_path_buf(), stop.clone());
        let seed = args.seed + 1000 + r as u64;
        readers.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut odd = 0;
            while !stop.load(Ordering::Relaxed) {
                odd += reader_op(&mut rng, &root);
            }
            odd
        }));
    }
    // Samples and the watchdog, until the writers are done.
    let mut samples = Vec::new();
    let (mut last, mut last_change) = (0, Instant::now());
    while writers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(60) {
            if let Some(pid) = daemon {
                dump_stacks(pid);
            }
            stop.store(true, Ordering::Relaxed);
            bail!("no operation completed for 60 s: stuck (stacks above)");
        }
        if let Some(pid) = daemon {
            if samples
                .last()
                .is_none_or(|s: &Sample| start.elapsed().as_secs_f64() - s.0 >= 5.0)
            {
                samples.push((
                    start.elapsed().as_secs_f64(),
                    rss_kib(pid).unwrap_or(0),
                    open_fds(pid),
                ));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap_or(0)).collect();
    let odd = readers.into_iter().map(|r| r.join().unwrap_or(1)).sum();
    if let Some(pid) = daemon {
        samples.push((
            start.elapsed().as_secs_f64(),
            rss_kib(pid).unwrap_or(0),
            open_fds(pid),
        ));
    }
    Ok((counts, odd, samples))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Prints the kernel stack of every thread of `pid` (what each waits on).
fn dump_stacks(pid: u32) {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for t in tasks.flatten() {
        let p = t.path();
        let stack = fs::read_to_string(p.join("stack")).unwrap_or_default();
        let wchan = fs::read_to_string(p.join("wchan")).unwrap_or_default();
        eprintln!(
            "thread {}: wchan {wchan}\n{stack}",
            t.file_name().to_string_lossy()
        );
    }
}

/// Mounts the FUSE control file system where it belongs if nothing is there yet (it
/// shows each connection's waiting requests).
fn ensure_fusectl() {
    let ctl = Path::new("/sys/fs/fuse/connections");
    let mounted = fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(4) == Some("/sys/fs/fuse/connections"))
    });
    if !mounted && ctl.is_dir() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(ctl)
            .status();
    }
}

/// Requests the kernel has queued for the FUSE connection of the mount at `mnt` and
/// not had answered (`/sys/fs/fuse/connections/<dev>/waiting`).
fn waiting_requests(mnt: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(mnt).ok()?.dev();
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    fs::read_to_string(format!("/sys/fs/fuse/connections/{minor}/waiting"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Runs the soak under `base` and returns its report (markdown).
pub fn run(base: &Path, args: &SoakArgs) -> Result<String> {
    write_lower(base).context("build the soak's lower")?;
    let lowers = vec![base.join("lower")];
    let dirs = |name: &str| -> Result<RunDirs> {
        let run = base.join(name);
        for d in ["upper", "work", "mnt"] {
            fs::create_dir_all(run.join(d)).with_context(|| format!("mkdir {name}/{d}"))?;
        }
        Ok(RunDirs {
            lowers: lowers.clone(),
            flat: base.join("lower"),
            upper: run.join("upper"),
            work: run.join("work"),
            mnt: run.join("mnt"),
        })
    };
    eprintln!(
        "soak: {WRITERS} writers + {READERS} readers for {:?} on stratafs ...",
        args.duration
    );
    ensure_fusectl();
    let s = impls::mount(Impl::Stratafs, &dirs("stratafs")?)?;
    let (counts, odd_s, samples) = pass(&s.root, args, None, s.daemon)?;
    let waiting = waiting_requests(&s.root);
    let tree_s = describe_tree(&s.root).context("describe the stratafs tree")?;
    drop(s);
    eprintln!("soak: the same operations on kernel overlayfs ...");
    let k = impls::mount(Impl::Kernel, &dirs("kernel")?)?;
    let (_, odd_k, _) = pass(&k.root, args, Some(&counts), None)?;
    let tree_k = describe_tree(&k.root).context("describe the kernel tree")?;
    drop(k);
    let differences = diff_lines(&tree_s, &tree_k);

    let mut out = String::new();
    let total: u64 = counts.iter().sum();
    let _ = writeln!(
        out,
        "Soak: {WRITERS} writers + {READERS} readers, {:?} on stratafs (seed {}), then the same {total} operations on kernel overlayfs\n",
        args.duration, args.seed
    );
    let _ = writeln!(out, "| | stratafs | kernel overlayfs |");
    let _ = writeln!(out, "|---|---:|---:|");
    let _ = writeln!(out, "| writer operations | {total} | {total} |");
    let _ = writeln!(out, "| readers' unexpected errors | {odd_s} | {odd_k} |");
    let _ = writeln!(
        out,
        "| entries in the merged tree | {} | {} |",
        tree_s.len(),
        tree_k.len()
    );
    let _ = writeln!(
        out,
        "| requests left waiting in the connection | {} | |",
        waiting.map_or("n/a".to_string(), |w| w.to_string())
    );
    let _ = writeln!(out, "\nDaemon over time (stratafs):\n");
    let _ = writeln!(out, "| s | RSS MiB | open fds |");
    let _ = writeln!(out, "|---:|---:|---:|");
    for (t, rss, fds) in &samples {
        let _ = writeln!(out, "| {t:.0} | {:.1} | {fds} |", *rss as f64 / 1024.0);
    }
    if differences.is_empty() {
        let _ = writeln!(out, "\nThe trees are equal, entry by entry.");
    } else {
        let _ = writeln!(
            out,
            "\n{} differences (stratafs <, kernel >):\n",
            differences.len()
        );
        for d in differences.iter().take(40) {
            let _ = writeln!(out, "    {d}");
        }
    }
    if !differences.is_empty() || odd_s > 0 || waiting.is_some_and(|w| w > 0) {
        eprintln!("{out}");
        bail!(
            "soak failed: {} tree differences, {odd_s} unexpected read errors, {:?} requests waiting",
            differences.len(),
            waiting
        );
    }
    Ok(out)
}

/// A line per entry of the merged tree under `root`: path, type and mode, owner, size
/// and content digest of files, symlink target, link count and hard-link group (the
/// group's first path in sorted order). Times and block counts are left out: the two
/// passes run at other moments, on other copies.
fn describe_tree(root: &Path) -> Result<Vec<String>> {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    let mut entries: BTreeMap<String, (fs::Metadata, String)> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = fs::read_dir(&dir).with_context(|| format!("readdir {}", dir.display()))?;
        for e in rd {
            let p = e
                .with_context(|| format!("readdir {}", dir.display()))?
                .path();
            let md = fs::symlink_metadata(&p).with_context(|| format!("lstat {}", p.display()))?;
            let what = if md.is_file() {
                let data = fs::read(&p).with_context(|| format!("read {}", p.display()))?;
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&data, &mut h);
                format!(
                    "{} bytes {:016x}",
                    data.len(),
                    std::hash::Hasher::finish(&h)
                )
            } else if md.file_type().is_symlink() {
                format!(
                    "-> {}",
                    fs::read_link(&p)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                )
            } else {
                String::new()
            };
            if md.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            entries.insert(rel, (md, what));
        }
    }
    let mut first: BTreeMap<u64, String> = BTreeMap::new();
    for (rel, (md, _)) in &entries {
        if !md.is_dir() && md.nlink() > 1 {
            first.entry(md.ino()).or_insert_with(|| rel.clone());
        }
    }
    Ok(entries
        .iter()
        .map(|(rel, (md, what))| {
            let group = first
                .get(&md.ino())
                .filter(|_| !md.is_dir())
                .cloned()
                .unwrap_or_default();
            format!(
                "{rel} mode {:o} owner {}:{} nlink {} {what} group {group}",
                md.mode(),
                md.uid(),
                md.gid(),
                if md.is_dir() { 0 } else { md.nlink() },
            )
        })
        .collect())
}

/// Lines only in `a` (`<`) or only in `b` (`>`), both sorted.
fn diff_lines(a: &[String], b: &[String]) -> Vec<String> {
    let (sa, sb): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
        (a.iter().collect(), b.iter().collect());
    let mut out: Vec<String> = sa.difference(&sb).map(|l| format!("< {l}")).collect();
    out.extend(sb.difference(&sa).map(|l| format!("> {l}")));
    out
}
