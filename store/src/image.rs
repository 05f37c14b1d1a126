//! Images in the store: the record kept per image (`images/<id>.json`), the run
//! configuration the launcher needs, and the tag index (`tags.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// One layer of an image as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// `sha256:` digest of the blob as imported (possibly compressed).
    pub blob_digest: String,
    /// OCI media type of the blob (tar, tar+gzip or tar+zstd).
    pub media_type: String,
    /// Size of the blob in bytes.
    pub blob_size: u64,
    /// `sha256:` digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// chainID of the stack up to and including this layer; names `layers/<hex>`.
    pub chain_id: String,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
}

/// What the store keeps per image in `images/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Hex of the config digest.
    pub id: String,
    /// `sha256:` digest of the config blob (`blobs/sha256/<id>`).
    pub config_digest: String,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Unix time of import.
    pub created: u64,
    /// `sha256:` digest of the manifest as a registry served it (`blobs/sha256/<hex>`),
    /// for pulled images: pushing it again sends the same bytes, so digests match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
}

/// How to run a container of the image: the `config` part of the OCI image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRunConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` as `KEY=VALUE`.
    pub env: Vec<String>,
    /// `WorkingDir`, if set and non-empty.
    pub working_dir: Option<String>,
    /// `User`, if set and non-empty.
    pub user: Option<String>,
}

impl ImageRunConfig {
    /// Reads the run config from an OCI/docker image config JSON.
    pub fn from_config_json(config: &Value) -> ImageRunConfig {
        let c = config.get("config").unwrap_or(&Value::Null);
        let strings = |key: &str| -> Vec<String> {
            c.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let opt = |key: &str| -> Option<String> {
            c.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        ImageRunConfig {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env"),
            working_dir: opt("WorkingDir"),
            user: opt("User"),
        }
    }
}

/// An image resolved from the store, as the launcher and the CLI use it.
#[derive(Debug, Clone)]
pub struct Image {
    /// Hex of the config digest (what `strata image ls` shows).
    pub id: String,
    /// `NAME:TAG`s pointing at it.
    pub tags: Vec<String>,
    /// How to run it.
    pub config: ImageRunConfig,
    /// `sha256:` digest of the config blob.
    pub config_digest: String,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Unix time of import.
    pub created: u64,
    /// `sha256:` digest of the manifest it was pulled with, if it was pulled.
    pub manifest_digest: Option<String>,
    /// The full image config JSON.
    pub raw_config: Value,
}

impl Image {
    /// Sum of the uncompressed layer sizes.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// `NAME:TAG` → image id, stored in `tags.json`.
pub type TagIndex = BTreeMap<String, String>;

/// Checks that `config` is an image config whose `rootfs.diff_ids` are `sha256:` digests,
/// and returns them.
pub fn config_diff_ids(config: &Value, what: &std::path::Path) -> Result<Vec<String>, StoreError> {
    let ids = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .ok_or_else(|| StoreError::bad(what, "image config has no rootfs.diff_ids"))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let s = id
            .as_str()
            .filter(|s| crate::digest::digest_hex(s).is_some())
            .ok_or_else(|| {
                StoreError::bad(
                    what,
                    format!("rootfs.diff_ids entry {id} is not a sha256 digest"),
                )
            })?;
        out.push(s.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_config_from_json() {
        let v = serde_json::json!({"config": {"Entrypoint": ["/bin/sh"], "Cmd": null,
            "Env": ["PATH=/bin"], "WorkingDir": "", "User": "1000"}});
        let c = ImageRunConfig::from_config_json(&v);
        assert_eq!(c.entrypoint, vec!["/bin/sh"]);
        assert!(c.cmd.is_empty());
        assert_eq!(c.working_dir, None);
        assert_eq!(c.user.as_deref(), Some("1000"));
    }

    #[test]
    fn diff_ids_checked() {
        let p = std::path::Path::new("cfg");
        let ok = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "a".repeat(64))]}});
        assert_eq!(config_diff_ids(&ok, p).map(|v| v.len()).ok(), Some(1));
        let bad = serde_json::json!({"rootfs": {"diff_ids": ["md5:x"]}});
        assert!(config_diff_ids(&bad, p).is_err());
    }
}
