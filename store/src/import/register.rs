//! Verifies an image's blobs and layers and registers it in the store atomically:
//! everything is checked and extracted into a temp dir first; only then are blobs,
//! layer dirs, the image record and the tags moved into place (record last), so a
//! failure or crash never leaves a half-registered image.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::compression::decompress;
use crate::digest::{HashingReader, chain_ids, digest_hex, sha256_digest};
use crate::error::{IoContext, StoreError};
use crate::extract::{ExtractOptions, extract_layer};
use crate::image::{ImageRecord, Layer, config_diff_ids};
use crate::{Image, Store, fsutil, reference, unix_now};

/// One layer blob to import.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// Where the blob is (inside an unpacked archive or layout, or downloaded); `None`
    /// when the store already holds the layer by chainID (a parent layer of a commit, a
    /// pulled layer whose diffID the store knows), so nothing need be read.
    pub path: Option<PathBuf>,
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
    /// The manifest as a registry served it, kept so a push sends the same bytes.
    pub manifest: Option<Vec<u8>>,
}

/// sha256 of a file, streaming.
pub fn file_digest(path: &Path) -> Result<(String, u64), StoreError> {
    let f = File::open(path).ctx("open", path)?;
    HashingReader::new(f).finish().ctx("read", path)
}

/// A reader that copies everything read through it into `sink`.
struct Tee<'a, R> {
    inner: R,
    sink: Option<&'a mut File>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(s) = self.sink.as_mut() {
            s.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// A reader that fails once more than `limit` bytes came through it (`0`: no limit),
