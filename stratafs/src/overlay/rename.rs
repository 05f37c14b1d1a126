//! Rename: rename and renameat2 (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`), with the
//! redirects and opaque markers a moved directory needs.

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ovlformat::whiteout::OPAQUE_YES;

use crate::layers;
use crate::node::{Loc, Node};
use crate::sys;

use super::remove::clear_dir;
use super::{OvResult, Overlay, errno};

impl Overlay {
    /// rename / renameat2 with `RENAME_NOREPLACE` / `RENAME_EXCHANGE`.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> OvResult<()> {
        Self::check_name(newname)?;
        let p = self.node(parent)?;
        let np = self.node(newparent)?;
        let (sino, sstate, sst) = self.resolve(&p, name)?;
        let src_dir = sst.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let dst = match self.resolve(&np, newname) {
            Ok(d) => Some(d),
            Err(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(libc::EEXIST);
        }
        if exchange && dst.is_none() {
            return Err(libc::ENOENT);
        }
        if let Some((dino, dstate, dst_st)) = &dst {
            if *dino == sino {
                return Ok(());
            }
            let dst_dir = dst_st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !exchange {
                if src_dir && !dst_dir {
                    return Err(libc::ENOTDIR);
                }
                if !src_dir && dst_dir {
                    return Err(libc::EISDIR);
                }
                if dst_dir {
                    let t = Node::detached(*dino, true, dstate.clone());
                    if !self.is_empty_dir_state(&t)? {
                        return Err(libc::ENOTEMPTY);
                    }
                }
            }
        }
        // Bring both ends up.
        let snode = self.nodes.looked_up(sino, src_dir, sstate.clone());
        let dnode = dst.as_ref().map(|(dino, dstate, dst_st)| {
            self.nodes.looked_up(
                *dino,
                dst_st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                dstate.clone(),
            )
        });
        let r = self.rename_locked(&p, name, &np, newname, &snode, dnode.as_deref(), exchange);
        self.forget(snode.ino(), 1);
        if let Some(d) = &dnode {
            self.forget(d.ino(), 1);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_locked(
        &self,
        p: &Node,
        name: &OsStr,
        np: &Node,
        newname: &OsStr,
        snode: &Node,
        dnode: Option<&Node>,
        exchange: bool,
    ) -> OvResult<()> {
        self.copy_up(snode)?;
        self.copy_up(np)?;
        if exchange {
            if let Some(d) = dnode {
                self.copy_up(d)?;
            }
        }
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let from = self.path_of(p)?.join(name);
        let to = self.path_of(np)?.join(newname);
        let src_in_lower = self.lower_has(p, name)?;
        let dst_in_lower = self.lower_has(np, newname)?;
        let mut rflags = 0;
        let mut orphan = None;
        // A char whiteout holding the target name goes to the source's name in the same
        // step (an exchange, as the kernel does): the whiteout the source's old name
        // needs when a lower holds it, removed after otherwise.
        let mut took_whiteout = false;
        if exchange {
            rflags = libc::RENAME_EXCHANGE;
        } else if let Some(d) = dnode {
            let upper = d.state.read().loc == Loc::Upper;
            if d.is_dir() && upper {
                // The target is empty in the merged view: only whiteouts may be inside.
                clear_dir(ufd, &to);
            } else if upper
                && self.held(d.ino(), 1)
                && sys::lstat_at(ufd, &to).is_ok_and(|st| st.st_nlink == 1)
            {
                // The kernel holds the file about to be replaced (it may be open):
                // a link in the work dir keeps it until the kernel forgets it.
                let wfd = self.work_fd()?;
                let tmp = self.tmp_name();
                sys::link_between(ufd, &to, wfd, &tmp).map_err(errno)?;
                orphan = Some(tmp);
            }
        } else if sys::lstat_at(ufd, &to).is_ok_and(|st| layers::is_chr_whiteout(&st)) {
            rflags = libc::RENAME_EXCHANGE;
            took_whiteout = true;
        } else {
            // No visible target: drop a `.wh.` marker that may hold the name.
            self.clear_whiteout(&to)?;
        }
        // The markers a moved directory needs go on it before it moves (a redirect to
        // its own path, or opaque with no lower part, changes nothing where it is), and
        // the whiteout its old name needs comes with the rename itself
        // (`RENAME_WHITEOUT`): killed at any point, the upper shows the tree before the
        // rename or the tree after it, never both names.
        self.mark_moved_dir(ufd, snode, &from, dst_in_lower)?;
        if exchange {
            if let Some(d) = dnode {
                self.mark_moved_dir(ufd, d, &to, src_in_lower)?;
            }
        }
        let whiteout_with_rename = rflags == 0 && src_in_lower && !self.settings.whiteout_files;
        let mut renamed = false;
        if whiteout_with_rename {
            match sys::rename_between(ufd, &from, ufd, &to, libc::RENAME_WHITEOUT) {
                Ok(()) => renamed = true,
                // An upper file system without whiteout renames: two steps.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) => {}
                Err(e) => {
                    self.drop_orphan(orphan.as_deref());
                    return Err(errno(e));
                }
            }
        }
        if !renamed {
            if let Err(e) = sys::rename_between(ufd, &from, ufd, &to, rflags) {
                self.drop_orphan(orphan.as_deref());
                return Err(errno(e));
            }
        }
        if let (false, Some(d)) = (exchange, dnode) {
            if !d.is_dir() {
                self.adjust_index_nlink(d.ino(), -1);
                self.name_gone(d.ino(), np.ino(), newname);
            }
            self.detach(d.ino(), np.ino(), newname, orphan);
        }
        if took_whiteout {
            if !src_in_lower {
                // Nothing below to hide at the old name.
                sys::unlink_at(ufd, &from, false).map_err(errno)?;
            }
        } else if !exchange && src_in_lower && !renamed {
            self.make_whiteout(&from)?;
        }
        // Lookups of a moved directory now merge from every lower.
        Self::widen_span(snode, self.lowers.len());
        {
            let mut s = snode.state.write();
            s.rename(np.ino(), newname);
        }
        if exchange {
            if let Some(d) = dnode {
                Self::widen_span(d, self.lowers.len());
                let mut s = d.state.write();
                s.rename(p.ino(), name);
            }
        }
        Ok(())
    }

    /// Marks the directory `node` (at `at` in the upper, before it moves): a redirect
    /// to its lower path when it has a lower part, else opaque when it lands on a name
    /// the lowers hold.
    fn mark_moved_dir(
        &self,
        ufd: BorrowedFd<'_>,
        node: &Node,
        at: &Path,
        lands_on_lower_name: bool,
    ) -> OvResult<()> {
        if !node.is_dir() {
            return Ok(());
        }
        let span = node.state.read().span.clone();
        match span {
            Some(span) => {
                let mut v = b"/".to_vec();
                v.extend_from_slice(span.path.as_os_str().as_bytes());
                sys::set_xattr(ufd, at, &self.xattr_redirect, &v, 0).map_err(errno)
            }
            None if lands_on_lower_name => {
                sys::set_xattr(ufd, at, &self.xattr_opaque, OPAQUE_YES, 0).map_err(errno)
            }
            None => Ok(()),
        }
    }

    /// A moved directory with a lower part merges from every lower under its redirect.
    fn widen_span(node: &Node, lowers: u32) {
        if !node.is_dir() {
            return;
        }
        let mut s = node.state.write();
        if let Some(span) = s.span.as_mut() {
            span.start = 0;
            span.end = lowers;
        }
    }

    /// Drops the work-dir link kept for a replaced file, when the rename failed.
    fn drop_orphan(&self, tmp: Option<&Path>) {
        if let (Some(tmp), Ok(wfd)) = (tmp, self.work_fd()) {
            let _ = sys::unlink_at(wfd, tmp, false);
        }
    }
}
