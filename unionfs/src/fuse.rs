//! The `fuser::Filesystem` adapter: translates FUSE requests into overlay operations.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::backing::{Grant, IoModes};
use crate::caller::{Caller, has_privilege_bits};
use crate::files::RealFile;
use crate::idmap::IdMapper;
use crate::node::Node;
use crate::options::IoStrategy;
use crate::overlay::{ListEntry, NewObject, Overlay};
use crate::plus::PlusPolicy;
use crate::sys::Stat;

/// The FUSE side of a mounted overlay.
#[derive(Debug)]
pub struct OverlayFs {
    ov: Arc<Overlay>,
    ttl: Duration,
    /// Directory listings being read, by open handle, or by inode (high bit set) when
    /// the kernel opens directories without asking (no-opendir).
    dirs: DashMap<u64, Arc<Vec<ListEntry>>>,
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
    /// The kernel leaves clearing set-user-ID and set-group-ID bits on write and
    /// truncate to us (`FUSE_HANDLE_KILLPRIV_V2`), and stops asking for
    /// `security.capability` before every write.
    killpriv: AtomicBool,
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
            killpriv: AtomicBool::new(false),
        }
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
            // SAFETY: fchmod on an fd the caller holds open.
            if unsafe { libc::fchmod(fd, mode) } < 0 {
                return Err(last_err());
            }
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

/// The errno of the last failed libc call.
fn last_err() -> Errno {
    err(std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO))
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
    // SAFETY: an all-zero struct stat is a valid value.
    let mut st: Stat = unsafe { std::mem::zeroed() };
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
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        obj: NewObject<'_>,
        reply: ReplyEntry,
    ) {
        let (uid, gid) = (self.disk_uid(req.uid()), self.disk_gid(req.gid()));
        match self.ov.make(parent.0, name, obj, uid, gid) {
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
                        .map_or(true, |n| n.shared_backing_refused.load(Ordering::Relaxed)))
            {
                return false;
            }
            writing
                || crate::sys::fstat(fd.as_raw_fd()).is_ok_and(|st| st.st_size >= PASSTHROUGH_MIN)
        };
        let grant = self
            .modes
            .acquire(ino, lower, wanted, || reply.open_backing(fd.as_fd()));
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
            // SAFETY: both fds are open; dup3 atomically replaces the handle's fd.
            if unsafe { libc::dup3(upper.as_raw_fd(), fh as i32, libc::O_CLOEXEC) } >= 0 {
                self.lower_fhs.remove(&fh);
            }
        }
    }

    /// The listing a READDIR(PLUS) at `offset` continues, with its key in `dirs`. It is
    /// snapshotted when read from the start and kept for the reads that continue it, so
    /// offsets stay stable across seekdir/telldir.
    fn listing(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
    ) -> Result<(u64, Arc<Vec<ListEntry>>), Errno> {
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
        let mut l = self.ov.list(ino.0).map_err(err)?;
        // Subdirectories first (a listing's order is the filesystem's to choose): the
        // first READDIRPLUS chunk can then carry them alone (see `readdirplus`).
        if let Some(entries) = l.get_mut(2..) {
            entries.sort_by_key(|e| e.d_type != libc::DT_DIR);
        }
        let l = Arc::new(l);
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

    fn entry(&self, reply: ReplyEntry, node: &Node, st: &Stat) {
        let generation = Generation(node.generation.load(Ordering::Relaxed));
        let id = self.ov.entry_id(node);
        if id == node.ino {
            return reply.entry(&self.ttl, &self.attr(st), generation);
        }
        // An alias: fuser sends the attributes' inode number as the node id, so these
        // carry the alias; expired at once, they are fetched again (GETATTR reports
        // the object's own inode number) before anything reads them.
        let mut a = self.attr(st);
        a.ino = INodeNo(id);
        reply.entry_with_ttls(&Duration::ZERO, &self.ttl, &a, generation);
    }
}

/// Asks for `cap` when the kernel offers it; true when it is on.
fn take(config: &mut KernelConfig, cap: InitFlags) -> bool {
    config.capabilities().contains(cap) && config.add_capabilities(cap).is_ok()
}

