//! cgroup v2 (unified): enable controllers top-down, write `memory.max`, `cpu.max`,
//! `pids.max`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{
    CPU_PERIOD_US, cpu_quota_us, cpu_weight, kill_and_rmdir, needed_controllers, write_file,
};
use crate::runtime::spec::Limits;

/// A container's cgroup in the unified hierarchy.
#[derive(Debug)]
pub struct V2Cgroup {
    /// The cgroup directory.
    pub path: PathBuf,
}

impl V2Cgroup {
    /// Creates `<mount>/<own>/strata/<name>` (or `<mount>/<own>/strata-<name>` when
    /// the launcher's own cgroup has processes and cannot have children with
    /// controllers), enabling the needed controllers in each ancestor from `mount` down.
    pub fn create(mount: &Path, own: &Path, name: &str, limits: &Limits) -> Result<V2Cgroup> {
        Self::create_at(mount, &own.join("strata").join(name), limits)
    }

    /// Creates `<mount>/<rel>` (an OCI `cgroupsPath` resolved by the caller), enabling
    /// the needed controllers in each ancestor from `mount` down.
    pub fn create_at(mount: &Path, rel: &Path, limits: &Limits) -> Result<V2Cgroup> {
        let needed = needed_controllers(limits);
        let full = mount.join(rel);
        let (Some(parent), Some(name)) = (full.parent().map(Path::to_path_buf), full.file_name())
        else {
            bail!("cgroup path {} has no parent", full.display());
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating cgroup {}", parent.display()))?;
        // Enable top-down: every ancestor from the mount root to `parent` must delegate.
        let mut chain = vec![parent.clone()];
        let mut cur = parent.as_path();
        while let Some(p) = cur.parent() {
            if !p.starts_with(mount) || p == cur {
                break;
            }
            chain.push(p.to_path_buf());
            if p == mount {
                break;
            }
            cur = p;
        }
        chain.reverse();
        // The last element is `parent`; enable in every ancestor of the container's dir.
        for dir in &chain {
            enable_controllers(dir, &needed)?;
        }
        let path = parent.join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("creating cgroup {}", path.display()))?;
        let cg = V2Cgroup { path };
        if let Err(e) = cg.apply(limits) {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    /// Writes the limits asked for.
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        if let Some(m) = limits.memory {
            write_file(&self.path.join("memory.max"), &m.to_string())?;
            let swap = self.path.join("memory.swap.max");
            if swap.exists() {
                let beyond = match limits.memory_swap {
                    Some(u64::MAX) => "max".to_string(),
                    Some(t) => t.saturating_sub(m).to_string(),
                    None => "0".to_string(),
                };
                write_file(&swap, &beyond)?;
            }
        }
        if let Some(c) = limits.cpus {
            write_file(
                &self.path.join("cpu.max"),
                &format!("{} {CPU_PERIOD_US}", cpu_quota_us(c)),
            )?;
        }
        if let Some(s) = limits.cpu_shares {
            write_file(&self.path.join("cpu.weight"), &cpu_weight(s).to_string())?;
        }
        if let Some(p) = limits.pids {
            write_file(&self.path.join("pids.max"), &p.to_string())?;
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        write_file(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// Kills leftovers and removes the directory.
    pub fn remove(&self) -> Result<()> {
        let kill = self.path.join("cgroup.kill");
        if kill.exists() {
            let _ = std::fs::write(&kill, "1");
        }
        kill_and_rmdir(&self.path)
    }
}

/// Writes `+c` for each controller into `dir/cgroup.subtree_control`, after checking
/// that `dir/cgroup.controllers` offers it.
pub fn enable_controllers(dir: &Path, controllers: &[&str]) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let avail_path = dir.join("cgroup.controllers");
    let avail = std::fs::read_to_string(&avail_path)
        .with_context(|| format!("reading {}", avail_path.display()))?;
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    for c in controllers {
        if enabled.split_whitespace().any(|e| e == *c) {
            continue;
        }
        if !avail.split_whitespace().any(|a| a == *c) {
            bail!(
                "cgroup controller {c:?} is not available in {} (available: {})",
                dir.display(),
                avail.trim()
            );
        }
        write_file(&control, &format!("+{c}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepared cgroup2-like tree: plain files where the kernel would have control
    /// files. Exercises the top-down enabling and the values written.
    #[test]
    fn prepared_tree() -> Result<()> {
        let t = tempfile::tempdir()?;
        let root = t.path();
        let own = Path::new("user.slice/session");
        for d in [
            root.to_path_buf(),
            root.join("user.slice"),
            root.join(own),
            root.join(own).join("strata"),
        ] {
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("cgroup.controllers"), "cpu memory pids io\n")?;
            std::fs::write(d.join("cgroup.subtree_control"), "")?;
        }
        let limits = Limits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(10),
            cpu_shares: Some(512),
            memory_swap: Some(96 << 20),
        };
        let cg = V2Cgroup::create(root, own, "c1", &limits)?;
        assert_eq!(cg.path, root.join(own).join("strata/c1"));
        assert_eq!(
            std::fs::read_to_string(cg.path.join("memory.max"))?,
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(cg.path.join("cpu.max"))?,
            "50000 100000"
        );
        assert_eq!(std::fs::read_to_string(cg.path.join("pids.max"))?, "10");
        assert_eq!(std::fs::read_to_string(cg.path.join("cpu.weight"))?, "20");
        // Plain files: each write replaced the content; the last controller enabled shows.
        for d in [
            root.to_path_buf(),
            root.join("user.slice"),
            root.join(own),
            root.join(own).join("strata"),
        ] {
            let s = std::fs::read_to_string(d.join("cgroup.subtree_control"))?;
            assert!(s.starts_with('+'), "{}: {s:?}", d.display());
        }
        Ok(())
    }

    #[test]
    fn missing_controller_is_an_error() -> Result<()> {
        let t = tempfile::tempdir()?;
        std::fs::write(t.path().join("cgroup.controllers"), "hugetlb\n")?;
        let err = enable_controllers(t.path(), &["memory"])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("memory")));
        Ok(())
    }
}
