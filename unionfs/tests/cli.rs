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
