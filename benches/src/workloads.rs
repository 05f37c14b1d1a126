//! The workloads: each runs against the root of a merged tree and is timed as a whole.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use fixtures::bench_trees::BenchSizes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What every workload is given besides the merged tree's root.
pub struct Ctx {
    /// The sizes of the trees.
    pub sizes: BenchSizes,
    /// The tar archive `tar xf` unpacks (outside the layers, made at set-up time).
    pub archive: PathBuf,
}

/// One workload's work: run against the root of a merged tree.
pub type Work = fn(&Path, &Ctx) -> Result<()>;

/// Whether, and how, a workload also runs warm.
#[derive(Clone, Copy)]
pub enum Warm {
    /// Cold only (caches dropped, fresh mount).
    No,
    /// Warm too: a first pass of the workload itself on the same mount before the timed
    /// one (for workloads that read, or that a second time do the same work).
    Rerun,
    /// Warm too: this pass first (it reads what the workload will touch), since the
    /// workload itself would leave nothing to do a second time.
    After(Work),
}

/// One workload.
pub struct Workload {
    /// Row name.
    pub name: &'static str,
    /// True when it modifies the tree (fresh upper / flat copy per run).
    pub writes: bool,
    /// Whether it also runs warm.
    pub warm: Warm,
    /// The work itself.
    pub run: Work,
}

fn walk(dir: &Path, stat: bool, count: &mut u64) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("readdir {}", dir.display()))? {
        let e = e.with_context(|| format!("readdir {}", dir.display()))?;
        *count += 1;
        let ft = e.file_type().context("d_type")?;
        if stat {
            fs::symlink_metadata(e.path())
                .with_context(|| format!("stat {}", e.path().display()))?;
        }
        if ft.is_dir() {
            walk(&e.path(), stat, count)?;
        }
    }
    Ok(())
}

/// Walks `dir` recursively and lstats every entry (as `find -ls` would); returns how
/// many entries it saw.
pub fn stat_walk(dir: &Path) -> Result<u64> {
    let mut n = 0;
    walk(dir, true, &mut n)?;
    Ok(n)
}

fn find(root: &Path, _: &Ctx) -> Result<()> {
    let mut n = 0;
    walk(&root.join("tree"), false, &mut n)
}

fn stat_all(root: &Path, _: &Ctx) -> Result<()> {
    let mut n = 0;
    walk(&root.join("tree"), true, &mut n)
}

fn readdir_wide(root: &Path, _: &Ctx) -> Result<()> {
    let n = fs::read_dir(root.join("wide"))
        .context("readdir wide")?
        .count();
    anyhow::ensure!(n > 0, "wide dir is empty");
    Ok(())
}

fn lookup_missing(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    for d in 0..s.dirs {
        for f in 0..25 {
            let p = root.join(format!("tree/d{d:03}/missing{f}"));
            anyhow::ensure!(fs::symlink_metadata(&p).is_err(), "{} exists", p.display());
        }
    }
    Ok(())
}

fn read_small(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    let mut buf = Vec::with_capacity(s.small_size);
    for d in 0..s.dirs {
        for f in 0..s.files_per_dir {
            buf.clear();
            let p = root.join(format!("tree/d{d:03}/f{f:03}"));
            fs::File::open(&p)
                .and_then(|mut h| h.read_to_end(&mut buf))
                .with_context(|| format!("read {}", p.display()))?;
        }
    }
    Ok(())
}

fn read_big(root: &Path, _: &Ctx) -> Result<()> {
    let mut f = fs::File::open(root.join("big")).context("open big")?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).context("read big")? > 0 {}
    Ok(())
}

fn random_4k(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    let f = fs::File::open(root.join("big")).context("open big")?;
    let mut rng = StdRng::seed_from_u64(42);
    let mut buf = [0u8; 4096];
    let blocks = (s.big_size / 4096).max(1);
    for _ in 0..4000 {
        f.read_at(&mut buf, rng.random_range(0..blocks) * 4096)
            .context("pread big")?;
    }
    Ok(())
}

fn copy_up_small(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    for d in 0..s.dirs {
        for f in 0..5 {
            let p = root.join(format!("tree/d{d:03}/f{f:03}"));
            fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .and_then(|mut h| h.write_all(b"+"))
                .with_context(|| format!("append {}", p.display()))?;
        }
    }
    Ok(())
}

