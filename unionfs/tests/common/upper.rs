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
