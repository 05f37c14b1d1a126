//! Node storage: nodes live in fixed chunks of slots, allocated once and kept while
//! the slab lives, so a node costs its 72 bytes and a 4-byte handle count rather than
//! a heap allocation of its own (96 bytes with the `Arc` and allocator headers), and
//! the node table indexes 4-byte slot numbers rather than 8-byte pointers.
//!
//! A slot is reused only once nothing holds it: its count is the table's reference
//! (while the node is in the table) plus one per [`NodeRef`] handle.

use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::{Node, NodeState};

/// Slots per chunk (a chunk is 4096 x 76 bytes, ~300 KiB, allocated at once).
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Chunks per directory block (the directory is two-level so it needs no lock and no
/// bound short of 2^32 slots).
const BLOCK_BITS: u32 = 10;
const BLOCK: usize = 1 << BLOCK_BITS;
/// Directory blocks (2^32 slots in all).
const BLOCKS: usize = 1 << (32 - CHUNK_BITS - BLOCK_BITS);

/// Free slots and the next never-used one, shared by the slab and its chunks (a
/// chunk's last handle to drop gives its slot back here).
#[derive(Debug, Default)]
struct Alloc {
    free: Vec<u32>,
    next: u32,
}

/// A fixed run of slots: the nodes, and beside them each slot's count (kept apart so
/// a slot is 76 bytes, not 80).
struct Chunk {
    nodes: Box<[Node]>,
    refs: Box<[AtomicU32]>,
    /// The slot number of the chunk's first slot.
    base: u32,
    alloc: Arc<Mutex<Alloc>>,
}

impl Chunk {
    /// Gives slot `off` back once its last reference went: empties the node, then
    /// makes the slot free.
    fn free(&self, off: usize) {
        self.nodes[off].clear();
        self.alloc.lock().free.push(self.base + off as u32);
    }

    /// Drops one reference of slot `off`, freeing it when none remain.
    fn release(&self, off: usize) {
        if self.refs[off].fetch_sub(1, Ordering::Release) == 1 {
            // Every use of the node through other references happened before.
            fence(Ordering::Acquire);
            self.free(off);
        }
    }
}

/// A directory block: [`BLOCK`] chunks, each made when first needed.
type Block = Box<[OnceLock<Arc<Chunk>>]>;

/// The nodes of one node table.
pub(super) struct Slab {
    dir: Box<[OnceLock<Block>]>,
    alloc: Arc<Mutex<Alloc>>,
}

impl Default for Slab {
    fn default() -> Slab {
        Slab {
            dir: (0..BLOCKS).map(|_| OnceLock::new()).collect(),
            alloc: Arc::default(),
        }
    }
}

impl Slab {
    /// The chunk holding slot `slot` and the slot's place in it, if allocated.
    fn chunk(&self, slot: u32) -> (&Arc<Chunk>, usize) {
        let block = &self.dir[(slot >> (CHUNK_BITS + BLOCK_BITS)) as usize];
        let chunk = block
            .get()
            .and_then(|b| b[(slot >> CHUNK_BITS) as usize & (BLOCK - 1)].get())
            .expect("a slot number the slab gave out");
        (chunk, slot as usize & (CHUNK - 1))
    }

    /// The node in slot `slot`, which the caller holds a reference of (the table's,
    /// under its lock).
    pub(super) fn node(&self, slot: u32) -> &Node {
        let (chunk, off) = self.chunk(slot);
        &chunk.nodes[off]
    }

    /// A new handle to slot `slot`, which the caller holds a reference of.
    pub(super) fn handle(&self, slot: u32) -> NodeRef {
        let (chunk, off) = self.chunk(slot);
        chunk.refs[off].fetch_add(1, Ordering::Relaxed);
        NodeRef {
            chunk: Arc::clone(chunk),
            off: off as u32,
        }
    }

    /// The handle that takes over the caller's reference of slot `slot` (the table's,
    /// once the node left it).
    pub(super) fn adopt(&self, slot: u32) -> NodeRef {
        let (chunk, off) = self.chunk(slot);
        NodeRef {
            chunk: Arc::clone(chunk),
            off: off as u32,
        }
    }

    /// Drops the caller's reference of slot `slot` (the table's).
    pub(super) fn release(&self, slot: u32) {
        let (chunk, off) = self.chunk(slot);
        chunk.release(off);
    }

    /// A node for object `ino` in a free slot, its one reference the returned handle.
    pub(super) fn alloc(
        &self,
        ino: u64,
        is_dir: bool,
        state: NodeState,
        lookups: u64,
        generation: u64,
    ) -> NodeRef {
        let slot = {
            let mut a = self.alloc.lock();
            match a.free.pop() {
                Some(slot) => slot,
                None => {
                    let slot = a.next;
                    a.next = slot.checked_add(1).expect("2^32 nodes");
                    if slot as usize & (CHUNK - 1) == 0 {
                        self.add_chunk(slot);
                    }
                    slot
                }
            }
        };
        let (chunk, off) = self.chunk(slot);
        chunk.nodes[off].reset(ino, is_dir, state, lookups, generation);
        chunk.refs[off].store(1, Ordering::Relaxed);
        NodeRef {
            chunk: Arc::clone(chunk),
            off: off as u32,
        }
    }

    /// Makes the chunk starting at slot `base` (called under the allocator's lock).
    fn add_chunk(&self, base: u32) {
        let block = self.dir[(base >> (CHUNK_BITS + BLOCK_BITS)) as usize]
            .get_or_init(|| (0..BLOCK).map(|_| OnceLock::new()).collect());
        let chunk = Chunk {
            nodes: (0..CHUNK)
                .map(|_| Node::detached(0, false, NodeState::default()))
                .collect(),
            refs: (0..CHUNK).map(|_| AtomicU32::new(0)).collect(),
            base,
            alloc: Arc::clone(&self.alloc),
        };
        let set = block[(base >> CHUNK_BITS) as usize & (BLOCK - 1)].set(Arc::new(chunk));
        debug_assert!(set.is_ok(), "each chunk is made once");
    }
}

/// A handle to a node in the slab: derefs to the node, and keeps its slot from being
/// reused while it lives (what an `Arc<Node>` did, without an allocation per node).
/// Clone and drop are two atomic counts, no lock (but the drop that frees a slot).
pub struct NodeRef {
    chunk: Arc<Chunk>,
    off: u32,
}

impl NodeRef {
    /// True when both handles are of the same node (the same slot: a slot is not
    /// reused while a handle to it lives).
    pub fn ptr_eq(a: &NodeRef, b: &NodeRef) -> bool {
        Arc::ptr_eq(&a.chunk, &b.chunk) && a.off == b.off
    }

    /// The node's slot number, as the table indexes it.
    pub(super) fn slot(&self) -> u32 {
        self.chunk.base + self.off
    }

    /// Counts one more reference of the slot, the table's (the node goes in it).
    pub(super) fn retain(&self) {
        self.chunk.refs[self.off as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk").field("base", &self.base).finish()
    }
}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.alloc.lock();
        f.debug_struct("Slab")
            .field("slots", &a.next)
            .field("free", &a.free.len())
            .finish()
    }
}

