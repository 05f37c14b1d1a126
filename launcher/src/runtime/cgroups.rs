//! cgroups: detect the host's layout (v2 unified, or v1 legacy/hybrid), create one
//! cgroup per container, apply memory / cpu / pids limits, and remove it after exit.

pub mod device_filter;
pub mod devices;
pub mod stats;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::spec::Limits;

/// The period written with a CPU quota (microseconds), as runc/crun use.
pub const CPU_PERIOD_US: u64 = 100_000;

/// A container's cgroup, in whichever hierarchy the host has.
#[derive(Debug)]
pub enum Cgroup {
    /// One directory in the unified hierarchy.
    V2(v2::V2Cgroup),
    /// One directory per v1 controller hierarchy used.
    V1(v1::V1Cgroup),
}

/// CPU quota in microseconds per [`CPU_PERIOD_US`] for `cpus` CPUs.
pub fn cpu_quota_us(cpus: f64) -> u64 {
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000)
}

/// The kernel's range of cgroup v1 `cpu.shares`.
const SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;

/// cgroup v1 `cpu.shares` as the kernel takes them (clamped to its range).
pub fn cpu_shares(shares: u64) -> u64 {
    shares.clamp(*SHARES.start(), *SHARES.end())
}

/// cgroup v2 `cpu.weight` (1..=10000) for v1 `shares`, mapped linearly from one
/// range onto the other as runc and crun do, so 1024 shares are weight 39.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + (cpu_shares(shares) - SHARES.start()) * 9999 / (SHARES.end() - SHARES.start())
}

/// The controllers the container's limits need.
pub fn needed_controllers(limits: &Limits) -> Vec<&'static str> {
    let mut c = Vec::new();
    if limits.memory.is_some() {
        c.push("memory");
    }
    if limits.cpus.is_some() || limits.cpu_shares.is_some() {
        c.push("cpu");
    }
    if limits.pids.is_some() {
        c.push("pids");
    }
    c
}

/// Whether `/sys/fs/cgroup` itself is a cgroup2 mount (a pure v2 host).
fn is_unified_host() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// This process's cgroup path in the v2 hierarchy (`0::/path`).
pub fn own_v2_path() -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("0::") {
            return Ok(PathBuf::from(p.trim_start_matches('/')));
        }
    }
    bail!("/proc/self/cgroup has no cgroup v2 entry")
}

impl Cgroup {
    /// Creates the cgroup `name` for a container and applies `limits`. As root, creates
    /// one even without limits (so the container's processes can be found and killed);
    /// rootless, only when limits are asked, in a delegated v2 subtree, failing with the
    /// reason when that is impossible. Returns `None` when no cgroup is used.
    pub fn create(name: &str, limits: &Limits, rootless: bool) -> Result<Option<Cgroup>> {
        if let Ok(root) = std::env::var("STRATA_CGROUP_V2_ROOT") {
            // Lets tests point the v2 logic at a prepared tree.
            let cg = v2::V2Cgroup::create(Path::new(&root), Path::new(""), name, limits)?;
            return Ok(Some(Cgroup::V2(cg)));
        }
        if rootless && !limits.any() {
            return Ok(None);
        }
        if is_unified_host() {
            let own = own_v2_path()?;
            let cg = v2::V2Cgroup::create(Path::new("/sys/fs/cgroup"), &own, name, limits)
                .map_err(|e| rootless_hint(e, rootless))?;
            return Ok(Some(Cgroup::V2(cg)));
        }
        // Hybrid: use the unified mount only if it has every controller needed.
        let unified = Path::new("/sys/fs/cgroup/unified");
        let needed = needed_controllers(limits);
        if limits.any()
            && let Ok(avail) = std::fs::read_to_string(unified.join("cgroup.controllers"))
            && needed
                .iter()
                .all(|c| avail.split_whitespace().any(|a| a == *c))
        {
            let own = own_v2_path()?;
            let cg = v2::V2Cgroup::create(unified, &own, name, limits)
                .map_err(|e| rootless_hint(e, rootless))?;
            return Ok(Some(Cgroup::V2(cg)));
        }
        if rootless {
            bail!(
                "cannot apply resource limits rootless: this host uses cgroup v1 for {} \
                 and v1 cannot be delegated to an unprivileged user",
                needed.join(", ")
            );
        }
        Ok(Some(Cgroup::V1(v1::V1Cgroup::create(name, limits)?)))
    }

    /// Creates the cgroup at an OCI `cgroupsPath` (as root): an absolute path from the
    /// hierarchy's root, a relative one under this process's own cgroup; v2 where the
    /// host is unified (or its unified mount has every controller the limits need),
    /// else v1. Device rules (OCI `linux.resources.devices`) go to v1's devices
    /// controller, or on a unified host into an eBPF program attached to the cgroup.
    pub fn create_at(
        path: &Path,
        limits: &Limits,
        device_rules: &[devices::DeviceRule],
    ) -> Result<Cgroup> {
        let rel_v2 = |mount: &Path| -> Result<V2Path> {
            let rel = match path.strip_prefix("/") {
                Ok(abs) => abs.to_path_buf(),
                Err(_) => own_v2_path()?.join(path),
            };
            Ok(V2Path(mount.to_path_buf(), rel))
        };
        if is_unified_host() {
            let V2Path(m, rel) = rel_v2(Path::new("/sys/fs/cgroup"))?;
            let cg = v2::V2Cgroup::create_at(&m, &rel, limits)?;
            if !device_rules.is_empty()
                && let Err(e) = device_filter::apply_v2(&cg.path, device_rules)
            {
                let _ = cg.remove();
                return Err(e);
            }
            return Ok(Cgroup::V2(cg));
        }
        let unified = Path::new("/sys/fs/cgroup/unified");
        let needed = needed_controllers(limits);
        if limits.any()
            && device_rules.is_empty()
            && let Ok(avail) = std::fs::read_to_string(unified.join("cgroup.controllers"))
            && needed
                .iter()
                .all(|c| avail.split_whitespace().any(|a| a == *c))
        {
            let V2Path(m, rel) = rel_v2(unified)?;
            return Ok(Cgroup::V2(v2::V2Cgroup::create_at(&m, &rel, limits)?));
        }
        Ok(Cgroup::V1(v1::V1Cgroup::create_at(
            path,
            limits,
            device_rules,
        )?))
    }

