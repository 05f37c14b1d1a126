//! The inode table: what each FUSE node id stands for, and where its data lives.
//!
//! The kernel keeps a node for every inode it caches (a million after walking a
//! million files), so a node is kept small: its name inline when short, a lower
//! object's path shared with its siblings, a directory's span path shared likewise.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use compact_bytes::CompactBytesSlice;
use dashmap::DashMap;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// In the upper layer, at the node's merged path.
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

/// Mutable part of a node, changed by lookups, copy-up and rename.
#[derive(Debug, Clone)]
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

/// One object of the merged tree known to the kernel. 72 bytes, so with its `Arc`
/// header (16) and glibc's chunk header (8) it fills a 96-byte chunk exactly: the
/// kernel may hold a million of them.
#[derive(Debug)]
pub struct Node {
    /// Node id, also the st_ino reported (an alias, see `NodeTable::split`, is a
    /// second node id for the same node).
    pub ino: u64,
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
            ino,
            word: AtomicU64::new(if is_dir { IS_DIR } else { 0 }),
            state: RwLock::new(state),
        }
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

/// Alias node ids carry this bit (real inode numbers stay below it: layer indexes
/// take bits 56 and up only past 63 layers on distinct file systems).
pub const ALIAS_BIT: u64 = 1 << 62;

/// A table slot: the node itself, found by its id (hashed and compared as the id, so
/// the table is a set of 8-byte pointers rather than a map of 16-byte pairs).
#[derive(Debug)]
struct ById(Arc<Node>);

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.ino.hash(state)
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.ino == other.0.ino
    }
}

impl Eq for ById {}

impl std::borrow::Borrow<u64> for ById {
    fn borrow(&self) -> &u64 {
        &self.0.ino
    }
}

/// The node table, keyed by node id.
#[derive(Debug, Default)]
pub struct NodeTable {
    map: DashMap<ById, ()>,
    /// Alias node ids, each kept while its node lives (a kernel forgetting it does
    /// not end it: lookups answering with it may be under way).
    aliases: DashMap<u64, Arc<Node>>,
    /// Each aliased node's alias, by the node's own id.
    alias_of: DashMap<u64, u64>,
    next_alias: AtomicU64,
}

