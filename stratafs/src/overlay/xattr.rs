//! Extended attributes as users see them: the overlay's private xattrs hidden, and a
//! user's names in the overlay's own namespace escaped (as the kernel 6.7+ does).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

use ovlformat::xattr::{Namespace, is_private};

use crate::sys;

use super::{OvResult, Overlay, errno};

impl Overlay {
    /// getxattr; the overlay's own markers are not visible.
    pub fn getxattr(&self, ino: u64, name: &OsStr) -> OvResult<Vec<u8>> {
        let c = self.stored_xattr_name(name).ok_or(libc::ENODATA)?;
        let node = self.node(ino)?;
        let (fd, path) = self.real(&node)?;
        sys::get_xattr(fd, &path, &c)
            .map_err(errno)?
            .ok_or(libc::ENODATA)
    }

    /// listxattr without the overlay's own markers.
    pub fn listxattr(&self, ino: u64) -> OvResult<Vec<u8>> {
        let node = self.node(ino)?;
        let (fd, path) = self.real(&node)?;
        let raw = sys::list_xattr(fd, &path).map_err(errno)?;
        let mut out = Vec::with_capacity(raw.len());
        let escaped = self.escaped_prefix();
        for n in raw.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if let Some(rest) = n.strip_prefix(escaped.as_slice()) {
                out.extend_from_slice(self.own_prefix());
                out.extend_from_slice(rest);
                out.push(0);
            } else if !is_private(n) {
                out.extend_from_slice(n);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// setxattr (copies up).
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> OvResult<()> {
        let c = self.stored_xattr_name(name).ok_or(libc::EPERM)?;
        let node = self.node(ino)?;
        self.make_writable(&node)?;
        let (fd, path) = self.real(&node)?;
        sys::set_xattr(fd, &path, &c, value, flags).map_err(errno)
    }

    /// removexattr (copies up).
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> OvResult<()> {
        let c = self.stored_xattr_name(name).ok_or(libc::ENODATA)?;
        // Nothing to remove: fail before copying up.
        self.getxattr(ino, name)?;
        let node = self.node(ino)?;
        self.make_writable(&node)?;
        let (fd, path) = self.real(&node)?;
        sys::remove_xattr(fd, &path, &c).map_err(errno)
    }

    /// Where this overlay keeps its own xattrs.
    pub(super) fn namespace(&self) -> Namespace {
        if self.settings.user_xattr {
            Namespace::User
        } else {
            Namespace::Trusted
        }
    }

    /// The overlay's own xattr prefix (`trusted.overlay.`, or `user.overlay.` rootless).
    fn own_prefix(&self) -> &'static [u8] {
        self.namespace().overlay_prefix().as_bytes()
    }

    /// How a user's `<own prefix>NAME` is stored: escaped as `<own prefix>overlay.NAME`,
    /// as the kernel (6.7+) does, so it never acts as a marker.
    pub(super) fn escaped_prefix(&self) -> Vec<u8> {
        let mut v = self.own_prefix().to_vec();
        v.extend_from_slice(b"overlay.");
        v
    }

    /// The on-disk name for a user's xattr name; `None` for names users may not touch.
    fn stored_xattr_name(&self, name: &OsStr) -> Option<CString> {
        let b = name.as_bytes();
        if let Some(rest) = b.strip_prefix(self.own_prefix()) {
            let mut v = self.escaped_prefix();
            v.extend_from_slice(rest);
            return CString::new(v).ok();
        }
        if is_private(b) {
            return None;
        }
        CString::new(b).ok()
    }
}
