//! Reads an OCI image layout directory into an [`ImageSource`].

use std::path::Path;

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};

use super::register::{ImageSource, LayerSource};
use super::unpack::safe_file;
use crate::digest::digest_hex;
use crate::error::{IoContext, StoreError};
use crate::reference;

fn blob(root: &Path, digest: &str, what: &Path) -> Result<std::path::PathBuf, StoreError> {
    let hex = digest_hex(digest)
        .ok_or_else(|| StoreError::bad(what, format!("unsupported digest {digest:?}")))?;
    safe_file(root, &format!("blobs/sha256/{hex}"), what)
}

fn verified(root: &Path, digest: &str, what: &Path) -> Result<Vec<u8>, StoreError> {
    let p = blob(root, digest, what)?;
    let data = std::fs::read(&p).ctx("read", &p)?;
    let actual = crate::digest::sha256_digest(&data);
    if actual != digest {
        return Err(StoreError::DigestMismatch {
            what: p.display().to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(data)
}

/// Reads the layout at `root`: the (first, or only) image manifest of `index.json`,
/// following nested indexes to the linux/amd64 (or first) entry.
pub fn read_layout(root: &Path) -> Result<ImageSource, StoreError> {
    let index_path = root.join("index.json");
    let data = std::fs::read(&index_path).ctx("read", &index_path)?;
    let mut index = ImageIndex::from_reader(&data[..])
        .map_err(|e| StoreError::bad(&index_path, format!("bad OCI index: {e}")))?;
    let mut tags = Vec::new();
    loop {
        let desc = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_none_or(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
                })
            })
            .or_else(|| index.manifests().first())
            .cloned()
            .ok_or_else(|| StoreError::bad(&index_path, "index lists no manifests"))?;
        if let Some(ann) = desc.annotations() {
            let name = ann
                .get("io.containerd.image.name")
                .or_else(|| ann.get("org.opencontainers.image.ref.name"));
            if let Some(n) = name.filter(|n| n.contains(':') || n.contains('/')) {
                if let Ok(t) = reference::normalize(n) {
                    tags.push(t);
                }
            }
        }
        let digest = desc.digest().to_string();
        let bytes = verified(root, &digest, &index_path)?;
        if *desc.media_type() == MediaType::ImageIndex {
            index = ImageIndex::from_reader(&bytes[..]).map_err(|e| {
                StoreError::bad(&index_path, format!("bad nested index {digest}: {e}"))
            })?;
            continue;
        }
        let mpath = blob(root, &digest, &index_path)?;
        let manifest = ImageManifest::from_reader(&bytes[..])
            .map_err(|e| StoreError::bad(&mpath, format!("bad OCI manifest: {e}")))?;
        let cdigest = manifest.config().digest().to_string();
        let config_path = blob(root, &cdigest, &mpath)?;
        let config = std::fs::read(&config_path).ctx("read", &config_path)?;
        let mut layers = Vec::new();
        for l in manifest.layers() {
            let d = l.digest().to_string();
            layers.push(LayerSource {
                path: blob(root, &d, &mpath)?,
                expected_digest: Some(d),
            });
        }
        return Ok(ImageSource {
            config,
            config_path,
            expected_config_digest: Some(cdigest),
            layers,
            tags,
        });
    }
}
