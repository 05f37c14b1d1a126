//! Writes layer tars from directories: a rootfs as is (`image create --from-dir`), or a
//! container's upper with overlay whiteouts and opaque dirs converted back to OCI
//! `.wh.` entries (`commit`). Entries are sorted, hard links kept, xattrs written as
//! PAX `SCHILY.xattr.*` records; nothing beneath a symlink is ever followed.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};
use crate::layer_tree::{self, DirRef, LayerDir, Lowers, OPAQUE_MARKER};
use crate::upper_walk::{UpperVisitor, walk_upper};

/// How to treat overlay metadata found in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A plain rootfs: every entry is content.
    Rootfs,
    /// An overlay upper: char 0/0 → `.wh.NAME`, opaque xattr → `.wh..wh..opq`.
    Upper,
}

/// The xattrs of `path` (not following symlinks).
pub fn list_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    ovlformat::xattr::names(path)
        .into_iter()
        .filter_map(|name| {
            let name = String::from_utf8(name).ok()?;
            let value = ovlformat::xattr::get(path, name.as_str())?;
            Some((name, value))
        })
        .collect()
}

/// Whether a directory carries an opaque marker (xattr in any known namespace).
pub fn is_opaque(path: &Path) -> bool {
    layer_tree::is_opaque_xattr(path)
}

pub use crate::layer_tree::is_whiteout;

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while len.to_string().len() + body_len != len {
        len = len.to_string().len() + body_len;
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// Sorted children of a directory.
pub fn sorted_children(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    crate::fsutil::list_dir(dir)
}

struct Writer<W: Write> {
    b: tar::Builder<W>,
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Writer<W> {
    fn new(out: W) -> Self {
        Writer {
            b: tar::Builder::new(out),
            links: HashMap::new(),
        }
    }

    /// A header from `meta`, with the owner and mode a rootless extraction recorded in
    /// `user.containers.override_stat` when `path` has one.
    fn header(&self, path: &Path, meta: &fs::Metadata) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        if let Some((uid, gid, mode)) = layer_tree::override_stat(path) {
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mode(mode);
        }
        h
    }

    fn empty(&mut self, name: &Path) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        self.b.append_data(&mut h, name, io::empty())
    }

    fn xattrs(&mut self, path: &Path, name: &Path) -> io::Result<()> {
        let mut pax = Vec::new();
        for (k, v) in list_xattrs(path) {
            if !layer_tree::is_private_xattr(&k) {
                pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), &v));
            }
        }
        if pax.is_empty() {
            return Ok(());
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let short: Vec<u8> = name
            .as_os_str()
            .as_bytes()
            .iter()
            .take(80)
            .copied()
            .collect();
        let mut hname = b"PaxHeaders/".to_vec();
        hname.extend(short);
        h.as_old_mut().name = [0; 100];
        h.as_old_mut().name[..hname.len()].copy_from_slice(&hname);
        h.set_mode(0o644);
        h.set_size(pax.len() as u64);
        h.set_cksum();
        self.b.append(&h, &pax[..])
    }

    /// A plain tree: every entry as it is.
    fn walk(&mut self, dir: &Path, rel: &Path) -> Result<(), StoreError> {
        for child in sorted_children(dir)? {
            let Some(fname) = child.file_name() else {
                continue;
            };
            let name = rel.join(fname);
            let meta = fs::symlink_metadata(&child).ctx("stat", &child)?;
            self.entry(&child, &child, &name, &meta)?;
            if meta.is_dir() {
                self.walk(&child, &name)?;
            }
        }
        Ok(())
    }

    /// The merged view below `dir`: every visible entry, whiteouts applied.
    fn walk_merged(&mut self, lowers: &Lowers, dir: &DirRef, rel: &Path) -> Result<(), StoreError> {
        for node in lowers.merged_children(dir)? {
            let name = rel.join(&node.name);
            self.entry(&node.path, &node.data, &name, &node.meta)?;
            if let Some(d) = &node.dir {
                self.walk_merged(lowers, d, &name)?;
            }
        }
        Ok(())
    }

    fn marker(&mut self, name: &Path, dir: &Path) -> Result<(), StoreError> {
        self.empty(name)
            .map_err(|e| StoreError::io("archive", dir, e))
    }

    /// Writes one entry: metadata and xattrs of `path`, content of `data`.
    fn entry(
        &mut self,
        path: &Path,
        data: &Path,
        name: &Path,
        meta: &fs::Metadata,
    ) -> Result<(), StoreError> {
        self.entry_io(path, data, name, meta)
            .map_err(|e| StoreError::io("archive", path, e))
    }

    fn entry_io(
        &mut self,
        path: &Path,
        data: &Path,
        name: &Path,
        meta: &fs::Metadata,
    ) -> io::Result<()> {
        let ft = meta.file_type();
        self.xattrs(path, name)?;
        let mut h = self.header(path, meta);
        if ft.is_dir() {
            h.set_size(0);
            self.b.append_data(&mut h, name, io::empty())?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path)?;
            h.set_size(0);
            self.b.append_link(&mut h, name, target)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    let mut lh = self.header(path, meta);
                    lh.set_entry_type(tar::EntryType::Link);
                    lh.set_size(0);
                    let first = first.clone();
                    return self.b.append_link(&mut lh, name, first);
                }
                self.links.insert(key, name.to_path_buf());
            }
            // The entry was lstat'ed as a regular file: never follow a symlink put there since.
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(data)?;
            let len = f.metadata()?.len();
            h.set_size(len);
            self.b.append_data(&mut h, name, f.take(len))?;
        } else {
            // fifo, char, block: header only
            h.set_size(0);
            self.b.append_data(&mut h, name, io::empty())?;
        }
        Ok(())
    }
}

