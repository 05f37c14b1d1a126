//! The node table: node ids to the nodes the kernel knows, their aliases, and the
//! kernel's lookup counts kept right against FORGETs.
//!
//! The index is sharded hash tables of slot numbers (4 bytes and a control byte per
//! bucket), hashed and compared by the ino of the node in the slot.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::RwLock;

use super::slab::{NodeRef, Slab};
use super::{ALIASED, Node, NodeState};

/// Alias node ids carry this bit (real inode numbers stay below it: layer indexes
/// take bits 56 and up only past 63 layers on distinct file systems).
const ALIAS_BIT: u64 = 1 << 62;

/// Index shards (by hash of the node id), so lookups of different nodes seldom meet
/// on one lock.
const SHARDS: usize = 16;

/// The hash of node id `ino` (a folded multiply: ids are mostly sequential, and the
/// buckets take the low bits, the shard bits 32-35, the control byte the top 7).
fn hash(ino: u64) -> u64 {
    let m = u128::from(ino) * 0x9E37_79B9_7F4A_7C15;
    (m as u64) ^ ((m >> 64) as u64)
}

/// The node table, keyed by node id.
#[derive(Debug)]
pub struct NodeTable {
    slab: Slab,
    /// Slot numbers of the nodes in the table, each holding a reference of its slot.
    shards: [RwLock<HashTable<u32>>; SHARDS],
    /// Alias node ids, each kept while its node lives (a kernel forgetting it does
    /// not end it: lookups answering with it may be under way).
    aliases: DashMap<u64, NodeRef>,
    /// Each aliased node's alias, by the node's own id.
    alias_of: DashMap<u64, u64>,
    next_alias: AtomicU64,
}

impl Default for NodeTable {
    fn default() -> NodeTable {
        NodeTable {
            slab: Slab::default(),
            shards: std::array::from_fn(|_| RwLock::default()),
            aliases: DashMap::default(),
            alias_of: DashMap::default(),
            next_alias: AtomicU64::default(),
        }
    }
}

impl NodeTable {
    /// The shard of `ino` and its hash.
    fn shard(&self, ino: u64) -> (&RwLock<HashTable<u32>>, u64) {
        let h = hash(ino);
        (&self.shards[(h >> 32) as usize % SHARDS], h)
    }

