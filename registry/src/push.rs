//! `strata push`: an image of the store to a registry. A pulled image goes back with
//! the manifest it came with (same bytes, same digest) when its blobs are at hand;
//! any other image gets an OCI manifest of its config and layers, layers strata made
//! itself (plain tars) sent in a gzip form made once. Blobs the repository has are not
//! sent (HEAD); blobs another repository of the registry has are mounted from it;
//! the rest is uploaded in chunks, again on a broken connection; the manifest last.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::Reference;
use oci_client::RegistryOperation;
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_spec::image::ImageManifest;
use serde_json::{Value, json};
use store::compression::MEDIA_TAR;
use store::{Image, Store};

use crate::connection::{Connection, TlsOptions};
use crate::credentials::Credentials;
use crate::error::RegistryError;
use crate::progress::{BlobProgress, Progress, short};
use crate::reference::{self, repository_key};

/// Blobs sent at once.
const PARALLEL: usize = 3;
/// Attempts per blob upload.
const ATTEMPTS: u32 = 3;
/// Bytes read from a blob file per chunk sent.
const CHUNK: usize = 4 << 20;

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `--creds` (default: the stored ones).
    pub creds: Option<Credentials>,
    /// `--tls-verify`, `--cert-dir`.
    pub tls: TlsOptions,
    /// `-q`.
    pub quiet: bool,
}

/// One blob to send.
#[derive(Debug, Clone)]
struct Outgoing {
    digest: String,
    size: u64,
    /// Where its bytes are, if the store has them.
    file: Option<PathBuf>,
    /// The layer's diffID (none for the config).
    diff_id: Option<String>,
}

/// What goes to the registry: the blobs and the manifest that names them.
struct Plan {
    blobs: Vec<Outgoing>,
    manifest: Vec<u8>,
    media_type: String,
}

fn store_error(target: &str) -> impl Fn(store::StoreError) -> RegistryError + '_ {
    move |source| RegistryError::Store {
        target: target.to_string(),
        source,
    }
}

/// Pushes `image` (a store reference) to `dest` (default: the image reference itself);
/// returns the destination and the manifest digest.
pub fn push(
    store: &Store,
    image: &str,
    dest: Option<&str>,
    opts: &PushOptions,
) -> Result<(String, String), RegistryError> {
    let dest = dest.unwrap_or(image);
    let dest = dest.strip_prefix("docker://").unwrap_or(dest);
    let r = reference::parse(dest)?;
    if r.tag().is_none() {
        return Err(RegistryError::BadReference {
            reference: dest.to_string(),
            reason: "a push needs a tag to write".into(),
        });
    }
    // The image's blobs stay while they are read (`prune` waits).
    let _pin = store.pin().map_err(store_error(image))?;
    let img = store.resolve_image(image).map_err(store_error(image))?;
    let digest = crate::runtime()?.block_on(push_async(store, &img, &r, dest, opts))?;
    Ok((dest.to_string(), digest))
}

/// The manifest the image was pulled with, if it is in the store.
fn pulled_manifest(store: &Store, img: &Image) -> Option<(Vec<u8>, ImageManifest)> {
    let d = img.manifest_digest.as_ref()?;
    let bytes = std::fs::read(store.blob_path(d).ok()?).ok()?;
    let m = ImageManifest::from_reader(&bytes[..]).ok()?;
    Some((bytes, m))
}

fn existing(store: &Store, digest: &str) -> Option<PathBuf> {
    store.blob_path(digest).ok().filter(|p| p.is_file())
}

/// The plan for a pulled image: its own manifest and blobs.
fn plan_pulled(store: &Store, img: &Image, bytes: Vec<u8>, m: &ImageManifest) -> Plan {
    let cfg = m.config();
    let mut blobs = vec![Outgoing {
        digest: cfg.digest().to_string(),
        size: cfg.size(),
        file: existing(store, cfg.digest().as_ref()),
        diff_id: None,
    }];
    for (l, layer) in m.layers().iter().zip(&img.layers) {
        blobs.push(Outgoing {
            digest: l.digest().to_string(),
            size: l.size(),
            file: existing(store, l.digest().as_ref()),
            diff_id: Some(layer.diff_id.clone()),
        });
    }
    let media_type = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(String::from))
        .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_string());
    Plan {
        blobs,
        manifest: bytes,
        media_type,
    }
}

/// The plan for an image strata imported or made: an OCI manifest of its blobs, plain
/// tar layers in their gzip form.
fn plan_fresh(store: &Store, img: &Image, target: &str) -> Result<Plan, RegistryError> {
    let cfg_path = store
        .blob_path(&img.config_digest)
        .map_err(store_error(target))?;
    let cfg_size = std::fs::metadata(&cfg_path)
        .map_err(|e| RegistryError::Local(format!("stat {}: {e}", cfg_path.display())))?
        .len();
    let mut blobs = vec![Outgoing {
        digest: img.config_digest.clone(),
        size: cfg_size,
        file: Some(cfg_path),
        diff_id: None,
    }];
    let mut layers = Vec::new();
    let _lock = store.lock().map_err(store_error(target))?;
    for (i, l) in img.layers.iter().enumerate() {
        let (digest, size, media) = if l.media_type == MEDIA_TAR {
            let (d, n) = store::compression::gzip_blob(store, l).map_err(store_error(target))?;
            (d, n, store::compression::MEDIA_TAR_GZIP.to_string())
        } else {
            (l.blob_digest.clone(), l.blob_size, l.media_type.clone())
        };
        let file = existing(store, &digest).ok_or_else(|| {
            RegistryError::Local(format!(
                "{target}: layer {} blob {digest} is not in the store",
                i + 1
            ))
        })?;
        layers.push(json!({"mediaType": media, "digest": digest, "size": size}));
        blobs.push(Outgoing {
            digest,
            size,
            file: Some(file),
            diff_id: Some(l.diff_id.clone()),
        });
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {"mediaType": IMAGE_CONFIG_MEDIA_TYPE, "digest": img.config_digest, "size": cfg_size},
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| RegistryError::Local(format!("{target}: encode the manifest: {e}")))?;
    Ok(Plan {
        blobs,
        manifest,
        media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
    })
}

