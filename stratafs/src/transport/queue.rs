//! One FUSE queue per possible CPU, served by threads pinned to that CPU: the kernel
//! hands a request to the queue of the CPU its caller runs on, so request and reply
//! cross no CPU boundary and wake no thread elsewhere.
//!
//! Each thread has its own io_uring and registers one entry (a 288-byte header and a
//! payload buffer as big as the largest request or reply) on its CPU's queue with
//! REGISTER; a request arrives as the completion of the entry's command, and the reply
//! goes back with COMMIT_AND_FETCH, which also arms the entry for the next request.
//! The kernel gives a request to an entry that is armed, so with one entry per thread
//! a request never waits behind another one blocked on the disk while a thread of its
//! queue is idle.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use super::abi::{self, CmdReq, EntInOut, InHeader, OutHeader, read};
use super::answer::Outcome;
use super::dispatch::{Access, dispatch};
use super::tally::Tallies;
use crate::fuse::OverlayFs;
use crate::sys::uring::Ring;

/// Threads serving each CPU's queue: requests one queue serves at once (a CPU's
/// callers, and the kernel's readahead and writeback on their behalf).
pub const THREADS_PER_QUEUE: usize = 4;

/// Entries each thread registers (see the module's doc for why one).
pub const ENTRIES_PER_THREAD: usize = 1;

/// One serving thread's io_uring on queue `qid`, set up before INIT agrees to the
/// ring (so that a system where io_uring is disabled never ends up with a ring it
/// cannot serve).
pub struct Queue {
    qid: u16,
    ring: Ring,
}

/// Sets up `per_queue` io_urings for each of `queues` queues.
pub fn prepare(queues: usize, per_queue: usize, depth: usize) -> io::Result<Vec<Queue>> {
    let mut out = Vec::with_capacity(queues * per_queue);
    for q in 0..queues {
        for _ in 0..per_queue {
            let ring = Ring::new(2 * depth as u32, 2 * (depth as u32 + 1))?;
            out.push(Queue {
                qid: q as u16,
                ring,
            });
        }
    }
    Ok(out)
}

/// What every queue thread shares.
pub struct Shared {
    pub fs: Arc<OverlayFs>,
    pub device: Arc<OwnedFd>,
    pub access: Access,
    pub payload_size: usize,
    pub depth: usize,
    /// Where each thread counts what it serves.
    pub tallies: Arc<Tallies>,
}

/// The 80-byte FUSE io_uring command naming queue `qid` and, for a commit, the
/// request answered.
fn command(qid: u16, commit_id: u64) -> [u8; 80] {
    let req = CmdReq {
        qid,
        commit_id,
        ..Default::default()
    };
    let mut cmd = [0u8; 80];
    cmd[..std::mem::size_of::<CmdReq>()].copy_from_slice(abi::bytes(&req));
    cmd
}

/// Serves queue `q` until the mount goes. Runs on its own thread.
pub fn serve(q: Queue, shared: &Shared) -> io::Result<()> {
    pin_to_cpu(usize::from(q.qid));
    let tally = shared.tallies.register();
    let dev = shared.device.as_fd();
    // The ring owns the entries' buffers and keeps them alive while the kernel may
    // write them (`sys::uring`).
    let mut ring = q
        .ring
        .with_entries(shared.depth, abi::HEADER_SIZE, shared.payload_size);
    for i in 0..ring.entries() {
        ring.push_with_buffers(dev, abi::URING_CMD_REGISTER, command(q.qid, 0), i)?;
    }
    // Names and small arguments are copied here before the reply overwrites them.
    let mut scratch: Vec<u8> = Vec::with_capacity(2 * 4096 + 64 * 1024);
    let mut live = ring.entries();
    let mut done_cqes: Vec<(usize, i32)> = Vec::with_capacity(2 * shared.depth);
    while live > 0 {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        done_cqes.clear();
        ring.reap(&mut done_cqes);
        for &(idx, res) in &done_cqes {
            if res < 0 {
                match -res {
                    // The mount went away (unmounted, or aborted): this entry is done.
                    libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED | libc::ENODEV => {
                        live -= 1;
                    }
                    // Not taken: arm the entry again.
                    libc::EAGAIN | libc::EINTR => ring.push_with_buffers(
                        dev,
                        abi::URING_CMD_REGISTER,
                        command(q.qid, 0),
                        idx,
                    )?,
                    err => {
                        return Err(io::Error::other(format!(
                            "queue {}: {}",
                            q.qid,
                            io::Error::from_raw_os_error(err)
                        )));
                    }
                }
                continue;
            }
            let Some((header, payload)) = ring.buffers(idx) else {
                continue;
            };
            let started = Instant::now();
            let (commit_id, opcode) = answer(header, payload, shared, &mut scratch);
            tally.add(opcode, started.elapsed());
            ring.push_on_registered(
                dev,
                abi::URING_CMD_COMMIT_AND_FETCH,
                command(q.qid, commit_id),
                idx,
            )?;
        }
    }
    Ok(())
}

