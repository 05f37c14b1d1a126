//! Replies written straight into a payload buffer (a ring entry's, or the one a
//! `/dev/fuse` thread writes out): what the handlers in `fuse::ops` answer with.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo};

use super::abi::{self, Pod};
use crate::fuse::reply::*;

/// How a request was answered: 0 or a negated errno, and the payload bytes written.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub error: i32,
    pub len: usize,
}

impl Default for Outcome {
    /// A handler that never replied: EIO.
    fn default() -> Outcome {
        Outcome {
            error: -libc::EIO,
            len: 0,
        }
    }
}

/// The reply to one request, written into `out` (at most `limit` bytes for listings).
pub struct Answer<'a> {
    out: &'a mut [u8],
    limit: usize,
    done: &'a mut Outcome,
}

impl<'a> Answer<'a> {
    /// A reply into `out`; listings fill at most `limit` bytes (the request's size).
    pub fn new(out: &'a mut [u8], limit: usize, done: &'a mut Outcome) -> Answer<'a> {
        *done = Outcome::default();
        let limit = limit.min(out.len());
        Answer { out, limit, done }
    }

    /// Replies with `parts`, one after the other.
    fn send(self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > self.out.len() {
            // Never with the payload sized as the kernel asks; a short buffer is EIO.
            *self.done = Outcome {
                error: -libc::EIO,
                len: 0,
            };
            return;
        }
        let mut at = 0;
        for p in parts {
            self.out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        *self.done = Outcome { error: 0, len: at };
    }

    fn send_pod<T: Pod>(self, t: &T) {
        self.send(&[abi::bytes(t)]);
    }

    /// Appends one listing entry (`head`, then `name` padded to 8 bytes) if it fits.
    fn append(&mut self, head: &[&[u8]], name: &[u8]) -> bool {
        let at = if self.done.error == 0 {
            self.done.len
        } else {
            0
        };
        let fixed: usize = head.iter().map(|h| h.len()).sum();
        let size = (fixed + name.len() + 7) & !7;
        if at + size > self.limit {
            return false;
        }
        let mut p = at;
        for h in head {
            self.out[p..p + h.len()].copy_from_slice(h);
            p += h.len();
        }
        self.out[p..p + name.len()].copy_from_slice(name);
        self.out[p + name.len()..at + size].fill(0);
        *self.done = Outcome {
            error: 0,
            len: at + size,
        };
        true
    }

    fn listing_done(self) {
        if self.done.error != 0 {
            *self.done = Outcome { error: 0, len: 0 };
        }
    }
}

/// Seconds and nanoseconds since the epoch, negative seconds as the kernel reads them.
fn split_time(t: SystemTime) -> (u64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs(), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (mut s, mut ns) = (-(d.as_secs() as i64), d.subsec_nanos());
            if ns > 0 {
                s -= 1;
                ns = 1_000_000_000 - ns;
            }
            (s as u64, ns)
        }
    }
}

fn type_bits(kind: FileType) -> u32 {
    match kind {
        FileType::Directory => libc::S_IFDIR,
        FileType::Symlink => libc::S_IFLNK,
        FileType::NamedPipe => libc::S_IFIFO,
        FileType::CharDevice => libc::S_IFCHR,
        FileType::BlockDevice => libc::S_IFBLK,
        FileType::Socket => libc::S_IFSOCK,
        FileType::RegularFile => libc::S_IFREG,
    }
}

/// `fuse_attr` from fuser's attributes.
pub fn attr(a: &FileAttr) -> abi::Attr {
    let (atime, atimensec) = split_time(a.atime);
    let (mtime, mtimensec) = split_time(a.mtime);
    let (ctime, ctimensec) = split_time(a.ctime);
    abi::Attr {
        ino: a.ino.0,
        size: a.size,
        blocks: a.blocks,
        atime,
        mtime,
        ctime,
        atimensec,
        mtimensec,
        ctimensec,
        mode: type_bits(a.kind) | u32::from(a.perm),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: a.flags,
    }
}

fn entry_out(
    attr_ttl: &Duration,
    entry_ttl: &Duration,
    a: &FileAttr,
    g: Generation,
) -> abi::EntryOut {
    abi::EntryOut {
        nodeid: a.ino.0,
        generation: g.0,
        entry_valid: entry_ttl.as_secs(),
        attr_valid: attr_ttl.as_secs(),
        entry_valid_nsec: entry_ttl.subsec_nanos(),
        attr_valid_nsec: attr_ttl.subsec_nanos(),
        attr: attr(a),
    }
}

