//! Creation: new objects (`make`, `tmpfile`), hard links, and giving a created object
//! its caller's owner. What `NewObject` names goes here too.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::node::{Loc, Name, Node, NodeRef, NodeState};
use crate::override_stat;
use crate::sys::{self, Stat};

use super::{OvResult, Overlay, errno};

impl Overlay {
    /// What `create`, `mknod`, `mkdir` and `symlink` make, for a caller with ids
    /// `uid`/`gid` (as stored) and umask `umask` (applied by the upper file system as
    /// for the caller, so a default ACL on the parent takes its place).
    pub fn make(
        &self,
        parent: u64,
        name: &OsStr,
        kind: NewObject<'_>,
        uid: u32,
        gid: u32,
        umask: u32,
    ) -> OvResult<(NodeRef, Stat, Option<OwnedFd>)> {
        Self::check_name(name)?;
        let p = self.node(parent)?;
        if !p.is_dir() {
            return Err(libc::ENOTDIR);
        }
        match self.resolve(&p, name) {
            Ok(_) => return Err(libc::EEXIST),
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        self.copy_up(&p)?;
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let upath = self.path_of(&p)?.join(name);
        // A whiteout hides a lower name; only then is one looked for first. Anywhere
        // else a stray one makes the create fail with EEXIST, and is cleared then.
        let in_lower = self.lower_has(&p, name)?;
        let mut had_wh = in_lower && self.clear_whiteout(&upath)?;
        let create = || -> io::Result<Option<OwnedFd>> {
            match kind {
                NewObject::File { mode, flags } => sys::open_beneath(
                    ufd,
                    &upath,
                    (flags & !libc::O_NOCTTY) | libc::O_CREAT | libc::O_EXCL,
                    sys::caller_umask(umask, mode & 0o7777),
                )
                .map(Some),
                NewObject::Node { mode, rdev } => {
                    let perm = sys::caller_umask(umask, mode & 0o7777);
                    sys::mknod_at(ufd, &upath, (mode & libc::S_IFMT) | perm, rdev).map(|_| None)
                }
                NewObject::Dir { mode } => {
                    sys::mkdir_at(ufd, &upath, sys::caller_umask(umask, mode & 0o7777))
                        .map(|_| None)
                }
                NewObject::Symlink { target } => sys::symlink_at(target, ufd, &upath).map(|_| None),
            }
        };
        let mut r = create();
        if !had_wh
            && matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EEXIST))
            && self.clear_whiteout(&upath)?
        {
            had_wh = true;
            r = create();
        }
        let fd = match r {
            Ok(fd) => fd,
            Err(e) => {
                if had_wh {
                    let _ = self.make_whiteout(&upath);
                }
                return Err(errno(e));
            }
        };
        let is_dir = matches!(kind, NewObject::Dir { .. });
        if is_dir && (in_lower || had_wh) {
            sys::set_xattr(ufd, &upath, &self.xattr_opaque, b"y", 0).map_err(errno)?;
        }
        let mut st = sys::lstat_at(ufd, &upath).map_err(errno)?;
        let parent_upath = upath.parent().unwrap_or(Path::new(""));
        let owner = Self::give_creator(ufd, parent_upath, (ufd, &upath), &mut st, uid, gid)?;
        self.record_creator((ufd, &upath), &st, owner);
        let ino = self.compose_ino(st.st_dev, st.st_ino);
        let state = NodeState {
            parent: p.ino(),
            name: Name::new(name),
            loc: Loc::Upper,
            span: None,
        };
        let node = self.nodes.created(ino, is_dir, state);
        self.fix_stat(&node, &mut st);
        Ok((node, st, fd))
    }

    /// The daemon made the object at `at` (attributes `st`) in the upper directory
    /// `parent` (beneath `ufd`): give it the caller's owner. The group a set-group-ID
    /// parent gave it stays, as on any filesystem; when the group it got is the
    /// caller's, either way it is right and the parent need not be looked at.
    fn give_creator(
        ufd: BorrowedFd<'_>,
        parent: &Path,
        at: (BorrowedFd<'_>, &Path),
        st: &mut Stat,
        uid: u32,
        gid: u32,
    ) -> OvResult<(u32, u32)> {
        if st.st_uid == uid && st.st_gid == gid {
            return Ok((uid, gid));
        }
        let gid = match sys::lstat_at(ufd, parent) {
            Ok(ps) if ps.st_mode & libc::S_ISGID != 0 => ps.st_gid,
            _ => gid,
        };
        if st.st_uid != uid || st.st_gid != gid {
            match sys::lchown_at(at.0, at.1, uid, gid) {
                Ok(()) => {
                    // The chown cleared set-user-ID / set-group-ID on a non-directory;
                    // the caller made it with them (the kernel already took out what
                    // the caller may not set), as its own create would keep them.
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    let perm = st.st_mode & 0o7777;
                    if !is_dir && perm & (libc::S_ISUID | libc::S_ISGID) != 0 {
                        sys::chmod_at(at.0, at.1, perm).map_err(errno)?;
                    }
                    *st = sys::lstat_at(at.0, at.1).map_err(errno)?;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        Ok((uid, gid))
    }

    /// After a create: where the upper keeps owners in an xattr and the daemon could
    /// not give the object its owner (rootless), the record says it.
    fn record_creator(&self, at: (BorrowedFd<'_>, &Path), st: &Stat, owner: (u32, u32)) {
        let Some(kind) = self.upper_override() else {
            return;
        };
        if (st.st_uid, st.st_gid) == owner || st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return;
        }
        let v = override_stat::format(owner.0, owner.1, st.st_mode);
        let _ = sys::set_xattr(at.0, at.1, kind.xattr(), v.as_bytes(), 0);
    }

    /// An O_TMPFILE file in directory `parent`: made by the upper file system in the
    /// (copied-up) upper directory, so mode, default ACL and group come out as for any
    /// file made there, then given a name in the work dir (a `Loc::Orphan`) until a
    /// `linkat` names it or the kernel forgets it. Returns it opened with `flags`.
    pub fn tmpfile(
        &self,
        parent: u64,
        mode: u32,
        flags: i32,
        uid: u32,
        gid: u32,
        umask: u32,
    ) -> OvResult<(NodeRef, Stat, OwnedFd)> {
        let p = self.node(parent)?;
        if !p.is_dir() {
            return Err(libc::ENOTDIR);
        }
        self.copy_up(&p)?;
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        let ppath = self.path_of(&p)?;
        let acc = match flags & libc::O_ACCMODE {
            libc::O_WRONLY => libc::O_WRONLY,
            _ => libc::O_RDWR,
        };
        let fd = sys::open_beneath(
            ufd,
            &ppath,
            libc::O_TMPFILE | acc,
            sys::caller_umask(umask, mode & 0o7777),
        )
        .map_err(errno)?;
        let tmp = self.tmp_name();
        sys::link_fd_at(fd.as_fd(), wfd, &tmp).map_err(errno)?;
        let mut st = sys::lstat_at(wfd, &tmp).map_err(errno)?;
        match Self::give_creator(ufd, &ppath, (wfd, &tmp), &mut st, uid, gid) {
            Ok(owner) => self.record_creator((wfd, &tmp), &st, owner),
            Err(e) => {
                let _ = sys::unlink_at(wfd, &tmp, false);
                return Err(e);
            }
        }
        let ino = self.compose_ino(st.st_dev, st.st_ino);
        let state = NodeState {
            parent: p.ino(),
            name: Name::default(),
            loc: Loc::Orphan(Box::new(tmp)),
            span: None,
        };
        let node = self.nodes.created(ino, false, state);
        self.fix_stat(&node, &mut st);
        Ok((node, st, fd))
    }

    /// Names an O_TMPFILE file (the kernel allows `linkat` of no other nameless
    /// object): its work-dir link becomes `dst` in the upper layer.
    fn adopt_orphan(&self, node: &Node, np: &Node, newname: &OsStr, dst: &Path) -> OvResult<()> {
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        let Loc::Orphan(tmp) = node.state.read().loc.clone() else {
            return Err(libc::ENOENT);
        };
        sys::rename_between(wfd, &tmp, ufd, dst, libc::RENAME_NOREPLACE).map_err(errno)?;
        let mut s = node.state.write();
        s.rename(np.ino(), newname);
        s.loc = Loc::Upper;
        Ok(())
    }

    /// Creates a hard link `newparent/newname` to `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> OvResult<(NodeRef, Stat)> {
        Self::check_name(newname)?;
        let node = self.node(ino)?;
        if node.is_dir() {
            return Err(libc::EPERM);
        }
        let np = self.node(newparent)?;
        match self.resolve(&np, newname) {
            Ok(_) => return Err(libc::EEXIST),
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        self.make_writable(&node)?;
        self.copy_up(&np)?;
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let dst = self.path_of(&np)?.join(newname);
        let had_wh = self.clear_whiteout(&dst)?;
        if matches!(node.state.read().loc, Loc::Orphan(_)) {
            if let Err(e) = self.adopt_orphan(&node, &np, newname, &dst) {
                if had_wh {
                    let _ = self.make_whiteout(&dst);
                }
                return Err(e);
            }
            node.add_lookup();
            let st = self.stat(&node)?;
            return Ok((node, st));
        }
        self.ensure_index(&node)?;
        // Link from wherever the object lives now (its upper name or the index).
        let (sfd, src) = self.real(&node)?;
        if let Err(e) = sys::link_between(sfd, &src, ufd, &dst) {
            if had_wh {
                let _ = self.make_whiteout(&dst);
            }
            return Err(errno(e));
        }
        self.adjust_index_nlink(node.ino(), 1);
        node.add_lookup();
        let st = self.stat(&node)?;
        Ok((node, st))
    }
}

/// An object to create.
#[derive(Debug, Clone, Copy)]
pub enum NewObject<'a> {
    /// A regular file, opened with `flags`.
    File {
        /// Permission bits.
        mode: u32,
        /// open(2) flags.
        flags: i32,
    },
    /// A fifo, socket or device node.
    Node {
        /// Type and permission bits.
        mode: u32,
        /// Device number.
        rdev: u64,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Link target.
        target: &'a OsStr,
    },
}
