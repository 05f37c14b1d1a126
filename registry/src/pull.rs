//! `strata pull`: the manifest (through a manifest list or OCI index to this platform's
//! image), the config, and the layers the store lacks — downloaded in parallel,
//! resumable, verified — then registered by the store in one step, with the tag
//! `registry/repository:tag`. A pull that fails or is killed registers nothing; the
//! partial downloads stay for the next pull to resume.

use std::path::PathBuf;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::{Reference, RegistryOperation};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::Value;
use store::digest::{chain_ids, sha256_digest};
use store::import::{ImageSource, LayerSource, register};
use store::{Image, Store};

use crate::connection::{Connection, TlsOptions};
use crate::credentials::Credentials;
use crate::download::{BlobRef, downloads_dir, fetch};
use crate::error::RegistryError;
use crate::platform::{self, Platform};
use crate::progress::{Progress, short};
use crate::reference::{self, repository_key, store_tag};

/// Layers downloaded at once.
const PARALLEL: usize = 3;
/// Largest manifest or config accepted (distribution's own limit is 4 MiB).
const MAX_DOCUMENT: u64 = 16 << 20;

/// Media types asked for, most wanted first.
const ACCEPTED: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `--platform` (default: this machine's).
    pub platform: Option<Platform>,
    /// `--creds` (default: the stored ones for the registry).
    pub creds: Option<Credentials>,
    /// `--tls-verify`, `--cert-dir`.
    pub tls: TlsOptions,
    /// `-q`: no progress.
    pub quiet: bool,
}

/// Pulls `reference` into `store` and returns the image.
pub fn pull(store: &Store, reference: &str, opts: &PullOptions) -> Result<Image, RegistryError> {
    let r = reference::parse(reference)?;
    // What the pull finds in the store and fetches stays until it is registered.
    let _pin = store.pin().map_err(|source| RegistryError::Store {
        target: reference.to_string(),
        source,
    })?;
    crate::runtime()?.block_on(pull_async(store, &r, reference, opts))
}

/// Is `bytes` a manifest list / index rather than an image manifest?
fn is_index(bytes: &[u8], target: &str) -> Result<bool, RegistryError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| RegistryError::Protocol {
        target: target.to_string(),
        detail: format!("the manifest is not JSON: {e}"),
    })?;
    let media = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if v.get("schemaVersion").and_then(Value::as_i64) == Some(1) {
        return Err(RegistryError::Protocol {
            target: target.to_string(),
            detail: "the registry serves a schema 1 manifest, which strata does not read".into(),
        });
    }
    Ok(media == OCI_IMAGE_INDEX_MEDIA_TYPE
        || media == IMAGE_MANIFEST_LIST_MEDIA_TYPE
        || (media.is_empty() && v.get("manifests").is_some()))
}

/// What a manifest response holds.
#[derive(Debug)]
pub enum Served {
    /// An image manifest.
    Manifest(Box<ImageManifest>),
    /// A manifest list or OCI index: its entry for the wanted platform, to fetch next.
    Index(Box<Descriptor>),
}

/// Reads a registry's manifest response `bytes` (whose digest is `digest`) for
/// `target`: an image manifest, or the entry of a list/index for `want`. Refuses
/// schema 1, bad JSON and lists without an entry for `want`, naming the cause. No
/// I/O: the pull's reading of what a registry serves, which the fuzz target drives.
pub fn read_manifest(
    bytes: &[u8],
    digest: &str,
    target: &str,
    want: &Platform,
) -> Result<Served, RegistryError> {
    if is_index(bytes, target)? {
        let index = ImageIndex::from_reader(bytes).map_err(|e| RegistryError::Protocol {
            target: target.to_string(),
            detail: format!("bad manifest list: {e}"),
        })?;
        let d = platform::choose(&index, want).map_err(|detail| RegistryError::NotFound {
            target: target.to_string(),
            detail,
        })?;
        return Ok(Served::Index(Box::new(d.clone())));
    }
    let manifest = ImageManifest::from_reader(bytes).map_err(|e| RegistryError::Protocol {
        target: target.to_string(),
        detail: format!("bad image manifest {digest}: {e}"),
    })?;
    Ok(Served::Manifest(Box::new(manifest)))
}

