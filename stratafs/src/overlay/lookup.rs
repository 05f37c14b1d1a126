//! Lookup and listing: resolving a name across the upper and lower layers (whiteouts,
//! opaque directories, redirects, the index), and the merged directory listing. Kept
//! apart because every other operation starts here and none of it modifies anything.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ovlformat::whiteout;

use crate::layers::{self, LowerEntry, Span};
use crate::names::NameMap;
use crate::node::{Loc, Name, Node, NodeRef, NodeState};
use crate::sys::{self, Stat};

use super::{ListEntry, Listing, OvResult, Overlay, errno, index_key};

impl Overlay {
    /// Resolves `name` in directory `parent` without registering a node.
    pub(super) fn resolve(&self, parent: &Node, name: &OsStr) -> OvResult<(u64, NodeState, Stat)> {
        Self::check_name(name)?;
        if !parent.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if whiteout::is_opaque_marker(name.as_bytes()) {
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
                        parent: parent.ino(),
                        name: Name::new(name),
                        loc: Loc::Upper,
                        span: span.map(Box::new),
                    };
                    return Ok((ino, state, st));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if lower_entry.is_some() {
                        let wh = whiteout::whiteout_name(name);
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
        let (layer, end, dirs) = (u32::from(entry.0), u32::from(entry.1), entry.2);
        let lpath = span.path.join(name);
        let lfd = self.lowers.layers[layer as usize].fd();
        let st = sys::lstat_at(lfd, &lpath).map_err(errno)?;
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        // A directory merges with those below only when there are some and it is not
        // opaque in its own layer; the span says so (and merged-ness shows in st_nlink).
        let merges = is_dir && dirs > 1 && !layers::dir_is_opaque(lfd, &lpath);
        let child_span = is_dir.then(|| Span {
            path: Arc::new(lpath.clone()),
            start: layer,
            end: if merges { end } else { layer + 1 },
        });
        let ino = self.compose_ino(st.st_dev, st.st_ino);
        let loc = self.lower_loc(layer, &span.path, &st, ino)?;
        let st = match &loc {
            // The shared copy of a hard-linked file holds the current attributes.
            Loc::Index(key) => match &self.index {
                Some(index) => sys::lstat_at(index.as_fd(), key).map_err(errno)?,
                None => st,
            },
            _ => st,
        };
        let state = NodeState {
            parent: parent.ino(),
            name: Name::new(name),
            loc,
            span: child_span.map(Box::new),
        };

        Ok((ino, state, st))
    }

    /// A lower object's location; a hard-linked file whose other name was already copied
    /// up resolves to the shared copy in the index.
    fn lower_loc(&self, layer: u32, dir: &Arc<PathBuf>, st: &Stat, ino: u64) -> OvResult<Loc> {
        if st.st_nlink > 1 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
            if let Some(index) = &self.index {
                let key = index_key(ino);
                if sys::lstat_at(index.as_fd(), &key).is_ok() {
                    return Ok(Loc::Index(Box::new(key)));
                }
            }
        }
        Ok(Loc::Lower(layer, Arc::clone(dir)))
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
                path: Arc::new(path),
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
                path: Arc::new(ps.path.join(upath.file_name().unwrap_or_default())),
                start: u32::from(layer),
                end: u32::from(end),
            }),
            _ => None,
        }
    }

    /// Looks `name` up in `parent` and registers one kernel lookup of the result.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> OvResult<(NodeRef, Stat)> {
        let p = self.node(parent)?;
        let resolved = self.resolve(&p, name)?;
        self.record_lookup(&p, name, resolved)
    }

    /// Registers a lookup of what [`Self::resolve`] found for `name` in `p`, which
    /// nothing kept from changing since.
    pub(super) fn record_lookup(
        &self,
        p: &Node,
        name: &OsStr,
        (ino, state, mut st): (u64, NodeState, Stat),
    ) -> OvResult<(NodeRef, Stat)> {
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let (node, taken) = self.nodes.looked_up_unlocked(ino, is_dir, state);
        if !taken {
            // A copy-up of this node finished after the resolve: resolve again, on the
            // tree as the copy-up left it (the lookup is already counted).
            match self.resolve(p, name) {
                Ok((again, state, fresh)) if again == ino => {
                    *node.state.write() = state;
                    st = fresh;
                }
                // The name now names another object: the kernel revalidates it.
                Ok(_) => {}
                Err(e) => {
                    self.forget(ino, 1);
                    return Err(e);
                }
            }
        }
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
        if !node.is_dir() {
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
                if whiteout::is_oci_marker(name) {
                    if let Some(target) = whiteout::whited_out(name) {
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

    pub(super) fn is_empty_dir(&self, node: &Node) -> OvResult<bool> {
        Ok(self.list(node.ino())?.len() <= 2)
    }

    pub(super) fn lower_has(&self, parent: &Node, name: &OsStr) -> OvResult<bool> {
        let span = parent.state.read().span.clone();
        Ok(match span {
            Some(span) => matches!(
                self.lowers.dir(&span).map_err(errno)?.get(name.as_bytes()),
                Some(LowerEntry::Object { .. })
            ),
            None => false,
        })
    }
}
