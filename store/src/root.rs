//! Where the store lives when `--root` is not given.

use std::path::PathBuf;

use crate::error::StoreError;

/// The default store root: `$STRATA_ROOT`, else `/var/lib/strata` as root, else
/// `$XDG_DATA_HOME/strata` or `~/.local/share/strata`.
pub fn default_root() -> Result<PathBuf, StoreError> {
    if let Some(r) = std::env::var_os("STRATA_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(r));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("strata"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/strata")),
        None => Err(StoreError::Conflict(
            "cannot choose a store root: none of --root, $STRATA_ROOT, $XDG_DATA_HOME, $HOME is set"
                .into(),
        )),
    }
}
