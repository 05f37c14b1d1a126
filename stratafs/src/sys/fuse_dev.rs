//! The `/dev/fuse` device: cloned per serving thread, requests read and replies
//! written whole, passthrough backing files released.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// `FUSE_DEV_IOC_CLONE`: `_IOR(229, 0, uint32_t)`.
const DEV_IOC_CLONE: libc::c_ulong = 0x8004_e500;
/// `FUSE_DEV_IOC_BACKING_CLOSE`: `_IOW(229, 2, uint32_t)`.
const BACKING_CLOSE: libc::c_ulong = (1 << 30) | (4 << 16) | (229 << 8) | 2;

/// A new `/dev/fuse` fd reading the same session's requests as `session`.
pub fn clone_device(session: impl AsFd) -> io::Result<OwnedFd> {
    let fd = super::mount::open_fuse_device()?;
    let mut source = session.as_fd().as_raw_fd() as u32;
    // SAFETY: the ioctl reads one u32 (the session's fd) from the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), DEV_IOC_CLONE, &mut source) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Unregisters passthrough backing file `id` from `device`.
pub fn backing_close(device: impl AsFd, id: u32) -> io::Result<()> {
    // SAFETY: the ioctl reads the u32 the pointer refers to for the call's duration.
    if unsafe { libc::ioctl(device.as_fd().as_raw_fd(), BACKING_CLOSE, &id) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads one request into `buf`; its length.
pub fn read_request(device: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads into `buf`'s own memory, at most its length.
    let n = unsafe {
        libc::read(
            device.as_fd().as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Writes a reply of `head` then `body` in one writev(2).
pub fn write_reply(device: RawFd, head: &[u8], body: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs point into live slices of the given lengths, only read.
    let r = unsafe { libc::writev(device, iov.as_ptr(), 2) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `FUSE_NOTIFY_INVAL_INODE`: the kernel drops what it caches of node `ino` — its
/// attributes and its pages, which for a directory is its cached listing. An inode
/// the kernel does not hold answers ENOENT, which callers may ignore.
pub fn notify_inval_inode(device: impl AsFd, ino: u64) -> io::Result<()> {
    const FUSE_NOTIFY_INVAL_INODE: i32 = 2;
    // struct fuse_out_header { len, error (the notification code), unique: 0 }.
    let mut head = [0u8; 16];
    head[..4].copy_from_slice(&40u32.to_ne_bytes());
    head[4..8].copy_from_slice(&FUSE_NOTIFY_INVAL_INODE.to_ne_bytes());
    // struct fuse_notify_inval_inode_out { ino, off: 0, len: 0 (to the end) }.
    let mut body = [0u8; 24];
    body[..8].copy_from_slice(&ino.to_ne_bytes());
    write_reply(device.as_fd().as_raw_fd(), &head, &body).map(|_| ())
}