/// Reads the config a registry served for `manifest`: its diffIDs, one per layer of
/// the manifest, and (with `platform`) that it is for that platform. No I/O, like
/// [`read_manifest`].
pub fn read_config(
    manifest: &ImageManifest,
    config: &[u8],
    platform: Option<&Platform>,
    target: &str,
) -> Result<Vec<String>, RegistryError> {
    check_platform(config, platform, target)?;
    let diff_ids = diff_ids(config, target)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(RegistryError::Protocol {
            target: target.to_string(),
            detail: format!(
                "the config lists {} layers, the manifest {}",
                diff_ids.len(),
                manifest.layers().len()
            ),
        });
    }
    Ok(diff_ids)
}

/// Fetches the manifest `r` names, checking it against the digest in `r` if any.
async fn manifest_bytes(
    conn: &Connection,
    r: &Reference,
    target: &str,
) -> Result<(Vec<u8>, String), RegistryError> {
    let (bytes, _) = conn
        .client
        .pull_manifest_raw(r, &conn.auth, ACCEPTED)
        .await
        .map_err(|e| conn.error(target, e))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(RegistryError::Protocol {
            target: target.to_string(),
            detail: format!("the manifest is {} bytes, over the limit", bytes.len()),
        });
    }
    let digest = sha256_digest(&bytes);
    if let Some(want) = r.digest() {
        if want != digest {
            return Err(RegistryError::DigestMismatch {
                target: target.to_string(),
                what: "the manifest".into(),
                expected: want.to_string(),
                actual: digest,
            });
        }
    }
    Ok((bytes.to_vec(), digest))
}

