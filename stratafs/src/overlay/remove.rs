//! Removal: unlink and rmdir, with the whiteouts they leave and the orphans they keep
//! for the kernel, and the work-dir tree removal helpers.

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ovlformat::whiteout;

use crate::layers;
use crate::node::{Loc, Node};
use crate::sys;

use super::{OvResult, Overlay, errno};

impl Overlay {
    /// unlink (`dir == false`) or rmdir (`dir == true`) of `parent/name`.
    pub fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> OvResult<()> {
        let p = self.node(parent)?;
        let (mut ino, mut state, mut st) = self.resolve(&p, name)?;
        // A lower name of a hard-linked file whose other name was copied up resolves to
        // the index copy, whose own link count no longer counts the lower names.
        let hardlinked = st.st_mode & libc::S_IFMT == libc::S_IFREG
            && (st.st_nlink > 1 || matches!(state.loc, Loc::Index(_)));
        if hardlinked && !dir && state.loc != Loc::Upper && self.writable() {
            // As the kernel with index=on: copy a hard-linked file up (link it up from
            // the index) before removing one name, so the link count the other names
            // show stays right.
            let node = self.nodes.looked_up(ino, false, state.clone());
            let r = self.copy_up(&node);
            self.forget(ino, 1);
            r?;
            (ino, state, st) = self.resolve(&p, name)?;
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if dir && !is_dir {
            return Err(libc::ENOTDIR);
        }
        if !dir && is_dir {
            return Err(libc::EISDIR);
        }
        let tmp_node = Node::detached(ino, is_dir, state.clone());
        if dir && !self.is_empty_dir_state(&tmp_node)? {
            return Err(libc::ENOTEMPTY);
        }
        self.copy_up(&p)?;
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let upath = self.path_of(&p)?.join(name);
        let in_lower = self.lower_has(&p, name)?;
        let mut orphan = None;
        let mut whited_out = false;
        if state.loc == Loc::Upper {
            let wfd = self.work_fd()?;
            // Where a lower holds the name, the whiteout takes the object's place in one
            // step and the object lands in the work dir; else it is moved there itself.
            let swapped = if in_lower {
                self.swap_in_whiteout(&upath)?
            } else {
                None
            };
            whited_out = swapped.is_some();
            let to_work = |swapped: Option<std::path::PathBuf>| -> OvResult<std::path::PathBuf> {
                match swapped {
                    Some(t) => Ok(t),
                    None => {
                        let tmp = self.tmp_name();
                        sys::rename_between(ufd, &upath, wfd, &tmp, 0).map_err(errno)?;
                        Ok(tmp)
                    }
                }
            };
            if is_dir {
                let tmp = to_work(swapped)?;
                if self.held(ino, 0) {
                    // Kept, emptied of its whiteouts, while the kernel holds it.
                    clear_dir(wfd, &tmp);
                    orphan = Some(tmp);
                } else {
                    remove_tree(wfd, &tmp);
                }
            } else if st.st_nlink <= 1 && self.held(ino, 0) {
                // The last name of a file the kernel holds (it may be open): moved
                // to the work dir, not unlinked, until the kernel forgets it. (An
                // indexed file has its index link besides: unlinked, it lives on.)
                orphan = Some(to_work(swapped)?);
            } else {
                match &swapped {
                    Some(t) => sys::unlink_at(wfd, t, false).map_err(errno)?,
                    None => sys::unlink_at(ufd, &upath, false).map_err(errno)?,
                }
                self.adjust_index_nlink(ino, -1);
                self.name_gone(ino, p.ino(), name);
            }
        }
        if in_lower && !whited_out {
            self.make_whiteout(&upath)?;
        }
        self.detach(ino, p.ino(), name, orphan);
        Ok(())
    }

    pub(super) fn is_empty_dir_state(&self, tmp: &Node) -> OvResult<bool> {
        // A node not (yet) in the table: list it through a transient registration.
        if let Some(n) = self.nodes.get(tmp.ino()) {
            return self.is_empty_dir(&n);
        }
        let st = tmp.state.read().clone();
        if st.loc == Loc::Upper {
            let p = self.node(st.parent)?;
            let upath = self.path_of(&p)?.join(&st.name);
            let ufd = self.upper_fd()?;
            for e in sys::read_dir_at(ufd, &upath).map_err(errno)? {
                if whiteout::is_oci_marker(&e.name) {
                    continue;
                }
                let p2 = upath.join(OsStr::from_bytes(&e.name));
                if !matches!(sys::lstat_at(ufd, &p2), Ok(s) if layers::is_chr_whiteout(&s)) {
                    return Ok(false);
                }
            }
        }
        if let Some(span) = &st.span {
            let d = self.lowers.dir(span).map_err(errno)?;
            let ufd = self.upper_fd().ok();
            for (name, _) in d.visible() {
                // hidden by an upper whiteout?
                if st.loc == Loc::Upper {
                    if let Some(ufd) = ufd {
                        let p = self.node(st.parent)?;
                        let up = self
                            .path_of(&p)?
                            .join(&st.name)
                            .join(OsStr::from_bytes(name));
                        if matches!(sys::lstat_at(ufd, &up), Ok(s) if layers::is_chr_whiteout(&s)) {
                            continue;
                        }
                        let wh = whiteout::whiteout_name(OsStr::from_bytes(name));
                        if sys::lstat_at(ufd, &up.with_file_name(wh)).is_ok() {
                            continue;
                        }
                    }
                }
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Removes everything inside the directory `path` (whiteouts left in an emptied dir).
pub(super) fn clear_dir(fd: BorrowedFd<'_>, path: &Path) {
    if let Ok(list) = sys::read_dir_at(fd, path) {
        for e in list {
            let p = path.join(OsStr::from_bytes(&e.name));
            if e.d_type == libc::DT_DIR {
                remove_tree(fd, &p);
            } else {
                let _ = sys::unlink_at(fd, &p, false);
            }
        }
    }
}

/// Removes a directory tree beneath `fd` (the work dir's leftovers).
pub fn remove_tree(fd: BorrowedFd<'_>, path: &Path) {
    clear_dir(fd, path);
    let _ = sys::unlink_at(fd, path, true);
}

/// Removes `path` beneath `fd`, whether a file or a directory tree.
pub fn remove_tree_or_file(fd: BorrowedFd<'_>, path: &Path) {
    if sys::unlink_at(fd, path, false).is_err() {
        remove_tree(fd, path);
    }
}
