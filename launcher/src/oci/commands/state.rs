//! `state ID`: the runtime-spec state of a container, as JSON on stdout.

use std::path::Path;

use anyhow::{Context, Result};

use crate::oci::state::StateDir;

/// Prints the state of container `id`.
pub fn state(root: &Path, id: &str) -> Result<()> {
    let record = StateDir::new(root, id)?.load()?;
    let text = serde_json::to_string_pretty(&record.to_oci()).context("encoding the state")?;
    println!("{text}");
    Ok(())
}
