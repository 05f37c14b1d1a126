//! The FUSE side of the overlay: request handlers (`ops`) written once over reply
//! traits (`reply`), served by `crate::transport` from `/dev/fuse` and, where the kernel
//! offers it, through FUSE-over-io_uring queues; fuser mounts and answers INIT
//! (`adapter`). FUSE-only policies live beside them: passthrough backing files per inode
//! (`backing`), what a caller may do (`caller`), which processes get READDIRPLUS
//! (`plus`).

mod adapter;
pub(crate) mod backing;
pub(crate) mod caller;
mod listing;
mod ops;
pub(crate) mod plus;
pub(crate) mod prefetch;
pub(crate) mod reply;

pub use adapter::FuseAdapter;
pub(crate) use ops::SetAttr;

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use fuser::{Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, TimeOrNow};

use crate::daemon::options::IoStrategy;
use crate::files::RealFile;
use crate::fuse::backing::{BackingFile, Grant, IoModes};
use crate::fuse::caller::{Caller, has_privilege_bits};
use crate::fuse::plus::PlusPolicy;
use crate::fuse::prefetch::ReadHabits;
use crate::idmap::IdMapper;
use crate::node::Node;
use crate::overlay::{NewObject, Overlay};
use crate::sys::{self, Stat};
use listing::DirListing;
use reply::{EntryReply, OpenReply, Who, XattrReply};

/// The FUSE side of a mounted overlay.
#[derive(Debug)]
pub struct OverlayFs {
    ov: Arc<Overlay>,
    ttl: Duration,
    /// Directory listings being read, by open handle, or by inode (high bit set) when
    /// the kernel opens directories without asking (no-opendir).
    dirs: DashMap<u64, Arc<DirListing>>,
    next_dir: AtomicU64,
    /// The kernel opens directories itself and caches their listings.
    no_opendir: AtomicBool,
    ids: IdMapper,
    /// The kernel accepted FUSE passthrough and we may open backing files.
    passthrough: AtomicBool,
    /// Per-inode I/O mode (passthrough or cached) while passthrough is on.
    modes: IoModes,
    /// Open handles on a lower file, by handle, with their inode: after a copy-up they
    /// are moved to the upper copy on next use, so an old reader sees new writes.
    lower_fhs: DashMap<u64, u64>,
    /// Inode of each open file handle counted in `modes`, for release.
    passed: DashMap<u64, u64>,
    /// What the mount asked for (`io=`).
    io: IoStrategy,
    /// The kernel opens files without OPEN requests; I/O names only the inode.
    no_open: AtomicBool,
    /// Which processes get attributes with their listings.
    plus: PlusPolicy,
    /// Which processes read the files they look up (their data is read ahead).
    reads: ReadHabits,
    /// The kernel leaves clearing set-user-ID and set-group-ID bits on write and
    /// truncate to us (`FUSE_HANDLE_KILLPRIV_V2`), and stops asking for
    /// `security.capability` before every write.
    killpriv: AtomicBool,
    /// The session's `/dev/fuse`, once the session is up: backing files for
    /// passthrough are registered on it.
    device: OnceLock<Arc<OwnedFd>>,
    /// io_uring queues are set up, ready to be offered at INIT.
    uring_ready: AtomicBool,
    /// The kernel agreed to take requests through io_uring queues as well.
    uring: AtomicBool,
    /// POSIX ACLs are asked for at INIT (unless `noacl`): the kernel then checks them,
    /// and leaves the umask to us where a parent's default ACL replaces it.
    posix_acl: AtomicBool,
    /// `noxattrs=1`: extended attribute requests fail ENOTSUP.
    no_xattrs: bool,
}

/// The real file a read or write goes to: the handle's own fd, or the file kept
/// open for the inode when the kernel sent no handle (`io=inode`).
enum IoFile {
    Handle(i32),
    Inode(Arc<RealFile>),
}

impl IoFile {
    fn raw(&self) -> i32 {
        match self {
            IoFile::Handle(fd) => *fd,
            IoFile::Inode(f) => f.fd.as_raw_fd(),
        }
    }
}

