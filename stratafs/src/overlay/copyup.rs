//! Copy-up: bringing a lower object (and its ancestors) into the upper layer, with its
//! attributes, xattrs, owner records and index entry, before anything modifies it. The
//! one place that writes a copy, so its ordering rules live together.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ovlformat::xattr::is_private;

use crate::node::{Loc, Name, Node};
use crate::override_stat::{self, OverrideKind};
use crate::sys::{self, Stat};

use super::{OvResult, Overlay, errno, index_key};

impl Overlay {
    /// Makes the node's object writable in place: a lower object is copied up; an
    /// indexed one is already the shared upper copy (its names need not be re-created).
    pub(super) fn make_writable(&self, node: &Node) -> OvResult<()> {
        let needs_copy_up = {
            let st = node.state.read();
            match st.loc {
                Loc::Lower(..) | Loc::LowerAt(..) => true,
                // A live lower name of an indexed file joins the shared copy, as the
                // kernel copies it up; a node whose name is gone writes the copy itself.
                Loc::Index(_) => !st.name.is_empty(),
                Loc::Upper | Loc::Orphan(_) => false,
            }
        };
        if needs_copy_up {
            self.copy_up(node)?;
        }
        Ok(())
    }

    /// Makes sure `node` (and its ancestors) exist in the upper layer.
    pub fn copy_up(&self, node: &Node) -> OvResult<()> {
        if matches!(node.state.read().loc, Loc::Upper | Loc::Orphan(_)) {
            return Ok(());
        }
        if Self::unnamed(node) {
            // A lower object written after its name went: its copy has no name either.
            let _g = self.ns_lock.lock();
            if node.state.read().loc.is_lower() {
                self.copy_up_one(node)?;
                self.files.remove(node.ino());
            }
            return Ok(());
        }
        let parent = node.state.read().parent;
        let p = self.node(parent)?;
        self.copy_up(&p)?;
        let _g = self.ns_lock.lock();
        if matches!(node.state.read().loc, Loc::Upper | Loc::Orphan(_)) {
            return Ok(());
        }
        self.copy_up_one(node)?;
        // An open lower file of this inode would no longer show what the tree shows.
        self.files.remove(node.ino());
        Ok(())
    }

