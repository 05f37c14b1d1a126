//! Crash anywhere: stratafs killed (SIGKILL) at a random moment while an operation runs
//! through it — copy-up of a small and of a large file, a hard-linked file's copy-up, a
//! chmod, renames of lower directories, a whiteout, an opaque directory over a whiteout.
//! After a remount the merged tree must be the tree before the operation or the tree
//! after it (as kernel overlayfs makes it), never a mix and never a half file; the work
//! dir's temporary area must be empty again; and kernel overlayfs, mounting the same
//! upper, must show the same tree.
//!
//! `STRATA_CRASH_SEEDS` sets how many kills (default 48, each at another moment of one of
//! the operations, round robin); a failure names its seed, and `STRATA_CRASH_SEED=N`
//! reruns just that one.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use fixtures::layers::{self, LayerSet, copy_layer_set};
use rand::{Rng, SeedableRng};

/// One operation killed in flight, after `prep` ran whole: each one system call, so
/// "before" and "after" are the only states a caller may see.
struct Case {
    prep: Vec<Op>,
    op: Op,
    /// Whether kernel overlayfs must show the same upper alike: not after the copy-up
    /// of a lower hard-linked file, whose other names stratafs finds through its own
    /// index, which the kernel does not read (README, "hard links kept together across
    /// copy-up").
    kernel_alike: bool,
}

fn case(prep: Vec<Op>, op: Op) -> Case {
    Case {
        prep,
        op,
        kernel_alike: true,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(vec![], Op::Append(p("d/keep"), p("+"))),
        case(vec![], Op::WriteAt(p("big"), 12 << 20, p("middle"))),
        Case {
            kernel_alike: false,
            ..case(vec![], Op::Append(p("h1"), p("+")))
        },
        case(vec![], Op::Chmod(p("owned"), 0o640)),
        case(vec![], Op::Rename(p("ren"), p("ren-moved"), 0)),
        case(vec![], Op::Rename(p("d/sub"), p("sub-moved"), 0)),
        case(vec![], Op::Unlink(p("top"))),
        case(vec![], Op::Rename(p("mid"), p("gone"), 0)),
        case(vec![], Op::Mkdir(p("wd"), 0o750)),
        // An upper copy over a lower file removed: the whiteout replaces it.
        case(
            vec![Op::Append(p("d/keep"), p("+"))],
            Op::Unlink(p("d/keep")),
        ),
        // A merged directory emptied through the mount, then removed.
        case(vec![Op::Unlink(p("ne/child"))], Op::Rmdir(p("ne"))),
        // A lower file renamed over another lower file.
        case(vec![], Op::Rename(p("top"), p("mid"), 0)),
    ]
}

/// The standard layers plus a 24 MiB file, so a copy-up lasts long enough to be cut.
fn build(root: &Path) -> anyhow::Result<LayerSet> {
    let set = layers::standard(root)?;
    set.lower(2)?.large("big", 24 << 20, 9)?.finish()?;
    Ok(set)
}

/// Runs `ops` under `m`, each of which must succeed.
fn apply_all(ops: &[Op], m: &Path, side: &str) {
    for op in ops {
        let r = op.apply_as(m, Caller::root(0o022));
        assert_eq!(r, 0, "{op:?} on {side}: {}", strerror(r));
    }
}

/// Whether `got` is `before` except that directories above the operation's first path
/// show a recent mtime: a copy-up links its name into the upper parent and then puts
/// the parent's times back, two steps with no way to make them one. Kernel overlayfs
/// has the same window (`ovl_copy_up_one` renames the copy in, then sets the parent's
/// timestamps), so a kill between them leaves the tree before the operation with a
/// parent touched — nothing else may differ.
fn before_but_parent_times(before: &Snapshot, got: &Snapshot, op: &Op) -> bool {
    let path = match op {
        Op::Append(p, _)
        | Op::WriteAt(p, _, _)
        | Op::Chmod(p, _)
        | Op::Rename(p, _, _)
        | Op::Unlink(p)
        | Op::Rmdir(p)
        | Op::Mkdir(p, _) => p,
        _ => return false,
    };
    let parents: Vec<&str> = Path::new(path)
        .ancestors()
        .skip(1)
        .filter_map(|a| a.to_str())
        .filter(|a| !a.is_empty())
        .collect();
    if got.len() != before.len() {
        return false;
    }
    got.iter().all(|(k, g)| {
        let Some(b) = before.get(k) else {
            return false;
        };
        g == b
            || (parents.contains(&k.as_str())
                && b.starts_with("dir ")
                && with_recent_mtime(b) == *g)
    })
}

/// A snapshot entry with its mtime shown as recent.
fn with_recent_mtime(entry: &str) -> String {
    let Some(at) = entry.find(" mtime ") else {
        return entry.to_string();
    };
    let rest = &entry[at + " mtime ".len()..];
    let end = rest.find(' ').unwrap_or(rest.len());
    format!("{} mtime recent{}", &entry[..at], &rest[end..])
}

/// The trees kernel overlayfs shows after `c.prep` and after `c.op` on a copy of `base`.
fn kernel_before_after(base: &LayerSet, c: &Case, at: &Path) -> (Snapshot, Snapshot) {
    let set = copy_layer_set(base, at).expect("copy layers");
    let m = mount_kernel(&set, true);
    apply_all(&c.prep, &set.mnt, "kernel overlayfs");
    let before = snapshot(&set.mnt);
    apply_all(std::slice::from_ref(&c.op), &set.mnt, "kernel overlayfs");
    let after = snapshot(&set.mnt);
    m.unmount();
    (before, after)
}

