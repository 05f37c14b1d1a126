//! Seeded random operation sequences run on kernel overlayfs and on the implementation
//! under test over identical layers: each operation's errno must match, and the merged
//! trees are compared every few steps and after remounting both halfway. `STRATA_RANDOM_SEEDS` (default 12) seeds of
//! `STRATA_RANDOM_OPS` (default 250) operations: 3000 in CI. A seed stops at its first
//! divergence (later steps would only repeat it); all seeds run.

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
    let mut d = d?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = 0;
    for i in 0..ops {
        let op = gen_op(pool, &mut rng);
        d.run(&op);
        total += 1;
        if i % 10 == 9 || i + 1 == ops {
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
    d.compare_upper("at the end");
    Some((total, d.report()))
}

#[test]
fn random_sequences_match_kernel_overlayfs() {
    let ops = env_or("STRATA_RANDOM_OPS", 250);
    // `STRATA_RANDOM_SEED=N` reruns the one seed a failure names.
    let seeds = match std::env::var("STRATA_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => n..n + 1,
        None => 0..env_or("STRATA_RANDOM_SEEDS", 12),
    };
    let mut failed = Vec::new();
    let mut total = 0;
    for seed in seeds {
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
