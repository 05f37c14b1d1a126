//! stratafs: overlay (union) filesystem semantics implemented in userspace over FUSE.
//!
//! The overlay logic (`layers`, `node`, `overlay`) is plain Rust over fd-relative
//! syscalls (`sys`); `fuse` holds the request handlers, `transport` carries requests
//! from the kernel to them, and `daemon` is the fuse-overlayfs-compatible command line
//! and the mount. Other crates use the command line (`cli`, `options`) and, for the
//! fuzz target and the benches, `transport`; the rest is the crate's own.

mod daemon;
mod files;
mod fuse;
mod idmap;
mod layers;
mod names;
mod node;
mod overlay;
mod override_stat;
mod sys;
pub mod transport;
mod whiteout;

pub use daemon::{cli, options};
