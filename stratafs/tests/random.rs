//! Seeded random operation sequences run on kernel overlayfs and on the implementation
//! under test over identical layers: each operation's errno must match, and the merged
//! trees are compared every few steps and after remounting both halfway and at the end.
//! `STRATA_RANDOM_SEEDS` (default 12) seeds of `STRATA_RANDOM_OPS` (default 250)
//! operations: 3000 in CI. `STRATA_RANDOM_CALLER_SEEDS` (default 4) seeds make each
//! operation as a random caller (root under each umask, or 65534);
//! `STRATA_RANDOM_RENAME_SEEDS` (default 4) seeds rename directories merged over four
//! lowers. A seed stops at its first divergence (later steps would only repeat it); all
//! seeds run; `STRATA_RANDOM_SEED=N` reruns seed N alone.

mod common;

use common::*;
use fixtures::layers::{self, WhiteoutFormat};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIRS: [&str; 10] = [
    "", "d", "d/sub", "opq", "ren", "ren/sub", "ne", "wd", "fdir", "new",
];
const NAMES: [&str; 14] = [
    "a", "b", "x", "y", "h1", "h2", "top", "keep", "sub", "old", "new", "child", "d", "ren",
];

/// Where random operations aim: directories and names, chosen to hit the layer set's
/// interesting entries often.
struct Pool {
    dirs: &'static [&'static str],
    names: &'static [&'static str],
}

const STANDARD: Pool = Pool {
    dirs: &DIRS,
    names: &NAMES,
};

/// Aims at [`layers::whiteout_formats`]: whited-out, opaque and merged names.
const FORMATS: Pool = Pool {
    dirs: &["", "a", "c", "dir", "b"],
    names: &[
        "a", "b", "c", "x", "y", "z", "dir", "old", "new", "top", "keep", "in",
    ],
};

fn pick(pool: &Pool, rng: &mut StdRng) -> String {
    let d = pool.dirs[rng.random_range(0..pool.dirs.len())];
    let n = pool.names[rng.random_range(0..pool.names.len())];
    if d.is_empty() {
        n.to_string()
    } else {
        format!("{d}/{n}")
    }
}

