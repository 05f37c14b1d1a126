//! A cgroup's resource usage, read from its files, in runc's `events` form (its
//! `types.Stats`: `cpu`, `memory`, `pids`), for `strata-runtime events` and
//! `strata stats`. Each directory of a container's cgroup is looked at, v2
//! (`cpu.stat`, `memory.current`/`max`/`peak`/`events`/`stat`, `pids.*`) or v1 (one
//! directory per hierarchy: `cpuacct.*`, `cpu.stat`, `memory.*`, `pids.*`); a file a
//! directory lacks leaves its numbers zero.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What runc's `events --stats` prints under `data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// CPU time.
    pub cpu: Cpu,
    /// Memory and swap.
    pub memory: Memory,
    /// Processes.
    pub pids: Pids,
}

/// CPU time and throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// Time used, nanoseconds.
    pub usage: CpuUsage,
    /// Quota throttling.
    pub throttling: Throttling,
}

/// CPU time used, nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    /// In all.
    pub total: u64,
    /// Per CPU (v1 `cpuacct.usage_percpu`; empty on v2).
    pub percpu: Vec<u64>,
    /// In kernel mode.
    pub kernel: u64,
    /// In user mode.
    pub user: u64,
}

/// CPU quota throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Time throttled, nanoseconds.
    pub throttled_time: u64,
}