impl Filesystem for OverlayFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        // Lookups and listings in one directory may run in parallel (the overlay locks
        // per node); symlink targets are cached; directories are opened by the kernel
        // itself with their listings cached (no OPENDIR/RELEASEDIR round trips).
        // READDIRPLUS hands out attributes with listings: the kernel asks for it on a
        // directory's first chunk and keeps asking while the listed names get used
        // (AUTO), so a plain `ls` of a huge directory does not stat every entry.
        for cap in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
        ] {
            take(config, cap);
        }
        if take(config, InitFlags::FUSE_NO_OPENDIR_SUPPORT) {
            self.no_opendir.store(true, Ordering::Relaxed);
        }
        // io=inode: opens cost no round trip; the first OPEN is answered ENOSYS and the
        // kernel sends no more (nor RELEASE), keeping file pages cached across opens.
        if self.io == IoStrategy::Inode && take(config, InitFlags::FUSE_NO_OPEN_SUPPORT) {
            self.no_open.store(true, Ordering::Relaxed);
        }
        // io=passthrough lets the kernel read and write the real file directly (page
        // cache shared with the layer's own files); it needs kernel support and
        // CAP_SYS_ADMIN for the backing-file ioctl.
        // SAFETY: geteuid has no failure mode.
        let root = unsafe { libc::geteuid() } == 0;
        if root
            && self.io.passes_through()
            && take(config, InitFlags::FUSE_PASSTHROUGH)
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        // Privilege bits are cleared here (write flags, truncation), so the kernel
        // marks inodes it found plain and stops sending a GETXATTR of
        // `security.capability` before each write. Not with passthrough: its writes
        // never reach us, and the kernel then clears nothing either.
        if !self.passthrough.load(Ordering::Relaxed)
            && take(config, InitFlags::FUSE_HANDLE_KILLPRIV_V2)
        {
            self.killpriv.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.ov.lookup(parent.0, name) {
            Ok((node, st)) => {
                self.plus.looked_up(req.pid(), parent.0, node.is_dir);
                self.entry(reply, &node, &st)
            }
            // A negative entry (node id 0) lets the kernel cache "no such name" for the
            // TTL: every change of the tree goes through this mount and updates it.
            Err(libc::ENOENT) => {
                // SAFETY: an all-zero struct stat is a valid value.
                let zero: Stat = unsafe { std::mem::zeroed() };
                let mut a = attr(&zero);
                a.ino = INodeNo(0);
                reply.entry(&self.ttl, &a, Generation(0));
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.ov.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let node = match self.ov.node(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(err(e)),
        };
        if let Some(fh) = fh.filter(|f| f.0 != 0 && !node.is_dir) {
            self.follow_copy_up(fh.0);
            if let Ok(st) = self.ov.stat_open(&node, fh.0 as i32) {
                return reply.attr(&self.ttl, &self.attr(&st));
            }
        }
        match self.ov.stat(&node) {
            Ok(st) => reply.attr(&self.ttl, &self.attr(&st)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let times =
            (atime.is_some() || mtime.is_some()).then(|| [timespec(atime), timespec(mtime)]);
        // A truncation clears privilege bits as a write does.
        let mode = match mode {
            None if size.is_some() && self.killpriv.load(Ordering::Relaxed) => {
                match self.mode_after_truncate(ino.0, req.pid()) {
                    Ok(m) => m,
                    Err(e) => return reply.error(e),
                }
            }
            m => m,
        };
        let (uid, gid) = match (
            uid.map(|u| self.ids.uid_out(u)),
            gid.map(|g| self.ids.gid_out(g)),
        ) {
            (Some(None), _) | (_, Some(None)) => return reply.error(Errno::EINVAL),
            (u, g) => (u.flatten(), g.flatten()),
        };
        match self.ov.setattr(
            ino.0,
            mode,
            uid,
            gid,
            size,
            fh.filter(|f| f.0 != 0).map(|f| f.0 as i32),
            times,
        ) {
            Ok(st) => reply.attr(&self.ttl, &self.attr(&st)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.ov.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask);
        self.make_entry(
            req,
            parent,
            name,
            NewObject::Node {
                mode,
                rdev: rdev as u64,
            },
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.make_entry(
            req,
            parent,
            name,
            NewObject::Dir {
                mode: mode & !umask,
            },
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.ov.remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.ov.remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.make_entry(
            req,
            parent,
            link_name,
            NewObject::Symlink {
                target: target.as_os_str(),
            },
            reply,
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self
            .ov
            .rename(parent.0, name, newparent.0, newname, flags.bits())
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.ov.link(ino.0, newparent.0, newname) {
            Ok((node, st)) => self.entry(reply, &node, &st),
            Err(e) => reply.error(err(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.no_open.load(Ordering::Relaxed) {
            // The kernel opens by itself from now on; I/O comes by inode.
            return reply.error(Errno::ENOSYS);
        }
        match self.ov.open(ino.0, flags.0) {
            Ok((fd, lower)) => self.reply_open(ino.0, fd, flags.0, lower, reply),
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.io_file(ino, fh, false) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let fd = file.raw();
        READ_BUF.with_borrow_mut(|buf| {
            // Grown once per thread to the largest read; no allocation per request.
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            let buf = &mut buf[..size as usize];
            let mut done = 0usize;
            while done < buf.len() {
                // SAFETY: buf is writable for the remaining length; fd is open (held
                // by `file`).
                let n = unsafe {
                    libc::pread(
                        fd,
                        buf[done..].as_mut_ptr().cast(),
                        buf.len() - done,
                        (offset + done as u64) as i64,
                    )
                };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    return reply.error(err(e.raw_os_error().unwrap_or(libc::EIO)));
                }
                if n == 0 {
                    break;
                }
                done += n as usize;
            }
            reply.data(&buf[..done]);
        })
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        wf: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let file = match self.io_file(ino, fh, true) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // The writer lacks CAP_FSETID: privilege bits go before the data changes.
        if wf.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            if let Err(e) = self.clear_privilege_bits(file.raw(), req.pid()) {
                return reply.error(e);
            }
        }
        // SAFETY: data is readable; the fd is open (held by `file`).
        let n =
            unsafe { libc::pwrite(file.raw(), data.as_ptr().cast(), data.len(), offset as i64) };
        if n < 0 {
            return reply.error(last_err());
        }
        reply.written(n as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes go straight to the real file, so close has nothing to flush; ENOSYS
        // tells the kernel never to send FLUSH again (one round trip less per close).
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some((_, ino)) = self.passed.remove(&fh.0) {
            self.modes.release(ino);
        }
        self.lower_fhs.remove(&fh.0);
        // SAFETY: fh is the fd handed out by open/create; the kernel releases it once.
        unsafe { libc::close(fh.0 as i32) };
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let file = match self.io_file(ino, fh, false) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // SAFETY: fsync on an open fd (held by `file`).
        let r = unsafe {
            if datasync {
                libc::fdatasync(file.raw())
            } else {
                libc::fsync(file.raw())
            }
        };
        if r < 0 {
            return reply.error(last_err());
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir.load(Ordering::Relaxed) {
            // The kernel then opens directories itself and caches their listings until
            // a change through this mount (the only writer) invalidates them.
            return reply.error(Errno::ENOSYS);
        }
        match self.ov.node(ino.0) {
            Ok(node) if node.is_dir => {
                let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
                let f = FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE;
                reply.opened(FileHandle(fh), f);
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (key, list) = match self.listing(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut added = false;
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            added = true;
            if reply.add(
                INodeNo(e.ino),
                (i + 1) as u64,
                kind_of_dtype(e.d_type),
                &e.name,
            ) {
                break;
            }
        }
        self.listing_read(key, fh, added);
        reply.ok();
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        // Each entry comes with its attributes and counts as one lookup, so a walk that
        // stats what it lists finds the kernel's dentries ready (one round trip per
        // listing chunk rather than one per name).
        let (key, list) = match self.listing(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        // A process not known to stat what it lists gets ".", ".." and the
        // subdirectories (listed first) alone first: a walk looks those up to descend
        // anyway; the kernel then reads the rest as a plain listing (READDIRPLUS_AUTO).
        let end = if offset == 0 && !self.plus.wants_attributes(req.pid(), ino.0) {
            2 + list[2.min(list.len())..]
                .iter()
                .take_while(|e| e.d_type == libc::DT_DIR)
                .count()
        } else {
            list.len()
        };
        let mut added = false;
        for (i, e) in list.iter().enumerate().take(end).skip(offset as usize) {
            added = true;
            let next = (i + 1) as u64;
            let full = if i < 2 {
                // "." and "..": the kernel links no dentry for them (no lookup counted).
                reply.add(
                    INodeNo(e.ino),
                    next,
                    &e.name,
                    &self.ttl,
                    &bare_attr(e.ino, e.d_type),
                    Generation(0),
                )
            } else {
                match self.ov.lookup(ino.0, &e.name) {
                    Ok((node, st)) => {
                        let generation = Generation(node.generation.load(Ordering::Relaxed));
                        let full = reply.add(
                            INodeNo(node.ino),
                            next,
                            &e.name,
                            &self.ttl,
                            &self.attr(&st),
                            generation,
                        );
                        if full {
                            // Not sent: the kernel will not count this lookup.
                            self.ov.forget(node.ino, 1);
                        }
                        full
                    }
                    // Gone since the listing was taken, or unreadable: the name alone
                    // (node id 0 means "no attributes", not "no such name").
                    Err(_) => reply.add(
                        INodeNo(0),
                        next,
                        &e.name,
                        &self.ttl,
                        &bare_attr(0, e.d_type),
                        Generation(0),
                    ),
                }
            };
            if full {
                break;
            }
        }
        self.listing_read(key, fh, added);
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.ov.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self.ov.setxattr(ino.0, name, value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.ov.getxattr(ino.0, name) {
            Ok(v) => xattr_reply(reply, &v, size),
            Err(e) => reply.error(err(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.ov.listxattr(ino.0) {
            Ok(v) => xattr_reply(reply, &v, size),
            Err(e) => reply.error(err(e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.ov.removexattr(ino.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if self.no_open.load(Ordering::Relaxed) {
            // Without handles CREATE buys nothing over MKNOD, and costs a RELEASE: the
            // kernel falls back to MKNOD and an open of its own.
            return reply.error(Errno::ENOSYS);
        }
        let obj = NewObject::File {
            mode: mode & !umask & 0o7777,
            flags,
        };
        match self.ov.make(
            parent.0,
            name,
            obj,
            self.disk_uid(req.uid()),
            self.disk_gid(req.gid()),
        ) {
            Ok((node, st, Some(fd))) => {
                let created = Created {
                    reply,
                    ttl: self.ttl,
                    attr: self.attr(&st),
                    generation: Generation(node.generation.load(Ordering::Relaxed)),
                };
                self.reply_open(node.ino, fd, flags, false, created);
            }
            Ok((_, _, None)) => reply.error(Errno::EIO),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let file = match self.io_file(ino, fh, true) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // The kernel clears nothing itself with FUSE_HANDLE_KILLPRIV_V2 and sends no
        // flag for fallocate: the caller's own capabilities decide, as for a write.
        if self.killpriv.load(Ordering::Relaxed) {
            if let Err(e) = self.clear_privilege_bits(file.raw(), req.pid()) {
                return reply.error(e);
            }
        }
        // SAFETY: fallocate on an open fd (held by `file`).
        let r = unsafe { libc::fallocate(file.raw(), mode, offset as i64, length as i64) };
        if r < 0 {
            return reply.error(last_err());
        }
        reply.ok();
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        let file = match self.io_file(ino, fh, false) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // SAFETY: lseek on an open fd (held by `file`); only SEEK_DATA/SEEK_HOLE reach
        // the daemon, whose answer does not depend on the fd's own offset.
        let r = unsafe { libc::lseek(file.raw(), offset, whence) };
        if r < 0 {
            return reply.error(last_err());
        }
        reply.offset(r);
    }
}

thread_local! {
    /// Each worker thread's buffer for READ replies.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks listings kept by inode (no-opendir) apart from those kept by open handle.
const LISTING_BY_INO: u64 = 1 << 63;

/// Listings by inode abandoned mid-way are dropped beyond this many.
const MAX_INO_LISTINGS: usize = 4096;

/// Files at least this big are passed through when opened read-only.
const PASSTHROUGH_MIN: i64 = 64 * 1024;

/// What open and create replies share: a plain or a passthrough open, or an error.
trait OpenReply {
    fn open_backing(&self, fd: BorrowedFd<'_>) -> std::io::Result<BackingId>;
    fn opened(self, fh: FileHandle, flags: FopenFlags);
    fn passthrough(self, fh: FileHandle, id: &BackingId);
    fn error(self, e: Errno);
}

impl OpenReply for ReplyOpen {
    fn open_backing(&self, fd: BorrowedFd<'_>) -> std::io::Result<BackingId> {
        ReplyOpen::open_backing(self, fd)
    }
    fn opened(self, fh: FileHandle, flags: FopenFlags) {
        ReplyOpen::opened(self, fh, flags);
    }
    fn passthrough(self, fh: FileHandle, id: &BackingId) {
        self.opened_passthrough(fh, FopenFlags::empty(), id);
    }
    fn error(self, e: Errno) {
        ReplyOpen::error(self, e);
    }
}

/// A create's reply with the new entry it carries.
struct Created {
    reply: ReplyCreate,
    ttl: Duration,
    attr: FileAttr,
    generation: Generation,
}

impl OpenReply for Created {
    fn open_backing(&self, fd: BorrowedFd<'_>) -> std::io::Result<BackingId> {
        self.reply.open_backing(fd)
    }
    fn opened(self, fh: FileHandle, flags: FopenFlags) {
        self.reply
            .created(&self.ttl, &self.attr, self.generation, fh, flags);
    }
    fn passthrough(self, fh: FileHandle, id: &BackingId) {
        self.reply.created_passthrough(
            &self.ttl,
            &self.attr,
            self.generation,
            fh,
            FopenFlags::empty(),
            id,
        );
    }
    fn error(self, e: Errno) {
        self.reply.error(e);
    }
}

fn xattr_reply(reply: ReplyXattr, v: &[u8], size: u32) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}
