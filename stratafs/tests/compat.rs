//! Compatibility with fuse-overlayfs 2.0 (the Rust rewrite) where stratafs stands in
//! for it: `uidmapping=`/`gidmapping=` read as fuse-overlayfs reads them
//! (`STORED:SHOWN:COUNT`, podman's leading colon), checked against fuse-overlayfs 2.0
//! itself mounted over a copy of the same layers: the owners shown for lower files,
//! and the owners stored in the upper for files made by callers of several uids
//! (mapped and not) and for chown.
//!
//! fuse-overlayfs 2.0 is found at `$STRATA_FUSE_OVERLAYFS2`, `~/.cargo/bin/fuse-overlayfs`
//! or where `scripts/deps` installs it; without it the differential test is skipped
//! with the reason, or fails under `CI=true`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Lower entries and their owners: mapped by every case below, by some, or by none.
const LOWER: &[(&str, u32, u32)] = &[
    ("root-file", 0, 0),
    ("one", 1, 1),
    ("five", 5, 5),
    ("user-1000", 1000, 1000),
    ("sub-100000", 100000, 100000),
    ("sub-100005", 100005, 100007),
    ("far-70000", 70000, 70000),
    ("mixed", 0, 5),
];

/// Callers that create files through the mount (uid, gid).
const CALLERS: &[(u32, u32)] = &[(0, 0), (1000, 1000), (100000, 100000), (1, 1), (7, 7)];

/// Owners given with chown through the mount (as root).
const CHOWNS: &[(&str, u32, u32)] = &[
    ("root-file", 1000, 1000),
    ("one", 100003, 100003),
    ("five", 7, 7),
];

/// Makes `root/{l,u,w,m}`: the lower holds a file and a directory per `LOWER` entry,
/// owned as it says, and a world-writable directory for callers to create in.
fn layers(root: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let [l, u, w, m] = ["l", "u", "w", "m"].map(|d| root.join(d));
    for d in [&l, &u, &w, &m] {
        fs::create_dir_all(d).expect("mkdir");
    }
    for (name, uid, gid) in LOWER {
        let f = l.join(name);
        fs::write(&f, name).expect("write lower");
        std::os::unix::fs::lchown(&f, Some(*uid), Some(*gid)).expect("chown lower");
        let d = l.join(format!("{name}.d"));
        fs::create_dir(&d).expect("mkdir lower");
        std::os::unix::fs::lchown(&d, Some(*uid), Some(*gid)).expect("chown lower");
    }
    // In the upper too, so creating in it copies no directory up (fuse-overlayfs 2.0
    // copies a directory up with its umask applied: 1777 would become 1755).
    for open in [l.join("open"), u.join("open")] {
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
    }
    for d in [root, &l] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (l, u, w, m)
}

/// Runs `script` with `sh -c` as uid/gid (no supplementary groups) in `dir`.
fn run_as(uid: u32, gid: u32, dir: &Path, script: &str) -> bool {
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .status()
        .expect("run setpriv (package util-linux)")
        .success()
}

type Owners = BTreeMap<String, String>;

fn owner(p: &Path) -> String {
    match fs::symlink_metadata(p) {
        Ok(md) => format!("{}:{}", md.uid(), md.gid()),
        Err(e) => format!("error {}", e.raw_os_error().unwrap_or(0)),
    }
}

/// What one implementation does with `mapping` over a fresh copy of the layers:
/// owners shown for the lower entries; then what callers created and root chowned:
/// the owners stored in the upper, and those shown by a fresh mount (fuse-overlayfs
/// 2.0 answers CREATE, MKDIR and SETATTR with the stored owners, which the kernel
/// caches: only a later lookup shows the mapped ones).
fn observe(bin: &Path, root: &Path, mapping: &str) -> Owners {
    let (l, u, w, m) = layers(root);
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},{mapping}",
        l.display(),
        u.display(),
        w.display()
    );
    let guard = mount_daemon(bin, &opts, &m);
    let mut seen = Owners::new();
    for (name, _, _) in LOWER {
        for n in [name.to_string(), format!("{name}.d")] {
            seen.insert(format!("shown {n}"), owner(&m.join(&n)));
        }
    }
    let mut made = Vec::new();
    for (uid, gid) in CALLERS {
        let file = format!("by-{uid}");
        let dir = format!("dir-by-{uid}");
        let ok = run_as(
            *uid,
            *gid,
            &m.join("open"),
            &format!(": > {file} && mkdir {dir}"),
        );
        seen.insert(format!("create as {uid}:{gid}"), ok.to_string());
        made.push(Path::new("open").join(file));
        made.push(Path::new("open").join(dir));
    }
    for (name, uid, gid) in CHOWNS {
        let r = std::os::unix::fs::lchown(m.join(name), Some(*uid), Some(*gid));
        seen.insert(
            format!("chown {name} {uid}:{gid}"),
            match r {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {}", e.raw_os_error().unwrap_or(0)),
            },
        );
        made.push(PathBuf::from(name));
    }
    guard.unmount();
    for p in &made {
        seen.insert(format!("stored {}", p.display()), owner(&u.join(p)));
    }
    // The remount on a fresh mount point (see `mount_daemon`).
    let m = root.join("m2");
    fs::create_dir(&m).expect("mkdir");
    let guard = mount_daemon(bin, &opts, &m);
    for p in &made {
        seen.insert(
            format!("shown {} after remount", p.display()),
            owner(&m.join(p)),
        );
    }
    guard.unmount();
    seen
}