fn gen_op(pool: &Pool, rng: &mut StdRng) -> Op {
    let a = pick(pool, rng);
    let text = |rng: &mut StdRng| format!("{:x}", rng.random::<u32>());
    match rng.random_range(0..20) {
        0 => Op::Write(a, text(rng)),
        1 => Op::Append(a, text(rng)),
        2 => Op::WriteAt(a, rng.random_range(0..8192), text(rng)),
        3 => Op::Truncate(a, rng.random_range(0..64)),
        4 => Op::OpenTrunc(a),
        5 | 6 => Op::Mkdir(a, [0o755, 0o700][rng.random_range(0..2)]),
        7 => Op::Rmdir(a),
        8 | 9 => Op::Unlink(a),
        10 | 11 => {
            let flags =
                [0, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE][rng.random_range(0..4)];
            Op::Rename(a, pick(pool, rng), flags)
        }
        12 => Op::Link(a, pick(pool, rng)),
        13 => Op::Symlink(pick(pool, rng), a),
        14 => Op::Chmod(a, [0o600, 0o755, 0o640, 0o700][rng.random_range(0..4)]),
        15 => Op::Chown(a, rng.random_range(0..3), rng.random_range(0..3)),
        16 => Op::SetXattr(
            a,
            format!("user.r{}", rng.random_range(0..3)),
            text(rng).into(),
        ),
        17 => Op::RemoveXattr(a, format!("user.r{}", rng.random_range(0..3))),
        18 => Op::Mkfifo(a),
        _ => Op::Utimes(a, 1_600_000_000 + rng.random_range(0..100)),
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `ops` random operations from `pool` on a fresh [`Differential`]; returns the
/// number run and the report if the sides diverged (None when the test must skip).
fn run_seed(
    d: Option<Differential>,
    pool: &Pool,
    seed: u64,
    ops: u64,
) -> Option<(u64, Option<String>)> {
    run_steps(d, seed, ops, 10, Differential::compare_upper, |rng, d| {
        let op = gen_op(pool, rng);
        d.run(&op);
        false
    })
}

/// Runs `ops` steps made by `step` (which draws everything from the seed's one RNG
/// stream and returns true when the trees should be compared right after it) on a
/// fresh [`Differential`], comparing the trees every `every` steps and after remounting
/// both sides halfway and at the end, and the uppers' markers with `compare_upper`; returns the number run and the report if the sides diverged (None
/// when the test must skip).
fn run_steps(
    d: Option<Differential>,
    seed: u64,
    ops: u64,
    every: u64,
    compare_upper: fn(&mut Differential, &str),
    mut step: impl FnMut(&mut StdRng, &mut Differential) -> bool,
) -> Option<(u64, Option<String>)> {
    let mut d = d?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = 0;
    for i in 0..ops {
        let now = step(&mut rng, &mut d);
        total += 1;
        if now || i % every == every - 1 || i + 1 == ops {
            d.compare(&format!("after step {}", i + 1));
        }
        if i + 1 == ops / 2 {
            // What was written must survive an unmount: same tree after remounting.
            d.remount();
            d.compare(&format!("after remounting at step {}", i + 1));
        }
        if d.mismatch_count() > 0 {
            // Later steps would only repeat the first divergence.
            break;
        }
    }
    if d.mismatch_count() == 0 {
        // The upper as the last step left it must show the same tree again.
        d.remount();
        d.compare("after remounting at the end");
    }
    compare_upper(&mut d, "at the end");
    Some((total, d.report()))
}

/// The seeds to run: `STRATA_RANDOM_SEED=N` alone (it reruns the one seed a failure
/// names), else `first..first + STRATA_<knob>` (default `default`).
fn seeds(knob: &str, first: u64, default: u64) -> std::ops::Range<u64> {
    match std::env::var("STRATA_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => n..n + 1,
        None => first..first + env_or(knob, default),
    }
}

#[test]
fn random_sequences_match_kernel_overlayfs() {
    let ops = env_or("STRATA_RANDOM_OPS", 250);
    // `STRATA_RANDOM_SEED=N` reruns the one seed a failure names.
    let mut failed = Vec::new();
    let mut total = 0;
    for seed in seeds("STRATA_RANDOM_SEEDS", 0, 12) {
        let d = Differential::new(layers::standard);
        let Some((n, report)) = run_seed(d, &STANDARD, seed, ops) else {
            return;
        };
        total += n;
        if let Some(r) = report {
            failed.push(format!("seed {seed}: {r}"));
        }
    }
    eprintln!(
        "{total} random operations run, {} seed(s) diverged",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// The implementation under test gets the layers in each whiteout/opaque format, the
/// kernel always in its own (char 0/0): modifying names around foreign-format markers
/// must behave the same (no marker may resurface or leak into the view).
/// `STRATA_RANDOM_FORMAT_SEEDS` (default 1) seeds per format.
#[test]
fn random_sequences_over_every_whiteout_format() {
    let ops = env_or("STRATA_RANDOM_OPS", 250);
    let per_format = env_or("STRATA_RANDOM_FORMAT_SEEDS", 1);
    let formats = WhiteoutFormat::ALL;
    let mut failed = Vec::new();
    for round in 0..per_format {
        for (i, format) in formats.into_iter().enumerate() {
            let seed = 100 + i as u64 + round * formats.len() as u64;
            let d = Differential::with_layers(
                |r| layers::whiteout_formats(r, WhiteoutFormat::Char),
                |r| layers::whiteout_formats(r, format),
            );
            let Some((_, report)) = run_seed(d, &FORMATS, seed, ops) else {
                return;
            };
            if let Some(r) = report {
                failed.push(format!("{format:?} (seed {seed}): {r}"));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// 65534, the unprivileged caller's uid and gid.
const NOBODY: u32 = 65534;

/// Who makes an operation, drawn from the seed's stream: root under umask 0, 002, 022,
/// 027 or 077 (5 in 8), or uid/gid 65534 under 022 (3 in 8).
fn gen_caller(rng: &mut StdRng) -> Caller {
    match rng.random_range(0..8) {
        i @ 0..5 => Caller::root([0, 0o002, 0o022, 0o027, 0o077][i]),
        _ => Caller::nobody(),
    }
}

/// Three lowers with places where 65534 may write: world-writable `pub` (0777) and
/// sticky `tmp` (1777), both merged over every lower, `home` (65534's own, with an
/// opaque `home/d` in the middle), set-group-ID `grp` (2775, group 65534), and root's
/// `ro` (0755) and `priv` (0700); files of 65534's and root's in each, some 0666,
/// set-user-ID and set-group-ID ones among them, whiteouts in the middle.
fn callers_layers(root: &std::path::Path) -> anyhow::Result<layers::LayerSet> {
    let set = layers::LayerSet::create(root, 3)?;
    let b = set.lower(2)?;
    b.dir("pub", 0o777)?
        .file("pub/mine", b"65534's\n", 0o644)?
        .owner("pub/mine", NOBODY, NOBODY)?
        .file("pub/root", b"root's\n", 0o644)?
        .file("pub/w", b"root's, 0666\n", 0o666)?
        .dir("pub/sub", 0o755)?
        .owner("pub/sub", NOBODY, NOBODY)?
        .file("pub/sub/f", b"f\n", 0o644)?
        .owner("pub/sub/f", NOBODY, NOBODY)?
        .dir("pub/rdir", 0o755)?
        .file("pub/rdir/f", b"root's\n", 0o644)?
        .dir("tmp", 0o1777)?
        .file("tmp/mine", b"65534's\n", 0o644)?
        .owner("tmp/mine", NOBODY, NOBODY)?
        .file("tmp/root", b"root's\n", 0o666)?
        .dir("tmp/rdir", 0o777)?
        .file("tmp/rdir/f", b"root's\n", 0o644)?
        .dir("tmp/ndir", 0o755)?
        .owner("tmp/ndir", NOBODY, NOBODY)?
        .file("tmp/ndir/f", b"65534's\n", 0o644)?
        .owner("tmp/ndir/f", NOBODY, NOBODY)?
        .dir("home", 0o755)?
        .owner("home", NOBODY, NOBODY)?
        .file("home/f", b"65534's\n", 0o600)?
        .owner("home/f", NOBODY, NOBODY)?
        .file("home/suid", b"set-user-ID\n", 0o4755)?
        .owner("home/suid", NOBODY, NOBODY)?
        .file("home/sgid", b"set-group-ID\n", 0o2775)?
        .owner("home/sgid", NOBODY, NOBODY)?
        .dir("home/d", 0o755)?
        .owner("home/d", NOBODY, NOBODY)?
        .file("home/d/g", b"g\n", 0o644)?
        .owner("home/d/g", NOBODY, NOBODY)?
        .file("home/rootf", b"root's\n", 0o644)?
        .dir("grp", 0o2775)?
        .owner("grp", 0, NOBODY)?
        .file("grp/f", b"group's\n", 0o664)?
        .owner("grp/f", 0, NOBODY)?
        .dir("ro", 0o755)?
        .file("ro/f", b"root's\n", 0o644)?
        .file("ro/w", b"root's, 0666\n", 0o666)?
        .file("ro/x", b"root's, 0700\n", 0o700)?
        .file("ro/suid", b"set-user-ID\n", 0o6777)?
        .dir("priv", 0o700)?
        .file("priv/f", b"root's\n", 0o644)?
        .file("f", b"root's\n", 0o644)?
        .file("nf", b"65534's\n", 0o666)?
        .owner("nf", NOBODY, NOBODY)?
        .finish()?;
    let m = set.lower(1)?;
    m.dir("pub", 0o777)?
        .file("pub/mid", b"65534's, middle\n", 0o644)?
        .owner("pub/mid", NOBODY, NOBODY)?
        .whiteout("pub/root")?
        .dir("tmp", 0o1777)?
        .file("tmp/mid", b"root's, middle\n", 0o666)?
        .dir("home", 0o755)?
        .owner("home", NOBODY, NOBODY)?
        .opaque("home/d")?
        .owner("home/d", NOBODY, NOBODY)?
        .file("home/d/new", b"new\n", 0o644)?
        .owner("home/d/new", NOBODY, NOBODY)?
        .finish()?;
    let t = set.lower(0)?;
    t.dir("pub", 0o777)?
        .file("pub/top", b"65534's, top\n", 0o664)?
        .owner("pub/top", NOBODY, NOBODY)?
        .dir("tmp", 0o1777)?
        .file("tmp/top", b"65534's, top\n", 0o644)?
        .owner("tmp/top", NOBODY, NOBODY)?
        .finish()?;
    Ok(set)
}

/// Aims at [`callers_layers`]: the shared dirs (world-writable and sticky twice as
/// often), 65534's and root's objects in them.
const CALLERS: Pool = Pool {
    dirs: &[
        "", "pub", "pub", "pub/sub", "pub/rdir", "tmp", "tmp", "tmp/ndir", "tmp/rdir", "home",
        "home/d", "grp", "ro", "priv",
    ],
    names: &[
        "mine", "root", "w", "mid", "top", "f", "g", "new", "x", "y", "sub", "ndir", "rdir", "d",
        "suid", "sgid",
    ],
};

/// The objects [`callers_layers`] starts with (but the dirs), so that half the callers
/// test's operations aim at something that exists.
const CALLERS_EXISTING: [&str; 29] = [
    "pub/mine",
    "pub/w",
    "pub/mid",
    "pub/top",
    "pub/sub",
    "pub/sub/f",
    "pub/rdir",
    "pub/rdir/f",
    "tmp/mine",
    "tmp/root",
    "tmp/mid",
    "tmp/top",
    "tmp/rdir",
    "tmp/rdir/f",
    "tmp/ndir",
    "tmp/ndir/f",
    "home/f",
    "home/suid",
    "home/sgid",
    "home/d",
    "home/d/new",
    "home/rootf",
    "grp/f",
    "ro/f",
    "ro/w",
    "ro/x",
    "ro/suid",
    "f",
    "nf",
];

/// A path in the callers test: half the time an object the layers hold, else a name in
/// one of the pool's dirs.
fn pick_c(pool: &Pool, rng: &mut StdRng) -> String {
    if rng.random_bool(0.5) {
        CALLERS_EXISTING[rng.random_range(0..CALLERS_EXISTING.len())].to_string()
    } else {
        pick(pool, rng)
    }
}

/// One operation for the callers test: creation with modes a umask trims (0666, 0777,
/// 1777, 2775), changes 65534 may or may not make, sticky-dir renames and removals,
/// set-ID bits.
fn gen_caller_op(pool: &Pool, rng: &mut StdRng) -> Op {
    let a = pick_c(pool, rng);
    let text = |rng: &mut StdRng| format!("{:x}", rng.random::<u32>());
    let mode = |rng: &mut StdRng, modes: &[u32]| modes[rng.random_range(0..modes.len())];
    match rng.random_range(0..24) {
        0 => Op::Write(a, text(rng)),
        1 => Op::Append(a, text(rng)),
        2 => Op::WriteAt(a, rng.random_range(0..64), text(rng)),
        3 => Op::Truncate(a, rng.random_range(0..16)),
        4 => Op::Create(a, mode(rng, &[0o666, 0o644, 0o777, 0o6755, 0o600])),
        5 | 6 => Op::Mkdir(a, mode(rng, &[0o777, 0o755, 0o1777, 0o2775, 0o700])),
        7 => Op::Rmdir(a),
        8 => Op::Unlink(a),
        9 | 10 => {
            let flags =
                [0, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE][rng.random_range(0..4)];
            Op::Rename(a, pick_c(pool, rng), flags)
        }
        11 => Op::Link(a, pick_c(pool, rng)),
        12 => Op::Symlink(pick_c(pool, rng), a),
        13 => Op::Chmod(
            a,
            mode(rng, &[0o600, 0o666, 0o777, 0o1777, 0o2775, 0o4755, 0o640]),
        ),
        14 => {
            let id = |rng: &mut StdRng| [0, NOBODY][rng.random_range(0..2)];
            Op::Chown(a, id(rng), id(rng))
        }
        15 => Op::SetXattr(
            a,
            format!("user.r{}", rng.random_range(0..2)),
            text(rng).into(),
        ),
        16 => Op::RemoveXattr(a, format!("user.r{}", rng.random_range(0..2))),
        17 => Op::Mkfifo(a),
        18 => Op::Utimes(a, 1_600_000_000 + rng.random_range(0..100)),
        19 => Op::WriteFstatPriv(a),
        20 => Op::TmpFile(
            pool.dirs[rng.random_range(0..pool.dirs.len())].into(),
            text(rng),
        ),
        21 => Op::Read(a),
        22 => Op::ListDir(pool.dirs[rng.random_range(0..pool.dirs.len())].into()),
        _ => Op::OpenTrunc(a),
    }
}

/// Each operation made by a caller drawn from the same stream (root under each umask,
/// or 65534) over [`callers_layers`]: creation modes, owners, set-group-ID inheritance,
/// permission errnos and sticky-dir rules must be the kernel's.
/// `STRATA_RANDOM_CALLER_SEEDS` (default 4) seeds from 1000 of `STRATA_RANDOM_OPS`.
#[test]
fn random_callers_match_kernel_overlayfs() {
    let ops = env_or("STRATA_RANDOM_OPS", 250);
    let mut failed = Vec::new();
    for seed in seeds("STRATA_RANDOM_CALLER_SEEDS", 1000, 4) {
        let d = Differential::new(callers_layers);
        let Some((_, report)) =
            run_steps(d, seed, ops, 10, Differential::compare_upper, |rng, d| {
                let op = gen_caller_op(&CALLERS, rng);
                d.run_as(&op, gen_caller(rng));
                false
            })
        else {
            return;
        };
        if let Some(r) = report {
            failed.push(format!("seed {seed}: {r}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// Four lowers holding the same directories, populated mostly in the bottom one:
///
/// * `l3` (bottom): `a/dir/{f1,f2,sub/g,sub/deep/h}`, empty `a/empty`, `a/keep`,
///   `b/dir2/{k,deep/l}`, `c/x/{y,z}`, 65534's `n/dir/{f,sub/s}` (in 65534's `n`),
///   65534's `w/dir/f` (in world-writable `w`), `p/q/r/s`, `e/dir/{f,sub/g}` and empty
///   `e/empty` (both also empty in every lower above).
/// * `l2`: `a/dir/{m2,sub/s2}` and a whiteout over `a/dir/f2`; `b/dir2` opaque with
///   `o2`; `c/x/z` over the bottom's; `n/dir/n2`; `p/q` again.
/// * `l1`: `a/dir/n1`, a whiteout over `a/dir/sub/deep`; `c/x` opaque with `o1`;
///   empty `b`, `a/empty`; `n/dir/sub`.
/// * `l0` (top): empty `a/dir`, `a/empty`, `n/dir`, `w/dir`, `b`; `a/t0`.
fn renamed_dirs_layers(root: &std::path::Path) -> anyhow::Result<layers::LayerSet> {
    let set = layers::LayerSet::create(root, 4)?;
    let own = |l: &layers::Layer, rel: &str, mode: u32| -> anyhow::Result<()> {
        l.dir(rel, mode)?.owner(rel, NOBODY, NOBODY)?;
        Ok(())
    };
    let b = set.lower(3)?;
    b.file("a/dir/f1", b"f1\n", 0o644)?
        .file("a/dir/f2", b"f2\n", 0o644)?
        .file("a/dir/sub/g", b"g\n", 0o644)?
        .file("a/dir/sub/deep/h", b"h\n", 0o644)?
        .xattr("a/dir", "user.dir", b"bottom")?
        .dir("a/empty", 0o755)?
        .file("a/keep", b"keep\n", 0o644)?
        .file("b/dir2/k", b"k\n", 0o644)?
        .file("b/dir2/deep/l", b"l\n", 0o644)?
        .file("c/x/y", b"y\n", 0o644)?
        .file("c/x/z", b"z from bottom\n", 0o644)?
        .file("p/q/r/s", b"s\n", 0o644)?;
    own(&b, "n", 0o755)?;
    own(&b, "n/dir", 0o755)?;
    own(&b, "n/dir/sub", 0o755)?;
    b.file("e/dir/f", b"f\n", 0o644)?
        .file("e/dir/sub/g", b"g\n", 0o644)?
        .dir("e/empty", 0o755)?;
    b.file("n/dir/f", b"f\n", 0o644)?
        .owner("n/dir/f", NOBODY, NOBODY)?
        .file("n/dir/sub/s", b"s\n", 0o644)?
        .owner("n/dir/sub/s", NOBODY, NOBODY)?
        .dir("w", 0o777)?;
    own(&b, "w/dir", 0o755)?;
    b.file("w/dir/f", b"f\n", 0o644)?
        .owner("w/dir/f", NOBODY, NOBODY)?
        .finish()?;
    let m = set.lower(2)?;
    m.file("a/dir/m2", b"m2\n", 0o644)?
        .whiteout("a/dir/f2")?
        .file("a/dir/sub/s2", b"s2\n", 0o644)?
        .opaque("b/dir2")?
        .file("b/dir2/o2", b"o2\n", 0o644)?
        .file("c/x/z", b"z from l2\n", 0o644)?
        .dir("p/q", 0o755)?;
    m.dir("e/dir", 0o755)?.dir("e/empty", 0o755)?;
    own(&m, "n", 0o755)?;
    own(&m, "n/dir", 0o755)?;
    m.file("n/dir/n2", b"n2\n", 0o644)?
        .owner("n/dir/n2", NOBODY, NOBODY)?
        .finish()?;
    let h = set.lower(1)?;
    h.file("a/dir/n1", b"n1\n", 0o644)?
        .dir("a/dir/sub", 0o755)?
        .whiteout("a/dir/sub/deep")?
        .opaque("c/x")?
        .file("c/x/o1", b"o1\n", 0o644)?
        .dir("b", 0o755)?
        .dir("a/empty", 0o755)?;
    h.dir("e/dir", 0o755)?.dir("e/empty", 0o755)?;
    own(&h, "n", 0o755)?;
    own(&h, "n/dir", 0o755)?;
    own(&h, "n/dir/sub", 0o755)?;
    h.finish()?;
    let t = set.lower(0)?;
    t.dir("a/dir", 0o755)?
        .dir("a/empty", 0o755)?
        .file("a/t0", b"t0\n", 0o644)?
        .dir("b", 0o755)?
        .dir("w", 0o777)?;
    t.dir("e/dir", 0o755)?.dir("e/empty", 0o755)?;
    own(&t, "n", 0o755)?;
    own(&t, "n/dir", 0o755)?;
    own(&t, "w/dir", 0o755)?;
    t.finish()?;
    Ok(set)
}

/// The directories [`renamed_dirs_layers`] merges over several lowers (and some of
/// their parents and children): what the renames test moves around.
const RENAMED: [&str; 20] = [
    "a/dir",
    "a/dir/sub",
    "a/dir/sub/deep",
    "a/empty",
    "a",
    "b/dir2",
    "b/dir2/deep",
    "b",
    "c/x",
    "c",
    "n/dir",
    "n/dir/sub",
    "w/dir",
    "p/q",
    "p/q/r",
    "p",
    "e/dir",
    "e/dir/sub",
    "e/empty",
    "e",
];

/// Where renamed directories go (besides back home and into each other).
const RENAME_PLACES: [&str; 11] = [
    "", "a", "a/empty", "b", "c", "n", "w", "p", "new", "e", "e/empty",
];
const RENAME_NAMES: [&str; 8] = ["x", "y", "r1", "r2", "dir", "dir2", "sub", "empty"];
const FILE_NAMES: [&str; 9] = ["f1", "f2", "m2", "n1", "g", "o2", "k", "new", "t0"];

/// The current name of each directory of [`RENAMED`], followed through the renames
/// the kernel made (the reference), so the test keeps renaming renamed directories.
struct Moves {
    /// (original path, current path).
    dirs: Vec<(String, String)>,
}

impl Moves {
    fn new() -> Self {
        Self {
            dirs: RENAMED
                .iter()
                .map(|d| (d.to_string(), d.to_string()))
                .collect(),
        }
    }

    fn any(&self, rng: &mut StdRng) -> (String, String) {
        self.dirs[rng.random_range(0..self.dirs.len())].clone()
    }

    /// Records that the kernel renamed `from` to `to` (swapped them when `exchange`).
    fn renamed(&mut self, from: &str, to: &str, exchange: bool) {
        let moved = |p: &str, a: &str, b: &str| -> Option<String> {
            let rest = p.strip_prefix(a)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{b}{rest}"))
        };
        for (_, cur) in &mut self.dirs {
            if let Some(n) = moved(cur, from, to) {
                *cur = n;
            } else if exchange && let Some(n) = moved(cur, to, from) {
                *cur = n;
            }
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// One step of the renames test: mostly renames of the merged directories (to new
/// names, into other dirs, back to their original names, again after a rename), then
/// changes inside them. Returns true after a directory rename the kernel made.
fn renames_step(moves: &mut Moves, rng: &mut StdRng, d: &mut Differential) -> bool {
    let text = |rng: &mut StdRng| format!("{:x}", rng.random::<u32>());
    let (orig, cur) = moves.any(rng);
    let other = moves.any(rng).1;
    let file = |rng: &mut StdRng, dir: &str| join(dir, FILE_NAMES[rng.random_range(0..9)]);
    let op = match rng.random_range(0..20) {
        0..10 => {
            let to = match rng.random_range(0..4) {
                0 => orig.clone(),
                1 => other.clone(),
                2 => join(&other, base(&cur)),
                _ => join(
                    RENAME_PLACES[rng.random_range(0..RENAME_PLACES.len())],
                    RENAME_NAMES[rng.random_range(0..RENAME_NAMES.len())],
                ),
            };
            let flags =
                [0, 0, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE][rng.random_range(0..5)];
            Op::Rename(cur.clone(), to, flags)
        }
        10 => Op::Rename(file(rng, &cur), file(rng, &other), 0),
        11 | 12 => Op::Write(file(rng, &cur), text(rng)),
        13 => Op::Append(file(rng, &cur), text(rng)),
        14 => Op::Unlink(file(rng, &cur)),
        15 => Op::Mkdir(
            join(&cur, RENAME_NAMES[rng.random_range(0..RENAME_NAMES.len())]),
            0o755,
        ),
        16 => Op::Rmdir(cur.clone()),
        17 => Op::Link(file(rng, &cur), file(rng, &other)),
        18 => Op::SetXattr(cur.clone(), "user.dir".into(), text(rng).into()),
        _ => Op::Chmod(cur.clone(), [0o755, 0o700, 0o777][rng.random_range(0..3)]),
    };
    // Mostly root (under any umask), now and then 65534 (who owns `n/dir` and `w/dir`).
    let caller = match rng.random_range(0..10) {
        i @ 0..5 => Caller::root([0, 0o002, 0o022, 0o027, 0o077][i]),
        5..8 => Caller::root(0o022),
        _ => Caller::nobody(),
    };
    let (k, _) = d.run_as(&op, caller);
    match op {
        Op::Rename(from, to, flags) if k == 0 && from == cur => {
            moves.renamed(&from, &to, flags == libc::RENAME_EXCHANGE);
            true
        }
        _ => false,
    }
}

/// Directories merged over three and four lowers (populated in the bottom one, with
/// whiteouts and opaque dirs in the middle) renamed again and again — to new names,
/// into other (also renamed) dirs, back to their original names — with changes inside
/// them, remounting halfway: every rename must keep every lower's entries below the
/// layer the redirect was written for. Trees are compared after each directory rename.
/// `STRATA_RANDOM_RENAME_SEEDS` (default 4) seeds from 2000 of `STRATA_RANDOM_OPS`.
#[test]
fn random_dir_renames_over_many_lowers() {
    let ops = env_or("STRATA_RANDOM_OPS", 250);
    let mut failed = Vec::new();
    for seed in seeds("STRATA_RANDOM_RENAME_SEEDS", 2000, 4) {
        let d = Differential::new(renamed_dirs_layers);
        let mut moves = Moves::new();
        let Some((_, report)) = run_steps(
            d,
            seed,
            ops,
            10,
            Differential::compare_upper_following_redirects,
            |rng, d| renames_step(&mut moves, rng, d),
        ) else {
            return;
        };
        if let Some(r) = report {
            failed.push(format!("seed {seed}: {r}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