/// Shows the node, as `Arc<Node>` did.
impl std::fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::ops::Deref for NodeRef {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.chunk.nodes[self.off as usize]
    }
}

impl Clone for NodeRef {
    fn clone(&self) -> NodeRef {
        self.retain();
        NodeRef {
            chunk: Arc::clone(&self.chunk),
            off: self.off,
        }
    }
}

impl Drop for NodeRef {
    fn drop(&mut self) {
        self.chunk.release(self.off as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Name;

    fn state(name: &str) -> NodeState {
        NodeState {
            parent: 1,
            name: Name::new(name.as_ref()),
            loc: super::super::Loc::Upper,
            span: None,
        }
    }

    #[test]
    fn a_slot_is_reused_only_after_its_last_handle_drops() {
        let s = Slab::default();
        let a = s.alloc(10, false, state("a"), 1, 0);
        let slot = a.slot();
        let b = a.clone();
        drop(a);
        let c = s.alloc(11, false, state("c"), 1, 0);
        assert_ne!(c.slot(), slot, "a held slot is not given out");
        assert_eq!(b.ino(), 10);
        assert_eq!(b.state.read().name, *std::ffi::OsStr::new("a"));
        drop(b);
        let d = s.alloc(12, true, state("d"), 1, 0);
        assert_eq!(d.slot(), slot, "a free slot is reused");
        assert_eq!(d.ino(), 12);
        assert!(d.is_dir());
        assert_eq!(d.state.read().name, *std::ffi::OsStr::new("d"));
    }

    #[test]
    fn a_freed_slot_keeps_no_allocation() {
        let s = Slab::default();
        let long = "a name longer than fifteen bytes";
        let a = s.alloc(10, false, state(long), 1, 0);
        let (chunk, off) = {
            let (c, o) = s.chunk(a.slot());
            (Arc::clone(c), o)
        };
        drop(a);
        assert!(chunk.nodes[off].state.read().name.is_empty());
        assert_eq!(chunk.nodes[off].ino(), 0);
    }

    #[test]
    fn slots_span_chunks() {
        let s = Slab::default();
        let held: Vec<_> = (0..CHUNK as u64 * 2 + 3)
            .map(|i| s.alloc(i + 2, false, state("f"), 1, 0))
            .collect();
        for (i, n) in held.iter().enumerate() {
            assert_eq!(n.ino(), i as u64 + 2);
            assert_eq!(n.slot(), i as u32);
            assert!(NodeRef::ptr_eq(n, &s.handle(n.slot())));
        }
    }
}