impl NodeTable {
    /// Finds a node by id (its own or an alias).
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        if ino & ALIAS_BIT != 0 {
            if let Some(n) = self.aliases.get(&ino) {
                return Some(n.clone());
            }
        }
        self.map.get(&ino).map(|n| Arc::clone(&n.key().0))
    }

    /// Gives `node` a second node id that lookups answer with from now on, so the
    /// kernel makes a second inode for the object. Why: a FUSE inode whose lower file
    /// is passed through keeps that backing file while it is open, and a writer (or a
    /// reader after the copy-up) must not share it; the kernel retries an open that
    /// fails with ESTALE after a fresh lookup, which finds the alias. An existing
    /// alias is kept. Returns the alias.
    pub fn split(&self, node: &Arc<Node>) -> u64 {
        if let Some(a) = self.alias_held(node) {
            return a;
        }
        let id = loop {
            let id = ALIAS_BIT | self.next_alias.fetch_add(1, Ordering::Relaxed);
            if !self.map.contains_key(&id) && !self.aliases.contains_key(&id) {
                break id;
            }
        };
        match self.alias_of.entry(node.ino) {
            dashmap::Entry::Occupied(mut o) => {
                let current = *o.get();
                if self
                    .aliases
                    .get(&current)
                    .is_some_and(|n| Arc::ptr_eq(&n, node))
                {
                    // A concurrent split gave the node its alias first.
                    return current;
                }
                // An alias left by a node this one replaced.
                self.aliases.remove(&current);
                o.insert(id);
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(id);
            }
        }
        self.aliases.insert(id, Arc::clone(node));
        node.word.fetch_or(ALIASED, Ordering::Release);
        id
    }

    /// The alias `node` has, if any.
    fn alias_held(&self, node: &Node) -> Option<u64> {
        if !node.aliased() {
            return None;
        }
        let a = *self.alias_of.get(&node.ino)?;
        self.aliases
            .get(&a)
            .is_some_and(|n| std::ptr::eq(Arc::as_ptr(&n), node))
            .then_some(a)
    }

    /// Drops the alias of `node` (the node going, or replaced).
    fn drop_alias(&self, node: &Node) {
        if node.aliased() {
            if let Some((_, a)) = self.alias_of.remove_if(&node.ino, |_, a| {
                self.aliases
                    .get(a)
                    .is_some_and(|n| std::ptr::eq(Arc::as_ptr(&n), node))
            }) {
                self.aliases.remove(&a);
            }
        }
    }

    /// The node id an entry reply for `node` carries: its alias if it has one, else
    /// its own. (The node's `nlookup` counts the lookups of both.)
    pub fn entry_id(&self, node: &Node) -> u64 {
        self.alias_held(node).unwrap_or(node.ino)
    }

    /// Records a lookup of `ino` with a fresh state: an existing node takes the new
    /// state and one more lookup; else a node is created. An existing node of the other
    /// type (directory / not) is a removed object's whose inode number the upper file
    /// system gave a new object: it is replaced as by [`Self::created`].
    pub fn looked_up(&self, ino: u64, is_dir: bool, state: NodeState) -> Arc<Node> {
        self.record(ino, is_dir, state, false, false).0
    }

    /// Like [`Self::looked_up`], for a state resolved without the namespace lock, which
    /// a copy-up of the node may have finished after: a state that would put a
    /// copied-up node back below (in a lower layer or the index) is not taken, and the
    /// second value is false; the caller resolves again. (Else a later write would copy
    /// the lower object up a second time over the first copy's data.)
    pub fn looked_up_unlocked(
        &self,
        ino: u64,
        is_dir: bool,
        state: NodeState,
    ) -> (Arc<Node>, bool) {
        self.record(ino, is_dir, state, false, true)
    }

    /// Records a newly created object. If its inode number still names a node the
    /// kernel knows (a removed object the kernel still holds: an open O_PATH fd, a
    /// FORGET not yet served), that node stands for the removed object and keeps doing
    /// so for whoever holds it; the table gets a fresh node of the new object's type, a
    /// generation past the old one's (the kernel then drops its stale inode) and the old
    /// lookups (the kernel forgets them by this id).
    pub fn created(&self, ino: u64, is_dir: bool, state: NodeState) -> Arc<Node> {
        self.record(ino, is_dir, state, true, false).0
    }

    /// The lookup is counted under the table's lock on `ino`, so a FORGET served
    /// meanwhile (it takes the node out when the count reaches zero) either comes first
    /// and this makes a node, or sees the count with this lookup in it.
    fn record(
        &self,
        ino: u64,
        is_dir: bool,
        state: NodeState,
        new_object: bool,
        unlocked: bool,
    ) -> (Arc<Node>, bool) {
        if !new_object {
            // The common case, a node the table has: counted under the shard's read lock.
            if let Some(slot) = self.map.get(&ino) {
                let node = &slot.key().0;
                if node.is_dir() == is_dir {
                    node.add_lookup();
                    let node = Arc::clone(node);
                    drop(slot);
                    let taken = take_state(&node, state, unlocked);
                    return (node, taken);
                }
            }
        }
        let node = Arc::new(Node::detached(ino, is_dir, state));
        match self.map.entry(ById(Arc::clone(&node))) {
            dashmap::Entry::Vacant(v) => {
                node.init_counts(1, 0);
                v.insert(());
                (node, true)
            }
            dashmap::Entry::Occupied(o) => {
                let old = &o.key().0;
                if new_object || old.is_dir() != is_dir {
                    node.init_counts(old.lookups() + 1, old.generation() + 1);
                    // The old object's alias is not this object's.
                    self.drop_alias(old);
                    // The slot now holds the new node (the entry's key).
                    o.replace_entry(());
                    (node, true)
                } else {
                    // Another lookup of the same object put it in meanwhile.
                    let old = Arc::clone(old);
                    old.add_lookup();
                    drop(o);
                    let state = node.state.read().clone();
                    let taken = take_state(&old, state, unlocked);
                    (old, taken)
                }
            }
        }
    }

    /// Inserts the root node.
    pub fn insert_root(&self, state: NodeState) {
        let root = Node::detached(1, true, state);
        root.init_counts(1, 0);
        self.map.insert(ById(Arc::new(root)), ());
    }

    /// Drops `n` lookups of node id `id` (its own or an alias: a node's `nlookup`
    /// counts both); returns the node when it goes, none remaining.
    pub fn forget(&self, id: u64, n: u64) -> Option<Arc<Node>> {
        let ino = if id & ALIAS_BIT != 0 {
            self.aliases.get(&id).map_or(id, |node| node.ino)
        } else {
            id
        };
        if ino == 1 {
            return None;
        }
        let (ById(node), ()) = self
            .map
            .remove_if(&ino, |ById(node), _| node.drop_lookups(n))?;
        self.drop_alias(&node);
        Some(node)
    }

    /// Number of live nodes (for memory accounting).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when only nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Gives `node` a state from a lookup; with `unlocked`, not one that would take a