/// Mapping options each run with both implementations.
const MAPPINGS: &[&str] = &[
    "uidmapping=0:1000:1,gidmapping=0:1000:1",
    // podman's form for a rootful --uidmap: a leading colon.
    "uidmapping=:0:100000:65536,gidmapping=:0:100000:65536",
    "uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1:1:100000:65536",
    "uidmapping=0:1000:1:1:100000:65536",
    "uidmapping=0:1000:1,gidmapping=0:1000:1,squash_to_uid=42",
];

/// stratafs and fuse-overlayfs 2.0, same options over copies of the same layers, show
/// the same owners and store the same owners (mapped ids, unmapped ids, squash).
#[test]
fn id_mappings_match_fuse_overlayfs_2() {
    if !privileged_or_skip() {
        return;
    }
    let Some(fo2) = fuse_overlayfs2_or_skip() else {
        return;
    };
    let stratafs = PathBuf::from(env!("CARGO_BIN_EXE_stratafs"));
    let mut mismatches = Vec::new();
    for (i, mapping) in MAPPINGS.iter().enumerate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let theirs = observe(&fo2, &tmp.path().join(format!("fo2-{i}")), mapping);
        let ours = observe(&stratafs, &tmp.path().join(format!("strata-{i}")), mapping);
        for (what, want) in &theirs {
            let got = ours.get(what).map(String::as_str).unwrap_or("(missing)");
            if got != want {
                mismatches.push(format!(
                    "-o {mapping}: {what}: fuse-overlayfs 2.0 {want}, stratafs {got}"
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// The reading fuse-overlayfs documents, checked on stratafs alone (no reference
/// needed): with `uidmapping=0:1000:1`, a lower file owned by 0 shows as 1000 and a
/// file created by uid 1000 is stored as 0; ids no range covers show, and are stored,
/// as the kernel's overflow id.
#[test]
fn uidmapping_is_stored_then_shown() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let stratafs = PathBuf::from(env!("CARGO_BIN_EXE_stratafs"));
    let seen = observe(
        &stratafs,
        &tmp.path().join("s"),
        "uidmapping=0:1000:1,gidmapping=0:1000:1",
    );
    let overflow = |n: &str| {
        fs::read_to_string(format!("/proc/sys/kernel/{n}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "65534".into())
    };
    let of = format!("{}:{}", overflow("overflowuid"), overflow("overflowgid"));
    let want = [
        ("shown root-file", "1000:1000".to_string()),
        ("shown user-1000", of.clone()),
        ("shown mixed", format!("1000:{}", overflow("overflowgid"))),
        ("create as 1000:1000", "true".into()),
        ("stored open/by-1000", "0:0".into()),
        ("shown open/by-1000 after remount", "1000:1000".into()),
        ("stored open/by-0", of.clone()),
        ("stored open/by-7", of.clone()),
        ("chown root-file 1000:1000", "ok".into()),
        ("stored root-file", "0:0".into()),
        ("stored five", of),
    ];
    for (what, v) in want {
        assert_eq!(seen.get(what), Some(&v), "{what} (all: {seen:#?})");
    }
}

/// podman's leading colon is accepted (it was refused before).
#[test]
fn podman_leading_colon_mapping_mounts() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let stratafs = PathBuf::from(env!("CARGO_BIN_EXE_stratafs"));
    let seen = observe(
        &stratafs,
        &tmp.path().join("s"),
        "uidmapping=:0:100000:65536,gidmapping=:0:100000:65536",
    );
    assert_eq!(seen["shown root-file"], "100000:100000");
    assert_eq!(seen["shown sub-100005"], {
        let of = fs::read_to_string("/proc/sys/kernel/overflowuid")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "65534".into());
        let og = fs::read_to_string("/proc/sys/kernel/overflowgid")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "65534".into());
        format!("{of}:{og}")
    });
    assert_eq!(seen["shown five"], "100005:100005");
    assert_eq!(seen["stored open/by-100000"], "0:0");
}
