//! A container's filesystem changes: `strata diff` (A/C/D like `docker diff`) and
//! `strata export` (the flattened rootfs as a tar, whiteouts and opaque dirs applied).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};
use crate::tarwrite::{is_opaque, is_whiteout, sorted_children};
use crate::{Container, Store};

/// Kind of a change, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Added.
    Added,
    /// Changed (exists below too).
    Changed,
    /// Deleted.
    Deleted,
}

impl ChangeKind {
    /// `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One change: kind and absolute path inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// A/C/D.
    pub kind: ChangeKind,
    /// Path as seen inside the container (`/etc/motd`).
    pub path: String,
}

fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    for l in lowers {
        match fs::symlink_metadata(l.join(rel)) {
            Ok(m) if is_whiteout(&m) => return false,
            Ok(_) => return true,
            Err(_) => {}
        }
    }
    false
}

fn walk_upper(
    dir: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
) -> Result<(), StoreError> {
    for child in sorted_children(dir)? {
        let Some(fname) = child.file_name() else {
            continue;
        };
        let r = rel.join(fname);
        let meta = fs::symlink_metadata(&child).ctx("stat", &child)?;
        let name = fname.to_string_lossy();
        let (kind, shown) = if is_whiteout(&meta) {
            (ChangeKind::Deleted, r.clone())
        } else if let Some(hidden) = name.strip_prefix(".wh.").filter(|_| meta.is_file()) {
            if hidden == ".wh..opq" {
                continue;
            }
            (ChangeKind::Deleted, rel.join(hidden))
        } else if in_lowers(lowers, &r) {
            (ChangeKind::Changed, r.clone())
        } else {
            (ChangeKind::Added, r.clone())
        };
        out.push(Change {
            kind,
            path: format!("/{}", shown.display()),
        });
        if meta.is_dir() {
            walk_upper(&child, &r, lowers, out)?;
        }
    }
    Ok(())
}

impl Store {
    /// The changes in a container's upper relative to its image and init layer.
    pub fn container_changes(&self, c: &Container) -> Result<Vec<Change>, StoreError> {
        let lowers = self.container_lower_dirs(c)?;
        let mut out = Vec::new();
        walk_upper(&c.upper, Path::new(""), &lowers, &mut out)?;
        Ok(out)
    }

    /// Writes the container's flattened rootfs (lowers, init layer and upper merged
    /// with overlay rules) as a tar to `out`.
    pub fn export_container<W: Write>(&self, c: &Container, out: W) -> Result<W, StoreError> {
        let mut stack = self.container_lower_dirs(c)?;
        stack.reverse(); // bottom first
        stack.push(c.upper.clone());
        let mut merged: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for layer in &stack {
            apply_layer(layer, Path::new(""), &mut merged)?;
        }
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        for (rel, src) in &merged {
            b.append_path_with_name(src, rel)
                .map_err(|e| StoreError::io("archive", src, e))?;
        }
        b.into_inner().ctx("finish tar of", &c.dir)
    }
}

fn drop_below(merged: &mut BTreeMap<PathBuf, PathBuf>, rel: &Path) {
    let doomed: Vec<PathBuf> = merged
        .range(rel.to_path_buf()..)
        .take_while(|(k, _)| k.starts_with(rel))
        .filter(|(k, _)| k.as_path() != rel)
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        merged.remove(&k);
    }
}

fn apply_layer(
    dir: &Path,
    rel: &Path,
    merged: &mut BTreeMap<PathBuf, PathBuf>,
) -> Result<(), StoreError> {
    if !rel.as_os_str().is_empty() && is_opaque(dir) {
        drop_below(merged, rel);
    }
    let children = sorted_children(dir)?;
    if children
        .iter()
        .any(|c| c.file_name().is_some_and(|n| n == ".wh..wh..opq"))
        && !rel.as_os_str().is_empty()
    {
        drop_below(merged, rel);
    }
    for child in children {
        let Some(fname) = child.file_name() else {
            continue;
        };
        let r = rel.join(fname);
        let meta = fs::symlink_metadata(&child).ctx("stat", &child)?;
        let name = fname.to_string_lossy();
        if is_whiteout(&meta) {
            drop_below(merged, &r);
            merged.remove(&r);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.").filter(|_| meta.is_file()) {
            if hidden != ".wh..opq" {
                let h = rel.join(hidden);
                drop_below(merged, &h);
                merged.remove(&h);
            }
            continue;
        }
        if meta.is_dir() {
            if merged.get(&r).is_some_and(|p| !p.is_dir()) {
                merged.remove(&r);
            }
            merged.insert(r.clone(), child.clone());
            apply_layer(&child, &r, merged)?;
        } else {
            drop_below(merged, &r);
            merged.insert(r, child);
        }
    }
    Ok(())
}

impl Store {
    /// Writes the container's flattened rootfs to the file `out` (temp name in the
    /// same dir, renamed into place when complete).
    pub fn export_container_to_file(&self, c: &Container, out: &Path) -> Result<(), StoreError> {
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".strata-export-")
            .tempfile_in(dir)
            .ctx("create temp file in", dir)?;
        let w = self.export_container(c, std::io::BufWriter::new(tmp.as_file()))?;
        w.into_inner()
            .map_err(|e| StoreError::io("write", out, e.into_error()))?;
        tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
        tmp.persist(out)
            .map_err(|e| StoreError::io("rename into", out, e.error))?;
        Ok(())
    }
}
