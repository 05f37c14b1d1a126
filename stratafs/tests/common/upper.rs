//! What an implementation left in its upper layer on disk: whiteouts, opaque markers,
//! redirects, and the xattrs copy-up carried over — compared against the kernel's upper.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::sys::{get_xattr, list_xattrs};

/// Sorted markers in `upper`: `whiteout P` (char 0/0), `opaque P`, `redirect P`, and
/// `stray P` for any other-format marker (`.wh.*` files, xattr whiteouts) that a writer
/// following DESIGN.md never leaves. `opaque P` is listed only where it changes the
/// view — the top-most lower entry at P is a directory — because the kernel also marks
/// new directories opaque where nothing lies below (an optimisation, not semantics).
pub fn markers(upper: &Path, lowers: &[PathBuf]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(upper, upper, lowers, &mut out);
    out
}

/// Whether the top-most lower holding `rel` holds a directory there.
fn lower_dir_below(lowers: &[PathBuf], rel: &str) -> bool {
    lowers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
        .is_some_and(|md| md.is_dir())
}

fn walk(root: &Path, dir: &Path, lowers: &[PathBuf], out: &mut BTreeSet<String>) {
    let Ok(rd) = fs::read_dir(dir) else {
        out.insert(format!("unreadable {}", dir.display()));
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.insert(format!("whiteout {rel}"));
        } else if name.starts_with(".wh.") {
            out.insert(format!("stray {rel}"));
        } else if md.is_dir() {
            for (attr, tag) in [
                ("trusted.overlay.opaque", "opaque"),
                ("trusted.overlay.redirect", "redirect"),
            ] {
                if let Ok(v) = get_xattr(&p, attr) {
                    if tag == "opaque" && v == b"y" && !lower_dir_below(lowers, &rel) {
                        continue;
                    }
                    if tag == "opaque" && v != b"y" {
                        out.insert(format!("opaque={} {rel}", String::from_utf8_lossy(&v)));
                    } else {
                        out.insert(format!("{tag} {rel}"));
                    }
                }
            }
            walk(root, &p, lowers, out);
        } else if get_xattr(&p, "trusted.overlay.whiteout").is_ok() {
            out.insert(format!("stray {rel}"));
        }
    }
}

/// The xattrs of `p` a copy-up must carry over: all but the overlay implementations' own
/// bookkeeping (`*.overlay.*`, `trusted.stratafs.*`, `user.fuseoverlayfs.*`).
pub fn carried_xattrs(p: &Path) -> Vec<String> {
    let mut out: Vec<String> = list_xattrs(p)
        .unwrap_or_default()
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .filter(|n| {
            !n.starts_with("trusted.overlay.")
                && !n.starts_with("user.overlay.")
                && !n.starts_with("trusted.stratafs.")
                && !n.starts_with("user.fuseoverlayfs.")
        })
        .map(|n| {
            let v = get_xattr(p, &n).unwrap_or_default();
            format!("{n}={}", String::from_utf8_lossy(&v))
        })
        .collect();
    out.sort();
    out
}

/// Like [`markers`], but `opaque P` is listed where the directory the merged view finds
/// below P — following the redirects of P and of its upper parents, as lookup does — is
/// a directory, rather than the lower entry at the same path: after a renamed parent
/// (redirected elsewhere) gets a new child, what lies below that child is found under
/// the redirect's target, not under its own path.
pub fn markers_following_redirects(upper: &Path, lowers: &[PathBuf]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = markers(upper, lowers)
        .into_iter()
        .filter(|m| !m.starts_with("opaque "))
        .collect();
    let mut opaque = Vec::new();
    opaque_dirs(upper, upper, &mut opaque);
    for rel in opaque {
        if let Some(below) = lower_path(upper, &rel) {
            if lower_dir_below(lowers, &below) {
                out.insert(format!("opaque {rel}"));
            }
        }
    }
    out
}

/// Every directory under `dir` with `trusted.overlay.opaque=y` (relative to `root`).
fn opaque_dirs(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if fs::symlink_metadata(&p).is_ok_and(|md| md.is_dir()) {
            if get_xattr(&p, "trusted.overlay.opaque").is_ok_and(|v| v == b"y") {
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                out.push(rel);
            }
            opaque_dirs(root, &p, out);
        }
    }
}

/// The lower path that upper directory `rel` merges with, following the redirects
/// (absolute `/a/b`, or a name relative to the parent's lower path) of `rel` and its
/// parents; None when an upper parent is opaque (nothing lies below).
fn lower_path(upper: &Path, rel: &str) -> Option<String> {
    let mut below = String::new();
    let mut at = upper.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, name) in parts.iter().enumerate() {
        at.push(name);
        let parent_below = below.clone();
        below = match get_xattr(&at, "trusted.overlay.redirect") {
            Ok(r) if r.starts_with(b"/") => String::from_utf8_lossy(&r[1..]).into_owned(),
            Ok(r) => join_rel(&parent_below, &String::from_utf8_lossy(&r)),
            Err(_) => join_rel(&parent_below, name),
        };
        let last = i + 1 == parts.len();
        if !last && get_xattr(&at, "trusted.overlay.opaque").is_ok_and(|v| v == b"y") {
            return None;
        }
    }
    Some(below)
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}