impl OverlayFs {
    /// Wraps an overlay; `ttl` is how long the kernel may cache entries and attributes.
    /// `io` says how file I/O reaches the real files.
    pub fn new(ov: Overlay, ttl: Duration, ids: IdMapper, io: IoStrategy) -> OverlayFs {
        OverlayFs {
            ov: Arc::new(ov),
            ttl,
            dirs: DashMap::new(),
            next_dir: AtomicU64::new(1),
            no_opendir: AtomicBool::new(false),
            ids,
            passthrough: AtomicBool::new(false),
            modes: IoModes::default(),
            passed: DashMap::new(),
            lower_fhs: DashMap::new(),
            io,
            no_open: AtomicBool::new(false),
            plus: PlusPolicy::default(),
            reads: ReadHabits::default(),
            killpriv: AtomicBool::new(false),
            device: OnceLock::new(),
            uring_ready: AtomicBool::new(false),
            uring: AtomicBool::new(false),
            posix_acl: AtomicBool::new(true),
            no_xattrs: false,
        }
    }

    /// Whether to ask for POSIX ACLs at INIT (fuse-overlayfs' `noacl` says no).
    pub fn set_posix_acl(&self, on: bool) {
        self.posix_acl.store(on, Ordering::Relaxed);
    }

    /// `noxattrs=1`: every get/set/list/remove of an extended attribute fails ENOTSUP.
    pub fn without_xattrs(mut self) -> OverlayFs {
        self.no_xattrs = true;
        self
    }

    /// Hands over the session's `/dev/fuse` (a duplicate) once the session is up.
    pub fn attach_device(&self, dev: OwnedFd) {
        let _ = self.device.set(Arc::new(dev));
    }

    /// io_uring queues are set up: INIT may agree to them.
    pub fn offer_uring(&self) {
        self.uring_ready.store(true, Ordering::Relaxed);
    }

    /// The kernel agreed, at INIT, to send requests through io_uring queues.
    pub fn uring_accepted(&self) -> bool {
        self.uring.load(Ordering::Relaxed)
    }

    /// The real file for I/O on `ino` through handle `fh` (0: none, `io=inode`);
    /// `write` copies the file up first when it has no handle of its own.
    fn io_file(&self, ino: INodeNo, fh: FileHandle, write: bool) -> Result<IoFile, Errno> {
        if fh.0 != 0 {
            self.follow_copy_up(fh.0);
            return Ok(IoFile::Handle(fh.0 as i32));
        }
        self.ov
            .real_file(ino.0, write)
            .map(IoFile::Inode)
            .map_err(err)
    }

    /// The mode a write or truncate by process `pid` leaves on a file with attributes
    /// `st`, when it clears a privilege bit (see [`Caller::bits_to_clear`]); `/proc`
    /// is read only for files carrying such a bit.
    fn mode_without_privilege_bits(&self, st: &Stat, pid: u32) -> Option<u32> {
        let mode = st.st_mode & 0o7777;
        if !has_privilege_bits(mode) {
            return None;
        }
        let bits = Caller::of(pid).bits_to_clear(mode, self.ids.gid_in(st.st_gid));
        (bits != 0).then_some(mode & !bits)
    }

    /// Clears, on the file open at `fd`, the privilege bits a write by `pid` clears.
    fn clear_privilege_bits(&self, fd: i32, pid: u32) -> Result<(), Errno> {
        let st = crate::sys::fstat(fd).map_err(|e| err(e.raw_os_error().unwrap_or(libc::EIO)))?;
        if let Some(mode) = self.mode_without_privilege_bits(&st, pid) {
            crate::sys::io::fchmod_raw(fd, mode).map_err(|e| io_err(&e))?;
        }
        Ok(())
    }

    /// The mode a truncation by `pid` leaves on inode `ino` (the kernel no longer says
    /// so with `FUSE_HANDLE_KILLPRIV_V2`).
    fn mode_after_truncate(&self, ino: u64, pid: u32) -> Result<Option<u32>, Errno> {
        let node = self.ov.node(ino).map_err(err)?;
        let st = self.ov.stat(&node).map_err(err)?;
        Ok(self.mode_without_privilege_bits(&st, pid))
    }

    /// Attributes as the mount shows them (ids mapped).
    fn attr(&self, st: &Stat) -> FileAttr {
        let mut a = attr(st);
        if !self.ids.is_identity() {
            a.uid = self.ids.uid_in(a.uid);
            a.gid = self.ids.gid_in(a.gid);
        }
        a
    }

