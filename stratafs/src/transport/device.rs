//! Serves `/dev/fuse` itself once fuser has mounted and answered INIT: one request per
//! `read`, decoded and answered by the same code as a ring entry's (`dispatch`,
//! `Answer`), its reply written with one `writev`. One decoder for both transports,
//! and replies fuser cannot write (a READDIRPLUS entry listed without attributes yet
//! with its true d_ino) on both.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use fuser::INodeNo;

use super::abi::{self, BATCH_FORGET, FORGET, INTERRUPT, InHeader, NOTIFY_REPLY, OutHeader, read};
use super::answer::Outcome;
use super::dispatch::{Access, dispatch};
use super::tally::{Tallies, Tally};
use crate::fuse::OverlayFs;
use crate::sys;

/// Bytes of an opcode's own structure (`in_args[0]`) ahead of its names and data, as
/// the kernel sends it on `/dev/fuse` for what INIT settled (no FUSE_SETXATTR_EXT, so
/// SETXATTR's is the two-field one). Opcodes with none, or answered ENOSYS, take 0.
fn op_in_size(opcode: u32) -> usize {
    use abi::*;
    match opcode {
        GETATTR => size_of::<GetattrIn>(),
        SETATTR => size_of::<SetattrIn>(),
        MKNOD => size_of::<MknodIn>(),
        MKDIR => size_of::<MkdirIn>(),
        RENAME => size_of::<RenameIn>(),
        RENAME2 => size_of::<Rename2In>(),
        LINK => size_of::<LinkIn>(),
        OPEN | OPENDIR => size_of::<OpenIn>(),
        READ | READDIR | READDIRPLUS => size_of::<ReadIn>(),
        WRITE => size_of::<WriteIn>(),
        RELEASE | RELEASEDIR => size_of::<ReleaseIn>(),
        FSYNC | FSYNCDIR => size_of::<FsyncIn>(),
        SETXATTR => size_of::<SetxattrIn>(),
        GETXATTR | LISTXATTR => size_of::<GetxattrIn>(),
        CREATE | TMPFILE => size_of::<CreateIn>(),
        FALLOCATE => size_of::<FallocateIn>(),
        LSEEK => size_of::<LseekIn>(),
        FORGET => size_of::<ForgetIn>(),
        BATCH_FORGET => size_of::<BatchForgetIn>(),
        // `fuse_flush_in` (fh, two u32, lock_owner), `fuse_access_in` (mask, padding),
        // `fuse_interrupt_in` (unique): read by no handler here.
        FLUSH => 24,
        ACCESS | INTERRUPT => 8,
        _ => 0,
    }
}

