//! Files used by several opens at once, as programs use them: a binary executed while
//! it runs, a chmod (copy-up) of a running binary, a reader beside a writer. With FUSE
//! passthrough the kernel allows one backing file per inode, so these are where a
//! userspace overlay fails with EIO; each runs on kernel overlayfs and on the
//! implementation under test, and both must agree.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use fixtures::layers::LayerSet;

/// A lower with a static binary (big enough to be passed through) and a 1 MiB file.
fn programs(root: &Path) -> anyhow::Result<LayerSet> {
    let set = LayerSet::create(root, 1)?;
    let l = set.lower(0)?;
    l.dir("bin", 0o755)?;
    l.file("bin/busybox", &std::fs::read(static_binary())?, 0o755)?;
    l.large("data", 1 << 20, 7)?;
    l.finish()?;
    Ok(set)
}

/// busybox-static (installed by scripts/deps): runs without libraries from the mount.
fn static_binary() -> &'static Path {
    let p = Path::new("/bin/busybox");
    assert!(p.exists(), "{} missing: run scripts/deps", p.display());
    p
}

fn spawn_sleeper(m: &Path, bin: &str) -> Child {
    Command::new(m.join(bin))
        .args(["sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("exec {}: {e}", m.join(bin).display()))
}

/// Exit status of `busybox true` run from the mount, or the exec error.
fn run_true(m: &Path, bin: &str) -> Result<i32, i32> {
    Command::new(m.join(bin))
        .arg("true")
        .status()
        .map(|s| s.code().unwrap_or(-1))
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// Runs `bin` (a busybox) while executing it again, chmod-ing it, reading it.
fn exec_while_running(m: &Path, bin: &str) {
    let mut sleeper = spawn_sleeper(m, bin);
    let second = run_true(m, bin);
    let chmod = std::fs::set_permissions(
        m.join(bin),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    );
    let after_chmod = run_true(m, bin);
    let read_whole = std::fs::read(m.join(bin)).map(|v| v.len());
    sleeper.kill().expect("kill sleeper");
    sleeper.wait().expect("reap sleeper");
    let after_exit = run_true(m, bin);
    let at = m.join(bin);
    assert_eq!(
        second,
        Ok(0),
        "{}: second exec of a running binary",
        at.display()
    );
    assert!(chmod.is_ok(), "{}: chmod of a running binary", at.display());
    assert_eq!(after_chmod, Ok(0), "{}: exec after chmod", at.display());
    let expect = std::fs::metadata(static_binary())
        .expect("stat binary")
        .len();
    assert_eq!(
        read_whole.ok(),
        Some(expect as usize),
        "{}: read",
        at.display()
    );
    assert_eq!(after_exit, Ok(0), "{}: exec after exit", at.display());
}

#[test]
fn a_running_binary_executes_again_and_after_a_chmod() {
    let Some(mut d) = Differential::new(programs) else {
        return;
    };
    for m in [d.km().to_path_buf(), d.um().to_path_buf()] {
        // From the lower layer, then a copy made in the mount (an upper file).
        exec_while_running(&m, "bin/busybox");
        // Copied by a `cp` child, not in this process: a file this process held open
        // for writing would leak, between fork and exec, into the children other test
        // threads spawn at that moment, and its exec fail ETXTBSY on any file system.
        std::fs::create_dir_all(m.join("bin/copy")).expect("mkdir bin/copy");
        let cp = Command::new("cp")
            .arg(m.join("bin/busybox"))
            .arg(m.join("bin/copy/busybox"))
            .status()
            .expect("run cp");
        assert!(
            cp.success(),
            "{}: cp of the binary in the mount",
            m.display()
        );
        exec_while_running(&m, "bin/copy/busybox");
    }
    d.compare("after execs");
    d.compare_upper("after execs");
    d.finish();
}

/// Holds `rel` open for reading while a writer changes it, then truncates it. The
/// first reader sees the write when `old_reader_follows` (kernel overlayfs since 4.19;
/// stratafs but with `io=passthrough-all` on a lower file), else the data from before.
fn reader_beside_writer(m: &Path, rel: &str, old_reader_follows: bool) {
    let f = m.join(rel);
    let mut reader = std::fs::File::open(&f).expect("open reader");
    let mut head = [0u8; 4096];
    reader.read_exact(&mut head).expect("read before the write");
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap_or_else(|e| panic!("open writer of {}: {e}", f.display()));
    writer.seek(SeekFrom::Start(8192)).expect("seek");
    writer.write_all(b"changed").expect("write");
    // A reader opened after the write sees it, whatever the first reader sees.
    let fresh = std::fs::read(&f).expect("read after write");
    assert_eq!(&fresh[8192..8199], b"changed", "{}", f.display());
    assert_eq!(fresh.len(), 1 << 20, "{}", f.display());
    // The first reader, opened before the copy-up, sees the write too (as kernel
    // overlayfs since 4.19 shows it), and its fstat the new attributes.
    // Drop the cached pages so the reads reach the filesystem through this handle.
    // SAFETY: fadvise on an open fd.
    let r = unsafe { libc::posix_fadvise(reader.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "fadvise {}", f.display());
    reader.seek(SeekFrom::Start(0)).expect("seek reader");
    let mut again = Vec::new();
    reader.read_to_end(&mut again).expect("old reader reads on");
    assert_eq!(again.len(), 1 << 20, "{}", f.display());
    assert_eq!(&again[..4096], &head[..], "{}", f.display());
    if old_reader_follows {
        assert_eq!(
            &again[8192..8199],
            b"changed",
            "{}: old reader",
            f.display()
        );
    } else {
        assert_ne!(
            &again[8192..8199],
            b"changed",
            "{}: old reader of the lower file",
            f.display()
        );
    }
    writer.set_len(1 << 21).expect("grow");
    let len = reader.metadata().expect("fstat old reader").len();
    assert_eq!(len, 1 << 21, "{}: fstat of the old reader", f.display());
    let end = reader.seek(SeekFrom::End(0)).expect("seek to end");
    assert_eq!(end, 1 << 21, "{}: SEEK_END of the old reader", f.display());
    writer.set_len(1 << 20).expect("shrink");
    drop(writer);
    // Truncate by path while the reader holds it open, then read anew.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .and_then(|w| w.set_len(100))
        .expect("truncate");
    assert_eq!(
        std::fs::read(&f).expect("read").len(),
        100,
        "{}",
        f.display()
    );
}

#[test]
fn a_reader_beside_a_writer() {
    let Some(mut d) = Differential::new(programs) else {
        return;
    };
    let lower_follows = Impl::io_from_env() != "passthrough-all";
    for (m, follows) in [
        (d.km().to_path_buf(), true),
        (d.um().to_path_buf(), lower_follows),
    ] {
        reader_beside_writer(&m, "data", follows);
        let made = std::fs::read(static_binary()).expect("read binary");
        std::fs::write(m.join("made"), &made[..1 << 20]).expect("write made");
        reader_beside_writer(&m, "made", true);
    }
    d.compare("after reader and writer");
    d.finish();
}

/// `io=passthrough-all` passes lower files through too: a writer (and a reader after
/// the copy-up) gets a second FUSE inode rather than the lower backing file, so the
/// lower layer is never written; every other open sees what kernel overlayfs shows.
#[test]
fn lower_files_passed_through_never_take_writes() {
    let Some(mut d) = Differential::new(programs) else {
        return;
    };
    d.remount_under_with(",io=passthrough-all");
    let lower_data = d.under.lowers[0].join("data");
    let before = std::fs::read(&lower_data).expect("read lower data");
    for (m, follows) in [(d.km().to_path_buf(), true), (d.um().to_path_buf(), false)] {
        reader_beside_writer(&m, "data", follows);
        exec_while_running(&m, "bin/busybox");
        // A reader of a file copied up (truncated by path) while the first reader of
        // its lower file stays open: the new reader sees the upper file.
        let f = m.join("bin/busybox");
        let old = std::fs::File::open(&f).expect("open binary");
        let len = old.metadata().expect("fstat").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .and_then(|w| w.set_len(len / 2))
            .expect("truncate binary by path");
        let now = std::fs::read(&f).expect("read truncated binary");
        assert_eq!(now.len() as u64, len / 2, "{}", f.display());
        // Stat and fstat report the one inode number throughout.
        let ino = std::fs::metadata(&f).expect("stat").ino();
        assert_eq!(old.metadata().expect("fstat").ino(), ino, "{}", f.display());
    }
    d.compare("after writes to files read through the lower layer");
    d.compare_upper("after writes to files read through the lower layer");
    let after = std::fs::read(&lower_data).expect("read lower data");
    assert!(
        before == after,
        "{}: the lower layer changed",
        lower_data.display()
    );
    d.finish();
}

#[test]
fn many_opens_of_one_file_in_parallel() {
    let Some(mut d) = Differential::new(programs) else {
        return;
    };
    for m in [d.km().to_path_buf(), d.um().to_path_buf()] {
        let f = m.join("data");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let f = f.clone();
                std::thread::spawn(move || {
                    let mut sum = 0u64;
                    for _ in 0..20 {
                        let v = std::fs::read(&f).map_err(|e| format!("thread {i}: {e}"))?;
                        sum += v.len() as u64;
                    }
                    Ok::<u64, String>(sum)
                })
            })
            .collect();
        for t in threads {
            let got = t.join().expect("reader thread");
            assert_eq!(got, Ok(20 << 20), "{}", m.display());
        }
    }
    d.compare("after parallel reads");
    d.finish();
}

/// The number of files the stratafs daemon serving `mnt` holds open.
fn daemon_fds(mnt: &Path) -> usize {
    let want = mnt.as_os_str().as_encoded_bytes();
    let pid = std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours =
                args.first().is_some_and(|a| a.ends_with(b"stratafs")) && args.contains(&want);
            ours.then_some(pid)
        })
        .unwrap_or_else(|| panic!("no stratafs daemon serves {}", mnt.display()));
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the daemon's fds")
        .count()
}

