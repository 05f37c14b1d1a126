//! Resolving a path inside the container's rootfs without ever leaving it: symlinks in
//! the image are followed relative to the rootfs, `..` stops at its top.

use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

/// Joins `inner` (an in-container path) onto `root`, resolving symlinks found under
/// `root` as if `root` were `/`. The result always lies under `root`.
pub fn secure_join(root: &Path, inner: &Path) -> Result<PathBuf> {
    let mut pending: Vec<PathBuf> = inner
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .rev()
        .collect();
    let mut resolved: Vec<PathBuf> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    bail!(
                        "too many symlinks resolving {} in the container",
                        inner.display()
                    );
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => pending.push(PathBuf::from(n)),
                        Component::ParentDir => pending.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() -> Result<()> {
        let t = tempfile::tempdir()?;
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/lib"))?;
        std::os::unix::fs::symlink("/etc", r.join("proc"))?;
        std::os::unix::fs::symlink("../../..", r.join("usr/lib/up"))?;
        std::os::unix::fs::symlink("usr/lib", r.join("lib"))?;
        assert_eq!(secure_join(r, Path::new("/proc"))?, r.join("etc"));
        assert_eq!(secure_join(r, Path::new("/usr/lib/up/x"))?, r.join("x"));
        assert_eq!(secure_join(r, Path::new("/lib/a"))?, r.join("usr/lib/a"));
        assert_eq!(secure_join(r, Path::new("/../../x"))?, r.join("x"));
        Ok(())
    }
}