/// Serves the request the kernel put in an entry's `header` and `payload`; its reply
/// goes in them. Returns the id the commit names and the request's opcode.
fn answer(
    header: &mut [u8],
    payload: &mut [u8],
    shared: &Shared,
    scratch: &mut Vec<u8>,
) -> (u64, u32) {
    let (head, rest) = header.split_at_mut(abi::HEADER_IN_OUT);
    let (op_in, ent) = rest.split_at_mut(abi::HEADER_OP_IN);
    let h: InHeader = read(head).unwrap_or_default();
    let ent_io: EntInOut = read(ent).unwrap_or_default();
    let used = (ent_io.payload_sz as usize).min(payload.len());
    let mut done = Outcome::default();
    match h.opcode {
        // Big inputs with (at most) an 8-byte reply: read in place, reply aside.
        abi::WRITE | abi::SETXATTR => {
            let mut small = [0u8; 16];
            let (input, out) = (&payload[..used], &mut small[..]);
            dispatch(&shared.fs, shared.access, &h, op_in, input, out, &mut done);
            let n = done.len.min(small.len());
            payload[..n].copy_from_slice(&small[..n]);
        }
        _ => {
            scratch.clear();
            scratch.extend_from_slice(&payload[..used]);
            let out = &mut payload[..];
            dispatch(
                &shared.fs,
                shared.access,
                &h,
                op_in,
                scratch,
                out,
                &mut done,
            );
        }
    }
    let len = if done.error == 0 { done.len } else { 0 };
    let oh = OutHeader {
        len: (std::mem::size_of::<OutHeader>() + len) as u32,
        error: done.error,
        unique: h.unique,
    };
    head[..std::mem::size_of::<OutHeader>()].copy_from_slice(abi::bytes(&oh));
    let ent_out = EntInOut {
        payload_sz: len as u32,
        ..ent_io
    };
    ent.copy_from_slice(abi::bytes(&ent_out));
    (ent_io.commit_id, h.opcode)
}

/// Runs the calling thread on `cpu` only (an offline CPU is left as is).
fn pin_to_cpu(cpu: usize) {
    crate::sys::process::pin_to_cpu(cpu);
}

/// How many CPUs the kernel may ever run (`num_possible_cpus()`): the queues the
/// kernel expects, one per possible CPU, before it uses any.
pub fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list_max(s.trim()))
        .map(|max| max + 1)
        .unwrap_or_else(crate::sys::process::cpus_configured)
}

/// The highest CPU in a list such as `0-3,8-11`.
fn parse_cpu_list_max(s: &str) -> Option<usize> {
    s.split(',')
        .filter_map(|r| r.rsplit('-').next()?.trim().parse::<usize>().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list_max("0-1"), Some(1));
        assert_eq!(parse_cpu_list_max("0"), Some(0));
        assert_eq!(parse_cpu_list_max("0-3,8-11"), Some(11));
        assert_eq!(parse_cpu_list_max(""), None);
        assert!(possible_cpus() >= 1);
    }
}