fn open_out(fh: FileHandle, flags: FopenFlags, backing_id: Option<u32>) -> abi::OpenOut {
    let mut open_flags = flags.bits();
    if backing_id.is_some() {
        open_flags |= FopenFlags::FOPEN_PASSTHROUGH.bits();
    }
    abi::OpenOut {
        fh: fh.0,
        open_flags,
        backing_id: backing_id.unwrap_or(0) as i32,
    }
}

impl Reply for Answer<'_> {
    fn error(self, e: Errno) {
        *self.done = Outcome {
            error: -e.code(),
            len: 0,
        };
    }
}

impl EntryReply for Answer<'_> {
    fn entry_with_ttls(
        self,
        attr_ttl: &Duration,
        entry_ttl: &Duration,
        a: &FileAttr,
        g: Generation,
    ) {
        self.send_pod(&entry_out(attr_ttl, entry_ttl, a, g));
    }
}

impl AttrReply for Answer<'_> {
    fn attr(self, ttl: &Duration, a: &FileAttr) {
        self.send_pod(&abi::AttrOut {
            attr_valid: ttl.as_secs(),
            attr_valid_nsec: ttl.subsec_nanos(),
            dummy: 0,
            attr: attr(a),
        });
    }
}

impl DataReply for Answer<'_> {
    fn data(self, d: &[u8]) {
        self.send(&[d]);
    }

    fn read_with(self, size: usize, read: impl FnOnce(&mut [u8]) -> Result<usize, Errno>) {
        // Straight into the payload: no copy through a buffer of our own.
        let size = size.min(self.out.len());
        *self.done = match read(&mut self.out[..size]) {
            Ok(n) => Outcome {
                error: 0,
                len: n.min(size),
            },
            Err(e) => Outcome {
                error: -e.code(),
                len: 0,
            },
        };
    }
}

impl EmptyReply for Answer<'_> {
    fn ok(self) {
        self.send(&[]);
    }
}

impl WriteReply for Answer<'_> {
    fn written(self, n: u32) {
        self.send_pod(&abi::WriteOut {
            size: n,
            padding: 0,
        });
    }
}

impl XattrReply for Answer<'_> {
    fn size(self, n: u32) {
        self.send_pod(&abi::GetxattrOut {
            size: n,
            padding: 0,
        });
    }
    fn data(self, d: &[u8]) {
        self.send(&[d]);
    }
}

impl LseekReply for Answer<'_> {
    fn offset(self, o: i64) {
        self.send_pod(&abi::LseekOut { offset: o as u64 });
    }
}

impl StatfsReply for Answer<'_> {
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
    ) {
        self.send_pod(&abi::StatfsOut {
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            bsize,
            namelen,
            frsize,
            ..Default::default()
        });
    }
}

impl DirReply for Answer<'_> {
    fn add(&mut self, ino: INodeNo, offset: u64, kind: FileType, name: &OsStr) -> bool {
        let name = name.as_bytes();
        let d = abi::Dirent {
            ino: ino.0,
            off: offset,
            namelen: name.len() as u32,
            typ: type_bits(kind) >> 12,
        };
        !self.append(&[abi::bytes(&d)], name)
    }
    fn ok(self) {
        self.listing_done();
    }
}

impl DirPlusReply for Answer<'_> {
    fn add(
        &mut self,
        ino: INodeNo,
        offset: u64,
        name: &OsStr,
        ttl: &Duration,
        a: &FileAttr,
        g: Generation,
    ) -> bool {
        // As fuser does: the attributes' inode number is the node id (`ino` is the
        // same number, or 0 with bare attributes of 0).
        let _ = ino;
        let name = name.as_bytes();
        let e = entry_out(ttl, ttl, a, g);
        let d = abi::Dirent {
            ino: a.ino.0,
            off: offset,
            namelen: name.len() as u32,
            typ: type_bits(a.kind) >> 12,
        };
        !self.append(&[abi::bytes(&e), abi::bytes(&d)], name)
    }
    fn add_name(&mut self, ino: u64, offset: u64, name: &OsStr, d_type: u8) -> bool {
        // Node id 0: the kernel lists the name and links nothing.
        let name = name.as_bytes();
        let e = abi::EntryOut::default();
        let d = abi::Dirent {
            ino,
            off: offset,
            namelen: name.len() as u32,
            typ: u32::from(d_type),
        };
        !self.append(&[abi::bytes(&e), abi::bytes(&d)], name)
    }
    fn ok(self) {
        self.listing_done();
    }
}