/// A small blob (the config) in memory, verified.
async fn small_blob(
    conn: &Connection,
    r: &Reference,
    digest: &str,
    size: u64,
    target: &str,
) -> Result<Vec<u8>, RegistryError> {
    if size > MAX_DOCUMENT {
        return Err(RegistryError::Protocol {
            target: target.to_string(),
            detail: format!("the config {digest} is {size} bytes, over the limit"),
        });
    }
    let mut out = Vec::with_capacity(size as usize);
    conn.client
        .pull_blob(r, digest, &mut out)
        .await
        .map_err(|e| conn.error(target, e))?;
    let actual = sha256_digest(&out);
    if actual != digest {
        return Err(RegistryError::DigestMismatch {
            target: target.to_string(),
            what: format!("the config {digest}"),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(out)
}

async fn pull_async(
    store: &Store,
    r: &Reference,
    target: &str,
    opts: &PullOptions,
) -> Result<Image, RegistryError> {
    let progress = Progress::new(opts.quiet);
    let conn = Connection::open(r, &opts.tls, opts.creds.as_ref()).await?;
    if opts.creds.is_some() {
        // Explicit credentials: a refusal is reported as such, not as a 401 later.
        conn.authenticate(r, RegistryOperation::Pull, target)
            .await?;
    }
    let (mut bytes, mut digest) = manifest_bytes(&conn, r, target).await?;
    let want = opts.platform.clone().unwrap_or_else(Platform::host);
    let manifest = match read_manifest(&bytes, &digest, target, &want)? {
        Served::Manifest(m) => {
            if let Some(want) = &opts.platform {
                log::info!(
                    "{target} is a single-platform image; --platform {want} checked against its config"
                );
            }
            m
        }
        Served::Index(d) => {
            let child = r.clone_with_digest(d.digest().to_string());
            (bytes, digest) = manifest_bytes(&conn, &child, target).await?;
            match read_manifest(&bytes, &digest, target, &want)? {
                Served::Manifest(m) => m,
                Served::Index(_) => {
                    return Err(RegistryError::Protocol {
                        target: target.to_string(),
                        detail: format!("manifest list entry {} is itself a list", d.digest()),
                    });
                }
            }
        }
    };
    let cfg = manifest.config();
    progress.line(&format!("Copying config {}", short(cfg.digest().as_ref())));
    let config = small_blob(&conn, r, cfg.digest().as_ref(), cfg.size(), target).await?;
    let diff_ids = read_config(&manifest, &config, opts.platform.as_ref(), target)?;
    let chains = chain_ids(&diff_ids);
    let dir = downloads_dir(store)?;

    // What each layer needs: nothing (the store has it), a stored blob, or a download.
    let mut plan: Vec<Option<PathBuf>> = Vec::new();
    let mut wanted = Vec::new();
    for (i, l) in manifest.layers().iter().enumerate() {
        let digest = l.digest().to_string();
        let held = store
            .layer_dir(&chains[i])
            .is_ok_and(|d| d.join("diff").is_dir() && d.join("layer.json").is_file());
        let blob = store.blob_path(&digest).ok().filter(|p| p.is_file());
        if held {
            progress.line(&format!(
                "Copying blob {} skipped: already in the store",
                short(&digest)
            ));
            plan.push(None);
        } else if let Some(p) = blob {
            progress.line(&format!(
                "Copying blob {} skipped: blob in the store",
                short(&digest)
            ));
            plan.push(Some(p));
        } else {
            plan.push(None);
            wanted.push((
                i,
                BlobRef {
                    digest,
                    size: l.size(),
                },
            ));
        }
    }
    let fetched: Vec<(usize, PathBuf)> = futures_util::stream::iter(wanted)
        .map(|(i, blob)| {
            let (conn, dir, progress) = (&conn, &dir, &progress);
            async move {
                let bar = progress.blob("Copying blob", &blob.digest, blob.size);
                fetch(conn, r, &blob, dir, &bar, target)
                    .await
                    .map(|p| (i, p))
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    for (i, p) in fetched {
        plan[i] = Some(p);
    }

    let layers = manifest
        .layers()
        .iter()
        .zip(plan)
        .map(|(l, path)| LayerSource {
            path,
            expected_digest: Some(l.digest().to_string()),
        })
        .collect();
    let src = ImageSource {
        config,
        config_path: PathBuf::from(target),
        expected_config_digest: Some(cfg.digest().to_string()),
        layers,
        tags: store_tag(r).into_iter().collect(),
        manifest: Some(bytes),
    };
    progress.line(&format!("Writing manifest {}", short(&digest)));
    let store_err = |source| RegistryError::Store {
        target: target.to_string(),
        source,
    };
    let _lock = store.lock().map_err(store_err)?;
    let image = register(store, &src).map_err(store_err)?;
    let repo = repository_key(r);
    for (l, diff_id) in manifest.layers().iter().zip(&diff_ids) {
        store
            .record_blob(l.digest().as_ref(), diff_id, &repo)
            .map_err(store_err)?;
    }
    Ok(image)
}

/// The config's `rootfs.diff_ids`.
fn diff_ids(config: &[u8], target: &str) -> Result<Vec<String>, RegistryError> {
    let v: Value = serde_json::from_slice(config).map_err(|e| RegistryError::Protocol {
        target: target.to_string(),
        detail: format!("the image config is not JSON: {e}"),
    })?;
    store::image::config_diff_ids(&v, std::path::Path::new(target)).map_err(|source| {
        RegistryError::Store {
            target: target.to_string(),
            source,
        }
    })
}

/// A single-platform image pulled with `--platform` must be for that platform.
fn check_platform(
    config: &[u8],
    want: Option<&Platform>,
    target: &str,
) -> Result<(), RegistryError> {
    let Some(want) = want else { return Ok(()) };
    let v: Value = serde_json::from_slice(config).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (os, arch) = (field("os"), field("architecture"));
    if (!os.is_empty() && os != want.os) || (!arch.is_empty() && arch != want.architecture) {
        return Err(RegistryError::NotFound {
            target: target.to_string(),
            detail: format!("the image is for {os}/{arch}, not {want}"),
        });
    }
    Ok(())
}
