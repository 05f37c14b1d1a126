//! The command line as users meet it: `mount -t fuse.NAME` through mount.fuse3, a
//! read-only mount of lowers alone, and one test per bad input — one line naming the
//! option, the path and the cause, a non-zero exit, nothing mounted.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn prerequisites() -> bool {
    if !privileged_or_skip() {
        return false;
    }
    let helper =
        Path::new("/sbin/mount.fuse3").exists() || Path::new("/usr/sbin/mount.fuse3").exists();
    assert!(
        helper || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: mount.fuse3 (package fuse3) is missing"
    );
    if !helper {
        eprintln!("skipped: needs mount.fuse3 (package fuse3)");
    }
    helper
}

/// One lower with a file, an empty upper, work dir and mount point.
fn simple(root: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let [l, u, w, m] = ["l", "u", "w", "m"].map(|d| root.join(d));
    for d in [&l, &u, &w, &m] {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(l.join("hello"), "from the lower").expect("write lower");
    (l, u, w, m)
}

fn writable_options(l: &Path, u: &Path, w: &Path) -> String {
    format!(
        "lowerdir={},upperdir={},workdir={}",
        l.display(),
        u.display(),
        w.display()
    )
}

/// Checks a mount made by a helper works, unmounts it with umount(8), checks the upper.
/// The file system type `/proc/self/mountinfo` gives for the mount at `p`.
fn fs_type(p: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = p.to_string_lossy().replace(' ', "\\040");
    let line = info
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(want.as_str()))?;
    let (_, after) = line.split_once(" - ")?;
    after.split(' ').next().map(str::to_string)
}

