//! The store's writer lock: one `flock` on `<root>/lock` serializes processes that
//! change metadata (imports, removals, container creation).

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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("open lock file", path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| StoreError::io("lock", path, errno.into()))?;
        Ok(StoreLock { _lock: lock })
    }
}
