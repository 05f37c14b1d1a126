//! The one walk of an overlay upper, shared by `commit` (the upper as a diff layer,
//! [`crate::tarwrite`]) and `diff` ([`crate::changes`]): each upper directory read and
//! classified once ([`read_layer_dir`]: entries, whiteouts, opaque), its entries in
//! name order, and below each directory the same choice: a renamed lower dir
//! (`overlay.redirect`) is handed over whole as a merged view, anything else is walked
//! as an upper again. What to make of each step is the visitor's.

use std::fs;
use std::path::Path;

use crate::error::StoreError;
use crate::layer_tree::{DirRef, LayerDir, lower_of_upper_dir, read_layer_dir};

/// What a walk of an upper reports, in this order for each directory: [`enter`]
/// (before any entry), then for each entry by name [`entry`] followed, for a
/// directory, by either its own walk or [`moved`], and last [`leave`].
///
/// It exists so that the two readers of an upper (layer tar, change list) share the
/// recursion and the redirect rule instead of each spelling them.
///
/// [`enter`]: UpperVisitor::enter
/// [`entry`]: UpperVisitor::entry
/// [`moved`]: UpperVisitor::moved
/// [`leave`]: UpperVisitor::leave
pub(crate) trait UpperVisitor {
    /// The upper directory `dir`, at `rel` in the merged view (empty for the root),
    /// classified as `layer`.
    fn enter(&mut self, dir: &Path, rel: &Path, layer: &LayerDir) -> Result<(), StoreError>;

    /// One real entry of the upper at `path`, at `rel` in the merged view.
    fn entry(&mut self, path: &Path, rel: &Path, meta: &fs::Metadata) -> Result<(), StoreError>;

    /// A renamed lower directory now at `rel`: `dir` is its merged view. The walk does
    /// not go below it.
    fn moved(&mut self, dir: &DirRef, rel: &Path) -> Result<(), StoreError>;

    /// The end of the upper directory at `rel`.
    fn leave(&mut self, rel: &Path) -> Result<(), StoreError> {
        let _ = rel;
        Ok(())
    }
}

/// Walks the upper `upper` from its root, reporting to `v`.
pub(crate) fn walk_upper<V: UpperVisitor>(upper: &Path, v: &mut V) -> Result<(), StoreError> {
    walk_dir(upper, Path::new(""), v)
}

fn walk_dir<V: UpperVisitor>(dir: &Path, rel: &Path, v: &mut V) -> Result<(), StoreError> {
    let l = read_layer_dir(dir)?;
    v.enter(dir, rel, &l)?;
    for (fname, (path, meta)) in &l.entries {
        let r = rel.join(fname);
        v.entry(path, &r, meta)?;
        if !meta.is_dir() {
            continue;
        }
        match lower_of_upper_dir(path, Some(rel))? {
            (Some(target), true) => {
                let d = DirRef {
                    upper: Some(path.clone()),
                    lower: Some(target),
                };
                v.moved(&d, &r)?;
            }
            _ => walk_dir(path, &r, v)?,
        }
    }
    v.leave(rel)
}