/// An upper as a diff layer: whiteouts become `.wh.NAME`, opaque dirs get
/// `.wh..wh..opq`, and a redirected (renamed lower) dir is written whole from the
/// merged view and marked opaque, so nothing at its new name shows from below.
struct DiffLayer<'a, W: Write> {
    w: Writer<W>,
    lowers: &'a Lowers,
}

impl<W: Write> UpperVisitor for DiffLayer<'_, W> {
    fn enter(&mut self, dir: &Path, rel: &Path, l: &LayerDir) -> Result<(), StoreError> {
        if l.opaque && !rel.as_os_str().is_empty() {
            self.w.marker(&rel.join(OPAQUE_MARKER), dir)?;
        }
        for w in &l.whiteouts {
            self.w
                .marker(&rel.join(ovlformat::whiteout::whiteout_name(w)), dir)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, name: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
        let data = if meta.is_file() {
            self.lowers.data_of(path, Some(name))?
        } else {
            path.to_path_buf()
        };
        self.w.entry(path, &data, name, meta)
    }

    fn moved(&mut self, d: &DirRef, name: &Path) -> Result<(), StoreError> {
        let path = d.upper.as_deref().unwrap_or(name);
        self.w.marker(&name.join(OPAQUE_MARKER), path)?;
        self.w.walk_merged(self.lowers, d, name)
    }
}

/// Writes the tree at `dir` as a layer tar into `out`. An `Upper` is read without its
/// lowers: redirected dirs and metacopy files need [`write_upper`].
pub fn write_tree<W: Write>(dir: &Path, kind: TreeKind, out: W) -> Result<W, StoreError> {
    match kind {
        TreeKind::Rootfs => {
            let mut w = Writer::new(out);
            w.walk(dir, Path::new(""))?;
            w.b.into_inner().ctx("finish tar of", dir)
        }
        TreeKind::Upper => write_upper(dir, &Lowers::new(Vec::new()), out),
    }
}

/// Writes the overlay upper `upper` over `lowers` as an OCI diff layer into `out`.
pub fn write_upper<W: Write>(upper: &Path, lowers: &Lowers, out: W) -> Result<W, StoreError> {
    let mut v = DiffLayer {
        w: Writer::new(out),
        lowers,
    };
    walk_upper(upper, &mut v)?;
    v.w.b.into_inner().ctx("finish tar of", upper)
}

/// Writes the merged view of `upper` over `lowers` (a flattened rootfs) into `out`.
pub fn write_merged<W: Write>(upper: &Path, lowers: &Lowers, out: W) -> Result<W, StoreError> {
    let mut w = Writer::new(out);
    let root = DirRef {
        upper: Some(upper.to_path_buf()),
        lower: Some(PathBuf::new()),
    };
    w.walk_merged(lowers, &root, Path::new(""))?;
    w.b.into_inner().ctx("finish tar of", upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_length_is_self_consistent() {
        for v in [&b""[..], b"y", &[7u8; 95][..], &[1u8; 996][..]] {
            let r = pax_record("SCHILY.xattr.user.k", v);
            let len: usize =
                std::str::from_utf8(&r[..r.iter().position(|b| *b == b' ').unwrap_or(0)])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            assert_eq!(len, r.len());
        }
    }
}
