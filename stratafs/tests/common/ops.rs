//! The operations a differential test runs on both mounts, each reduced to its errno.

use std::ffi::CString;
use std::path::Path;

use super::sys::{cpath, errno};

/// Every open is non-blocking, so opening a fifo fails (ENXIO) instead of hanging, and
/// close-on-exec, so daemons other test threads start never inherit (and pin) it.
const NB: libc::c_int = libc::O_NONBLOCK | libc::O_CLOEXEC;

/// One operation on the merged tree; paths are relative to the mount point.
#[derive(Debug, Clone)]
pub enum Op {
    /// open(O_CREAT|O_EXCL|O_WRONLY, mode).
    Create(String, u32),
    /// open(O_WRONLY|O_CREAT|O_TRUNC) then write.
    Write(String, String),
    /// open(O_WRONLY|O_APPEND) (no create) then write.
    Append(String, String),
    /// open(O_WRONLY) then pwrite at an offset (a partial overwrite).
    WriteAt(String, u64, String),
    /// open(O_WRONLY|O_TRUNC) without O_CREAT.
    OpenTrunc(String),
    /// truncate(2) by path.
    Truncate(String, u64),
    /// open(O_RDONLY) and read everything.
    Read(String),
    /// lstat(2).
    Stat(String),
    /// opendir + readdir to the end.
    ListDir(String),
    /// mkdir(2).
    Mkdir(String, u32),
    /// mknod(S_IFIFO).
    Mkfifo(String),
    /// mknod(S_IFCHR) with a device number.
    Mkchr(String, u64),
    /// symlink(target, path).
    Symlink(String, String),
    /// link(old, new).
    Link(String, String),
    /// unlink(2).
    Unlink(String),
    /// rmdir(2).
    Rmdir(String),
    /// renameat2(old, new, flags).
    Rename(String, String, u32),
    /// chmod(2) (follows symlinks, as chmod does).
    Chmod(String, u32),
    /// lchown(2).
    Chown(String, u32, u32),
    /// utimensat(AT_SYMLINK_NOFOLLOW) with atime = mtime = the given seconds.
    Utimes(String, i64),
    /// lsetxattr(2).
    SetXattr(String, String, Vec<u8>),
    /// lremovexattr(2).
    RemoveXattr(String, String),
    /// readlink(2).
    Readlink(String),
    /// fallocate(2) mode 0 (allocate, may extend) through an O_WRONLY fd.
    Fallocate(String, u64, u64),
    /// open(O_WRONLY), write, fsync(2), fdatasync(2).
    Fsync(String, String),
    /// open(dir, O_TMPFILE|O_RDWR), write, then linkat it in as `name` in that dir.
    TmpFile(String, String),
    /// open(O_WRONLY|O_APPEND), write, then fstat on that descriptor: 0 when it shows
    /// no set-user-ID / set-group-ID bit any more, ENOTRECOVERABLE when it still does
    /// (what a writer's own descriptor says after a write that clears them).
    WriteFstatPriv(String),
}

/// Shorthand for building ops from `&str` paths.
pub fn p(s: &str) -> String {
    s.to_string()
}

