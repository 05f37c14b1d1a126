//! The layer stack: layer roots as fds, whiteout and opaque markers in every known format,
//! and the merged listing of a directory across the (immutable) lower layers, cached.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;

use ovlformat::whiteout::{
    self, OPAQUE_HOLDS_WHITEOUTS, OPAQUE_XATTRS, OPAQUE_YES, WH_OPAQUE, WHITEOUT_XATTRS,
    WHITEOUTS_DIR_XATTRS,
};

use crate::names::NameMap;
use crate::override_stat::OverrideKind;
use crate::sys;

/// One layer directory, held open as an `O_PATH` fd.
#[derive(Debug)]
pub struct Layer {
    /// The directory as given on the command line (for messages).
    pub path: PathBuf,
    /// The open root of the layer.
    pub fd: OwnedFd,
    /// st_dev of the layer root.
    pub dev: u64,
    /// Where owners and modes are kept in an xattr (the root's own record says so;
    /// `xattr_permissions=` sets it for an upper whose root says nothing).
    pub override_stat: Option<OverrideKind>,
}

impl Layer {
    /// Opens `path` as a layer root.
    pub fn open(path: &Path) -> io::Result<Layer> {
        let fd = sys::open_dir_path(path)?;
        let st = sys::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
        let override_stat = crate::override_stat::kind_of_root(fd.as_fd());
        Ok(Layer {
            path: path.to_path_buf(),
            fd,
            dev: st.st_dev,
            override_stat,
        })
    }

    /// The root fd, borrowed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// True when `st` is a kernel-format whiteout: a character device 0/0.
pub fn is_chr_whiteout(st: &sys::Stat) -> bool {
    whiteout::is_chr_whiteout(st.st_mode, st.st_rdev)
}

/// True when the directory at `path` is marked opaque by xattr (`y`).
pub fn dir_is_opaque_xattr(dir: BorrowedFd<'_>, path: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|name| matches!(sys::get_xattr(dir, path, name), Ok(Some(v)) if v == OPAQUE_YES))
}

/// True when the directory at `path` is opaque in its layer, by xattr or by an
/// OCI `.wh..wh..opq` marker inside it.
pub fn dir_is_opaque(dir: BorrowedFd<'_>, path: &Path) -> bool {
    dir_is_opaque_xattr(dir, path) || sys::lstat_at(dir, &path.join(WH_OPAQUE)).is_ok()
}

/// True when the directory may hold xattr-format whiteouts (kernel 6.7+ marks such a
/// directory with `overlay.opaque=x` or `overlay.whiteouts`).
fn dir_has_xattr_whiteouts(dir: BorrowedFd<'_>, path: &Path) -> bool {
    WHITEOUTS_DIR_XATTRS
        .iter()
        .any(|n| matches!(sys::get_xattr(dir, path, n), Ok(Some(_))))
        || OPAQUE_XATTRS[..2].iter().any(
            |n| matches!(sys::get_xattr(dir, path, n), Ok(Some(v)) if v == OPAQUE_HOLDS_WHITEOUTS),
        )
}

/// True when the regular file at `path` is an xattr-format whiteout.
fn is_xattr_whiteout(dir: BorrowedFd<'_>, path: &Path) -> bool {
    WHITEOUT_XATTRS
        .iter()
        .any(|n| matches!(sys::get_xattr(dir, path, n), Ok(Some(_))))
}

/// Where a merged directory's lower part lives: the path inside the lowers and the
/// half-open range of lower layers to merge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// Path of the directory inside each lower layer, shared with the nodes of its
    /// lower entries (see `Loc::Lower`; a thin pointer keeps those nodes small).
    pub path: Arc<PathBuf>,
    /// First lower layer (index into the lowers) holding the directory.
    pub start: u32,
    /// One past the last lower layer merged.
    pub end: u32,
}

/// The most lower layers a mount takes (kernel overlayfs takes 500).
pub const MAX_LOWERS: usize = u16::MAX as usize - 1;

/// What one name resolves to across the lowers of a merged directory.
#[derive(Debug, Clone, Copy)]
pub enum LowerEntry {
    /// Hidden by a whiteout in `layer` (or above).
    Whiteout,
    /// The top-most object of that name.
    Object {
        /// Lower layer holding it (16 bits: see [`MAX_LOWERS`]; a cached listing keeps
        /// an entry per name, a million for a million files).
        layer: u16,
        /// `DT_*` type.
        d_type: u8,
        /// Inode number in that layer.
        ino: u64,
        /// For directories: one past the last lower layer it merges with.
        end: u16,
        /// For directories: how many lower layers below `end` hold a directory of this
        /// name (its own opaque marker, which may stop the merge sooner, not counted).
        dirs: u16,
    },
}

/// The merged lower listing of one directory: every name seen, whiteouts included (to
/// hide names), packed in one buffer with an index by name.
#[derive(Debug, Default)]
pub struct LowerDir {
    entries: NameMap<LowerEntry>,
}

impl LowerDir {
    /// What `name` resolves to in the lowers, if any layer has it.
    pub fn get(&self, name: &[u8]) -> Option<LowerEntry> {
        self.entries.get(name).copied()
    }

    /// The visible names (not whiteouts) with what they resolve to, in listing order.
    pub fn visible(&self) -> impl Iterator<Item = (&[u8], &LowerEntry)> + '_ {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e, LowerEntry::Object { .. }))
    }
}

/// The lower layers and the cache of their merged directory listings. Lowers are
/// immutable while mounted, so a listing is computed once and kept.
#[derive(Debug)]
pub struct Lowers {
    /// Top-most first.
    pub layers: Vec<Layer>,
    cache: DashMap<Span, Arc<LowerDir>>,
}

