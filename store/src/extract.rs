//! Safe extraction of a layer tar into a fresh directory, converting OCI whiteouts
//! (`.wh.NAME`, `.wh..wh..opq`) to the overlay format stratafs and the kernel read.
//!
//! The destination is a private temp dir no one else writes to, so checking each
//! ancestor with `lstat` before creating an entry is race-free: nothing is ever
//! written beneath a symlink, and names with `..` or a leading `/` are refused.
//!
//! Owners: every entry is chowned to the tar's uid/gid. Where that is not permitted
//! (rootless, or an id outside the user namespace: EPERM/EINVAL), the entry stays owned
//! by the extracting user and the tar's owner and permission bits are recorded the way
//! containers/storage and fuse-overlayfs do, in `user.containers.override_stat` =
//! `UID:GID:0MODE` (`:pipe` appended for fifos), so a FUSE layer can present them.
//! Symlinks (and, on Linux, fifos) cannot carry user xattrs: theirs are not recorded.
//! Layers written from such a tree (`commit`, `image create`, `export`) take owner and
//! mode back from the record, and a layer's own `override_stat` xattr is never applied.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use crate::error::{IoContext, StoreError};
use crate::fsutil::sanitize;

/// How to extract: as root (owners, device nodes, trusted xattrs) or rootless.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Whether the process may chown, mknod devices and set `trusted.*` xattrs.
    pub as_root: bool,
}

impl ExtractOptions {
    /// Options for the current process (root iff euid 0).
    pub fn current() -> Self {
        ExtractOptions {
            as_root: nix::unistd::geteuid().is_root(),
        }
    }
}

use ovlformat::whiteout::{OPAQUE_TRUSTED, OPAQUE_USER, OPAQUE_YES};

/// Names aufs kept its own metadata under (the opaque marker aside).
const AUFS_META: &str = ".wh..wh.";

/// Owner and mode a rootless extraction could not apply, as containers/storage and
/// fuse-overlayfs record them: `UID:GID:0MODE[:TYPE]`.
const OVERRIDE_STAT: &str = ovlformat::override_stat::CONTAINERS_RECORD;

struct DirMeta {
    path: PathBuf,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

struct Extractor<'a> {
    dest: &'a Path,
    layer: &'a str,
    opts: ExtractOptions,
    dirs: Vec<DirMeta>,
}

