//! Snapshots of a merged tree: everything two overlay implementations must agree on,
//! leaving out what legitimately differs (st_ino values, times set "now").

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::sys::user_xattrs;

/// Times at or after this are "now" (set by an operation during the test) and are shown
/// as `recent`; earlier ones came from the fixtures or an explicit utimes and must match.
const RECENT: i64 = 1_700_000_000;

/// Attributes left out of snapshots, from env `STRATA_TEST_IGNORE` (comma-separated:
/// `nlink`, `mtime`, `holes`) — a knob for looking past a known difference while
/// working on another; the default (unset) compares everything.
pub fn ignored() -> Vec<String> {
    std::env::var("STRATA_TEST_IGNORE")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Path (relative to the mount) -> description, plus `#links` (hard-link groups by
/// shared st_ino) and `#st_dev` (how many distinct st_dev values the tree shows).
pub type Snapshot = BTreeMap<String, String>;

/// Walks the merged tree under `m` (without following symlinks) and describes each
/// object: type, mode, owner, size, content digest, holes, link target, rdev, nlink,
/// mtime class and `user.*` xattrs.
pub fn snapshot(m: &Path) -> Snapshot {
    let ignore = ignored();
    let mut out = Snapshot::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut devs = std::collections::BTreeSet::new();
    walk(m, m, &ignore, &mut out, &mut inodes, &mut devs);
    let mut groups: Vec<Vec<String>> = inodes.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    out.insert("#links".into(), format!("{groups:?}"));
    out.insert("#st_dev".into(), format!("{} distinct", devs.len()));
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    ignore: &[String],
    out: &mut Snapshot,
    inodes: &mut BTreeMap<u64, Vec<String>>,
    devs: &mut std::collections::BTreeSet<u64>,
) {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>(),
        Err(e) => Err(e),
    };
    let mut entries = match entries {
        Ok(v) => v,
        Err(e) => {
            out.insert(rel(root, dir) + "/", format!("readdir error {e}"));
            return;
        }
    };
    entries.sort();
    for p in entries {
        let name = rel(root, &p);
        let md = match fs::symlink_metadata(&p) {
            Ok(md) => md,
            Err(e) => {
                out.insert(name, format!("lstat error {e}"));
                continue;
            }
        };
        devs.insert(md.dev());
        let ft = md.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            match fs::read_link(&p) {
                Ok(t) => format!("symlink -> {}", t.display()),
                Err(e) => format!("symlink readlink error {e}"),
            }
        } else if ft.is_file() {
            let content = match fs::read(&p) {
                Ok(d) => hex::encode(&Sha256::digest(&d)[..8]),
                Err(e) => format!("read error {e}"),
            };
            let skip_holes = ignore.iter().any(|i| i == "holes");
            let holes = if !skip_holes && md.size() > 64 * 1024 && md.blocks() * 512 < md.size() {
                " holes"
            } else {
                ""
            };
            format!("file size {} sha {content}{holes}", md.size())
        } else {
            format!(
                "special type {:o} rdev {}",
                md.mode() & libc::S_IFMT,
                md.rdev()
            )
        };
        if !ft.is_dir() {
            inodes.entry(md.ino()).or_default().push(name.clone());
        }
        let mtime = if ignore.iter().any(|i| i == "mtime") {
            "-".to_string()
        } else if md.mtime() >= RECENT {
            "recent".to_string()
        } else {
            format!("{}.{}", md.mtime(), md.mtime_nsec())
        };
        let nlink = if ft.is_dir() || ignore.iter().any(|i| i == "nlink") {
            String::new()
        } else {
            format!(" nlink {}", md.nlink())
        };
        out.insert(
            name,
            format!(
                "{what} mode {:o} owner {}:{}{nlink} mtime {mtime} xattrs {:?}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid(),
                user_xattrs(&p)
            ),
        );
        if ft.is_dir() {
            walk(root, &p, ignore, out, inodes, devs);
        }
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Lines describing how `b` differs from `a` (empty when equal).
pub fn diff(a_name: &str, a: &Snapshot, b_name: &str, b: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            Some(w) if w == v => {}
            Some(w) => out.push(format!("{k}:\n    {a_name}: {v}\n    {b_name}: {w}")),
            None => out.push(format!("{k}: only in {a_name}: {v}")),
        }
    }
    for (k, w) in b {
        if !a.contains_key(k) {
            out.push(format!("{k}: only in {b_name}: {w}"));
        }
    }
    out
}