    /// The on-disk owner uid of what a caller creates (overflow id when unmapped).
    fn disk_uid(&self, uid: u32) -> u32 {
        self.ids.uid_out(uid).unwrap_or(crate::idmap::OVERFLOW_ID)
    }

    /// The on-disk owner gid of what a caller creates (overflow id when unmapped).
    fn disk_gid(&self, gid: u32) -> u32 {
        self.ids.gid_out(gid).unwrap_or(crate::idmap::OVERFLOW_ID)
    }
}

fn err(e: i32) -> Errno {
    Errno::from_i32(e)
}

/// The errno an I/O error carries (EIO when it carries none).
fn io_err(e: &std::io::Error) -> Errno {
    err(e.raw_os_error().unwrap_or(libc::EIO))
}

fn ts(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::new((-sec) as u64, 0) + Duration::from_nanos(nsec as u64)
    }
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn kind_of_dtype(t: u8) -> FileType {
    match t {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_SOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// Attributes carrying only an inode number and a `DT_*` type: what a READDIRPLUS
/// entry holds when it links no dentry ("." and "..", or node id 0).
fn bare_attr(ino: u64, d_type: u8) -> FileAttr {
    let mut st = crate::sys::io::zeroed_stat();
    st.st_ino = ino;
    st.st_mode = u32::from(d_type) << 12;
    attr(&st)
}

fn attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.st_ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: ts(st.st_atime, st.st_atime_nsec),
        mtime: ts(st.st_mtime, st.st_mtime_nsec),
        ctime: ts(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as i64,
            },
            Err(e) => {
                let d = e.duration();
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = -(d.subsec_nanos() as i64);
                if nsec < 0 {
                    sec -= 1;
                    nsec += 1_000_000_000;
                }
                libc::timespec {
                    tv_sec: sec,
                    tv_nsec: nsec,
                }
            }
        },
    }
}

impl OverlayFs {
    /// Creates `obj` in `parent` owned by the caller (ids mapped) and replies its entry:
    /// what mknod, mkdir and symlink share.
    fn make_entry(
        &self,
        req: &Who,
        parent: INodeNo,
        name: &OsStr,
        obj: NewObject<'_>,
        umask: u32,
        reply: impl EntryReply,
    ) {
        self.plus.changed(parent.0);
        let (uid, gid) = (self.disk_uid(req.uid()), self.disk_gid(req.gid()));
        match self.ov.make(parent.0, name, obj, uid, gid, umask) {
            Ok((node, st, _)) => self.entry(reply, &node, &st),
            Err(e) => reply.error(err(e)),
        }
    }

