//! stratafs: overlay (union) filesystem semantics implemented in userspace over FUSE.

pub mod cli;
