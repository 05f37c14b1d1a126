//! `--console-socket`: the Unix socket a caller (conmon, containerd's shim) listens on
//! for the container's pty master. The runtime connects to it before forking, and the
//! container's init sends the master over it (`SCM_RIGHTS`, see
//! `crate::runtime::pty::open_in_container`) once its pty exists.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};

/// Connects to the console socket at `path`.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .with_context(|| format!("connecting to the console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}
