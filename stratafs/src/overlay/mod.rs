//! The overlay itself: lookup across layers, merged listings, and every modifying
//! operation with copy-up, whiteouts, opaque directories and redirects. Plain Rust over
//! fd-relative syscalls; the FUSE handlers (`fuse/`) only translate requests.
//!
//! This file holds the `Overlay` itself (state, settings, node access, paths, orphans,
//! stat); each concern of the operations lives in its own file below, as further
//! `impl Overlay` blocks: `lookup` (resolving names, merged listings), `copyup`,
//! `whiteout`, `create`, `remove`, `rename`, `attr` (setattr, open, I/O files, forget,
//! statfs) and `xattr`.

mod attr;
mod copyup;
mod create;
mod lookup;
mod remove;
mod rename;
#[cfg(test)]
mod tests;
mod whiteout;
mod xattr;

pub use create::NewObject;
pub use remove::remove_tree_or_file;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ovlformat::xattr::{Namespace, key};
use parking_lot::Mutex;

use crate::files::OpenFiles;
use crate::layers::{self, Layer, Lowers, Span};
use crate::names::NameList;
use crate::node::{Loc, Name, Node, NodeRef, NodeState, NodeTable};
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
            Namespace::User
        } else {
            Namespace::Trusted
        };
        let mk = |key: &str| CString::new(ns.name(key)).map_err(|_| libc::EINVAL);
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
            xattr_opaque: mk(key::OPAQUE)?,
            xattr_redirect: mk(key::REDIRECT)?,
            xattr_origin: mk(key::ORIGIN)?,
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
            path: Arc::new(PathBuf::new()),
            start: 0,
            end: n,
        });
        let (loc, span) = match &self.upper {
            Some(u) => {
                let opaque = layers::dir_is_opaque(u.fd(), Path::new(""));
                (Loc::Upper, if opaque { None } else { span })
            }
            None => (Loc::LowerAt(0, Box::default()), span),
        };
        if self.upper.is_none() && n == 0 {
            return Err(libc::EINVAL);
        }
        Ok(NodeState {
            parent: 1,
            name: Name::default(),
            loc,
            span: span.map(Box::new),
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
    pub fn node(&self, ino: u64) -> OvResult<NodeRef> {
        self.nodes.get(ino).ok_or(libc::ESTALE)
    }

    /// Gives the node of `ino` an alias node id for lookups to answer with (see
    /// `NodeTable::split`), and stops passing its lower file through.
    pub fn split_node(&self, ino: u64) -> OvResult<u64> {
        let node = self.node(ino)?;
        node.refuse_shared_backing();
        Ok(self.nodes.split(&node))
    }

    /// The node id an entry reply for `node` carries (its alias, if it has one).
    pub fn entry_id(&self, node: &Node) -> u64 {
        self.nodes.entry_id(node)
    }

    /// The node's path in the merged tree (and so in the upper layer).
    pub fn path_of(&self, node: &Node) -> OvResult<PathBuf> {
        let mut names: Vec<Name> = Vec::new();
        let mut ino = node.ino();
        while ino != 1 {
            let (name, parent) = if names.is_empty() {
                Self::name_and_parent(node)?
            } else {
                Self::name_and_parent(&*self.node(ino)?)?
            };
            names.push(name);
            ino = parent;
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

    /// A node's name and parent; a node whose name went (see `Loc::Orphan`) has no
    /// path in the tree.
    fn name_and_parent(node: &Node) -> OvResult<(Name, u64)> {
        let st = node.state.read();
        if st.name.is_empty() {
            return Err(libc::ENOENT);
        }
        Ok((st.name.clone(), st.parent))
    }

    /// The layer fd and path where the node's object lives now.
    fn real(&self, node: &Node) -> OvResult<(BorrowedFd<'_>, PathBuf)> {
        let st = node.state.read();
        if let Some((layer, path)) = st.lower_path() {
            return Ok((self.lowers.layers[layer as usize].fd(), path));
        }
        match &st.loc {
            Loc::Index(key) => Ok((
                self.index.as_ref().ok_or(libc::EROFS)?.as_fd(),
                key.to_path_buf(),
            )),
            Loc::Orphan(name) => Ok((self.work_fd()?, name.to_path_buf())),
            _ => {
                drop(st);
                Ok((self.upper_fd()?, self.path_of(node)?))
            }
        }
    }

    /// True for a node that no name in the tree reaches any more (the root has no
    /// name but is always reached).
    fn unnamed(node: &Node) -> bool {
        node.ino() != 1 && node.state.read().name.is_empty()
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
        if st.parent != parent || st.name != *name {
            return;
        }
        if let Some(o) = orphan {
            // (A directory keeps its span: only its link count uses it now, as the
            // kernel lists nothing of a removed directory.)
            st.loc = Loc::Orphan(Box::new(o));
        }
        st.unname();
    }

    /// Whether the kernel holds the node of `ino` beyond `own` lookups of the caller's:
    /// then an upper object losing its last name must be kept for it (it may be open).
    fn held(&self, ino: u64, own: u64) -> bool {
        self.nodes.get(ino).is_some_and(|n| n.lookups() > own)
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
        if st.parent == parent && st.name == *name {
            let key = index_key(ino);
            if let Some(index) = &self.index {
                if sys::lstat_at(index.as_fd(), &key).is_ok() {
                    st.loc = Loc::Index(Box::new(key));
                    // No live name until the next lookup gives one.
                    st.unname();
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
        let key = index_key(node.ino());
        if sys::lstat_at(index.as_fd(), &key).is_ok() {
            return Ok(());
        }
        let ufd = self.upper_fd()?;
        let path = self.path_of(node)?;
        let st = sys::lstat_at(ufd, &path).map_err(errno)?;
        // The count first, so no index entry is ever without one (see `index_copy`).
        let n = st.st_nlink.to_string();
        let _ = sys::set_xattr(ufd, &path, &self.xattr_nlink, n.as_bytes(), 0);
        sys::link_between(ufd, &path, index.as_fd(), &key).map_err(errno)?;
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
            Loc::Lower(l, _) | Loc::LowerAt(l, _) => self.lowers.layers[*l as usize].override_stat,
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
                st.st_ino = node.ino();
                st.st_nlink = 0;
                if node.is_dir() {
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
                let key = index_key(node.ino());
                if matches!(sys::lstat_at(index.as_fd(), &key), Ok(i) if i.st_ino == st.st_ino && i.st_dev == st.st_dev)
                {
                    st.st_nlink = match self.index_nlink(&key) {
                        Some(n) => n as _,
                        None => st.st_nlink - 1,
                    };
                }
            }
        }
        st.st_ino = if node.ino() == 1 { 1 } else { node.ino() };
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

    fn tmp_name(&self) -> PathBuf {
        PathBuf::from(format!(
            "#{:x}",
            self.tmp_counter.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

/// Name of a copied-up hard-linked file's entry in the index dir.
fn index_key(ino: u64) -> PathBuf {
    PathBuf::from(format!("{ino:016x}"))
}