    /// Compares a slot in the index with `ino`.
    fn is(&self, ino: u64) -> impl Fn(&u32) -> bool + '_ {
        move |&slot| self.slab.node(slot).ino() == ino
    }

    /// Hashes a slot in the index (when the shard grows).
    fn hasher(&self) -> impl Fn(&u32) -> u64 + '_ {
        |&slot| hash(self.slab.node(slot).ino())
    }

    /// The node `ino` in the table, as a new handle.
    fn find(&self, ino: u64) -> Option<NodeRef> {
        let (shard, h) = self.shard(ino);
        let s = shard.read();
        s.find(h, self.is(ino)).map(|&slot| self.slab.handle(slot))
    }

    /// Finds a node by id (its own or an alias).
    pub fn get(&self, ino: u64) -> Option<NodeRef> {
        if ino & ALIAS_BIT != 0 {
            if let Some(n) = self.aliases.get(&ino) {
                return Some(n.clone());
            }
        }
        self.find(ino)
    }

    /// True when node id `ino` (not an alias) is in the table.
    fn contains(&self, ino: u64) -> bool {
        let (shard, h) = self.shard(ino);
        shard.read().find(h, self.is(ino)).is_some()
    }

    /// Gives `node` a second node id that lookups answer with from now on, so the
    /// kernel makes a second inode for the object. Why: a FUSE inode whose lower file
    /// is passed through keeps that backing file while it is open, and a writer (or a
    /// reader after the copy-up) must not share it; the kernel retries an open that
    /// fails with ESTALE after a fresh lookup, which finds the alias. An existing
    /// alias is kept. Returns the alias.
    pub fn split(&self, node: &NodeRef) -> u64 {
        if let Some(a) = self.alias_held(node) {
            return a;
        }
        let id = loop {
            let id = ALIAS_BIT | self.next_alias.fetch_add(1, Ordering::Relaxed);
            if !self.contains(id) && !self.aliases.contains_key(&id) {
                break id;
            }
        };
        match self.alias_of.entry(node.ino()) {
            dashmap::Entry::Occupied(mut o) => {
                let current = *o.get();
                if self
                    .aliases
                    .get(&current)
                    .is_some_and(|n| NodeRef::ptr_eq(&n, node))
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
        self.aliases.insert(id, node.clone());
        node.word.fetch_or(ALIASED, Ordering::Release);
        id
    }

    /// The alias `node` has, if any.
    fn alias_held(&self, node: &Node) -> Option<u64> {
        if !node.aliased() {
            return None;
        }
        let a = *self.alias_of.get(&node.ino())?;
        self.aliases
            .get(&a)
            .is_some_and(|n| std::ptr::eq(&**n, node))
            .then_some(a)
    }

    /// Drops the alias of `node` (the node going, or replaced).
    fn drop_alias(&self, node: &Node) {
        if node.aliased() {
            if let Some((_, a)) = self.alias_of.remove_if(&node.ino(), |_, a| {
                self.aliases
                    .get(a)
                    .is_some_and(|n| std::ptr::eq(&**n, node))
            }) {
                self.aliases.remove(&a);
            }
        }
    }

    /// The node id an entry reply for `node` carries: its alias if it has one, else
    /// its own. (The node's `nlookup` counts the lookups of both.)
    pub fn entry_id(&self, node: &Node) -> u64 {
        self.alias_held(node).unwrap_or(node.ino())
    }

    /// Records a lookup of `ino` with a fresh state: an existing node takes the new
    /// state and one more lookup; else a node is created. An existing node of the other
    /// type (directory / not) is a removed object's whose inode number the upper file
    /// system gave a new object: it is replaced as by [`Self::created`].
    pub fn looked_up(&self, ino: u64, is_dir: bool, state: NodeState) -> NodeRef {
        self.record(ino, is_dir, state, false, false).0
    }

    /// Like [`Self::looked_up`], for a state resolved without the namespace lock, which
    /// a copy-up of the node may have finished after: a state that would put a
    /// copied-up node back below (in a lower layer or the index) is not taken, and the
    /// second value is false; the caller resolves again. (Else a later write would copy
    /// the lower object up a second time over the first copy's data.)
    pub fn looked_up_unlocked(&self, ino: u64, is_dir: bool, state: NodeState) -> (NodeRef, bool) {
        self.record(ino, is_dir, state, false, true)
    }

    /// Records a newly created object. If its inode number still names a node the
    /// kernel knows (a removed object the kernel still holds: an open O_PATH fd, a
    /// FORGET not yet served), that node stands for the removed object and keeps doing
    /// so for whoever holds it; the table gets a fresh node of the new object's type, a
    /// generation past the old one's (the kernel then drops its stale inode) and the old
    /// lookups (the kernel forgets them by this id).
    pub fn created(&self, ino: u64, is_dir: bool, state: NodeState) -> NodeRef {
        self.record(ino, is_dir, state, true, false).0
    }

    /// The lookup is counted under the shard's lock on `ino`, so a FORGET served
    /// meanwhile (it takes the node out when the count reaches zero) either comes first
    /// and this makes a node, or sees the count with this lookup in it.
    fn record(
        &self,
        ino: u64,
        is_dir: bool,
        state: NodeState,
        new_object: bool,
        unlocked: bool,
    ) -> (NodeRef, bool) {
        let (shard, h) = self.shard(ino);
        if !new_object {
            // The common case, a node the table has: counted under the shard's read lock.
            let s = shard.read();
            if let Some(&slot) = s.find(h, self.is(ino)) {
                let node = self.slab.node(slot);
                if node.is_dir() == is_dir {
                    node.add_lookup();
                    let node = self.slab.handle(slot);
                    drop(s);
                    let taken = take_state(&node, state, unlocked);
                    return (node, taken);
                }
            }
        }
        let mut s = shard.write();
        match s.entry(h, self.is(ino), self.hasher()) {
            Entry::Vacant(v) => {
                let node = self.slab.alloc(ino, is_dir, state, 1, 0);
                node.retain();
                v.insert(node.slot());
                (node, true)
            }
            Entry::Occupied(mut o) => {
                let old_slot = *o.get();
                let old = self.slab.node(old_slot);
                if new_object || old.is_dir() != is_dir {
                    let node = self.slab.alloc(
                        ino,
                        is_dir,
                        state,
                        old.lookups() + 1,
                        old.generation() + 1,
                    );
                    // The old object's alias is not this object's.
                    self.drop_alias(old);
                    // The slot now holds the new node; the old one lives on for whoever
                    // holds it.
                    node.retain();
                    *o.get_mut() = node.slot();
                    drop(s);
                    self.slab.release(old_slot);
                    (node, true)
                } else {
                    // Another lookup of the same object put it in meanwhile.
                    old.add_lookup();
                    let old = self.slab.handle(old_slot);
                    drop(s);
                    let taken = take_state(&old, state, unlocked);
                    (old, taken)
                }
            }
        }
    }

    /// Inserts the root node.
    pub fn insert_root(&self, state: NodeState) {
        let (shard, h) = self.shard(1);
        let root = self.slab.alloc(1, true, state, 1, 0);
        let mut s = shard.write();
        match s.entry(h, self.is(1), self.hasher()) {
            Entry::Vacant(v) => {
                root.retain();
                v.insert(root.slot());
            }
            Entry::Occupied(mut o) => {
                root.retain();
                let old = std::mem::replace(o.get_mut(), root.slot());
                drop(s);
                self.slab.release(old);
            }
        }
    }

    /// Drops `n` lookups of node id `id` (its own or an alias: a node's `nlookup`
    /// counts both); returns the node when it goes, none remaining.
    pub fn forget(&self, id: u64, n: u64) -> Option<NodeRef> {
        let ino = if id & ALIAS_BIT != 0 {
            self.aliases.get(&id).map_or(id, |node| node.ino())
        } else {
            id
        };
        if ino == 1 {
            return None;
        }
        let (shard, h) = self.shard(ino);
        let mut s = shard.write();
        let entry = s.find_entry(h, self.is(ino)).ok()?;
        if !self.slab.node(*entry.get()).drop_lookups(n) {
            return None;
        }
        let (slot, _) = entry.remove();
        drop(s);
        // The table's reference becomes the caller's.
        let node = self.slab.adopt(slot);
        self.drop_alias(&node);
        Some(node)
    }

    /// Number of live nodes (for memory accounting).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// True when only nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.read().is_empty())
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
    use std::sync::Arc;

    use super::*;
    use crate::node::{Loc, Name};

    fn state() -> NodeState {
        NodeState {
            parent: 1,
            name: Name::new("f".as_ref()),
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
        assert!(NodeRef::ptr_eq(&t.get(a).expect("alias resolves"), &n));
        // Lookups now answer with the alias; both ids count in the node.
        t.looked_up(7, false, state());
        assert_eq!(t.entry_id(&n), a);
        // The kernel forgetting every lookup of the alias does not end it.
        assert!(t.forget(a, 1).is_none());
        assert!(t.get(a).is_some());
        assert_eq!(t.entry_id(&n), a);
        // The node's last lookup takes the alias with it.
        assert_eq!(t.forget(7, 1).map(|n| n.ino()), Some(7));
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
        assert!(!NodeRef::ptr_eq(&dir, &file));
        assert!(NodeRef::ptr_eq(&t.get(9).expect("the new node"), &dir));
        assert_eq!(dir.generation(), 1);
        // The kernel forgets the old inode's two lookups and the new one's by one id.
        assert!(t.forget(9, 2).is_none());
        assert_eq!(t.forget(9, 1).map(|n| n.ino()), Some(9));
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
                        let found = t.get(7).is_some_and(|m| NodeRef::ptr_eq(&m, &n));
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

    #[test]
    fn a_handle_kept_across_a_forget_reads_its_own_node() {
        let t = NodeTable::default();
        let n = t.looked_up(7, false, state());
        n.state.write().name = Name::new("mine".as_ref());
        assert!(t.forget(7, 1).is_some());
        // New nodes take free slots, never the held one.
        let others: Vec<_> = (100..200).map(|i| t.looked_up(i, true, state())).collect();
        assert!(others.iter().all(|o| !NodeRef::ptr_eq(o, &n)));
        assert_eq!(n.ino(), 7);
        assert!(!n.is_dir());
        assert_eq!(n.state.read().name, *std::ffi::OsStr::new("mine"));
        // Once the handle goes, its slot is reused.
        let slot = n.slot();
        drop(n);
        assert_eq!(t.looked_up(8, false, state()).slot(), slot);
        assert_eq!(t.len(), 101);
    }

    #[test]
    fn a_replaced_node_lives_on_for_its_holder() {
        let t = NodeTable::default();
        let old = t.looked_up(9, false, state());
        old.state.write().name = Name::new("old".as_ref());
        let new = t.created(9, false, state());
        assert!(!NodeRef::ptr_eq(&old, &new));
        assert_eq!(old.ino(), 9);
        assert_eq!(old.state.read().name, *std::ffi::OsStr::new("old"));
        assert!(NodeRef::ptr_eq(&t.get(9).expect("the new node"), &new));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn many_nodes_grow_the_shards_and_go() {
        let t = NodeTable::default();
        for i in 2..20_000 {
            t.looked_up(i, i % 7 == 0, state());
        }
        assert_eq!(t.len(), 19_998);
        for i in 2..20_000 {
            assert_eq!(t.get(i).map(|n| n.ino()), Some(i));
        }
        for i in 2..20_000 {
            assert!(t.forget(i, 1).is_some());
        }
        assert!(t.is_empty());
    }

    #[test]
    fn a_held_slot_is_not_reused_under_churn() {
        let t = Arc::new(NodeTable::default());
        let threads: Vec<_> = (0..4u64)
            .map(|k| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        let ino = 2 + k * 1_000_000 + i % 64;
                        let name = ino.to_string();
                        let mut st = state();
                        st.name = Name::new(std::ffi::OsStr::new(&name));
                        let n = t.looked_up(ino, false, st);
                        // Gone from the table: the handle alone keeps the slot, while
                        // the other threads take and free slots.
                        t.forget(ino, 1);
                        let copy = n.clone();
                        for _ in 0..4 {
                            std::thread::yield_now();
                            if copy.ino() != ino
                                || copy.state.read().name != *std::ffi::OsStr::new(&name)
                            {
                                return false;
                            }
                        }
                    }
                    true
                })
            })
            .collect();
        for th in threads {
            assert!(th.join().expect("thread"), "a held slot was reused");
        }
        assert!(t.is_empty());
    }
}