fn check_helper_mount(out: std::process::Output, m: &Path, u: &Path, how: &str) {
    let guard = Mount::adopt(m, true);
    assert!(
        out.status.success(),
        "{how} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(m), "{how} returned 0 but nothing is mounted");
    let name = Impl::selected().name;
    assert_eq!(
        fs_type(m).as_deref(),
        Some(format!("fuse.{name}").as_str()),
        "{how}: the mount's type"
    );
    assert_eq!(
        fs::read_to_string(m.join("hello")).expect("read through the mount"),
        "from the lower"
    );
    fs::write(m.join("new"), "upper").expect("write through the mount");
    guard.unmount_with("umount");
    assert_eq!(
        fs::read_to_string(u.join("new")).expect("upper file"),
        "upper"
    );
}

/// mount.fuse3 (what `mount -t fuse.NAME` runs) finds the daemon through PATH and
/// calls it as `NAME SOURCE MOUNTPOINT -o OPTS` with generic options (`dev,suid`) added.
#[test]
fn mount_fuse3_helper_finds_the_daemon_on_path() {
    if !prerequisites() {
        return;
    }
    let imp = Impl::selected();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let dir = imp.bin.parent().expect("binary dir");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let helper = ["/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"]
        .into_iter()
        .find(|h| Path::new(h).exists())
        .expect("mount.fuse3");
    let out = Command::new(helper)
        .env("PATH", path)
        .arg(imp.name)
        .arg(&m)
        .args(["-t", &format!("fuse.{}", imp.name)])
        .args(["-o", &writable_options(&l, &u, &w)])
        .output()
        .expect("run mount.fuse3");
    check_helper_mount(out, &m, &u, "mount.fuse3");
}

/// Removes the symlink a test placed in /usr/local/bin.
struct Placed(Option<PathBuf>);

impl Drop for Placed {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// `mount -t fuse.NAME NAME MNT -o ...`. mount(8) runs helpers with a fixed PATH
/// (/usr/local/bin among them), so the daemon is linked there as an install would.
#[test]
fn mount_t_fuse_name() {
    if !prerequisites() {
        return;
    }
    let imp = Impl::selected();
    let in_std_path = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(imp.name))
        .find(|p| p.exists());
    let _placed = match in_std_path {
        Some(p) if fs::canonicalize(&p).ok() == fs::canonicalize(&imp.bin).ok() => Placed(None),
        Some(p) if fs::read_link(&p).is_ok() && p.starts_with("/usr/local/bin") => {
            // Another test run's link to another build: point it at ours for this test.
            let _ = fs::remove_file(&p);
            std::os::unix::fs::symlink(&imp.bin, &p).expect("link the daemon");
            Placed(Some(p))
        }
        Some(p) => panic!(
            "{} is some other {}; mount -t fuse.{} would run it",
            p.display(),
            imp.name,
            imp.name
        ),
        None => {
            let p = Path::new("/usr/local/bin").join(imp.name);
            std::os::unix::fs::symlink(&imp.bin, &p).expect("link the daemon");
            Placed(Some(p))
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let out = Command::new("mount")
        .args(["-t", &format!("fuse.{}", imp.name), imp.name])
        .arg(&m)
        .args(["-o", &writable_options(&l, &u, &w)])
        .output()
        .expect("run mount");
    check_helper_mount(out, &m, &u, &format!("mount -t fuse.{}", imp.name));
}

/// Unmounting and mounting again at the same path: the old daemon, exiting after the
/// new mount is up, must not take the new mount with it (fuser 0.18 unmounts its mount
/// point by path on exit). The old daemon is held stopped across the remount to make
/// the ordering certain.
#[test]
fn a_new_mount_at_the_same_path_outlives_the_old_daemon() {
    if !prerequisites() {
        return;
    }
    let imp = Impl::selected();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let opts = writable_options(&l, &u, &w);
    let old = imp.mount_with(&m, &opts).unwrap_or_else(|e| panic!("{e}"));
    let pgrep = Command::new("pgrep")
        .args(["-f", "--"])
        .arg(m.as_os_str())
        .output()
        .expect("run pgrep");
    let pids = String::from_utf8_lossy(&pgrep.stdout).to_string();
    let pid = match pids.split_whitespace().collect::<Vec<_>>()[..] {
        [one] => one.to_string(),
        _ => panic!(
            "want one daemon serving {}, pgrep says {pids:?}",
            m.display()
        ),
    };
    let signal = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    old.unmount_with("umount2");
    let new = imp.mount_with(&m, &opts).unwrap_or_else(|e| panic!("{e}"));
    signal("-CONT");
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..100 {
        if !proc_dir.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!proc_dir.exists(), "the old daemon {pid} did not exit");
    assert!(
        is_mounted(&m),
        "the new mount went away when the old daemon exited"
    );
    assert_eq!(
        fs::read_to_string(m.join("hello")).expect("read through the new mount"),
        "from the lower"
    );
    new.unmount();
}

#[test]
fn read_only_with_lowers_alone() {
    if !prerequisites() {
        return;
    }
    let imp = Impl::selected();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, _u, _w, m) = simple(tmp.path());
    let l2 = tmp.path().join("l2");
    fs::create_dir(&l2).expect("mkdir");
    fs::write(l2.join("below"), "b").expect("write");
    let opts = format!("lowerdir={}:{}", l.display(), l2.display());
    let mount = imp.mount_with(&m, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fs::read_to_string(m.join("below")).expect("read"), "b");
    for (what, e) in [
        ("create", errno_of(fs::write(m.join("x"), "no"))),
        ("unlink", errno_of(fs::remove_file(m.join("hello")))),
        ("mkdir", errno_of(fs::create_dir(m.join("dir")))),
        (
            "write",
            errno_of(fs::OpenOptions::new().append(true).open(m.join("hello"))),
        ),
    ] {
        assert_eq!(e, libc::EROFS, "{what} on a read-only mount: errno {e}");
    }
    mount.unmount();
    assert_eq!(
        fs::read_dir(&l).expect("readdir").count(),
        1,
        "the lower is unchanged"
    );
}

/// Runs the implementation with `opts` and checks the failure is reported properly.
fn rejects(opts: &str, mnt: &Path, must_name: &[&str], cause_any: &[&str]) {
    let imp = Impl::selected();
    let out = Command::new(&imp.bin)
        .args(["-o", opts])
        .arg(mnt)
        .output()
        .expect("run the daemon");
    let mounted = is_mounted(mnt);
    if mounted {
        drop(Mount::adopt(mnt, true));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "-o {opts}: exit status 0");
    assert!(!mounted, "-o {opts}: failed but left a mount");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "-o {opts}: want one line, got {err:?}"
    );
    for n in must_name {
        assert!(
            err.contains(n),
            "-o {opts}: message {err:?} should name {n:?}"
        );
    }
    let lower = err.to_lowercase();
    assert!(
        cause_any.iter().any(|c| lower.contains(c)),
        "-o {opts}: message {err:?} should give the cause (one of {cause_any:?})"
    );
}

fn bad_input_setup() -> Option<(tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf)> {
    if !privileged_or_skip() {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    Some((tmp, l, u, w, m))
}

#[test]
fn missing_lower() {
    let Some((tmp, l, _u, _w, m)) = bad_input_setup() else {
        return;
    };
    let missing = tmp.path().join("missing");
    let path = missing.display().to_string();
    rejects(
        &format!("lowerdir={}:{path}", l.display()),
        &m,
        &["lowerdir", &path],
        &["no such file", "not exist", "not found", "missing"],
    );
}

#[test]
fn lower_not_a_directory() {
    let Some((tmp, _l, _u, _w, m)) = bad_input_setup() else {
        return;
    };
    let file = tmp.path().join("file");
    fs::write(&file, "").expect("write");
    let path = file.display().to_string();
    rejects(
        &format!("lowerdir={path}"),
        &m,
        &["lowerdir", &path],
        &["not a directory"],
    );
}

#[test]
fn upper_inside_a_lower() {
    let Some((_tmp, l, _u, w, m)) = bad_input_setup() else {
        return;
    };
    let up = l.join("up");
    fs::create_dir(&up).expect("mkdir");
    let path = up.display().to_string();
    rejects(
        &format!(
            "lowerdir={},upperdir={path},workdir={}",
            l.display(),
            w.display()
        ),
        &m,
        &["upperdir", &path],
        &["inside", "within", "under", "overlap", "below"],
    );
}

/// Mounts a tmpfs for the test; the guard unmounts it on drop.
fn tmpfs(at: &Path) -> Mount {
    fs::create_dir_all(at).expect("mkdir");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(st.success(), "mount tmpfs on {}", at.display());
    Mount::adopt(at, false)
}

#[test]
fn workdir_on_another_filesystem_than_upper() {
    let Some((tmp, l, u, _w, m)) = bad_input_setup() else {
        return;
    };
    let _fs = tmpfs(&tmp.path().join("other-fs"));
    let w = tmp.path().join("other-fs/work");
    fs::create_dir(&w).expect("mkdir");
    let path = w.display().to_string();
    rejects(
        &format!(
            "lowerdir={},upperdir={},workdir={path}",
            l.display(),
            u.display()
        ),
        &m,
        &["workdir", &path],
        &["filesystem", "file system", "device", "same fs"],
    );
}

#[test]
fn workdir_not_a_directory() {
    let Some((tmp, l, u, _w, m)) = bad_input_setup() else {
        return;
    };
    let file = tmp.path().join("workfile");
    fs::write(&file, "").expect("write");
    let path = file.display().to_string();
    rejects(
        &format!(
            "lowerdir={},upperdir={},workdir={path}",
            l.display(),
            u.display()
        ),
        &m,
        &["workdir", &path],
        &["not a directory"],
    );
}

/// Clears the immutable flag set on a workdir entry, so the tempdir can be removed.
struct Immutable(PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A non-empty workdir whose leftovers cannot be cleaned (an immutable file).
#[test]
fn workdir_that_cannot_be_cleaned() {
    let Some((_tmp, l, u, w, m)) = bad_input_setup() else {
        return;
    };
    let stuck = w.join("work/stuck");
    fs::create_dir_all(stuck.parent().expect("parent")).expect("mkdir");
    fs::write(&stuck, "left over").expect("write");
    let st = Command::new("chattr").arg("+i").arg(&stuck).status();
    if !st.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: chattr +i failed (package e2fsprogs, ext4/xfs/btrfs under TMPDIR)"
        );
        eprintln!("skipped: chattr +i is not supported here");
        return;
    }
    let _guard = Immutable(stuck);
    let path = w.display().to_string();
    rejects(
        &format!(
            "lowerdir={},upperdir={},workdir={path}",
            l.display(),
            u.display()
        ),
        &m,
        &["workdir", &path],
        &["not permitted", "permission", "clean", "remove", "unusable"],
    );
}

#[test]
fn unknown_option() {
    let Some((_tmp, l, _u, _w, m)) = bad_input_setup() else {
        return;
    };
    rejects(
        &format!("lowerdir={},frobnicate=1", l.display()),
        &m,
        &["frobnicate"],
        &["unknown", "unrecognized", "unsupported", "invalid"],
    );
}

#[test]
fn stats_file_that_cannot_be_written() {
    let Some((tmp, l, u, w, m)) = bad_input_setup() else {
        return;
    };
    if Impl::selected().name != "stratafs" {
        eprintln!("skipped: stats= is stratafs' own option");
        return;
    }
    let path = tmp.path().join("missing").join("stats.tsv");
    let shown = path.display().to_string();
    rejects(
        &format!("{},stats={shown}", writable_options(&l, &u, &w)),
        &m,
        &["stats", &shown],
        &["no such file"],
    );
}

/// `\:` and `\,` escape colons and commas in layer paths, and the generic options a
/// mount helper passes are accepted without a word on stderr.
#[test]
fn escaped_paths_and_generic_options() {
    if !prerequisites() {
        return;
    }
    let imp = Impl::selected();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let odd = tmp.path().join("odd:name,with");
    fs::create_dir(&odd).expect("mkdir");
    fs::write(odd.join("from-odd"), "odd").expect("write");
    let esc = |p: &Path| {
        p.display()
            .to_string()
            .replace(':', "\\:")
            .replace(',', "\\,")
    };
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={},rw,nodev,nosuid,noatime,lazytime",
        esc(&l),
        esc(&odd),
        u.display(),
        w.display()
    );
    let out = Command::new(&imp.bin)
        .args(["-o", &opts])
        .arg(&m)
        .output()
        .expect("run the daemon");
    let guard = Mount::adopt(&m, true);
    assert!(
        out.status.success(),
        "-o {opts}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "generic options should be accepted silently"
    );
    assert_eq!(fs::read_to_string(m.join("from-odd")).expect("read"), "odd");
    assert_eq!(
        fs::read_to_string(m.join("hello")).expect("read"),
        "from the lower"
    );
    guard.unmount();
}