impl Lowers {
    /// Wraps the opened lower layers, top-most first.
    pub fn new(layers: Vec<Layer>) -> Lowers {
        Lowers {
            layers,
            cache: DashMap::new(),
        }
    }

    /// The number of lower layers.
    pub fn len(&self) -> u32 {
        self.layers.len() as u32
    }

    /// True when there is no lower layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The merged listing of `span`, from the cache or computed now.
    pub fn dir(&self, span: &Span) -> io::Result<Arc<LowerDir>> {
        self.dir_with(span, |_, _| Ok(()))
    }

    /// As [`Lowers::dir`], also passing each visible name to `visible` in listing order
    /// as soon as it is known (while the layers are read when not cached), so a listing
    /// can be served before the scan of a large directory ends. A directory's entry may
    /// come before its merge end is settled (`end` is then `u32::MAX`).
    pub fn dir_with(
        &self,
        span: &Span,
        mut visible: impl FnMut(&[u8], &LowerEntry) -> io::Result<()>,
    ) -> io::Result<Arc<LowerDir>> {
        if let Some(d) = self.cache.get(span) {
            let d = d.clone();
            for (name, e) in d.visible() {
                visible(name, e)?;
            }
            return Ok(d);
        }
        let d = Arc::new(self.scan(span, visible)?);
        self.cache.insert(span.clone(), d.clone());
        Ok(d)
    }

    /// True when the listing of `span` would be read from the layers, and its
    /// directories take more than `bytes` on disk (a cheap measure of their entries).
    pub fn scan_exceeds(&self, span: &Span, bytes: u64) -> bool {
        if self.cache.contains_key(span) {
            return false;
        }
        let mut total = 0u64;
        for layer in span.start..span.end {
            let l = &self.layers[layer as usize];
            if let Ok(st) = sys::lstat_at(l.fd(), &span.path) {
                total += st.st_size as u64;
            }
        }
        total > bytes
    }

    fn scan(
        &self,
        span: &Span,
        mut visible: impl FnMut(&[u8], &LowerEntry) -> io::Result<()>,
    ) -> io::Result<LowerDir> {
        let mut out = LowerDir::default();
        let mut stop = span.end;
        let mut path_buf = Vec::new();
        for layer in span.start..span.end {
            let l = &self.layers[layer as usize];
            let layer16 = u16::try_from(layer)
                .map_err(|_| io::Error::other("more lower layers than a mount takes"))?;
            let fd = match sys::open_beneath(
                l.fd(),
                &span.path,
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            ) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                    stop = layer;
                    break;
                }
                Err(e) => return Err(e),
            };
            let mut opaque = dir_is_opaque_xattr(l.fd(), &span.path);
            // Regular files may be xattr whiteouts only where the directory says so.
            let mut xwh = None;
            let entry_path = |buf: &mut Vec<u8>, name: &[u8]| -> PathBuf {
                buf.clear();
                buf.extend_from_slice(span.path.as_os_str().as_bytes());
                if !buf.is_empty() {
                    buf.push(b'/');
                }
                buf.extend_from_slice(name);
                PathBuf::from(std::ffi::OsStr::from_bytes_compat(buf))
            };
            sys::for_each_dir_entry(fd, |name, ino, d_type| {
                if whiteout::is_opaque_marker(name) {
                    opaque = true;
                    return Ok(());
                }
                let (name, whiteout) = if let Some(hidden) = whiteout::whited_out(name) {
                    (hidden, true)
                } else {
                    let wh = match d_type {
                        libc::DT_CHR | libc::DT_UNKNOWN => {
                            let p = entry_path(&mut path_buf, name);
                            matches!(sys::lstat_at(l.fd(), &p), Ok(st) if is_chr_whiteout(&st))
                        }
                        libc::DT_REG
                            if *xwh.get_or_insert_with(|| {
                                dir_has_xattr_whiteouts(l.fd(), &span.path)
                            }) =>
                        {
                            is_xattr_whiteout(l.fd(), &entry_path(&mut path_buf, name))
                        }
                        _ => false,
                    };
                    (name, wh)
                };
                match out.entries.get_mut(name) {
                    Some(LowerEntry::Object {
                        d_type: libc::DT_DIR,
                        end,
                        dirs,
                        ..
                    }) if *end == u16::MAX => {
                        // A directory above still merging: a non-directory or a whiteout
                        // here ends its merge.
                        if whiteout || d_type != libc::DT_DIR {
                            *end = layer16;
                        } else {
                            *dirs += 1;
                        }
                        Ok(())
                    }
                    Some(_) => Ok(()),
                    None if whiteout => out.entries.insert_new(name, LowerEntry::Whiteout),
                    None => {
                        let is_dir = d_type == libc::DT_DIR;
                        let entry = LowerEntry::Object {
                            layer: layer16,
                            d_type,
                            ino,
                            end: if is_dir { u16::MAX } else { layer16 + 1 },
                            dirs: 1,
                        };
                        // A name first seen as an object stays the visible one.
                        visible(name, &entry)?;
                        out.entries.insert_new(name, entry)
                    }
                }
            })?;
            if opaque {
                stop = layer + 1;
                break;
            }
        }
        // Directories still merging at the bottom merge down to where the span stops.
        let stop = u16::try_from(stop)
            .map_err(|_| io::Error::other("more lower layers than a mount takes"))?;
        for e in out.entries.values_mut() {
            if let LowerEntry::Object { end, .. } = e {
                if *end == u16::MAX {
                    *end = stop;
                }
            }
        }
        // Kept while mounted: no growth slack.
        out.entries.shrink_to_fit();
        Ok(out)
    }
}

/// `OsStr::from_bytes` under a name that reads well at call sites.
trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}