/// and remembers that it did, so a decompression bomb is told apart from a bad tar.
struct Capped<R> {
    inner: R,
    limit: u64,
    count: u64,
    tripped: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.limit > 0 && self.count > self.limit {
            self.tripped.set(true);
            return Err(std::io::Error::other(format!(
                "uncompressed size exceeds the limit of {} bytes",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// What one pass over a layer blob found in its tar.
struct Streamed {
    diff_id: String,
    tar_size: u64,
    media: &'static str,
}

/// Reads the layer blob at `path` once: hashes the bytes as stored (digest) and
/// decompressed (diffID), copies the stored bytes into `spool` if given, and extracts
/// the tar into `dest` if given. Returns the digest and size of the stored bytes even
/// when decompressing or extracting failed (a corrupt blob is a digest mismatch first),
/// and the tar's outcome. A tar longer than `limit` bytes (`0`: no limit) is refused.
fn stream_layer(
    path: &Path,
    spool: Option<&mut File>,
    dest: Option<&Path>,
    limit: u64,
) -> Result<(String, u64, Result<Streamed, StoreError>), StoreError> {
    let f = File::open(path).ctx("open layer blob", path)?;
    let mut stored = HashingReader::new(Tee {
        inner: f,
        sink: spool,
    });
    let tripped = std::rc::Rc::new(std::cell::Cell::new(false));
    let tar = (|| {
        let (r, media) = decompress(&mut stored, path)?;
        let mut tar = HashingReader::new(Capped {
            inner: r,
            limit,
            count: 0,
            tripped: tripped.clone(),
        });
        if let Some(dest) = dest {
            extract_layer(
                &mut tar as &mut dyn Read,
                dest,
                &path.display().to_string(),
                ExtractOptions::current(),
            )?;
        }
        let (diff_id, tar_size) = tar
            .finish()
            .map_err(|e| StoreError::bad(path, format!("decompressing layer: {e}")))?;
        Ok(Streamed {
            diff_id,
            tar_size,
            media,
        })
    })();
    let tar = match tar {
        Err(_) if tripped.get() => Err(StoreError::bad(
            path,
            format!(
                "layer expands to more than {limit} bytes uncompressed, the store's limit \
                 (${}; 0 for none): refused as a decompression bomb",
                crate::MAX_LAYER_SIZE_ENV
            ),
        )),
        other => other,
    };
    // Bytes after the end of the compressed stream (or after an error) still count.
    let (digest, size) = stored.finish().ctx("read layer blob", path)?;
    Ok((digest, size, tar))
}

/// Where a verified layer blob comes from when it is moved into the store.
enum BlobSrc {
    /// A file of the unpacked archive in the store's tmp/: renamed into place.
    Move(PathBuf),
    /// A copy made while reading a file the store does not own.
    Spooled(tempfile::NamedTempFile),
}

/// Puts a verified blob into the blob store under `digest`, unless present.
fn store_blob(store: &Store, src: BlobSrc, digest: &str) -> Result<(), StoreError> {
    let dst = store.blob_path(digest)?;
    if dst.exists() {
        return Ok(());
    }
    match src {
        BlobSrc::Move(p) => {
            File::open(&p).and_then(|f| f.sync_all()).ctx("fsync", &p)?;
            fs::rename(&p, &dst).ctx("rename into", &dst)
        }
        BlobSrc::Spooled(tmp) => {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .ctx("chmod", tmp.path())?;
            tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
            tmp.persist(&dst)
                .map_err(|e| StoreError::io("rename into", &dst, e.error))?;
            Ok(())
        }
    }
}

/// Verifies and registers `src`. The caller holds the store lock.
pub fn register(store: &Store, src: &ImageSource) -> Result<Image, StoreError> {
    register_all(store, std::slice::from_ref(src))?
        .pop()
        .ok_or_else(|| StoreError::bad(&src.config_path, "no image registered"))
}

/// An image verified and extracted under the batch's temp dir, not yet registered.
struct Staged {
    config_digest: String,
    config: Vec<u8>,
    layers: Vec<Layer>,
    tags: Vec<String>,
    manifest: Option<(String, Vec<u8>)>,
}

/// Images of one archive on their way into the store.
struct Batch<'a> {
    store: &'a Store,
    work: &'a Path,
    /// Layer dirs extracted in `work` and where they go, in order.
    new_dirs: Vec<(PathBuf, PathBuf)>,
    /// Layer blobs the store lacks: digest and where the verified bytes are.
    blobs: Vec<(String, BlobSrc)>,
}

impl Batch<'_> {
    /// Verifies `src` and extracts the layers the store lacks into the work dir.
    fn stage(&mut self, src: &ImageSource) -> Result<Staged, StoreError> {
        let store = self.store;
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
        oci_spec::image::ImageConfiguration::from_reader(&src.config[..]).map_err(|e| {
            StoreError::bad(&src.config_path, format!("not an OCI image config: {e}"))
        })?;
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
        let pb = crate::progress::layers(src.layers.len() as u64, "importing");
        let mut layers = Vec::new();
        for (i, ls) in src.layers.iter().enumerate() {
            let final_dir = store.layer_dir(&chains[i])?;
            let Some(path) = &ls.path else {
                layers.push(self.held(&final_dir, i, &diff_ids[i], &src.config_path)?);
                pb.inc(1);
                continue;
            };
            let already = final_dir.join("diff").is_dir()
                || self.new_dirs.iter().any(|(_, f)| *f == final_dir);
            let known = |d: &String| {
                self.blobs.iter().any(|(b, _)| b == d)
                    || store.blob_path(d).is_ok_and(|p| p.exists())
            };
            let movable = path.starts_with(store.root().join("tmp"));
            let mut spool = if movable || ls.expected_digest.as_ref().is_some_and(known) {
                None
            } else {
                let dir = store.root().join("blobs/sha256");
                Some(
                    tempfile::Builder::new()
                        .prefix(".tmp-")
                        .tempfile_in(&dir)
                        .ctx("create temp file in", &dir)?,
                )
            };
            let tmp_layer = self.work.join(format!("layer-{}", self.new_dirs.len()));
            let diff = tmp_layer.join("diff");
            if !already {
                fs::create_dir_all(&diff).ctx("create dir", &diff)?;
            }
            let streamed = stream_layer(
                path,
                spool.as_mut().map(|t| t.as_file_mut()),
                (!already).then_some(diff.as_path()),
                store.max_layer_size(),
            );
            let checked = streamed.and_then(|(digest, size, tar)| {
                if let Some(exp) = ls.expected_digest.as_ref().filter(|e| **e != digest) {
                    return Err(StoreError::DigestMismatch {
                        what: format!("layer {} blob {}", i + 1, path.display()),
                        expected: exp.clone(),
                        actual: digest,
                    });
                }
                let st = tar?;
                if st.diff_id != diff_ids[i] {
                    return Err(StoreError::DigestMismatch {
                        what: format!("diffID of layer {} ({})", i + 1, path.display()),
                        expected: diff_ids[i].clone(),
                        actual: st.diff_id,
                    });
                }
                Ok((digest, size, st))
            });
            let (blob_digest, blob_size, st) = match checked {
                Ok(v) => v,
                Err(e) => {
                    // Extracted but not verified: gone at once, not when the batch ends.
                    fsutil::remove_tree(&tmp_layer)?;
                    return Err(e);
                }
            };
            if !already {
                self.new_dirs.push((tmp_layer, final_dir));
            }
            if !known(&blob_digest) {
                let src = match spool.take() {
                    Some(t) => BlobSrc::Spooled(t),
                    None => BlobSrc::Move(path.clone()),
                };
                self.blobs.push((blob_digest.clone(), src));
            }
            let Streamed {
                diff_id,
                tar_size: size,
                media,
            } = st;
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
        Ok(Staged {
            config_digest,
            config: src.config.clone(),
            layers,
            tags,
            manifest: src.manifest.as_ref().map(|m| (sha256_digest(m), m.clone())),
        })
    }

    /// The record of layer `i` (diffID `diff_id`) the store holds at `dir`, for a
    /// source that names no blob.
    fn held(&self, dir: &Path, i: usize, diff_id: &str, what: &Path) -> Result<Layer, StoreError> {
        let record = dir.join("layer.json");
        let missing = || {
            StoreError::bad(
                what,
                format!("layer {} ({diff_id}) is not in the store", i + 1),
            )
        };
        if !dir.join("diff").is_dir() || !record.is_file() {
            return Err(missing());
        }
        let layer: Layer = crate::fsutil::read_json(&record)?;
        if layer.diff_id != diff_id {
            return Err(missing());
        }
        Ok(layer)
    }

    /// Moves blobs and layer dirs of every staged image into place.
    fn place(&mut self, staged: &[Staged]) -> Result<(), StoreError> {
        let store = self.store;
        for (digest, src) in self.blobs.drain(..) {
            store_blob(store, src, &digest)?;
        }
        for s in staged {
            let cfg_blob = store.blob_path(&s.config_digest)?;
            if !cfg_blob.exists() {
                fsutil::write_atomic(&cfg_blob, &s.config)?;
            }
            if let Some((digest, bytes)) = &s.manifest {
                let blob = store.blob_path(digest)?;
                if !blob.exists() {
                    fsutil::write_atomic(&blob, bytes)?;
                }
            }
        }
        let all_layers = staged.iter().flat_map(|s| &s.layers);
        for (tmp_layer, final_dir) in &self.new_dirs {
            let mut layers = all_layers.clone();
            if let Some(l) =
                layers.find(|l| store.layer_dir(&l.chain_id).ok().as_ref() == Some(final_dir))
            {
                fsutil::write_json(&tmp_layer.join("layer.json"), l)?;
            }
            if final_dir.exists() {
                continue; // registered meanwhile by an identical layer
            }
            fs::rename(tmp_layer, final_dir).ctx("rename into", final_dir)?;
            log::debug!("layer extracted to {}", final_dir.display());
        }
        Ok(())
    }
}

/// Writes the image records, then the tags in one go. If any of it fails, the records
/// this call created are removed again, so no image of the batch stays registered.
fn write_records(store: &Store, staged: &[Staged]) -> Result<Vec<String>, StoreError> {
    let mut created: Vec<PathBuf> = Vec::new();
    let result = (|| {
        let mut ids = Vec::new();
        let mut index = store.tags()?;
        for s in staged {
            let id = digest_hex(&s.config_digest).unwrap_or_default().to_string();
            let rec_path = store.root().join("images").join(format!("{id}.json"));
            let existed = rec_path.exists();
            let old = existed
                .then(|| fsutil::read_json::<ImageRecord>(&rec_path).ok())
                .flatten();
            let rec = ImageRecord {
                id: id.clone(),
                config_digest: s.config_digest.clone(),
                layers: s.layers.clone(),
                created: old.as_ref().map_or_else(unix_now, |r| r.created),
                // A pull names the manifest; an import or a build keeps what was known.
                manifest_digest: s
                    .manifest
                    .as_ref()
                    .map(|(d, _)| d.clone())
                    .or_else(|| old.and_then(|r| r.manifest_digest)),
            };
            fsutil::write_json(&rec_path, &rec)?;
            if !existed {
                created.push(rec_path);
            }
            for t in &s.tags {
                index.insert(t.clone(), id.clone());
            }
            ids.push(id);
        }
        if staged.iter().any(|s| !s.tags.is_empty()) {
            store.save_tags(&index)?;
        }
        Ok(ids)
    })();
    if result.is_err() {
        for p in &created {
            let _ = fs::remove_file(p);
        }
    }
    result
}

/// Verifies and registers several images (one archive) all or nothing: every image is
/// verified and its new layers extracted into a temp dir before anything is moved into
/// place; if one fails, the temp dir is removed and the store is unchanged. Layers and
/// blobs are moved in before the records (a crash in between leaves only unreferenced
/// layers, which `prune` removes). The caller holds the store lock.
pub fn register_all(store: &Store, srcs: &[ImageSource]) -> Result<Vec<Image>, StoreError> {
    let work = fsutil::temp_dir(store.root())?;
    let mut batch = Batch {
        store,
        work: work.path(),
        new_dirs: Vec::new(),
        blobs: Vec::new(),
    };
    let mut staged = Vec::with_capacity(srcs.len());
    for (n, src) in srcs.iter().enumerate() {
        let s = batch.stage(src).map_err(|e| {
            if srcs.len() > 1 {
                StoreError::bad(
                    &src.config_path,
                    format!("image {} of {}: {e}; nothing imported", n + 1, srcs.len()),
                )
            } else {
                e
            }
        })?;
        staged.push(s);
    }
    batch.place(&staged)?;
    let ids = write_records(store, &staged)?;
    ids.iter().map(|id| store.image_by_id(id)).collect()
}
