//! The inode table: what each FUSE node id stands for, and where its data lives.
//!
//! The kernel keeps a node for every inode it caches (a million after walking a
//! million files), so a node is kept small: its name inline when short, a lower
//! object's path shared with its siblings, a directory's span path shared likewise,
//! and nodes live in a slab ([`slab`]) found through an index of 4-byte slot numbers
//! ([`table`]) rather than one heap allocation each.

mod slab;
mod table;

pub use slab::NodeRef;
pub use table::NodeTable;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use compact_bytes::CompactBytesSlice;
use parking_lot::RwLock;

use crate::layers::Span;

/// A node's name in its parent: up to 15 bytes live in the value itself (16 bytes), so
/// most nodes cost no allocation for it; a longer one is one allocation of its length.
/// Empty for the root and for a node whose name went.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Name(CompactBytesSlice);

impl Name {
    /// The name of `name`.
    pub fn new(name: &OsStr) -> Name {
        Name(CompactBytesSlice::new(name.as_bytes()))
    }

    /// The name as an `OsStr`, to join to paths.
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(self.0.as_slice())
    }

    /// True for no name (the root, or a node whose name went).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq<OsStr> for Name {
    fn eq(&self, other: &OsStr) -> bool {
        self.0.as_slice() == other.as_bytes()
    }
}

impl AsRef<Path> for Name {
    fn as_ref(&self) -> &Path {
        Path::new(self.as_os_str())
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_os_str().fmt(f)
    }
}

/// Where an object's current data and metadata live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Loc {
    /// In the upper layer, at the node's merged path.
    #[default]
    Upper,
    /// In a lower layer (index into the lowers), named as the node is, in this
    /// directory of the layer: the parent's lower directory (its span path), one
    /// allocation shared by every sibling.
    Lower(u32, Arc<PathBuf>),
    /// In a lower layer, at this path: a lower object whose node lost or changed its
    /// name (unlinked while the kernel held it), so its name no longer completes it.
    LowerAt(u32, Box<PathBuf>),
    /// A lower hard-linked file one of whose names was already copied up: the shared
    /// copy in the work dir's index (this name is not copied up yet).
    Index(Box<PathBuf>),
    /// An upper object whose last name went while the kernel still held it (an open
    /// file unlinked or renamed over, a removed directory), or a lower object's copy
    /// made after its name went: kept in the work dir under this name until the kernel
    /// forgets the node, so open files keep working as on any file system.
    Orphan(Box<PathBuf>),
}

impl Loc {
    /// The lower layer holding the object, if it lives in one.
    pub fn lower_layer(&self) -> Option<u32> {
        match self {
            Loc::Lower(l, _) | Loc::LowerAt(l, _) => Some(*l),
            _ => None,
        }
    }

    /// True when the object was brought up (upper, or kept in the work dir): nothing
    /// takes it back below.
    pub fn is_copied_up(&self) -> bool {
        matches!(self, Loc::Upper | Loc::Orphan(_))
    }

    /// True when the object lives in a lower layer (not copied up).
    pub fn is_lower(&self) -> bool {
        self.lower_layer().is_some()
    }
}

/// Mutable part of a node, changed by lookups, copy-up and rename. The default (no
/// parent, no name, upper, no span) is what a free slab slot holds: nothing allocated.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// Parent node id (the root is its own parent).
    pub parent: u64,
    /// Name in the parent: change it with [`NodeState::rename`] or
    /// [`NodeState::unname`], which keep a lower object's path.
    pub name: Name,
    /// Where the object lives.
    pub loc: Loc,
    /// For directories: the lower part merged into it, if any (boxed: most nodes are
    /// files, which need none).
    pub span: Option<Box<Span>>,
}

impl NodeState {
    /// The layer and path of a lower object (see [`Loc::Lower`]).
    pub fn lower_path(&self) -> Option<(u32, PathBuf)> {
        match &self.loc {
            Loc::Lower(l, dir) => Some((*l, dir.join(&self.name))),
            Loc::LowerAt(l, path) => Some((*l, path.to_path_buf())),
            _ => None,
        }
    }

    /// A lower object's path no longer follows from its name: kept whole.
    fn pin_lower_path(&mut self) {
        if let Loc::Lower(l, dir) = &self.loc {
            self.loc = Loc::LowerAt(*l, Box::new(dir.join(&self.name)));
        }
    }

    /// The node is now `name` in `parent`.
    pub fn rename(&mut self, parent: u64, name: &OsStr) {
        self.pin_lower_path();
        self.parent = parent;
        self.name = Name::new(name);
    }

    /// No name of the tree reaches the node any more.
    pub fn unname(&mut self) {
        self.pin_lower_path();
        self.name = Name::default();
    }
}

/// The bits of [`Node::word`] counting the kernel's lookups (2^48: 2.8e14 lookups of one
/// node the kernel never forgets, 9 years at a million a second).
const LOOKUPS: u64 = (1 << 48) - 1;
/// Where the generation starts in [`Node::word`].
const GENERATION_SHIFT: u32 = 48;
/// The generation's bits once shifted down (13 bits: it tells a new object on a reused
/// inode number from the one before, which the kernel may still hold; it wraps after
/// 8192 reuses of one number).
const GENERATION: u64 = (1 << 13) - 1;
/// Set for directories (never changes).
const IS_DIR: u64 = 1 << 61;
/// Set once the node has an alias node id (kept in the table, see `NodeTable::split`:
/// few nodes get one, so none carries the field).
const ALIASED: u64 = 1 << 62;
/// Set when opens of this object conflicted with a lower file passed through: its lower
/// file is not passed through again (served through the page cache).
const SHARED_BACKING_REFUSED: u64 = 1 << 63;

