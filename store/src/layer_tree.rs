//! Reads overlay layer trees the way overlayfs does, for `commit`, `diff` and `export`:
//! whiteouts in every on-disk format (char 0/0, `.wh.NAME`, the `overlay.whiteout`
//! xattr), opaque dirs (xattr or `.wh..wh..opq`), redirected dirs (a lower dir renamed
//! in the upper carries `overlay.redirect` = `/old/path` or a sibling's name) and
//! metacopy files (metadata in the upper, data in a lower).
//!
//! Lowers come from the store (imported or committed layers), which never carry
//! redirects, so a lower dir is found by its path from the top of the lower stack.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};

use ovlformat::override_stat::OverrideKind;
pub use ovlformat::whiteout::WH_OPAQUE as OPAQUE_MARKER;
use ovlformat::whiteout::{OPAQUE_XATTRS, OPAQUE_YES, whiteout_name};
pub use ovlformat::xattr::get as get_xattr;

use ovlformat::xattr::{get_overlay as overlay_xattr, key};

/// Whether an xattr belongs to the overlay machinery (kernel overlayfs, fuse-overlayfs,
/// stratafs, containers/storage) rather than to the file: never written into layers.
/// Override records are not the file's own either: the store turns them back into owners.
pub fn is_private_xattr(name: &str) -> bool {
    let name = name.as_bytes();
    ovlformat::xattr::is_private(name) || ovlformat::override_stat::is_record(name)
}

/// Owner and permission bits recorded in an override_stat xattr (by a rootless
/// extraction, containers/storage or fuse-overlayfs' `xattr_permissions=`), the first
/// well-formed one in fuse-overlayfs' order of preference.
pub fn override_stat(path: &Path) -> Option<(u64, u64, u32)> {
    OverrideKind::ALL.iter().find_map(|k| {
        let o = ovlformat::override_stat::parse(&get_xattr(path, k.xattr())?)?;
        Some((u64::from(o.uid), u64::from(o.gid), o.perm))
    })
}

/// Whether a directory is opaque by xattr (`overlay.opaque=y` in `trusted.` or `user.`,
/// or `user.fuseoverlayfs.opaque=y`). `.wh..wh..opq` inside is checked by [`read_layer_dir`].
pub fn is_opaque_xattr(path: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|n| get_xattr(path, *n).as_deref() == Some(OPAQUE_YES))
}

