//! Verifies an image's blobs and layers and registers it in the store atomically:
//! everything is checked and extracted into a temp dir first; only then are blobs,
//! layer dirs, the image record and the tags moved into place (record last), so a
//! failure or crash never leaves a half-registered image.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::compression::open_layer;
use crate::digest::{HashingReader, chain_ids, digest_hex, sha256_digest};
use crate::error::{IoContext, StoreError};
use crate::extract::{ExtractOptions, extract_layer};
use crate::image::{ImageRecord, Layer, config_diff_ids};
use crate::{Image, Store, fsutil, reference, unix_now};

/// One layer blob to import.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// Where the blob is (inside an unpacked archive or layout).
    pub path: PathBuf,
    /// The digest the manifest promises for the blob, if it names one.
    pub expected_digest: Option<String>,
}

/// An image to import: its config bytes, layer blobs and tags.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// The config JSON as stored.
    pub config: Vec<u8>,
    /// Where the config came from (for errors).
    pub config_path: PathBuf,
    /// The digest the manifest promises for the config, if any.
    pub expected_config_digest: Option<String>,
    /// Layer blobs, bottom first.
    pub layers: Vec<LayerSource>,
    /// `NAME:TAG`s to point at the image.
    pub tags: Vec<String>,
}

/// sha256 of a file, streaming.
pub fn file_digest(path: &Path) -> Result<(String, u64), StoreError> {
    let f = File::open(path).ctx("open", path)?;
    HashingReader::new(f).finish().ctx("read", path)
}

/// The diffID of a layer blob (decompressing and hashing it) without extracting it.
fn diff_id_only(path: &Path) -> Result<(String, u64, &'static str), StoreError> {
    let (r, media) = open_layer(path)?;
    let (d, n) = HashingReader::new(r)
        .finish()
        .map_err(|e| StoreError::bad(path, format!("decompressing layer: {e}")))?;
    Ok((d, n, media))
}

/// Extracts a layer blob into `dest` and returns its diffID, size and media type.
fn extract_blob(path: &Path, dest: &Path) -> Result<(String, u64, &'static str), StoreError> {
    let (r, media) = open_layer(path)?;
    let mut hr = HashingReader::new(r);
    extract_layer(
        &mut hr as &mut dyn Read,
        dest,
        &path.display().to_string(),
        ExtractOptions::current(),
    )?;
    let (d, n) = hr
        .finish()
        .map_err(|e| StoreError::bad(path, format!("decompressing layer: {e}")))?;
    Ok((d, n, media))
}

/// Copies a file into the blob store under `digest` (temp + rename), unless present.
fn store_blob(store: &Store, src: &Path, digest: &str) -> Result<(), StoreError> {
    let dst = store.blob_path(digest)?;
    if dst.exists() {
        return Ok(());
    }
    let dir = store.root().join("blobs/sha256");
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .ctx("create temp file in", &dir)?;
    fs::copy(src, tmp.path()).ctx("copy blob", src)?;
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    tmp.persist(&dst)
        .map_err(|e| StoreError::io("rename into", &dst, e.error))?;
    Ok(())
}

