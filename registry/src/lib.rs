//! strata's side of the OCI distribution API: `strata pull`, `push`, `login` and
//! `logout`. The HTTP, TLS and token flows are `oci-client`'s (reqwest with rustls);
//! this crate chooses what to fetch and send, keeps credentials where podman keeps
//! them, resumes interrupted downloads, and hands verified blobs to the store, which
//! registers an image all or nothing.
//!
//! * [`reference`] — `host[:port]/repo:tag` / `@sha256:` references, docker's defaults
//! * [`credentials`] — `auth.json` (podman's file) and `~/.docker/config.json`
//! * [`connection`] — one client per registry: TLS roots, `--tls-verify=false`, auth
//! * [`platform`] — choosing an image of a manifest list / OCI index
//! * [`download`] — a blob into `tmp/downloads/`, resumable, verified
//! * [`login`] — `strata login` / `logout`
//! * [`progress`] — bars on a terminal, plain lines otherwise
//! * [`pull`] — manifest, config and layers into the store
//! * [`push`] — an image of the store to a registry

#![forbid(unsafe_code)]

pub mod connection;
pub mod credentials;
pub mod download;
pub mod error;
pub mod login;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;

pub use connection::TlsOptions;
pub use credentials::Credentials;
pub use error::RegistryError;
pub use pull::{PullOptions, pull};
pub use push::{PushOptions, push};

/// A tokio runtime for one command: registry I/O is async, the CLI is not.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, RegistryError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Local(format!("start the I/O runtime: {e}")))
}
