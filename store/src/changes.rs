//! A container's filesystem changes: `strata diff` (A/C/D like `docker diff`) and
//! `strata export` (the flattened rootfs as a tar, whiteouts and opaque dirs applied).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, StoreError};
use crate::overlay::{DirRef, Lowers, Node, lower_of_upper_dir, read_layer_dir};
use crate::tarwrite::write_merged;
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

fn push(out: &mut Vec<Change>, kind: ChangeKind, rel: &Path) {
    out.push(Change {
        kind,
        path: format!("/{}", rel.display()),
    });
}

/// Changes below the upper dir `dir` at `rel`, whose lower path is `rel` itself.
fn walk_upper(
    lowers: &Lowers,
    dir: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let l = read_layer_dir(dir)?;
    let mut names: BTreeSet<&OsString> = l.entries.keys().chain(&l.whiteouts).collect();
    let hidden = if l.opaque && !rel.as_os_str().is_empty() {
        lowers.children(rel)?
    } else {
        BTreeMap::new()
    };
    names.extend(hidden.keys());
    for name in names {
        let r = rel.join(name);
        let Some((path, meta)) = l.entries.get(name) else {
            // Whited out, or hidden by the opaque dir: deleted if the image had it.
            if hidden.contains_key(name) || lowers.lookup(&r).is_some() {
                push(out, ChangeKind::Deleted, &r);
            }
            continue;
        };
        let kind = if lowers.lookup(&r).is_some() {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        push(out, kind, &r);
        if !meta.is_dir() {
            continue;
        }
        match lower_of_upper_dir(path, Some(rel))? {
            (Some(target), true) => {
                let d = DirRef {
                    upper: Some(path.clone()),
                    lower: Some(target),
                };
                walk_moved(lowers, &d, &r, out)?;
            }
            _ => walk_upper(lowers, path, &r, out)?,
        }
    }
    Ok(())
}

/// Changes below a renamed (redirected) dir now at `rel`: its merged content against
/// what the image has at `rel`.
fn walk_moved(
    lowers: &Lowers,
    dir: &DirRef,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let mut old = lowers.children(rel)?;
    let mut items: BTreeMap<OsString, Option<Node>> = BTreeMap::new();
    for node in lowers.merged_children(dir)? {
        items.insert(node.name.clone(), Some(node));
    }
    for name in old.keys() {
        items.entry(name.clone()).or_insert(None);
    }
    for (name, node) in items {
        let r = rel.join(&name);
        let was = old.remove(&name).is_some();
        let Some(node) = node else {
            push(out, ChangeKind::Deleted, &r);
            continue;
        };
        let kind = if was {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        push(out, kind, &r);
        if let Some(d) = &node.dir {
            walk_moved(lowers, d, &r, out)?;
        }
    }
    Ok(())
}

impl Store {
    /// The changes in a container's upper relative to its image and init layer.
    pub fn container_changes(&self, c: &Container) -> Result<Vec<Change>, StoreError> {
        let lowers = Lowers::new(self.container_lower_dirs(c)?);
        let mut out = Vec::new();
        walk_upper(&lowers, &c.upper, Path::new(""), &mut out)?;
        Ok(out)
    }

    /// Writes the container's flattened rootfs (lowers, init layer and upper merged
    /// with overlay rules) as a tar to `out`.
    pub fn export_container<W: Write>(&self, c: &Container, out: W) -> Result<W, StoreError> {
        let lowers = Lowers::new(self.container_lower_dirs(c)?);
        write_merged(&c.upper, &lowers, out)
    }

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
