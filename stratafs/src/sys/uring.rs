//! FUSE over io_uring's ring and the buffers its commands hand the kernel, with one
//! owner: the kernel writes a request into an entry's buffers between a command's
//! submission and its completion, so the buffers must outlive every command on them
//! and nothing may touch them meanwhile. [`CmdRing`] keeps both promises: it frees no
//! buffer the kernel may still write (an entry in flight when it drops is leaked), and
//! lends an entry's buffers out only while no command on it is in flight.
//!
//! A ring is set up ([`Ring`], before INIT agrees to use it), then given its entries on
//! the thread that serves it ([`Ring::with_entries`]).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

/// An io_uring of 128-byte SQEs (for 80-byte commands), set up but not yet serving.
pub struct Ring {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
}

impl Ring {
    /// A ring of `sq_entries` submissions and `cq_entries` completions.
    pub fn new(sq_entries: u32, cq_entries: u32) -> io::Result<Ring> {
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_cqsize(cq_entries)
            .build(sq_entries)?;
        Ok(Ring { ring })
    }

    /// The ring with `count` entries, each a zeroed header of `header_size` bytes and
    /// a payload of `payload_size` (whose pages are only faulted in as requests use
    /// them).
    pub fn with_entries(self, count: usize, header_size: usize, payload_size: usize) -> CmdRing {
        CmdRing {
            ring: self.ring,
            entries: (0..count)
                .map(|_| Entry {
                    buffers: Buffers::new(header_size, payload_size),
                    in_flight: false,
                })
                .collect(),
        }
    }
}

/// An entry's buffers as the kernel is handed them: the header and the payload, and
/// the two iovecs pointing at them (which the kernel reads at registration). Boxed, so
/// they stay put however the entry list moves.
struct Buffers {
    header: Box<[u8]>,
    payload: Box<[u8]>,
    iov: Box<[libc::iovec; 2]>,
}

impl Buffers {
    fn new(header_size: usize, payload_size: usize) -> Buffers {
        let mut header = vec![0u8; header_size].into_boxed_slice();
        let mut payload = vec![0u8; payload_size].into_boxed_slice();
        let iov = Box::new([
            libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: header.len(),
            },
            libc::iovec {
                iov_base: payload.as_mut_ptr().cast(),
                iov_len: payload.len(),
            },
        ]);
        Buffers {
            header,
            payload,
            iov,
        }
    }
}

struct Entry {
    buffers: Buffers,
    /// A command on this entry was pushed and its completion not reaped yet: the
    /// kernel may read or write the buffers.
    in_flight: bool,
}

/// A ring serving commands on its entries: pushes them, waits, reaps completions, and
/// lends out the buffers of entries the kernel is done with.
pub struct CmdRing {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    entries: Vec<Entry>,
}

impl CmdRing {
    /// How many entries the ring has.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// Pushes the 80-byte command `op` / `cmd` on `fd` for entry `idx`, handing the
    /// kernel that entry's buffers (its header and payload as two iovecs): the one
    /// that registers an entry.
    pub fn push_with_buffers(
        &mut self,
        fd: BorrowedFd<'_>,
        op: u32,
        cmd: [u8; 80],
        idx: usize,
    ) -> io::Result<()> {
        let entry = self.idle_entry(idx)?;
        let iov = entry.buffers.iov.as_ptr() as u64;
        let mut sqe = command(fd, op, cmd, idx, Some(iov));
        // The iovec count goes in the SQE's `len` (offset 24), which io-uring 0.7's
        // UringCmd80 has no setter for.
        let len = (&mut sqe as *mut squeue::Entry128).cast::<u8>();
        // SAFETY: an Entry128 is a 128-byte `#[repr(C)]` io_uring_sqe (plus its 64-byte
        // command tail); bytes 24..28 are its u32 `len`, written unaligned, in bounds.
        unsafe { len.add(24).cast::<u32>().write_unaligned(2) };
        self.push(&sqe, idx)
    }

    /// Pushes the 80-byte command `op` / `cmd` on `fd` for entry `idx`, whose buffers
    /// the kernel was handed at registration (a commit, which also fetches the next
    /// request into them).
    pub fn push_on_registered(
        &mut self,
        fd: BorrowedFd<'_>,
        op: u32,
        cmd: [u8; 80],
        idx: usize,
    ) -> io::Result<()> {
        self.idle_entry(idx)?;
        let sqe = command(fd, op, cmd, idx, None);
        self.push(&sqe, idx)
    }