impl OpenReply for Answer<'_> {
    fn opened(self, fh: FileHandle, flags: FopenFlags) {
        self.send_pod(&open_out(fh, flags, None));
    }
    fn passthrough(self, fh: FileHandle, backing_id: u32) {
        self.send_pod(&open_out(fh, FopenFlags::empty(), Some(backing_id)));
    }
}

impl CreateReply for Answer<'_> {
    fn created(self, ttl: &Duration, a: &FileAttr, g: Generation, fh: FileHandle, f: FopenFlags) {
        let e = entry_out(ttl, ttl, a, g);
        let o = open_out(fh, f, None);
        self.send(&[abi::bytes(&e), abi::bytes(&o)]);
    }
    fn created_passthrough(
        self,
        ttl: &Duration,
        a: &FileAttr,
        g: Generation,
        fh: FileHandle,
        f: FopenFlags,
        backing_id: u32,
    ) {
        let e = entry_out(ttl, ttl, a, g);
        let o = open_out(fh, f, Some(backing_id));
        self.send(&[abi::bytes(&e), abi::bytes(&o)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_attr(ino: u64) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: 5,
            blocks: 1,
            atime: UNIX_EPOCH + Duration::new(10, 5),
            mtime: UNIX_EPOCH - Duration::new(1, 250),
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: FileType::RegularFile,
            perm: 0o4755,
            nlink: 1,
            uid: 7,
            gid: 8,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    #[test]
    fn attributes_encode_as_the_kernel_reads_them() {
        let a = attr(&file_attr(3));
        assert_eq!(a.mode, libc::S_IFREG | 0o4755);
        assert_eq!((a.atime, a.atimensec), (10, 5));
        // 1.00000025 s before the epoch: -2 s + 0.99999975 s.
        assert_eq!((a.mtime as i64, a.mtimensec), (-2, 999_999_750));
    }

    #[test]
    fn listings_stop_at_the_requested_size_and_pad_names() {
        let mut buf = vec![0xffu8; 4096];
        let mut done = Outcome::default();
        let mut a = Answer::new(&mut buf, 64, &mut done);
        let name = OsStr::new("abc");
        assert!(!DirReply::add(
            &mut a,
            INodeNo(2),
            1,
            FileType::Directory,
            name
        ));
        // 24 + 3 padded to 32: a second fits, a third does not.
        assert!(!DirReply::add(
            &mut a,
            INodeNo(3),
            2,
            FileType::RegularFile,
            name
        ));
        assert!(DirReply::add(
            &mut a,
            INodeNo(4),
            3,
            FileType::RegularFile,
            name
        ));
        DirReply::ok(a);
        assert_eq!((done.error, done.len), (0, 64));
        let d: abi::Dirent = abi::read(&buf[32..]).unwrap_or_default();
        assert_eq!(
            (d.ino, d.off, d.namelen, d.typ),
            (3, 2, 3, u32::from(libc::DT_REG))
        );
        assert_eq!(&buf[56..64], b"abc\0\0\0\0\0");
    }

    #[test]
    fn an_empty_listing_is_an_empty_success() {
        let mut buf = vec![0u8; 64];
        let mut done = Outcome::default();
        DirReply::ok(Answer::new(&mut buf, 64, &mut done));
        assert_eq!((done.error, done.len), (0, 0));
    }

    #[test]
    fn create_carries_entry_then_open() {
        let mut buf = vec![0u8; 4096];
        let mut done = Outcome::default();
        let a = Answer::new(&mut buf, 4096, &mut done);
        let ttl = Duration::from_secs(1);
        let fa = file_attr(9);
        a.created_passthrough(
            &ttl,
            &fa,
            Generation(4),
            FileHandle(11),
            FopenFlags::empty(),
            6,
        );
        assert_eq!((done.error, done.len), (0, 144));
        let e: abi::EntryOut = abi::read(&buf).unwrap_or_default();
        let o: abi::OpenOut = abi::read(&buf[128..]).unwrap_or_default();
        assert_eq!((e.nodeid, e.generation, e.entry_valid), (9, 4, 1));
        assert_eq!((o.fh, o.backing_id), (11, 6));
        assert!(o.open_flags & FopenFlags::FOPEN_PASSTHROUGH.bits() != 0);
    }

    #[test]
    fn errors_are_negated() {
        let mut buf = vec![0u8; 16];
        let mut done = Outcome::default();
        Answer::new(&mut buf, 16, &mut done).error(Errno::ENOENT);
        assert_eq!((done.error, done.len), (-libc::ENOENT, 0));
    }
}
