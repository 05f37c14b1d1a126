//! Shared by the differential tests: layer sets, mounts of kernel overlayfs and
//! stratafs, and snapshots of a merged tree to compare.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part; setup failures panic

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn privileged_or_skip() -> bool {
    let ok = unsafe { libc::geteuid() } == 0 && Path::new("/dev/fuse").exists();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true: this test needs root and /dev/fuse"
        );
        eprintln!("skipped: needs root and /dev/fuse");
    }
    ok
}

pub fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn mknod(p: &Path, mode: u32, dev: u64) {
    assert_eq!(
        unsafe { libc::mknod(c(p).as_ptr(), mode, dev) },
        0,
        "mknod {}",
        p.display()
    );
}

pub fn setxattr(p: &Path, name: &str, v: &[u8]) {
    let n = CString::new(name).unwrap();
    let r = unsafe { libc::lsetxattr(c(p).as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}", p.display());
}

/// Three lowers: l3 (bottom) with the base tree, l2 with a char whiteout and an opaque
/// dir, l1 (top) with a whiteout over a directory.
pub fn build_layers(root: &Path) {
    for d in ["l1", "l2", "l3", "u", "w", "m"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let l3 = root.join("l3");
    fs::create_dir_all(l3.join("d/sub")).unwrap();
    fs::create_dir_all(l3.join("e")).unwrap();
    fs::write(l3.join("d/x"), "x").unwrap();
    fs::write(l3.join("d/sub/z"), "z").unwrap();
    fs::write(l3.join("e/f"), "e").unwrap();
    symlink("../d/x", l3.join("d/lnk")).unwrap();
    symlink("/etc/passwd", l3.join("abs")).unwrap();
    symlink("nowhere", l3.join("dang")).unwrap();
    mknod(&l3.join("fifo"), libc::S_IFIFO | 0o644, 0);
    fs::write(l3.join("h1"), "h").unwrap();
    fs::hard_link(l3.join("h1"), l3.join("h2")).unwrap();
    let f = fs::File::create(l3.join("sparse")).unwrap();
    f.set_len(1 << 20).unwrap();
    setxattr(&l3.join("d/x"), "user.foo", b"bar");
    fs::set_permissions(l3.join("e/f"), fs::Permissions::from_mode(0o640)).unwrap();
    let l2 = root.join("l2");
    fs::create_dir_all(l2.join("d")).unwrap();
    fs::write(l2.join("d/y"), "y").unwrap();
    mknod(&l2.join("d/x"), libc::S_IFCHR, 0);
    fs::write(l2.join("e2"), "new").unwrap();
    fs::create_dir(l2.join("opq")).unwrap();
    setxattr(&l2.join("opq"), "trusted.overlay.opaque", b"y");
    let l1 = root.join("l1");
    fs::create_dir(l1.join("d")).unwrap();
    fs::write(l1.join("top"), "top").unwrap();
    mknod(&l1.join("e"), libc::S_IFCHR, 0);
}

pub fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

pub fn renameat2(a: &Path, b: &Path, flags: u32) -> i32 {
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c(a).as_ptr(),
            libc::AT_FDCWD,
            c(b).as_ptr(),
            flags,
        )
    };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

pub fn xattr_set(p: &Path, name: &str, v: &[u8]) -> std::io::Result<()> {
    let n = CString::new(name).unwrap();
    let r = unsafe { libc::lsetxattr(c(p).as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn user_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(c(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    let mut out = Vec::new();
    for name in buf.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 4096];
        let l =
            unsafe { libc::lgetxattr(c(p).as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        v.truncate(l.max(0) as usize);
        out.push((name.to_vec(), v));
    }
    out.sort();
    out
}

/// Names, types, modes, owners, sizes, contents, link targets, user xattrs, nlink and
/// hard-link groups of the merged tree.
pub fn snapshot(m: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![m.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(m).unwrap().to_path_buf();
            let md = match fs::symlink_metadata(&p) {
                Ok(md) => md,
                Err(e) => {
                    out.insert(rel, format!("lstat error {e}"));
                    continue;
                }
            };
            let ft = md.file_type();
            let detail = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                groups.entry(md.ino()).or_default().push(rel.clone());
                format!("file {:?} nlink {}", fs::read(&p).unwrap(), md.nlink())
            } else {
                format!("special {:o}", md.mode() & libc::S_IFMT)
            };
            let line = format!(
                "{detail} mode {:o} owner {}:{} size {} xattrs {:?}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid(),
                if ft.is_dir() { 0 } else { md.size() },
                user_xattrs(&p)
            );
            out.insert(rel, line);
        }
    }
    for (i, g) in groups.values().filter(|g| g.len() > 1).enumerate() {
        out.insert(PathBuf::from(format!("#linkgroup{i}")), format!("{g:?}"));
    }
    out
}

pub struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

pub fn lowerdir(root: &Path) -> String {
    format!(
        "{}:{}:{}",
        root.join("l1").display(),
        root.join("l2").display(),
        root.join("l3").display()
    )
}

pub fn mount_kernel(root: &Path, index: &str) -> Mounted {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=on,index={index},xino=on",
        lowerdir(root),
        root.join("u").display(),
        root.join("w").display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(root.join("m"))
        .status()
        .unwrap();
    assert!(st.success(), "kernel overlay mount failed");
    Mounted(root.join("m"))
}

pub fn mount_stratafs_with(bin: &Path, root: &Path) -> Mounted {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir(root),
        root.join("u").display(),
        root.join("w").display()
    );
    let out = Command::new(bin)
        .args(["-o", &opts])
        .arg(root.join("m"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stratafs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mounted(root.join("m"))
}
