//! Thin, fd-relative syscall wrappers used by the overlay logic.
//!
//! Everything takes a directory fd plus a path relative to it; layer contents are never
//! reached through a host path built by string concatenation, and final components are
//! never followed.

pub mod fuse_dev;
pub mod io;
pub mod mount;
pub mod process;
pub mod uring;

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A `struct stat` as the kernel filled it.
pub type Stat = libc::stat;

/// Converts a path to a C string, rejecting interior NULs.
pub fn cpath(path: &Path) -> std::io::Result<CString> {
    let bytes = path.as_os_str().as_bytes();
    let bytes = if bytes.is_empty() {
        b"." as &[u8]
    } else {
        bytes
    };
    CString::new(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `fstatat(dirfd, path, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<Stat> {
    let c = cpath(path)?;
    lstat_at_c(dir, &c)
}

/// `fstatat` on a C path, not following a final symlink.
pub fn lstat_at_c(dir: BorrowedFd<'_>, path: &CStr) -> std::io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<Stat>::uninit();
    // SAFETY: valid fd, NUL-terminated path, st points to writable memory.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

/// `fstat` of an open fd.
pub fn fstat(fd: RawFd) -> std::io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<Stat>::uninit();
    // SAFETY: st points to writable memory.
    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded.
    Ok(unsafe { st.assume_init() })
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const OPEN_FLAGS_KNOWN: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_LARGEFILE
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_CLOEXEC
    | libc::O_PATH
    | libc::O_TMPFILE;

/// Opens `path` beneath `dir` without following any symlink on the way
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> std::io::Result<OwnedFd> {
    let c = cpath(path)?;
    // openat2 rejects bits open(2) ignores; FUSE passes some (e.g. FMODE_EXEC on exec).
    let flags = flags & OPEN_FLAGS_KNOWN;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u32 as u64,
        mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            mode as u64
        } else {
            0
        },
        resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: how is a valid open_how of the size passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            // SAFETY: the kernel returned a fresh fd we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EAGAIN) || err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // openat2 reports a symlink on the way as ELOOP; a symlink as the final component
        // opened without O_PATH is ELOOP too, as O_NOFOLLOW gives.
        return Err(err);
    }
}

/// Opens a directory (absolute or cwd-relative host path) as an `O_PATH` fd: a layer root.
pub fn open_dir_path(path: &Path) -> std::io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: NUL-terminated path.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat`.
pub fn mkdir_at(dir: BorrowedFd<'_>, path: &Path, mode: u32) -> std::io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid fd and path.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
}

/// `mknodat`.
pub fn mknod_at(dir: BorrowedFd<'_>, path: &Path, mode: u32, rdev: u64) -> std::io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid fd and path.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode, rdev) }).map(drop)
}

/// `symlinkat`.
pub fn symlink_at(target: &OsStr, dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<()> {
    let t = CString::new(target.as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let c = cpath(path)?;
    // SAFETY: valid fd and paths.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) }).map(drop)
}

/// `readlinkat`.
pub fn readlink_at(dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<Vec<u8>> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf is writable for its length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `unlinkat` (with `AT_REMOVEDIR` when `dir_entry`).
pub fn unlink_at(dir: BorrowedFd<'_>, path: &Path, dir_entry: bool) -> std::io::Result<()> {
    let c = cpath(path)?;
    let flags = if dir_entry { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and path.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

/// `renameat2` within one directory fd.
pub fn rename_at(dir: BorrowedFd<'_>, from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    let a = cpath(from)?;
    let b = cpath(to)?;
    // SAFETY: valid fd and paths.
    check(unsafe {
        libc::renameat2(
            dir.as_raw_fd(),
            a.as_ptr(),
            dir.as_raw_fd(),
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `renameat2` between two directory fds.
pub fn rename_between(
    from_dir: BorrowedFd<'_>,
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to: &Path,
    flags: u32,
) -> std::io::Result<()> {
    let a = cpath(from)?;
    let b = cpath(to)?;
    // SAFETY: valid fds and paths.
    check(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            a.as_ptr(),
            to_dir.as_raw_fd(),
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `linkat` without following.
pub fn link_between(
    from_dir: BorrowedFd<'_>,
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to: &Path,
) -> std::io::Result<()> {
    let a = cpath(from)?;
    let b = cpath(to)?;
    // SAFETY: valid fds and paths.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            a.as_ptr(),
            to_dir.as_raw_fd(),
            b.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`; `u32::MAX` leaves an id unchanged.
pub fn lchown_at(dir: BorrowedFd<'_>, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid fd and path.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `fchmodat` (never on symlinks: callers don't chmod links).
pub fn chmod_at(dir: BorrowedFd<'_>, path: &Path, mode: u32) -> std::io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid fd and path.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode, 0) }).map(drop)
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`.
pub fn utimens_at(
    dir: BorrowedFd<'_>,
    path: &Path,
    times: &[libc::timespec; 2],
) -> std::io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid fd, path and two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// The `/proc/self/fd/N/rel` spelling of a path beneath a layer fd, for the `l*xattr`
/// calls that have no `*at` form. Intermediate components are directories of that
/// layer by construction; the final one is never followed (`l*` calls).
fn proc_path(dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<CString> {
    let mut s = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    let rel = path.as_os_str().as_bytes();
    // The fd's own directory is `N/.`: `l*xattr` on `N` itself would act on the magic
    // link, not the directory.
    s.push(b'/');
    s.extend_from_slice(if rel.is_empty() { b"." } else { rel });
    CString::new(s).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// `getxattrat(2)`'s syscall number (Linux 6.13; the same on every architecture).
const SYS_GETXATTRAT: libc::c_long = 464;

/// `struct xattr_args` of `getxattrat(2)`.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// The kernel has `getxattrat(2)` (until it says ENOSYS).
static HAS_GETXATTRAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// One `lgetxattr` of `path` beneath `dir` into `buf` (empty: the size): through
/// `getxattrat(2)`, which resolves the path from the fd as `*at` calls do, or else
/// through the `/proc/self/fd` spelling (a procfs walk per call).
fn getxattr_once(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &CStr,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    use std::sync::atomic::Ordering::Relaxed;
    if HAS_GETXATTRAT.load(Relaxed) {
        let rel = cpath(path)?;
        // An empty path is the fd's own directory, `.` (see `cpath`).
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size: buf.len() as u32,
            flags: 0,
        };
        // SAFETY: valid fd, NUL-terminated path and name; args points at `buf`, writable
        // for the size it gives, and is as big as the size passed.
        let n = unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dir.as_raw_fd(),
                rel.as_ptr(),
                flags,
                name.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        HAS_GETXATTRAT.store(false, Relaxed);
    }
    let p = proc_path(dir, path)?;
    // SAFETY: buf writable for its length (a null pointer with length 0 asks the size).
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            name.as_ptr(),
            if buf.is_empty() {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `lgetxattr`; `None` when the attribute is absent.
pub fn get_xattr(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &CStr,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match getxattr_once(dir, path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(err) => match err.raw_os_error() {
                Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
                Some(libc::ERANGE) => {
                    let need = getxattr_once(dir, path, name, &mut [])?;
                    buf.resize(need + 1, 0);
                }
                _ => return Err(err),
            },
        }
    }
}

/// A short xattr value of `path` beneath `dir` read into `buf` (no allocation): its
/// length, `None` when absent or unsupported; ERANGE when longer than `buf`.
pub fn get_xattr_into(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &CStr,
    buf: &mut [u8],
) -> std::io::Result<Option<usize>> {
    match getxattr_once(dir, path, name, buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::ENOTSUP)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `lsetxattr`.
pub fn set_xattr(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &CStr,
    value: &[u8],
    flags: i32,
) -> std::io::Result<()> {
    let p = proc_path(dir, path)?;
    // SAFETY: valid strings and buffer.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// `lremovexattr`.
pub fn remove_xattr(dir: BorrowedFd<'_>, path: &Path, name: &CStr) -> std::io::Result<()> {
    let p = proc_path(dir, path)?;
    // SAFETY: valid strings.
    check(unsafe { libc::lremovexattr(p.as_ptr(), name.as_ptr()) }).map(drop)
}

/// `llistxattr`: the raw NUL-separated name list.
pub fn list_xattr(dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<Vec<u8>> {
    let p = proc_path(dir, path)?;
    loop {
        // SAFETY: size query.
        let need = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
        if need < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOTSUP) {
                return Ok(Vec::new());
            }
            return Err(err);
        }
        let mut buf = vec![0u8; need as usize];
        // SAFETY: buf writable for its length.
        let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return Err(std::io::Error::last_os_error());
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The name (never `.` or `..`).
    pub name: Vec<u8>,
    /// `DT_*` type as getdents reported it.
    pub d_type: u8,
}

/// Reads every entry of the directory `path` beneath `dir` (except `.` and `..`).
pub fn read_dir_at(dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<Vec<DirEntry>> {
    let fd = open_beneath(dir, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    read_dir_fd(fd)
}

/// Reads every entry of an open directory fd (consumed).
pub fn read_dir_fd(fd: OwnedFd) -> std::io::Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    for_each_dir_entry(fd, |name, _ino, d_type| {
        out.push(DirEntry {
            name: name.to_vec(),
            d_type,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(name, d_ino, d_type)` for every entry of an open directory fd (consumed)
/// except `.` and `..`, with no allocation per entry; stops at the first error.
pub fn for_each_dir_entry(
    fd: OwnedFd,
    mut f: impl FnMut(&[u8], u64, u8) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: raw is a directory fd we own; fdopendir takes ownership.
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        let err = std::io::Error::last_os_error();
        // SAFETY: fdopendir failed, we still own raw.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    struct Dir(*mut libc::DIR);
    impl Drop for Dir {
        fn drop(&mut self) {
            // SAFETY: closes the DIR* (and its fd) exactly once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let dir = Dir(dirp);
    loop {
        // SAFETY: errno reset before readdir to tell end from error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: dir.0 is a valid DIR*.
        let ent = unsafe { libc::readdir64(dir.0) };
        if ent.is_null() {
            let errno = std::io::Error::last_os_error();
            if errno.raw_os_error().unwrap_or(0) != 0 {
                return Err(errno);
            }
            return Ok(());
        }
        // SAFETY: ent is valid until the next readdir call.
        let ent = unsafe { &*ent };
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) }.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        f(name, ent.d_ino, ent.d_type)?;
    }
}

/// Copies `len` bytes of `src` into the empty `dst`. A file that `may_have_holes` (fewer
/// blocks than its size needs) is copied extent by extent (`SEEK_DATA`/`SEEK_HOLE`), so
/// its holes stay holes; others in one go, with no seeks. `dst` is sized to `len` at
/// the end only when a trailing hole was not written.
pub fn copy_data(src: RawFd, dst: RawFd, len: u64, may_have_holes: bool) -> std::io::Result<()> {
    let end = len as i64;
    if !may_have_holes {
        return copy_range(src, dst, 0, end);
    }
    let mut pos: i64 = 0;
    let mut written_to: i64 = 0;
    while pos < end {
        let data = match io::lseek(src, pos, libc::SEEK_DATA) {
            Ok(d) => d,
            // Only a hole remains.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            // No SEEK_DATA support: copy everything.
            Err(_) => return copy_range(src, dst, pos, end - pos),
        };
        let hole = io::lseek(src, data, libc::SEEK_HOLE).map_or(end, |h| h.min(end));
        copy_range(src, dst, data, hole - data)?;
        written_to = hole;
        pos = hole;
    }
    if written_to < end {
        // Sized so a trailing hole is kept.
        io::ftruncate(dst, end as u64)?;
    }
    Ok(())
}

fn copy_range(src: RawFd, dst: RawFd, start: i64, mut len: i64) -> std::io::Result<()> {
    let mut off_in = start;
    let mut off_out = start;
    while len > 0 {
        // SAFETY: valid fds and offsets.
        let n =
            unsafe { libc::copy_file_range(src, &mut off_in, dst, &mut off_out, len as usize, 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EXDEV)
                | Some(libc::ENOSYS)
                | Some(libc::EOPNOTSUPP)
                | Some(libc::EINVAL) => {
                    return copy_range_rw(src, dst, off_in, len);
                }
                _ => return Err(err),
            }
        }
        if n == 0 {
            break;
        }
        len -= n as i64;
    }
    Ok(())
}

fn copy_range_rw(src: RawFd, dst: RawFd, mut off: i64, mut len: i64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while len > 0 {
        let want = (len as usize).min(buf.len());
        // SAFETY: buf writable for want bytes.
        let n = unsafe { libc::pread(src, buf.as_mut_ptr().cast(), want, off) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        let mut done = 0usize;
        while done < n as usize {
            // SAFETY: buf readable for n bytes.
            let w = unsafe {
                libc::pwrite(
                    dst,
                    buf[done..].as_ptr().cast(),
                    n as usize - done,
                    off + done as i64,
                )
            };
            if w < 0 {
                return Err(std::io::Error::last_os_error());
            }
            done += w as usize;
        }
        off += n as i64;
        len -= n as i64;
    }
    Ok(())
}

/// Gives the file open at `fd` (an O_TMPFILE file) the name `path` beneath `dir`,
/// through its `/proc/self/fd` link, which needs no capability.
pub fn link_fd_at(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, path: &Path) -> std::io::Result<()> {
    let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let c = cpath(path)?;
    // SAFETY: valid C strings and fds.
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// Raises the soft limit on open files to the hard limit (a union of many layers
/// holds one fd per layer, plus the files it keeps open) and returns the new soft
/// limit; the old one when it cannot be raised.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is writable memory of the right type.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: raised is a valid rlimit; raising up to the hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

thread_local! {
    /// The umask this thread last set on its own fs struct; `None` before the first
    /// create it serves (then the thread unshares its fs struct), `Some(u32::MAX)` if
    /// it could not.
    static THREAD_UMASK: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Prepares this thread to create an object for a caller whose umask is `mask`, and
/// returns the mode to pass to the create. The thread gets a umask of its own (an
/// unshared fs struct, once) set to the caller's, so the upper file system applies
/// it exactly as for the caller: ignored where the parent has a default ACL, as
/// kernel overlayfs gives. Where a thread cannot own its umask the mask is applied
/// to `mode` here instead (no default-ACL exception then).
pub fn caller_umask(mask: u32, mode: u32) -> u32 {
    let mask = mask & 0o777;
    THREAD_UMASK.with(|cur| {
        let owned = match cur.get() {
            Some(u32::MAX) => false,
            Some(m) if m == mask => return mode,
            Some(_) => true,
            // SAFETY: unshare(CLONE_FS) only detaches this thread's cwd/root/umask.
            None => (unsafe { libc::unshare(libc::CLONE_FS) }) == 0,
        };
        if !owned {
            cur.set(Some(u32::MAX));
            return mode & !mask;
        }
        // SAFETY: umask cannot fail; it changes only this thread's (unshared) fs struct.
        unsafe { libc::umask(mask as libc::mode_t) };
        cur.set(Some(mask));
        mode
    })
}

/// `fchown` of an open file (a copy-up's new file: no path walk).
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> std::io::Result<()> {
    // SAFETY: plain fchown on a valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// `fchmod` of an open file.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> std::io::Result<()> {
    // SAFETY: plain fchmod on a valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// `futimens` of an open file.
pub fn futimens(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> std::io::Result<()> {
    // SAFETY: valid fd and two timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

/// `fsetxattr` of an open file.
pub fn fd_set_xattr(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    flags: i32,
) -> std::io::Result<()> {
    // SAFETY: valid fd, name and buffer.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// `fgetxattr` of an open file, growing the buffer as the value needs; `None` when
/// absent or unsupported.
pub fn fd_get_xattr(fd: BorrowedFd<'_>, name: &CStr) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf writable for its length.
        let n = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) => {
                // SAFETY: a size query.
                let need = unsafe {
                    libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0)
                };
                if need < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                buf.resize(need as usize + 1, 0);
            }
            _ => return Err(err),
        }
    }
}

/// `flistxattr` of an open file: the raw NUL-separated name list (empty when the
/// file system has no xattrs).
pub fn fd_list_xattr(fd: BorrowedFd<'_>) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 512];
    loop {
        // SAFETY: buf writable for its length.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Some(libc::ERANGE) => {
                // SAFETY: a size query.
                let need = unsafe { libc::flistxattr(fd.as_raw_fd(), std::ptr::null_mut(), 0) };
                if need < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                buf.resize(need as usize + 1, 0);
            }
            _ => return Err(err),
        }
    }
}
