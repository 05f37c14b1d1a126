//! Seeded random operation sequences run on kernel overlayfs and stratafs side by side,
//! over identical layers: each operation's errno must match, and the merged trees are
//! compared every few steps and at the end. A few thousand operations in all.

#![allow(clippy::unwrap_used)] // a failed setup step should panic

mod diffsupport;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use diffsupport::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIRS: [&str; 6] = ["", "d", "d/sub", "e", "opq", "n"];
const NAMES: [&str; 8] = ["a", "b", "x", "y", "d", "e", "h1", "sub"];

/// One random operation, described for messages.
#[derive(Debug, Clone)]
enum Op {
    Write(PathBuf, u8),
    Append(PathBuf),
    Truncate(PathBuf, u64),
    Mkdir(PathBuf),
    Rmdir(PathBuf),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, u32),
    Link(PathBuf, PathBuf),
    Symlink(PathBuf),
    Chmod(PathBuf, u32),
    SetXattr(PathBuf, u8),
    Mkfifo(PathBuf),
}

fn pick(rng: &mut StdRng) -> PathBuf {
    let d = DIRS[rng.random_range(0..DIRS.len())];
    let n = NAMES[rng.random_range(0..NAMES.len())];
    Path::new(d).join(n)
}

fn gen_op(rng: &mut StdRng) -> Op {
    let p = pick(rng);
    match rng.random_range(0..12) {
        0 => Op::Write(p, rng.random()),
        1 => Op::Append(p),
        2 => Op::Truncate(p, rng.random_range(0..64)),
        3 => Op::Mkdir(p),
        4 => Op::Rmdir(p),
        5 => Op::Unlink(p),
        6 => {
            let flags =
                [0, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE][rng.random_range(0..4)];
            Op::Rename(p, pick(rng), flags)
        }
        7 => Op::Link(p, pick(rng)),
        8 => Op::Symlink(p),
        9 => Op::Chmod(p, [0o600, 0o755, 0o640, 0o700][rng.random_range(0..4)]),
        10 => Op::SetXattr(p, rng.random()),
        _ => Op::Mkfifo(p),
    }
}

/// Opens for writing without blocking: a fifo without a reader fails (ENXIO) at once.
fn open_w(p: &Path, create: bool, truncate: bool, append: bool) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(!append)
        .append(append)
        .create(create)
        .truncate(truncate)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
}

fn apply(m: &Path, op: &Op) -> i32 {
    match op {
        Op::Write(p, b) => {
            errno_of(open_w(&m.join(p), true, true, false).and_then(|mut f| f.write_all(&[*b; 3])))
        }
        Op::Append(p) => {
            errno_of(open_w(&m.join(p), false, false, true).and_then(|mut f| f.write_all(b"+")))
        }
        Op::Truncate(p, n) => {
            errno_of(open_w(&m.join(p), false, false, false).and_then(|f| f.set_len(*n)))
        }
        Op::Mkdir(p) => errno_of(fs::create_dir(m.join(p))),
        Op::Rmdir(p) => errno_of(fs::remove_dir(m.join(p))),
        Op::Unlink(p) => errno_of(fs::remove_file(m.join(p))),
        Op::Rename(a, b, f) => renameat2(&m.join(a), &m.join(b), *f),
        Op::Link(a, b) => errno_of(fs::hard_link(m.join(a), m.join(b))),
        Op::Symlink(p) => errno_of(symlink("target", m.join(p))),
        Op::Chmod(p, mode) => {
            let full = m.join(p);
            match fs::symlink_metadata(&full) {
                Ok(md) if md.file_type().is_symlink() => 0,
                _ => errno_of(fs::set_permissions(full, fs::Permissions::from_mode(*mode))),
            }
        }
        Op::SetXattr(p, v) => {
            let full = m.join(p);
            match fs::symlink_metadata(&full) {
                Ok(md) if md.is_file() || md.is_dir() => {
                    errno_of(xattr_set(&full, "user.r", &[*v]))
                }
                _ => 0,
            }
        }
        Op::Mkfifo(p) => {
            let full = m.join(p);
            let r = unsafe { libc::mknod(c(&full).as_ptr(), libc::S_IFIFO | 0o644, 0) };
            if r == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
            }
        }
    }
}

/// The layer set of the smoke test, plus a few names the generator aims at.
fn layers(root: &Path) {
    build_layers(root);
    fs::create_dir_all(root.join("l3/n")).unwrap();
    fs::write(root.join("l3/n/a"), "na").unwrap();
    fs::write(root.join("l2/opq/x"), "ox").unwrap();
    fs::write(root.join("l3/a"), "a3").unwrap();
}

#[test]
fn random_sequences_match_kernel_overlayfs() {
    if !privileged_or_skip() {
        return;
    }
    let seeds: u64 = std::env::var("STRATA_RANDOM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let ops_per_seed = 250;
    let mut total = 0;
    for seed in 0..seeds {
        let tmp = tempfile::tempdir().unwrap();
        let (k, s) = (tmp.path().join("k"), tmp.path().join("s"));
        layers(&k);
        layers(&s);
        let _km = mount_kernel(&k, "on");
        let _sm = mount_stratafs_with(Path::new(env!("CARGO_BIN_EXE_stratafs")), &s);
        let (km, sm) = (k.join("m"), s.join("m"));
        let mut rng = StdRng::seed_from_u64(seed);
        let mut log: Vec<String> = Vec::new();
        for i in 0..ops_per_seed {
            let op = gen_op(&mut rng);
            let (ke, se) = (apply(&km, &op), apply(&sm, &op));
            log.push(format!("{i}: {op:?} -> kernel {ke} stratafs {se}"));
            assert_eq!(
                ke,
                se,
                "seed {seed}: errno differs at step {i}\n{}",
                log.join("\n")
            );
            if i % 10 == 9 || i + 1 == ops_per_seed {
                let (ks, ss) = (snapshot(&km), snapshot(&sm));
                if ks != ss {
                    let diff: Vec<String> = ks
                        .iter()
                        .filter(|(p, v)| ss.get(*p) != Some(*v))
                        .map(|(p, v)| {
                            format!("kernel {}: {v} / stratafs {:?}", p.display(), ss.get(p))
                        })
                        .chain(
                            ss.iter()
                                .filter(|(p, _)| !ks.contains_key(*p))
                                .map(|(p, v)| format!("only stratafs {}: {v}", p.display())),
                        )
                        .collect();
                    panic!(
                        "seed {seed}: trees differ after step {i}:\n{}\nops:\n{}",
                        diff.join("\n"),
                        log.join("\n")
                    );
                }
            }
            total += 1;
        }
    }
    eprintln!("{total} random operations matched kernel overlayfs");
}
