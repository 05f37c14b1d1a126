//! Whiteouts made as the kernel makes them: one 0/0 character device kept in the work
//! directory, hard-linked at each removed lower name. A link allocates no inode; on a
//! well-used ext4 an inode allocation (the allocator skips recently freed inodes) costs
//! tens of times more, and `rm -rf` of a lower tree is one whiteout per name.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::sys;

/// The shared whiteout inode, if one is in use.
#[derive(Debug)]
pub struct SharedWhiteout {
    /// Its name in the work directory.
    base: Mutex<Option<PathBuf>>,
    /// Cleared when the upper file system refuses it (no mknod, no hard links).
    enabled: AtomicBool,
}

impl Default for SharedWhiteout {
    fn default() -> Self {
        SharedWhiteout {
            base: Mutex::new(None),
            enabled: AtomicBool::new(true),
        }
    }
}

impl SharedWhiteout {
    /// Links a whiteout at `upath` (under `upper`), making the shared one in `work`
    /// first under the name `fresh_name` gives. `Ok(false)` means it was not made:
    /// the name exists, or sharing is not possible here; the caller then makes a
    /// whiteout of its own.
    pub fn link(
        &self,
        work: BorrowedFd<'_>,
        upper: BorrowedFd<'_>,
        upath: &Path,
        fresh_name: impl FnOnce() -> PathBuf,
    ) -> io::Result<bool> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut base = self.base.lock();
        let name = match &*base {
            Some(name) => name,
            None => {
                let name = fresh_name();
                if sys::mknod_at(work, &name, libc::S_IFCHR, 0).is_err() {
                    self.enabled.store(false, Ordering::Relaxed);
                    return Ok(false);
                }
                base.insert(name)
            }
        };
        match sys::link_between(work, name, upper, upath) {
            Ok(()) => Ok(true),
            Err(e) => match e.raw_os_error() {
                Some(libc::EEXIST) => Ok(false),
                // The parent is gone: a real error for the caller.
                Some(libc::ENOENT) | Some(libc::ENOTDIR) if sys::lstat_at(work, name).is_ok() => {
                    Err(e)
                }
                // Link count full (or the base vanished): the next whiteout starts a
                // new shared inode; the old one stays linked where it is.
                Some(libc::EMLINK) | Some(libc::ENOENT) => {
                    let _ = sys::unlink_at(work, name, false);
                    *base = None;
                    Ok(false)
                }
                _ => {
                    let _ = sys::unlink_at(work, name, false);
                    *base = None;
                    self.enabled.store(false, Ordering::Relaxed);
                    Ok(false)
                }
            },
        }
    }
}
