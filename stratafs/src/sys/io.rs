//! I/O on a real file the daemon holds open, by raw fd: the data path (READ, WRITE,
//! FSYNC, FALLOCATE, LSEEK) and the handles the kernel names by number. A bad fd is an
//! `EBADF` error, never undefined behaviour: each call only reads or writes the slice
//! it is given.

use std::io;
use std::os::fd::RawFd;

fn check(ret: libc::c_int) -> io::Result<()> {
    super::check(ret).map(drop)
}

/// Reads into `buf` from `offset` until it is full or the file ends (EINTR retried);
/// the number of bytes read.
pub fn pread_full(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is writable for its whole length.
        let n = unsafe {
            libc::pread(
                fd,
                rest.as_mut_ptr().cast(),
                rest.len(),
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// One pwrite(2) of `data` at `offset`; the number of bytes written.
pub fn pwrite(fd: RawFd, data: &[u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `data` is readable for its whole length.
    let n = unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), offset as libc::off_t) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// fsync(2), or fdatasync(2) when `data_only`.
pub fn fsync(fd: RawFd, data_only: bool) -> io::Result<()> {
    // SAFETY: no memory is passed.
    check(unsafe {
        if data_only {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    })
}

/// fallocate(2).
pub fn fallocate(fd: RawFd, mode: i32, offset: i64, len: i64) -> io::Result<()> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::fallocate(fd, mode, offset, len) })
}

/// lseek(2); the new offset.
pub fn lseek(fd: RawFd, offset: i64, whence: i32) -> io::Result<i64> {
    // SAFETY: no memory is passed.
    let r = unsafe { libc::lseek(fd, offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// ftruncate(2).
pub fn ftruncate(fd: RawFd, len: u64) -> io::Result<()> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::ftruncate(fd, len as libc::off_t) })
}

/// fchmod(2).
pub fn fchmod_raw(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::fchmod(fd, mode) })
}

/// Replaces the file behind handle `fd` with `with` (dup3, close-on-exec), atomically
/// for every I/O that names the handle.
pub fn replace_fd(with: RawFd, fd: RawFd) -> io::Result<()> {
    // SAFETY: no memory is passed; `fd` is a handle the daemon owns.
    check(unsafe { libc::dup3(with, fd, libc::O_CLOEXEC) })
}

/// Closes a handle given out to the kernel as a number (RELEASE).
pub fn close_handle(fd: RawFd) {
    // SAFETY: the kernel releases each handle once; nothing else owns the number.
    unsafe { libc::close(fd) };
}

/// fstatvfs(2).
pub fn fstatvfs(fd: RawFd) -> io::Result<libc::statvfs> {
    let mut sv = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `sv` is writable.
    check(unsafe { libc::fstatvfs(fd, sv.as_mut_ptr()) })?;
    // SAFETY: fstatvfs succeeded and filled it.
    Ok(unsafe { sv.assume_init() })
}

/// An all-zero `struct stat` (a negative entry's attributes, a bare listing entry).
pub fn zeroed_stat() -> super::Stat {
    // SAFETY: all-zero is a valid `struct stat`.
    unsafe { std::mem::zeroed() }
}

/// Starts reading `len` bytes of `fd` from `offset` into the page cache without
/// waiting for them (`readahead(2)`): the disk works while the caller goes on.
pub fn readahead(fd: RawFd, offset: u64, len: usize) -> io::Result<()> {
    // SAFETY: readahead reads no memory of ours; a bad fd is an error return.
    let r = unsafe { libc::readahead(fd, offset as libc::off64_t, len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