/// Runs the daemon with `-o opts` (and `env`) at `m`; returns the mount guard and its
/// stderr, panicking when it fails.
fn mount_reporting(opts: &str, m: &Path, env: &[(&str, &str)]) -> (Mount, String) {
    let imp = Impl::selected();
    let out = Command::new(&imp.bin)
        .envs(env.iter().copied())
        .args(["-o", opts])
        .arg(m)
        .output()
        .expect("run the daemon");
    let guard = Mount::adopt(m, true);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "-o {opts}: {err}");
    assert!(is_mounted(m), "-o {opts}: exited 0 but nothing is mounted");
    (guard, err)
}

/// True for stratafs; fuse-overlayfs 1.x (`STRATA_TEST_FS`) lacks some of 2.0's options.
fn stratafs_or_skip(what: &str) -> bool {
    let stratafs = Impl::selected().name == "stratafs";
    if !stratafs {
        eprintln!("skipped: {what} is checked on stratafs");
    }
    stratafs
}

/// fuse-overlayfs 2.0's options whose effect stratafs always has are accepted in
/// silence; those that mean nothing for stratafs are accepted with one stderr line
/// each, naming the option, said once however often it is given.
#[test]
fn fuse_overlayfs_options_are_accepted() {
    if !prerequisites() || !stratafs_or_skip("fuse-overlayfs 2.0's option list") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let silent = "noxattrs=0,xattr_permissions=0,xino=on,redirect_dir=on,redirect_dir=follow,\
                  writeback=0,fast_ino=0,kernel_cache,nosplice_read,nosplice_write,\
                  nosplice_move,volatile,sync=1,fsync=0,noatime,nodiratime,relatime,\
                  strictatime,squash_to_uid=0,squash_to_gid=0,static_nlink,noacl,threaded=1";
    let opts = format!("{},{silent}", writable_options(&l, &u, &w));
    let (guard, err) = mount_reporting(&opts, &m, &[]);
    assert_eq!(err, "", "-o {silent}: should be accepted silently");
    assert_eq!(
        fs::read_to_string(m.join("hello")).expect("read"),
        "from the lower"
    );
    guard.unmount();
    let no_effect = [
        "xino=off",
        "xino=auto",
        "ino32_t",
        "redirect_dir=off",
        "redirect_dir=nofollow",
        "writeback=1",
        "fast_ino=1",
        "max_write=131072",
        "splice_read",
        "splice_write",
        "splice_move",
        "splice_read",
    ];
    let opts = format!("{},{}", writable_options(&l, &u, &w), no_effect.join(","));
    let (guard, err) = mount_reporting(&opts, &m, &[]);
    let lines: Vec<&str> = err.lines().collect();
    let firsts = [
        "xino=off",
        "ino32_t",
        "redirect_dir=off",
        "writeback=1",
        "fast_ino=1",
        "max_write=131072",
        "splice_read",
        "splice_write",
        "splice_move",
    ];
    assert_eq!(lines.len(), firsts.len(), "one line per option: {err}");
    for (line, opt) in lines.iter().zip(firsts) {
        assert!(
            line.starts_with(&format!("stratafs: {opt}: ")) && line.contains("no effect"),
            "{opt}: {line:?}"
        );
    }
    fs::write(m.join("new"), "upper").expect("write through the mount");
    guard.unmount();
    assert_eq!(fs::read_to_string(u.join("new")).expect("upper"), "upper");
}