/// A blob file as a stream of chunks, counted on `bar`.
fn file_stream(
    path: &Path,
    bar: &BlobProgress,
) -> Result<
    impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static,
    RegistryError,
> {
    let f = std::fs::File::open(path)
        .map_err(|e| RegistryError::Local(format!("open {}: {e}", path.display())))?;
    let bar = bar.clone_handle();
    Ok(futures_util::stream::try_unfold(
        (f, 0u64),
        move |(mut f, sent)| {
            let bar = bar.clone();
            async move {
                let mut buf = vec![0u8; CHUNK];
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                let sent = sent + n as u64;
                if let Some(b) = &bar {
                    b.set_position(sent);
                }
                Ok(Some((bytes::Bytes::from(buf), (f, sent))))
            }
        },
    ))
}

/// Sends one blob unless the repository has it; returns how it got there.
async fn send_blob(
    conn: &Connection,
    store: &Store,
    r: &Reference,
    blob: &Outgoing,
    bar: &BlobProgress,
    target: &str,
) -> Result<String, RegistryError> {
    let exists = conn
        .client
        .blob_exists(r, &blob.digest)
        .await
        .map_err(|e| conn.error(target, e))?;
    if exists {
        return Ok("skipped: already exists".into());
    }
    // Mount from another repository of this registry where the store saw the blob.
    if let Some(diff_id) = &blob.diff_id {
        let here = repository_key(r);
        for s in store.blob_sightings(diff_id) {
            if s.digest != blob.digest || s.source_repository == here {
                continue;
            }
            let Some(repo) = s
                .source_repository
                .strip_prefix(&format!("{}/", r.registry()))
            else {
                continue;
            };
            let from = Reference::with_tag(r.registry().into(), repo.into(), "latest".into());
            match conn.client.mount_blob(r, &from, &blob.digest).await {
                Ok(()) => return Ok(format!("mounted from {}", s.source_repository)),
                Err(e) => log::info!("mount of {} from {repo}: {e}", blob.digest),
            }
        }
    }
    let Some(file) = &blob.file else {
        return Err(RegistryError::Local(format!(
            "{target}: blob {} is neither in the store nor in the registry",
            blob.digest
        )));
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let stream = file_stream(file, bar)?;
        match conn
            .client
            .push_blob_stream(r, stream, &blob.digest, Some(blob.size))
            .await
        {
            Ok(_) => return Ok("done".into()),
            Err(e) if attempt < ATTEMPTS && crate::download::is_transient(&e) => {
                log::warn!("{}: upload failed ({e}); again", blob.digest);
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            Err(e) => return Err(conn.error(target, e)),
        }
    }
}

async fn push_async(
    store: &Store,
    img: &Image,
    r: &Reference,
    target: &str,
    opts: &PushOptions,
) -> Result<String, RegistryError> {
    let progress = Progress::new(opts.quiet);
    let conn = Connection::open(r, &opts.tls, opts.creds.as_ref()).await?;
    conn.authenticate(r, RegistryOperation::Push, target)
        .await?;
    let mut plan = None;
    if let Some((bytes, m)) = pulled_manifest(store, img) {
        let p = plan_pulled(store, img, bytes, &m);
        // Blobs the store skipped at pull must be in the registry already.
        let mut complete = true;
        for b in p.blobs.iter().filter(|b| b.file.is_none()) {
            complete &= conn.client.blob_exists(r, &b.digest).await.unwrap_or(false);
        }
        if complete {
            plan = Some(p);
        }
    }
    let plan = match plan {
        Some(p) => p,
        None => plan_fresh(store, img, target)?,
    };
    futures_util::stream::iter(&plan.blobs)
        .map(|b| {
            let (conn, progress) = (&conn, &progress);
            async move {
                let kind = if b.diff_id.is_some() {
                    "blob"
                } else {
                    "config"
                };
                let bar = progress.blob(&format!("Copying {kind}"), &b.digest, b.size);
                let how = send_blob(conn, store, r, b, &bar, target).await?;
                bar.finish(&how);
                Ok::<(), RegistryError>(())
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    let digest = store::digest::sha256_digest(&plan.manifest);
    progress.line(&format!("Writing manifest {}", short(&digest)));
    let content_type =
        http::HeaderValue::from_str(&plan.media_type).map_err(|e| RegistryError::Protocol {
            target: target.to_string(),
            detail: format!("manifest media type {:?}: {e}", plan.media_type),
        })?;
    conn.client
        .push_manifest_raw(r, plan.manifest.clone(), content_type)
        .await
        .map_err(|e| conn.error(target, e))?;
    let _lock = store.lock().map_err(store_error(target))?;
    let repo = repository_key(r);
    for b in &plan.blobs {
        if let Some(diff_id) = &b.diff_id {
            store
                .record_blob(&b.digest, diff_id, &repo)
                .map_err(store_error(target))?;
        }
    }
    Ok(digest)
}
