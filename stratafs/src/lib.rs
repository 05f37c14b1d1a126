//! stratafs: overlay (union) filesystem semantics implemented in userspace over FUSE.
//!
//! The overlay logic (`layers`, `node`, `overlay`) is plain Rust over fd-relative
//! syscalls (`sys`); `fuse` adapts it to `fuser`; `options` and `cli` give the
//! fuse-overlayfs-compatible command line.

pub mod backing;
pub mod caller;
pub mod cli;
pub mod files;
pub mod fuse;
pub mod idmap;
pub mod layers;
pub mod mount;
pub mod mount_flag;
pub mod names;
pub mod node;
pub mod options;
pub mod overlay;
pub mod override_stat;
pub mod plus;
pub mod sys;
pub mod transport;
pub mod whiteout;
