//! Unpacks an image archive (docker-archive or oci-archive tar) into a temp dir:
//! regular files and dirs only, names checked; symlinks inside the archive (as newer
//! `docker save` writes for layers) are resolved lexically and must stay inside.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{IoContext, StoreError};
use crate::fsutil::sanitize;

/// Joins `rel` (relative, from a manifest) to `root`, refusing escapes, and checks it
/// is a regular file. Symlinks on the way (an unpacked `docker save` links layers to
/// blobs) are followed only while they stay inside `root`; the path returned is the
/// resolved one, so nothing outside the archive or layout is ever read.
pub fn safe_file(root: &Path, rel: &str, what: &Path) -> Result<PathBuf, StoreError> {
    let clean = sanitize(rel.as_bytes())
        .map_err(|r| StoreError::bad(what, format!("path {rel:?} refused: {r}")))?;
    let p = root.join(&clean);
    if let Err(e) = fs::symlink_metadata(&p) {
        return Err(StoreError::bad(what, format!("{rel:?} is missing: {e}")));
    }
    let top = fs::canonicalize(root).ctx("resolve", root)?;
    let real = fs::canonicalize(&p)
        .map_err(|e| StoreError::bad(what, format!("{rel:?} cannot be resolved: {e}")))?;
    if !real.starts_with(&top) {
        return Err(StoreError::bad(
            what,
            format!(
                "{rel:?} leads outside the archive (to {}) through a symlink: refused",
                real.display()
            ),
        ));
    }
    match fs::metadata(&real) {
        Ok(m) if m.is_file() => Ok(real),
        Ok(_) => Err(StoreError::bad(
            what,
            format!("{rel:?} is not a regular file"),
        )),
        Err(e) => Err(StoreError::bad(what, format!("{rel:?} is missing: {e}"))),
    }
}

fn lexical_target(link: &Path, target: &[u8]) -> Option<PathBuf> {
    let t = Path::new(OsStr::from_bytes(target));
    let mut out: Vec<&OsStr> = Vec::new();
    if !t.is_absolute() {
        if let Some(parent) = link.parent() {
            for c in parent.components() {
                if let Component::Normal(n) = c {
                    out.push(n);
                }
            }
        }
    }
    for c in t.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

/// Unpacks the archive at `archive` into `dest`.
pub fn unpack_archive(archive: &Path, dest: &Path) -> Result<(), StoreError> {
    let f = fs::File::open(archive).ctx("open", archive)?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| StoreError::bad(archive, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| StoreError::bad(archive, format!("reading archive: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let rel = sanitize(&raw).map_err(|r| StoreError::UnsafeEntry {
            layer: archive.display().to_string(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason: r,
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = dest.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).ctx("create dir", parent)?;
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&path).ctx("create dir", &path)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut out = fs::File::create(&path).ctx("create", &path)?;
                io::copy(&mut entry, &mut out).map_err(|e| {
                    StoreError::bad(archive, format!("reading {}: {e}", rel.display()))
                })?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry.link_name_bytes().map(|c| c.into_owned());
                let is_sym = entry.header().entry_type() == tar::EntryType::Symlink;
                let resolved = target.and_then(|t| {
                    if is_sym {
                        lexical_target(&rel, &t)
                    } else {
                        sanitize(&t).ok()
                    }
                });
                let resolved = resolved.ok_or_else(|| StoreError::UnsafeEntry {
                    layer: archive.display().to_string(),
                    entry: rel.display().to_string(),
                    reason: "link points outside the archive".into(),
                })?;
                links.push((rel, resolved));
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(StoreError::UnsafeEntry {
                    layer: archive.display().to_string(),
                    entry: rel.display().to_string(),
                    reason: format!("unexpected entry type {other:?} in an image archive"),
                });
            }
        }
    }
    for (link, target) in links {
        let src = dest.join(&target);
        let meta = fs::symlink_metadata(&src);
        if !meta.map(|m| m.is_file()).unwrap_or(false) {
            return Err(StoreError::bad(
                archive,
                format!(
                    "link {} -> {} does not name a file in the archive",
                    link.display(),
                    target.display()
                ),
            ));
        }
        let dst = dest.join(&link);
        fs::hard_link(&src, &dst).ctx("link", &dst)?;
    }
    Ok(())
}
