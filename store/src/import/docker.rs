//! Reads an unpacked docker-archive (`docker save` / `podman save`) into
//! [`ImageSource`]s.

use std::path::Path;

use serde::Deserialize;

use super::register::{ImageSource, LayerSource};
use super::unpack::safe_file;
use crate::digest::is_hex64;
use crate::error::{IoContext, StoreError};

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The digest a docker-archive file name promises (`<hex>.json`, `blobs/sha256/<hex>`).
fn digest_from_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    (is_hex64(hex) && (name.ends_with(".json") || name.contains("sha256/")))
        .then(|| format!("sha256:{hex}"))
}

/// Reads `manifest.json` of the unpacked archive at `root`.
pub fn read_docker(root: &Path) -> Result<Vec<ImageSource>, StoreError> {
    let mpath = root.join("manifest.json");
    let data = std::fs::read(&mpath).ctx("read", &mpath)?;
    let entries: Vec<Entry> = serde_json::from_slice(&data)
        .map_err(|e| StoreError::bad(&mpath, format!("bad docker-archive manifest: {e}")))?;
    if entries.is_empty() {
        return Err(StoreError::bad(&mpath, "manifest lists no images"));
    }
    let mut out = Vec::new();
    for e in entries {
        let config_path = safe_file(root, &e.config, &mpath)?;
        let config = std::fs::read(&config_path).ctx("read", &config_path)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            layers.push(LayerSource {
                path: Some(safe_file(root, l, &mpath)?),
                expected_digest: l.contains("sha256/").then(|| digest_from_name(l)).flatten(),
            });
        }
        out.push(ImageSource {
            config,
            config_path,
            expected_config_digest: digest_from_name(&e.config),
            layers,
            tags: e.repo_tags.unwrap_or_default(),
            manifest: None,
        });
    }
    Ok(out)
}
