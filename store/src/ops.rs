//! Image bookkeeping: tag, remove, prune.

use std::collections::HashSet;
use std::fs;

use crate::error::{IoContext, StoreError};
use crate::{Store, digest, fsutil, reference};

/// What `remove_image` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// Only this tag was removed; the image has other tags.
    Untagged(String),
    /// The image (id) and all its tags were removed.
    Deleted(String),
}

/// What `prune` removed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Layer dirs removed (chainIDs).
    pub layers: Vec<String>,
    /// Blobs removed (digests).
    pub blobs: Vec<String>,
}

impl Store {
    /// Points `NAME:TAG` at the image `image`.
    pub fn tag_image(&self, image: &str, tag: &str) -> Result<String, StoreError> {
        let tag = reference::normalize(tag)?;
        let _lock = self.lock()?;
        let img = self.resolve_image(image)?;
        let mut tags = self.tags()?;
        tags.insert(tag.clone(), img.id);
        self.save_tags(&tags)?;
        Ok(tag)
    }

    /// Removes a tag, or the image when `reference` is its id or its last tag. Refuses
    /// while a container uses the image.
    pub fn remove_image(&self, reference: &str) -> Result<Removed, StoreError> {
        let _lock = self.lock()?;
        let img = self.resolve_image(reference)?;
        let mut tags = self.tags()?;
        if let Ok(norm) = reference::normalize(reference) {
            if tags.get(&norm) == Some(&img.id) && img.tags.len() > 1 {
                tags.remove(&norm);
                self.save_tags(&tags)?;
                return Ok(Removed::Untagged(norm));
            }
        }
        let users: Vec<String> = self
            .list_containers()?
            .into_iter()
            .filter(|c| c.image_id == img.id)
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "image {} is used by container(s) {}; remove them first",
                &img.id[..12],
                users.join(", ")
            )));
        }
        tags.retain(|_, v| *v != img.id);
        self.save_tags(&tags)?;
        let rec = self.root().join("images").join(format!("{}.json", img.id));
        fs::remove_file(&rec).ctx("remove", &rec)?;
        Ok(Removed::Deleted(img.id))
    }

    /// Removes layers and blobs no image uses (containers keep their image), and
    /// leftovers of interrupted operations in `tmp/`. Waits for running pulls,
    /// pushes and exports (the store's pin) first: what a pull fetched or found in
    /// the store is not an image's until it registers it.
    pub fn prune(&self) -> Result<Pruned, StoreError> {
        let _pin = crate::lock::Pin::exclusive(&self.pin_path(), || {
            log::warn!("waiting for the pulls, pushes and exports using the store to end")
        })?;
        let _lock = self.lock()?;
        let mut chains = HashSet::new();
        let mut blobs = HashSet::new();
        for img in self.images()? {
            blobs.insert(img.config_digest.clone());
            blobs.extend(img.manifest_digest.clone());
            for l in &img.layers {
                chains.insert(l.chain_id.clone());
                blobs.insert(l.blob_digest.clone());
                // The gzip form made for pushes (compression::gzip_blob).
                if let Some(hex) = digest::digest_hex(&l.diff_id) {
                    let rec = self
                        .root()
                        .join("distribution/gzip-by-diffid/sha256")
                        .join(hex);
                    if let Ok(d) = fs::read_to_string(rec) {
                        blobs.insert(d.trim().to_string());
                    }
                }
            }
        }
        let mut out = Pruned::default();
        for p in fsutil::list_dir(&self.root().join("layers"))? {
            let Some(hex) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let chain = format!("sha256:{hex}");
            if !chains.contains(&chain) {
                let trash = self.root().join("tmp").join(format!("prune-{hex}"));
                fs::rename(&p, &trash).ctx("rename", &p)?;
                fsutil::remove_tree(&trash)?;
                out.layers.push(chain);
            }
        }
        for p in fsutil::list_dir(&self.root().join("blobs/sha256"))? {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let d = format!("sha256:{name}");
            if !digest::is_hex64(name) || !blobs.contains(&d) {
                fs::remove_file(&p).ctx("remove", &p)?;
                out.blobs.push(d);
            }
        }
        for p in fsutil::list_dir(&self.root().join("tmp"))? {
            fsutil::remove_tree(&p)?;
        }
        Ok(out)
    }
}
