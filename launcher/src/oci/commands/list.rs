//! `list [--format table|json] [--quiet]`: the containers under the state root.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::oci::state::{StateDir, list_ids};

/// Lists the containers.
pub fn list(root: &Path, format: &str, quiet: bool) -> Result<()> {
    let records: Vec<_> = list_ids(root)
        .iter()
        .filter_map(|id| StateDir::new(root, id).ok()?.load().ok())
        .collect();
    if quiet {
        for r in &records {
            println!("{}", r.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let all: Vec<_> = records.iter().map(|r| r.to_oci()).collect();
            println!(
                "{}",
                serde_json::to_string(&all).context("encoding the list")?
            );
        }
        "table" => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for r in &records {
                let o = r.to_oci();
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                    r.id,
                    o["pid"],
                    r.status().to_string(),
                    r.bundle.display(),
                    r.created,
                    r.owner
                );
            }
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(())
}
