//! The store's locks, each one `flock`:
//! * `<root>/lock`, the writer lock: serializes processes that change metadata
//!   (imports, removals, container creation);
//! * `<root>/pin.lock`, the pin: held shared by operations that work on the store for
//!   long without the writer lock (a pull downloading and planning from what the store
//!   holds, a push or an export reading blobs) and exclusive by `prune`, which so never
//!   removes a blob or a layer such an operation is about to register or is reading.
//!
//! A process takes the pin before the writer lock, never the other way round.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::StoreError;

/// Held while a process mutates the store; released on drop.
pub struct StoreLock {
    _lock: Flock<File>,
}

impl StoreLock {
    /// Blocks until the exclusive lock on `path` is held.
    pub fn acquire(path: &Path) -> Result<StoreLock, StoreError> {
        Ok(StoreLock {
            _lock: flock(path, FlockArg::LockExclusive)?,
        })
    }
}

/// Keeps `prune` off what a lock-free operation uses (see the module doc); released
/// on drop.
pub struct Pin {
    _lock: Flock<File>,
}

impl Pin {
    /// Blocks until the pin on `path` is held shared (only a running `prune` waits it).
    pub fn shared(path: &Path) -> Result<Pin, StoreError> {
        Ok(Pin {
            _lock: flock(path, FlockArg::LockShared)?,
        })
    }

    /// Takes the pin on `path` exclusive, for `prune`: at once when nothing holds it,
    /// else calls `waiting` once and blocks until the operations holding it end.
    pub fn exclusive(path: &Path, waiting: impl FnOnce()) -> Result<Pin, StoreError> {
        let file = open(path)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                waiting();
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, errno)| StoreError::io("lock", path, errno.into()))?
            }
            Err((_, errno)) => return Err(StoreError::io("lock", path, errno.into())),
        };
        Ok(Pin { _lock: lock })
    }
}

fn open(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open lock file", path, e))
}

fn flock(path: &Path, how: FlockArg) -> Result<Flock<File>, StoreError> {
    Flock::lock(open(path)?, how).map_err(|(_, errno)| StoreError::io("lock", path, errno.into()))
}
