//! `ps [--format table|json] ID`: the processes in the container's cgroup.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::oci::state::StateDir;

/// The pids listed in the container's cgroup (the first directory that has any).
pub fn cgroup_pids(paths: &[PathBuf]) -> Vec<i32> {
    for p in paths {
        if let Ok(text) = std::fs::read_to_string(p.join("cgroup.procs")) {
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if !pids.is_empty() {
                return pids;
            }
        }
    }
    Vec::new()
}

/// Prints the processes of container `id`.
pub fn ps(root: &Path, id: &str, format: &str) -> Result<()> {
    let record = StateDir::new(root, id)?.load()?;
    let pids = cgroup_pids(&record.cgroup_paths);
    match format {
        "json" => println!("{}", serde_json::to_string(&pids).context("encoding pids")?),
        "table" => {
            println!("{:<10} CMD", "PID");
            for pid in pids {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| {
                        String::from_utf8_lossy(&c)
                            .replace('\0', " ")
                            .trim()
                            .to_string()
                    })
                    .unwrap_or_default();
                println!("{pid:<10} {cmd}");
            }
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(())
}
