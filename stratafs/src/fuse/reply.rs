//! What each request handler answers with: one trait per kind of reply, so handlers
//! state what they answer and `crate::transport::answer` writes it out (into a ring
//! entry, or for a `writev` on `/dev/fuse`).

use std::ffi::OsStr;
use std::time::Duration;

use fuser::{Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo};

/// The process a request comes from, as the kernel names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// Spelled as fuser's `Request` spells them, so handlers read the same either way.
impl Who {
    /// The caller's file system uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }
    /// The caller's file system gid.
    pub fn gid(&self) -> u32 {
        self.gid
    }
    /// The caller's thread id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// Every reply can be an error instead.
pub(crate) trait Reply {
    fn error(self, e: Errno);
}

/// A name's entry (LOOKUP, MKNOD, MKDIR, SYMLINK, LINK).
pub(crate) trait EntryReply: Reply {
    /// `attr_ttl` first, as fuser has it.
    fn entry_with_ttls(
        self,
        attr_ttl: &Duration,
        entry_ttl: &Duration,
        a: &FileAttr,
        g: Generation,
    );
    fn entry(self, ttl: &Duration, a: &FileAttr, g: Generation)
    where
        Self: Sized,
    {
        self.entry_with_ttls(ttl, ttl, a, g);
    }
}

/// Attributes (GETATTR, SETATTR).
pub(crate) trait AttrReply: Reply {
    fn attr(self, ttl: &Duration, a: &FileAttr);
}

/// Bytes (READ, READLINK).
pub(crate) trait DataReply: Reply {
    fn data(self, d: &[u8]);

    /// Replies with what `read` puts in a buffer of `size` bytes (it says how many):
    /// by default through a per-thread buffer, grown once to the largest read.
    fn read_with(self, size: usize, read: impl FnOnce(&mut [u8]) -> Result<usize, Errno>)
    where
        Self: Sized,
    {
        READ_BUF.with_borrow_mut(|buf| {
            if buf.len() < size {
                buf.resize(size, 0);
            }
            match read(&mut buf[..size]) {
                Ok(n) => self.data(&buf[..n.min(size)]),
                Err(e) => self.error(e),
            }
        })
    }
}

thread_local! {
    /// Each worker thread's buffer for READ replies.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Success alone.
pub(crate) trait EmptyReply: Reply {
    fn ok(self);
}

/// Bytes written.
pub(crate) trait WriteReply: Reply {
    fn written(self, n: u32);
}

/// An xattr value or list, or its size when asked with size 0.
pub(crate) trait XattrReply: Reply {
    fn size(self, n: u32);
    fn data(self, d: &[u8]);
}

/// An offset (LSEEK).
pub(crate) trait LseekReply: Reply {
    fn offset(self, o: i64);
}

/// File system statistics, as `statfs(2)` gives them.
pub(crate) trait StatfsReply: Reply {
    #[allow(clippy::too_many_arguments)]
    fn statfs(
        self,
        blocks: u64,
        bfree: u64,
        bavail: u64,
        files: u64,
        ffree: u64,
        bsize: u32,
        namelen: u32,
        frsize: u32,
    );
}

/// A READDIR chunk: `add` is true once the chunk is full (the entry not added).
pub(crate) trait DirReply: Reply {
    fn add(&mut self, ino: INodeNo, offset: u64, kind: FileType, name: &OsStr) -> bool;
    fn ok(self);
}

/// A READDIRPLUS chunk: `add` is true once the chunk is full (the entry not added).
pub(crate) trait DirPlusReply: Reply {
    fn add(
        &mut self,
        ino: INodeNo,
        offset: u64,
        name: &OsStr,
        ttl: &Duration,
        a: &FileAttr,
        g: Generation,
    ) -> bool;
    /// Adds `name` (inode `ino`, type `d_type`) without attributes: the kernel lists it
    /// but links no dentry and counts no lookup (node id 0 in the entry). True when the
    /// chunk is full.
    fn add_name(&mut self, ino: u64, offset: u64, name: &OsStr, d_type: u8) -> bool;
    fn ok(self);
}

/// An open (OPEN, OPENDIR): a handle served by the daemon, or passed through to a
/// backing file registered with the device (its id).
pub(crate) trait OpenReply: Reply {
    fn opened(self, fh: FileHandle, flags: FopenFlags);
    fn passthrough(self, fh: FileHandle, backing_id: u32);
}

/// A CREATE: the new entry and its open.
pub(crate) trait CreateReply: Reply {
    fn created(self, ttl: &Duration, a: &FileAttr, g: Generation, fh: FileHandle, f: FopenFlags);
    #[allow(clippy::too_many_arguments)]
    fn created_passthrough(
        self,
        ttl: &Duration,
        a: &FileAttr,
        g: Generation,
        fh: FileHandle,
        f: FopenFlags,
        backing_id: u32,
    );
}

/// A create's reply with the new entry it carries, answered as an open.
pub(crate) struct Created<R> {
    pub reply: R,
    pub ttl: Duration,
    pub attr: FileAttr,
    pub generation: Generation,
}

impl<R: CreateReply> Reply for Created<R> {
    fn error(self, e: Errno) {
        self.reply.error(e);
    }
}

impl<R: CreateReply> OpenReply for Created<R> {
    fn opened(self, fh: FileHandle, flags: FopenFlags) {
        self.reply
            .created(&self.ttl, &self.attr, self.generation, fh, flags);
    }
    fn passthrough(self, fh: FileHandle, backing_id: u32) {
        let f = FopenFlags::empty();
        self.reply
            .created_passthrough(&self.ttl, &self.attr, self.generation, fh, f, backing_id);
    }
}
