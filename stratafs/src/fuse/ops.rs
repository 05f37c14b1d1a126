//! The request handlers, one per FUSE operation, written once for every transport:
//! each takes the caller (`Who`) and a reply of the kind the operation answers with.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, OpenFlags,
    RenameFlags, TimeOrNow, WriteFlags,
};

use super::reply::*;
use super::*;
use crate::daemon::options::IoStrategy;
use crate::overlay::NewObject;

/// Entries at most in a listing given bare whose kernel cache may be dropped for a
/// process that stats what it lists (see `plus`): a getdents of 32 KiB takes it whole.
const SMALL_BARE_LISTING: usize = 512;

/// Asks for `cap` when the kernel offers it; true when it is on.
fn take(config: &mut KernelConfig, cap: InitFlags) -> bool {
    config.capabilities().contains(cap) && config.add_capabilities(cap).is_ok()
}

/// What a SETATTR changes (each field: unchanged when `None`).
#[derive(Debug, Default)]
pub(crate) struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    pub fh: Option<FileHandle>,
}

// One parameter per field of the request, as fuser passes them.
#[allow(clippy::too_many_arguments)]
impl OverlayFs {
    pub(crate) fn init(&self, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_READAHEAD);
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
        // Creates get the caller's umask unapplied (FUSE_DONT_MASK): the upper file
        // system applies it, or the parent's default ACL instead (FUSE_POSIX_ACL, which
        // also has the kernel check ACLs), as kernel overlayfs gives.
        take(config, InitFlags::FUSE_DONT_MASK);
        if self.posix_acl.load(Ordering::Relaxed) {
            take(config, InitFlags::FUSE_POSIX_ACL);
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
        let root = sys::process::is_root();
        if root
            && self.io.passes_through()
            && take(config, InitFlags::FUSE_PASSTHROUGH)
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        // Privilege bits are cleared here (write flags, truncation), by the VFS rule
        // (the caller's groups and capabilities; FUSE's own rule would keep a
        // set-group-ID bit without group execute), and the kernel marks inodes it found
        // plain and stops sending a GETXATTR of `security.capability` before each write.
        // With passthrough too: a writer of a file with such a bit is never passed
        // through (`reply_open`), so its writes come here.
        if take(config, InitFlags::FUSE_HANDLE_KILLPRIV_V2) {
            self.killpriv.store(true, Ordering::Relaxed);
        }
        // Requests through per-CPU io_uring queues once they are registered (see
        // `crate::transport`); offered by the kernel only with the fuse module's
        // `enable_uring` on.
        if self.uring_ready.load(Ordering::Relaxed) && take(config, InitFlags::FUSE_OVER_IO_URING) {
            self.uring.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, req: &Who, parent: INodeNo, name: &OsStr, reply: impl EntryReply) {
        match self.ov.lookup(parent.0, name) {
            Ok((node, st)) => {
                let learned = self.plus.looked_up(req.pid(), parent.0, node.is_dir());
                self.read_ahead_at_lookup(req, &node, &st);
                self.entry(reply, &node, &st);
                if learned {
                    self.drop_bare_listings();
                }
            }
            // A negative entry (node id 0) lets the kernel cache "no such name" for the
            // TTL: every change of the tree goes through this mount and updates it.
            Err(libc::ENOENT) => {
                let mut a = attr(&sys::io::zeroed_stat());
                a.ino = INodeNo(0);
                reply.entry(&self.ttl, &a, Generation(0));
            }
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn forget(&self, ino: INodeNo, nlookup: u64) {
        self.ov.forget(ino.0, nlookup);
    }

    pub(crate) fn getattr(&self, ino: INodeNo, fh: Option<FileHandle>, reply: impl AttrReply) {
        let node = match self.ov.node(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(err(e)),
        };
        if let Some(fh) = fh.filter(|f| f.0 != 0 && !node.is_dir()) {
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

    pub(crate) fn setattr(&self, req: &Who, ino: INodeNo, change: SetAttr, reply: impl AttrReply) {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh,
        } = change;
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

    pub(crate) fn readlink(&self, ino: INodeNo, reply: impl DataReply) {
        match self.ov.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn mknod(
        &self,
        req: &Who,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: impl EntryReply,
    ) {
        self.make_entry(
            req,
            parent,
            name,
            NewObject::Node {
                mode,
                rdev: rdev as u64,
            },
            umask,
            reply,
        );
    }

    pub(crate) fn mkdir(
        &self,
        req: &Who,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: impl EntryReply,
    ) {
        self.make_entry(req, parent, name, NewObject::Dir { mode }, umask, reply);
    }

    pub(crate) fn unlink(&self, parent: INodeNo, name: &OsStr, reply: impl EmptyReply) {
        self.plus.changed(parent.0);
        match self.ov.remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn rmdir(&self, parent: INodeNo, name: &OsStr, reply: impl EmptyReply) {
        self.plus.changed(parent.0);
        match self.ov.remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn symlink(
        &self,
        req: &Who,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: impl EntryReply,
    ) {
        self.make_entry(
            req,
            parent,
            link_name,
            NewObject::Symlink {
                target: target.as_os_str(),
            },
            0,
            reply,
        );
    }

    pub(crate) fn rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: impl EmptyReply,
    ) {
        self.plus.changed(parent.0);
        self.plus.changed(newparent.0);
        match self
            .ov
            .rename(parent.0, name, newparent.0, newname, flags.bits())
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn link(
        &self,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: impl EntryReply,
    ) {
        self.plus.changed(newparent.0);
        match self.ov.link(ino.0, newparent.0, newname) {
            Ok((node, st)) => self.entry(reply, &node, &st),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn open(&self, ino: INodeNo, flags: OpenFlags, reply: impl OpenReply) {
        if self.no_open.load(Ordering::Relaxed) {
            // The kernel opens by itself from now on; I/O comes by inode.
            return reply.error(Errno::ENOSYS);
        }
        let reply = match self.open_lower_by_inode(ino.0, flags.0, reply) {
            Some(r) => r,
            None => return,
        };
        match self.ov.open(ino.0, flags.0) {
            Ok((fd, lower)) => self.reply_open(ino.0, fd, flags.0, lower, reply),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn read(
        &self,
        req: &Who,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: impl DataReply,
    ) {
        if offset == 0 {
            self.reads.read_start(req.pid(), ino.0);
        }
        let file = match self.io_file(ino, fh, false) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let fd = file.raw();
        reply.read_with(size as usize, |buf| {
            sys::io::pread_full(fd, buf, offset).map_err(|e| io_err(&e))
        })
    }

    pub(crate) fn write(
        &self,
        req: &Who,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        wf: WriteFlags,
        reply: impl WriteReply,
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
        match sys::io::pwrite(file.raw(), data, offset) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(io_err(&e)),
        }
    }

    pub(crate) fn flush(&self, reply: impl EmptyReply) {
        // Writes go straight to the real file, so close has nothing to flush; ENOSYS
        // tells the kernel never to send FLUSH again (one round trip less per close).
        reply.error(Errno::ENOSYS);
    }

    pub(crate) fn release(&self, ino: INodeNo, fh: FileHandle, reply: impl EmptyReply) {
        if fh.0 == 0 {
            // An open served by inode (`open_lower_by_inode`): no file of its own.
            self.modes.release(ino.0);
            return reply.ok();
        }
        if let Some((_, ino)) = self.passed.remove(&fh.0) {
            self.modes.release(ino);
        }
        self.lower_fhs.remove(&fh.0);
        sys::io::close_handle(fh.0 as i32);
        reply.ok();
    }

    pub(crate) fn fsync(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: impl EmptyReply,
    ) {
        let file = match self.io_file(ino, fh, false) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        match sys::io::fsync(file.raw(), datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(io_err(&e)),
        }
    }

    pub(crate) fn opendir(&self, ino: INodeNo, reply: impl OpenReply) {
        if self.no_opendir.load(Ordering::Relaxed) {
            // The kernel then opens directories itself and caches their listings until
            // a change through this mount (the only writer) invalidates them.
            return reply.error(Errno::ENOSYS);
        }
        match self.ov.node(ino.0) {
            Ok(node) if node.is_dir() => {
                let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
                let f = FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE;
                reply.opened(FileHandle(fh), f);
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn readdir(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: impl DirReply,
    ) {
        let (key, list) = match self.listing(ino, fh, offset, true) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let added = list.read(offset as usize, |i, name, e| {
            reply.add(
                INodeNo(e.ino),
                (i + 1) as u64,
                kind_of_dtype(e.d_type),
                OsStr::from_bytes(name),
            )
        });
        match added {
            Ok(added) => {
                self.listing_read(key, fh, added);
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    /// Starts reading a small file's data when the process looking it up reads the
    /// files it looks up (module `prefetch`): the disk works while the reply and the
    /// READ travel. With `io=inode`, where the READ uses the real file opened here, and
    /// with passthrough, where a lower file's open uses it too (`open_lower_by_inode`)
    /// and another open of the file shares its page cache.
    fn read_ahead_at_lookup(&self, req: &Who, node: &Node, st: &Stat) {
        let small_file = st.st_mode & libc::S_IFMT == libc::S_IFREG
            && st.st_size > 0
            && st.st_size <= prefetch::PREFETCH_MAX;
        if !small_file
            || !(self.no_open.load(Ordering::Relaxed) || self.passthrough.load(Ordering::Relaxed))
            || !self.reads.looked_up_file(req.pid(), node.ino())
        {
            return;
        }
        if let Ok(f) = self.ov.real_file(node.ino(), false) {
            // A failure only costs the READ its wait for the disk.
            let _ = sys::io::readahead(f.fd.as_raw_fd(), 0, st.st_size as usize);
        }
    }

    /// Has the kernel drop the listings it caches without attributes, so the next
    /// listings of a process that stats what it lists come here (module `plus`).
    fn drop_bare_listings(&self) {
        let Some(dev) = self.device.get() else {
            return;
        };
        for dir in self.plus.take_bare_dirs() {
            if self.dirs.contains_key(&(dir | LISTING_BY_INO)) {
                // The kernel has not read this listing to its end: a reader is in the
                // middle of it, and goes on from the listing kept here.
                continue;
            }
            // ENOENT: the kernel no longer holds that directory; nothing to drop.
            let _ = sys::fuse_dev::notify_inval_inode(&**dev, dir);
        }
    }

    pub(crate) fn readdirplus(
        &self,
        req: &Who,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: impl DirPlusReply,
    ) {
        // Each entry comes with its attributes and counts as one lookup, so a walk that
        // stats what it lists finds the kernel's dentries ready (one round trip per
        // listing chunk rather than one per name).
        // A process not known to stat what it lists gets attributes for ".", ".." and
        // the subdirectories alone (a walk looks those up to descend anyway) and the
        // other names bare, so a small directory is listed in one round trip plus the
        // one that finds its end; the kernel reads what does not fit as a plain
        // listing (READDIRPLUS_AUTO); subdirectories are listed first, so a large
        // directory's come with attributes too.
        let names_only = offset == 0 && !self.plus.wants_attributes(req.pid(), ino.0);
        let (key, list) = match self.listing(ino, fh, offset, names_only) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let added = list.read(offset as usize, |i, name, e| {
            let name = OsStr::from_bytes(name);
            let next = (i + 1) as u64;
            if i < 2 {
                // "." and "..": the kernel links no dentry for them (no lookup counted).
                return reply.add(
                    INodeNo(e.ino),
                    next,
                    name,
                    &self.ttl,
                    &bare_attr(e.ino, e.d_type),
                    Generation(0),
                );
            }
            if names_only && e.d_type != libc::DT_DIR {
                return reply.add_name(e.ino, next, name, e.d_type);
            }
            match self.ov.lookup(ino.0, name) {
                Ok((node, st)) => {
                    let generation = Generation(node.generation());
                    let full = reply.add(
                        INodeNo(node.ino()),
                        next,
                        name,
                        &self.ttl,
                        &self.attr(&st),
                        generation,
                    );
                    if full {
                        // Not sent: the kernel will not count this lookup.
                        self.ov.forget(node.ino(), 1);
                    }
                    full
                }
                // Gone since the listing was taken, or unreadable: the name alone.
                Err(_) => reply.add_name(e.ino, next, name, e.d_type),
            }
        });
        match added {
            Ok(added) => {
                if names_only && list.is_small(SMALL_BARE_LISTING) {
                    self.plus.listed_bare(ino.0);
                }
                self.listing_read(key, fh, added);
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    pub(crate) fn releasedir(&self, fh: FileHandle, reply: impl EmptyReply) {
        self.dirs.remove(&fh.0);
        reply.ok();
    }

    pub(crate) fn fsyncdir(&self, reply: impl EmptyReply) {
        reply.ok();
    }

    pub(crate) fn statfs(&self, reply: impl StatfsReply) {
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

    pub(crate) fn setxattr(
        &self,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        reply: impl EmptyReply,
    ) {
        if self.no_xattrs {
            return reply.error(Errno::ENOTSUP);
        }
        match self.ov.setxattr(ino.0, name, value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn getxattr(&self, ino: INodeNo, name: &OsStr, size: u32, reply: impl XattrReply) {
        if self.no_xattrs {
            return reply.error(Errno::ENOTSUP);
        }
        match self.ov.getxattr(ino.0, name) {
            Ok(v) => xattr_reply(reply, &v, size),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn listxattr(&self, ino: INodeNo, size: u32, reply: impl XattrReply) {
        if self.no_xattrs {
            return reply.error(Errno::ENOTSUP);
        }
        match self.ov.listxattr(ino.0) {
            Ok(v) => xattr_reply(reply, &v, size),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn removexattr(&self, ino: INodeNo, name: &OsStr, reply: impl EmptyReply) {
        if self.no_xattrs {
            return reply.error(Errno::ENOTSUP);
        }
        match self.ov.removexattr(ino.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn access(&self, reply: impl EmptyReply) {
        reply.ok();
    }

    pub(crate) fn create(
        &self,
        req: &Who,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: impl CreateReply,
    ) {
        if self.no_open.load(Ordering::Relaxed) {
            // Without handles CREATE buys nothing over MKNOD, and costs a RELEASE: the
            // kernel falls back to MKNOD and an open of its own.
            return reply.error(Errno::ENOSYS);
        }
        self.plus.changed(parent.0);
        let obj = NewObject::File {
            mode: mode & 0o7777,
            flags,
        };
        match self.ov.make(
            parent.0,
            name,
            obj,
            self.disk_uid(req.uid()),
            self.disk_gid(req.gid()),
            umask,
        ) {
            Ok((node, st, Some(fd))) => self.reply_created(&node, &st, fd, flags, reply),
            Ok((_, _, None)) => reply.error(Errno::EIO),
            Err(e) => reply.error(err(e)),
        }
    }

    /// Answers a CREATE or TMPFILE: the new entry and its open file.
    fn reply_created(
        &self,
        node: &crate::node::Node,
        st: &Stat,
        fd: std::os::fd::OwnedFd,
        flags: i32,
        reply: impl CreateReply,
    ) {
        let created = Created {
            reply,
            ttl: self.ttl,
            attr: self.attr(st),
            generation: Generation(node.generation()),
        };
        self.reply_open(node.ino(), fd, flags, false, created);
    }

    /// open(O_TMPFILE): answered with a handle whatever the I/O strategy (an ENOSYS
    /// here would make the kernel refuse O_TMPFILE from then on).
    pub(crate) fn tmpfile(
        &self,
        req: &Who,
        parent: INodeNo,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: impl CreateReply,
    ) {
        let (uid, gid) = (self.disk_uid(req.uid()), self.disk_gid(req.gid()));
        match self.ov.tmpfile(parent.0, mode, flags, uid, gid, umask) {
            Ok((node, st, fd)) => self.reply_created(&node, &st, fd, flags, reply),
            Err(e) => reply.error(err(e)),
        }
    }

    pub(crate) fn fallocate(
        &self,
        req: &Who,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: impl EmptyReply,
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
        match sys::io::fallocate(file.raw(), mode, offset as i64, length as i64) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(io_err(&e)),
        }
    }

    pub(crate) fn lseek(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: impl LseekReply,
    ) {
        let file = match self.io_file(ino, fh, false) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // Only SEEK_DATA/SEEK_HOLE reach the daemon, whose answer does not depend on the
        // fd's own offset.
        match sys::io::lseek(file.raw(), offset, whence) {
            Ok(r) => reply.offset(r),
            Err(e) => reply.error(io_err(&e)),
        }
    }
}