/// The atime family reaches the mount as mount flags (`/proc/self/mountinfo`).
#[test]
fn atime_options_are_mount_flags() {
    if !prerequisites() || !stratafs_or_skip("the atime family") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, _u, _w, m) = simple(tmp.path());
    let flags = |opts: &str| {
        let (guard, _) = mount_reporting(&format!("lowerdir={},{opts}", l.display()), &m, &[]);
        let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let want = m.display().to_string();
        let line = info
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(want.as_str()))
            .expect("the mount in mountinfo")
            .to_string();
        guard.unmount();
        // The mount's own options, and the super block's (last field: lazytime).
        let fields: Vec<&str> = line.split(' ').collect();
        format!(
            "{},{}",
            fields.get(5).unwrap_or(&""),
            fields.last().unwrap_or(&"")
        )
    };
    let has = |f: &str, o: &str| f.split(',').any(|x| x == o);
    let f = flags("noatime,nodiratime");
    assert!(has(&f, "noatime") && has(&f, "nodiratime"), "{f}");
    let f = flags("relatime");
    assert!(has(&f, "relatime") && !has(&f, "noatime"), "{f}");
    let f = flags("strictatime");
    assert!(!has(&f, "relatime") && !has(&f, "noatime"), "{f}");
    let f = flags("nodiratime,diratime,noatime,atime");
    assert!(!has(&f, "nodiratime") && !has(&f, "noatime"), "{f}");
    // lazytime was accepted and dropped before it reached mount(2).
    let f = flags("lazytime,noexec");
    assert!(has(&f, "lazytime") && has(&f, "noexec"), "{f}");
    let f = flags("lazytime,nolazytime");
    assert!(!has(&f, "lazytime"), "{f}");
}

