//! Whiteouts and opaque directories in every format overlayfs and OCI layers use:
//! a character device 0/0 (kernel overlayfs), a `.wh.NAME` file (OCI/AUFS layers),
//! the `overlay.whiteout` xattr on a file (kernel 6.7+, in a directory marked with
//! `overlay.whiteouts` or `overlay.opaque=x`); a directory is opaque by
//! `overlay.opaque=y` (or fuse-overlayfs' `user.fuseoverlayfs.opaque`) or by a
//! `.wh..wh..opq` entry inside it.

use std::ffi::{CStr, OsStr, OsString};

/// Prefix of the OCI/AUFS whiteout file format.
pub const WH_PREFIX: &str = ".wh.";
/// The OCI/AUFS opaque-directory marker entry.
pub const WH_OPAQUE: &str = ".wh..wh..opq";

/// The opaque xattr kernel overlayfs writes as root.
pub const OPAQUE_TRUSTED: &CStr = c"trusted.overlay.opaque";
/// The opaque xattr kernel overlayfs writes with `userxattr` (rootless).
pub const OPAQUE_USER: &CStr = c"user.overlay.opaque";
/// xattrs marking a directory opaque (value `y`), in the order they are looked for.
pub const OPAQUE_XATTRS: [&CStr; 3] = [OPAQUE_TRUSTED, OPAQUE_USER, c"user.fuseoverlayfs.opaque"];
/// The value of an opaque xattr that makes the directory opaque.
pub const OPAQUE_YES: &[u8] = b"y";
/// The value of `overlay.opaque` that marks a directory holding xattr whiteouts
/// without being opaque (kernel 6.7+).
pub const OPAQUE_HOLDS_WHITEOUTS: &[u8] = b"x";
/// xattrs making a (regular, empty) file a whiteout.
pub const WHITEOUT_XATTRS: [&CStr; 2] = [c"trusted.overlay.whiteout", c"user.overlay.whiteout"];
/// xattrs marking a directory that may hold xattr whiteouts.
pub const WHITEOUTS_DIR_XATTRS: [&CStr; 2] =
    [c"trusted.overlay.whiteouts", c"user.overlay.whiteouts"];

/// True for a kernel-format whiteout: a character device 0/0 (`mode` with its type
/// bits, `rdev` as stat gives it).
pub fn is_chr_whiteout(mode: u32, rdev: u64) -> bool {
    mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0
}

/// True for any OCI marker entry: a `.wh.NAME` whiteout or the opaque marker.
pub fn is_oci_marker(entry: &[u8]) -> bool {
    entry.starts_with(WH_PREFIX.as_bytes())
}

/// True for the OCI opaque-directory marker entry.
pub fn is_opaque_marker(entry: &[u8]) -> bool {
    entry == WH_OPAQUE.as_bytes()
}

/// `.wh.NAME`: the OCI whiteout entry hiding `name`.
pub fn whiteout_name(name: &OsStr) -> OsString {
    let mut wh = OsString::with_capacity(WH_PREFIX.len() + name.len());
    wh.push(WH_PREFIX);
    wh.push(name);
    wh
}

/// The name an OCI whiteout entry hides (`None` for other names and for the opaque
/// marker).
pub fn whited_out(entry: &[u8]) -> Option<&[u8]> {
    if is_opaque_marker(entry) {
        return None;
    }
    entry.strip_prefix(WH_PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(whiteout_name(OsStr::new("a")), OsStr::new(".wh.a"));
        assert_eq!(whited_out(b".wh.a"), Some(&b"a"[..]));
        assert_eq!(whited_out(WH_OPAQUE.as_bytes()), None);
        assert_eq!(whited_out(b"a"), None);
        assert!(is_oci_marker(b".wh.a") && is_oci_marker(WH_OPAQUE.as_bytes()));
        assert!(!is_oci_marker(b"a.wh.") && is_opaque_marker(b".wh..wh..opq"));
        assert!(is_chr_whiteout(libc::S_IFCHR | 0o600, 0));
        assert!(!is_chr_whiteout(libc::S_IFCHR, 1));
        assert!(!is_chr_whiteout(libc::S_IFREG, 0));
    }
}
