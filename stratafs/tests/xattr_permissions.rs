//! `xattr_permissions=1|2`: owners and modes kept in the upper's override_stat xattr
//! (`security.fuseoverlayfs.override_stat`, `user.containers.override_stat`) as
//! `UID:GID:MODE` (MODE octal), shown through the mount; chown/chmod write the record
//! and leave the file's own owner and mode alone; a lower whose root carries a record
//! shows its files' records. Checked against fuse-overlayfs 2.0 itself where it is
//! installed (`$STRATA_FUSE_OVERLAYFS2` or where `scripts/deps` puts it; skipped with
//! the reason otherwise, failed under `CI=true`).

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const CONTAINERS: &str = "user.containers.override_stat";
const PRIVILEGED: &str = "security.fuseoverlayfs.override_stat";

fn stratafs() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stratafs"))
}

fn get_xattr(p: &Path, name: &str) -> Option<String> {
    let cp = cpath(p);
    let cn = CString::new(name).expect("test step");
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; both strings are NUL-terminated.
    let n = unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), 256) };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

fn set_xattr(p: &Path, name: &str, v: &str) {
    let cp = cpath(p);
    let cn = CString::new(name).expect("test step");
    // SAFETY: as above.
    let r = unsafe { libc::lsetxattr(cp.as_ptr(), cn.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}", p.display());
}

/// `uid:gid mode` of `p`, not following a symlink.
fn shown(p: &Path) -> String {
    match fs::symlink_metadata(p) {
        Ok(md) => format!("{}:{} {:o}", md.uid(), md.gid(), md.mode()),
        Err(e) => format!("error {}", e.raw_os_error().unwrap_or(0)),
    }
}

/// `root/{l,u,w,m}`; the lower holds `lf` (5:6 0644), `ld` (0:0 0755) and `keep`
/// (3:4 0600).
fn layers(root: &Path) -> [PathBuf; 4] {
    let dirs = ["l", "u", "w", "m"].map(|d| root.join(d));
    for d in &dirs {
        fs::create_dir_all(d).expect("test step");
    }
    let l = &dirs[0];
    for (name, uid, gid, mode) in [("lf", 5, 6, 0o644), ("keep", 3, 4, 0o600)] {
        let f = l.join(name);
        fs::write(&f, name).expect("test step");
        std::os::unix::fs::lchown(&f, Some(uid), Some(gid)).expect("test step");
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).expect("test step");
    }
    fs::create_dir(l.join("ld")).expect("test step");
    fs::set_permissions(l.join("ld"), fs::Permissions::from_mode(0o755)).expect("test step");
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("test step");
    dirs
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .status()
        .expect("test step");
    assert!(st.success(), "{script}");
}

const SCRIPT: &str = "touch new && mkdir nd && chown 100:200 new && chmod 4751 new && \
                      chmod 700 lf && chown 7:8 ld && chown 9 nd && chmod 711 nd";
const NAMES: &[&str] = &["new", "nd", "lf", "ld", "keep"];

/// What `bin` with `xattr_permissions=n` shows and stores after `SCRIPT` as root.
fn observe(bin: &Path, root: &Path, n: u8) -> BTreeMap<String, String> {
    let [l, u, w, m] = layers(root);
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},xattr_permissions={n}",
        l.display(),
        u.display(),
        w.display()
    );
    let name = if n == 1 { PRIVILEGED } else { CONTAINERS };
    let guard = mount_daemon(bin, &opts, &m);
    sh(&m, SCRIPT);
    let mut seen = BTreeMap::new();
    for f in NAMES {
        seen.insert(format!("shown {f}"), shown(&m.join(f)));
    }
    guard.unmount();
    // A fresh mount shows it all from the records (on a fresh mount point: see
    // `mount_daemon`).
    let m = root.join("m2");
    fs::create_dir(&m).expect("test step");
    let guard = mount_daemon(bin, &opts, &m);
    for f in NAMES {
        seen.insert(format!("remounted {f}"), shown(&m.join(f)));
    }
    guard.unmount();
    for f in NAMES {
        seen.insert(format!("upper {f}"), shown(&u.join(f)));
        seen.insert(
            format!("record {f}"),
            format!("{:?}", get_xattr(&u.join(f), name)),
        );
    }
    seen
}

