//! The daemon around the overlay: its command line (fuse-overlayfs' `-o` options,
//! `options`), the generic mount flags (`mount_flag`), the mount itself (`mount`), and
//! starting, serving and daemonizing (`cli`).

pub mod cli;
pub(crate) mod mount;
pub(crate) mod mount_flag;
pub mod options;
