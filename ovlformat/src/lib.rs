//! The overlay on-disk format, one owner for its rules: what stratafs serves
//! and what the store reads back from an upper (`diff`, `commit`,
//! `export`) and writes into layers. Knows no FUSE and no images.
//!
//! * [`whiteout`] — the markers: char 0/0 whiteouts, `.wh.NAME`, `.wh..wh..opq`, the
//!   opaque and whiteout xattrs
//! * [`xattr`] — the overlay's private xattrs, and reading any xattr whole
//! * [`override_stat`] — owner and mode kept in an xattr (`UID:GID:MODE[:TYPE]`)

#![forbid(unsafe_code)]

pub mod override_stat;
pub mod whiteout;
pub mod xattr;
