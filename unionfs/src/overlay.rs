//! The overlay itself: lookup across layers, merged listings, and every modifying
//! operation with copy-up, whiteouts, opaque directories and redirects. Plain Rust over
//! fd-relative syscalls; the FUSE adapter (`fuse.rs`) only translates requests.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::files::{OpenFiles, RealFile};
use crate::layers::{self, Layer, LowerEntry, Lowers, Span};
use crate::names::{NameList, NameMap};
use crate::node::{Loc, Node, NodeState, NodeTable};
use crate::override_stat::{self, OverrideKind};
use crate::sys::{self, Stat};
use crate::whiteout::SharedWhiteout;

/// An errno value: what every overlay operation fails with.
pub type Errno = i32;
/// Result of an overlay operation.
pub type OvResult<T> = Result<T, Errno>;

fn errno(e: io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Names longer than this get ENAMETOOLONG, as every Linux filesystem gives.
pub const NAME_MAX: usize = 255;

/// What the overlay needs to know beyond its layers.
#[derive(Debug, Clone)]
pub struct OverlaySettings {
    /// Write overlay xattrs in the `user.` namespace instead of `trusted.`.
    pub user_xattr: bool,
    /// Report nlink 1 for every directory (fuse-overlayfs' `static_nlink`).
    pub static_nlink: bool,
    /// fsync requests reach the disk (fuse-overlayfs' `fsync=1`).
    pub fsync: bool,
    /// How many real files I/O by inode may keep open (see `files`).
    pub open_files: usize,
    /// Write whiteouts as `.wh.NAME` files, never char 0/0 (env
    /// `FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT`). Not wired yet: see `make_whiteout`.
    pub whiteout_files: bool,
    /// `xattr_permissions=1|2`: the upper keeps owners and modes in this xattr (unless
    /// its root names another kind itself).
    pub xattr_permissions: Option<OverrideKind>,
}

/// The mounted union: layers, node table and the lock that serializes namespace changes.
#[derive(Debug)]
pub struct Overlay {
    /// Lower layers and their cached merged listings.
    pub lowers: Lowers,
    /// The upper layer, if writable.
    pub upper: Option<Layer>,
    /// `workdir/work`: temp files for copy-up and whiteouts.
    work: Option<OwnedFd>,
    /// `workdir/index`: one link per copied-up lower hard-linked file, by origin ino.
    index: Option<OwnedFd>,
    /// Inode table.
    pub nodes: NodeTable,
    /// Real files kept open for I/O by inode (no FUSE handles).
    pub files: OpenFiles,
    settings: OverlaySettings,
    samefs: bool,
    devs: Vec<u64>,
    tmp_counter: AtomicU64,
    ns_lock: Mutex<()>,
    whiteout: SharedWhiteout,
    xattr_opaque: CString,
    xattr_redirect: CString,
    xattr_origin: CString,
    xattr_nlink: CString,
    /// Some layer keeps owners and modes in an xattr (else stat reads none).
    any_override: bool,
}

/// A merged directory listing: "." and ".." first, then every visible name, packed.
pub type Listing = NameList<ListEntry>;

/// What a merged directory listing says of one name besides the name.
#[derive(Debug, Clone, Copy)]
pub struct ListEntry {
    /// Inode number hint.
    pub ino: u64,
    /// `DT_*` type.
    pub d_type: u8,
}

impl Overlay {
    /// Builds the union over opened layers. `work` is `workdir/work`, already cleaned.
    pub fn new(
        lowers: Vec<Layer>,
        mut upper: Option<Layer>,
        work: Option<(OwnedFd, OwnedFd)>,
        settings: OverlaySettings,
    ) -> OvResult<Overlay> {
        if let Some(u) = upper.as_mut() {
            // The upper root's own record wins over the option, as in fuse-overlayfs.
            u.override_stat = u.override_stat.or(settings.xattr_permissions);
        }
        let any_override = upper
            .iter()
            .chain(lowers.iter())
            .any(|l| l.override_stat.is_some());
        let (work, index) = match work {
            Some((w, i)) => (Some(w), Some(i)),
            None => (None, None),
        };
        let mut devs: Vec<u64> = Vec::new();
        for l in upper.iter().chain(lowers.iter()) {
            if !devs.contains(&l.dev) {
                devs.push(l.dev);
            }
        }
        let ns = if settings.user_xattr {
            "user."
        } else {
            "trusted."
        };
        let mk = |s: &str| CString::new(format!("{ns}{s}")).map_err(|_| libc::EINVAL);
        let ov = Overlay {
            lowers: Lowers::new(lowers),
            upper,
            work,
            index,
            nodes: NodeTable::default(),
            files: OpenFiles::new(settings.open_files),
            samefs: devs.len() <= 1,
            devs,
            settings,
            tmp_counter: AtomicU64::new(0),
            ns_lock: Mutex::new(()),
            whiteout: SharedWhiteout::default(),
            xattr_opaque: mk("overlay.opaque")?,
            xattr_redirect: mk("overlay.redirect")?,
            xattr_origin: mk("stratafs.origin")?,
            xattr_nlink: mk("stratafs.nlink")?,
            any_override,
        };
        let root_state = ov.root_state()?;
        ov.nodes.insert_root(root_state);
        Ok(ov)
    }

    fn root_state(&self) -> OvResult<NodeState> {
        let n = self.lowers.len();
        let span = (n > 0).then(|| Span {
            path: PathBuf::new(),
            start: 0,
            end: n,
        });
        let (loc, span) = match &self.upper {
            Some(u) => {
                let opaque = layers::dir_is_opaque(u.fd(), Path::new(""));
                (Loc::Upper, if opaque { None } else { span })
            }
            None => (Loc::Lower(0, PathBuf::new()), span),
        };
        if self.upper.is_none() && n == 0 {
            return Err(libc::EINVAL);
        }
        Ok(NodeState {
            parent: 1,
            name: OsString::new(),
            loc,
            span,
        })
    }

    /// True when the mount has an upper layer.
    pub fn writable(&self) -> bool {
        self.upper.is_some()
    }

    fn upper_fd(&self) -> OvResult<BorrowedFd<'_>> {
        self.upper.as_ref().map(|u| u.fd()).ok_or(libc::EROFS)
    }

    fn work_fd(&self) -> OvResult<BorrowedFd<'_>> {
        self.work.as_ref().map(|w| w.as_fd()).ok_or(libc::EROFS)
    }

    /// Finds a live node.
    pub fn node(&self, ino: u64) -> OvResult<Arc<Node>> {
        self.nodes.get(ino).ok_or(libc::ESTALE)
    }

    /// Gives the node of `ino` an alias node id for lookups to answer with (see
    /// `NodeTable::split`), and stops passing its lower file through.
    pub fn split_node(&self, ino: u64) -> OvResult<u64> {
        let node = self.node(ino)?;
        node.shared_backing_refused.store(true, Ordering::Relaxed);
        Ok(self.nodes.split(&node))
    }

    /// The node id an entry reply for `node` carries (its alias, if it has one).
    pub fn entry_id(&self, node: &Node) -> u64 {
        self.nodes.entry_id(node)
    }

    /// The node's path in the merged tree (and so in the upper layer).
    pub fn path_of(&self, node: &Node) -> OvResult<PathBuf> {
        let mut names: Vec<OsString> = Vec::new();
        let mut cur = node.state.read().clone();
        let mut ino = node.ino;
        while ino != 1 {
            if cur.name.is_empty() {
                // A node whose name went (see `Loc::Orphan`): no path in the tree.
                return Err(libc::ENOENT);
            }
            names.push(cur.name.clone());
            ino = cur.parent;
            cur = self.node(ino)?.state.read().clone();
            if names.len() > 4096 {
                return Err(libc::ELOOP);
            }
        }
        let mut p = PathBuf::new();
        for n in names.iter().rev() {
            p.push(n);
        }
        Ok(p)
    }

    /// The layer fd and path where the node's object lives now.
    fn real(&self, node: &Node) -> OvResult<(BorrowedFd<'_>, PathBuf)> {
        let loc = node.state.read().loc.clone();
        match loc {
            Loc::Upper => Ok((self.upper_fd()?, self.path_of(node)?)),
            Loc::Lower(layer, path) => Ok((self.lowers.layers[layer as usize].fd(), path)),
            Loc::Index(key) => Ok((self.index.as_ref().ok_or(libc::EROFS)?.as_fd(), key)),
            Loc::Orphan(name) => Ok((self.work_fd()?, name)),
        }
    }

    /// True for a node that no name in the tree reaches any more (the root has no
    /// name but is always reached).
    fn unnamed(node: &Node) -> bool {
        node.ino != 1 && node.state.read().name.is_empty()
    }

    /// After `parent/name` stopped naming the object of `ino` (unlink, rmdir, a rename
    /// over it): a node the kernel still holds by that name keeps its object reachable.
    /// An upper object that had no other name was moved to `orphan` in the work dir by
    /// the caller; a lower one stays where it is; either way the node has no name now,
    /// so nothing done through it (a write's copy-up) lands on the name again.
    fn detach(&self, ino: u64, parent: u64, name: &OsStr, orphan: Option<PathBuf>) {
        let Some(node) = self.nodes.get(ino) else {
            return;
        };
        let mut st = node.state.write();
        if st.parent != parent || st.name != name {
            return;
        }
        if let Some(o) = orphan {
            // (A directory keeps its span: only its link count uses it now, as the
            // kernel lists nothing of a removed directory.)
            st.loc = Loc::Orphan(o);
        }
        st.name = OsString::new();
    }

    /// Whether the kernel holds the node of `ino` beyond `own` lookups of the caller's:
    /// then an upper object losing its last name must be kept for it (it may be open).
    fn held(&self, ino: u64, own: u64) -> bool {
        self.nodes
            .get(ino)
            .is_some_and(|n| n.nlookup.load(Ordering::Relaxed) > own)
    }

    /// The merged view's link count of an indexed hard-linked file: the lower count at
    /// copy-up, moved by every link and unlink made through the mount (as the kernel
    /// keeps it with `index=on`).
    fn index_nlink(&self, key: &Path) -> Option<u64> {
        let index = self.index.as_ref()?;
        let v = sys::get_xattr(index.as_fd(), key, &self.xattr_nlink).ok()??;
        std::str::from_utf8(&v).ok()?.parse().ok()
    }

    /// Adds `delta` to an indexed file's merged link count, if it has an index entry.
    fn adjust_index_nlink(&self, ino: u64, delta: i64) {
        let key = index_key(ino);
        if let (Some(index), Some(n)) = (&self.index, self.index_nlink(&key)) {
            let v = (n as i64 + delta).max(0).to_string();
            let _ = sys::set_xattr(index.as_fd(), &key, &self.xattr_nlink, v.as_bytes(), 0);
        }
    }

    /// After `parent/name` stopped naming `ino`: a node still known by that name moves
    /// to the index link, which lives as long as any name does.
    fn name_gone(&self, ino: u64, parent: u64, name: &OsStr) {
        let Some(node) = self.nodes.get(ino) else {
            return;
        };
        let mut st = node.state.write();
        if st.parent == parent && st.name == name {
            let key = index_key(ino);
            if let Some(index) = &self.index {
                if sys::lstat_at(index.as_fd(), &key).is_ok() {
                    st.loc = Loc::Index(key);
                    // No live name until the next lookup gives one.
                    st.name = OsString::new();
                }
            }
        }
    }

    /// Gives an upper file about to get a second name an index entry, so every name can
    /// reach it whichever name goes first.
    fn ensure_index(&self, node: &Node) -> OvResult<()> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let key = index_key(node.ino);
        if sys::lstat_at(index.as_fd(), &key).is_ok() {
            return Ok(());
        }
        let ufd = self.upper_fd()?;
        let path = self.path_of(node)?;
        let st = sys::lstat_at(ufd, &path).map_err(errno)?;
        sys::link_between(ufd, &path, index.as_fd(), &key).map_err(errno)?;
        let n = st.st_nlink.to_string();
        let _ = sys::set_xattr(index.as_fd(), &key, &self.xattr_nlink, n.as_bytes(), 0);
        Ok(())
    }

    fn compose_ino(&self, dev: u64, ino: u64) -> u64 {
        if self.samefs {
            return ino;
        }
        let idx = self.devs.iter().position(|d| *d == dev).unwrap_or(0) as u64;
        (idx << 56) | (ino & ((1u64 << 56) - 1))
    }

    fn origin_of(&self, fd: BorrowedFd<'_>, path: &Path) -> Option<u64> {
        // A decimal inode number: 20 digits at most.
        let mut buf = [0u8; 32];
        match sys::get_xattr_into(fd, path, &self.xattr_origin, &mut buf) {
            Ok(Some(n)) => std::str::from_utf8(buf.get(..n)?).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Attributes of a node as the merged tree shows them.
    pub fn stat(&self, node: &Node) -> OvResult<Stat> {
        let (fd, path) = self.real(node)?;
        let mut st = sys::lstat_at(fd, &path).map_err(errno)?;
        self.fix_stat(node, &mut st);
        Ok(st)
    }

    /// Attributes of a node through one of its open files (a single fstat).
    pub fn stat_open(&self, node: &Node, fd: i32) -> OvResult<Stat> {
        let mut st = sys::fstat(fd).map_err(errno)?;
        self.fix_stat(node, &mut st);
        Ok(st)
    }

    /// Where the object at `loc` keeps its owner and mode, if in an xattr.
    fn override_of(&self, loc: &Loc) -> Option<OverrideKind> {
        match loc {
            Loc::Lower(l, _) => self.lowers.layers[*l as usize].override_stat,
            _ => self.upper.as_ref().and_then(|u| u.override_stat),
        }
    }

    /// The upper layer's override kind.
    fn upper_override(&self) -> Option<OverrideKind> {
        self.upper.as_ref().and_then(|u| u.override_stat)
    }

    /// Shows the owner and mode a layer keeps in its override xattr (one getxattr;
    /// none at all when no layer keeps any).
    fn show_override(&self, node: &Node, st: &mut Stat) {
        if !self.any_override {
            return;
        }
        let loc = node.state.read().loc.clone();
        if let Some(kind) = self.override_of(&loc) {
            if let Ok((fd, path)) = self.real(node) {
                override_stat::read_into(kind, fd, &path, st);
            }
        }
    }

    fn fix_stat(&self, node: &Node, st: &mut Stat) {
        self.show_override(node, st);
        {
            let s = node.state.read();
            if matches!(s.loc, Loc::Orphan(_)) {
                // The work dir's link is no name: no name is left (st_nlink 0, as the
                // kernel shows an open file whose last name went). A removed directory
                // shows what kernel overlayfs shows over ext4: size 0, and the link
                // count of a merged directory (1) if it merged lower ones.
                st.st_ino = node.ino;
                st.st_nlink = 0;
                if node.is_dir {
                    st.st_size = 0;
                    st.st_nlink = s.span.is_some() as _;
                }
                return;
            }
        }
        let indexed = matches!(node.state.read().loc, Loc::Index(_));
        if (st.st_nlink > 1 || indexed) && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            // The index holds one link of a copied-up hard-linked file: not a name.
            if let Some(index) = &self.index {
                let key = index_key(node.ino);
                if matches!(sys::lstat_at(index.as_fd(), &key), Ok(i) if i.st_ino == st.st_ino && i.st_dev == st.st_dev)
                {
                    st.st_nlink = match self.index_nlink(&key) {
                        Some(n) => n as _,
                        None => st.st_nlink - 1,
                    };
                }
            }
        }
        st.st_ino = if node.ino == 1 { 1 } else { node.ino };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let s = node.state.read();
            let merged = s
                .span
                .as_ref()
                .is_some_and(|sp| s.loc == Loc::Upper || sp.end - sp.start > 1);
            if self.settings.static_nlink || merged {
                st.st_nlink = 1;
            }
        }
    }

    fn check_name(name: &OsStr) -> OvResult<()> {
        let b = name.as_bytes();
        if b.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        if b.is_empty() || b.contains(&b'/') {
            return Err(libc::EINVAL);
        }
        Ok(())
    }

    /// Resolves `name` in directory `parent` without registering a node.
    fn resolve(&self, parent: &Node, name: &OsStr) -> OvResult<(u64, NodeState, Stat)> {
        Self::check_name(name)?;
        if !parent.is_dir {
            return Err(libc::ENOTDIR);
        }
        if name.as_bytes() == layers::WH_OPAQUE {
            // The OCI opaque marker is the directory's, never an entry of it.
            return Err(libc::ENOENT);
        }
        let pstate = parent.state.read().clone();
        let ppath = if pstate.loc == Loc::Upper {
            Some(self.path_of(parent)?)
        } else {
            None
        };
        let lower_entry = match &pstate.span {
            Some(span) => self.lowers.dir(span).map_err(errno)?.get(name.as_bytes()),
            None => None,
        };
        if let (Some(ppath), Ok(ufd)) = (&ppath, self.upper_fd()) {
            let upath = ppath.join(name);
            match sys::lstat_at(ufd, &upath) {
                Ok(st) => {
                    if layers::is_chr_whiteout(&st) {
                        return Err(libc::ENOENT);
                    }
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    let mut span = None;
                    if is_dir && !layers::dir_is_opaque(ufd, &upath) {
                        span = self.child_span(ufd, &upath, &pstate, lower_entry, name);
                    }
                    let ino = match self.origin_of(ufd, &upath) {
                        Some(o) => o,
                        None => self.compose_ino(st.st_dev, st.st_ino),
                    };
                    let state = NodeState {
                        parent: parent.ino,
                        name: name.to_os_string(),
                        loc: Loc::Upper,
                        span,
                    };
                    return Ok((ino, state, st));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if lower_entry.is_some() {
                        let mut wh = OsString::from(".wh.");
                        wh.push(name);
                        if sys::lstat_at(ufd, &ppath.join(&wh)).is_ok() {
                            return Err(libc::ENOENT);
                        }
                    }
                }
                Err(e) => return Err(errno(e)),
            }
        }
        let (span, entry) = match (&pstate.span, lower_entry) {
            (
                Some(span),
                Some(LowerEntry::Object {
                    layer, end, dirs, ..
                }),
            ) => (span, (layer, end, dirs)),
            _ => return Err(libc::ENOENT),
        };
        let (layer, end, dirs) = entry;
        let lpath = span.path.join(name);
        let lfd = self.lowers.layers[layer as usize].fd();
        let st = sys::lstat_at(lfd, &lpath).map_err(errno)?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        // A directory merges with those below only when there are some and it is not
        // opaque in its own layer; the span says so (and merged-ness shows in st_nlink).
        let merges = is_dir && dirs > 1 && !layers::dir_is_opaque(lfd, &lpath);
        let child_span = is_dir.then(|| Span {
            path: lpath.clone(),
            start: layer,
            end: if merges { end } else { layer + 1 },
        });
        let ino = self.compose_ino(st.st_dev, st.st_ino);
        let loc = self.lower_loc(layer, lpath, &st, ino)?;
        let st = match &loc {
            // The shared copy of a hard-linked file holds the current attributes.
            Loc::Index(key) => match &self.index {
                Some(index) => sys::lstat_at(index.as_fd(), key).map_err(errno)?,
                None => st,
            },
            _ => st,
        };
        let state = NodeState {
            parent: parent.ino,
            name: name.to_os_string(),
            loc,
            span: child_span,
        };

        Ok((ino, state, st))
    }

    /// A lower object's location; a hard-linked file whose other name was already copied
    /// up resolves to the shared copy in the index.
    fn lower_loc(&self, layer: u32, lpath: PathBuf, st: &Stat, ino: u64) -> OvResult<Loc> {
        if st.st_nlink > 1 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
            if let Some(index) = &self.index {
                let key = index_key(ino);
                if sys::lstat_at(index.as_fd(), &key).is_ok() {
                    return Ok(Loc::Index(key));
                }
            }
        }
        Ok(Loc::Lower(layer, lpath))
    }

    fn child_span(
        &self,
        ufd: BorrowedFd<'_>,
        upath: &Path,
        pstate: &NodeState,
        lower: Option<LowerEntry>,
        _name: &OsStr,
    ) -> Option<Span> {
        if let Ok(Some(redirect)) = sys::get_xattr(ufd, upath, &self.xattr_redirect) {
            let r = OsStr::from_bytes(&redirect);
            let path = if redirect.starts_with(b"/") {
                PathBuf::from(OsStr::from_bytes(&redirect[1..]))
            } else {
                pstate
                    .span
                    .as_ref()
                    .map(|s| s.path.join(r))
                    .unwrap_or_else(|| PathBuf::from(r))
            };
            return Some(Span {
                path,
                start: 0,
                end: self.lowers.len(),
            });
        }
        match (lower, &pstate.span) {
            (
                Some(LowerEntry::Object {
                    layer,
                    end,
                    d_type: libc::DT_DIR,
                    ..
                }),
                Some(ps),
            ) => Some(Span {
                path: ps.path.join(upath.file_name().unwrap_or_default()),
                start: layer,
                end,
            }),
            _ => None,
        }
    }

    /// Looks `name` up in `parent` and registers one kernel lookup of the result.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> OvResult<(Arc<Node>, Stat)> {
        let p = self.node(parent)?;
        let (ino, state, mut st) = self.resolve(&p, name)?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let node = self.nodes.looked_up(ino, is_dir, state);
        self.fix_stat(&node, &mut st);
        Ok((node, st))
    }

    /// The whole merged listing of a directory (for one opendir).
    pub fn list(&self, ino: u64) -> OvResult<Listing> {
        let mut out = Listing::default();
        self.list_with(ino, &mut |name, e| out.push(name, e).map(drop))?;
        Ok(out)
    }

    /// True when listing `ino` would read lower directories of more than `bytes` (not
    /// cached yet): worth serving while it is read.
    pub fn list_is_large(&self, ino: u64, bytes: u64) -> bool {
        let Ok(node) = self.node(ino) else {
            return false;
        };
        let span = node.state.read().span.clone();
        span.is_some_and(|s| self.lowers.scan_exceeds(&s, bytes))
    }

    /// The merged listing of a directory, one entry at a time to `emit` as soon as it is
    /// known: ".", "..", the upper names, then the lower names not hidden (as the lowers
    /// are read). An error from `emit` stops the listing.
    pub fn list_with(
        &self,
        ino: u64,
        emit: &mut dyn FnMut(&[u8], ListEntry) -> io::Result<()>,
    ) -> OvResult<()> {
        let node = self.node(ino)?;
        if !node.is_dir {
            return Err(libc::ENOTDIR);
        }
        let st = node.state.read().clone();
        let parent_ino = if ino == 1 { 1 } else { st.parent };
        let dir = libc::DT_DIR;
        emit(b".", ListEntry { ino, d_type: dir }).map_err(errno)?;
        emit(
            b"..",
            ListEntry {
                ino: parent_ino,
                d_type: dir,
            },
        )
        .map_err(errno)?;
        // The upper's names (and whiteouts) hide lower ones, if there are lower ones.
        let merged = st.span.is_some();
        let mut hidden: NameMap<()> = NameMap::default();
        let mut hide = |name: &[u8]| {
            if merged && hidden.get(name).is_none() {
                hidden.insert_new(name, ())?;
            }
            Ok::<(), io::Error>(())
        };
        if st.loc == Loc::Upper {
            let ufd = self.upper_fd()?;
            let udev = self.upper.as_ref().map_or(0, |u| u.dev);
            let mut path = self.path_of(&node)?;
            let fd = sys::open_beneath(ufd, &path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(errno)?;
            sys::for_each_dir_entry(fd, |name, ino, d_type| {
                if let Some(target) = name.strip_prefix(layers::WH_PREFIX) {
                    if name != layers::WH_OPAQUE {
                        hide(target)?;
                    }
                    return Ok(());
                }
                path.push(OsStr::from_bytes(name));
                let whiteout = (d_type == libc::DT_CHR || d_type == libc::DT_UNKNOWN)
                    && matches!(sys::lstat_at(ufd, &path), Ok(s) if layers::is_chr_whiteout(&s));
                // A copied-up object keeps its lower inode number (origin), wherever it
                // was renamed to: d_ino then matches st_ino, as in the kernel.
                let origin = if whiteout {
                    None
                } else {
                    self.origin_of(ufd, &path)
                };
                path.pop();
                hide(name)?;
                if whiteout {
                    return Ok(());
                }
                let ino = origin.unwrap_or_else(|| self.compose_ino(udev, ino));
                emit(name, ListEntry { ino, d_type })
            })
            .map_err(errno)?;
        }
        if let Some(span) = &st.span {
            self.lowers
                .dir_with(span, |name, e| {
                    if !hidden.is_empty() && hidden.get(name).is_some() {
                        return Ok(());
                    }
                    if let LowerEntry::Object {
                        d_type, ino, layer, ..
                    } = *e
                    {
                        let dev = self.lowers.layers[layer as usize].dev;
                        emit(
                            name,
                            ListEntry {
                                ino: self.compose_ino(dev, ino),
                                d_type,
                            },
                        )?;
                    }
                    Ok(())
                })
                .map_err(errno)?;
        }
        Ok(())
    }

    fn is_empty_dir(&self, node: &Node) -> OvResult<bool> {
        Ok(self.list(node.ino)?.len() <= 2)
    }

    fn lower_has(&self, parent: &Node, name: &OsStr) -> OvResult<bool> {
        let span = parent.state.read().span.clone();
        Ok(match span {
            Some(span) => matches!(
                self.lowers.dir(&span).map_err(errno)?.get(name.as_bytes()),
                Some(LowerEntry::Object { .. })
            ),
            None => false,
        })
    }

    fn tmp_name(&self) -> PathBuf {
        PathBuf::from(format!(
            "#{:x}",
            self.tmp_counter.fetch_add(1, Ordering::Relaxed)
        ))
    }

    // ----- copy-up -----

    /// Makes the node's object writable in place: a lower object is copied up; an
    /// indexed one is already the shared upper copy (its names need not be re-created).
    fn make_writable(&self, node: &Node) -> OvResult<()> {
        let needs_copy_up = {
            let st = node.state.read();
            match st.loc {
                Loc::Lower(..) => true,
                // A live lower name of an indexed file joins the shared copy, as the
                // kernel copies it up; a node whose name is gone writes the copy itself.
                Loc::Index(_) => !st.name.is_empty(),
                Loc::Upper | Loc::Orphan(_) => false,
            }
        };
        if needs_copy_up {
            self.copy_up(node)?;
        }
        Ok(())
    }

    /// Makes sure `node` (and its ancestors) exist in the upper layer.
    pub fn copy_up(&self, node: &Node) -> OvResult<()> {
        if matches!(node.state.read().loc, Loc::Upper | Loc::Orphan(_)) {
            return Ok(());
        }
        if Self::unnamed(node) {
            // A lower object written after its name went: its copy has no name either.
            let _g = self.ns_lock.lock();
            if matches!(node.state.read().loc, Loc::Lower(..)) {
                self.copy_up_one(node)?;
                self.files.remove(node.ino);
            }
            return Ok(());
        }
        let parent = node.state.read().parent;
        let p = self.node(parent)?;
        self.copy_up(&p)?;
        let _g = self.ns_lock.lock();
        if matches!(node.state.read().loc, Loc::Upper | Loc::Orphan(_)) {
            return Ok(());
        }
        self.copy_up_one(node)?;
        // An open lower file of this inode would no longer show what the tree shows.
        self.files.remove(node.ino);
        Ok(())
    }

    fn copy_up_one(&self, node: &Node) -> OvResult<()> {
        let (lfd, lpath) = self.real(node)?;
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        // A node with no name gets its copy in the work dir, where it stays.
        let orphan = Self::unnamed(node);
        let upath = if orphan {
            PathBuf::new()
        } else {
            self.path_of(node)?
        };
        let st = sys::lstat_at(lfd, &lpath).map_err(errno)?;
        let indexed = !orphan && matches!(node.state.read().loc, Loc::Index(_));
        let hardlinked = !orphan && st.st_nlink > 1 && st.st_mode & libc::S_IFMT == libc::S_IFREG;
        if indexed {
            // Another name of this file was copied up: this name joins that copy. Like
            // every copy-up, it leaves the parent's times as they were.
            let parent_upath = upath.parent().map(Path::to_path_buf).unwrap_or_default();
            let pst = sys::lstat_at(ufd, &parent_upath).ok();
            sys::link_between(lfd, &lpath, ufd, &upath).map_err(errno)?;
            if let Some(pst) = pst {
                restore_times(ufd, &parent_upath, &pst);
            }
            node.state.write().loc = Loc::Upper;
            return Ok(());
        }
        let tmp = self.tmp_name();
        let fmt = st.st_mode & libc::S_IFMT;
        let perm = st.st_mode & 0o7777;
        let parent_upath = upath.parent().map(Path::to_path_buf).unwrap_or_default();
        let pst = if orphan {
            None
        } else {
            sys::lstat_at(ufd, &parent_upath).ok()
        };
        let times = [
            libc::timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec,
            },
            libc::timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec,
            },
        ];
        let origin = node.ino.to_string();
        // Owner and mode as the lower shows them (its override record, if it keeps
        // one). An upper that keeps records gets the real ones on the file and a record
        // where they differ or the owner cannot be given; else the shown ones go on
        // the file.
        let lower_kind = match &node.state.read().loc {
            Loc::Lower(l, _) => self.lowers.layers[*l as usize].override_stat,
            _ => None,
        };
        let upper_kind = self.upper_override();
        let mut shown = st;
        if let Some(k) = lower_kind {
            override_stat::read_into(k, lfd, &lpath, &mut shown);
        }
        let (st_uid, st_gid, perm) = if upper_kind.is_some() {
            (st.st_uid, st.st_gid, perm)
        } else {
            (shown.st_uid, shown.st_gid, shown.st_mode & 0o7777)
        };
        let differs =
            (shown.st_uid, shown.st_gid, shown.st_mode & 0o7777) != (st_uid, st_gid, perm);
        // The record was copied as it is when both layers keep the same one.
        let copied = lower_kind == upper_kind && upper_kind != Some(OverrideKind::User);
        let record = |owned: bool| match upper_kind {
            Some(k) if fmt != libc::S_IFLNK && (!owned || (differs && !copied)) => Some((
                k.xattr(),
                override_stat::format(shown.st_uid, shown.st_gid, shown.st_mode),
            )),
            _ => None,
        };
        // Owner first (a chown clears set-user-ID), then mode; EPERM/EINVAL on the
        // owner (rootless, an unmapped id) leaves the daemon's own (false).
        let owner_ok = |r: io::Result<()>| match r {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => Err(e),
            Err(_) => Ok(false),
            Ok(()) => Ok(true),
        };
        let res = (|| -> io::Result<()> {
            match fmt {
                libc::S_IFREG => {
                    // Everything through the two open files: no path walks. The copy
                    // is an O_TMPFILE file (no work-dir entry to make and remove, less
                    // for the fsync to commit) linked in whole where it belongs.
                    let src = sys::open_beneath(lfd, &lpath, libc::O_RDONLY, 0)?;
                    let (dst, unnamed) = match sys::open_beneath(
                        wfd,
                        Path::new(""),
                        libc::O_TMPFILE | libc::O_WRONLY,
                        0o600,
                    ) {
                        Ok(fd) => (fd, true),
                        Err(_) => (
                            sys::open_beneath(
                                wfd,
                                &tmp,
                                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                                0o600,
                            )?,
                            false,
                        ),
                    };
                    sys::copy_data(src.as_raw_fd(), dst.as_raw_fd(), st.st_size as u64)?;
                    if self.settings.fsync {
                        // SAFETY: fsync on an owned fd.
                        unsafe { libc::fsync(dst.as_raw_fd()) };
                    }
                    let owned = owner_ok(sys::fchown(dst.as_fd(), st_uid, st_gid))?;
                    sys::fchmod(dst.as_fd(), perm)?;
                    self.copy_xattrs_fd(src.as_fd(), dst.as_fd());
                    if let Some((name, v)) = record(owned) {
                        let _ = sys::fd_set_xattr(dst.as_fd(), name, v.as_bytes(), 0);
                    }
                    let _ =
                        sys::fd_set_xattr(dst.as_fd(), &self.xattr_origin, origin.as_bytes(), 0);
                    sys::futimens(dst.as_fd(), &times)?;
                    if unnamed {
                        if hardlinked {
                            self.index_copy(
                                |i, key| sys::link_fd_at(dst.as_fd(), i, key),
                                node.ino,
                                st.st_nlink,
                            )?;
                        }
                        return if orphan {
                            sys::link_fd_at(dst.as_fd(), wfd, &tmp)
                        } else {
                            sys::link_fd_at(dst.as_fd(), ufd, &upath)
                        };
                    }
                }
                _ => {
                    match fmt {
                        libc::S_IFDIR => sys::mkdir_at(wfd, &tmp, 0o700)?,
                        libc::S_IFLNK => {
                            let target = sys::readlink_at(lfd, &lpath)?;
                            sys::symlink_at(OsStr::from_bytes(&target), wfd, &tmp)?;
                        }
                        _ => sys::mknod_at(wfd, &tmp, fmt | 0o600, st.st_rdev)?,
                    }
                    let owned = owner_ok(sys::lchown_at(wfd, &tmp, st_uid, st_gid))?;
                    if fmt != libc::S_IFLNK {
                        sys::chmod_at(wfd, &tmp, perm)?;
                    }
                    self.copy_xattrs(lfd, &lpath, wfd, &tmp);
                    if let Some((name, v)) = record(owned) {
                        let _ = sys::set_xattr(wfd, &tmp, name, v.as_bytes(), 0);
                    }
                    let _ = sys::set_xattr(wfd, &tmp, &self.xattr_origin, origin.as_bytes(), 0);
                    sys::utimens_at(wfd, &tmp, &times)?;
                }
            }
            if hardlinked {
                self.index_copy(
                    |i, key| sys::link_between(wfd, &tmp, i, key),
                    node.ino,
                    st.st_nlink,
                )?;
            }
            if !orphan {
                sys::rename_between(wfd, &tmp, ufd, &upath, 0)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = sys::unlink_at(wfd, &tmp, fmt == libc::S_IFDIR);
            return Err(errno(e));
        }
        if let Some(pst) = pst {
            restore_times(ufd, &parent_upath, &pst);
        }
        node.state.write().loc = if orphan { Loc::Orphan(tmp) } else { Loc::Upper };
        Ok(())
    }

    /// Gives the copy-up of a hard-linked lower file (node `ino`, `nlink` lower names)
    /// its index entry through `link` (index dir, key), with the count the names share.
    fn index_copy(
        &self,
        link: impl FnOnce(BorrowedFd<'_>, &Path) -> io::Result<()>,
        ino: u64,
        nlink: u64,
    ) -> io::Result<()> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let key = index_key(ino);
        link(index.as_fd(), &key)?;
        let n = nlink.to_string();
        let _ = sys::set_xattr(index.as_fd(), &key, &self.xattr_nlink, n.as_bytes(), 0);
        Ok(())
    }

    /// Copies the xattrs a copy-up carries from the open file `src` to `dst`.
    fn copy_xattrs_fd(&self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) {
        let Ok(list) = sys::fd_list_xattr(src) else {
            return;
        };
        for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if is_private_xattr(name) && !name.starts_with(&self.escaped_prefix()) {
                continue;
            }
            let Ok(cname) = CString::new(name) else {
                continue;
            };
            if let Ok(Some(v)) = sys::fd_get_xattr(src, &cname) {
                let _ = sys::fd_set_xattr(dst, &cname, &v, 0);
            }
        }
    }

    fn copy_xattrs(&self, sfd: BorrowedFd<'_>, spath: &Path, dfd: BorrowedFd<'_>, dpath: &Path) {
        let Ok(list) = sys::list_xattr(sfd, spath) else {
            return;
        };
        for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if is_private_xattr(name) && !name.starts_with(&self.escaped_prefix()) {
                continue;
            }
            let Ok(cname) = CString::new(name) else {
                continue;
            };
            if let Ok(Some(v)) = sys::get_xattr(sfd, spath, &cname) {
                let _ = sys::set_xattr(dfd, dpath, &cname, &v, 0);
            }
        }
    }

    // ----- whiteouts -----

    /// Puts a whiteout at `upath` in the upper layer (replacing a non-directory there).
    fn make_whiteout(&self, upath: &Path) -> OvResult<()> {
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        if self.settings.whiteout_files {
            return Self::make_wh_file(ufd, upath);
        }
        if self
            .whiteout
            .link(wfd, ufd, upath, || self.tmp_name())
            .map_err(errno)?
        {
            return Ok(());
        }
        let tmp = self.tmp_name();
        match sys::mknod_at(wfd, &tmp, libc::S_IFCHR, 0) {
            Ok(()) => {
                if let Err(e) = sys::rename_between(wfd, &tmp, ufd, upath, 0) {
                    let _ = sys::unlink_at(wfd, &tmp, false);
                    return Err(errno(e));
                }
                Ok(())
            }
            // No mknod here (rootless without privileges): the `.wh.NAME` format.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Self::make_wh_file(ufd, upath),
            Err(e) => Err(errno(e)),
        }
    }

    /// A whiteout in the `.wh.NAME` format (fuse-overlayfs' where mknod is refused, or
    /// with `FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT`), replacing a non-directory at `upath`.
    fn make_wh_file(ufd: BorrowedFd<'_>, upath: &Path) -> OvResult<()> {
        match sys::unlink_at(ufd, upath, false) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(errno(e)),
        }
        let name = upath.file_name().ok_or(libc::EINVAL)?;
        let mut wh = OsString::from(".wh.");
        wh.push(name);
        let whp = upath.with_file_name(wh);
        let fd =
            sys::open_beneath(ufd, &whp, libc::O_WRONLY | libc::O_CREAT, 0o600).map_err(errno)?;
        drop(fd);
        Ok(())
    }

    /// Removes a whiteout left at `upath` (both formats), so a new object can take the name.
    fn clear_whiteout(&self, upath: &Path) -> OvResult<bool> {
        let ufd = self.upper_fd()?;
        let mut had = false;
        if let Ok(st) = sys::lstat_at(ufd, upath) {
            if layers::is_chr_whiteout(&st) {
                sys::unlink_at(ufd, upath, false).map_err(errno)?;
                had = true;
            }
        }
        if let Some(name) = upath.file_name() {
            let mut wh = OsString::from(".wh.");
            wh.push(name);
            if sys::unlink_at(ufd, &upath.with_file_name(wh), false).is_ok() {
                had = true;
            }
        }
        Ok(had)
    }

    // ----- creation -----

    /// What `create`, `mknod`, `mkdir` and `symlink` make, for a caller with ids
    /// `uid`/`gid` (as stored) and umask `umask` (applied by the upper file system as
    /// for the caller, so a default ACL on the parent takes its place).
    pub fn make(
        &self,
        parent: u64,
        name: &OsStr,
        kind: NewObject<'_>,
        uid: u32,
        gid: u32,
        umask: u32,
    ) -> OvResult<(Arc<Node>, Stat, Option<OwnedFd>)> {
        Self::check_name(name)?;
        let p = self.node(parent)?;
        if !p.is_dir {
            return Err(libc::ENOTDIR);
        }
        match self.resolve(&p, name) {
            Ok(_) => return Err(libc::EEXIST),
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        self.copy_up(&p)?;
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let upath = self.path_of(&p)?.join(name);
        // A whiteout hides a lower name; only then is one looked for first. Anywhere
        // else a stray one makes the create fail with EEXIST, and is cleared then.
        let in_lower = self.lower_has(&p, name)?;
        let mut had_wh = in_lower && self.clear_whiteout(&upath)?;
        let create = || -> io::Result<Option<OwnedFd>> {
            match kind {
                NewObject::File { mode, flags } => sys::open_beneath(
                    ufd,
                    &upath,
                    (flags & !libc::O_NOCTTY) | libc::O_CREAT | libc::O_EXCL,
                    sys::caller_umask(umask, mode & 0o7777),
                )
                .map(Some),
                NewObject::Node { mode, rdev } => {
                    let perm = sys::caller_umask(umask, mode & 0o7777);
                    sys::mknod_at(ufd, &upath, (mode & libc::S_IFMT) | perm, rdev).map(|_| None)
                }
                NewObject::Dir { mode } => {
                    sys::mkdir_at(ufd, &upath, sys::caller_umask(umask, mode & 0o7777))
                        .map(|_| None)
                }
                NewObject::Symlink { target } => sys::symlink_at(target, ufd, &upath).map(|_| None),
            }
        };
        let mut r = create();
        if !had_wh
            && matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EEXIST))
            && self.clear_whiteout(&upath)?
        {
            had_wh = true;
            r = create();
        }
        let fd = match r {
            Ok(fd) => fd,
            Err(e) => {
                if had_wh {
                    let _ = self.make_whiteout(&upath);
                }
                return Err(errno(e));
            }
        };
        let is_dir = matches!(kind, NewObject::Dir { .. });
        if is_dir && (in_lower || had_wh) {
            sys::set_xattr(ufd, &upath, &self.xattr_opaque, b"y", 0).map_err(errno)?;
        }
        let mut st = sys::lstat_at(ufd, &upath).map_err(errno)?;
        let parent_upath = upath.parent().unwrap_or(Path::new(""));
        let owner = Self::give_creator(ufd, parent_upath, (ufd, &upath), &mut st, uid, gid)?;
        self.record_creator((ufd, &upath), &st, owner);
        let ino = self.compose_ino(st.st_dev, st.st_ino);
        let state = NodeState {
            parent: p.ino,
            name: name.to_os_string(),
            loc: Loc::Upper,
            span: None,
        };
        let node = self.nodes.created(ino, is_dir, state);
        self.fix_stat(&node, &mut st);
        Ok((node, st, fd))
    }

    /// The daemon made the object at `at` (attributes `st`) in the upper directory
    /// `parent` (beneath `ufd`): give it the caller's owner. The group a set-group-ID
    /// parent gave it stays, as on any filesystem; when the group it got is the
    /// caller's, either way it is right and the parent need not be looked at.
    fn give_creator(
        ufd: BorrowedFd<'_>,
        parent: &Path,
        at: (BorrowedFd<'_>, &Path),
        st: &mut Stat,
        uid: u32,
        gid: u32,
    ) -> OvResult<(u32, u32)> {
        if st.st_uid == uid && st.st_gid == gid {
            return Ok((uid, gid));
        }
        let gid = match sys::lstat_at(ufd, parent) {
            Ok(ps) if ps.st_mode & libc::S_ISGID != 0 => ps.st_gid,
            _ => gid,
        };
        if st.st_uid != uid || st.st_gid != gid {
            match sys::lchown_at(at.0, at.1, uid, gid) {
                Ok(()) => {
                    // The chown cleared set-user-ID / set-group-ID on a non-directory;
                    // the caller made it with them (the kernel already took out what
                    // the caller may not set), as its own create would keep them.
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    let perm = st.st_mode & 0o7777;
                    if !is_dir && perm & (libc::S_ISUID | libc::S_ISGID) != 0 {
                        sys::chmod_at(at.0, at.1, perm).map_err(errno)?;
                    }
                    *st = sys::lstat_at(at.0, at.1).map_err(errno)?;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        Ok((uid, gid))
    }

    /// After a create: where the upper keeps owners in an xattr and the daemon could
    /// not give the object its owner (rootless), the record says it.
    fn record_creator(&self, at: (BorrowedFd<'_>, &Path), st: &Stat, owner: (u32, u32)) {
        let Some(kind) = self.upper_override() else {
            return;
        };
        if (st.st_uid, st.st_gid) == owner || st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return;
        }
        let v = override_stat::format(owner.0, owner.1, st.st_mode);
        let _ = sys::set_xattr(at.0, at.1, kind.xattr(), v.as_bytes(), 0);
    }

    /// An O_TMPFILE file in directory `parent`: made by the upper file system in the
    /// (copied-up) upper directory, so mode, default ACL and group come out as for any
    /// file made there, then given a name in the work dir (a `Loc::Orphan`) until a
    /// `linkat` names it or the kernel forgets it. Returns it opened with `flags`.
    pub fn tmpfile(
        &self,
        parent: u64,
        mode: u32,
        flags: i32,
        uid: u32,
        gid: u32,
        umask: u32,
    ) -> OvResult<(Arc<Node>, Stat, OwnedFd)> {
        let p = self.node(parent)?;
        if !p.is_dir {
            return Err(libc::ENOTDIR);
        }
        self.copy_up(&p)?;
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        let ppath = self.path_of(&p)?;
        let acc = match flags & libc::O_ACCMODE {
            libc::O_WRONLY => libc::O_WRONLY,
            _ => libc::O_RDWR,
        };
        let fd = sys::open_beneath(
            ufd,
            &ppath,
            libc::O_TMPFILE | acc,
            sys::caller_umask(umask, mode & 0o7777),
        )
        .map_err(errno)?;
        let tmp = self.tmp_name();
        sys::link_fd_at(fd.as_fd(), wfd, &tmp).map_err(errno)?;
        let mut st = sys::lstat_at(wfd, &tmp).map_err(errno)?;
        match Self::give_creator(ufd, &ppath, (wfd, &tmp), &mut st, uid, gid) {
            Ok(owner) => self.record_creator((wfd, &tmp), &st, owner),
            Err(e) => {
                let _ = sys::unlink_at(wfd, &tmp, false);
                return Err(e);
            }
        }
        let ino = self.compose_ino(st.st_dev, st.st_ino);
        let state = NodeState {
            parent: p.ino,
            name: OsString::new(),
            loc: Loc::Orphan(tmp),
            span: None,
        };
        let node = self.nodes.created(ino, false, state);
        self.fix_stat(&node, &mut st);
        Ok((node, st, fd))
    }

    /// Names an O_TMPFILE file (the kernel allows `linkat` of no other nameless
    /// object): its work-dir link becomes `dst` in the upper layer.
    fn adopt_orphan(&self, node: &Node, np: &Node, newname: &OsStr, dst: &Path) -> OvResult<()> {
        let ufd = self.upper_fd()?;
        let wfd = self.work_fd()?;
        let Loc::Orphan(tmp) = node.state.read().loc.clone() else {
            return Err(libc::ENOENT);
        };
        sys::rename_between(wfd, &tmp, ufd, dst, libc::RENAME_NOREPLACE).map_err(errno)?;
        let mut s = node.state.write();
        s.parent = np.ino;
        s.name = newname.to_os_string();
        s.loc = Loc::Upper;
        Ok(())
    }

    /// Creates a hard link `newparent/newname` to `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> OvResult<(Arc<Node>, Stat)> {
        Self::check_name(newname)?;
        let node = self.node(ino)?;
        if node.is_dir {
            return Err(libc::EPERM);
        }
        let np = self.node(newparent)?;
        match self.resolve(&np, newname) {
            Ok(_) => return Err(libc::EEXIST),
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        self.make_writable(&node)?;
        self.copy_up(&np)?;
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let dst = self.path_of(&np)?.join(newname);
        let had_wh = self.clear_whiteout(&dst)?;
        if matches!(node.state.read().loc, Loc::Orphan(_)) {
            if let Err(e) = self.adopt_orphan(&node, &np, newname, &dst) {
                if had_wh {
                    let _ = self.make_whiteout(&dst);
                }
                return Err(e);
            }
            node.nlookup.fetch_add(1, Ordering::Relaxed);
            let st = self.stat(&node)?;
            return Ok((node, st));
        }
        self.ensure_index(&node)?;
        // Link from wherever the object lives now (its upper name or the index).
        let (sfd, src) = self.real(&node)?;
        if let Err(e) = sys::link_between(sfd, &src, ufd, &dst) {
            if had_wh {
                let _ = self.make_whiteout(&dst);
            }
            return Err(errno(e));
        }
        self.adjust_index_nlink(node.ino, 1);
        node.nlookup.fetch_add(1, Ordering::Relaxed);
        let st = self.stat(&node)?;
        Ok((node, st))
    }

    // ----- removal -----

    /// unlink (`dir == false`) or rmdir (`dir == true`) of `parent/name`.
    pub fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> OvResult<()> {
        let p = self.node(parent)?;
        let (mut ino, mut state, mut st) = self.resolve(&p, name)?;
        // A lower name of a hard-linked file whose other name was copied up resolves to
        // the index copy, whose own link count no longer counts the lower names.
        let hardlinked = st.st_mode & libc::S_IFMT == libc::S_IFREG
            && (st.st_nlink > 1 || matches!(state.loc, Loc::Index(_)));
        if hardlinked && !dir && state.loc != Loc::Upper && self.writable() {
            // As the kernel with index=on: copy a hard-linked file up (link it up from
            // the index) before removing one name, so the link count the other names
            // show stays right.
            let node = self.nodes.looked_up(ino, false, state.clone());
            let r = self.copy_up(&node);
            self.forget(ino, 1);
            r?;
            (ino, state, st) = self.resolve(&p, name)?;
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if dir && !is_dir {
            return Err(libc::ENOTDIR);
        }
        if !dir && is_dir {
            return Err(libc::EISDIR);
        }
        let tmp_node = Node::detached(ino, is_dir, state.clone());
        if dir && !self.is_empty_dir_state(&tmp_node)? {
            return Err(libc::ENOTEMPTY);
        }
        self.copy_up(&p)?;
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let upath = self.path_of(&p)?.join(name);
        let in_lower = self.lower_has(&p, name)?;
        let mut orphan = None;
        if state.loc == Loc::Upper {
            let wfd = self.work_fd()?;
            if is_dir {
                let tmp = self.tmp_name();
                sys::rename_between(ufd, &upath, wfd, &tmp, 0).map_err(errno)?;
                if self.held(ino, 0) {
                    // Kept, emptied of its whiteouts, while the kernel holds it.
                    clear_dir(wfd, &tmp);
                    orphan = Some(tmp);
                } else {
                    remove_tree(wfd, &tmp);
                }
            } else if st.st_nlink <= 1 && self.held(ino, 0) {
                // The last name of a file the kernel holds (it may be open): moved
                // to the work dir, not unlinked, until the kernel forgets it. (An
                // indexed file has its index link besides: unlinked, it lives on.)
                let tmp = self.tmp_name();
                sys::rename_between(ufd, &upath, wfd, &tmp, 0).map_err(errno)?;
                orphan = Some(tmp);
            } else {
                sys::unlink_at(ufd, &upath, false).map_err(errno)?;
                self.adjust_index_nlink(ino, -1);
                self.name_gone(ino, p.ino, name);
            }
        }
        if in_lower {
            self.make_whiteout(&upath)?;
        }
        self.detach(ino, p.ino, name, orphan);
        Ok(())
    }

    fn is_empty_dir_state(&self, tmp: &Node) -> OvResult<bool> {
        // A node not (yet) in the table: list it through a transient registration.
        if let Some(n) = self.nodes.get(tmp.ino) {
            return self.is_empty_dir(&n);
        }
        let st = tmp.state.read().clone();
        if st.loc == Loc::Upper {
            let p = self.node(st.parent)?;
            let upath = self.path_of(&p)?.join(&st.name);
            let ufd = self.upper_fd()?;
            for e in sys::read_dir_at(ufd, &upath).map_err(errno)? {
                if e.name.starts_with(layers::WH_PREFIX) {
                    continue;
                }
                let p2 = upath.join(OsStr::from_bytes(&e.name));
                if !matches!(sys::lstat_at(ufd, &p2), Ok(s) if layers::is_chr_whiteout(&s)) {
                    return Ok(false);
                }
            }
        }
        if let Some(span) = &st.span {
            let d = self.lowers.dir(span).map_err(errno)?;
            let ufd = self.upper_fd().ok();
            for (name, _) in d.visible() {
                // hidden by an upper whiteout?
                if st.loc == Loc::Upper {
                    if let Some(ufd) = ufd {
                        let p = self.node(st.parent)?;
                        let up = self
                            .path_of(&p)?
                            .join(&st.name)
                            .join(OsStr::from_bytes(name));
                        if matches!(sys::lstat_at(ufd, &up), Ok(s) if layers::is_chr_whiteout(&s)) {
                            continue;
                        }
                        let mut wh = OsString::from(".wh.");
                        wh.push(OsStr::from_bytes(name));
                        if sys::lstat_at(ufd, &up.with_file_name(wh)).is_ok() {
                            continue;
                        }
                    }
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    // ----- rename -----

    /// rename / renameat2 with `RENAME_NOREPLACE` / `RENAME_EXCHANGE`.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> OvResult<()> {
        Self::check_name(newname)?;
        let p = self.node(parent)?;
        let np = self.node(newparent)?;
        let (sino, sstate, sst) = self.resolve(&p, name)?;
        let src_dir = sst.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let dst = match self.resolve(&np, newname) {
            Ok(d) => Some(d),
            Err(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(libc::EEXIST);
        }
        if exchange && dst.is_none() {
            return Err(libc::ENOENT);
        }
        if let Some((dino, dstate, dst_st)) = &dst {
            if *dino == sino {
                return Ok(());
            }
            let dst_dir = dst_st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !exchange {
                if src_dir && !dst_dir {
                    return Err(libc::ENOTDIR);
                }
                if !src_dir && dst_dir {
                    return Err(libc::EISDIR);
                }
                if dst_dir {
                    let t = Node::detached(*dino, true, dstate.clone());
                    if !self.is_empty_dir_state(&t)? {
                        return Err(libc::ENOTEMPTY);
                    }
                }
            }
        }
        // Bring both ends up.
        let snode = self.nodes.looked_up(sino, src_dir, sstate.clone());
        let dnode = dst.as_ref().map(|(dino, dstate, dst_st)| {
            self.nodes.looked_up(
                *dino,
                dst_st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                dstate.clone(),
            )
        });
        let r = self.rename_locked(&p, name, &np, newname, &snode, dnode.as_deref(), exchange);
        self.forget(snode.ino, 1);
        if let Some(d) = &dnode {
            self.forget(d.ino, 1);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_locked(
        &self,
        p: &Node,
        name: &OsStr,
        np: &Node,
        newname: &OsStr,
        snode: &Node,
        dnode: Option<&Node>,
        exchange: bool,
    ) -> OvResult<()> {
        self.copy_up(snode)?;
        self.copy_up(np)?;
        if exchange {
            if let Some(d) = dnode {
                self.copy_up(d)?;
            }
        }
        let _g = self.ns_lock.lock();
        let ufd = self.upper_fd()?;
        let from = self.path_of(p)?.join(name);
        let to = self.path_of(np)?.join(newname);
        let src_in_lower = self.lower_has(p, name)?;
        let dst_in_lower = self.lower_has(np, newname)?;
        let mut rflags = 0;
        let mut orphan = None;
        if exchange {
            rflags = libc::RENAME_EXCHANGE;
        } else if let Some(d) = dnode {
            let upper = d.state.read().loc == Loc::Upper;
            if d.is_dir && upper {
                // The target is empty in the merged view: only whiteouts may be inside.
                clear_dir(ufd, &to);
            } else if upper
                && self.held(d.ino, 1)
                && sys::lstat_at(ufd, &to).is_ok_and(|st| st.st_nlink == 1)
            {
                // The kernel holds the file about to be replaced (it may be open):
                // a link in the work dir keeps it until the kernel forgets it.
                let wfd = self.work_fd()?;
                let tmp = self.tmp_name();
                sys::link_between(ufd, &to, wfd, &tmp).map_err(errno)?;
                orphan = Some(tmp);
            }
        } else {
            // No visible target: drop a whiteout that may hold the name.
            self.clear_whiteout(&to)?;
        }
        if let Err(e) = sys::rename_between(ufd, &from, ufd, &to, rflags) {
            if let (Some(tmp), Ok(wfd)) = (&orphan, self.work_fd()) {
                let _ = sys::unlink_at(wfd, tmp, false);
            }
            return Err(errno(e));
        }
        if let (false, Some(d)) = (exchange, dnode) {
            if !d.is_dir {
                self.adjust_index_nlink(d.ino, -1);
                self.name_gone(d.ino, np.ino, newname);
            }
            self.detach(d.ino, np.ino, newname, orphan);
        }
        if !exchange && src_in_lower {
            self.make_whiteout(&from)?;
        }
        // Directories that moved keep their lower contents by redirect, or are made
        // opaque where they land on a name the lowers hold.
        self.fix_moved_dir(ufd, snode, &to, dst_in_lower)?;
        {
            let mut s = snode.state.write();
            s.parent = np.ino;
            s.name = newname.to_os_string();
        }
        if exchange {
            if let Some(d) = dnode {
                self.fix_moved_dir(ufd, d, &from, src_in_lower)?;
                let mut s = d.state.write();
                s.parent = p.ino;
                s.name = name.to_os_string();
            }
        }
        Ok(())
    }

    fn fix_moved_dir(
        &self,
        ufd: BorrowedFd<'_>,
        node: &Node,
        at: &Path,
        name_in_lower: bool,
    ) -> OvResult<()> {
        if !node.is_dir {
            return Ok(());
        }
        let span = node.state.read().span.clone();
        match span {
            Some(span) => {
                let mut v = b"/".to_vec();
                v.extend_from_slice(span.path.as_os_str().as_bytes());
                sys::set_xattr(ufd, at, &self.xattr_redirect, &v, 0).map_err(errno)?;
                // Lookups of the moved directory now merge from every lower.
                node.state.write().span = Some(Span {
                    path: span.path,
                    start: 0,
                    end: self.lowers.len(),
                });
            }
            None if name_in_lower => {
                sys::set_xattr(ufd, at, &self.xattr_opaque, b"y", 0).map_err(errno)?;
            }
            None => {}
        }
        Ok(())
    }

    // ----- attributes -----

    /// Applies a setattr: copies up first.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        fh: Option<i32>,
        times: Option<[libc::timespec; 2]>,
    ) -> OvResult<Stat> {
        let node = self.node(ino)?;
        self.make_writable(&node)?;
        let (ufd, path) = self.real(&node)?;
        let recorded = match self.upper_override() {
            Some(kind) if uid.is_some() || gid.is_some() || mode.is_some() => {
                self.record_owner(kind, ufd, &path, uid, gid, mode)?
            }
            _ => false,
        };
        if !recorded && (uid.is_some() || gid.is_some()) {
            sys::lchown_at(ufd, &path, uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))
                .map_err(errno)?;
        }
        if let (false, Some(mode)) = (recorded, mode) {
            sys::chmod_at(ufd, &path, mode & 0o7777).map_err(errno)?;
        }
        if let Some(size) = size {
            let r = match fh {
                // SAFETY: ftruncate on an fd owned by an open handle.
                Some(fd) => unsafe { libc::ftruncate(fd, size as i64) },
                None => {
                    let f = sys::open_beneath(ufd, &path, libc::O_WRONLY, 0).map_err(errno)?;
                    // SAFETY: as above.
                    unsafe { libc::ftruncate(f.as_raw_fd(), size as i64) }
                }
            };
            if r < 0 {
                return Err(errno(io::Error::last_os_error()));
            }
        }
        if let Some(t) = times {
            sys::utimens_at(ufd, &path, &t).map_err(errno)?;
        }
        self.stat(&node)
    }

    /// chown/chmod of the upper object at `path` as fuse-overlayfs does with an override
    /// kind: the record gets the new owner and mode (what it does not change is taken
    /// from the record, else from the file), the file itself stays as it is. False for
    /// a symlink, which carries no record and is chowned for real.
    fn record_owner(
        &self,
        kind: OverrideKind,
        fd: BorrowedFd<'_>,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
    ) -> OvResult<bool> {
        let mut st = sys::lstat_at(fd, path).map_err(errno)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Ok(false);
        }
        override_stat::read_into(kind, fd, path, &mut st);
        let v = override_stat::format(
            uid.unwrap_or(st.st_uid),
            gid.unwrap_or(st.st_gid),
            mode.unwrap_or(st.st_mode),
        );
        sys::set_xattr(fd, path, kind.xattr(), v.as_bytes(), 0).map_err(errno)?;
        Ok(true)
    }

    /// Reads a symlink's target.
    pub fn readlink(&self, ino: u64) -> OvResult<Vec<u8>> {
        let node = self.node(ino)?;
        let (fd, path) = self.real(&node)?;
        sys::readlink_at(fd, &path).map_err(errno)
    }

    /// Opens the real file for I/O; modifying opens copy up first. Returns the fd and
    /// whether the file is lower-only (immutable: the kernel may keep its cache).
    pub fn open(&self, ino: u64, flags: i32) -> OvResult<(OwnedFd, bool)> {
        let node = self.node(ino)?;
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            if !self.writable() {
                return Err(libc::EROFS);
            }
            self.make_writable(&node)?;
        }
        let (fd, path) = self.real(&node)?;
        let lower = matches!(node.state.read().loc, Loc::Lower(..));
        let f = sys::open_beneath(
            fd,
            &path,
            flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY),
            0,
        )
        .map_err(errno)?;
        Ok((f, lower))
    }

    /// The real file of `ino` for I/O without a FUSE handle: kept open across requests
    /// (see `files`); for `write` the file is copied up first and opened read-write.
    pub fn real_file(&self, ino: u64, write: bool) -> OvResult<Arc<RealFile>> {
        if let Some(f) = self.files.get(ino, write) {
            return Ok(f);
        }
        let node = self.node(ino)?;
        if node.is_dir {
            return Err(libc::EISDIR);
        }
        if write {
            if !self.writable() {
                return Err(libc::EROFS);
            }
            self.make_writable(&node)?;
        }
        let lower = matches!(node.state.read().loc, Loc::Lower(..));
        let (dir, path) = self.real(&node)?;
        let fd = if write {
            sys::open_beneath(dir, &path, libc::O_RDWR, 0)
                .or_else(|_| sys::open_beneath(dir, &path, libc::O_WRONLY, 0))
        } else {
            sys::open_beneath(dir, &path, libc::O_RDONLY, 0)
        }
        .map_err(errno)?;
        let file = self.files.insert(
            ino,
            RealFile {
                fd,
                writable: write,
            },
        );
        // A copy-up that finished while this lower file was being opened has already
        // cleared the cache: drop the stale entry (the caller's read still sees data
        // equal to the copy's).
        if lower && !matches!(node.state.read().loc, Loc::Lower(..)) {
            self.files.remove_if_same(ino, &file);
        }
        Ok(file)
    }

    /// Drops `n` kernel references to `ino`; a node no longer referenced goes, with
    /// any real file kept open for it.
    pub fn forget(&self, ino: u64, n: u64) {
        if let Some(gone) = self.nodes.forget(ino, n) {
            self.files.remove(gone.ino);
            if let (Loc::Orphan(name), Ok(wfd)) = (&gone.state.read().loc, self.work_fd()) {
                // Its last user is gone: so is the object, as on any file system.
                let _ = sys::unlink_at(wfd, name, gone.is_dir);
            }
        }
    }

    /// Whether `ino` is still served from a lower file (not copied up since).
    pub fn is_lower(&self, ino: u64) -> bool {
        self.node(ino)
            .is_ok_and(|n| matches!(n.state.read().loc, Loc::Lower(..)))
    }

    // ----- xattrs -----

    /// getxattr; the overlay's own markers are not visible.
    pub fn getxattr(&self, ino: u64, name: &OsStr) -> OvResult<Vec<u8>> {
        let c = self.stored_xattr_name(name).ok_or(libc::ENODATA)?;
        let node = self.node(ino)?;
        let (fd, path) = self.real(&node)?;
        sys::get_xattr(fd, &path, &c)
            .map_err(errno)?
            .ok_or(libc::ENODATA)
    }

    /// listxattr without the overlay's own markers.
    pub fn listxattr(&self, ino: u64) -> OvResult<Vec<u8>> {
        let node = self.node(ino)?;
        let (fd, path) = self.real(&node)?;
        let raw = sys::list_xattr(fd, &path).map_err(errno)?;
        let mut out = Vec::with_capacity(raw.len());
        let escaped = self.escaped_prefix();
        for n in raw.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if let Some(rest) = n.strip_prefix(escaped.as_slice()) {
                out.extend_from_slice(self.own_prefix());
                out.extend_from_slice(rest);
                out.push(0);
            } else if !is_private_xattr(n) {
                out.extend_from_slice(n);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// setxattr (copies up).
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> OvResult<()> {
        let c = self.stored_xattr_name(name).ok_or(libc::EPERM)?;
        let node = self.node(ino)?;
        self.make_writable(&node)?;
        let (fd, path) = self.real(&node)?;
        sys::set_xattr(fd, &path, &c, value, flags).map_err(errno)
    }

    /// removexattr (copies up).
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> OvResult<()> {
        let c = self.stored_xattr_name(name).ok_or(libc::ENODATA)?;
        // Nothing to remove: fail before copying up.
        self.getxattr(ino, name)?;
        let node = self.node(ino)?;
        self.make_writable(&node)?;
        let (fd, path) = self.real(&node)?;
        sys::remove_xattr(fd, &path, &c).map_err(errno)
    }

    /// The overlay's own xattr prefix (`trusted.overlay.`, or `user.overlay.` rootless).
    fn own_prefix(&self) -> &'static [u8] {
        if self.settings.user_xattr {
            b"user.overlay."
        } else {
            b"trusted.overlay."
        }
    }

    /// How a user's `<own prefix>NAME` is stored: escaped as `<own prefix>overlay.NAME`,
    /// as the kernel (6.7+) does, so it never acts as a marker.
    fn escaped_prefix(&self) -> Vec<u8> {
        let mut v = self.own_prefix().to_vec();
        v.extend_from_slice(b"overlay.");
        v
    }

    /// The on-disk name for a user's xattr name; `None` for names users may not touch.
    fn stored_xattr_name(&self, name: &OsStr) -> Option<CString> {
        let b = name.as_bytes();
        if let Some(rest) = b.strip_prefix(self.own_prefix()) {
            let mut v = self.escaped_prefix();
            v.extend_from_slice(rest);
            return CString::new(v).ok();
        }
        if is_private_xattr(b) {
            return None;
        }
        CString::new(b).ok()
    }

    /// statfs of the upper layer (or the top lower when read-only).
    pub fn statfs(&self) -> OvResult<libc::statvfs> {
        let fd = match &self.upper {
            Some(u) => u.fd(),
            None => self.lowers.layers[0].fd(),
        };
        let mut sv = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: fstatvfs on a valid fd into writable memory.
        let r = unsafe { libc::fstatvfs(fd.as_raw_fd(), sv.as_mut_ptr()) };
        if r < 0 {
            return Err(errno(io::Error::last_os_error()));
        }
        // SAFETY: filled by the kernel.
        Ok(unsafe { sv.assume_init() })
    }
}

/// An object to create.
#[derive(Debug, Clone, Copy)]
pub enum NewObject<'a> {
    /// A regular file, opened with `flags`.
    File {
        /// Permission bits.
        mode: u32,
        /// open(2) flags.
        flags: i32,
    },
    /// A fifo, socket or device node.
    Node {
        /// Type and permission bits.
        mode: u32,
        /// Device number.
        rdev: u64,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Link target.
        target: &'a OsStr,
    },
}

/// Name of a copied-up hard-linked file's entry in the index dir.
fn index_key(ino: u64) -> PathBuf {
    PathBuf::from(format!("{ino:016x}"))
}

/// True for the overlay's own xattrs, which users neither see nor set.
pub fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"user.fuseoverlayfs.")
        || name.starts_with(b"trusted.stratafs.")
        || name.starts_with(b"user.stratafs.")
}

fn restore_times(fd: BorrowedFd<'_>, path: &Path, st: &Stat) {
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    let _ = sys::utimens_at(fd, path, &times);
}

/// Removes everything inside the directory `path` (whiteouts left in an emptied dir).
fn clear_dir(fd: BorrowedFd<'_>, path: &Path) {
    if let Ok(list) = sys::read_dir_at(fd, path) {
        for e in list {
            let p = path.join(OsStr::from_bytes(&e.name));
            if e.d_type == libc::DT_DIR {
                remove_tree(fd, &p);
            } else {
                let _ = sys::unlink_at(fd, &p, false);
            }
        }
    }
}

/// Removes a directory tree beneath `fd` (the work dir's leftovers).
pub fn remove_tree(fd: BorrowedFd<'_>, path: &Path) {
    clear_dir(fd, path);
    let _ = sys::unlink_at(fd, path, true);
}

/// Removes `path` beneath `fd`, whether a file or a directory tree.
pub fn remove_tree_or_file(fd: BorrowedFd<'_>, path: &Path) {
    if sys::unlink_at(fd, path, false).is_err() {
        remove_tree(fd, path);
    }
}
