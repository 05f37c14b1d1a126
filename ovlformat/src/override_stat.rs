//! Owner and mode kept in an xattr instead of on the file (fuse-overlayfs'
//! `xattr_permissions=1|2`, containers/storage's rootless layers, strata's rootless
//! extraction).
//!
//! The value is `UID:GID:MODE[:TYPE]`: decimal ids, the permission bits in octal (with
//! or without a leading `0`), and optionally the file type as containers/storage
//! records it (`file`, `dir`, `symlink`, `pipe`, `socket`, `block-MAJ-MIN`,
//! `char-MAJ-MIN`). stratafs writes `UID:GID:MODE` with no leading `0` and no type, as
//! fuse-overlayfs 2.0 does.

use std::ffi::CStr;

/// The record containers/storage (and strata's rootless extraction) writes.
pub const CONTAINERS_RECORD: &str = "user.containers.override_stat";

/// Which xattr a layer keeps owners and modes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideKind {
    /// `security.fuseoverlayfs.override_stat` (`xattr_permissions=1`).
    Privileged,
    /// `user.containers.override_stat` (`xattr_permissions=2`, containers/storage,
    /// strata's rootless extraction).
    Containers,
    /// `user.fuseoverlayfs.override_stat` (a layer root that carries it).
    User,
}

impl OverrideKind {
    /// Every kind, in fuse-overlayfs' order of preference.
    pub const ALL: [OverrideKind; 3] = [
        OverrideKind::Privileged,
        OverrideKind::Containers,
        OverrideKind::User,
    ];

    /// The xattr's name.
    pub fn xattr(self) -> &'static CStr {
        match self {
            OverrideKind::Privileged => c"security.fuseoverlayfs.override_stat",
            OverrideKind::Containers => c"user.containers.override_stat",
            OverrideKind::User => c"user.fuseoverlayfs.override_stat",
        }
    }

    /// The xattr's name as a `str`.
    pub fn name(self) -> &'static str {
        match self {
            OverrideKind::Privileged => "security.fuseoverlayfs.override_stat",
            OverrideKind::Containers => CONTAINERS_RECORD,
            OverrideKind::User => "user.fuseoverlayfs.override_stat",
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
}

/// True for the name of an override record (never written into a layer as a file's
/// own xattr: the store turns it back into owners).
pub fn is_record(name: &[u8]) -> bool {
    OverrideKind::ALL
        .iter()
        .any(|k| k.name().as_bytes() == name)
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

/// The record containers/storage writes: `UID:GID:0MODE[:TYPE]` (TYPE as [`parse`]
/// reads it, e.g. `char-1-3`).
pub fn format_typed(uid: u32, gid: u32, perm: u32, kind: Option<&str>) -> String {
    match kind {
        Some(k) => format!("{uid}:{gid}:0{:o}:{k}", perm & 0o7777),
        None => format!("{uid}:{gid}:0{:o}", perm & 0o7777),
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
    fn writes_as_containers_storage() {
        assert_eq!(format_typed(1, 2, 0o100644, None), "1:2:0644");
        let v = format_typed(0, 6, 0o666, Some("char-1-3"));
        assert_eq!(v, "0:6:0666:char-1-3");
        let o = parse(v.as_bytes()).expect("parses");
        assert_eq!(o.special, Some((libc::S_IFCHR, libc::makedev(1, 3))));
    }
}
