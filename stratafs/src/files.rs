//! Real files kept open per inode, for I/O that names an inode and no handle.
//!
//! With `FUSE_NO_OPEN_SUPPORT` the kernel opens and closes files without asking the
//! daemon: no OPEN and RELEASE round trips per `open()`, which are most of the cost
//! of reading many small files through FUSE. READ, WRITE, FSYNC and friends then
//! arrive with handle 0, so the daemon keeps one real file per inode here: read-only
//! on the layer file until something writes, read-write on the upper copy after.
//!
//! The cache is bounded (fds are a limited resource; a node is not an fd): past
//! `capacity` entries some are closed, to be reopened on next use. An entry is
//! dropped when its inode is forgotten and when the file is copied up, so readers
//! always see the file the merged tree shows.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use dashmap::DashMap;

/// One open real file of an inode.
#[derive(Debug)]
pub struct RealFile {
    /// The open file (the upper copy once written, else the top-most layer's file).
    pub fd: OwnedFd,
    /// Opened for writing (implies the file is in the upper layer).
    pub writable: bool,
}

/// Open real files by inode number.
#[derive(Debug)]
pub struct OpenFiles {
    map: DashMap<u64, Arc<RealFile>>,
    capacity: usize,
}

impl OpenFiles {
    /// A cache of at most about `capacity` open files.
    pub fn new(capacity: usize) -> OpenFiles {
        OpenFiles {
            map: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The open file of `ino` if there is one good for reading (and for writing when
    /// `write`). No allocation, one shard read lock.
    pub fn get(&self, ino: u64, write: bool) -> Option<Arc<RealFile>> {
        let f = self.map.get(&ino)?;
        (!write || f.writable).then(|| Arc::clone(&f))
    }

    /// Keeps `file` as the open file of `ino` (replacing a read-only one), closing
    /// another entry when the cache is full.
    pub fn insert(&self, ino: u64, file: RealFile) -> Arc<RealFile> {
        let file = Arc::new(file);
        if self.map.len() >= self.capacity {
            self.evict_one(ino);
        }
        self.map.insert(ino, Arc::clone(&file));
        file
    }

    /// Closes the open file of `ino` (forgotten, or copied up); I/O under way on it
    /// finishes on the old file.
    pub fn remove(&self, ino: u64) {
        self.map.remove(&ino);
    }

    /// Removes `ino`'s entry if it is still `file` (a newer entry stays).
    pub fn remove_if_same(&self, ino: u64, file: &Arc<RealFile>) {
        self.map.remove_if(&ino, |_, f| Arc::ptr_eq(f, file));
    }

    /// Number of open files held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no file is held open.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn evict_one(&self, keep: u64) {
        // Any entry will do: an evicted file costs one reopen. The shard guard is
        // dropped before removing (remove locks the same shard).
        let victim = self.map.iter().map(|e| *e.key()).find(|&k| k != keep);
        if let Some(k) = victim {
            self.map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").map(OwnedFd::from).unwrap()
    }

    fn file(writable: bool) -> RealFile {
        RealFile {
            fd: devnull(),
            writable,
        }
    }

    #[test]
    fn a_read_only_entry_does_not_serve_writes() {
        let c = OpenFiles::new(8);
        c.insert(5, file(false));
        assert!(c.get(5, false).is_some());
        assert!(c.get(5, true).is_none());
        c.insert(5, file(true));
        assert!(c.get(5, true).is_some());
        assert!(c.get(5, false).is_some_and(|f| f.writable));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let c = OpenFiles::new(4);
        for ino in 0..100 {
            c.insert(ino, file(false));
            assert!(c.len() <= 4, "{} entries after inserting {ino}", c.len());
            assert!(c.get(ino, false).is_some(), "the newest entry {ino} stays");
        }
    }

    #[test]
    fn removal_by_identity_keeps_a_newer_entry() {
        let c = OpenFiles::new(4);
        let old = c.insert(1, file(false));
        c.insert(1, file(true));
        c.remove_if_same(1, &old);
        assert!(c.get(1, true).is_some());
        let new = c.get(1, false).unwrap();
        c.remove_if_same(1, &new);
        assert!(c.is_empty());
    }
}
