//! The layer stack: layer roots as fds, whiteout and opaque markers in every known format,
//! and the merged listing of a directory across the (immutable) lower layers, cached.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;

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
}

impl Layer {
    /// Opens `path` as a layer root.
    pub fn open(path: &Path) -> io::Result<Layer> {
        let fd = sys::open_dir_path(path)?;
        let st = sys::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
        Ok(Layer {
            path: path.to_path_buf(),
            fd,
            dev: st.st_dev,
        })
    }

    /// The root fd, borrowed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Prefix of the OCI/AUFS whiteout file format.
pub const WH_PREFIX: &[u8] = b".wh.";
/// The OCI/AUFS opaque-directory marker entry.
pub const WH_OPAQUE: &[u8] = b".wh..wh..opq";

const OPAQUE_XATTRS: [&CStr; 3] = [
    c"trusted.overlay.opaque",
    c"user.overlay.opaque",
    c"user.fuseoverlayfs.opaque",
];
const WHITEOUT_XATTRS: [&CStr; 2] = [c"trusted.overlay.whiteout", c"user.overlay.whiteout"];
const WHITEOUTS_DIR_XATTRS: [&CStr; 2] = [c"trusted.overlay.whiteouts", c"user.overlay.whiteouts"];

/// True when `st` is a kernel-format whiteout: a character device 0/0.
pub fn is_chr_whiteout(st: &sys::Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// True when the directory at `path` is marked opaque by xattr (`y`).
pub fn dir_is_opaque_xattr(dir: BorrowedFd<'_>, path: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|name| matches!(sys::get_xattr(dir, path, name), Ok(Some(v)) if v == b"y"))
}

/// True when the directory at `path` is opaque in its layer, by xattr or by an
/// OCI `.wh..wh..opq` marker inside it.
pub fn dir_is_opaque(dir: BorrowedFd<'_>, path: &Path) -> bool {
    dir_is_opaque_xattr(dir, path)
        || sys::lstat_at(
            dir,
            &path.join(std::ffi::OsStr::from_bytes_compat(WH_OPAQUE)),
        )
        .is_ok()
}

/// True when the directory may hold xattr-format whiteouts (kernel 6.7+ marks such a
/// directory with `overlay.opaque=x` or `overlay.whiteouts`).
fn dir_has_xattr_whiteouts(dir: BorrowedFd<'_>, path: &Path) -> bool {
    WHITEOUTS_DIR_XATTRS
        .iter()
        .any(|n| matches!(sys::get_xattr(dir, path, n), Ok(Some(_))))
        || OPAQUE_XATTRS[..2]
            .iter()
            .any(|n| matches!(sys::get_xattr(dir, path, n), Ok(Some(v)) if v == b"x"))
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
    /// Path of the directory inside each lower layer.
    pub path: PathBuf,
    /// First lower layer (index into the lowers) holding the directory.
    pub start: u32,
    /// One past the last lower layer merged.
    pub end: u32,
}

/// What one name resolves to across the lowers of a merged directory.
#[derive(Debug, Clone, Copy)]
pub enum LowerEntry {
    /// Hidden by a whiteout in `layer` (or above).
    Whiteout,
    /// The top-most object of that name.
    Object {
        /// Lower layer holding it.
        layer: u32,
        /// `DT_*` type.
        d_type: u8,
        /// Inode number in that layer.
        ino: u64,
        /// For directories: one past the last lower layer it merges with.
        end: u32,
        /// For directories: how many lower layers below `end` hold a directory of this
        /// name (its own opaque marker, which may stop the merge sooner, not counted).
        dirs: u32,
    },
}

/// The merged lower listing of one directory.
#[derive(Debug, Default)]
pub struct LowerDir {
    /// Name → what it resolves to (whiteouts included, to hide names).
    pub entries: HashMap<Box<[u8]>, LowerEntry>,
    /// Visible names in listing order.
    pub order: Vec<Box<[u8]>>,
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
        if let Some(d) = self.cache.get(span) {
            return Ok(d.clone());
        }
        let d = Arc::new(self.scan(span)?);
        self.cache.insert(span.clone(), d.clone());
        Ok(d)
    }

    fn scan(&self, span: &Span) -> io::Result<LowerDir> {
        let mut out = LowerDir::default();
        // Directory entries still open for merging with layers below.
        let mut open_dirs: Vec<Box<[u8]>> = Vec::new();
        let mut stop = span.end;
        for layer in span.start..span.end {
            let l = &self.layers[layer as usize];
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
            let list = sys::read_dir_fd(fd)?;
            let mut opaque = dir_is_opaque_xattr(l.fd(), &span.path);
            let xwh = list.iter().any(|e| e.d_type == libc::DT_REG)
                && dir_has_xattr_whiteouts(l.fd(), &span.path);
            for ent in list {
                if ent.name.as_slice() == WH_OPAQUE {
                    opaque = true;
                    continue;
                }
                let (name, whiteout): (Box<[u8]>, bool) = if ent.name.starts_with(WH_PREFIX) {
                    (ent.name[WH_PREFIX.len()..].into(), true)
                } else {
                    let wh = match ent.d_type {
                        libc::DT_CHR | libc::DT_UNKNOWN => {
                            let p = span
                                .path
                                .join(std::ffi::OsStr::from_bytes_compat(&ent.name));
                            matches!(sys::lstat_at(l.fd(), &p), Ok(st) if is_chr_whiteout(&st))
                        }
                        libc::DT_REG if xwh => {
                            let p = span
                                .path
                                .join(std::ffi::OsStr::from_bytes_compat(&ent.name));
                            is_xattr_whiteout(l.fd(), &p)
                        }
                        _ => false,
                    };
                    (ent.name.into_boxed_slice(), wh)
                };
                match out.entries.get_mut(&name) {
                    Some(LowerEntry::Object {
                        d_type: libc::DT_DIR,
                        end,
                        dirs,
                        ..
                    }) if *end == u32::MAX => {
                        // A directory above still merging: a non-directory or a whiteout
                        // here ends its merge.
                        if whiteout || ent.d_type != libc::DT_DIR {
                            *end = layer;
                        } else {
                            *dirs += 1;
                        }
                    }
                    Some(_) => {}
                    None => {
                        if whiteout {
                            out.entries.insert(name, LowerEntry::Whiteout);
                        } else {
                            let is_dir = ent.d_type == libc::DT_DIR;
                            out.entries.insert(
                                name.clone(),
                                LowerEntry::Object {
                                    layer,
                                    d_type: ent.d_type,
                                    ino: ent.ino,
                                    end: if is_dir { u32::MAX } else { layer + 1 },
                                    dirs: 1,
                                },
                            );
                            if is_dir {
                                open_dirs.push(name.clone());
                            }
                            out.order.push(name);
                        }
                    }
                }
            }
            if opaque {
                stop = layer + 1;
                break;
            }
        }
        for name in open_dirs {
            if let Some(LowerEntry::Object { end, .. }) = out.entries.get_mut(&name) {
                if *end == u32::MAX {
                    *end = stop;
                }
            }
        }
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
