//! The workloads: each runs against the root of a merged tree and is timed as a whole.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use fixtures::bench_trees::BenchSizes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One workload.
pub struct Workload {
    /// Row name.
    pub name: &'static str,
    /// True when it modifies the tree (fresh upper / flat copy per run).
    pub writes: bool,
    /// True when it should also run warm (caches kept from a first pass).
    pub warm_too: bool,
    /// The work itself.
    pub run: fn(&Path, &BenchSizes) -> Result<()>,
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

fn find(root: &Path, _: &BenchSizes) -> Result<()> {
    let mut n = 0;
    walk(&root.join("tree"), false, &mut n)
}

fn stat_all(root: &Path, _: &BenchSizes) -> Result<()> {
    let mut n = 0;
    walk(&root.join("tree"), true, &mut n)
}

fn readdir_wide(root: &Path, _: &BenchSizes) -> Result<()> {
    let n = fs::read_dir(root.join("wide"))
        .context("readdir wide")?
        .count();
    anyhow::ensure!(n > 0, "wide dir is empty");
    Ok(())
}

fn lookup_missing(root: &Path, s: &BenchSizes) -> Result<()> {
    for d in 0..s.dirs {
        for f in 0..25 {
            let p = root.join(format!("tree/d{d:03}/missing{f}"));
            anyhow::ensure!(fs::symlink_metadata(&p).is_err(), "{} exists", p.display());
        }
    }
    Ok(())
}

fn read_small(root: &Path, s: &BenchSizes) -> Result<()> {
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

fn read_big(root: &Path, _: &BenchSizes) -> Result<()> {
    let mut f = fs::File::open(root.join("big")).context("open big")?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).context("read big")? > 0 {}
    Ok(())
}

fn random_4k(root: &Path, s: &BenchSizes) -> Result<()> {
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

fn copy_up_small(root: &Path, s: &BenchSizes) -> Result<()> {
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

fn copy_up_big(root: &Path, _: &BenchSizes) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("big"))
        .context("open big")?;
    f.seek(SeekFrom::Start(0)).context("seek")?;
    f.write_all(b"x").context("write big")?;
    f.sync_all().context("fsync big")
}

fn create_empty(root: &Path, s: &BenchSizes) -> Result<()> {
    let dir = root.join("extra/new");
    fs::create_dir_all(&dir).context("mkdir extra/new")?;
    for i in 0..s.create_files {
        fs::File::create(dir.join(format!("n{i:06}"))).context("create")?;
    }
    Ok(())
}

fn untar(root: &Path, s: &BenchSizes) -> Result<()> {
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
    let bytes = builder.into_inner().context("tar finish")?;
    let dest = root.join("extra/untar");
    fs::create_dir_all(&dest).context("mkdir extra/untar")?;
    tar::Archive::new(&bytes[..]).unpack(&dest).context("untar")
}

fn rm_rf(root: &Path, _: &BenchSizes) -> Result<()> {
    fs::remove_dir_all(root.join("tree")).context("rm -rf tree")
}

fn renames(root: &Path, s: &BenchSizes) -> Result<()> {
    for d in 0..s.dirs {
        let p = root.join(format!("tree/d{d:03}/f010"));
        fs::rename(&p, p.with_file_name("renamed"))
            .with_context(|| format!("rename {}", p.display()))?;
    }
    fs::rename(root.join("tree/d001"), root.join("tree/moved")).context("rename lower dir")
}

fn parallel(root: &Path, s: &BenchSizes) -> Result<()> {
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

fn build_c(root: &Path, _: &BenchSizes) -> Result<()> {
    crate::cproject::build(root)
}

/// Every workload, in table order.
pub const ALL: &[Workload] = &[
    Workload {
        name: "find (tree)",
        writes: false,
        warm_too: true,
        run: find,
    },
    Workload {
        name: "stat every file",
        writes: false,
        warm_too: true,
        run: stat_all,
    },
    Workload {
        name: "readdir wide dir",
        writes: false,
        warm_too: true,
        run: readdir_wide,
    },
    Workload {
        name: "lookup missing names",
        writes: false,
        warm_too: true,
        run: lookup_missing,
    },
    Workload {
        name: "read every small file",
        writes: false,
        warm_too: true,
        run: read_small,
    },
    Workload {
        name: "sequential read big",
        writes: false,
        warm_too: true,
        run: read_big,
    },
    Workload {
        name: "random 4 KiB reads",
        writes: false,
        warm_too: false,
        run: random_4k,
    },
    Workload {
        name: "copy-up small (append)",
        writes: true,
        warm_too: false,
        run: copy_up_small,
    },
    Workload {
        name: "copy-up big (1st write)",
        writes: true,
        warm_too: false,
        run: copy_up_big,
    },
    Workload {
        name: "untar",
        writes: true,
        warm_too: false,
        run: untar,
    },
    Workload {
        name: "create empty files",
        writes: true,
        warm_too: false,
        run: create_empty,
    },
    Workload {
        name: "rm -rf lower tree",
        writes: true,
        warm_too: false,
        run: rm_rf,
    },
    Workload {
        name: "rename files + lower dir",
        writes: true,
        warm_too: false,
        run: renames,
    },
    Workload {
        name: "4 readers + 4 writers",
        writes: true,
        warm_too: false,
        run: parallel,
    },
    Workload {
        name: "build C project (make -j2)",
        writes: true,
        warm_too: false,
        run: build_c,
    },
];
