//! The launcher's only `unsafe`: small safe wrappers over the system calls that nix
//! and rustix do not wrap safely, each with its safety argument. The rest of the
//! launcher calls these (or nix/rustix) and has no `unsafe` of its own.

pub mod bpf;
pub mod fd;
pub mod keyring;
pub mod net;
pub mod process;
pub mod term;