/// Serves the session on `device` with `threads` threads (each on a clone of the
/// device when more than one, as fuser does) until the mount goes away, counting
/// what they serve in `tallies`.
pub fn serve(
    fs: Arc<OverlayFs>,
    device: OwnedFd,
    access: Access,
    threads: usize,
    payload_size: usize,
    tallies: &Tallies,
) -> io::Result<()> {
    let mut fds = Vec::with_capacity(threads.max(1));
    for _ in 1..threads.max(1) {
        fds.push(clone_device(&device)?);
    }
    fds.push(device);
    let workers: Vec<_> = fds
        .into_iter()
        .map(|fd| {
            let fs = fs.clone();
            let tally = tallies.register();
            std::thread::Builder::new()
                .name("stratafs-dev".into())
                .spawn(move || serve_one(&fs, &fd, access, payload_size, &tally))
        })
        .collect::<io::Result<_>>()?;
    let mut result = Ok(());
    for w in workers {
        let r = w
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a /dev/fuse thread panicked")));
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// A new `/dev/fuse` fd reading the same session's requests.
fn clone_device(device: &OwnedFd) -> io::Result<OwnedFd> {
    sys::fuse_dev::clone_device(device)
}

/// One thread's loop: read a request, answer it, until the device says the mount is
/// gone (ENODEV) or the session is destroyed.
fn serve_one(
    fs: &OverlayFs,
    fd: &OwnedFd,
    access: Access,
    payload_size: usize,
    tally: &Tally,
) -> io::Result<()> {
    // A request: its headers, then at most a write's data (the kernel's minimum is
    // 8 KiB); a reply: at most a read's data or a listing chunk.
    let mut input = vec![0u8; payload_size + 4096].into_boxed_slice();
    let mut out = vec![0u8; payload_size].into_boxed_slice();
    let mut op_in = [0u8; abi::HEADER_OP_IN];
    loop {
        let n = match sys::fuse_dev::read_request(fd, &mut input) {
            Ok(n) => n,
            Err(e) => match e.raw_os_error() {
                // Interrupted, or the request was withdrawn before we read it.
                Some(libc::EINTR | libc::EAGAIN | libc::ENOENT) => continue,
                Some(libc::ENODEV) => return Ok(()),
                _ => return Err(e),
            },
        };
        let started = Instant::now();
        match handle(fs, access, &input[..n], &mut op_in, &mut out) {
            Handled::Ignored => {}
            Handled::Forgot(opcode) => tally.add(opcode, started.elapsed()),
            Handled::Answered(h, done) => {
                // Counted before the reply goes: the caller it wakes may read the table
                // at once (as the io_uring queues count before they commit).
                tally.add(h.opcode, started.elapsed());
                reply(fd.as_raw_fd(), h.unique, &done, &out);
                if h.opcode == abi::DESTROY {
                    return Ok(());
                }
            }
        }
    }
}

/// What became of one request.
enum Handled {
    /// Too short to be a request, or one that takes no reply and changes nothing.
    Ignored,
    /// FORGET or BATCH_FORGET (no reply).
    Forgot(u32),
    /// Served: the reply (its payload in the output buffer) is due.
    Answered(InHeader, Outcome),
}

/// Decodes `request` as the device gives it (header, the opcode's arguments, names and
/// data, extensions) and serves it, the reply's payload going to `out`.
fn handle(
    fs: &OverlayFs,
    access: Access,
    request: &[u8],
    op_in: &mut [u8; abi::HEADER_OP_IN],
    out: &mut [u8],
) -> Handled {
    let Some(h) = read::<InHeader>(request) else {
        return Handled::Ignored;
    };
    let end = request
        .len()
        .saturating_sub(usize::from(h.total_extlen) * 8)
        .max(size_of::<InHeader>());
    let body = &request[size_of::<InHeader>()..end];
    match h.opcode {
        FORGET => {
            if let Some(f) = read::<abi::ForgetIn>(body) {
                fs.forget(INodeNo(h.nodeid), f.nlookup);
            }
            return Handled::Forgot(h.opcode);
        }
        BATCH_FORGET => {
            let count = read::<abi::BatchForgetIn>(body).map_or(0, |b| b.count as usize);
            let each = size_of::<abi::ForgetOne>();
            let rest = body
                .get(size_of::<abi::BatchForgetIn>()..)
                .unwrap_or_default();
            for one in rest.chunks_exact(each).take(count) {
                if let Some(f) = read::<abi::ForgetOne>(one) {
                    fs.forget(INodeNo(f.nodeid), f.nlookup);
                }
            }
            return Handled::Forgot(h.opcode);
        }
        // Nothing here blocks long enough to be worth interrupting; no reply.
        INTERRUPT | NOTIFY_REPLY => return Handled::Ignored,
        _ => {}
    }
    let size = op_in_size(h.opcode).min(body.len());
    op_in.fill(0);
    op_in[..size].copy_from_slice(&body[..size]);
    let mut done = Outcome::default();
    dispatch(fs, access, &h, op_in, &body[size..], out, &mut done);
    Handled::Answered(h, done)
}

/// Serves one request given as the bytes `/dev/fuse` would hand over, the way the
/// device loop does, and returns the reply's errno and payload length (`None` for a
/// request that takes no reply). For the fuzz target of the decoder: any bytes are a
/// request, and none may panic the daemon.
pub fn serve_bytes(fs: &OverlayFs, request: &[u8], out: &mut [u8]) -> Option<(i32, usize)> {
    let mut op_in = [0u8; abi::HEADER_OP_IN];
    match handle(fs, Access { owner_only: None }, request, &mut op_in, out) {
        Handled::Answered(_, done) => Some((done.error, done.len)),
        Handled::Ignored | Handled::Forgot(_) => None,
    }
}

/// Writes the reply to request `unique`: the header, then the payload on success.
fn reply(fd: RawFd, unique: u64, done: &Outcome, out: &[u8]) {
    let len = if done.error == 0 { done.len } else { 0 };
    let head = OutHeader {
        len: (size_of::<OutHeader>() + len) as u32,
        error: done.error,
        unique,
    };
    let head = abi::bytes(&head);
    if let Err(e) = sys::fuse_dev::write_reply(fd, head, &out[..len.min(out.len())]) {
        // ENOENT: the request was interrupted and is gone; nothing to do either way.
        // Anything else is a reply the kernel refused: its caller got an error.
        if e.raw_os_error() == Some(libc::ENOENT) {
            log::debug!("reply to request {unique}: {e}");
        } else {
            log::warn!("reply to request {unique} refused by the kernel: {e}");
        }
    }
}