/// Verifies and registers `src`. The caller holds the store lock.
pub fn register(store: &Store, src: &ImageSource) -> Result<Image, StoreError> {
    let config_digest = sha256_digest(&src.config);
    if let Some(exp) = &src.expected_config_digest {
        if *exp != config_digest {
            return Err(StoreError::DigestMismatch {
                what: format!("image config {}", src.config_path.display()),
                expected: exp.clone(),
                actual: config_digest,
            });
        }
    }
    oci_spec::image::ImageConfiguration::from_reader(&src.config[..])
        .map_err(|e| StoreError::bad(&src.config_path, format!("not an OCI image config: {e}")))?;
    let config: Value = serde_json::from_slice(&src.config)
        .map_err(|e| StoreError::bad(&src.config_path, format!("bad JSON: {e}")))?;
    let diff_ids = config_diff_ids(&config, &src.config_path)?;
    if diff_ids.len() != src.layers.len() {
        return Err(StoreError::bad(
            &src.config_path,
            format!(
                "config lists {} diff_ids but the manifest has {} layers",
                diff_ids.len(),
                src.layers.len()
            ),
        ));
    }
    let tags = src
        .tags
        .iter()
        .map(|t| reference::normalize(t))
        .collect::<Result<Vec<_>, _>>()?;
    let chains = chain_ids(&diff_ids);
    let work = fsutil::temp_dir(store.root())?;
    let pb = crate::progress::layers(src.layers.len() as u64, "importing");
    let mut layers = Vec::new();
    let mut new_dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (i, ls) in src.layers.iter().enumerate() {
        let (blob_digest, blob_size) = file_digest(&ls.path)?;
        if let Some(exp) = &ls.expected_digest {
            if *exp != blob_digest {
                return Err(StoreError::DigestMismatch {
                    what: format!("layer {} blob {}", i + 1, ls.path.display()),
                    expected: exp.clone(),
                    actual: blob_digest,
                });
            }
        }
        let final_dir = store.layer_dir(&chains[i])?;
        let already =
            final_dir.join("diff").is_dir() || new_dirs.iter().any(|(_, f)| *f == final_dir);
        let (diff_id, size, media) = if already {
            diff_id_only(&ls.path)?
        } else {
            let tmp_layer = work.path().join(format!("layer-{i}"));
            let diff = tmp_layer.join("diff");
            fs::create_dir_all(&diff).ctx("create dir", &diff)?;
            let r = extract_blob(&ls.path, &diff)?;
            new_dirs.push((tmp_layer, final_dir));
            r
        };
        if diff_id != diff_ids[i] {
            return Err(StoreError::DigestMismatch {
                what: format!("diffID of layer {} ({})", i + 1, ls.path.display()),
                expected: diff_ids[i].clone(),
                actual: diff_id,
            });
        }
        layers.push(Layer {
            blob_digest,
            media_type: media.to_string(),
            blob_size,
            diff_id,
            chain_id: chains[i].clone(),
            size,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    // Everything verified: move into place. Record last.
    for (l, ls) in layers.iter().zip(&src.layers) {
        store_blob(store, &ls.path, &l.blob_digest)?;
    }
    let cfg_blob = store.blob_path(&config_digest)?;
    if !cfg_blob.exists() {
        fsutil::write_atomic(&cfg_blob, &src.config)?;
    }
    for (i, (tmp_layer, final_dir)) in new_dirs.iter().enumerate() {
        let l = layers
            .iter()
            .find(|l| store.layer_dir(&l.chain_id).ok().as_ref() == Some(final_dir));
        if let Some(l) = l {
            fsutil::write_json(&tmp_layer.join("layer.json"), l)?;
        }
        if final_dir.exists() {
            continue; // registered meanwhile by an identical layer
        }
        fs::rename(tmp_layer, final_dir).ctx("rename into", final_dir)?;
        log::debug!("layer {i} extracted to {}", final_dir.display());
    }
    let id = digest_hex(&config_digest).unwrap_or_default().to_string();
    let rec_path = store.root().join("images").join(format!("{id}.json"));
    let created = if rec_path.exists() {
        fsutil::read_json::<ImageRecord>(&rec_path)
            .map(|r| r.created)
            .unwrap_or_else(|_| unix_now())
    } else {
        unix_now()
    };
    let rec = ImageRecord {
        id: id.clone(),
        config_digest,
        layers,
        created,
    };
    fsutil::write_json(&rec_path, &rec)?;
    if !tags.is_empty() {
        let mut index = store.tags()?;
        for t in tags {
            index.insert(t, id.clone());
        }
        store.save_tags(&index)?;
    }
    store.image_by_id(&id)
}
