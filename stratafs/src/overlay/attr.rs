//! Attributes and file access: setattr (with owner records), readlink, opening real
//! files for I/O, forget, statfs. What the kernel asks of an existing object.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use crate::files::RealFile;
use crate::node::Loc;
use crate::override_stat::{self, OverrideKind};
use crate::sys::{self, Stat};

use super::{OvResult, Overlay, errno};

impl Overlay {
    /// Applies a setattr: copies up first.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        fh: Option<i32>,
        times: Option<[libc::timespec; 2]>,
    ) -> OvResult<Stat> {
        let node = self.node(ino)?;
        self.make_writable(&node)?;
        let (ufd, path) = self.real(&node)?;
        let recorded = match self.upper_override() {
            Some(kind) if uid.is_some() || gid.is_some() || mode.is_some() => {
                self.record_owner(kind, ufd, &path, uid, gid, mode)?
            }
            _ => false,
        };
        if !recorded && (uid.is_some() || gid.is_some()) {
            sys::lchown_at(ufd, &path, uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))
                .map_err(errno)?;
        }
        if let (false, Some(mode)) = (recorded, mode) {
            sys::chmod_at(ufd, &path, mode & 0o7777).map_err(errno)?;
        }
        if let Some(size) = size {
            match fh {
                Some(fd) => sys::io::ftruncate(fd, size),
                None => {
                    let f = sys::open_beneath(ufd, &path, libc::O_WRONLY, 0).map_err(errno)?;
                    sys::io::ftruncate(f.as_raw_fd(), size)
                }
            }
            .map_err(errno)?;
        }
        if let Some(t) = times {
            sys::utimens_at(ufd, &path, &t).map_err(errno)?;
        }
        self.stat(&node)
    }

    /// chown/chmod of the upper object at `path` as fuse-overlayfs does with an override
    /// kind: the record gets the new owner and mode (what it does not change is taken
    /// from the record, else from the file), the file itself stays as it is. False for
    /// a symlink, which carries no record and is chowned for real.
    fn record_owner(
        &self,
        kind: OverrideKind,
        fd: BorrowedFd<'_>,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> OvResult<bool> {
        let mut st = sys::lstat_at(fd, path).map_err(errno)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Ok(false);
        }
        override_stat::read_into(kind, fd, path, &mut st);
        let v = override_stat::format(
            uid.unwrap_or(st.st_uid),
            gid.unwrap_or(st.st_gid),
            mode.unwrap_or(st.st_mode),
        );
        sys::set_xattr(fd, path, kind.xattr(), v.as_bytes(), 0).map_err(errno)?;
        Ok(true)
    }

    /// Reads a symlink's target.
    pub fn readlink(&self, ino: u64) -> OvResult<Vec<u8>> {
        let node = self.node(ino)?;
        let (fd, path) = self.real(&node)?;
        sys::readlink_at(fd, &path).map_err(errno)
    }

    /// Opens the real file for I/O; modifying opens copy up first. Returns the fd and
    /// whether the file is lower-only (immutable: the kernel may keep its cache).
    pub fn open(&self, ino: u64, flags: i32) -> OvResult<(OwnedFd, bool)> {
        let node = self.node(ino)?;
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            if !self.writable() {
                return Err(libc::EROFS);
            }
            self.make_writable(&node)?;
        }
        let (fd, path) = self.real(&node)?;
        let lower = node.state.read().loc.is_lower();
        let f = sys::open_beneath(
            fd,
            &path,
            flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY),
            0,
        )
        .map_err(errno)?;
        Ok((f, lower))
    }

    /// The real file of `ino` for I/O without a FUSE handle: kept open across requests
    /// (see `files`); for `write` the file is copied up first and opened read-write.
    pub fn real_file(&self, ino: u64, write: bool) -> OvResult<Arc<RealFile>> {
        if let Some(f) = self.files.get(ino, write) {
            return Ok(f);
        }
        let node = self.node(ino)?;
        if node.is_dir() {
            return Err(libc::EISDIR);
        }
        if write {
            if !self.writable() {
                return Err(libc::EROFS);
            }
            self.make_writable(&node)?;
        }
        let lower = node.state.read().loc.is_lower();
        let (dir, path) = self.real(&node)?;
        let fd = if write {
            sys::open_beneath(dir, &path, libc::O_RDWR, 0)
                .or_else(|_| sys::open_beneath(dir, &path, libc::O_WRONLY, 0))
        } else {
            sys::open_beneath(dir, &path, libc::O_RDONLY, 0)
        }
        .map_err(errno)?;
        let file = self.files.insert(
            ino,
            RealFile {
                fd,
                writable: write,
            },
        );
        // A copy-up that finished while this lower file was being opened has already
        // cleared the cache: drop the stale entry (the caller's read still sees data
        // equal to the copy's).
        if lower && !node.state.read().loc.is_lower() {
            self.files.remove_if_same(ino, &file);
        }
        Ok(file)
    }

    /// Drops `n` kernel references to `ino`; a node no longer referenced goes, with
    /// any real file kept open for it.
    pub fn forget(&self, ino: u64, n: u64) {
        if let Some(gone) = self.nodes.forget(ino, n) {
            self.files.remove(gone.ino());
            if let (Loc::Orphan(name), Ok(wfd)) = (&gone.state.read().loc, self.work_fd()) {
                // Its last user is gone: so is the object, as on any file system.
                let _ = sys::unlink_at(wfd, name, gone.is_dir());
            }
        }
    }

    /// Whether `ino` is still served from a lower file (not copied up since).
    pub fn is_lower(&self, ino: u64) -> bool {
        self.node(ino).is_ok_and(|n| n.state.read().loc.is_lower())
    }

    /// statfs of the upper layer (or the top lower when read-only).
    pub fn statfs(&self) -> OvResult<libc::statvfs> {
        let fd = match &self.upper {
            Some(u) => u.fd(),
            None => self.lowers.layers[0].fd(),
        };
        sys::io::fstatvfs(fd.as_raw_fd()).map_err(errno)
    }
}