    fn copy_up_one(&self, node: &Node) -> OvResult<()> {
        let (lfd, lpath) = self.real(node)?;
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        // A node with no name gets its copy in the work dir, where it stays.
        let orphan = Self::unnamed(node);
        let upath = if orphan {
            PathBuf::new()
        } else {
            self.path_of(node)?
        };
        let st = sys::lstat_at(lfd, &lpath).map_err(errno)?;
        let named = Self::name_of(node);
        let indexed = !orphan && matches!(node.state.read().loc, Loc::Index(_));
        let hardlinked = !orphan && st.st_nlink > 1 && st.st_mode & libc::S_IFMT == libc::S_IFREG;
        if indexed {
            // Another name of this file was copied up: this name joins that copy. Like
            // every copy-up, it leaves the parent's times as they were.
            let parent_upath = upath.parent().map(Path::to_path_buf).unwrap_or_default();
            let pst = sys::lstat_at(ufd, &parent_upath).ok();
            sys::link_between(lfd, &lpath, ufd, &upath).map_err(errno)?;
            if let Some(pst) = pst {
                restore_times(ufd, &parent_upath, &pst);
            }
            self.copied_up(node, &named, Loc::Upper);
            return Ok(());
        }
        let tmp = self.tmp_name();
        let fmt = st.st_mode & libc::S_IFMT;
        let perm = st.st_mode & 0o7777;
        let parent_upath = upath.parent().map(Path::to_path_buf).unwrap_or_default();
        let pst = if orphan {
            None
        } else {
            sys::lstat_at(ufd, &parent_upath).ok()
        };
        let times = stat_times(&st);
        let origin = node.ino().to_string();
        // Owner and mode as the lower shows them (its override record, if it keeps
        // one). An upper that keeps records gets the real ones on the file and a record
        // where they differ or the owner cannot be given; else the shown ones go on
        // the file.
        let lower_kind = match &node.state.read().loc {
            Loc::Lower(l, _) | Loc::LowerAt(l, _) => self.lowers.layers[*l as usize].override_stat,
            _ => None,
        };
        let upper_kind = self.upper_override();
        let mut shown = st;
        if let Some(k) = lower_kind {
            override_stat::read_into(k, lfd, &lpath, &mut shown);
        }
        let (st_uid, st_gid, perm) = if upper_kind.is_some() {
            (st.st_uid, st.st_gid, perm)
        } else {
            (shown.st_uid, shown.st_gid, shown.st_mode & 0o7777)
        };
        let differs =
            (shown.st_uid, shown.st_gid, shown.st_mode & 0o7777) != (st_uid, st_gid, perm);
        // The record was copied as it is when both layers keep the same one.
        let copied = lower_kind == upper_kind && upper_kind != Some(OverrideKind::User);
        let record = |owned: bool| match upper_kind {
            Some(k) if fmt != libc::S_IFLNK && (!owned || (differs && !copied)) => Some((
                k.xattr(),
                override_stat::format(shown.st_uid, shown.st_gid, shown.st_mode),
            )),
            _ => None,
        };
        // Owner first (a chown clears set-user-ID), then mode; EPERM/EINVAL on the
        // owner (rootless, an unmapped id) leaves the daemon's own (false).
        let owner_ok = |r: io::Result<()>| match r {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => Err(e),
            Err(_) => Ok(false),
            Ok(()) => Ok(true),
        };
        let res = (|| -> io::Result<()> {
            match fmt {
                libc::S_IFREG => {
                    // Everything through the two open files: no path walks. The copy
                    // is an O_TMPFILE file (no work-dir entry to make and remove, less
                    // for the fsync to commit) linked in whole where it belongs.
                    let src = sys::open_beneath(lfd, &lpath, libc::O_RDONLY, 0)?;
                    let (dst, unnamed) = match sys::open_beneath(
                        wfd,
                        Path::new(""),
                        libc::O_TMPFILE | libc::O_WRONLY,
                        0o600,
                    ) {
                        Ok(fd) => (fd, true),
                        Err(_) => (
                            sys::open_beneath(
                                wfd,
                                &tmp,
                                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                                0o600,
                            )?,
                            false,
                        ),
                    };
                    // A small file whose blocks cover its size has no hole (no extent
                    // blocks are counted below 64 KiB on ext4): one copy, no seeks.
                    let size = st.st_size as u64;
                    let may_have_holes =
                        size > 64 * 1024 || (st.st_blocks as u64).saturating_mul(512) < size;
                    sys::copy_data(
                        src.as_raw_fd(),
                        dst.as_raw_fd(),
                        st.st_size as u64,
                        may_have_holes,
                    )?;
                    if self.settings.fsync {
                        let _ = sys::io::fsync(dst.as_raw_fd(), false);
                    }
                    let owned = owner_ok(sys::fchown(dst.as_fd(), st_uid, st_gid))?;
                    sys::fchmod(dst.as_fd(), perm)?;
                    self.copy_xattrs_fd(src.as_fd(), dst.as_fd());
                    if let Some((name, v)) = record(owned) {
                        let _ = sys::fd_set_xattr(dst.as_fd(), name, v.as_bytes(), 0);
                    }
                    let _ =
                        sys::fd_set_xattr(dst.as_fd(), &self.xattr_origin, origin.as_bytes(), 0);
                    sys::futimens(dst.as_fd(), &times)?;
                    if unnamed {
                        if hardlinked {
                            self.index_copy(
                                |n, v| sys::fd_set_xattr(dst.as_fd(), n, v, 0),
                                |i, key| sys::link_fd_at(dst.as_fd(), i, key),
                                node.ino(),
                                st.st_nlink,
                            )?;
                        }
                        return if orphan {
                            sys::link_fd_at(dst.as_fd(), wfd, &tmp)
                        } else {
                            sys::link_fd_at(dst.as_fd(), ufd, &upath)
                        };
                    }
                }
                _ => {
                    match fmt {
                        libc::S_IFDIR => sys::mkdir_at(wfd, &tmp, 0o700)?,
                        libc::S_IFLNK => {
                            let target = sys::readlink_at(lfd, &lpath)?;
                            sys::symlink_at(OsStr::from_bytes(&target), wfd, &tmp)?;
                        }
                        _ => sys::mknod_at(wfd, &tmp, fmt | 0o600, st.st_rdev)?,
                    }
                    let owned = owner_ok(sys::lchown_at(wfd, &tmp, st_uid, st_gid))?;
                    if fmt != libc::S_IFLNK {
                        sys::chmod_at(wfd, &tmp, perm)?;
                    }
                    self.copy_xattrs(lfd, &lpath, wfd, &tmp);
                    if let Some((name, v)) = record(owned) {
                        let _ = sys::set_xattr(wfd, &tmp, name, v.as_bytes(), 0);
                    }
                    let _ = sys::set_xattr(wfd, &tmp, &self.xattr_origin, origin.as_bytes(), 0);
                    sys::utimens_at(wfd, &tmp, &times)?;
                }
            }
            if hardlinked {
                self.index_copy(
                    |n, v| sys::set_xattr(wfd, &tmp, n, v, 0),
                    |i, key| sys::link_between(wfd, &tmp, i, key),
                    node.ino(),
                    st.st_nlink,
                )?;
            }
            if !orphan {
                sys::rename_between(wfd, &tmp, ufd, &upath, 0)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = sys::unlink_at(wfd, &tmp, fmt == libc::S_IFDIR);
            return Err(errno(e));
        }
        if let Some(pst) = pst {
            restore_times(ufd, &parent_upath, &pst);
        }
        if orphan {
            node.state.write().loc = Loc::Orphan(Box::new(tmp));
        } else {
            self.copied_up(node, &named, Loc::Upper);
        }
        Ok(())
    }

    /// The node's (parent, name) as a copy-up starts.
    fn name_of(node: &Node) -> (u64, Name) {
        let st = node.state.read();
        (st.parent, st.name.clone())
    }

    /// Records that `node` was copied up under `named`. A lookup of another name of
    /// the same hard-linked file may have renamed the node meanwhile (lookups do not
    /// wait for copy-ups): that name is not in the upper layer, so the node stays
    /// below, on the shared copy in the index if there is one.
    fn copied_up(&self, node: &Node, named: &(u64, Name), loc: Loc) {
        let mut st = node.state.write();
        if st.parent == named.0 && st.name == named.1 {
            st.loc = loc;
        } else if self.index.is_some() {
            st.loc = Loc::Index(Box::new(index_key(node.ino())));
        }
    }

    /// Gives the copy-up of a hard-linked lower file (node `ino`, `nlink` lower names)
    /// its index entry through `link` (index dir, key), with the count the names share.
    /// The count goes on the copy (`set_xattr`) before the link: an index entry is
    /// never seen without it, even after a crash between the two (the lower names
    /// would show the index copy's own count, 0).
    fn index_copy(
        &self,
        set_xattr: impl FnOnce(&CStr, &[u8]) -> io::Result<()>,
        link: impl FnOnce(BorrowedFd<'_>, &Path) -> io::Result<()>,
        ino: u64,
        nlink: u64,
    ) -> io::Result<()> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        // (An upper without the xattr keeps no count: names show the links there are.)
        let _ = set_xattr(&self.xattr_nlink, nlink.to_string().as_bytes());
        link(index.as_fd(), &index_key(ino))
    }

    /// Copies the xattrs a copy-up carries from the open file `src` to `dst`.
    fn copy_xattrs_fd(&self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) {
        if let Ok(list) = sys::fd_list_xattr(src) {
            self.copy_carried(
                &list,
                |n| sys::fd_get_xattr(src, n),
                |n, v| sys::fd_set_xattr(dst, n, v, 0),
            );
        }
    }

    /// Copies the xattrs a copy-up carries from `spath` to `dpath` (non-regular files).
    fn copy_xattrs(&self, sfd: BorrowedFd<'_>, spath: &Path, dfd: BorrowedFd<'_>, dpath: &Path) {
        if let Ok(list) = sys::list_xattr(sfd, spath) {
            self.copy_carried(
                &list,
                |n| sys::get_xattr(sfd, spath, n),
                |n, v| sys::set_xattr(dfd, dpath, n, v, 0),
            );
        }
    }

    /// For each name of the NUL-separated `list` a copy-up carries (not the overlay's
    /// own, but users' escaped ones), `get` its value and `set` it on the copy.
    fn copy_carried(
        &self,
        list: &[u8],
        get: impl Fn(&CStr) -> io::Result<Option<Vec<u8>>>,
        set: impl Fn(&CStr, &[u8]) -> io::Result<()>,
    ) {
        let escaped = self.escaped_prefix();
        for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if is_private(name) && !name.starts_with(&escaped) {
                continue;
            }
            let Ok(cname) = CString::new(name) else {
                continue;
            };
            if let Ok(Some(v)) = get(&cname) {
                let _ = set(&cname, &v);
            }
        }
    }
}

/// The access and modification times of `st`, as `utimensat`/`futimens` take them.
fn stat_times(st: &Stat) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ]
}

/// Puts back the times `st` had on `path` (a parent a copy-up linked a name into).
fn restore_times(fd: BorrowedFd<'_>, path: &Path, st: &Stat) {
    let _ = sys::utimens_at(fd, path, &stat_times(st));
}
