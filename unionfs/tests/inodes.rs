//! Inode numbers: stable for an object's lifetime — across copy-up and remount — and
//! unique within the mount; one st_dev for every object. Checked on both sides (the
//! kernel with `xino=on` is the proof the expectations are right).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use fixtures::layers;

const PATHS: [&str; 12] = [
    "top", "mid", "d", "d/y", "d/keep", "h1", "h2", "ren", "ren/a", "exec", "fifo", "abs",
];

fn inos(m: &Path) -> BTreeMap<&'static str, (u64, u64)> {
    PATHS
        .iter()
        .filter_map(|r| {
            std::fs::symlink_metadata(m.join(r))
                .ok()
                .map(|md| (*r, (md.dev(), md.ino())))
        })
        .collect()
}

fn check(d: &mut Differential, label: &str, before: &[BTreeMap<&str, (u64, u64)>; 2]) {
    let sides = [
        ("kernel", d.km().to_path_buf()),
        (d.imp.name, d.um().to_path_buf()),
    ];
    for (i, (side, m)) in sides.iter().enumerate() {
        let now = inos(m);
        for (path, (_, ino)) in &before[i] {
            let after = now.get(path).map(|v| v.1);
            if after != Some(*ino) {
                d.mismatch(format!(
                    "{side}: st_ino of {path} was {ino}, {label} {after:?}"
                ));
            }
        }
        let root_dev = std::fs::metadata(m).map(|md| md.dev()).ok();
        let devs: std::collections::BTreeSet<u64> = now.values().map(|v| v.0).collect();
        if devs.len() != 1 || devs.iter().next().copied() != root_dev {
            d.mismatch(format!(
                "{side}: st_dev not one value {label}: {devs:?} root {root_dev:?}"
            ));
        }
        let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
        for (path, (_, ino)) in &now {
            if let Some(other) = seen.insert(*ino, path) {
                let linked = matches!((*path, other), ("h1", "h2") | ("h2", "h1"));
                if !linked {
                    d.mismatch(format!(
                        "{side}: {path} and {other} share st_ino {ino} {label}"
                    ));
                }
            }
        }
    }
}

#[test]
fn st_ino_stable_across_copy_up_and_remount_and_one_st_dev() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    let before = [inos(d.km()), inos(d.um())];
    check(&mut d, "at mount", &before);
    for op in [
        Op::Append(p("top"), p("+")),
        Op::Chmod(p("mid"), 0o600),
        Op::Write(p("d/new"), p("n")), // copies d up
        Op::SetXattr(p("d/keep"), p("user.x"), b"1".to_vec()),
        Op::Append(p("h1"), p("+")),
        Op::Rename(p("ren/a"), p("ren/a2"), 0),
        Op::Rename(p("ren/a2"), p("ren/a"), 0),
        Op::Chown(p("abs"), 5, 5),
        Op::Chmod(p("fifo"), 0o600),
        Op::Utimes(p("exec"), 1_600_000_000),
    ] {
        d.step_expect(op, 0);
    }
    check(&mut d, "after copy-up", &before);
    d.remount();
    check(&mut d, "after remount", &before);
    d.compare("after remount");
    d.finish();
}
