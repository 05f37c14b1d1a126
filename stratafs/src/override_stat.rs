//! Owner and mode kept in an xattr, as stratafs reads them from a layer: which kind a
//! layer root carries, and a record applied to a stat. The format itself (names,
//! parsing, formatting) is `ovlformat::override_stat`'s.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::path::Path;

pub use ovlformat::override_stat::{Override, OverrideKind, format, parse};

use crate::sys::{self, Stat};

/// The kind a layer root's own xattr says, in fuse-overlayfs' order of preference.
pub fn kind_of_root(root: BorrowedFd<'_>) -> Option<OverrideKind> {
    OverrideKind::ALL
        .into_iter()
        .find(|k| is_present(root, k.xattr()))
}

/// Whether the root carries `name` (ERANGE from a zero-length probe means it does).
fn is_present(root: BorrowedFd<'_>, name: &CStr) -> bool {
    match sys::get_xattr_into(root, Path::new(""), name, &mut []) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => e.raw_os_error() == Some(libc::ERANGE),
    }
}

/// Shows `st` with the record's owner and mode. A special type is taken only on a
/// regular file (what a rootless extraction makes in place of a device, fifo or
/// socket); other types stay what they are.
pub fn apply(o: &Override, st: &mut Stat) {
    st.st_uid = o.uid;
    st.st_gid = o.gid;
    let mut fmt = st.st_mode & libc::S_IFMT;
    if let Some((f, rdev)) = o.special {
        if fmt == libc::S_IFREG {
            fmt = f;
            st.st_rdev = rdev;
            st.st_size = 0;
        }
    }
    st.st_mode = fmt | o.perm;
}

/// Reads `kind`'s record on `path` beneath `fd` into `st`; one getxattr. Symlinks are
/// left alone (no record is written on them). Absent or malformed: `st` unchanged.
pub fn read_into(kind: OverrideKind, fd: BorrowedFd<'_>, path: &Path, st: &mut Stat) {
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return;
    }
    let mut buf = [0u8; 96];
    if let Ok(Some(n)) = sys::get_xattr_into(fd, path, kind.xattr(), &mut buf) {
        if let Some(o) = parse(&buf[..n]) {
            apply(&o, st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_owner_mode_and_special_type() {
        let mut st = sys::io::zeroed_stat();
        st.st_mode = libc::S_IFREG | 0o600;
        st.st_size = 9;
        apply(&parse(b"0:5:0620:char-4-1").expect("parses"), &mut st);
        assert_eq!(st.st_mode, libc::S_IFCHR | 0o620);
        assert_eq!((st.st_uid, st.st_gid, st.st_size), (0, 5, 0));
        assert_eq!(st.st_rdev, libc::makedev(4, 1));
        let mut d = sys::io::zeroed_stat();
        d.st_mode = libc::S_IFDIR | 0o700;
        apply(&parse(b"1:1:0755:char-4-1").expect("parses"), &mut d);
        assert_eq!(d.st_mode, libc::S_IFDIR | 0o755);
    }
}
