//! The inode table: what each FUSE node id stands for, and where its data lives.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use parking_lot::RwLock;

use crate::layers::Span;

/// Where an object's current data and metadata live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// In the upper layer, at the node's merged path.
    Upper,
    /// In a lower layer (index into the lowers) at this path.
    Lower(u32, PathBuf),
    /// A lower hard-linked file one of whose names was already copied up: the shared
    /// copy in the work dir's index (this name is not copied up yet).
    Index(PathBuf),
    /// An upper object whose last name went while the kernel still held it (an open
    /// file unlinked or renamed over, a removed directory), or a lower object's copy
    /// made after its name went: kept in the work dir under this name until the kernel
    /// forgets the node, so open files keep working as on any file system.
    Orphan(PathBuf),
}

/// Mutable part of a node, changed by lookups, copy-up and rename.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// Parent node id (the root is its own parent).
    pub parent: u64,
    /// Name in the parent.
    pub name: OsString,
    /// Where the object lives.
    pub loc: Loc,
    /// For directories: the lower part merged into it, if any.
    pub span: Option<Span>,
}

/// One object of the merged tree known to the kernel.
#[derive(Debug)]
pub struct Node {
    /// Node id, also the st_ino reported (an alias, see `NodeTable::split`, is a
    /// second node id for the same node).
    pub ino: u64,
    /// True for directories.
    pub is_dir: bool,
    /// Lookup count held by the kernel.
    pub nlookup: AtomicU64,
    /// Bumped when a new object takes over this node id while the kernel may still
    /// hold the old one (inode number reuse): the kernel then drops its stale inode.
    pub generation: AtomicU64,
    /// Location and name.
    pub state: RwLock<NodeState>,
    /// The node id lookups answer with when not `ino` (0: none), see `NodeTable::split`.
    alias: AtomicU64,
    /// Set when opens of this object conflicted with a lower file passed through:
    /// its lower file is not passed through again (served through the page cache).
    pub shared_backing_refused: AtomicBool,
}

impl Node {
    /// A node not (yet) in the table, for an object found at `state`.
    pub fn detached(ino: u64, is_dir: bool, state: NodeState) -> Node {
        Node {
            ino,
            is_dir,
            nlookup: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            state: RwLock::new(state),
            alias: AtomicU64::new(0),
            shared_backing_refused: AtomicBool::new(false),
        }
    }
}

/// Alias node ids carry this bit (real inode numbers stay below it: layer indexes
/// take bits 56 and up only past 63 layers on distinct file systems).
pub const ALIAS_BIT: u64 = 1 << 62;