impl Op {
    /// Runs the operation under mount point `m`; returns 0 or the errno.
    pub fn apply(&self, m: &Path) -> i32 {
        let at = |r: &str| cpath(&m.join(r));
        // SAFETY: plain syscalls on valid C strings / fds / buffers.
        unsafe {
            match self {
                Op::Create(r, mode) => close_ok(libc::open(
                    at(r).as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | NB,
                    *mode,
                )),
                Op::Write(r, d) => write_fd(
                    libc::open(
                        at(r).as_ptr(),
                        libc::O_CREAT | libc::O_TRUNC | libc::O_WRONLY | NB,
                        0o644,
                    ),
                    None,
                    d,
                ),
                Op::Append(r, d) => write_fd(
                    libc::open(at(r).as_ptr(), libc::O_APPEND | libc::O_WRONLY | NB),
                    None,
                    d,
                ),
                Op::WriteAt(r, off, d) => write_fd(
                    libc::open(at(r).as_ptr(), libc::O_WRONLY | NB),
                    Some(*off),
                    d,
                ),
                Op::OpenTrunc(r) => close_ok(libc::open(
                    at(r).as_ptr(),
                    libc::O_TRUNC | libc::O_WRONLY | NB,
                )),
                Op::Truncate(r, n) => errno(libc::truncate(at(r).as_ptr(), *n as i64) as i64),
                Op::Read(r) => {
                    let fd = libc::open(at(r).as_ptr(), libc::O_RDONLY | NB);
                    if fd < 0 {
                        return errno(-1);
                    }
                    let mut buf = [0u8; 4096];
                    let mut e = 0;
                    loop {
                        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                        if n <= 0 {
                            e = if n < 0 { errno(-1) } else { e };
                            break;
                        }
                    }
                    libc::close(fd);
                    e
                }
                Op::Stat(r) => super::sys::errno_of(std::fs::symlink_metadata(m.join(r))),
                Op::ListDir(r) => super::sys::errno_of(
                    std::fs::read_dir(m.join(r)).and_then(|rd| rd.collect::<Result<Vec<_>, _>>()),
                ),
                Op::Mkdir(r, mode) => errno(libc::mkdir(at(r).as_ptr(), *mode) as i64),
                Op::Mkfifo(r) => {
                    errno(libc::mknod(at(r).as_ptr(), libc::S_IFIFO | 0o644, 0) as i64)
                }
                Op::Mkchr(r, dev) => {
                    errno(libc::mknod(at(r).as_ptr(), libc::S_IFCHR | 0o600, *dev) as i64)
                }
                Op::Symlink(t, r) => {
                    let t = CString::new(t.as_str()).expect("target");
                    errno(libc::symlink(t.as_ptr(), at(r).as_ptr()) as i64)
                }
                Op::Link(a, b) => errno(libc::link(at(a).as_ptr(), at(b).as_ptr()) as i64),
                Op::Unlink(r) => errno(libc::unlink(at(r).as_ptr()) as i64),
                Op::Rmdir(r) => errno(libc::rmdir(at(r).as_ptr()) as i64),
                Op::Rename(a, b, f) => errno(libc::renameat2(
                    libc::AT_FDCWD,
                    at(a).as_ptr(),
                    libc::AT_FDCWD,
                    at(b).as_ptr(),
                    *f,
                ) as i64),
                Op::Chmod(r, mode) => errno(libc::chmod(at(r).as_ptr(), *mode) as i64),
                Op::Chown(r, u, g) => errno(libc::lchown(at(r).as_ptr(), *u, *g) as i64),
                Op::Utimes(r, s) => {
                    let ts = [libc::timespec {
                        tv_sec: *s,
                        tv_nsec: 0,
                    }; 2];
                    errno(libc::utimensat(
                        libc::AT_FDCWD,
                        at(r).as_ptr(),
                        ts.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    ) as i64)
                }
                Op::SetXattr(r, n, v) => {
                    let n = CString::new(n.as_str()).expect("xattr name");
                    errno(
                        libc::lsetxattr(at(r).as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0)
                            as i64,
                    )
                }
                Op::RemoveXattr(r, n) => {
                    let n = CString::new(n.as_str()).expect("xattr name");
                    errno(libc::lremovexattr(at(r).as_ptr(), n.as_ptr()) as i64)
                }
                Op::Readlink(r) => super::sys::errno_of(std::fs::read_link(m.join(r))),
                Op::Fallocate(r, off, len) => {
                    let fd = libc::open(at(r).as_ptr(), libc::O_WRONLY | NB);
                    if fd < 0 {
                        return errno(-1);
                    }
                    let e = errno(libc::fallocate(fd, 0, *off as i64, *len as i64) as i64);
                    libc::close(fd);
                    e
                }
                Op::Fsync(r, d) => {
                    let fd = libc::open(at(r).as_ptr(), libc::O_WRONLY | libc::O_APPEND | NB);
                    if fd < 0 {
                        return errno(-1);
                    }
                    let mut e = errno(libc::write(fd, d.as_ptr().cast(), d.len()) as i64);
                    if e == 0 {
                        e = errno(libc::fsync(fd) as i64);
                    }
                    if e == 0 {
                        e = errno(libc::fdatasync(fd) as i64);
                    }
                    libc::close(fd);
                    e
                }
                Op::WriteFstatPriv(r) => {
                    let fd = libc::open(at(r).as_ptr(), libc::O_WRONLY | libc::O_APPEND | NB);
                    if fd < 0 {
                        return errno(-1);
                    }
                    let mut e = errno(libc::write(fd, b"w\n".as_ptr().cast(), 2) as i64);
                    let mut st: libc::stat = std::mem::zeroed();
                    if e == 0 {
                        e = errno(libc::fstat(fd, &mut st) as i64);
                    }
                    libc::close(fd);
                    if e == 0 && st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
                        e = libc::ENOTRECOVERABLE;
                    }
                    e
                }
                Op::TmpFile(dir, name) => {
                    let fd =
                        libc::open(at(dir).as_ptr(), libc::O_TMPFILE | libc::O_RDWR | NB, 0o640);
                    if fd < 0 {
                        return errno(-1);
                    }
                    let mut e = errno(libc::write(fd, b"tmp".as_ptr().cast(), 3) as i64);
                    if e == 0 {
                        let target = cpath(&m.join(dir).join(name));
                        e = errno(libc::linkat(
                            fd,
                            c"".as_ptr(),
                            libc::AT_FDCWD,
                            target.as_ptr(),
                            libc::AT_EMPTY_PATH,
                        ) as i64);
                    }
                    libc::close(fd);
                    e
                }
            }
        }
    }
}

