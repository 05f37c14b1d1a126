//! Runtime state of a container, kept in `containers/<id>/runtime/state.json`, so
//! `strata ps` can tell running containers from stopped ones.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What `strata ps` shows about a running or finished container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The launcher's pid (host).
    pub launcher_pid: i32,
    /// The command's pid as the host sees it.
    pub pid: i32,
    /// The command line.
    pub command: Vec<String>,
    /// Exit code once finished.
    pub exit_code: Option<i32>,
}

fn path(dir: &Path) -> std::path::PathBuf {
    dir.join("runtime").join("state.json")
}

/// Writes the state file (atomically).
pub fn save(dir: &Path, state: &State) -> Result<()> {
    let p = path(dir);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(state).context("encoding state")?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("renaming into {}", p.display()))
}

/// Reads the state file, if any.
pub fn load(dir: &Path) -> Option<State> {
    let text = std::fs::read_to_string(path(dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the container's launcher is still alive.
pub fn is_running(state: &State) -> bool {
    state.exit_code.is_none()
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.launcher_pid), None).is_ok()
        && std::fs::read(format!("/proc/{}/cmdline", state.launcher_pid))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a.ends_with(b"strata")))
}