/// The node table, keyed by node id.
#[derive(Debug, Default)]
pub struct NodeTable {
    map: DashMap<u64, Arc<Node>>,
    /// Alias node ids, each kept while its node lives (a kernel forgetting it does
    /// not end it: lookups answering with it may be under way).
    aliases: DashMap<u64, Arc<Node>>,
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
        self.map.get(&ino).map(|n| n.clone())
    }

    /// Gives `node` a second node id that lookups answer with from now on, so the
    /// kernel makes a second inode for the object. Why: a FUSE inode whose lower file
    /// is passed through keeps that backing file while it is open, and a writer (or a
    /// reader after the copy-up) must not share it; the kernel retries an open that
    /// fails with ESTALE after a fresh lookup, which finds the alias. An existing
    /// alias is kept. Returns the alias.
    pub fn split(&self, node: &Arc<Node>) -> u64 {
        let current = node.alias.load(Ordering::Acquire);
        if current != 0 && self.aliases.contains_key(&current) {
            return current;
        }
        let id = loop {
            let id = ALIAS_BIT | self.next_alias.fetch_add(1, Ordering::Relaxed);
            if !self.map.contains_key(&id) {
                break id;
            }
        };
        self.aliases.insert(id, node.clone());
        match node
            .alias
            .compare_exchange(current, id, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => id,
            Err(won) => {
                // A concurrent split gave the node its alias first.
                self.aliases.remove(&id);
                won
            }
        }
    }

    /// The node id an entry reply for `node` carries: its alias if it has one, else
    /// its own. (The node's `nlookup` counts the lookups of both.)
    pub fn entry_id(&self, node: &Node) -> u64 {
        match node.alias.load(Ordering::Acquire) {
            0 => node.ino,
            id => id,
        }
    }

    /// Records a lookup of `ino` with a fresh state: an existing node takes the new
    /// state and one more lookup; else a node is created. An existing node of the other
    /// type (directory / not) is a removed object's whose inode number the upper file
    /// system gave a new object: it is replaced as by [`Self::created`].
    pub fn looked_up(&self, ino: u64, is_dir: bool, state: NodeState) -> Arc<Node> {
        self.record(ino, is_dir, state, false)
    }

    /// Records a newly created object. If its inode number still names a node the
    /// kernel knows (a removed object the kernel still holds: an open O_PATH fd, a
    /// FORGET not yet served), that node stands for the removed object and keeps doing
    /// so for whoever holds it; the table gets a fresh node of the new object's type, a
    /// generation past the old one's (the kernel then drops its stale inode) and the old
    /// lookups (the kernel forgets them by this id).
    pub fn created(&self, ino: u64, is_dir: bool, state: NodeState) -> Arc<Node> {
        self.record(ino, is_dir, state, true)
    }

    /// The lookup is counted under the table's lock on `ino`, so a FORGET served
    /// meanwhile (it takes the node out when the count reaches zero) either comes first
    /// and this makes a node, or sees the count with this lookup in it.
    fn record(&self, ino: u64, is_dir: bool, state: NodeState, new_object: bool) -> Arc<Node> {
        match self.map.entry(ino) {
            dashmap::Entry::Vacant(v) => {
                let node = Arc::new(Node::detached(ino, is_dir, state));
                node.nlookup.store(1, Ordering::Relaxed);
                v.insert(Arc::clone(&node));
                node
            }
            dashmap::Entry::Occupied(mut o) => {
                let old = o.get();
                if new_object || old.is_dir != is_dir {
                    let node = Arc::new(Node::detached(ino, is_dir, state));
                    let lookups = old.nlookup.load(Ordering::Relaxed) + 1;
                    node.nlookup.store(lookups, Ordering::Relaxed);
                    let generation = old.generation.load(Ordering::Relaxed) + 1;
                    node.generation.store(generation, Ordering::Relaxed);
                    // The old object's alias is not this object's.
                    let alias = old.alias.load(Ordering::Acquire);
                    if alias != 0 {
                        self.aliases.remove(&alias);
                    }
                    o.insert(Arc::clone(&node));
                    node
                } else {
                    let node = Arc::clone(old);
                    node.nlookup.fetch_add(1, Ordering::Relaxed);
                    drop(o);
                    *node.state.write() = state;
                    node
                }
            }
        }
    }

    /// Inserts the root node.
    pub fn insert_root(&self, state: NodeState) {
        let root = Node::detached(1, true, state);
        root.nlookup.store(1, Ordering::Relaxed);
        self.map.insert(1, Arc::new(root));
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
        let (_, node) = self.map.remove_if(&ino, |_, node| {
            let prev = node.nlookup.fetch_sub(
                n.min(node.nlookup.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            prev <= n
        })?;
        let alias = node.alias.load(Ordering::Acquire);
        if alias != 0 {
            self.aliases.remove(&alias);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> NodeState {
        NodeState {
            parent: 1,
            name: "f".into(),
            loc: Loc::Upper,
            span: None,
        }
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
            dir.is_dir && !file.is_dir,
            "each node keeps its object's type"
        );
        assert!(!Arc::ptr_eq(&dir, &file));
        assert!(Arc::ptr_eq(&t.get(9).expect("the new node"), &dir));
        assert_eq!(dir.generation.load(Ordering::Relaxed), 1);
        // The kernel forgets the old inode's two lookups and the new one's by one id.
        assert!(t.forget(9, 2).is_none());
        assert_eq!(t.forget(9, 1).map(|n| n.ino), Some(9));
        // A lookup finding another type than the node it meets (no create seen).
        t.looked_up(5, true, state());
        let f = t.looked_up(5, false, state());
        assert!(!f.is_dir);
        assert_eq!(f.generation.load(Ordering::Relaxed), 1);
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