/// Closes `fd` when open; the open's errno otherwise.
unsafe fn close_ok(fd: libc::c_int) -> i32 {
    if fd < 0 {
        return errno(-1);
    }
    // SAFETY: `fd` was just opened by the caller.
    unsafe { libc::close(fd) };
    0
}

/// Writes `d` to `fd` (at `off` when given), then closes it.
unsafe fn write_fd(fd: libc::c_int, off: Option<u64>, d: &str) -> i32 {
    if fd < 0 {
        return errno(-1);
    }
    // SAFETY: `fd` is open; `d` is a valid buffer.
    let n = unsafe {
        match off {
            Some(o) => libc::pwrite(fd, d.as_ptr().cast(), d.len(), o as i64),
            None => libc::write(fd, d.as_ptr().cast(), d.len()),
        }
    };
    let e = if n < 0 { errno(-1) } else { 0 };
    // SAFETY: `fd` is open.
    let c = unsafe { libc::close(fd) };
    if e != 0 { e } else { errno(c as i64) }
}

/// Who runs an operation: a forked child of the test with this umask and these ids
/// (real, effective and saved, no supplementary groups), as a program run by another
/// user, or under another umask, calls the mount. The test process itself (root,
/// umask 022 in CI) is only one caller among many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The umask the operation runs under.
    pub umask: u32,
    /// uid (real, effective, saved).
    pub uid: u32,
    /// gid (real, effective, saved); the only group.
    pub gid: u32,
}

impl Caller {
    /// root with umask `umask`.
    pub fn root(umask: u32) -> Self {
        Caller {
            umask,
            uid: 0,
            gid: 0,
        }
    }

    /// The unprivileged `nobody` (65534:65534), umask 022.
    pub fn nobody() -> Self {
        Caller {
            umask: 0o022,
            uid: 65534,
            gid: 65534,
        }
    }
}

impl Op {
    /// Runs the operation under mount point `m` in a forked child as `caller`; returns
    /// 0 or the errno. (glibc's malloc is safe to use in the child of a threaded
    /// parent, which the operations' path building needs.)
    pub fn apply_as(&self, m: &Path, caller: Caller) -> i32 {
        // SAFETY: the child only makes syscalls and allocations (fork-safe in glibc)
        // and leaves with _exit; the parent waits for it.
        unsafe {
            let pid = libc::fork();
            if pid < 0 {
                panic!("fork: {}", std::io::Error::last_os_error());
            }
            if pid == 0 {
                let gid = caller.gid;
                let uid = caller.uid;
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    libc::_exit(250);
                }
                libc::umask(caller.umask as libc::mode_t);
                let r = self.apply(m);
                libc::_exit(r.clamp(0, 249));
            }
            let mut status = 0;
            if libc::waitpid(pid, &mut status, 0) != pid {
                panic!("waitpid: {}", std::io::Error::last_os_error());
            }
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 250,
                "child for {self:?} as {caller:?} failed to take its ids (status {status})"
            );
            libc::WEXITSTATUS(status)
        }
    }
}
