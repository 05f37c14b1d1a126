//! Objects whose name goes while they are open: unlinked, renamed over, their
//! directory removed. POSIX keeps the object alive until the last close; `apt-get
//! update` (which unlinks its partial files while writing them) depends on it. Each
//! scenario runs on kernel overlayfs and on the implementation under test, recording
//! what every call on the open descriptor returns, and both records must be equal.

mod common;

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::*;
use fixtures::layers::LayerSet;

/// One lower with files and directories to remove while open.
fn layers(root: &Path) -> anyhow::Result<LayerSet> {
    let set = LayerSet::create(root, 1)?;
    let l = set.lower(0)?;
    l.dir("d", 0o755)?;
    l.file("d/lower", b"lower data\n", 0o644)?;
    l.file("d/lower_rw", b"lower rw data\n", 0o644)?;
    l.file("d/victim", b"victim\n", 0o644)?;
    l.file("d/source", b"source\n", 0o644)?;
    l.dir("gone", 0o755)?;
    l.file("gone/inner", b"inner\n", 0o644)?;
    l.finish()?;
    Ok(set)
}

fn open(p: &Path, flags: i32, mode: u32) -> Result<OwnedFd, i32> {
    let c = CString::new(p.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: a valid C string; the fd returned is owned here.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// What the calls a program makes on a descriptor return: fstat (type, mode, size,
/// nlink), a read from the start, a write at the end, ftruncate, and a shared mapping
/// written and synced.
fn probe(fd: &OwnedFd, out: &mut String, label: &str) {
    let raw = fd.as_raw_fd();
    // SAFETY: fstat into a zeroed struct on an open fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::fstat(raw, &mut st) };
    if r < 0 {
        let _ = writeln!(out, "{label}: fstat errno {}", last_errno());
    } else {
        let _ = writeln!(
            out,
            "{label}: fstat mode {:o} size {} nlink {}",
            st.st_mode, st.st_size, st.st_nlink
        );
    }
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir {
        return;
    }
    let mut buf = [0u8; 64];
    // SAFETY: pread into a local buffer of that size.
    let n = unsafe { libc::pread(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        let _ = writeln!(out, "{label}: pread errno {}", last_errno());
    } else {
        let _ = writeln!(
            out,
            "{label}: pread {:?}",
            String::from_utf8_lossy(&buf[..n as usize])
        );
    }
}

fn write_probe(fd: &OwnedFd, out: &mut String, label: &str) {
    let raw = fd.as_raw_fd();
    let data = b"appended\n";
    // SAFETY: pwrite of a local buffer on an open fd.
    let n = unsafe { libc::pwrite(raw, data.as_ptr().cast(), data.len(), 100) };
    let _ = writeln!(
        out,
        "{label}: pwrite {}",
        if n < 0 { -last_errno() as isize } else { n }
    );
    // SAFETY: ftruncate on an open fd.
    let r = unsafe { libc::ftruncate(raw, 4096) };
    let _ = writeln!(
        out,
        "{label}: ftruncate {}",
        if r < 0 { -last_errno() } else { r }
    );
    // SAFETY: a fresh shared mapping of the first page of the (now 4 KiB) file,
    // written, synced and unmapped here.
    unsafe {
        let m = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            raw,
            0,
        );
        if m == libc::MAP_FAILED {
            let _ = writeln!(out, "{label}: mmap errno {}", last_errno());
        } else {
            *(m as *mut u8).add(2) = b'X';
            let r = libc::msync(m, 4096, libc::MS_SYNC);
            let _ = writeln!(
                out,
                "{label}: msync {}",
                if r < 0 { -last_errno() } else { r }
            );
            libc::munmap(m, 4096);
        }
    }
    probe(fd, out, label);
}

/// Every scenario on one mount; returns what was seen.
fn scenarios(m: &Path) -> String {
    let mut out = String::new();
    let rw = libc::O_RDWR;

    // A file created through the mount, open read-write, unlinked.
    std::fs::write(m.join("d/new"), b"new data\n").expect("create d/new");
    let f = open(&m.join("d/new"), rw, 0).expect("open d/new");
    std::fs::remove_file(m.join("d/new")).expect("unlink d/new");
    probe(&f, &mut out, "upper unlinked");
    write_probe(&f, &mut out, "upper unlinked, written");
    drop(f);

    // A lower file open for reading, unlinked.
    let f = open(&m.join("d/lower"), libc::O_RDONLY, 0).expect("open d/lower");
    std::fs::remove_file(m.join("d/lower")).expect("unlink d/lower");
    probe(&f, &mut out, "lower unlinked");
    drop(f);

    // A lower file open read-write (not written yet), unlinked, then written.
    let f = open(&m.join("d/lower_rw"), rw, 0).expect("open d/lower_rw");
    std::fs::remove_file(m.join("d/lower_rw")).expect("unlink d/lower_rw");
    write_probe(&f, &mut out, "lower rw unlinked, written");
    drop(f);
    let _ = writeln!(
        out,
        "d/lower_rw after: {:?}",
        std::fs::symlink_metadata(m.join("d/lower_rw")).map_err(|e| e.raw_os_error())
    );

    // A file open while another is renamed over it (an editor's save, dpkg). (Read
    // only: kernel overlayfs copies up at an open for writing, stratafs' io=inode at
    // the first write, so an unwritten lower file shows a link count of 1 there.)
    let f = open(&m.join("d/victim"), libc::O_RDONLY, 0).expect("open d/victim");
    std::fs::write(m.join("d/upper_victim"), b"upper victim\n").expect("create");
    let g = open(&m.join("d/upper_victim"), rw, 0).expect("open d/upper_victim");
    std::fs::rename(m.join("d/source"), m.join("d/victim")).expect("rename over d/victim");
    std::fs::write(m.join("d/tmp"), b"replacement\n").expect("create d/tmp");
    std::fs::rename(m.join("d/tmp"), m.join("d/upper_victim")).expect("rename over");
    probe(&f, &mut out, "lower renamed over");
    probe(&g, &mut out, "upper renamed over");
    write_probe(&g, &mut out, "upper renamed over, written");
    drop((f, g));
    let _ = writeln!(
        out,
        "d/victim now: {:?}, d/upper_victim now: {:?}",
        std::fs::read_to_string(m.join("d/victim")).map_err(|e| e.raw_os_error()),
        std::fs::read_to_string(m.join("d/upper_victim")).map_err(|e| e.raw_os_error()),
    );

    // A file open in a directory that is then removed, and the directory itself open.
    std::fs::create_dir(m.join("tmpdir")).expect("mkdir tmpdir");
    std::fs::write(m.join("tmpdir/f"), b"in a removed dir\n").expect("create tmpdir/f");
    let f = open(&m.join("tmpdir/f"), rw, 0).expect("open tmpdir/f");
    let dir = open(&m.join("tmpdir"), libc::O_RDONLY | libc::O_DIRECTORY, 0).expect("open dir");
    std::fs::remove_file(m.join("tmpdir/f")).expect("unlink tmpdir/f");
    std::fs::remove_dir(m.join("tmpdir")).expect("rmdir tmpdir");
    probe(&f, &mut out, "file of a removed dir");
    write_probe(&f, &mut out, "file of a removed dir, written");
    probe(&dir, &mut out, "removed upper dir");
    drop((f, dir));

    // A lower directory removed while open, after its file was.
    let f = open(&m.join("gone/inner"), libc::O_RDONLY, 0).expect("open gone/inner");
    let dir = open(&m.join("gone"), libc::O_RDONLY | libc::O_DIRECTORY, 0).expect("open gone");
    std::fs::remove_file(m.join("gone/inner")).expect("unlink gone/inner");
    std::fs::remove_dir(m.join("gone")).expect("rmdir gone");
    probe(&f, &mut out, "lower file of a removed dir");
    probe(&dir, &mut out, "removed lower dir");
    drop((f, dir));
    out
}

#[test]
fn open_objects_keep_working_after_their_name_goes() {
    let Some(mut d) = Differential::new(layers) else {
        return;
    };
    let k = scenarios(d.km());
    let u = scenarios(d.um());
    if k != u {
        d.mismatch(format!(
            "calls on open objects whose name went differ\n--- kernel overlayfs\n{k}--- {}\n{u}",
            d.imp.name
        ));
    }
    d.compare("after the scenarios");
    d.compare_upper("after the scenarios");
    d.finish();
}

/// Nothing of the removed objects stays in the work dir once they are closed (the
/// kernel forgets them at the last close; a FORGET is served asynchronously).
#[test]
fn removed_objects_leave_nothing_once_closed() {
    if !privileged_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let set = layers(tmp.path()).expect("layers");
    let imp = Impl::selected();
    let mount = imp.mount(&set);
    let m = set.mnt.clone();
    let work = set.work.join("work");
    let before = entries(&work);
    for i in 0..20 {
        let p = m.join(format!("d/f{i}"));
        std::fs::write(&p, b"x").expect("create");
        let f = open(&p, libc::O_RDWR, 0).expect("open");
        std::fs::remove_file(&p).expect("unlink");
        drop(f);
    }
    std::fs::write(m.join("d/over"), b"x").expect("create");
    let f = open(&m.join("d/over"), libc::O_RDONLY, 0).expect("open");
    std::fs::write(m.join("d/src"), b"y").expect("create");
    std::fs::rename(m.join("d/src"), m.join("d/over")).expect("rename over");
    drop(f);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut now = entries(&work);
    while now.len() > before.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        now = entries(&work);
    }
    assert!(
        now.len() <= before.len(),
        "{}: work dir holds {now:?} after every removed file was closed (before: {before:?})",
        imp.name
    );
    mount.unmount();
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