impl Extractor<'_> {
    fn unsafe_entry(&self, entry: &Path, reason: impl Into<String>) -> StoreError {
        StoreError::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Makes sure every ancestor of `rel` is a real directory inside dest (creating
    /// missing ones if `create`, else refusing them), refusing to go beneath a symlink,
    /// a non-directory or a whiteout name (`.wh.*` is reserved for whiteouts by the OCI
    /// spec, and a layer dir written without mknod holds its whiteouts under such names).
    fn prepare_parents(&self, rel: &Path, create: bool) -> Result<(), StoreError> {
        let mut cur = self.dest.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for c in parent.components() {
            if c.as_os_str()
                .as_bytes()
                .starts_with(ovlformat::whiteout::WH_PREFIX.as_bytes())
            {
                return Err(self.unsafe_entry(rel, "lies beneath a whiteout name"));
            }
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(rel, "lies beneath a symlink"));
                }
                Ok(_) => return Err(self.unsafe_entry(rel, "lies beneath a non-directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => {
                    return Err(self.unsafe_entry(rel, "lies beneath a missing directory"));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur).ctx("create dir", &cur)?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                        .ctx("chmod", &cur)?;
                }
                Err(e) => return Err(StoreError::io("stat", &cur, e)),
            }
        }
        Ok(())
    }

    /// Removes whatever is at `path` (a later entry replaces an earlier one).
    fn clear(&self, path: &Path, keep_dir: bool) -> Result<(), StoreError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("stat", path, e)),
            Ok(m) if m.is_dir() => {
                if keep_dir {
                    Ok(())
                } else {
                    crate::fsutil::remove_tree(path)
                }
            }
            Ok(_) => fs::remove_file(path).ctx("remove", path),
        }
    }

    fn set_opaque(&self, dir: &Path) -> Result<(), StoreError> {
        let flags = rustix::fs::XattrFlags::empty();
        if self.opts.as_root
            && rustix::fs::lsetxattr(dir, OPAQUE_TRUSTED, OPAQUE_YES, flags).is_ok()
        {
            return Ok(());
        }
        rustix::fs::lsetxattr(dir, OPAQUE_USER, OPAQUE_YES, flags)
            .map_err(|e| StoreError::io("set opaque xattr on", dir, e.into()))
    }

    /// Writes a whiteout for `target`: char 0/0, or the `.wh.NAME` file when mknod is
    /// not permitted.
    fn whiteout(&self, target: &Path, marker: &Path) -> Result<(), StoreError> {
        self.clear(target, false)?;
        match mknod(target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EPERM) => {
                self.clear(marker, false)?;
                fs::write(marker, b"").ctx("create whiteout", marker)
            }
            Err(e) => Err(StoreError::io("mknod whiteout", target, e.into())),
        }
    }

    /// Gives `path` the tar's owner. Where that is not permitted (rootless, ids outside
    /// the user namespace), records owner and mode as containers/storage does, in
    /// `user.containers.override_stat` = `UID:GID:0MODE[:TYPE]`, for a FUSE layer
    /// (fuse-overlayfs, stratafs) to present; symlinks cannot carry user xattrs and
    /// keep the extracting user as owner.
    fn own(
        &self,
        path: &Path,
        uid: u64,
        gid: u64,
        mode: u32,
        kind: Option<&str>,
    ) -> Result<(), StoreError> {
        let (Ok(u), Ok(g)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(StoreError::bad(
                path,
                format!("owner {uid}:{gid} out of range"),
            ));
        };
        let err = match std::os::unix::fs::lchown(path, Some(u), Some(g)) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let denied = matches!(err.raw_os_error(), Some(libc::EPERM | libc::EINVAL));
        if self.opts.as_root || !denied {
            return Err(StoreError::io("chown", path, err));
        }
        if kind == Some("symlink") {
            log::debug!("{}: symlink owner {uid}:{gid} not recorded", path.display());
            return Ok(());
        }
        let value = ovlformat::override_stat::format_typed(u, g, mode, kind);
        let flags = rustix::fs::XattrFlags::empty();
        if let Err(e) = rustix::fs::lsetxattr(path, OVERRIDE_STAT, value.as_bytes(), flags) {
            log::warn!(
                "{}: owner {uid}:{gid} not recorded ({OVERRIDE_STAT}: {e})",
                path.display()
            );
        }
        Ok(())
    }

    fn apply_meta(
        &self,
        path: &Path,
        header: &tar::Header,
        xattrs: &[(String, Vec<u8>)],
        symlink: bool,
    ) -> Result<(), StoreError> {
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let kind = match header.entry_type() {
            tar::EntryType::Fifo => Some("pipe"),
            _ if symlink => Some("symlink"),
            _ => None,
        };
        self.own(
            path,
            header.uid().unwrap_or(0),
            header.gid().unwrap_or(0),
            mode,
            kind,
        )?;
        for (name, value) in xattrs {
            if crate::layer_tree::is_private_xattr(name) {
                continue; // never let a layer forge overlay or owner metadata
            }
            if let Err(e) =
                rustix::fs::lsetxattr(path, name.as_str(), value, rustix::fs::XattrFlags::empty())
            {
                log::warn!("{}: xattr {name} not set: {e}", path.display());
            }
        }
        if !symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("chmod", path)?;
        }
        let mtime = FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0);
        filetime::set_symlink_file_times(path, mtime, mtime).ctx("set times", path)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), StoreError> {
        let raw = entry.path_bytes().into_owned();
        let shown = PathBuf::from(OsStr::from_bytes(&raw));
        let rel = sanitize(&raw).map_err(|r| self.unsafe_entry(&shown, r))?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            return Ok(()); // "./": the layer root itself
        }
        self.prepare_parents(&rel, true)?;
        let path = self.dest.join(&rel);
        let name = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
        if ovlformat::whiteout::is_opaque_marker(name) {
            let dir = path.parent().unwrap_or(self.dest);
            return self.set_opaque(dir);
        }
        if name.starts_with(AUFS_META.as_bytes()) {
            // aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): skipped, as docker does.
            log::debug!("{}: aufs metadata entry skipped", rel.display());
            return Ok(());
        }
        if let Some(hidden) = ovlformat::whiteout::whited_out(name) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.unsafe_entry(
                    &rel,
                    "whiteout of an invalid name (the directory itself or its parent)",
                ));
            }
            let target = path.with_file_name(OsStr::from_bytes(hidden));
            return self.whiteout(&target, &path);
        }
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().ctx("read pax headers of", &shown)? {
            for ext in exts {
                let ext = ext.ctx("read pax header of", &shown)?;
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let header = entry.header().clone();
        match kind {
            tar::EntryType::Directory => {
                self.clear(&path, true)?;
                if !path.exists() {
                    fs::create_dir(&path).ctx("create dir", &path)?;
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .ctx("chmod", &path)?;
                for (name, value) in &xattrs {
                    if !crate::layer_tree::is_private_xattr(name) {
                        let _ = rustix::fs::lsetxattr(
                            &path,
                            name.as_str(),
                            value,
                            rustix::fs::XattrFlags::empty(),
                        );
                    }
                }
                self.dirs.push(DirMeta {
                    path,
                    mode: header.mode().unwrap_or(0o755) & 0o7777,
                    uid: header.uid().unwrap_or(0),
                    gid: header.gid().unwrap_or(0),
                    mtime: header.mtime().unwrap_or(0),
                });
                Ok(())
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.clear(&path, false)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .ctx("create", &path)?;
                io::copy(&mut entry, &mut f).map_err(|e| StoreError::UnsafeEntry {
                    layer: self.layer.to_string(),
                    entry: shown.display().to_string(),
                    reason: format!("reading contents: {e}"),
                })?;
                drop(f);
                self.apply_meta(&path, &header, &xattrs, false)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&rel, "symlink without a target"))?
                    .into_owned();
                self.clear(&path, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .ctx("symlink", &path)?;
                self.apply_meta(&path, &header, &xattrs, true)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&rel, "hard link without a target"))?
                    .into_owned();
                let trel = sanitize(&target).map_err(|r| {
                    self.unsafe_entry(&rel, format!("hard link target escapes the layer: {r}"))
                })?;
                if trel.as_os_str().is_empty() {
                    return Err(self.unsafe_entry(&rel, "hard link to the layer root"));
                }
                self.prepare_parents(&trel, false).map_err(|e| match e {
                    StoreError::UnsafeEntry { reason, .. } => {
                        self.unsafe_entry(&rel, format!("hard link target {reason}"))
                    }
                    other => other,
                })?;
                let tpath = self.dest.join(&trel);
                match fs::symlink_metadata(&tpath) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => return Err(self.unsafe_entry(&rel, "hard link to a directory")),
                    Err(_) => {
                        return Err(self.unsafe_entry(
                            &rel,
                            format!("hard link target {} is not in this layer", trel.display()),
                        ));
                    }
                }
                if tpath == path {
                    return Ok(());
                }
                self.clear(&path, false)?;
                fs::hard_link(&tpath, &path).ctx("hard link", &path)
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                let (flag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        if !self.opts.as_root {
                            log::warn!("{}: device node skipped (not root)", rel.display());
                            return Ok(());
                        }
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let flag = if kind == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, makedev(u64::from(major), u64::from(minor)))
                    }
                };
                self.clear(&path, false)?;
                mknod(&path, flag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| StoreError::io("mknod", &path, e.into()))?;
                self.apply_meta(&path, &header, &xattrs, false)
            }
            tar::EntryType::XGlobalHeader => Ok(()),
            other => Err(self.unsafe_entry(&rel, format!("unsupported entry type {other:?}"))),
        }
    }

    fn finish_dirs(&mut self) -> Result<(), StoreError> {
        // Deepest first, so setting a parent's mtime is not undone by its children.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
        for d in &self.dirs {
            self.own(&d.path, d.uid, d.gid, d.mode, None)?;
            fs::set_permissions(&d.path, fs::Permissions::from_mode(d.mode))
                .ctx("chmod", &d.path)?;
            let t = FileTime::from_unix_time(d.mtime as i64, 0);
            filetime::set_symlink_file_times(&d.path, t, t).ctx("set times", &d.path)?;
        }
        Ok(())
    }
}

