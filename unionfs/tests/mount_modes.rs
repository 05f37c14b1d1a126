//! stratafs mounted the ways users mount it: through `mount -t fuse.stratafs`
//! (mount.fuse3), read-only with lowers alone, and unmounted with fusermount3/umount.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn privileged_or_skip() -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Path::new("/dev/fuse").exists()
        && Path::new("/sbin/mount.fuse3").exists();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true: needs root, /dev/fuse and mount.fuse3 (fuse3)"
        );
        eprintln!("skipped: needs root, /dev/fuse and mount.fuse3 (package fuse3)");
    }
    ok
}

fn mounted(m: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(m.to_str().unwrap()))
}

fn layers(root: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let (l, u, w, m) = (
        root.join("l"),
        root.join("u"),
        root.join("w"),
        root.join("m"),
    );
    for d in [&l, &u, &w, &m] {
        fs::create_dir(d).unwrap();
    }
    fs::write(l.join("hello"), "from the lower").unwrap();
    (l, u, w, m)
}

#[test]
fn mount_t_fuse_stratafs_through_mount_helper() {
    if !privileged_or_skip() {
        return;
    }
    // mount.fuse3 runs the program by name with a fixed PATH: install it as a user would.
    let link = Path::new("/usr/local/bin/stratafs");
    let ours = Path::new(env!("CARGO_BIN_EXE_stratafs"));
    let placed = if fs::symlink_metadata(link).is_err() {
        std::os::unix::fs::symlink(ours, link).unwrap();
        true
    } else {
        false
    };
    let tmp = tempfile::tempdir().unwrap();
    let (l, u, w, m) = layers(tmp.path());
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        l.display(),
        u.display(),
        w.display()
    );
    let out = Command::new("mount")
        .args(["-t", "fuse.stratafs", "stratafs"])
        .arg(&m)
        .args(["-o", &opts])
        .output()
        .unwrap();
    let ok = out.status.success();
    let result = std::panic::catch_unwind(|| {
        assert!(
            ok,
            "mount -t fuse.stratafs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(mounted(&m));
        assert_eq!(
            fs::read_to_string(m.join("hello")).unwrap(),
            "from the lower"
        );
        fs::write(m.join("new"), "upper").unwrap();
        assert_eq!(fs::read_to_string(u.join("new")).unwrap(), "upper");
        assert!(Command::new("umount").arg(&m).status().unwrap().success());
        assert!(!mounted(&m));
    });
    if mounted(&m) {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
    if placed {
        let _ = fs::remove_file(link);
    }
    result.unwrap();
}

#[test]
fn read_only_with_lowers_alone_and_fusermount_unmount() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (l, _u, _w, m) = layers(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_stratafs"))
        .args(["-o", &format!("lowerdir={}", l.display())])
        .arg(&m)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            fs::read_to_string(m.join("hello")).unwrap(),
            "from the lower"
        );
        let e = fs::write(m.join("x"), "no").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        let e = fs::remove_file(m.join("hello")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        assert!(
            Command::new("fusermount3")
                .arg("-u")
                .arg(&m)
                .status()
                .unwrap()
                .success()
        );
        assert!(!mounted(&m));
    });
    if mounted(&m) {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
    result.unwrap();
    assert!(l.join("hello").exists());
}