fn copy_up_big(root: &Path, _: &Ctx) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("big"))
        .context("open big")?;
    f.seek(SeekFrom::Start(0)).context("seek")?;
    f.write_all(b"x").context("write big")?;
    f.sync_all().context("fsync big")
}

fn create_empty(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    let dir = root.join("extra/new");
    fs::create_dir_all(&dir).context("mkdir extra/new")?;
    for i in 0..s.create_files {
        fs::File::create(dir.join(format!("n{i:06}"))).context("create")?;
    }
    Ok(())
}

/// The archive both untar rows unpack: `untar_files` files of 2 KiB in 50 dirs.
pub fn untar_archive(s: &BenchSizes) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let data = vec![7u8; 2048];
    for i in 0..s.untar_files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(
                &mut h,
                format!("src/m{:02}/file{i:05}.c", i % 50),
                &data[..],
            )
            .context("tar append")?;
    }
    builder.into_inner().context("tar finish")
}

fn untar(root: &Path, c: &Ctx) -> Result<()> {
    let bytes = untar_archive(&c.sizes)?;
    let dest = root.join("extra/untar");
    fs::create_dir_all(&dest).context("mkdir extra/untar")?;
    tar::Archive::new(&bytes[..]).unpack(&dest).context("untar")
}

fn rm_rf(root: &Path, _: &Ctx) -> Result<()> {
    fs::remove_dir_all(root.join("tree")).context("rm -rf tree")
}

fn renames(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    for d in 0..s.dirs {
        let p = root.join(format!("tree/d{d:03}/f010"));
        fs::rename(&p, p.with_file_name("renamed"))
            .with_context(|| format!("rename {}", p.display()))?;
    }
    fs::rename(root.join("tree/d001"), root.join("tree/moved")).context("rename lower dir")
}

fn parallel(root: &Path, c: &Ctx) -> Result<()> {
    let s = &c.sizes;
    let dirs = s.dirs;
    std::thread::scope(|sc| -> Result<()> {
        let mut hs = Vec::new();
        for t in 0..4usize {
            hs.push(sc.spawn(move || -> Result<()> {
                let mut buf = Vec::new();
                for d in (t..dirs).step_by(4) {
                    for f in 0..10 {
                        buf.clear();
                        let p = root.join(format!("tree/d{d:03}/f{f:03}"));
                        fs::File::open(&p)
                            .and_then(|mut h| h.read_to_end(&mut buf))
                            .with_context(|| format!("read {}", p.display()))?;
                    }
                }
                Ok(())
            }));
            hs.push(sc.spawn(move || -> Result<()> {
                let dir = root.join(format!("extra/w{t}"));
                fs::create_dir_all(&dir).context("mkdir")?;
                for i in 0..500 {
                    fs::write(dir.join(format!("f{i}")), b"parallel").context("write")?;
                }
                Ok(())
            }));
        }
        for h in hs {
            h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        }
        Ok(())
    })
}

/// Runs a tool in `root` (the merged tree), its output to /dev/null; fails with the end
/// of its stderr if it fails.
fn tool(root: &Path, cmd: &mut Command) -> Result<()> {
    let out = cmd
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let mut tail: Vec<&str> = err.lines().rev().take(2).collect();
        tail.reverse();
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            tail.join(" / ").trim()
        );
    }
    Ok(())
}

/// `sh -c SCRIPT sh ARGS...` in `root`.
fn shell(root: &Path, script: &str, args: &[String]) -> Result<()> {
    tool(
        root,
        Command::new("sh").args(["-c", script, "sh"]).args(args),
    )
}

fn find_type_f(root: &Path, _: &Ctx) -> Result<()> {
    tool(root, Command::new("find").args(["tree", "-type", "f"]))
}

fn find_printf(root: &Path, _: &Ctx) -> Result<()> {
    tool(
        root,
        Command::new("find").args(["tree", "-printf", "%s %i %n\n"]),
    )
}

/// One process lists, another opens each file by name: the daemon sees a LOOKUP per
/// file (the `find` of the listing does not carry its entries over to `cat`).
fn find_xargs_cat(root: &Path, _: &Ctx) -> Result<()> {
    shell(
        root,
        "find tree -type f -print0 | xargs -0 cat > /dev/null",
        &[],
    )
}

