//! `strata stats --no-stream`: a container's memory, CPU time and process count from
//! its cgroup, v2 (`memory.current`, `memory.max`, `cpu.stat`, `pids.current`) or v1
//! (`memory.usage_in_bytes`, `memory.limit_in_bytes`, `cpuacct.usage`,
//! `pids.current`, one directory per hierarchy).

use std::path::{Path, PathBuf};

/// What the cgroup files say (None: not available in this cgroup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use, bytes.
    pub memory: Option<u64>,
    /// Memory limit, bytes (None: unlimited).
    pub memory_limit: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Processes.
    pub pids: Option<u64>,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Reads the stats of the cgroup directories `paths`.
pub fn read(paths: &[PathBuf]) -> Stats {
    let mut s = Stats::default();
    for dir in paths {
        // v2
        s.memory = s.memory.or_else(|| read_u64(&dir.join("memory.current")));
        s.memory_limit = s.memory_limit.or_else(|| read_u64(&dir.join("memory.max")));
        s.cpu_ns = s.cpu_ns.or_else(|| {
            let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|us| us.saturating_mul(1000))
        });
        // v1
        s.memory = s
            .memory
            .or_else(|| read_u64(&dir.join("memory.usage_in_bytes")));
        s.memory_limit = s.memory_limit.or_else(|| {
            // v1 says "no limit" with a huge page-rounded number.
            read_u64(&dir.join("memory.limit_in_bytes")).filter(|v| *v < (1 << 62))
        });
        s.cpu_ns = s.cpu_ns.or_else(|| read_u64(&dir.join("cpuacct.usage")));
        // both
        s.pids = s.pids.or_else(|| read_u64(&dir.join("pids.current")));
    }
    s
}

/// `bytes` as `ps`/`stats` show sizes (`12.5MiB`).
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v2_and_v1_files() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let v2 = d.path().join("v2");
        std::fs::create_dir(&v2).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(v2.join("memory.current"), "4096\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(v2.join("memory.max"), "max\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(v2.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(v2.join("pids.current"), "3\n").unwrap_or_else(|e| panic!("{e}"));
        let s = read(std::slice::from_ref(&v2));
        assert_eq!(
            s,
            Stats {
                memory: Some(4096),
                memory_limit: None,
                cpu_ns: Some(7000),
                pids: Some(3)
            }
        );
        let mem = d.path().join("memory");
        let acct = d.path().join("cpuacct");
        for p in [&mem, &acct] {
            std::fs::create_dir(p).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(mem.join("memory.usage_in_bytes"), "100").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(mem.join("memory.limit_in_bytes"), "9223372036854771712")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(acct.join("cpuacct.usage"), "55").unwrap_or_else(|e| panic!("{e}"));
        let s = read(&[mem, acct]);
        assert_eq!(s.memory, Some(100));
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.cpu_ns, Some(55));
        assert_eq!(human(1536), "1.5KiB");
    }
}
