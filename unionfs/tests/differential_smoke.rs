//! One fixed scenario run on kernel overlayfs and on stratafs over identical layers:
//! every operation's errno and the merged trees afterwards must match, and the upper
//! stratafs wrote must show the same tree when mounted by kernel overlayfs.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

fn privileged_or_skip() -> bool {
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

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn mknod(p: &Path, mode: u32, dev: u64) {
    assert_eq!(
        unsafe { libc::mknod(c(p).as_ptr(), mode, dev) },
        0,
        "mknod {}",
        p.display()
    );
}

fn setxattr(p: &Path, name: &str, v: &[u8]) {
    let n = CString::new(name).unwrap();
    let r = unsafe { libc::lsetxattr(c(p).as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}", p.display());
}

/// Three lowers: l3 (bottom) with the base tree, l2 with a char whiteout and an opaque
/// dir, l1 (top) with a whiteout over a directory.
fn build_layers(root: &Path) {
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

fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn renameat2(a: &Path, b: &Path, flags: u32) -> i32 {
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

fn xattr_set(p: &Path, name: &str, v: &[u8]) -> std::io::Result<()> {
    let n = CString::new(name).unwrap();
    let r = unsafe { libc::lsetxattr(c(p).as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn user_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
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
fn snapshot(m: &Path) -> BTreeMap<PathBuf, String> {
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
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(m).unwrap().to_path_buf();
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

struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn lowerdir(root: &Path) -> String {
    format!(
        "{}:{}:{}",
        root.join("l1").display(),
        root.join("l2").display(),
        root.join("l3").display()
    )
}

fn mount_kernel(root: &Path, index: &str) -> Mounted {
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

fn mount_stratafs(root: &Path) -> Mounted {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir(root),
        root.join("u").display(),
        root.join("w").display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stratafs"))
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