fn dd_big(root: &Path, _: &Ctx) -> Result<()> {
    tool(
        root,
        Command::new("dd").args(["if=big", "of=/dev/null", "bs=1M", "status=none"]),
    )
}

/// The lower subtree `cp -a` copies: the first quarter of `tree`'s dirs.
fn cp_sources(s: &BenchSizes) -> Vec<String> {
    (0..(s.dirs / 4).max(1))
        .map(|d| format!("tree/d{d:03}"))
        .collect()
}

fn cp_a(root: &Path, c: &Ctx) -> Result<()> {
    fs::create_dir(root.join("extra/cp")).context("mkdir extra/cp")?;
    tool(
        root,
        Command::new("cp")
            .arg("-a")
            .args(cp_sources(&c.sizes))
            .arg("extra/cp/"),
    )
}

/// Reads what `cp -a` copies (its warm pass).
fn cp_a_warm_up(root: &Path, c: &Ctx) -> Result<()> {
    tool(
        root,
        Command::new("sh")
            .args([
                "-c",
                "find \"$@\" -type f -print0 | xargs -0 cat > /dev/null",
                "sh",
            ])
            .args(cp_sources(&c.sizes)),
    )
}

fn tar_xf(root: &Path, c: &Ctx) -> Result<()> {
    fs::create_dir(root.join("extra/tarx")).context("mkdir extra/tarx")?;
    tool(
        root,
        Command::new("tar")
            .arg("xf")
            .arg(&c.archive)
            .args(["-C", "extra/tarx"]),
    )
}

fn rm_rf_tool(root: &Path, _: &Ctx) -> Result<()> {
    tool(root, Command::new("rm").args(["-rf", "tree"]))
}

/// Lists what `rm -rf` removes (its warm pass).
fn rm_rf_warm_up(root: &Path, c: &Ctx) -> Result<()> {
    find_printf(root, c)
}

/// The ~70 lower files the shell appends to: spread over the dirs, past the files the
/// top layer replaces.
fn append_targets(s: &BenchSizes) -> Vec<String> {
    (0..70)
        .map(|i| {
            let d = i % s.dirs.max(1);
            let f = (1 + i / s.dirs.max(1)) % s.files_per_dir.max(1);
            format!("tree/d{d:03}/f{f:03}")
        })
        .collect()
}

/// A shell's `>>`: open(O_WRONLY|O_APPEND|O_CREAT) of a lower file, copied up before
/// the first write.
fn sh_append(root: &Path, c: &Ctx) -> Result<()> {
    shell(
        root,
        "for f in \"$@\"; do echo x >> \"$f\"; done",
        &append_targets(&c.sizes),
    )
}

/// Reads the files the shell appends to (its warm pass).
fn sh_append_warm_up(root: &Path, c: &Ctx) -> Result<()> {
    shell(root, "cat \"$@\" > /dev/null", &append_targets(&c.sizes))
}

/// Where the git checkout of the bench tree lives in the bottom lower.
pub const CHECKOUT: &str = "checkout";

/// `git status` in the checkout: every tracked file stat'ed against the index (and
/// read and hashed where the stat data differs), the index rewritten if it refreshed.
fn git_status(root: &Path, _: &Ctx) -> Result<()> {
    tool(
        &root.join(CHECKOUT),
        Command::new("git").args(["-c", "safe.directory=*", "status"]),
    )
}

