//! Reads an OCI image layout directory into an [`ImageSource`].

use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

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

/// The OCI architecture name of this machine.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn for_host(d: &Descriptor) -> bool {
    d.platform().as_ref().is_none_or(|p| {
        p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
    })
}

/// The descriptors of `index` to import: every one without a platform or for this
/// platform, else (a single-platform foreign image) the first.
fn pick(index: &ImageIndex) -> Vec<Descriptor> {
    let mine: Vec<Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| for_host(d))
        .cloned()
        .collect();
    if mine.is_empty() {
        index.manifests().iter().take(1).cloned().collect()
    } else {
        mine
    }
}

/// Reads the layout at `root`: one image per manifest `index.json` lists (those for
/// another platform left out); a nested index (multi-platform image) gives its entry
/// for this platform, or its first.
pub fn read_layout(root: &Path) -> Result<Vec<ImageSource>, StoreError> {
    let index_path = root.join("index.json");
    let data = std::fs::read(&index_path).ctx("read", &index_path)?;
    let index = ImageIndex::from_reader(&data[..])
        .map_err(|e| StoreError::bad(&index_path, format!("bad OCI index: {e}")))?;
    let descs = pick(&index);
    if descs.is_empty() {
        return Err(StoreError::bad(&index_path, "index lists no manifests"));
    }
    descs
        .into_iter()
        .map(|d| read_image(root, &index_path, d))
        .collect()
}

/// Reads the image `desc` names, following nested indexes.
fn read_image(
    root: &Path,
    index_path: &Path,
    mut desc: Descriptor,
) -> Result<ImageSource, StoreError> {
    let mut tags = Vec::new();
    for _depth in 0..8 {
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
        let bytes = verified(root, &digest, index_path)?;
        if *desc.media_type() == MediaType::ImageIndex {
            let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| {
                StoreError::bad(index_path, format!("bad nested index {digest}: {e}"))
            })?;
            desc = index
                .manifests()
                .iter()
                .find(|d| for_host(d))
                .or_else(|| index.manifests().first())
                .cloned()
                .ok_or_else(|| {
                    StoreError::bad(
                        index_path,
                        format!("nested index {digest} lists no manifests"),
                    )
                })?;
            continue;
        }
        let mpath = blob(root, &digest, index_path)?;
        let manifest = ImageManifest::from_reader(&bytes[..])
            .map_err(|e| StoreError::bad(&mpath, format!("bad OCI manifest: {e}")))?;
        let cdigest = manifest.config().digest().to_string();
        let config_path = blob(root, &cdigest, &mpath)?;
        let config = std::fs::read(&config_path).ctx("read", &config_path)?;
        let mut layers = Vec::new();
        for l in manifest.layers() {
            let d = l.digest().to_string();
            layers.push(LayerSource {
                path: Some(blob(root, &d, &mpath)?),
                expected_digest: Some(d),
            });
        }
        return Ok(ImageSource {
            config,
            config_path,
            expected_config_digest: Some(cdigest),
            layers,
            tags,
            manifest: None,
        });
    }
    Err(StoreError::bad(
        index_path,
        "image indexes nested too deeply",
    ))
}