/// `plugins=` (fuse-overlayfs' layer plugins) is refused by name.
#[test]
fn plugins_are_refused() {
    let Some((_tmp, l, _u, _w, m)) = bad_input_setup() else {
        return;
    };
    if !stratafs_or_skip("plugins=") {
        return;
    }
    rejects(
        &format!(
            "lowerdir={},plugins=/usr/lib/fuse-overlayfs/x.so",
            l.display()
        ),
        &m,
        &["plugins", "/usr/lib/fuse-overlayfs/x.so"],
        &["not supported"],
    );
}

/// Bad values of fuse-overlayfs 2.0's options: one line naming option and value.
#[test]
fn bad_fuse_overlayfs_option_values() {
    let Some((_tmp, l, _u, _w, m)) = bad_input_setup() else {
        return;
    };
    if !stratafs_or_skip("option values") {
        return;
    }
    for bad in [
        "noxattrs=yes",
        "xino=maybe",
        "redirect_dir=sometimes",
        "writeback=2",
        "fast_ino=on",
        "xattr_permissions=3",
        "max_write=lots",
        "uidmapping=0:1000",
        "gidmapping=0:x:1",
    ] {
        rejects(
            &format!("lowerdir={},{bad}", l.display()),
            &m,
            &[bad],
            &["expected", "not a valid"],
        );
    }
}

