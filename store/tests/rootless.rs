//! Rootless import: a user who may not chown gets the tar's owners recorded in
//! `user.containers.override_stat`, and a layer written from such a tree carries them
//! back in its headers. The test (as root) creates an unprivileged user and re-runs
//! itself as that user with `runuser`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use store::Store;
use store::export::ArchiveFormat;
use store::tarwrite::TreeKind;

const USER: &str = "strata-store-rl";
const CHILD: &str = "STRATA_STORE_ROOTLESS_DIR";

fn xattr(path: &Path, name: &str) -> Option<String> {
    let mut buf = [0u8; 256];
    rustix::fs::lgetxattr(path, name, &mut buf[..])
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The unprivileged half: import, check the recorded owners, write the layer back.
fn child(dir: &Path) {
    assert!(!nix::unistd::geteuid().is_root(), "child must not be root");
    let me = nix::unistd::geteuid().as_raw();
    let store = Store::open(Some(dir.join("rl-root"))).unwrap_or_else(|e| panic!("{e}"));
    let imgs = store::import::import(&store, &dir.join("owned.tar"), None)
        .unwrap_or_else(|e| panic!("rootless import: {e}"));
    let lowers = store.lower_dirs(&imgs[0]).unwrap_or_else(|e| panic!("{e}"));
    let top = &lowers[0];
    let key = "user.containers.override_stat";
    let cases = [
        ("srv", "1000:1000:0750"),
        ("srv/data", "1000:1000:0640"),
        ("srv/run.sh", "0:0:04755"),
        ("rootdir", "0:0:0700"),
    ];
    for (p, want) in cases {
        let path = top.join(p);
        let m = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(m.uid(), me, "{p} is owned by the importing user on disk");
        assert_eq!(xattr(&path, key).as_deref(), Some(want), "{p}");
    }
    // A file the user owns needs no record.
    assert_eq!(xattr(&top.join("mine"), key), None);
    // Permission bits on disk as in the tar (setuid is dropped by the kernel for a
    // non-root chmod only when the group does not match; the record keeps it).
    let data = fs::metadata(top.join("srv/data")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.permissions().mode() & 0o777, 0o640);
    // Written back as a layer, the headers carry the recorded owners, not the xattr.
    let out = store::tarwrite::write_tree(top, TreeKind::Rootfs, Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ar = tar::Archive::new(&out[..]);
    let mut seen = 0;
    for e in ar.entries().unwrap_or_else(|e| panic!("{e}")) {
        let mut e = e.unwrap_or_else(|e| panic!("{e}"));
        let name = String::from_utf8_lossy(&e.path_bytes())
            .trim_end_matches('/')
            .to_string();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts.flatten() {
                assert!(!x.key().unwrap_or("").contains("override_stat"), "{name}");
            }
        }
        let h = e.header();
        let got = format!(
            "{}:{}:0{:o}",
            h.uid().unwrap_or(99),
            h.gid().unwrap_or(99),
            h.mode().unwrap_or(0)
        );
        if let Some((_, want)) = cases.iter().find(|(p, _)| *p == name) {
            assert_eq!(&got, want, "{name} in the written layer");
            seen += 1;
        }
    }
    assert_eq!(seen, cases.len());
}

#[test]
fn rootless_import_records_owners_in_override_stat() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(Path::new(&dir));
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: this test needs root (it creates a user)"
        );
        eprintln!("skipping: needs root to create the unprivileged user");
        return;
    }
    let have_user = Command::new("id")
        .arg("-u")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_user {
        let st = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", USER])
            .status()
            .unwrap_or_else(|e| panic!("useradd: {e}"));
        assert!(st.success(), "useradd {USER} failed");
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .arg(flag)
            .arg(USER)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("id {flag} {USER}: {e}"))
    };
    let (uid, gid) = (id("-u"), id("-g"));
    assert!(
        uid != 0 && uid != 1000,
        "{USER} must be an id other than 0 and 1000"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    // As root: a tree with foreign owners, made into an image and exported.
    let tree = d.join("tree");
    for sub in ["srv", "rootdir"] {
        fs::create_dir_all(tree.join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    fs::write(tree.join("srv/data"), b"d").unwrap_or_else(|e| panic!("{e}"));
    fs::write(tree.join("srv/run.sh"), b"#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
    fs::write(tree.join("mine"), b"m").unwrap_or_else(|e| panic!("{e}"));
    let own = |p: &str, u: u32, g: u32, mode: u32| {
        let path = tree.join(p);
        std::os::unix::fs::lchown(&path, Some(u), Some(g)).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
    };
    own("srv/data", 1000, 1000, 0o640);
    own("srv/run.sh", 0, 0, 0o4755);
    own("srv", 1000, 1000, 0o750);
    own("rootdir", 0, 0, 0o700);
    own("mine", uid, gid, 0o644);
    let src = Store::open(Some(d.join("src-root"))).unwrap_or_else(|e| panic!("{e}"));
    store::new_image::image_from_tree(&src, &tree, TreeKind::Rootfs, None, "owned:1", "test")
        .unwrap_or_else(|e| panic!("{e}"));
    let archive = d.join("owned.tar");
    store::export::export_image(&src, "owned:1", ArchiveFormat::DockerArchive, &archive)
        .unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    let rl_root = d.join("rl-root");
    fs::create_dir(&rl_root).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::chown(&rl_root, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("{e}"));
    // As the user: this same test binary, this test only.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("runuser")
        .args(["-u", USER, "--", "env"])
        .arg(format!("{CHILD}={}", d.display()))
        .arg("HOME=/nonexistent")
        .arg(&exe)
        .args([
            "--exact",
            "rootless_import_records_owners_in_override_stat",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .unwrap_or_else(|e| panic!("runuser: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rootless half failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "rootless half did not run:\n{text}"
    );
    // Clean up as root (the user's files are removable by root).
    let _ = fs::remove_dir_all(&rl_root);
}