/// stratafs in the foreground on `set`, its process the caller's to kill.
fn start_daemon(imp: &Impl, set: &LayerSet) -> Child {
    let child = Command::new(&imp.bin)
        .arg("-f")
        .args(["-o", &set.options()])
        .arg(&set.mnt)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", imp.bin.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mounted(&set.mnt) {
        assert!(Instant::now() < deadline, "stratafs -f did not mount");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// Detaches whatever is left mounted at `p` (a mount whose daemon is dead).
fn detach(p: &Path) {
    let c = cpath(p);
    for _ in 0..100 {
        if !is_mounted(p) {
            return;
        }
        // SAFETY: `c` is a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    assert!(!is_mounted(p), "{} stays mounted", p.display());
}

/// Files left in the work dir's temporary area (`work/work`), where copy-ups and
/// whiteouts are prepared: a remount must have cleaned them.
fn leftovers(work: &Path) -> Vec<String> {
    let tmp = work.join("work");
    fs::read_dir(&tmp)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How long `c.op` takes through stratafs, not killed (the window the kills aim at).
fn duration(imp: &Impl, base: &LayerSet, c: &Case, at: &Path) -> Duration {
    let set = copy_layer_set(base, at).expect("copy layers");
    let mut daemon = start_daemon(imp, &set);
    apply_all(&c.prep, &set.mnt, "stratafs");
    let t = Instant::now();
    let r = c.op.apply_as(&set.mnt, Caller::root(0o022));
    let took = t.elapsed();
    assert_eq!(r, 0, "{:?} through stratafs: {}", c.op, strerror(r));
    Mount::adopt(&set.mnt, true).unmount();
    let _ = daemon.wait();
    took
}

#[test]
fn killed_daemon_leaves_the_tree_before_or_after_each_operation() {
    if !privileged_or_skip() {
        return;
    }
    let imp = Impl::selected();
    if imp.name != "stratafs" {
        eprintln!("skipped: the crash harness drives stratafs");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = build(&tmp.path().join("base")).expect("generate layers");
    let cases = cases();
    // The kernel's trees before and after each operation, and how long stratafs takes
    // for it.
    let mut states = Vec::new();
    let mut windows = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        states.push(kernel_before_after(
            &base,
            c,
            &tmp.path().join(format!("kernel{i}")),
        ));
        windows.push(duration(
            &imp,
            &base,
            c,
            &tmp.path().join(format!("time{i}")),
        ));
    }
    let seeds: Vec<u64> = match std::env::var("STRATA_CRASH_SEED") {
        Ok(s) => vec![s.parse().expect("STRATA_CRASH_SEED: a number")],
        Err(_) => {
            let n = std::env::var("STRATA_CRASH_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(48u64);
            (0..n).collect()
        }
    };
    let mut failures = Vec::new();
    let mut outcomes = [0usize; 3];
    for seed in seeds {
        let i = (seed as usize) % cases.len();
        let (c, (before, after)) = (&cases[i], &states[i]);
        let op = &c.op;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Anywhere in the operation's window, a little past its end included.
        let window = windows[i].as_micros() as u64 * 3 / 2 + 100;
        let delay = Duration::from_micros(rng.random_range(0..window));
        let set =
            copy_layer_set(&base, &tmp.path().join(format!("seed{seed}"))).expect("copy layers");
        let mut daemon = start_daemon(&imp, &set);
        apply_all(&c.prep, &set.mnt, "stratafs");
        let mnt = set.mnt.clone();
        let op2 = op.clone();
        let runner = std::thread::spawn(move || op2.apply_as(&mnt, Caller::root(0o022)));
        std::thread::sleep(delay);
        let _ = daemon.kill();
        let _ = daemon.wait();
        let _ = runner.join();
        detach(&set.mnt);
        let label = format!("seed {seed}: {op:?} killed after {delay:?}");
        let m = match imp.mount_with(&set.mnt, &set.options()) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{label}: remount failed: {e}"));
                continue;
            }
        };
        let got = snapshot(&set.mnt);
        let left = leftovers(&set.work);
        m.unmount();
        if &got == before {
            outcomes[0] += 1;
        } else if &got == after {
            outcomes[1] += 1;
        } else if before_but_parent_times(before, &got, op) {
            outcomes[2] += 1;
        } else {
            let d1 = diff("before", before, "remounted", &got);
            let d2 = diff("after", after, "remounted", &got);
            failures.push(format!(
                "{label}: the tree is neither the one before nor the one after:\n  against before: {}\n  against after: {}",
                d1.join("\n    "),
                d2.join("\n    ")
            ));
            continue;
        }
        if !left.is_empty() {
            failures.push(format!(
                "{label}: work/work holds {left:?} after the remount"
            ));
        }
        // The same upper under kernel overlayfs shows the same tree.
        if !c.kernel_alike {
            let _ = fs::remove_dir_all(&set.root);
            continue;
        }
        set.reset_work().expect("reset the work dir");
        let k = mount_kernel(&set, true);
        let kernel_view = snapshot(&set.mnt);
        k.unmount();
        let d = diff("stratafs", &got, "kernel overlayfs", &kernel_view);
        if !d.is_empty() {
            failures.push(format!(
                "{label}: kernel overlayfs on the upper differs:\n    {}",
                d.join("\n    ")
            ));
        }
        let _ = fs::remove_dir_all(&set.root);
    }
    eprintln!(
        "crash harness: {} kills left the tree as before, {} as before with a copied-up \
         name's parent times not yet put back, {} as after, {} failed",
        outcomes[0],
        outcomes[2],
        outcomes[1],
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