/// Whether `path` is a regular file (a `.wh.` marker), not following a symlink.
fn is_marker(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Whether `meta` is an overlay whiteout (char device 0/0).
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// One directory of one layer, classified.
#[derive(Debug, Default)]
pub struct LayerDir {
    /// Real entries by name: path and metadata.
    pub entries: BTreeMap<OsString, (PathBuf, fs::Metadata)>,
    /// Names whited out here (in any format).
    pub whiteouts: BTreeSet<OsString>,
    /// Whether the directory is opaque (xattr or marker file).
    pub opaque: bool,
}

/// Reads and classifies the directory `dir` of a layer.
pub fn read_layer_dir(dir: &Path) -> Result<LayerDir, StoreError> {
    let mut out = LayerDir {
        opaque: is_opaque_xattr(dir),
        ..LayerDir::default()
    };
    for child in crate::fsutil::list_dir(dir)? {
        let Some(name) = child.file_name().map(OsStr::to_os_string) else {
            continue;
        };
        let meta = fs::symlink_metadata(&child).ctx("stat", &child)?;
        let bytes = name.as_bytes();
        if meta.is_file() && ovlformat::whiteout::is_opaque_marker(bytes) {
            out.opaque = true;
        } else if let Some(hidden) =
            ovlformat::whiteout::whited_out(bytes).filter(|_| meta.is_file())
        {
            out.whiteouts
                .insert(OsStr::from_bytes(hidden).to_os_string());
        } else if is_whiteout(&meta)
            || (meta.is_file() && meta.len() == 0 && overlay_xattr(&child, key::WHITEOUT).is_some())
        {
            out.whiteouts.insert(name);
        } else {
            out.entries.insert(name, (child, meta));
        }
    }
    for w in &out.whiteouts {
        out.entries.remove(w);
    }
    Ok(out)
}

/// Where a renamed upper dir's lower content lives: `overlay.redirect` resolved against
/// `parent_lower` (the lower path of its parent). `Ok(None)` if the dir has no redirect.
pub fn redirect_of(dir: &Path, parent_lower: Option<&Path>) -> Result<Option<PathBuf>, StoreError> {
    let Some(raw) = overlay_xattr(dir, key::REDIRECT) else {
        return Ok(None);
    };
    let bad = |why: &str| {
        StoreError::bad(
            dir,
            format!(
                "overlay redirect {:?} refused: {why}",
                String::from_utf8_lossy(&raw)
            ),
        )
    };
    let (absolute, rest) = match raw.strip_prefix(b"/") {
        Some(r) => (true, r),
        None => (false, &raw[..]),
    };
    if rest.is_empty() || rest.contains(&0) {
        return Err(bad("empty"));
    }
    let rel = crate::fsutil::sanitize(rest).map_err(|r| bad(&r))?;
    if absolute {
        Ok(Some(rel))
    } else {
        Ok(parent_lower.map(|p| p.join(rel)))
    }
}

/// A stack of read-only layer dirs, top-most first, read with overlay rules.
#[derive(Debug, Clone)]
pub struct Lowers {
    dirs: Vec<PathBuf>,
}

impl Lowers {
    /// The stack `dirs`, top-most first (the `lowerdir=` order).
    pub fn new(dirs: Vec<PathBuf>) -> Lowers {
        Lowers { dirs }
    }

    /// The layer dirs that make up the directory `rel` in the merged view, top-most
    /// first (stopping below an opaque one); empty if `rel` is not a directory there.
    pub fn dir_sources(&self, rel: &Path) -> Vec<PathBuf> {
        let mut cur: Vec<PathBuf> = self.dirs.clone();
        for comp in rel.components() {
            let name = comp.as_os_str();
            let mut next = Vec::new();
            for src in &cur {
                let p = src.join(name);
                if is_marker(&src.join(whiteout_name(name))) {
                    break;
                }
                let Ok(meta) = fs::symlink_metadata(&p) else {
                    continue;
                };
                if !meta.is_dir() {
                    // A whiteout or non-directory hides everything below it.
                    break;
                }
                let opaque = is_opaque_xattr(&p) || is_marker(&p.join(OPAQUE_MARKER));
                next.push(p);
                if opaque {
                    break;
                }
            }
            if next.is_empty() {
                return next;
            }
            cur = next;
        }
        cur
    }

    /// The top-most entry at `rel` in the merged view, if any (a few `lstat`s per
    /// layer, not a listing: `diff` asks this for every entry of the upper).
    pub fn lookup(&self, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
        let (parent, name) = (rel.parent()?, rel.file_name()?);
        let marker = whiteout_name(name);
        for src in self.dir_sources(parent) {
            if is_marker(&src.join(&marker)) {
                return None;
            }
            let p = src.join(name);
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            let xattr_whiteout =
                meta.is_file() && meta.len() == 0 && overlay_xattr(&p, "whiteout").is_some();
            if is_whiteout(&meta) || xattr_whiteout {
                return None;
            }
            return Some((p, meta));
        }
        None
    }

    /// Merged entries of the lower directory `rel`, with their lower paths.
    pub(crate) fn children(
        &self,
        rel: &Path,
    ) -> Result<BTreeMap<OsString, (PathBuf, fs::Metadata)>, StoreError> {
        let mut out = BTreeMap::new();
        let mut hidden = BTreeSet::new();
        for src in self.dir_sources(rel) {
            let l = read_layer_dir(&src)?;
            for (name, e) in l.entries {
                if !hidden.contains(&name) && !out.contains_key(&name) {
                    out.insert(name, e);
                }
            }
            hidden.extend(l.whiteouts);
        }
        // A lower non-directory above a directory hides it, so only the top-most counts.
        Ok(out)
    }
}

/// A directory of the merged view: its upper dir (if any) and its path in the lowers
/// (None when nothing below shows through: opaque, new, or the lowers hold no dir).
#[derive(Debug, Clone)]
pub struct DirRef {
    /// The directory in the upper layer.
    pub upper: Option<PathBuf>,
    /// Its path in the lower stack (differs from its own path below a redirect).
    pub lower: Option<PathBuf>,
}

/// One entry of the merged view.
#[derive(Debug)]
pub struct Node {
    /// Its name in the parent.
    pub name: OsString,
    /// Where the entry lives (its metadata and xattrs).
    pub path: PathBuf,
    /// Its metadata.
    pub meta: fs::Metadata,
    /// Where its content lives: `path`, except for metacopy files (data in a lower).
    pub data: PathBuf,
    /// Whether it comes from the upper layer.
    pub from_upper: bool,
    /// For directories, how to list it.
    pub dir: Option<DirRef>,
}

/// The lower file holding a metacopy upper file's data: its own redirect, else the
/// same path in the lowers. `Ok(None)` when the upper file is not a metacopy.
fn metacopy_data(
    lowers: &Lowers,
    path: &Path,
    lower_path: Option<&Path>,
) -> Result<Option<PathBuf>, StoreError> {
    if overlay_xattr(path, key::METACOPY).is_none() {
        return Ok(None);
    }
    let target = match redirect_of(path, lower_path.and_then(Path::parent))? {
        Some(t) => Some(t),
        None => lower_path.map(Path::to_path_buf),
    };
    match target.and_then(|t| lowers.lookup(&t)) {
        Some((p, m)) if m.is_file() => Ok(Some(p)),
        _ => Err(StoreError::bad(
            path,
            "metacopy file whose data is in no lower layer",
        )),
    }
}

impl Lowers {
    /// The merged entries of `dir` (upper over lowers), sorted by name.
    pub fn merged_children(&self, dir: &DirRef) -> Result<Vec<Node>, StoreError> {
        let mut out: BTreeMap<OsString, Node> = BTreeMap::new();
        let upper = match &dir.upper {
            Some(u) => Some(read_layer_dir(u)?),
            None => None,
        };
        let lower_visible = dir.lower.is_some() && !upper.as_ref().is_some_and(|u| u.opaque);
        if let (Some(lrel), true) = (&dir.lower, lower_visible) {
            for (name, (path, meta)) in self.children(lrel)? {
                if upper.as_ref().is_some_and(|u| u.whiteouts.contains(&name)) {
                    continue;
                }
                let sub = meta.is_dir().then(|| DirRef {
                    upper: None,
                    lower: Some(lrel.join(&name)),
                });
                out.insert(
                    name.clone(),
                    Node {
                        name,
                        data: path.clone(),
                        path,
                        meta,
                        from_upper: false,
                        dir: sub,
                    },
                );
            }
        }
        let lower = dir.lower.as_deref().filter(|_| lower_visible);
        for (name, (path, meta)) in upper.map(|u| u.entries).unwrap_or_default() {
            let below = lower.map(|l| l.join(&name));
            let (data, sub) = if meta.is_dir() {
                let (lower, _) = lower_of_upper_dir(&path, lower)?;
                (
                    path.clone(),
                    Some(DirRef {
                        upper: Some(path.clone()),
                        lower,
                    }),
                )
            } else if meta.is_file() {
                let data = metacopy_data(self, &path, below.as_deref())?;
                (data.unwrap_or_else(|| path.clone()), None)
            } else {
                (path.clone(), None)
            };
            out.insert(
                name.clone(),
                Node {
                    name,
                    path,
                    meta,
                    data,
                    from_upper: true,
                    dir: sub,
                },
            );
        }
        Ok(out.into_values().collect())
    }

    /// The lower file holding a metacopy upper file's data (see [`Node::data`]).
    pub fn data_of(&self, path: &Path, lower_path: Option<&Path>) -> Result<PathBuf, StoreError> {
        Ok(metacopy_data(self, path, lower_path)?.unwrap_or_else(|| path.to_path_buf()))
    }
}

/// Whether a dir is opaque in any format (xattr or marker file).
pub fn is_opaque_dir(dir: &Path) -> bool {
    is_opaque_xattr(dir) || is_marker(&dir.join(OPAQUE_MARKER))
}

/// Where the lowers show through the upper dir `path`, whose parent's lower path is
/// `parent_lower`: nowhere if it is opaque (opaque wins over a redirect, as in the
/// kernel), at its redirect if it is a renamed lower dir, else at the same name.
/// The flag says whether it was renamed.
pub fn lower_of_upper_dir(
    path: &Path,
    parent_lower: Option<&Path>,
) -> Result<(Option<PathBuf>, bool), StoreError> {
    if is_opaque_dir(path) {
        return Ok((None, false));
    }
    if let Some(r) = redirect_of(path, parent_lower)? {
        return Ok((Some(r), true));
    }
    let same = parent_lower.zip(path.file_name()).map(|(p, n)| p.join(n));
    Ok((same, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(path: &Path, name: &str, value: &[u8]) {
        rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
    }

    fn tar_names(data: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(data);
        let mut out = Vec::new();
        for e in ar.entries().unwrap_or_else(|e| panic!("{e}")) {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            out.push(
                String::from_utf8_lossy(&e.path_bytes())
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        out
    }

    /// A userxattr-mode upper (as stratafs writes rootless): `user.overlay.redirect`,
    /// `.wh.NAME` whiteouts and an xattr whiteout.
    #[test]
    fn user_xattr_redirect_and_whiteout_formats() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        for d in ["low/a/sub", "low/keep", "up/moved"] {
            fs::create_dir_all(t.path().join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        for f in ["low/a/x", "low/a/y", "low/a/sub/z", "low/keep/k"] {
            fs::write(t.path().join(f), f).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(up.join(".wh.a"), b"").unwrap_or_else(|e| panic!("{e}"));
        fs::write(up.join("moved/.wh.x"), b"").unwrap_or_else(|e| panic!("{e}"));
        fs::write(up.join("moved/y"), b"").unwrap_or_else(|e| panic!("{e}"));
        set(&up.join("moved/y"), "user.overlay.whiteout", b"");
        set(&up.join("moved"), "user.overlay.redirect", b"/a");
        set(&up.join("moved"), "user.stratafs.origin", b"1");
        set(&up.join("moved"), "user.keep", b"v");
        let lowers = Lowers::new(vec![low.clone()]);
        let out = crate::tarwrite::write_upper(&up, &lowers, Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let names = tar_names(&out);
        for want in [
            ".wh.a",
            "moved",
            "moved/.wh..wh..opq",
            "moved/sub",
            "moved/sub/z",
        ] {
            assert!(names.contains(&want.to_string()), "{want} not in {names:?}");
        }
        for unwanted in ["moved/x", "moved/y", "moved/.wh.x", "keep"] {
            assert!(
                !names.contains(&unwanted.to_string()),
                "{unwanted} in {names:?}"
            );
        }
        let raw = String::from_utf8_lossy(&out);
        assert!(raw.contains("SCHILY.xattr.user.keep"));
        assert!(!raw.contains("stratafs") && !raw.contains("user.overlay"));

        // A redirect may not leave the lowers.
        set(&up.join("moved"), "user.overlay.redirect", b"/../../etc");
        let err = crate::tarwrite::write_upper(&up, &lowers, Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("redirect") && err.contains("moved"), "{err}");
    }
}
