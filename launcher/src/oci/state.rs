//! A container's state directory, `<root>/<id>/`: `state.json` (written atomically,
//! kept after the runtime exits), `exec.fifo` until started, and `lock`, an flock
//! every command that reads-then-writes holds. The status is derived: a recorded
//! pid that is gone (or reused: its start time differs) means `stopped`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// A container's status, as runtime-spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up, waiting on its exec fifo.
    Created,
    /// Started, its process alive.
    Running,
    /// Its process is gone.
    Stopped,
    /// Frozen by `pause` (derived from the cgroup, never recorded).
    Paused,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        })
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The runtime-spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// The container's id.
    pub id: String,
    /// The status last recorded (`created` or `running`); see [`Record::status`].
    pub status: Status,
    /// The init's pid in the runtime's pid namespace.
    pub pid: i32,
    /// The init's start time (`/proc/PID/stat` field 22), against pid reuse.
    pub start_time: u64,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The rootfs directory.
    pub rootfs: PathBuf,
    /// config.json's annotations.
    pub annotations: HashMap<String, String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Who created it (user name or uid).
    pub owner: String,
    /// The cgroup directories (one for v2, one per v1 hierarchy).
    pub cgroup_paths: Vec<PathBuf>,
    /// The poststart and poststop hooks.
    #[serde(default)]
    pub hooks: crate::oci::hooks::Hooks,
}

impl Record {
    /// The status now: the recorded one while the init lives (`paused` while its
    /// cgroup is frozen), else `stopped`.
    pub fn status(&self) -> Status {
        if !self.alive() {
            Status::Stopped
        } else if self.status == Status::Running
            && crate::runtime::cgroups::is_frozen(&self.cgroup_paths)
        {
            Status::Paused
        } else {
            self.status
        }
    }

    /// Whether the recorded init still runs (not a zombie, same start time).
    pub fn alive(&self) -> bool {
        crate::runtime::procfs::is_same_process(self.pid, self.start_time)
    }

    /// The runtime-spec state object (`ociVersion`, `id`, `status`, `pid`, `bundle`,
    /// `annotations`) with runc's extras (`rootfs`, `created`, `owner`); pid 0 once
    /// stopped.
    pub fn to_oci(&self) -> serde_json::Value {
        let status = self.status();
        serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status.to_string(),
            "pid": if status == Status::Stopped { 0 } else { self.pid },
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}

/// Checks a container id: non-empty, letters, digits and `_+-.`, not `.` or `..`.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits and _+-.");
    }
    Ok(())
}

/// A container's state directory under the state root.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// `<root>/<id>`.
    pub dir: PathBuf,
}

/// The state directory's lock, held until dropped.
pub struct Lock {
    /// The locked lock file (unlocked when dropped).
    _held: Flock<File>,
}

impl StateDir {
    /// The state directory of `id` under `root` (not created).
    pub fn new(root: &Path, id: &str) -> Result<StateDir> {
        check_id(id)?;
        Ok(StateDir { dir: root.join(id) })
    }

    /// Claims the id: makes the directory (failing if the container exists) and
    /// locks it.
    pub fn claim(&self) -> Result<Lock> {
        if let Some(root) = self.dir.parent() {
            std::fs::create_dir_all(root)
                .with_context(|| format!("creating the state root {}", root.display()))?;
        }
        match std::fs::create_dir(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {} already exists", self.id())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", self.dir.display()));
            }
        }
        self.lock()
    }

    /// Locks the directory of an existing container (blocking while another command
    /// holds it).
    pub fn lock(&self) -> Result<Lock> {
        let path = self.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.missing(e))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(|held| Lock { _held: held })
            .map_err(|(_, e)| e)
            .with_context(|| format!("locking {}", path.display()))
    }

    fn missing(&self, e: std::io::Error) -> anyhow::Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("container {} does not exist", self.id())
        } else {
            anyhow::Error::from(e).context(format!("opening {}", self.dir.display()))
        }
    }

    /// The container's id (the directory's name).
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The exec fifo's path.
    pub fn exec_fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Reads `state.json`.
    pub fn load(&self) -> Result<Record> {
        let p = self.dir.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| self.missing(e))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }

    /// Writes `state.json` atomically (a temporary file renamed over it).
    pub fn save(&self, record: &Record) -> Result<()> {
        let p = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string(record).context("encoding the state")?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming into {}", p.display()))
    }

    /// Removes the directory and all it holds.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Every container id under `root` (sorted), for `list`.
pub fn list_ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_start_time_is_read_and_a_dead_pid_is_stopped() {
        let me = std::process::id() as i32;
        let start = crate::runtime::procfs::start_time(me);
        assert!(start.is_some());
        let mut r = Record {
            oci_version: "1.0.0".into(),
            id: "x".into(),
            status: Status::Running,
            pid: me,
            start_time: start.unwrap_or_default(),
            bundle: PathBuf::new(),
            rootfs: PathBuf::new(),
            annotations: HashMap::new(),
            created: String::new(),
            owner: String::new(),
            cgroup_paths: Vec::new(),
            hooks: Default::default(),
        };
        assert_eq!(r.status(), Status::Running);
        r.start_time += 1;
        assert_eq!(r.status(), Status::Stopped);
        assert_eq!(r.to_oci()["pid"], 0);
    }

    #[test]
    fn claim_is_exclusive_and_state_round_trips() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = StateDir::new(d.path(), "c1").unwrap_or_else(|e| panic!("{e}"));
        let lock = s.claim();
        assert!(lock.is_ok());
        assert!(s.claim().is_err());
        assert!(s.load().is_err());
        drop(lock);
        s.remove().unwrap_or_else(|e| panic!("{e}"));
        assert!(s.load().is_err());
    }
}
