//! Whiteouts: making and clearing the upper-layer markers that hide a lower name, in
//! either format (char 0/0 or `.wh.NAME`). Shared by creation, removal and rename.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use ovlformat::whiteout::whiteout_name;

use crate::layers;
use crate::sys;

use super::{OvResult, Overlay, errno};

impl Overlay {
    /// Puts a whiteout at `upath` in the upper layer (replacing a non-directory there).
    pub(super) fn make_whiteout(&self, upath: &Path) -> OvResult<()> {
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        if self.settings.whiteout_files {
            return Self::make_wh_file(ufd, upath);
        }
        if self
            .whiteout
            .link(wfd, ufd, upath, || self.tmp_name())
            .map_err(errno)?
        {
            return Ok(());
        }
        let tmp = self.tmp_name();
        match sys::mknod_at(wfd, &tmp, libc::S_IFCHR, 0) {
            Ok(()) => {
                if let Err(e) = sys::rename_between(wfd, &tmp, ufd, upath, 0) {
                    let _ = sys::unlink_at(wfd, &tmp, false);
                    return Err(errno(e));
                }
                Ok(())
            }
            // No mknod here (rootless without privileges): the `.wh.NAME` format.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Self::make_wh_file(ufd, upath),
            Err(e) => Err(errno(e)),
        }
    }

    /// Puts a whiteout in place of the upper object at `upath` in one step, as the
    /// kernel does: a whiteout made in the work dir is exchanged with the object
    /// (`RENAME_EXCHANGE`), so a crash leaves either the object or the whiteout, never
    /// the lower object showing through. Returns the work-dir name the object now has,
    /// for the caller to remove or keep; `None` when it cannot be done so (the `.wh.`
    /// format, an upper without exchange): the caller then removes and whites out in
    /// two steps.
    pub(super) fn swap_in_whiteout(&self, upath: &Path) -> OvResult<Option<PathBuf>> {
        if self.settings.whiteout_files {
            return Ok(None);
        }
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        let tmp = self.tmp_name();
        let made = self
            .whiteout
            .link(wfd, wfd, &tmp, || self.tmp_name())
            .map_err(errno)?
            || sys::mknod_at(wfd, &tmp, libc::S_IFCHR, 0).is_ok();
        if !made {
            return Ok(None);
        }
        match sys::rename_between(wfd, &tmp, ufd, upath, libc::RENAME_EXCHANGE) {
            Ok(()) => Ok(Some(tmp)),
            Err(e) => {
                let _ = sys::unlink_at(wfd, &tmp, false);
                match e.raw_os_error() {
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(None),
                    _ => Err(errno(e)),
                }
            }
        }
    }

    /// A whiteout in the `.wh.NAME` format (fuse-overlayfs' where mknod is refused, or
    /// with `FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT`), replacing a non-directory at `upath`.
    fn make_wh_file(ufd: BorrowedFd<'_>, upath: &Path) -> OvResult<()> {
        match sys::unlink_at(ufd, upath, false) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(errno(e)),
        }
        let name = upath.file_name().ok_or(libc::EINVAL)?;
        let whp = upath.with_file_name(whiteout_name(name));
        let fd =
            sys::open_beneath(ufd, &whp, libc::O_WRONLY | libc::O_CREAT, 0o600).map_err(errno)?;
        drop(fd);
        Ok(())
    }

    /// Removes a whiteout left at `upath` (both formats), so a new object can take the name.
    pub(super) fn clear_whiteout(&self, upath: &Path) -> OvResult<bool> {
        let ufd = self.upper_fd()?;
        let mut had = false;
        if let Ok(st) = sys::lstat_at(ufd, upath) {
            if layers::is_chr_whiteout(&st) {
                sys::unlink_at(ufd, upath, false).map_err(errno)?;
                had = true;
            }
        }
        if let Some(name) = upath.file_name() {
            if sys::unlink_at(ufd, &upath.with_file_name(whiteout_name(name)), false).is_ok() {
                had = true;
            }
        }
        Ok(had)
    }
}
