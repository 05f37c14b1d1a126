//! xattrs: which belong to the overlay machinery (never shown to users, never
//! written into a layer), and reading one whole whatever its size.

use std::path::Path;

/// Prefixes of the overlay's own xattrs: kernel overlayfs (`trusted.overlay.`,
/// `user.overlay.` with `userxattr`), fuse-overlayfs and stratafs.
pub const PRIVATE_PREFIXES: [&str; 5] = [
    "trusted.overlay.",
    "user.overlay.",
    "user.fuseoverlayfs.",
    "trusted.stratafs.",
    "user.stratafs.",
];

/// Where an overlay keeps its own xattrs: `trusted.` as root, `user.` with
/// `userxattr` (rootless), as kernel overlayfs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// `trusted.overlay.*` (needs CAP_SYS_ADMIN).
    Trusted,
    /// `user.overlay.*` (`userxattr`).
    User,
}

/// Keys of the overlay's xattrs, after the namespace ([`Namespace::name`]).
pub mod key {
    /// A directory opaque (`y`) or holding xattr whiteouts (`x`).
    pub const OPAQUE: &str = "overlay.opaque";
    /// A renamed lower directory: where its lower part lives.
    pub const REDIRECT: &str = "overlay.redirect";
    /// An upper file holding metadata only, its data in a lower.
    pub const METACOPY: &str = "overlay.metacopy";
    /// A file that is a whiteout (kernel 6.7+).
    pub const WHITEOUT: &str = "overlay.whiteout";
    /// stratafs' record of the lower object an upper one was copied up from.
    pub const ORIGIN: &str = "stratafs.origin";
}

impl Namespace {
    /// Both, in the order a reader tries them.
    pub const ALL: [Namespace; 2] = [Namespace::Trusted, Namespace::User];

    /// `trusted.` or `user.`.
    pub fn prefix(self) -> &'static str {
        match self {
            Namespace::Trusted => "trusted.",
            Namespace::User => "user.",
        }
    }

    /// `trusted.overlay.` or `user.overlay.`: the prefix a user's own names in it are
    /// escaped beneath.
    pub fn overlay_prefix(self) -> &'static str {
        match self {
            Namespace::Trusted => "trusted.overlay.",
            Namespace::User => "user.overlay.",
        }
    }

    /// The full name of `key` (one of [`key`]) in this namespace.
    pub fn name(self, key: &str) -> String {
        let mut n = String::with_capacity(self.prefix().len() + key.len());
        n.push_str(self.prefix());
        n.push_str(key);
        n
    }
}

/// The value of the overlay xattr `key` of `path` in either namespace (trusted first).
pub fn get_overlay(path: &Path, key: &str) -> Option<Vec<u8>> {
    Namespace::ALL
        .iter()
        .find_map(|ns| get(path, ns.name(key).as_str()))
}

/// True for the overlay's own xattrs, which users neither see nor set.
pub fn is_private(name: &[u8]) -> bool {
    PRIVATE_PREFIXES
        .iter()
        .any(|p| name.starts_with(p.as_bytes()))
}

/// The value of xattr `name` of `path` (not following a symlink), read whole: the
/// buffer grows until the value fits. `None` when it is not set or cannot be read.
pub fn get<N: rustix::path::Arg + Copy>(path: &Path, name: N) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                // The size now (it may have grown since it was asked for).
                let want: usize = rustix::fs::lgetxattr(path, name, &mut [0u8; 0][..]).ok()?;
                buf.resize(want.max(buf.len() * 2), 0);
            }
            Err(_) => return None,
        }
    }
}

/// The names of `path`'s xattrs (not following a symlink), read whole: the buffer
/// grows until the list fits. Empty when there are none or they cannot be listed.
pub fn names(path: &Path) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                return buf[..n]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                let want = rustix::fs::llistxattr(path, &mut [0u8; 0][..]).unwrap_or(0);
                buf.resize(want.max(buf.len() * 2), 0);
            }
            Err(_) => return Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_names() {
        assert!(is_private(b"trusted.overlay.opaque"));
        assert!(is_private(b"user.fuseoverlayfs.override_stat"));
        assert!(is_private(b"user.stratafs.x"));
        assert!(!is_private(b"user.mime_type"));
        assert!(!is_private(b"security.capability"));
        for ns in Namespace::ALL {
            for k in [
                key::OPAQUE,
                key::REDIRECT,
                key::METACOPY,
                key::WHITEOUT,
                key::ORIGIN,
            ] {
                assert!(is_private(ns.name(k).as_bytes()), "{}", ns.name(k));
            }
        }
        assert_eq!(Namespace::User.name(key::REDIRECT), "user.overlay.redirect");
    }

    #[test]
    fn reads_values_and_names_larger_than_the_first_buffer() {
        let file = std::env::temp_dir().join(format!("ovlformat-xattr-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        std::fs::write(&file, b"").expect("create a scratch file");
        let big = vec![b'v'; 1500];
        let names_set: Vec<String> = (0..20)
            .map(|i| format!("user.test_{i:02}_{}", "n".repeat(40)))
            .collect();
        let flags = rustix::fs::XattrFlags::empty();
        let supported = rustix::fs::lsetxattr(&file, "user.big", &big, flags).is_ok();
        if supported {
            for n in &names_set {
                rustix::fs::lsetxattr(&file, n.as_str(), b"1", flags).expect("set xattr");
            }
            assert_eq!(get(&file, "user.big").as_deref(), Some(&big[..]));
            assert_eq!(get(&file, c"user.absent"), None);
            let listed = names(&file);
            assert_eq!(listed.len(), names_set.len() + 1);
            assert!(
                names_set
                    .iter()
                    .all(|n| listed.contains(&n.as_bytes().to_vec()))
            );
        }
        std::fs::remove_file(&file).expect("remove the scratch file");
        assert!(
            supported,
            "the temp dir's file system must take user xattrs"
        );
    }
}