    /// Submits what was pushed and waits for at least `want` completions.
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        self.ring.submit_and_wait(want)
    }

    /// Moves the completions that arrived into `out`, as (entry, result: a negative
    /// errno or what the command returned); each completed entry is the caller's
    /// again (see [`CmdRing::buffers`]).
    pub fn reap(&mut self, out: &mut Vec<(usize, i32)>) {
        for c in self.ring.completion() {
            let idx = c.user_data() as usize;
            let Some(entry) = self.entries.get_mut(idx) else {
                continue;
            };
            if !cqueue::more(c.flags()) {
                entry.in_flight = false;
            }
            out.push((idx, c.result()));
        }
    }

    /// The header and payload of entry `idx`; `None` while a command on it is in
    /// flight (the kernel may be writing them) or if there is no such entry.
    pub fn buffers(&mut self, idx: usize) -> Option<(&mut [u8], &mut [u8])> {
        let entry = self.entries.get_mut(idx)?;
        if entry.in_flight {
            return None;
        }
        Some((&mut entry.buffers.header, &mut entry.buffers.payload))
    }

    /// Entry `idx`, which must have no command in flight (one command per entry at
    /// a time: each completion gives the entry back).
    fn idle_entry(&self, idx: usize) -> io::Result<&Entry> {
        match self.entries.get(idx) {
            Some(e) if !e.in_flight => Ok(e),
            Some(_) => Err(io::Error::other(format!(
                "io_uring entry {idx} already has a command in flight"
            ))),
            None => Err(io::Error::other(format!("no io_uring entry {idx}"))),
        }
    }

    fn push(&mut self, sqe: &squeue::Entry128, idx: usize) -> io::Result<()> {
        // SAFETY: every pointer the SQE carries (an entry's iovecs, and through them its
        // header and payload) points into that entry's boxed buffers, which this ring
        // owns and neither moves nor frees nor lends out while the command is in flight:
        // the entry is marked in flight below until its completion is reaped, and `Drop`
        // leaks the buffers of entries still in flight.
        unsafe { self.ring.submission().push(sqe) }.map_err(io::Error::other)?;
        if let Some(e) = self.entries.get_mut(idx) {
            e.in_flight = true;
        }
        Ok(())
    }
}

impl Drop for CmdRing {
    fn drop(&mut self) {
        for e in self.entries.drain(..) {
            if e.in_flight {
                // The kernel may still write them (its cancellation of the command is
                // asynchronous to closing the ring): never freed.
                std::mem::forget(e.buffers);
            }
        }
    }
}

/// A uring command on `fd` with entry `idx` as its user data, `addr` its address.
fn command(
    fd: BorrowedFd<'_>,
    op: u32,
    cmd: [u8; 80],
    idx: usize,
    addr: Option<u64>,
) -> squeue::Entry128 {
    opcode::UringCmd80::new(types::Fd(fd.as_raw_fd()), op)
        .cmd(cmd)
        .addr(addr)
        .build()
        .user_data(idx as u64)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn an_entrys_buffers_are_lent_only_between_completion_and_the_next_command() {
        let ring = match Ring::new(4, 8) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped: no io_uring here ({e})");
                return;
            }
        };
        let mut ring = ring.with_entries(2, 16, 64);
        assert_eq!(ring.entries(), 2);
        let Some((header, payload)) = ring.buffers(0) else {
            panic!("an idle entry lends its buffers");
        };
        assert_eq!((header.len(), payload.len()), (16, 64));
        // /dev/null completes any uring command at once (with 0, or an error on
        // kernels without its `uring_cmd`).
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        ring.push_with_buffers(null.as_fd(), 1, [0u8; 80], 0)
            .expect("push");
        assert!(ring.buffers(0).is_none(), "in flight: not lent out");
        assert!(ring.buffers(1).is_some(), "the other entry is idle");
        assert!(
            ring.push_on_registered(null.as_fd(), 2, [0u8; 80], 0)
                .is_err(),
            "one command per entry at a time"
        );
        assert!(
            ring.push_on_registered(null.as_fd(), 2, [0u8; 80], 9)
                .is_err()
        );
        ring.submit_and_wait(1).expect("submit");
        let mut done = Vec::new();
        ring.reap(&mut done);
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![0]);
        assert!(ring.buffers(0).is_some(), "completed: the caller's again");
    }
}