/// `noxattrs=1`: getfattr and setfattr through the mount fail ENOTSUP; `noxattrs=0`
/// (the default) serves them.
#[test]
fn noxattrs_fails_xattr_calls_enotsup() {
    if !prerequisites() || !stratafs_or_skip("noxattrs") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let st = Command::new("setfattr")
        .args(["-n", "user.mark", "-v", "lower"])
        .arg(l.join("hello"))
        .status()
        .expect("run setfattr (package attr)");
    assert!(st.success(), "setfattr on the lower");
    let run = |cmd: &str, args: &[&str], file: &Path| {
        let out = Command::new(cmd)
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("run {cmd} (package attr): {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (guard, _) = mount_reporting(
        &format!("{},noxattrs=1", writable_options(&l, &u, &w)),
        &m,
        &[],
    );
    let hello = m.join("hello");
    for (cmd, args) in [
        ("getfattr", &["-n", "user.mark"][..]),
        ("getfattr", &["-d"][..]),
        ("setfattr", &["-n", "user.new", "-v", "x"][..]),
        ("setfattr", &["-x", "user.mark"][..]),
    ] {
        let (ok, text) = run(cmd, args, &hello);
        assert!(!ok, "{cmd} {args:?} succeeded with noxattrs=1: {text}");
        assert!(
            text.contains("Operation not supported"),
            "{cmd} {args:?}: want ENOTSUP, got {text:?}"
        );
    }
    assert_eq!(
        common::sys::get_xattr(&hello, "user.mark"),
        Err(libc::ENOTSUP)
    );
    assert_eq!(common::sys::list_xattrs(&hello), Err(libc::ENOTSUP));
    guard.unmount();
    assert!(!u.join("hello").exists(), "nothing was copied up");
    let (guard, _) = mount_reporting(
        &format!("{},noxattrs=0", writable_options(&l, &u, &w)),
        &m,
        &[],
    );
    let (ok, text) = run("getfattr", &["-n", "user.mark"], &hello);
    assert!(ok && text.contains("lower"), "noxattrs=0: {text}");
    guard.unmount();
}

/// `FUSE_OVERLAYFS_NO_PASSTHROUGH`: no FUSE passthrough, so reads of an upper file
/// that `io=passthrough` hands to the kernel reach the daemon (counted by `stats=`).
#[test]
fn no_passthrough_env_keeps_reads_in_the_daemon() {
    if !prerequisites() || !stratafs_or_skip("FUSE_OVERLAYFS_NO_PASSTHROUGH") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    fs::write(u.join("big"), vec![7u8; 1 << 20]).expect("write upper");
    let stats = tmp.path().join("stats.tsv");
    let reads = |env: &[(&str, &str)]| {
        let opts = format!(
            "{},io=passthrough,stats={}",
            writable_options(&l, &u, &w),
            stats.display()
        );
        let (guard, err) = mount_reporting(&opts, &m, env);
        assert_eq!(fs::read(m.join("big")).expect("read").len(), 1 << 20);
        // The daemon writes the table as it exits, after the unmount returns.
        fs::remove_file(&stats).expect("remove the table written at mount");
        guard.unmount();
        let mut text = String::new();
        for _ in 0..1000 {
            if let Ok(t) = fs::read_to_string(&stats) {
                text = t;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!text.is_empty(), "no stats table at unmount");
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("READ\t"))
            .and_then(|r| r.split('\t').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        (n, err)
    };
    let (passed, err) = reads(&[]);
    assert_eq!(err, "");
    let (served, err) = reads(&[("FUSE_OVERLAYFS_NO_PASSTHROUGH", "1")]);
    assert!(
        err.contains("FUSE_OVERLAYFS_NO_PASSTHROUGH") && err.lines().count() == 1,
        "{err}"
    );
    assert!(served > 0, "no READ reached the daemon without passthrough");
    if passed > 0 {
        eprintln!("note: FUSE passthrough not available here ({passed} READs with it)");
    } else {
        assert!(served > passed);
    }
}

/// `FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT`: a removed lower name gets a `.wh.NAME` file
/// in the upper, not a char 0/0 device.
#[test]
fn disable_ovl_whiteout_env_writes_wh_files() {
    if !prerequisites() || !stratafs_or_skip("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (l, u, w, m) = simple(tmp.path());
    let (guard, _) = mount_reporting(
        &writable_options(&l, &u, &w),
        &m,
        &[("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT", "1")],
    );
    fs::remove_file(m.join("hello")).expect("unlink through the mount");
    assert!(!m.join("hello").exists());
    guard.unmount();
    assert!(u.join(".wh.hello").is_file(), "no .wh.hello in the upper");
    assert!(
        fs::symlink_metadata(u.join("hello")).is_err(),
        "a char 0/0 whiteout was written too"
    );
}