/// Memory use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Page cache (v1 `cache`, v2 `file`).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory and swap (v1 `memsw`), swap (v2).
    pub swap: MemoryEntry,
    /// `memory.stat`, as the kernel names its keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter, bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    /// The limit (`u64::MAX`-ish when none: the kernel's own "no limit").
    pub limit: u64,
    /// In use.
    pub usage: u64,
    /// The most ever in use.
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Process count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pids {
    /// Processes now.
    pub current: u64,
    /// The limit (0: none).
    pub limit: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A cgroup file's single number; `max` is `u64::MAX`.
fn read_u64(p: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    match text.trim() {
        "max" => Some(u64::MAX),
        t => t.parse().ok(),
    }
}

/// A flat-keyed cgroup file (`KEY VALUE` lines).
fn read_keyed(p: &Path) -> Option<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(p).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// Clock ticks per second, the unit of v1 `cpuacct.stat`.
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// Reads the usage of the cgroup directories `paths` (one for v2, one per v1
/// hierarchy).
pub fn read(paths: &[PathBuf]) -> Stats {
    let mut s = Stats::default();
    for dir in paths {
        read_dir(dir, &mut s);
    }
    s
}

fn read_dir(dir: &Path, s: &mut Stats) {
    let at = |f: &str| dir.join(f);
    let u64_at = |f: &str| read_u64(&at(f));
    // cpu: v1 cpuacct, else v2 cpu.stat (usec), which also holds throttling; v1's
    // cpu.stat holds only throttling (nsec).
    if let Some(total) = u64_at("cpuacct.usage") {
        s.cpu.usage.total = total;
        if let Ok(text) = std::fs::read_to_string(at("cpuacct.usage_percpu")) {
            s.cpu.usage.percpu = text
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
        }
        if let Some(k) = read_keyed(&at("cpuacct.stat")) {
            let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000) / clock_ticks();
            s.cpu.usage.user = k.get("user").copied().map(ns).unwrap_or(0);
            s.cpu.usage.kernel = k.get("system").copied().map(ns).unwrap_or(0);
        }
    }
    if let Some(k) = read_keyed(&at("cpu.stat")) {
        let get = |key: &str| k.get(key).copied();
        if let Some(us) = get("usage_usec") {
            s.cpu.usage.total = us.saturating_mul(1000);
            s.cpu.usage.user = get("user_usec").unwrap_or(0).saturating_mul(1000);
            s.cpu.usage.kernel = get("system_usec").unwrap_or(0).saturating_mul(1000);
        }
        if let Some(p) = get("nr_periods") {
            s.cpu.throttling.periods = p;
            s.cpu.throttling.throttled_periods = get("nr_throttled").unwrap_or(0);
            s.cpu.throttling.throttled_time = get("throttled_time")
                .or_else(|| get("throttled_usec").map(|us| us.saturating_mul(1000)))
                .unwrap_or(0);
        }
    }
    // memory: v1
    if let Some(usage) = u64_at("memory.usage_in_bytes") {
        let m = &mut s.memory;
        m.usage = MemoryEntry {
            limit: u64_at("memory.limit_in_bytes").unwrap_or(0),
            usage,
            max: u64_at("memory.max_usage_in_bytes").unwrap_or(0),
            failcnt: u64_at("memory.failcnt").unwrap_or(0),
        };
        if let Some(usage) = u64_at("memory.memsw.usage_in_bytes") {
            m.swap = MemoryEntry {
                limit: u64_at("memory.memsw.limit_in_bytes").unwrap_or(0),
                usage,
                max: u64_at("memory.memsw.max_usage_in_bytes").unwrap_or(0),
                failcnt: u64_at("memory.memsw.failcnt").unwrap_or(0),
            };
        }
        if let Some(raw) = read_keyed(&at("memory.stat")) {
            m.cache = raw.get("cache").copied().unwrap_or(0);
            m.raw = raw;
        }
    }
    // memory: v2
    if let Some(usage) = u64_at("memory.current") {
        let m = &mut s.memory;
        let events = read_keyed(&at("memory.events")).unwrap_or_default();
        m.usage = MemoryEntry {
            limit: u64_at("memory.max").unwrap_or(u64::MAX),
            usage,
            max: u64_at("memory.peak").unwrap_or(0),
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        if let Some(usage) = u64_at("memory.swap.current") {
            let swap_events = read_keyed(&at("memory.swap.events")).unwrap_or_default();
            m.swap = MemoryEntry {
                limit: u64_at("memory.swap.max").unwrap_or(u64::MAX),
                usage,
                max: u64_at("memory.swap.peak").unwrap_or(0),
                failcnt: swap_events.get("max").copied().unwrap_or(0),
            };
        }
        if let Some(raw) = read_keyed(&at("memory.stat")) {
            m.cache = raw.get("file").copied().unwrap_or(0);
            m.raw = raw;
        }
    }
    // pids: both
    if let Some(current) = u64_at("pids.current") {
        s.pids.current = current;
        s.pids.limit = u64_at("pids.max").filter(|l| *l != u64::MAX).unwrap_or(0);
    }
}

/// The OOM count of the memory cgroup among `paths`: v2 `memory.events`'s
/// `oom_kill`, v1 `memory.oom_control`'s `oom_kill` (kernels from 4.13; before, its
/// `under_oom` flag). `None`: no memory controller.
pub fn oom_count(paths: &[PathBuf]) -> Option<u64> {
    paths.iter().find_map(|dir| {
        if let Some(k) = read_keyed(&dir.join("memory.events")) {
            return k.get("oom_kill").copied();
        }
        let k = read_keyed(&dir.join("memory.oom_control"))?;
        k.get("oom_kill").or_else(|| k.get("under_oom")).copied()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    #[test]
    fn reads_v2() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let v2 = d.path();
        write(v2, "memory.current", "4096\n");
        write(v2, "memory.max", "max\n");
        write(
            v2,
            "memory.events",
            "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
        );
        write(v2, "memory.stat", "anon 10\nfile 20\n");
        write(
            v2,
            "cpu.stat",
            "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 3\nnr_throttled 1\nthrottled_usec 4\n",
        );
        write(v2, "pids.current", "3\n");
        write(v2, "pids.max", "max\n");
        let s = read(&[v2.to_path_buf()]);
        assert_eq!(s.cpu.usage.total, 7000);
        assert_eq!(s.cpu.usage.user, 5000);
        assert_eq!(s.cpu.usage.kernel, 2000);
        assert_eq!(s.cpu.throttling.throttled_time, 4000);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.failcnt, 2);
        assert_eq!(s.memory.cache, 20);
        assert_eq!(
            s.pids,
            Pids {
                current: 3,
                limit: 0
            }
        );
        assert_eq!(oom_count(&[v2.to_path_buf()]), Some(1));
    }

    #[test]
    fn reads_v1_hierarchies() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (mem, acct, pids) = (d.path().join("m"), d.path().join("c"), d.path().join("p"));
        for p in [&mem, &acct, &pids] {
            std::fs::create_dir(p).unwrap_or_else(|e| panic!("{e}"));
        }
        write(&mem, "memory.usage_in_bytes", "100");
        write(&mem, "memory.limit_in_bytes", "1048576");
        write(&mem, "memory.max_usage_in_bytes", "200");
        write(&mem, "memory.failcnt", "0");
        write(&mem, "memory.stat", "cache 8\nrss 92\n");
        write(
            &mem,
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(&acct, "cpuacct.usage", "55");
        write(&acct, "cpuacct.usage_percpu", "50 5 \n");
        write(
            &acct,
            "cpu.stat",
            "nr_periods 1\nnr_throttled 0\nthrottled_time 9\n",
        );
        write(&pids, "pids.current", "2");
        write(&pids, "pids.max", "64");
        let paths = [mem, acct, pids];
        let s = read(&paths);
        assert_eq!(s.cpu.usage.total, 55);
        assert_eq!(s.cpu.usage.percpu, vec![50, 5]);
        assert_eq!(s.cpu.throttling.throttled_time, 9);
        assert_eq!(s.memory.usage.limit, 1_048_576);
        assert_eq!(s.memory.usage.max, 200);
        assert_eq!(s.memory.cache, 8);
        assert_eq!(s.memory.raw.get("rss"), Some(&92));
        assert_eq!(
            s.pids,
            Pids {
                current: 2,
                limit: 64
            }
        );
        assert_eq!(oom_count(&paths), Some(2));
        let json = serde_json::to_value(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["memory"]["usage"]["limit"], 1_048_576);
    }
}