/// With passthrough, an open of a lower file to read that is not passed through (any
/// with `io=passthrough`, a small one with `io=passthrough-all`) shares the real file
/// the daemon keeps per inode: 200 opens at once hold no file each in the daemon (no
/// open(2) per OPEN, no close(2) per RELEASE), read the file's data, and follow its
/// copy-up as a handle of its own would.
#[test]
fn opens_of_a_lower_file_to_read_share_the_daemons_real_file() {
    for io in ["passthrough", "passthrough-all"] {
        let Some(mut d) = Differential::new(|root| {
            let set = LayerSet::create(root, 1)?;
            let l = set.lower(0)?;
            l.file("small", &[7u8; 3000], 0o644)?;
            l.finish()?;
            Ok(set)
        }) else {
            return;
        };
        if d.imp.name != "stratafs" {
            return;
        }
        d.remount_under_with(&format!(",io={io}"));
        let m = d.um().to_path_buf();
        let f = m.join("small");
        let before = daemon_fds(&m);
        let mut readers: Vec<std::fs::File> = (0..200)
            .map(|_| std::fs::File::open(&f).expect("open small"))
            .collect();
        let during = daemon_fds(&m);
        assert!(
            during < before + 20,
            "io={io}: the daemon holds {during} files with 200 readers open, {before} before"
        );
        for r in readers.iter_mut().take(3) {
            let mut v = Vec::new();
            r.read_to_end(&mut v).expect("read small");
            assert_eq!(v, vec![7u8; 3000], "io={io}");
        }
        // A copy-up under the open readers: they read the upper copy from then on.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .and_then(|mut w| w.write_all(b"new"))
            .expect("write small");
        let r = &mut readers[10];
        // SAFETY: fadvise on an open fd.
        let rc = unsafe { libc::posix_fadvise(r.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "fadvise");
        let mut v = Vec::new();
        r.read_to_end(&mut v).expect("read after the copy-up");
        assert_eq!(&v[..3], b"new", "io={io}: an old reader after the copy-up");
        assert_eq!(v.len(), 3000, "io={io}");
        drop(readers);
        d.finish();
    }
}
