//! Carries requests from the kernel to the handlers (`crate::fuse`) and their replies
//! back, decoded (`dispatch`) and written (`answer`) by the same code on both ways in:
//!
//! * `/dev/fuse` (`device`): one request per `read`, its reply in one `writev`, after
//!   fuser has mounted and answered INIT;
//! * FUSE over io_uring (`queue`; kernel 6.14+, `enable_uring` on the fuse module):
//!   per-CPU queues, a round trip of ~8 us instead of ~20-25 us on this project's
//!   test VM, since the caller's CPU serves its own request. INIT, FORGET and
//!   INTERRUPT stay on `/dev/fuse`, and so does everything until every queue is
//!   registered.

mod abi;
mod answer;
mod device;
mod dispatch;
mod queue;
mod tally;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

pub use device::{serve as serve_device, serve_bytes};
pub use dispatch::Access;
pub use tally::{Tallies, Totals};

use crate::fuse::OverlayFs;

/// The queues, set up and waiting for the kernel to agree to them at INIT.
pub struct Prepared {
    queues: Vec<queue::Queue>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prepared({} queues)", self.queues.len())
    }
}

/// Where the fuse module says whether it offers FUSE over io_uring at INIT (`Y`/`N`,
/// root may write it); absent on kernels without it.
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// True when the kernel will offer FUSE over io_uring at INIT: the fuse module's
/// `enable_uring` reads `Y`. The kernel reads it when it sends INIT, right after the
/// mount, so a change between this check and the mount only costs that mount its
/// queues (or, the other way, rings it is then not offered and closes).
fn kernel_offers_uring() -> bool {
    std::fs::read(ENABLE_URING).is_ok_and(|v| v.first() == Some(&b'Y'))
}

/// Sets up the io_urings of every possible CPU's queue. `Ok(None)` when the kernel will
/// not offer FUSE over io_uring: no rings or buffers are set up only to be closed after
/// INIT (~0.4 ms of the ~1.8 ms from exec to mount on this project's test VM). An error
/// means this process cannot use io_uring (disabled by `kernel.io_uring_disabled`, a
/// seccomp filter...).
pub fn prepare() -> io::Result<Option<Prepared>> {
    if !kernel_offers_uring() {
        return Ok(None);
    }
    let queues = queue::prepare(
        queue::possible_cpus(),
        queue::THREADS_PER_QUEUE,
        queue::ENTRIES_PER_THREAD,
    )?;
    Ok(Some(Prepared { queues }))
}

/// Starts serving the queues on `device` once INIT agreed to them, counting what they
/// serve in `tallies`. `payload_size` is the largest request or reply the session
/// allows. A queue that fails leaves the kernel waiting on it: the error is logged and
/// the process exits, which ends the session (the mount's users get ENOTCONN rather than hang).
pub fn start(
    p: Prepared,
    fs: Arc<OverlayFs>,
    device: OwnedFd,
    access: Access,
    payload_size: usize,
    tallies: Arc<Tallies>,
) -> io::Result<()> {
    let shared = Arc::new(queue::Shared {
        fs,
        device: Arc::new(device),
        access,
        payload_size,
        depth: queue::ENTRIES_PER_THREAD,
        tallies,
    });
    for q in p.queues {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("stratafs-ring".into())
            .spawn(move || {
                if let Err(e) = queue::serve(q, &shared) {
                    log::error!("FUSE io_uring queue failed: {e}; ending the session");
                    std::process::exit(1);
                }
            })?;
    }
    Ok(())
}