    /// The cgroup whose directories are `paths` (as [`Cgroup::paths`] listed them):
    /// v2 when one holds `cgroup.controllers`, else v1 with each directory's
    /// controller told by its control files. `None` for no directory.
    pub fn from_paths(paths: &[PathBuf]) -> Option<Cgroup> {
        if let Some(p) = paths.iter().find(|p| p.join("cgroup.controllers").exists()) {
            return Some(Cgroup::V2(v2::V2Cgroup { path: p.clone() }));
        }
        let mut v1 = v1::V1Cgroup { paths: Vec::new() };
        for p in paths {
            for (ctrl, file) in [
                ("memory", "memory.limit_in_bytes"),
                ("cpu", "cpu.cfs_quota_us"),
                ("cpuacct", "cpuacct.usage"),
                ("pids", "pids.max"),
                ("freezer", "freezer.state"),
                ("devices", "devices.list"),
            ] {
                if p.join(file).exists() {
                    v1.paths.push((ctrl.to_string(), p.clone()));
                }
            }
        }
        (!v1.paths.is_empty()).then_some(Cgroup::V1(v1))
    }

    /// Writes `limits` (those set) into the cgroup.
    pub fn update(&self, limits: &Limits) -> Result<()> {
        match self {
            Cgroup::V2(c) => c.apply(limits),
            Cgroup::V1(c) => c.apply(limits),
        }
    }

    /// Moves process `pid` into the cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        match self {
            Cgroup::V2(c) => c.add(pid),
            Cgroup::V1(c) => c.add(pid),
        }
    }

    /// Kills whatever is left inside and removes the cgroup directories.
    pub fn remove(&self) -> Result<()> {
        match self {
            Cgroup::V2(c) => c.remove(),
            Cgroup::V1(c) => c.remove(),
        }
    }

    /// The cgroup's directories (one for v2, one per controller for v1).
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V2(c) => vec![c.path.clone()],
            Cgroup::V1(c) => c.paths.iter().map(|(_, p)| p.clone()).collect(),
        }
    }
}

fn rootless_hint(e: anyhow::Error, rootless: bool) -> anyhow::Error {
    if rootless {
        e.context(
            "cannot apply resource limits rootless: no writable delegated cgroup v2 subtree \
             (run under a systemd user session with delegation, or as root)",
        )
    } else {
        e
    }
}

/// A v2 mount point and a cgroup's path relative to it.
struct V2Path(PathBuf, PathBuf);

/// Writes `value` to a cgroup control file, naming the file on error.
pub fn write_file(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

/// Removes a cgroup directory: kills its processes, then retries rmdir while it empties.
pub fn kill_and_rmdir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for attempt in 0..200 {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 199 => {
                return Err(e).with_context(|| format!("removing cgroup {}", dir.display()));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    Ok(())
}

/// Freezes (or thaws) the cgroup among `paths` that can be: a v2 directory
/// (`cgroup.freeze`) or a v1 freezer one (`freezer.state`); waits until the kernel
/// says it is done. Fails when none of `paths` can be frozen.
pub fn freeze(paths: &[PathBuf], frozen: bool) -> Result<()> {
    for p in paths {
        let v2 = p.join("cgroup.freeze");
        if v2.exists() {
            write_file(&v2, if frozen { "1" } else { "0" })?;
            return wait_frozen(paths, frozen);
        }
        let v1 = p.join("freezer.state");
        if v1.exists() {
            write_file(&v1, if frozen { "FROZEN" } else { "THAWED" })?;
            return wait_frozen(paths, frozen);
        }
    }
    bail!("the container has no cgroup that can be frozen (no freezer)")
}

/// Whether the cgroup among `paths` that can be frozen is frozen (v2 `cgroup.events`
/// `frozen 1`, v1 `freezer.state` `FROZEN`).
pub fn is_frozen(paths: &[PathBuf]) -> bool {
    paths.iter().any(|p| {
        std::fs::read_to_string(p.join("cgroup.events"))
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "frozen 1"))
            || std::fs::read_to_string(p.join("freezer.state")).is_ok_and(|t| t.trim() == "FROZEN")
    })
}

fn wait_frozen(paths: &[PathBuf], frozen: bool) -> Result<()> {
    for _ in 0..500 {
        if is_frozen(paths) == frozen {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    bail!(
        "the container's cgroup did not get {} within 5 s",
        if frozen { "frozen" } else { "thawed" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_onto_the_v2_weight_range_as_runc_maps_them() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(512), 20);
        assert_eq!(cpu_weight(262_144), 10_000);
        // Out of the kernel's range: clamped, as the v1 file clamps them.
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_weight(1 << 30), 10_000);
    }
}