/// copied-up node back below (see [`NodeTable::looked_up_unlocked`]).
fn take_state(node: &Node, state: NodeState, unlocked: bool) -> bool {
    let mut cur = node.state.write();
    if unlocked && cur.loc.is_copied_up() && !state.loc.is_copied_up() {
        return false;
    }
    *cur = state;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> NodeState {
        NodeState {
            parent: 1,
            name: Name::new("f".as_ref()),
            loc: Loc::Upper,
            span: None,
        }
    }

    #[test]
    fn a_node_stays_small() {
        // With the table's Arc header (16) and glibc's chunk header (8), 72 bytes is a
        // 96-byte chunk (80 would take 112): the memory table's row of a million nodes
        // depends on it.
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

    #[test]
    fn an_alias_names_the_same_node_until_the_node_goes() {
        let t = NodeTable::default();
        let n = t.looked_up(7, false, state());
        assert_eq!(t.entry_id(&n), 7);
        let a = t.split(&n);
        assert_ne!(a, 7);
        assert_eq!(t.split(&n), a, "one alias per node");
        assert!(Arc::ptr_eq(&t.get(a).expect("alias resolves"), &n));
        // Lookups now answer with the alias; both ids count in the node.
        t.looked_up(7, false, state());
        assert_eq!(t.entry_id(&n), a);
        // The kernel forgetting every lookup of the alias does not end it.
        assert!(t.forget(a, 1).is_none());
        assert!(t.get(a).is_some());
        assert_eq!(t.entry_id(&n), a);
        // The node's last lookup takes the alias with it.
        assert_eq!(t.forget(7, 1).map(|n| n.ino), Some(7));
        assert!(t.get(7).is_none());
        assert!(t.get(a).is_none());
    }

    #[test]
    fn a_new_object_on_the_inode_number_drops_the_old_alias() {
        let t = NodeTable::default();
        let n = t.looked_up(9, false, state());
        let a = t.split(&n);
        let m = t.created(9, false, state());
        assert_eq!(t.entry_id(&m), 9);
        assert!(t.get(a).is_none());
    }

    #[test]
    fn a_new_object_of_another_type_on_the_inode_number_gets_its_own_node() {
        let t = NodeTable::default();
        let file = t.looked_up(9, false, state());
        t.looked_up(9, false, state());
        let dir = t.created(9, true, state());
        assert!(
            dir.is_dir() && !file.is_dir(),
            "each node keeps its object's type"
        );
        assert!(!Arc::ptr_eq(&dir, &file));
        assert!(Arc::ptr_eq(&t.get(9).expect("the new node"), &dir));
        assert_eq!(dir.generation(), 1);
        // The kernel forgets the old inode's two lookups and the new one's by one id.
        assert!(t.forget(9, 2).is_none());
        assert_eq!(t.forget(9, 1).map(|n| n.ino), Some(9));
        // A lookup finding another type than the node it meets (no create seen).
        t.looked_up(5, true, state());
        let f = t.looked_up(5, false, state());
        assert!(!f.is_dir());
        assert_eq!(f.generation(), 1);
    }

    #[test]
    fn a_lookup_racing_a_forget_of_the_same_node_keeps_it_in_the_table() {
        let t = Arc::new(NodeTable::default());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for _ in 0..300_000 {
                        let n = t.looked_up(7, false, state());
                        // This thread's lookup is counted: the node cannot have gone.
                        let found = t.get(7).is_some_and(|m| Arc::ptr_eq(&m, &n));
                        t.forget(7, 1);
                        if !found {
                            return false;
                        }
                    }
                    true
                })
            })
            .collect();
        for th in threads {
            assert!(
                th.join().expect("thread"),
                "a looked-up node left the table"
            );
        }
    }
}
