//! A detached or created container's `strata run` flags, kept in
//! `containers/<id>/runtime/run.json` so its monitor, `start` and `restart` rebuild the
//! same container.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::run_spec::RunArgs;

fn path(dir: &Path) -> PathBuf {
    dir.join("runtime").join("run.json")
}

/// Keeps `args` with the container at `dir`.
pub fn save(dir: &Path, args: &RunArgs) -> Result<()> {
    let p = path(dir);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(args).context("encoding the run flags")?;
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// The flags kept with the container at `dir`.
pub fn load(dir: &Path) -> Result<RunArgs> {
    let p = path(dir);
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {} (only containers made by `run -d` or `create` can be started)",
            p.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}
