//! Owner and mode kept in an xattr instead of on the file (fuse-overlayfs'
//! `xattr_permissions=1|2`, containers/storage's rootless layers).
//!
//! The value is `UID:GID:MODE[:TYPE]`: decimal ids, the permission bits in octal (with
//! or without a leading `0`), and optionally the file type as containers/storage
//! records it (`file`, `dir`, `symlink`, `pipe`, `socket`, `block-MAJ-MIN`,
//! `char-MAJ-MIN`). stratafs writes `UID:GID:MODE` with no leading `0` and no type, as
//! fuse-overlayfs 2.0 does.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::sys::{self, Stat};

/// Which xattr a layer keeps owners and modes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideKind {
    /// `security.fuseoverlayfs.override_stat` (`xattr_permissions=1`).
    Privileged,
    /// `user.containers.override_stat` (`xattr_permissions=2`, containers/storage).
    Containers,
    /// `user.fuseoverlayfs.override_stat` (a layer root that carries it).
    User,
}

impl OverrideKind {
    /// The xattr's name.
    pub fn xattr(self) -> &'static CStr {
        match self {
            OverrideKind::Privileged => c"security.fuseoverlayfs.override_stat",
            OverrideKind::Containers => c"user.containers.override_stat",
            OverrideKind::User => c"user.fuseoverlayfs.override_stat",
        }
    }

    /// The kind `xattr_permissions=N` asks for (`None` for 0 or anything else).
    pub fn from_option(n: u8) -> Option<OverrideKind> {
        match n {
            1 => Some(OverrideKind::Privileged),
            2 => Some(OverrideKind::Containers),
            _ => None,
        }
    }

    /// The kind a layer root's own xattr says, in fuse-overlayfs' order of preference.
    pub fn of_root(root: BorrowedFd<'_>) -> Option<OverrideKind> {
        [
            OverrideKind::Privileged,
            OverrideKind::Containers,
            OverrideKind::User,
        ]
        .into_iter()
        .find(|k| is_present(root, k.xattr()))
    }
}

/// Whether the root carries `name` (ERANGE from a zero-length probe means it does).
fn is_present(root: BorrowedFd<'_>, name: &CStr) -> bool {
    match sys::get_xattr_into(root, Path::new(""), name, &mut []) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => e.raw_os_error() == Some(libc::ERANGE),
    }
}

/// A parsed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits (`0o7777`).
    pub perm: u32,
    /// `S_IFMT` bits and rdev when the record names a special file.
    pub special: Option<(u32, u64)>,
}

/// Parses a record; `None` when malformed.
pub fn parse(v: &[u8]) -> Option<Override> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s.trim_end_matches('\0');
    let mut it = s.splitn(4, ':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    let special = match it.next() {
        None | Some("file") | Some("dir") | Some("symlink") => None,
        Some("pipe") => Some((libc::S_IFIFO, 0)),
        Some("socket") => Some((libc::S_IFSOCK, 0)),
        Some(t) => {
            let (fmt, rest) = if let Some(r) = t.strip_prefix("block") {
                (libc::S_IFBLK, r)
            } else if let Some(r) = t.strip_prefix("char") {
                (libc::S_IFCHR, r)
            } else {
                return None;
            };
            // containers/storage writes `block-MAJ-MIN`; fuse-overlayfs 2.0 also reads
            // `blockMAJ:MIN`.
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let (maj, min) = rest.split_once(['-', ':'])?;
            Some((fmt, libc::makedev(maj.parse().ok()?, min.parse().ok()?)))
        }
    };
    Some(Override {
        uid,
        gid,
        perm: mode & 0o7777,
        special,
    })
}

/// The record stratafs writes: `UID:GID:MODE`, MODE octal.
pub fn format(uid: u32, gid: u32, perm: u32) -> String {
    format!("{uid}:{gid}:{:o}", perm & 0o7777)
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
    fn parses_fuse_overlayfs_and_containers_records() {
        let o = parse(b"100:200:4751").expect("parses");
        assert_eq!((o.uid, o.gid, o.perm, o.special), (100, 200, 0o4751, None));
        let o = parse(b"0:0:0755:dir").expect("parses");
        assert_eq!((o.uid, o.gid, o.perm, o.special), (0, 0, 0o755, None));
        let o = parse(b"5:6:0644:file").expect("parses");
        assert_eq!(o.perm, 0o644);
        // Type bits in MODE are dropped.
        assert_eq!(parse(b"1:2:100644").expect("parses").perm, 0o644);
        let o = parse(b"0:6:0666:char-1-3").expect("parses");
        assert_eq!(o.special, Some((libc::S_IFCHR, libc::makedev(1, 3))));
        let o = parse(b"0:0:660:block8:0").expect("parses");
        assert_eq!(o.special, Some((libc::S_IFBLK, libc::makedev(8, 0))));
        assert_eq!(
            parse(b"0:0:600:pipe").expect("parses").special,
            Some((libc::S_IFIFO, 0))
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"1000:1000"[..],
            b"a:0:644",
            b"0:0:9",
            b"0:0:644:bogus",
            b"0:0:644:char-1",
            b"",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn writes_as_fuse_overlayfs() {
        assert_eq!(format(100, 200, 0o104751), "100:200:4751");
        assert_eq!(format(0, 0, 0o644), "0:0:644");
        let o = parse(format(7, 8, 0o1777).as_bytes()).expect("parses");
        assert_eq!((o.uid, o.gid, o.perm), (7, 8, 0o1777));
    }

    #[test]
    fn applies_owner_mode_and_special_type() {
        let mut st: Stat = unsafe { std::mem::zeroed() };
        st.st_mode = libc::S_IFREG | 0o600;
        st.st_size = 9;
        apply(&parse(b"0:5:0620:char-4-1").expect("parses"), &mut st);
        assert_eq!(st.st_mode, libc::S_IFCHR | 0o620);
        assert_eq!((st.st_uid, st.st_gid, st.st_size), (0, 5, 0));
        assert_eq!(st.st_rdev, libc::makedev(4, 1));
        let mut d: Stat = unsafe { std::mem::zeroed() };
        d.st_mode = libc::S_IFDIR | 0o700;
        apply(&parse(b"1:1:0755:char-4-1").expect("parses"), &mut d);
        assert_eq!(d.st_mode, libc::S_IFDIR | 0o755);
    }
}
