//! cgroup v1 (legacy or hybrid hosts): one directory per controller hierarchy
//! (`memory`, `cpu`, `pids`), under the launcher's own cgroup in each.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::devices::{self, DeviceRule};
use super::{CPU_PERIOD_US, cpu_quota_us, cpu_shares, kill_and_rmdir, write_file};
use crate::runtime::spec::Limits;

/// A container's cgroups in the v1 hierarchies.
#[derive(Debug)]
pub struct V1Cgroup {
    /// `(controller, directory)` for each hierarchy used.
    pub paths: Vec<(String, PathBuf)>,
}

/// Mount point of the v1 hierarchy holding `controller`, from /proc/self/mountinfo.
fn mount_of(controller: &str) -> Option<PathBuf> {
    store::mountinfo::mounts()
        .into_iter()
        .find(|m| m.fs_type == "cgroup" && m.super_options.split(',').any(|o| o == controller))
        .map(|m| m.mount_point)
}

/// This process's path in the v1 hierarchy holding `controller`.
fn own_path(controller: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            return Ok(PathBuf::from(path.trim_start_matches('/')));
        }
    }
    bail!("/proc/self/cgroup has no entry for v1 controller {controller}")
}

impl V1Cgroup {
    /// Creates `<mount>/<own>/strata/<name>` in the memory, cpu, cpuacct (for `stats`)
    /// and pids hierarchies (those present) and applies the limits; a limit whose
    /// controller is missing fails.
    pub fn create(name: &str, limits: &Limits) -> Result<V1Cgroup> {
        Self::create_with(limits, &["memory", "cpu", "cpuacct", "pids"], |ctrl| {
            Ok(own_path(ctrl)?.join("strata").join(name))
        })
    }

    /// Creates the cgroup at `path` in each hierarchy: an absolute path from the
    /// hierarchy's root, a relative one under this process's own cgroup (OCI
    /// `cgroupsPath`), with `device_rules` in the devices hierarchy when there are any,
    /// and in the freezer hierarchy when mounted.
    pub fn create_at(
        path: &Path,
        limits: &Limits,
        device_rules: &[DeviceRule],
    ) -> Result<V1Cgroup> {
        // The freezer (where mounted) lets `pause` freeze the container; cpuacct
        // (a hierarchy of its own on some hosts) gives `events` its CPU time.
        let mut ctrls = vec!["memory", "cpu", "cpuacct", "pids", "freezer"];
        if !device_rules.is_empty() {
            ctrls.push("devices");
        }
        let cg = Self::create_with(limits, &ctrls, |ctrl| match path.strip_prefix("/") {
            Ok(abs) => Ok(abs.to_path_buf()),
            Err(_) => Ok(own_path(ctrl)?.join(path)),
        })?;
        if !device_rules.is_empty() {
            let applied = match cg.dir("devices") {
                Some(d) => devices::apply_v1(d, device_rules),
                None => Err(anyhow::anyhow!(
                    "linux.resources.devices: the cgroup v1 devices controller is not mounted"
                )),
            };
            if let Err(e) = applied {
                let _ = cg.remove();
                return Err(e);
            }
        }
        Ok(cg)
    }

    fn create_with(
        limits: &Limits,
        ctrls: &[&str],
        rel: impl Fn(&str) -> Result<PathBuf>,
    ) -> Result<V1Cgroup> {
        let mut cg = V1Cgroup { paths: Vec::new() };
        for ctrl in ctrls.iter().copied() {
            let Some(mount) = mount_of(ctrl) else {
                let wanted = match ctrl {
                    "memory" => limits.memory.is_some(),
                    "cpu" => limits.cpus.is_some() || limits.cpu_shares.is_some(),
                    "pids" => limits.pids.is_some(),
                    "devices" => true,
                    _ => false,
                };
                if wanted {
                    let _ = cg.remove();
                    bail!("cgroup v1 controller {ctrl:?} is not mounted on this host");
                }
                continue;
            };
            let dir = mount.join(rel(ctrl)?);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                let _ = cg.remove();
                return Err(e).with_context(|| format!("creating cgroup {}", dir.display()));
            }
            cg.paths.push((ctrl.to_string(), dir));
        }
        if let Err(e) = cg.apply(limits) {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.paths
            .iter()
            .find(|(c, _)| c == ctrl)
            .map(|(_, p)| p.as_path())
    }

    /// Writes the limits asked for into the hierarchies that hold them.
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        if let (Some(m), Some(d)) = (limits.memory, self.dir("memory")) {
            write_file(&d.join("memory.limit_in_bytes"), &m.to_string())?;
            let memsw = d.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                let total = match limits.memory_swap {
                    Some(u64::MAX) => "-1".to_string(),
                    Some(t) => t.to_string(),
                    None => m.to_string(),
                };
                write_file(&memsw, &total)?;
            }
        }
        if let (Some(c), Some(d)) = (limits.cpus, self.dir("cpu")) {
            write_file(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            write_file(&d.join("cpu.cfs_quota_us"), &cpu_quota_us(c).to_string())?;
        }
        if let (Some(s), Some(d)) = (limits.cpu_shares, self.dir("cpu")) {
            write_file(&d.join("cpu.shares"), &cpu_shares(s).to_string())?;
        }
        if let (Some(p), Some(d)) = (limits.pids, self.dir("pids")) {
            write_file(&d.join("pids.max"), &p.to_string())?;
        }
        Ok(())
    }

    /// Moves `pid` into every hierarchy's cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        for (_, d) in &self.paths {
            write_file(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Kills leftovers and removes every directory (reporting the first failure).
    pub fn remove(&self) -> Result<()> {
        let mut first = Ok(());
        for (_, d) in &self.paths {
            if let Err(e) = kill_and_rmdir(d)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}