/// One object of the merged tree known to the kernel. 72 bytes, kept in a slab slot
/// (see [`slab`]) with a 4-byte handle count beside it: the kernel may hold a million.
#[derive(Debug)]
pub struct Node {
    /// Node id, also the st_ino reported (an alias, see `NodeTable::split`, is a
    /// second node id for the same node). Atomic because a slab slot is reused by a
    /// later node; it never changes while any handle to the node lives.
    ino: AtomicU64,
    /// The lookup count held by the kernel ([`LOOKUPS`]), the generation ([`GENERATION`]
    /// at [`GENERATION_SHIFT`]: bumped when a new object takes over this node id while
    /// the kernel may still hold the old one, so the kernel drops its stale inode) and
    /// the flags [`IS_DIR`], [`ALIASED`], [`SHARED_BACKING_REFUSED`], in one word.
    word: AtomicU64,
    /// Location and name.
    pub state: RwLock<NodeState>,
}

impl Node {
    /// A node not (yet) in the table, for an object found at `state`.
    pub fn detached(ino: u64, is_dir: bool, state: NodeState) -> Node {
        Node {
            ino: AtomicU64::new(ino),
            word: AtomicU64::new(if is_dir { IS_DIR } else { 0 }),
            state: RwLock::new(state),
        }
    }

    /// The node id (see [`Node::ino`]).
    pub fn ino(&self) -> u64 {
        self.ino.load(Ordering::Relaxed)
    }

    /// Makes a free slab slot's node the new node `ino` with `state`, `lookups` and
    /// `generation`, before any other thread can reach it.
    fn reset(&self, ino: u64, is_dir: bool, state: NodeState, lookups: u64, generation: u64) {
        self.ino.store(ino, Ordering::Relaxed);
        self.word
            .store(if is_dir { IS_DIR } else { 0 }, Ordering::Relaxed);
        self.init_counts(lookups, generation);
        *self.state.write() = state;
    }

    /// Drops what a freed slab slot's node holds (its name and paths), so a free slot
    /// keeps no allocation.
    fn clear(&self) {
        self.ino.store(0, Ordering::Relaxed);
        *self.state.write() = NodeState::default();
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.word.load(Ordering::Relaxed) & IS_DIR != 0
    }

    /// The FUSE generation of the node id (see [`Node::word`]).
    pub fn generation(&self) -> u64 {
        (self.word.load(Ordering::Relaxed) >> GENERATION_SHIFT) & GENERATION
    }

    /// The lookup count held by the kernel.
    pub fn lookups(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & LOOKUPS
    }

    /// Counts one more lookup held by the kernel (an entry reply for the node).
    pub fn add_lookup(&self) {
        self.word.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops `n` lookups, no more than the node has; true when none remain.
    fn drop_lookups(&self, n: u64) -> bool {
        let prev = self
            .word
            .fetch_sub(n.min(self.lookups()), Ordering::Relaxed);
        prev & LOOKUPS <= n
    }

    /// Sets the lookup count and the generation of a node no other thread sees yet.
    fn init_counts(&self, lookups: u64, generation: u64) {
        let flags = self.word.load(Ordering::Relaxed) & !(LOOKUPS | GENERATION << GENERATION_SHIFT);
        let word = flags | (generation & GENERATION) << GENERATION_SHIFT | lookups & LOOKUPS;
        self.word.store(word, Ordering::Relaxed);
    }

    /// True once the node has an alias node id.
    fn aliased(&self) -> bool {
        self.word.load(Ordering::Acquire) & ALIASED != 0
    }

    /// True when opens of this object conflicted with a lower file passed through (see
    /// [`Node::refuse_shared_backing`]).
    pub fn shared_backing_refused(&self) -> bool {
        self.word.load(Ordering::Relaxed) & SHARED_BACKING_REFUSED != 0
    }

    /// Opens of this object conflicted with a lower file passed through: its lower file
    /// is not passed through again (served through the page cache).
    pub fn refuse_shared_backing(&self) {
        self.word
            .fetch_or(SHARED_BACKING_REFUSED, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_stays_small() {
        // A slab slot is the node and a 4-byte count: the memory table's row of a
        // million nodes depends on it.
        assert_eq!(std::mem::size_of::<Node>(), 72);
        assert_eq!(std::mem::size_of::<Name>(), 16);
    }

    #[test]
    fn a_lower_path_survives_a_new_name_and_no_name() {
        let dir = Arc::new(PathBuf::from("a/b"));
        let mut st = NodeState {
            parent: 3,
            name: Name::new("f".as_ref()),
            loc: Loc::Lower(2, dir),
            span: None,
        };
        assert_eq!(st.lower_path(), Some((2, PathBuf::from("a/b/f"))));
        st.rename(4, "g".as_ref());
        assert_eq!(st.lower_path(), Some((2, PathBuf::from("a/b/f"))));
        st.unname();
        assert!(st.name.is_empty());
        assert_eq!(st.lower_path(), Some((2, PathBuf::from("a/b/f"))));
    }
}
