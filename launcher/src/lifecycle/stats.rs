//! `strata stats --no-stream`: a container's memory, CPU time and process count from
//! its cgroup, v2 or v1, as `runtime::cgroups::stats` reads them (the reader
//! `strata-runtime events` shares).

use std::path::PathBuf;

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

/// Reads the stats of the cgroup directories `paths` (the shared reader,
/// `runtime::cgroups::stats`, with what it found zero taken as not available).
pub fn read(paths: &[PathBuf]) -> Stats {
    let full = crate::runtime::cgroups::stats::read(paths);
    let usage = &full.memory.usage;
    let has_memory = usage.limit != 0 || usage.usage != 0;
    Stats {
        memory: has_memory.then_some(usage.usage),
        // v1 says "no limit" with a huge page-rounded number, v2 with `max`.
        memory_limit: Some(usage.limit).filter(|v| has_memory && *v < (1 << 62)),
        cpu_ns: Some(full.cpu.usage.total).filter(|v| *v != 0),
        pids: Some(full.pids.current).filter(|v| *v != 0),
    }
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
