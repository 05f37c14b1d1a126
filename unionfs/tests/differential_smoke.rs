//! One fixed scenario run on kernel overlayfs and on stratafs over identical layers:
//! every operation's errno and the merged trees afterwards must match, and the upper
//! stratafs wrote must show the same tree when mounted by kernel overlayfs.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

mod diffsupport;

use diffsupport::*;

/// The scenario; returns each step's errno.
fn scenario(m: &Path) -> Vec<(String, i32)> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut step = |name: &str, e: i32| out.push((name.to_string(), e));
    step(
        "append lower",
        errno_of(
            fs::OpenOptions::new()
                .append(true)
                .open(m.join("d/y"))
                .and_then(|mut f| f.write_all(b"more")),
        ),
    );
    step(
        "chmod lower",
        errno_of(fs::set_permissions(
            m.join("top"),
            fs::Permissions::from_mode(0o600),
        )),
    );
    step(
        "rename lower dir",
        errno_of(fs::rename(m.join("d"), m.join("dd"))),
    );
    step("mkdir over whiteout", errno_of(fs::create_dir(m.join("d"))));
    step("create", errno_of(fs::write(m.join("d/new"), "n")));
    step("unlink hardlink", errno_of(fs::remove_file(m.join("h2"))));
    step(
        "append hardlinked",
        errno_of(
            fs::OpenOptions::new()
                .append(true)
                .open(m.join("h1"))
                .and_then(|mut f| f.write_all(b"+")),
        ),
    );
    step("link", errno_of(fs::hard_link(m.join("h1"), m.join("h3"))));
    step(
        "rename file",
        errno_of(fs::rename(m.join("e2"), m.join("e3"))),
    );
    step("rmdir nonempty", errno_of(fs::remove_dir(m.join("dd"))));
    step(
        "rm -r lower subtree",
        errno_of(fs::remove_dir_all(m.join("dd/sub"))),
    );
    step("mkdir -p", errno_of(fs::create_dir_all(m.join("n/o/p"))));
    step(
        "rename new dir",
        errno_of(fs::rename(m.join("n/o"), m.join("nn"))),
    );
    step(
        "chown",
        errno_of(std::os::unix::fs::lchown(
            m.join("d/new"),
            Some(12),
            Some(34),
        )),
    );
    step(
        "rename into dir",
        errno_of(fs::rename(m.join("top"), m.join("d/top2"))),
    );
    step("rmdir opaque", errno_of(fs::remove_dir(m.join("opq"))));
    step("mkdir again", errno_of(fs::create_dir(m.join("opq"))));
    step("symlink", errno_of(symlink("x", m.join("sym"))));
    step(
        "truncate sparse",
        errno_of(
            fs::OpenOptions::new()
                .write(true)
                .open(m.join("sparse"))
                .and_then(|f| f.set_len(10)),
        ),
    );
    step(
        "noreplace",
        renameat2(&m.join("abs"), &m.join("dang"), libc::RENAME_NOREPLACE),
    );
    step(
        "exchange",
        renameat2(&m.join("abs"), &m.join("dang"), libc::RENAME_EXCHANGE),
    );
    step(
        "exchange dirs",
        renameat2(&m.join("dd"), &m.join("nn"), libc::RENAME_EXCHANGE),
    );
    step("lookup whiteout", errno_of(fs::metadata(m.join("e"))));
    step(
        "long name",
        errno_of(fs::write(m.join("n".repeat(256)), "")),
    );
    step("rmdir file", errno_of(fs::remove_dir(m.join("h1"))));
    step("unlink dir", errno_of(fs::remove_file(m.join("d"))));
    step(
        "setxattr",
        errno_of(xattr_set(&m.join("dd"), "user.a", b"1")),
    );
    out
}

fn mount_stratafs(root: &Path) -> Mounted {
    mount_stratafs_with(Path::new(env!("CARGO_BIN_EXE_stratafs")), root)
}

#[test]
fn same_errnos_and_tree_as_kernel_overlayfs() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (k, s) = (tmp.path().join("k"), tmp.path().join("s"));
    build_layers(&k);
    build_layers(&s);
    let (kres, ksnap) = {
        let _m = mount_kernel(&k, "on");
        let r = scenario(&k.join("m"));
        (r, snapshot(&k.join("m")))
    };
    let (sres, ssnap) = {
        let _m = mount_stratafs(&s);
        let r = scenario(&s.join("m"));
        (r, snapshot(&s.join("m")))
    };
    assert_eq!(
        kres, sres,
        "errno per step: kernel (left) vs stratafs (right)"
    );
    assert_eq!(
        ksnap, ssnap,
        "merged tree: kernel (left) vs stratafs (right)"
    );
    // Interop: stratafs' upper under kernel overlayfs shows the same tree (hard-link
    // counts aside: the kernel doesn't read stratafs' index).
    let _ = fs::remove_dir_all(s.join("w"));
    fs::create_dir(s.join("w")).unwrap();
    let isnap = {
        let _m = mount_kernel(&s, "off");
        snapshot(&s.join("m"))
    };
    let strip = |m: &BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.split(" nlink ").next().unwrap_or(v).to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        strip(&ksnap),
        strip(&isnap),
        "kernel overlayfs over stratafs' upper"
    );
}

#[test]
fn bad_input_names_option_and_path_and_mounts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for d in ["l", "u", "w", "m"] {
        fs::create_dir(r.join(d)).unwrap();
    }
    fs::write(r.join("file"), "").unwrap();
    let cases = [
        (
            format!("lowerdir={}", r.join("missing").display()),
            "lowerdir=",
        ),
        (
            format!("lowerdir={}", r.join("file").display()),
            "not a directory",
        ),
        (
            format!(
                "lowerdir={},upperdir={},workdir={}",
                r.join("l").display(),
                r.join("l/up").display(),
                r.join("w").display()
            ),
            "upperdir=",
        ),
        (
            format!("lowerdir={},bogus=1", r.join("l").display()),
            "bogus",
        ),
        (
            format!(
                "lowerdir={},upperdir={}",
                r.join("l").display(),
                r.join("u").display()
            ),
            "workdir",
        ),
    ];
    fs::create_dir(r.join("l/up")).unwrap();
    for (opts, expect) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_stratafs"))
            .args(["-o", &opts])
            .arg(r.join("m"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{opts}: should fail");
        assert!(
            err.contains(expect),
            "{opts}: message {err:?} should name {expect:?}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{opts}: one line, got {err:?}"
        );
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(r.join("m").to_str().unwrap()),
            "{opts}: something got mounted"
        );
    }
}
