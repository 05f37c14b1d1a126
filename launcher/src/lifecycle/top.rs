//! `strata top`: the processes of a running container, found by its pid namespace
//! (`/proc/PID/ns/pid` the same as its PID 1's), so rootless containers without a
//! cgroup are listed too.

use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result};

/// One process of the container, as the host sees it.
#[derive(Debug, Clone)]
pub struct Process {
    /// Host pid.
    pub pid: i32,
    /// Real uid (host).
    pub uid: u32,
    /// Command line (the name in brackets when it has none).
    pub command: String,
}

/// The processes in the pid namespace of `init`, ordered by pid.
pub fn processes(init: i32) -> Result<Vec<Process>> {
    let ns_path = format!("/proc/{init}/ns/pid");
    let ns = std::fs::metadata(&ns_path).with_context(|| format!("reading {ns_path}"))?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir("/proc").context("reading /proc")?;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(md) = std::fs::metadata(format!("/proc/{pid}/ns/pid")) else {
            continue;
        };
        if md.ino() != ns.ino() || md.dev() != ns.dev() {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX);
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let command = if args.is_empty() {
            format!("[{name}]")
        } else {
            args.join(" ")
        };
        out.push(Process { pid, uid, command });
    }
    out.sort_by_key(|p| p.pid);
    Ok(out)
}
