//! Runtime state of a container, kept in `containers/<id>/runtime/state.json`, so
//! `strata ps`, `inspect`, `exec`, `stop` and `wait` can tell running containers from
//! stopped ones and find their processes. A recorded launcher counts as alive only
//! while its pid names the same process (start time from `/proc/PID/stat`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::procfs;

/// What `strata ps` shows about a running or finished container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The launcher's pid (host): `strata run`, or the monitor of a detached container.
    pub launcher_pid: i32,
    /// The launcher's start time (`/proc/PID/stat` field 22), so a reused pid is
    /// never taken for it.
    #[serde(default)]
    pub launcher_start: Option<u64>,
    /// The command's pid as the host sees it (0 once finished).
    pub pid: i32,
    /// The command line.
    pub command: Vec<String>,
    /// Exit code once finished.
    pub exit_code: Option<i32>,
    /// Started by `run -d` / `start`: a monitor holds it.
    #[serde(default)]
    pub detached: bool,
    /// When the command started (seconds since the epoch).
    #[serde(default)]
    pub started_at: Option<u64>,
    /// When it finished (seconds since the epoch).
    #[serde(default)]
    pub finished_at: Option<u64>,
    /// The container's cgroup directories (empty: none).
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// Runs in a user namespace of an unprivileged caller.
    #[serde(default)]
    pub rootless: bool,
    /// The command's environment (`exec` starts from it).
    #[serde(default)]
    pub env: Vec<String>,
    /// The command's working directory.
    #[serde(default)]
    pub cwd: String,
    /// The user the command runs as (`-u` / the image's User), unresolved.
    #[serde(default)]
    pub user: Option<String>,
    /// Created (`strata create`): the command waits on this exec fifo until `start`.
    #[serde(default)]
    pub exec_fifo: Option<PathBuf>,
    /// Why the container could not start, if so.
    #[serde(default)]
    pub error: Option<String>,
}

/// A container's status as the state file and the live processes tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set up, its command waiting on the exec fifo for `start`.
    Created,
    /// Its launcher (or monitor) is alive and it has not finished.
    Running,
    /// Finished with this exit code.
    Exited(i32),
    /// Its launcher (or monitor) died before recording an exit code.
    LauncherDied,
}

fn path(dir: &Path) -> PathBuf {
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
    state.exit_code.is_none() && launcher_alive(state)
}

/// Whether the recorded launcher is alive (and the same process, when its start
/// time is known).
pub fn launcher_alive(state: &State) -> bool {
    match state.launcher_start {
        Some(start) => procfs::is_same_process(state.launcher_pid, start),
        None => {
            state.launcher_pid > 0
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.launcher_pid), None)
                    .is_ok()
                && std::fs::read(format!("/proc/{}/cmdline", state.launcher_pid))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a.ends_with(b"strata")))
        }
    }
}

/// The container's status.
pub fn status(state: &State) -> Status {
    match state.exit_code {
        Some(code) => Status::Exited(code),
        None if launcher_alive(state) => {
            if state.exec_fifo.as_deref().is_some_and(Path::exists) {
                Status::Created
            } else {
                Status::Running
            }
        }
        None => Status::LauncherDied,
    }
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
