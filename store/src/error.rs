//! The store's error type: every variant names the path or reference it is about.

use std::path::PathBuf;

/// Errors of the layer store. Each one says what it was about (a path, an archive
/// entry, a reference) and why, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on a store or archive path failed.
    #[error("{op} {path}: {cause}")]
    Io {
        /// What was being done ("create", "read", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error (shown in the message, so not chained as a source).
        cause: std::io::Error,
    },
    /// No image matches the reference.
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    /// An id prefix matches several images.
    #[error("image reference {0:?} is ambiguous (matches several image ids)")]
    AmbiguousImage(String),
    /// No container matches the name or id.
    #[error("container {0:?} not found")]
    ContainerNotFound(String),
    /// A container name is already taken.
    #[error("container name {0:?} is already in use")]
    NameInUse(String),
    /// A name or NAME:TAG reference is malformed.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A blob's content does not hash to the digest it is known by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or layer (archive path, descriptor) concerned.
        what: String,
        /// The digest the manifest/config promised.
        expected: String,
        /// The digest of the content actually read.
        actual: String,
    },
    /// A layer tar entry is unsafe or unsupported; names the entry.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// Which layer (blob path or digest).
        layer: String,
        /// The entry's name in the tar.
        entry: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An archive, manifest or config is malformed.
    #[error("{path}: {reason}")]
    BadArchive {
        /// The archive or file inside it.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A store metadata file is corrupt.
    #[error("store metadata {path} is corrupt: {reason}")]
    Corrupt {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation conflicts with the store's state (e.g. image in use).
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// Builds an [`StoreError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            cause: source,
        }
    }

    /// Builds a [`StoreError::BadArchive`].
    pub fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::BadArchive {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Adds the path and operation to a `std::io::Result`.
pub trait IoContext<T> {
    /// Maps an I/O error to [`StoreError::Io`] naming `op` and `path`.
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}
