//! What the store knows of registries, kept as docker keeps it
//! (`image/overlay2/distribution`), so no layer is downloaded or uploaded twice:
//! * `distribution/diffid-by-digest/sha256/<blob hex>` — the diffID of a layer blob the
//!   store has seen in a registry (compressed digest → uncompressed digest);
//! * `distribution/v2metadata-by-diffid/sha256/<diffID hex>` — JSON list of the blobs a
//!   layer is known as, and in which repository (`registry/name`) each was seen.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::digest_hex;
use crate::error::StoreError;
use crate::{Store, fsutil};

/// One place a layer is known to be in a registry (docker's `V2Metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSighting {
    /// `sha256:` digest of the blob as the registry holds it (compressed).
    #[serde(rename = "Digest")]
    pub digest: String,
    /// `registry/name` of the repository it was pulled from or pushed to.
    #[serde(rename = "SourceRepository")]
    pub source_repository: String,
    /// Unused (docker's HMAC of the credentials); kept empty for compatibility.
    #[serde(rename = "HMAC", default)]
    pub hmac: String,
}

impl Store {
    fn distribution_path(&self, kind: &str, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = digest_hex(digest).ok_or_else(|| StoreError::InvalidReference {
            reference: digest.to_string(),
            reason: "not a sha256 digest".into(),
        })?;
        Ok(self
            .root()
            .join("distribution")
            .join(kind)
            .join("sha256")
            .join(hex))
    }

    /// The diffID of layer blob `digest`, if the store has seen the blob in a registry.
    pub fn diff_id_of_blob(&self, digest: &str) -> Option<String> {
        let path = self.distribution_path("diffid-by-digest", digest).ok()?;
        let s = std::fs::read_to_string(path).ok()?;
        let s = s.trim();
        digest_hex(s).is_some().then(|| s.to_string())
    }

    /// Where the layer with `diff_id` is known to be in registries.
    pub fn blob_sightings(&self, diff_id: &str) -> Vec<BlobSighting> {
        self.distribution_path("v2metadata-by-diffid", diff_id)
            .ok()
            .and_then(|p| fsutil::read_json(&p).ok())
            .unwrap_or_default()
    }

    /// Records that the layer `diff_id` is blob `digest` in `repository`
    /// (`registry/name`). Idempotent; the caller holds the store lock.
    pub fn record_blob(
        &self,
        digest: &str,
        diff_id: &str,
        repository: &str,
    ) -> Result<(), StoreError> {
        let by_digest = self.distribution_path("diffid-by-digest", digest)?;
        let by_diff = self.distribution_path("v2metadata-by-diffid", diff_id)?;
        for p in [&by_digest, &by_diff] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create dir", dir, e))?;
            }
        }
        if self.diff_id_of_blob(digest).as_deref() != Some(diff_id) {
            fsutil::write_atomic(&by_digest, diff_id.as_bytes())?;
        }
        let mut seen = self.blob_sightings(diff_id);
        let sighting = BlobSighting {
            digest: digest.to_string(),
            source_repository: repository.to_string(),
            hmac: String::new(),
        };
        if !seen.contains(&sighting) {
            seen.push(sighting);
            fsutil::write_json(&by_diff, &seen)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_both_ways() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = Store::open(Some(tmp.path().to_path_buf())).unwrap_or_else(|e| panic!("{e}"));
        let blob = format!("sha256:{}", "a".repeat(64));
        let diff = format!("sha256:{}", "b".repeat(64));
        assert_eq!(s.diff_id_of_blob(&blob), None);
        for repo in ["r:5000/x", "r:5000/y", "r:5000/x"] {
            s.record_blob(&blob, &diff, repo)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(s.diff_id_of_blob(&blob), Some(diff.clone()));
        let seen = s.blob_sightings(&diff);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].source_repository, "r:5000/x");
        assert!(s.record_blob("md5:x", &diff, "r/x").is_err());
    }
}
