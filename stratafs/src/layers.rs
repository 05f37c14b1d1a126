//! The layer stack: layer roots as fds, whiteout and opaque markers in every known format,
//! and the merged listing of a directory across the (immutable) lower layers, cached.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;

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
    /// Set when the cache served the listing since the last eviction sweep passed it
    /// (its second chance, see [`Lowers::dir_with`]).
    used: AtomicBool,
}

impl LowerDir {
    /// The number of names held, whiteouts included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no layer holds a name in the directory.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

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

/// How many names (over all directories) the listing cache keeps: 64 Ki, ~2 MiB. Past
/// it, listings not served since the last sweep are dropped (a clock, oldest first).
/// Lowers are immutable while mounted, so a dropped listing read again is the same; an
/// open directory handle or a lookup under way keeps its own reference meanwhile. A
/// directory of more names stays cached alone until another is read. The kernel keeps
/// the entries it looked up (long TTLs on lower objects), so a listing is mostly asked
/// for again only while its directory is walked. Without a bound, walking a million
/// lower files kept ~33 bytes per file for good.
pub const CACHED_NAMES: usize = 1 << 16;

/// The lower layers and the cache of their merged directory listings. Lowers are
/// immutable while mounted, so a listing is computed once and kept while the cache holds
/// fewer than [`CACHED_NAMES`] names.
#[derive(Debug)]
pub struct Lowers {
    /// Top-most first.
    pub layers: Vec<Layer>,
    cache: DashMap<Span, Arc<LowerDir>>,
    /// The cached spans, oldest first (the eviction clock), taken only when a listing
    /// is read from the layers: a cache hit takes no lock.
    clock: Mutex<VecDeque<Span>>,
    /// Names held by the cached listings.
    cached_names: AtomicUsize,
    /// The most names kept ([`CACHED_NAMES`]; less in tests).
    cap: usize,
}

impl Lowers {
    /// Wraps the opened lower layers, top-most first.
    pub fn new(layers: Vec<Layer>) -> Lowers {
        Lowers::with_cap(layers, CACHED_NAMES)
    }

    /// As [`Lowers::new`], the cache keeping `cap` names at most.
    fn with_cap(layers: Vec<Layer>, cap: usize) -> Lowers {
        Lowers {
            layers,
            cache: DashMap::new(),
            clock: Mutex::new(VecDeque::new()),
            cached_names: AtomicUsize::new(0),
            cap,
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
            if !d.used.load(Ordering::Relaxed) {
                d.used.store(true, Ordering::Relaxed);
            }
            for (name, e) in d.visible() {
                visible(name, e)?;
            }
            return Ok(d);
        }
        let d = Arc::new(self.scan(span, visible)?);
        self.keep(span, &d);
        Ok(d)
    }

    /// Caches `d`, the listing of `span` just read, then drops listings past the cap
    /// ([`CACHED_NAMES`]): oldest first, each served since the sweep last passed it spared
    /// once (and marked unserved), never `d` itself.
    fn keep(&self, span: &Span, d: &Arc<LowerDir>) {
        let mut clock = self.clock.lock();
        match self.cache.insert(span.clone(), Arc::clone(d)) {
            // A concurrent read of the same listing was cached first: replaced.
            Some(old) => {
                self.cached_names.fetch_sub(old.len(), Ordering::Relaxed);
            }
            None => clock.push_back(span.clone()),
        }
        let mut names = self.cached_names.fetch_add(d.len(), Ordering::Relaxed) + d.len();
        while names > self.cap && clock.len() > 1 {
            let Some(s) = clock.pop_front() else { break };
            if s == *span {
                clock.push_back(s);
                continue;
            }
            let evicted = self
                .cache
                .remove_if(&s, |_, d| !d.used.swap(false, Ordering::Relaxed));
            match evicted {
                Some((_, old)) => {
                    names = self.cached_names.fetch_sub(old.len(), Ordering::Relaxed) - old.len();
                }
                None if self.cache.contains_key(&s) => clock.push_back(s),
                None => {}
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn span(dir: &str) -> Span {
        Span {
            path: Arc::new(PathBuf::from(dir)),
            start: 0,
            end: 1,
        }
    }

    fn names(d: &LowerDir) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = d.visible().map(|(n, _)| n.to_vec()).collect();
        v.sort();
        v
    }

    #[test]
    fn listings_past_the_cap_are_dropped_unserved_first_and_read_again_the_same() {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["a", "b", "c"] {
            for f in ["x", "y", "z"] {
                std::fs::create_dir_all(tmp.path().join(d)).unwrap();
                std::fs::write(tmp.path().join(d).join(f), b"").unwrap();
            }
        }
        let lowers = Lowers::with_cap(vec![Layer::open(tmp.path()).unwrap()], 7);
        let a = lowers.dir(&span("a")).unwrap();
        lowers.dir(&span("a")).unwrap(); // served: spared once
        lowers.dir(&span("b")).unwrap();
        assert!(lowers.cache.contains_key(&span("a")));
        assert!(lowers.cache.contains_key(&span("b")));
        // Past 7 names: b (never served since read) goes, a had its second chance.
        lowers.dir(&span("c")).unwrap();
        assert!(lowers.cache.contains_key(&span("a")));
        assert!(!lowers.cache.contains_key(&span("b")));
        assert!(lowers.cache.contains_key(&span("c")));
        assert_eq!(lowers.cached_names.load(Ordering::Relaxed), 6);
        // b read again: c, served, is spared; a (not served since the sweep) goes.
        lowers.dir(&span("c")).unwrap();
        let b = lowers.dir(&span("b")).unwrap();
        assert!(!lowers.cache.contains_key(&span("a")));
        assert!(lowers.cache.contains_key(&span("c")));
        assert_eq!(lowers.cached_names.load(Ordering::Relaxed), 6);
        let a2 = lowers.dir(&span("a")).unwrap();
        assert_eq!(names(&a), names(&a2));
        assert_eq!(names(&b), vec![b"x".to_vec(), b"y".to_vec(), b"z".to_vec()]);
        // Never below the one just read, whatever its size.
        let tiny = Lowers::with_cap(vec![Layer::open(tmp.path()).unwrap()], 1);
        tiny.dir(&span("a")).unwrap();
        tiny.dir(&span("b")).unwrap();
        assert_eq!(tiny.cache.len(), 1);
        assert!(tiny.cache.contains_key(&span("b")));
    }
}