/// Runs `git ARGS` in `dir` with a fixed identity and no global config.
fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "safe.directory=*",
            "-c",
            "gc.auto=0",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run git {args:?}"))?;
    if !out.status.success() {
        bail!(
            "git {args:?} in {} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Refreshes the index of `root/checkout` (after copying it: new inode numbers).
pub fn refresh_checkout(root: &Path) -> Result<()> {
    git(&root.join(CHECKOUT), &["status", "--porcelain"])
}

/// Makes `lower/checkout`: a copy of `lower/tree` committed to a fresh git repository
/// (packed, as a clone would be), with an index newer than every file in it, so a
/// `git status` right on the lower finds it clean without hashing anything.
pub fn make_checkout(lower: &Path) -> Result<()> {
    let dir = lower.join(CHECKOUT);
    let run = |args: &[&str]| git(&dir, args);
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(lower.join("tree"))
        .arg(&dir)
        .status()
        .context("run cp")?;
    if !st.success() {
        bail!(
            "cp -a {} {} failed ({st})",
            lower.join("tree").display(),
            dir.display()
        );
    }
    // Files as old as the index would be "racily clean" and hashed by every status.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run(&["init", "-q", "-b", "main"])?;
    run(&["add", "-A"])?;
    run(&["commit", "-q", "-m", "bench tree"])?;
    run(&["repack", "-adq"])?;
    run(&["prune-packed"])?;
    run(&["status", "--porcelain"])?;
    Ok(())
}

fn build_c(root: &Path, _: &Ctx) -> Result<()> {
    crate::cproject::build(root)
}

/// Every workload, in table order.
pub const ALL: &[Workload] = &[
    Workload {
        name: "find (tree)",
        writes: false,
        warm: Warm::Rerun,
        run: find,
    },
    Workload {
        name: "stat every file",
        writes: false,
        warm: Warm::Rerun,
        run: stat_all,
    },
    Workload {
        name: "readdir wide dir",
        writes: false,
        warm: Warm::Rerun,
        run: readdir_wide,
    },
    Workload {
        name: "lookup missing names",
        writes: false,
        warm: Warm::Rerun,
        run: lookup_missing,
    },
    Workload {
        name: "read every small file",
        writes: false,
        warm: Warm::Rerun,
        run: read_small,
    },
    Workload {
        name: "sequential read big",
        writes: false,
        warm: Warm::Rerun,
        run: read_big,
    },
    Workload {
        name: "random 4 KiB reads",
        writes: false,
        warm: Warm::No,
        run: random_4k,
    },
    Workload {
        name: "copy-up small (append)",
        writes: true,
        warm: Warm::No,
        run: copy_up_small,
    },
    Workload {
        name: "copy-up big (1st write)",
        writes: true,
        warm: Warm::No,
        run: copy_up_big,
    },
    Workload {
        name: "untar",
        writes: true,
        warm: Warm::No,
        run: untar,
    },
    Workload {
        name: "create empty files",
        writes: true,
        warm: Warm::No,
        run: create_empty,
    },
    Workload {
        name: "rm -rf lower tree",
        writes: true,
        warm: Warm::No,
        run: rm_rf,
    },
    Workload {
        name: "rename files + lower dir",
        writes: true,
        warm: Warm::No,
        run: renames,
    },
    Workload {
        name: "4 readers + 4 writers",
        writes: true,
        warm: Warm::No,
        run: parallel,
    },
    Workload {
        name: "build C project (make -j2)",
        writes: true,
        warm: Warm::No,
        run: build_c,
    },
    Workload {
        name: "find tree -type f",
        writes: false,
        warm: Warm::Rerun,
        run: find_type_f,
    },
    Workload {
        name: "find tree -printf '%s %i %n'",
        writes: false,
        // Warm: after a plain `find`, whose listings the kernel caches without
        // attributes (the second walk stats what it reads from that cache).
        warm: Warm::After(find_type_f),
        run: find_printf,
    },
    Workload {
        name: "find -type f -print0 | xargs -0 cat",
        writes: false,
        warm: Warm::Rerun,
        run: find_xargs_cat,
    },
    Workload {
        name: "dd big bs=1M",
        writes: false,
        warm: Warm::Rerun,
        run: dd_big,
    },
    Workload {
        name: "cp -a lower subtree",
        writes: true,
        warm: Warm::After(cp_a_warm_up),
        run: cp_a,
    },
    Workload {
        name: "tar xf",
        writes: true,
        warm: Warm::No,
        run: tar_xf,
    },
    Workload {
        name: "rm -rf tree",
        writes: true,
        warm: Warm::After(rm_rf_warm_up),
        run: rm_rf_tool,
    },
    Workload {
        name: "sh: echo x >> 70 lower files",
        writes: true,
        warm: Warm::After(sh_append_warm_up),
        run: sh_append,
    },
    Workload {
        name: "git status",
        // It rewrites the index when it refreshes it: in the fresh upper of each run, and
        // never in the plain directory, whose index set-up refreshed (a copy per run
        // would have new inode numbers and ctimes, and every file hashed again).
        writes: false,
        warm: Warm::Rerun,
        run: git_status,
    },
];
