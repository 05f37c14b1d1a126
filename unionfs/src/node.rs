//! The inode table: what each FUSE node id stands for, and where its data lives.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Node id, also the st_ino reported.
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
}

/// The node table, keyed by node id.
#[derive(Debug, Default)]
pub struct NodeTable {
    map: DashMap<u64, Arc<Node>>,
}

impl NodeTable {
    /// Finds a node by id.
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.map.get(&ino).map(|n| n.clone())
    }

    /// Records a lookup of `ino` with a fresh state: an existing node takes the new
    /// state and one more lookup; else a node is created.
    pub fn looked_up(&self, ino: u64, is_dir: bool, state: NodeState) -> Arc<Node> {
        let entry = self.map.entry(ino).or_insert_with(|| {
            Arc::new(Node {
                ino,
                is_dir,
                nlookup: AtomicU64::new(0),
                generation: AtomicU64::new(0),
                state: RwLock::new(state.clone()),
            })
        });
        let node = entry.clone();
        drop(entry);
        *node.state.write() = state;
        node.nlookup.fetch_add(1, Ordering::Relaxed);
        node
    }

    /// Records a newly created object: if its inode number still names a node the
    /// kernel knows, that node gets a new generation.
    pub fn created(&self, ino: u64, is_dir: bool, state: NodeState) -> Arc<Node> {
        let existed = self.map.contains_key(&ino);
        let node = self.looked_up(ino, is_dir, state);
        if existed {
            node.generation.fetch_add(1, Ordering::Relaxed);
        }
        node
    }

    /// Inserts the root node.
    pub fn insert_root(&self, state: NodeState) {
        self.map.insert(
            1,
            Arc::new(Node {
                ino: 1,
                is_dir: true,
                nlookup: AtomicU64::new(1),
                generation: AtomicU64::new(0),
                state: RwLock::new(state),
            }),
        );
    }

    /// Drops `n` lookups of `ino`; the node goes when none remain (true then).
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        if ino == 1 {
            return false;
        }
        self.map
            .remove_if(&ino, |_, node| {
                let prev = node.nlookup.fetch_sub(
                    n.min(node.nlookup.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                prev <= n
            })
            .is_some()
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
