//! A container's filesystem changes: `strata diff` (A/C/D like `docker diff`) and
//! `strata export` (the flattened rootfs as a tar, whiteouts and opaque dirs applied).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::layer_tree::{DirRef, LayerDir, Lowers, Node};
use crate::tarwrite::write_merged;
use crate::upper_walk::{UpperVisitor, walk_upper};
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

/// The changes an upper makes, as `docker diff` lists them: every name of each upper
/// dir in order, deletions (whiteouts, and what an opaque dir hides) among the
/// entries, a renamed dir's content compared against what the image has at its new name.
struct Diff<'a> {
    lowers: &'a Lowers,
    out: Vec<Change>,
    /// Per upper dir being walked: its path and the names it deletes, last name first.
    deleted: Vec<(PathBuf, Vec<OsString>)>,
}

impl Diff<'_> {
    /// Reports the deletions of the innermost dir named before `until` (all if `None`).
    fn flush(&mut self, until: Option<&OsStr>) {
        let Some((rel, names)) = self.deleted.last_mut() else {
            return;
        };
        while let Some(name) = names.last() {
            if until.is_some_and(|u| u <= name.as_os_str()) {
                break;
            }
            push(&mut self.out, ChangeKind::Deleted, &rel.join(name));
            names.pop();
        }
    }
}

impl UpperVisitor for Diff<'_> {
    fn enter(&mut self, _dir: &Path, rel: &Path, l: &LayerDir) -> Result<(), StoreError> {
        let hidden = if l.opaque && !rel.as_os_str().is_empty() {
            self.lowers.children(rel)?
        } else {
            BTreeMap::new()
        };
        let names: BTreeSet<&OsString> = l.whiteouts.iter().chain(hidden.keys()).collect();
        // Whited out, or hidden by the opaque dir: deleted if the image had it.
        let mut gone: Vec<OsString> = names
            .into_iter()
            .filter(|n| !l.entries.contains_key(*n))
            .filter(|n| hidden.contains_key(*n) || self.lowers.lookup(&rel.join(n)).is_some())
            .cloned()
            .collect();
        gone.reverse();
        self.deleted.push((rel.to_path_buf(), gone));
        Ok(())
    }

    fn entry(&mut self, _path: &Path, r: &Path, _meta: &fs::Metadata) -> Result<(), StoreError> {
        self.flush(r.file_name());
        let kind = if self.lowers.lookup(r).is_some() {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        push(&mut self.out, kind, r);
        Ok(())
    }

    fn moved(&mut self, d: &DirRef, r: &Path) -> Result<(), StoreError> {
        walk_moved(self.lowers, d, r, &mut self.out)
    }

    fn leave(&mut self, _rel: &Path) -> Result<(), StoreError> {
        self.flush(None);
        self.deleted.pop();
        Ok(())
    }
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
        let mut diff = Diff {
            lowers: &lowers,
            out: Vec::new(),
            deleted: Vec::new(),
        };
        walk_upper(&c.upper, &mut diff)?;
        Ok(diff.out)
    }

    /// Writes the container's flattened rootfs (lowers, init layer and upper merged
    /// with overlay rules) as a tar to `out`.
    pub fn export_container<W: Write>(&self, c: &Container, out: W) -> Result<W, StoreError> {
        let lowers = Lowers::new(self.container_lower_dirs(c)?);
        write_merged(&c.upper, &lowers, out)
    }

    /// Writes the container's flattened rootfs to the file `out`, which appears only
    /// when complete ([`crate::fsutil::OutputFile`]).
    pub fn export_container_to_file(&self, c: &Container, out: &Path) -> Result<(), StoreError> {
        let pending = crate::fsutil::OutputFile::create(out)?;
        let w = self.export_container(c, std::io::BufWriter::new(pending.file()))?;
        w.into_inner()
            .map_err(|e| StoreError::io("write", out, e.into_error()))?;
        pending.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deletions come among the entries in name order, below a dir after its entry.
    #[test]
    fn changes_in_name_order() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        for d in ["low/d", "up/d"] {
            fs::create_dir_all(t.path().join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        for f in [
            "low/a", "low/c", "low/e", "low/d/x", "low/d/y", "up/b", "up/f", "up/d/y",
        ] {
            fs::write(t.path().join(f), f).unwrap_or_else(|e| panic!("{e}"));
        }
        for f in [
            "up/.wh.a",
            "up/.wh.c",
            "up/.wh.e",
            "up/.wh.zz",
            "up/d/.wh..wh..opq",
        ] {
            fs::write(t.path().join(f), b"").unwrap_or_else(|e| panic!("{e}"));
        }
        let lowers = Lowers::new(vec![low]);
        let mut diff = Diff {
            lowers: &lowers,
            out: Vec::new(),
            deleted: Vec::new(),
        };
        walk_upper(&up, &mut diff).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = diff
            .out
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect();
        assert_eq!(
            got,
            [
                "D /a", "A /b", "D /c", "C /d", "D /d/x", "C /d/y", "D /e", "A /f"
            ]
        );
    }
}
