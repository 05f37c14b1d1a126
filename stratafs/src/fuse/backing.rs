//! Per-inode I/O modes for FUSE passthrough: one shared backing file per inode.
//!
//! With passthrough the kernel reads and writes the real file itself, but it allows a
//! single backing file per FUSE inode at a time, and no open of an inode that is not
//! passed through while one is (nor the reverse): a mismatched open fails with EIO (a
//! second `exec` of a running binary, a reader beside a writer). This table gives each
//! inode with open files one mode: passed through to one backing id, shared by every
//! open and closed with the last; or cached, served by the daemon.
//!
//! A lower file's backing file outlives its copy-up (the kernel cannot move an inode
//! to another backing file while it is open), and a writer, or a reader opened after
//! the copy-up, must not share it: such an open gets `Grant::Stale`, the daemon gives
//! the object a second node id (`NodeTable::split`) and fails the open with ESTALE,
//! and the kernel retries it after a fresh lookup, on a second inode with no backing
//! yet. Readers opened before the copy-up keep reading the lower file, as a
//! read-only `MAP_SHARED` mapping does on kernel overlayfs.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use dashmap::mapref::one::Ref;

/// A file registered with the session's FUSE device as a passthrough backing file,
/// whichever transport replies with its id; unregistered when dropped.
#[derive(Debug)]
pub struct BackingFile {
    device: Arc<OwnedFd>,
    id: u32,
}

impl BackingFile {
    /// Registers `fd` on `device` (needs CAP_SYS_ADMIN and a kernel with passthrough).
    pub fn open(device: &Arc<OwnedFd>, fd: BorrowedFd<'_>) -> std::io::Result<BackingFile> {
        let id = fuser::BackingId::create_raw(&**device, fd)?;
        Ok(BackingFile {
            device: device.clone(),
            id,
        })
    }

    /// The id replies name the backing file by.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for BackingFile {
    fn drop(&mut self) {
        let _ = crate::sys::fuse_dev::backing_close(&*self.device, self.id);
    }
}

#[derive(Debug)]
enum Mode {
    /// Opens served by the daemon through the page cache.
    Cached { opens: usize },
    /// Opens passed through with `id`, a lower (read-only) file's when `lower`.
    Passthrough {
        id: BackingFile,
        opens: usize,
        lower: bool,
    },
}

/// How one open of an inode is to be served (either way counted: release it).
pub enum Grant<'a> {
    /// Passed through with the held id.
    Passthrough(Held<'a>),
    /// Through the daemon and the page cache.
    Cached,
    /// Not counted: the inode's backing is a lower file this open (to write, or to a
    /// file copied up since) must not share.
    Stale,
}

/// A counted passthrough open's backing id, held (and so not closed by a concurrent
/// release) until the reply naming it is sent.
pub struct Held<'a>(Ref<'a, u64, Mode>);

impl Held<'_> {
    /// The id to reply with.
    pub fn id(&self) -> Option<u32> {
        match &*self.0 {
            Mode::Passthrough { id, .. } => Some(id.id()),
            Mode::Cached { .. } => None,
        }
    }
}

/// I/O modes by inode number, for inodes with counted opens.
#[derive(Debug, Default)]
pub struct IoModes {
    by_ino: DashMap<u64, Mode>,
}

impl IoModes {
    /// Decides how an open of `ino` goes (its real file a lower one when `lower`): it
    /// joins the inode's current mode, unless that is a lower backing file and this
    /// open's file is not; an inode without open files is passed through when
    /// `wanted()` says it is worth it (a backing file registered with `register`), else
    /// cached.
    pub fn acquire(
        &self,
        ino: u64,
        lower: bool,
        wanted: impl FnOnce() -> bool,
        register: impl FnOnce() -> std::io::Result<BackingFile>,
    ) -> std::io::Result<Grant<'_>> {
        match self.by_ino.entry(ino) {
            Entry::Occupied(mut o) => match o.get_mut() {
                Mode::Cached { opens } => {
                    *opens += 1;
                    Ok(Grant::Cached)
                }
                Mode::Passthrough { lower: true, .. } if !lower => Ok(Grant::Stale),
                Mode::Passthrough { opens, .. } => {
                    *opens += 1;
                    Ok(Grant::Passthrough(Held(o.into_ref().downgrade())))
                }
            },
            Entry::Vacant(v) => {
                if !wanted() {
                    v.insert(Mode::Cached { opens: 1 });
                    return Ok(Grant::Cached);
                }
                let id = register()?;
                let mode = Mode::Passthrough {
                    id,
                    opens: 1,
                    lower,
                };
                Ok(Grant::Passthrough(Held(v.insert(mode).downgrade())))
            }
        }
    }

    /// Ends one counted open of `ino`; a backing id closes with its last open.
    pub fn release(&self, ino: u64) {
        if let Entry::Occupied(mut o) = self.by_ino.entry(ino) {
            let (Mode::Cached { opens } | Mode::Passthrough { opens, .. }) = o.get_mut();
            *opens = opens.saturating_sub(1);
            if *opens == 0 {
                o.remove();
            }
        }
    }
}