    /// Replies to an open (or create) of `ino` whose real file is `fd`, opened with
    /// `flags`: a file is passed through when the kernel allows it and it pays
    /// (writers, files of 64 KiB and more); the rest is served here, with the page
    /// cache kept across opens of immutable lower files. A lower file passed through
    /// stays the inode's backing while open; an open that must not share it fails
    /// with ESTALE after the object gets a second node id (see `backing`).
    fn reply_open(&self, ino: u64, fd: OwnedFd, flags: i32, lower: bool, reply: impl OpenReply) {
        let cached = if lower {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        if !self.passthrough.load(Ordering::Relaxed) {
            return self.opened(ino, fd, lower, cached, reply);
        }
        // Small files read whole stay in the page cache without a round trip; passing
        // them through would cost two ioctls per open and a GETATTR per read (atime).
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let wanted = || {
            if lower
                && (self.io != IoStrategy::PassthroughAll
                    || self
                        .ov
                        .node(ino)
                        .map_or(true, |n| n.shared_backing_refused()))
            {
                return false;
            }
            let Ok(st) = crate::sys::fstat(fd.as_raw_fd()) else {
                return false;
            };
            if writing {
                // A writer of a set-user-ID / set-group-ID file goes through FUSE, so
                // the kernel clears the bits by the VFS rule (the caller's groups and
                // capabilities); a passed-through write would clear them as the daemon.
                return st.st_mode & (libc::S_ISUID | libc::S_ISGID) == 0;
            }
            st.st_size >= PASSTHROUGH_MIN
        };
        let grant = self
            .modes
            .acquire(ino, lower, wanted, || self.open_backing(fd.as_fd()));
        match grant {
            Ok(Grant::Passthrough(held)) => {
                let fh = self.opened_handle(ino, fd, lower);
                self.passed.insert(fh.0, ino);
                match held.id() {
                    Some(id) => reply.passthrough(fh, id),
                    None => reply.opened(fh, cached),
                }
            }
            Ok(Grant::Cached) => {
                let fh = self.opened_handle(ino, fd, lower);
                self.passed.insert(fh.0, ino);
                reply.opened(fh, cached);
            }
            Ok(Grant::Stale) => match self.ov.split_node(ino) {
                Ok(_) => reply.error(Errno::ESTALE),
                Err(e) => reply.error(err(e)),
            },
            Err(e) => {
                // No backing file (no privilege, a stacked filesystem): serve I/O here.
                log::warn!("passthrough disabled: {e}");
                self.passthrough.store(false, Ordering::Relaxed);
                self.opened(ino, fd, lower, cached, reply);
            }
        }
    }

    /// Opens a lower file to read by its inode when passthrough is on and the file is
    /// not to be passed through (`io=passthrough`: any lower file; `io=passthrough-all`:
    /// one under [`PASSTHROUGH_MIN`], or refused a shared backing). The handle is 0: its
    /// READs go to the real file kept open per inode (`Overlay::real_file`, as with
    /// `io=inode`), so the OPEN costs no open(2) (only an fstat(2) for the size, with
    /// `io=passthrough-all`) and its RELEASE no close(2), and a read-ahead started at
    /// LOOKUP (module `prefetch`) is on the file the READ uses. A copy-up drops that
    /// real file, so the open follows it (as a handle does, `follow_copy_up`). The open
    /// is counted in the I/O modes: a cached open keeps the inode from being passed
    /// through, and it joins a lower backing file already passed through.
    /// Gives the reply back when the open is not one of these.
    fn open_lower_by_inode<R: OpenReply>(&self, ino: u64, flags: i32, reply: R) -> Option<R> {
        if !self.passthrough.load(Ordering::Relaxed)
            || flags & libc::O_ACCMODE != libc::O_RDONLY
            || flags & libc::O_TRUNC != 0
            || !self.ov.is_lower(ino)
        {
            return Some(reply);
        }
        let Ok(file) = self.ov.real_file(ino, false) else {
            return Some(reply);
        };
        let may_pass = self.io == IoStrategy::PassthroughAll
            && self.ov.node(ino).is_ok_and(|n| !n.shared_backing_refused());
        if may_pass {
            match crate::sys::fstat(file.fd.as_raw_fd()) {
                Ok(st)
                    if st.st_size < PASSTHROUGH_MIN
                        && st.st_mode & libc::S_IFMT == libc::S_IFREG => {}
                _ => return Some(reply),
            }
        }
        let keep = FopenFlags::FOPEN_KEEP_CACHE;
        let no_backing = || Err(std::io::Error::other("not passed through"));
        match self.modes.acquire(ino, true, || false, no_backing) {
            Ok(Grant::Passthrough(held)) => match held.id() {
                Some(id) => reply.passthrough(FileHandle(0), id),
                None => reply.opened(FileHandle(0), keep),
            },
            Ok(Grant::Cached) => reply.opened(FileHandle(0), keep),
            Ok(Grant::Stale) | Err(_) => return Some(reply),
        }
        None
    }

    /// The handle of an open of `ino` served here: its fd, remembered as a lower
    /// file's when `lower` (to follow a copy-up).
    fn opened_handle(&self, ino: u64, fd: OwnedFd, lower: bool) -> FileHandle {
        let fh = fd.into_raw_fd() as u64;
        if lower {
            self.lower_fhs.insert(fh, ino);
        }
        FileHandle(fh)
    }

    /// Replies to an open served here, not counted in the I/O modes.
    fn opened(&self, ino: u64, fd: OwnedFd, lower: bool, flags: FopenFlags, r: impl OpenReply) {
        r.opened(self.opened_handle(ino, fd, lower), flags);
    }

    /// Moves an open handle of a lower file that has since been copied up onto the
    /// upper copy (in place: the handle's fd number stays), as kernel overlayfs does
    /// for files opened before a copy-up. One map lookup for handles of lower files.
    fn follow_copy_up(&self, fh: u64) {
        let Some(ino) = self.lower_fhs.get(&fh).map(|e| *e) else {
            return;
        };
        if self.ov.is_lower(ino) {
            return;
        }
        if let Ok((upper, false)) = self.ov.open(ino, libc::O_RDONLY) {
            if crate::sys::io::replace_fd(upper.as_raw_fd(), fh as i32).is_ok() {
                self.lower_fhs.remove(&fh);
            }
        }
    }

    /// The listing a READDIR(PLUS) at `offset` continues, with its key in `dirs`. It is
    /// snapshotted when read from the start and kept for the reads that continue it, so
    /// offsets stay stable across seekdir/telldir. With `may_stream`, the listing of a
    /// large directory whose lowers are not cached yet is served while being read.
    fn listing(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        may_stream: bool,
    ) -> Result<(u64, Arc<DirListing>), Errno> {
        let key = if fh.0 == 0 {
            ino.0 | LISTING_BY_INO
        } else {
            fh.0
        };
        if offset != 0 {
            if let Some(l) = self.dirs.get(&key) {
                return Ok((key, l.clone()));
            }
        }
        let l = if may_stream && self.ov.list_is_large(ino.0, LARGE_LISTING_BYTES) {
            let ov = self.ov.clone();
            DirListing::filled_in_background(move |emit| ov.list_with(ino.0, emit))
        } else {
            let mut l = self.ov.list(ino.0).map_err(err)?;
            // Subdirectories first (a listing's order is the filesystem's to choose):
            // the first READDIRPLUS chunk can then carry them alone (see `readdirplus`).
            l.sort_by_key(2, |e| e.d_type != libc::DT_DIR);
            DirListing::complete(l)
        };
        if fh.0 == 0 && self.dirs.len() >= MAX_INO_LISTINGS {
            self.dirs.retain(|k, _| k & LISTING_BY_INO == 0);
        }
        self.dirs.insert(key, l.clone());
        Ok((key, l))
    }

    /// After a reply from the listing under `key`: a read past its end drops a listing
    /// kept by inode (no releasedir will come for it).
    fn listing_read(&self, key: u64, fh: FileHandle, added: bool) {
        if !added && fh.0 == 0 {
            self.dirs.remove(&key);
        }
    }

    /// Registers `fd` as a backing file on the session's device.
    fn open_backing(&self, fd: BorrowedFd<'_>) -> std::io::Result<BackingFile> {
        let dev = self
            .device
            .get()
            .ok_or_else(|| std::io::Error::other("no FUSE device attached"))?;
        BackingFile::open(dev, fd)
    }

    fn entry(&self, reply: impl EntryReply, node: &Node, st: &Stat) {
        let generation = Generation(node.generation());
        let id = self.ov.entry_id(node);
        if id == node.ino() {
            return reply.entry(&self.ttl, &self.attr(st), generation);
        }
        // An alias: a reply sends the attributes' inode number as the node id, so these
        // carry the alias; expired at once, they are fetched again (GETATTR reports
        // the object's own inode number) before anything reads them.
        let mut a = self.attr(st);
        a.ino = INodeNo(id);
        reply.entry_with_ttls(&Duration::ZERO, &self.ttl, &a, generation);
    }
}

/// The largest write the kernel may send (and read it may ask for) in one request.
pub(crate) const MAX_WRITE: u32 = 1 << 20;

/// Readahead the kernel may do per file, asked for at INIT.
pub(crate) const MAX_READAHEAD: u32 = 1 << 20;

/// The payload buffer an io_uring entry needs: the kernel's `max_payload_sz` for
/// what INIT settles (fuser derives `max_pages` from max_write and max_readahead).
pub fn ring_payload_size() -> usize {
    let page = crate::sys::process::page_size();
    let max_pages = (MAX_WRITE.max(MAX_READAHEAD) as usize - 1) / page + 1;
    (8192usize).max(MAX_WRITE as usize).max(max_pages * page)
}

/// Marks listings kept by inode (no-opendir) apart from those kept by open handle.
const LISTING_BY_INO: u64 = 1 << 63;

/// Listings by inode abandoned mid-way are dropped beyond this many.
const MAX_INO_LISTINGS: usize = 4096;

/// Lower directories taking more than this on disk (ext4: some 2000 short names) are
/// listed on a thread of their own, served to the kernel while being read.
const LARGE_LISTING_BYTES: u64 = 64 << 10;

/// Files at least this big are passed through when opened read-only.
const PASSTHROUGH_MIN: i64 = 64 * 1024;

fn xattr_reply(reply: impl XattrReply, v: &[u8], size: u32) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}