/// Extracts the uncompressed layer tar `reader` into the empty directory `dest`.
/// `layer` names the layer in errors. Rejects unsafe entries naming the entry.
pub fn extract_layer<R: Read>(
    reader: R,
    dest: &Path,
    layer: &str,
    opts: ExtractOptions,
) -> Result<(), StoreError> {
    let mut archive = tar::Archive::new(reader);
    let mut ex = Extractor {
        dest,
        layer,
        opts,
        dirs: Vec::new(),
    };
    let entries = archive
        .entries()
        .map_err(|e| StoreError::bad(layer, format!("not a tar: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::bad(layer, format!("reading tar: {e}")))?;
        ex.entry(entry)?;
    }
    ex.finish_dirs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(name, type, link target)` entries, regular files holding "x".
    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            let data: &[u8] = if *kind == tar::EntryType::Regular {
                b"x"
            } else {
                b""
            };
            h.set_size(data.len() as u64);
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap_or_else(|e| panic!("{e}"));
        }
        b.into_inner().unwrap_or_else(|e| panic!("{e}"))
    }

    fn extract(
        entries: &[(&str, tar::EntryType, &str)],
    ) -> (tempfile::TempDir, Result<(), String>) {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = t.path().join("layer");
        fs::create_dir(&dest).unwrap_or_else(|e| panic!("{e}"));
        let opts = ExtractOptions { as_root: false };
        let r = extract_layer(&tar_of(entries)[..], &dest, "test", opts).map_err(|e| e.to_string());
        (t, r)
    }

    #[test]
    fn climbing_whiteouts_and_names_beneath_whiteouts_refused() {
        use tar::EntryType::{Directory, Regular};
        for (entries, needle) in [
            (
                vec![(".wh..", Regular, "")],
                "\".wh..\": whiteout of an invalid name",
            ),
            (
                vec![(".wh...", Regular, "")],
                "\".wh...\": whiteout of an invalid name",
            ),
            (
                vec![("d/", Directory, ""), ("d/.wh...", Regular, "")],
                "\"d/.wh...\": whiteout of an invalid name",
            ),
            (
                vec![(".wh.../x", Regular, "")],
                "\".wh.../x\": lies beneath a whiteout name",
            ),
        ] {
            let (t, r) = extract(&entries);
            let err = r.err().unwrap_or_else(|| panic!("{entries:?} extracted"));
            assert!(err.contains(needle), "{err} should say {needle}");
            assert!(!t.path().join("x").exists());
        }
    }

    #[test]
    fn hard_links_through_symlinks_or_to_missing_dirs_refused() {
        use tar::EntryType::{Link, Symlink};
        let (t, r) = extract(&[("s", Symlink, "/etc"), ("h", Link, "s/passwd")]);
        let err = r.err().unwrap_or_default();
        assert!(
            err.contains("hard link target lies beneath a symlink"),
            "{err}"
        );
        assert!(!t.path().join("layer/h").exists());
        let (t, r) = extract(&[("h", Link, "a/b/c")]);
        let err = r.err().unwrap_or_default();
        assert!(
            err.contains("hard link target lies beneath a missing directory"),
            "{err}"
        );
        assert!(
            !t.path().join("layer/a").exists(),
            "target dirs made on the way"
        );
    }

    #[test]
    fn aufs_metadata_skipped_dir_over_symlink_is_real() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let (t, r) = extract(&[
            (".wh..wh.aufs", Regular, ""),
            ("d", Symlink, "/tmp"),
            ("d/", Directory, ""),
            ("d/f", Regular, ""),
        ]);
        r.unwrap_or_else(|e| panic!("{e}"));
        let layer = t.path().join("layer");
        assert!(!layer.join(".wh..wh.aufs").exists());
        assert!(!layer.join(".wh.aufs").exists());
        let m = fs::symlink_metadata(layer.join("d")).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.is_dir());
        assert!(layer.join("d/f").is_file());
    }
}
