//! Open directory listings. A listing is snapshotted when a directory is read from its
//! start and kept for the reads that continue it (offsets are indices into it). The
//! listing of a large directory whose lower layers were not read yet is filled by a
//! thread of its own while the kernel reads its first chunks: reading the lowers and
//! handing entries to the reader then overlap instead of running one after the other.

use std::io;
use std::sync::Arc;

use fuser::Errno;
use parking_lot::{Condvar, Mutex};

use crate::overlay::{ListEntry, Listing};

/// Entries the filling thread gathers before handing them over (one lock, one wake-up).
const BATCH: usize = 512;

/// One directory listing, complete or being filled.
#[derive(Debug)]
pub(crate) struct DirListing {
    filling: Mutex<Filling>,
    grown: Condvar,
}

#[derive(Debug)]
struct Filling {
    list: Listing,
    /// No more entries will come.
    done: bool,
    /// Why the listing stopped early, if it did.
    error: Option<i32>,
}

impl DirListing {
    /// A listing already complete.
    pub(crate) fn complete(list: Listing) -> Arc<DirListing> {
        Arc::new(DirListing {
            filling: Mutex::new(Filling {
                list,
                done: true,
                error: None,
            }),
            grown: Condvar::new(),
        })
    }

    /// A listing filled by `fill` on a thread of its own; `fill` gets a function that
    /// adds one entry and returns the errno that stopped the listing, if any. Fills it
    /// here, before returning, when no thread can be started.
    pub(crate) fn filled_in_background<F>(fill: F) -> Arc<DirListing>
    where
        F: FnOnce(&mut dyn FnMut(&[u8], ListEntry) -> io::Result<()>) -> Result<(), i32>
            + Send
            + 'static,
    {
        let listing = Arc::new(DirListing {
            filling: Mutex::new(Filling {
                list: Listing::default(),
                done: false,
                error: None,
            }),
            grown: Condvar::new(),
        });
        // The job stays reachable from here, to run it in place if the spawn fails.
        let job = Arc::new(Mutex::new(Some(fill)));
        let (filler, thread_job) = (listing.clone(), job.clone());
        let spawned = std::thread::Builder::new()
            .name("stratafs-list".into())
            .spawn(move || {
                if let Some(fill) = thread_job.lock().take() {
                    filler.fill(fill);
                }
            });
        if let Err(e) = spawned {
            log::warn!("listing thread: {e}; listing in the request's thread");
            if let Some(fill) = job.lock().take() {
                listing.fill(fill);
            }
        }
        listing
    }

    /// Complete, with at most `max` entries: a reader takes it whole in one or two
    /// getdents calls, so hardly any is ever in the middle of it.
    pub(crate) fn is_small(&self, max: usize) -> bool {
        let f = self.filling.lock();
        f.done && f.list.len() <= max
    }

    fn fill(
        &self,
        fill: impl FnOnce(&mut dyn FnMut(&[u8], ListEntry) -> io::Result<()>) -> Result<(), i32>,
    ) {
        let mut batch = Listing::default();
        let result = fill(&mut |name, e| {
            batch.push(name, e)?;
            if batch.len() >= BATCH {
                self.hand_over(&mut batch, None);
            }
            Ok(())
        });
        self.hand_over(&mut batch, Some(result.err()));
    }

    /// Moves `batch` into the listing (and ends it when `end` is given), then wakes the
    /// readers waiting for more.
    fn hand_over(&self, batch: &mut Listing, end: Option<Option<i32>>) {
        let mut f = self.filling.lock();
        let appended = f.list.append(batch);
        if let Some(error) = end {
            f.done = true;
            f.error = error;
        }
        if let Err(e) = appended {
            f.done = true;
            f.error = Some(e.raw_os_error().unwrap_or(libc::ENOMEM));
        }
        drop(f);
        batch.clear();
        self.grown.notify_all();
    }

    /// Passes the entries from `start` to `add` with their index, waiting for a listing
    /// still being filled, until `add` returns true (the reply is full) or the listing
    /// ends. Returns whether any entry was passed; an
    /// error when the listing stopped on one before any entry could be.
    pub(crate) fn read(
        &self,
        start: usize,
        mut add: impl FnMut(usize, &[u8], &ListEntry) -> bool,
    ) -> Result<bool, Errno> {
        let mut i = start;
        let mut f = self.filling.lock();
        loop {
            while i < f.list.len() {
                let (name, e) = f.list.get(i);
                if add(i, name, e) {
                    return Ok(true);
                }
                i += 1;
            }
            if f.done {
                return match f.error {
                    Some(e) if i == start => Err(Errno::from_i32(e)),
                    _ => Ok(i > start),
                };
            }
            self.grown.wait(&mut f);
        }
    }
}