fn expect(seen: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(seen.get(*k).map(String::as_str), Some(*v), "{k}: {seen:#?}");
    }
}

#[test]
fn chown_and_chmod_write_the_record() {
    if !privileged_or_skip() {
        return;
    }
    for n in [1u8, 2] {
        let tmp = tempfile::tempdir().expect("test step");
        let seen = observe(&stratafs(), tmp.path(), n);
        expect(
            &seen,
            &[
                ("remounted new", "100:200 104751"),
                ("remounted lf", "5:6 100700"),
                ("remounted ld", "7:8 40755"),
                ("remounted nd", "9:0 40711"),
                ("remounted keep", "3:4 100600"),
                // The files keep their own owners and modes.
                ("upper new", "0:0 100644"),
                ("upper lf", "5:6 100644"),
                ("upper ld", "0:0 40755"),
                ("record new", "Some(\"100:200:4751\")"),
                ("record lf", "Some(\"5:6:700\")"),
                ("record ld", "Some(\"7:8:755\")"),
                ("record nd", "Some(\"9:0:711\")"),
                ("record keep", "None"),
            ],
        );
    }
}

#[test]
fn a_lower_root_record_shows_its_owners() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("test step");
    let [l, u, w, m] = layers(tmp.path());
    // A rootless containers/storage layer: owners only in the records.
    let l2 = tmp.path().join("l2");
    fs::create_dir(&l2).expect("test step");
    set_xattr(&l2, CONTAINERS, "0:0:0755:dir");
    fs::write(l2.join("f"), "f").expect("test step");
    set_xattr(&l2.join("f"), CONTAINERS, "1000:1001:0640:file");
    fs::create_dir(l2.join("d")).expect("test step");
    set_xattr(&l2.join("d"), CONTAINERS, "33:33:02775:dir");
    // The same record on a layer whose root carries none means nothing.
    set_xattr(&l.join("keep"), CONTAINERS, "1:1:0777:file");
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        l2.display(),
        l.display(),
        u.display(),
        w.display()
    );
    let guard = mount_daemon(&stratafs(), &opts, &m);
    assert_eq!(shown(&m.join("f")), "1000:1001 100640");
    assert_eq!(shown(&m.join("d")), "33:33 42775");
    assert_eq!(shown(&m.join("keep")), "3:4 100600");
    // A copy-up into an upper that keeps no records gives the file the shown owner.
    sh(&m, "touch f");
    assert_eq!(shown(&m.join("f")), "1000:1001 100640");
    assert_eq!(shown(&u.join("f")), "1000:1001 100640");
    guard.unmount();
}

#[test]
fn copy_up_into_a_recording_upper_carries_the_lower_record() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("test step");
    let [_, u, w, m] = layers(tmp.path());
    let l2 = tmp.path().join("l2");
    fs::create_dir(&l2).expect("test step");
    set_xattr(&l2, CONTAINERS, "0:0:0755:dir");
    fs::write(l2.join("f"), "f").expect("test step");
    set_xattr(&l2.join("f"), CONTAINERS, "1000:1001:0640:file");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},xattr_permissions=1",
        l2.display(),
        u.display(),
        w.display()
    );
    let guard = mount_daemon(&stratafs(), &opts, &m);
    sh(&m, "touch f");
    assert_eq!(shown(&m.join("f")), "1000:1001 100640");
    guard.unmount();
    assert_eq!(
        get_xattr(&u.join("f"), PRIVILEGED).as_deref(),
        Some("1000:1001:640")
    );
}

#[test]
fn same_as_fuse_overlayfs2() {
    if !privileged_or_skip() {
        return;
    }
    let Some(fo) = fuse_overlayfs2_or_skip() else {
        return;
    };
    for n in [1u8, 2] {
        let a = tempfile::tempdir().expect("test step");
        let b = tempfile::tempdir().expect("test step");
        let ours = observe(&stratafs(), a.path(), n);
        let theirs = observe(&fo, b.path(), n);
        let diffs: Vec<String> = theirs
            .iter()
            .filter(|(k, v)| ours.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: fuse-overlayfs {v}, stratafs {:?}", ours.get(k)))
            .collect();
        assert!(
            diffs.is_empty(),
            "xattr_permissions={n}:\n{}",
            diffs.join("\n")
        );
    }
}
