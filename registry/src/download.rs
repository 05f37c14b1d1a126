//! One blob from a registry into the store's `tmp/downloads/`: written to
//! `<hex>.partial` under an exclusive lock (two pulls of one blob take turns), resumed
//! with an HTTP Range request where a partial file is left from an interrupted pull
//! or a broken connection, checked against its size and digest, then renamed to
//! `<hex>`. Nothing here registers anything: the store does, from the finished files.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::Reference;
use oci_client::client::BlobResponse;
use rustix::fs::{FlockOperation, flock};
use sha2::{Digest, Sha256};

use crate::connection::Connection;
use crate::error::RegistryError;
use crate::progress::BlobProgress;

/// Attempts per blob when the connection breaks mid-transfer (each resumes).
const ATTEMPTS: u32 = 4;

/// A blob to fetch, as a manifest describes it.
#[derive(Debug, Clone)]
pub struct BlobRef {
    /// `sha256:` digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// The store's download dir (`tmp/downloads`), created if needed.
pub fn downloads_dir(store: &store::Store) -> Result<PathBuf, RegistryError> {
    let d = store.root().join("tmp/downloads");
    std::fs::create_dir_all(&d)
        .map_err(|e| RegistryError::Local(format!("create {}: {e}", d.display())))?;
    Ok(d)
}

fn local(what: &str, p: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Local(format!("{what} {}: {e}", p.display()))
}

/// Takes the exclusive lock on `f`, waiting while another pull holds it.
async fn lock(f: &File, p: &Path) -> Result<(), RegistryError> {
    loop {
        match flock(f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(local("lock", p, e.into())),
        }
    }
}

/// The hash of what `f` holds (the part downloaded before), and its length.
fn hash_existing(f: &mut File, p: &Path) -> Result<(Sha256, u64), RegistryError> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    f.seek(SeekFrom::Start(0))
        .map_err(|e| local("seek", p, e))?;
    loop {
        let k = f.read(&mut buf).map_err(|e| local("read", p, e))?;
        if k == 0 {
            return Ok((h, n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

fn hex_of(digest: &str, target: &str) -> Result<String, RegistryError> {
    store::digest::digest_hex(digest)
        .map(str::to_string)
        .ok_or_else(|| RegistryError::Protocol {
            target: target.to_string(),
            detail: format!("unsupported digest {digest:?}"),
        })
}

/// Fetches `blob` of repository `r` into `dir`, returning the finished file.
pub async fn fetch(
    conn: &Connection,
    r: &Reference,
    blob: &BlobRef,
    dir: &Path,
    bar: &BlobProgress,
    target: &str,
) -> Result<PathBuf, RegistryError> {
    let hex = hex_of(&blob.digest, target)?;
    let done = dir.join(&hex);
    let partial = dir.join(format!("{hex}.partial"));
    if done.is_file() {
        // A pull killed before it registered the blob downloaded it (verified before
        // the rename): no partial file is made for it.
        bar.finish("done (downloaded before)");
        return Ok(done);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&partial)
        .map_err(|e| local("open", &partial, e))?;
    lock(&f, &partial).await?;
    if done.exists() {
        // Another pull finished it while we waited (it verified it before renaming).
        // The partial file opened above is ours to remove unless a later pull has made
        // a new one at that name meanwhile.
        let ours = f.metadata().map(|m| (m.dev(), m.ino())).ok();
        let there = std::fs::symlink_metadata(&partial)
            .map(|m| (m.dev(), m.ino()))
            .ok();
        if ours.is_some() && ours == there {
            let _ = std::fs::remove_file(&partial);
        }
        bar.finish("done (fetched by another pull)");
        return Ok(done);
    }
    let (mut hasher, mut len) = hash_existing(&mut f, &partial)?;
    if len > blob.size {
        f.set_len(0).map_err(|e| local("truncate", &partial, e))?;
        (hasher, len) = (Sha256::new(), 0);
    }
    let resumed_at = len;
    let mut attempt = 0;
    while len < blob.size || (blob.size == 0 && attempt == 0) {
        attempt += 1;
        let response = if len > 0 {
            conn.client
                .pull_blob_stream_partial(r, blob.digest.as_str(), len, None)
                .await
        } else {
            conn.client
                .pull_blob_stream(r, blob.digest.as_str())
                .await
                .map(BlobResponse::Full)
        };
        let mut stream = match response {
            Ok(BlobResponse::Partial(s)) => s.stream,
            Ok(BlobResponse::Full(s)) => {
                if len > 0 {
                    // The registry ignored the Range: start over.
                    log::info!("{}: no range support; downloading again", blob.digest);
                    f.set_len(0).map_err(|e| local("truncate", &partial, e))?;
                    (hasher, len) = (Sha256::new(), 0);
                }
                s.stream
            }
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                log::warn!("{}: {e}; retrying", blob.digest);
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                continue;
            }
            Err(e) => return Err(conn.error(target, e)),
        };
        f.seek(SeekFrom::Start(len))
            .map_err(|e| local("seek", &partial, e))?;
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if len + bytes.len() as u64 > blob.size {
                        f.set_len(0).map_err(|e| local("truncate", &partial, e))?;
                        return Err(RegistryError::Protocol {
                            target: target.to_string(),
                            detail: format!(
                                "blob {} is larger than the {} bytes its manifest says",
                                blob.digest, blob.size
                            ),
                        });
                    }
                    f.write_all(&bytes)
                        .map_err(|e| local("write", &partial, e))?;
                    hasher.update(&bytes);
                    len += bytes.len() as u64;
                    bar.set(len);
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        match broken {
            Some(e) if attempt < ATTEMPTS => {
                log::warn!(
                    "{}: transfer broke at {len} bytes ({e}); resuming",
                    blob.digest
                );
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            Some(e) => {
                return Err(RegistryError::Connection {
                    target: target.to_string(),
                    host: conn.host.clone(),
                    detail: format!(
                        "blob {} broke off at {len} of {} bytes: {e} (run the pull again to resume)",
                        blob.digest, blob.size
                    ),
                });
            }
            None if len < blob.size => {
                if attempt >= ATTEMPTS {
                    return Err(RegistryError::Protocol {
                        target: target.to_string(),
                        detail: format!(
                            "blob {} ended at {len} of {} bytes",
                            blob.digest, blob.size
                        ),
                    });
                }
            }
            None => break,
        }
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != blob.digest {
        let _ = std::fs::remove_file(&partial);
        return Err(RegistryError::DigestMismatch {
            target: target.to_string(),
            what: format!("blob {}", blob.digest),
            expected: blob.digest.clone(),
            actual,
        });
    }
    f.sync_all().map_err(|e| local("fsync", &partial, e))?;
    std::fs::rename(&partial, &done).map_err(|e| local("rename into", &done, e))?;
    bar.finish(&if resumed_at > 0 {
        format!("done (resumed at {resumed_at} bytes)")
    } else {
        "done".to_string()
    });
    Ok(done)
}

/// Errors worth another attempt: the connection, not the answer.
pub(crate) fn is_transient(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::RequestError(re) => re.is_connect() || re.is_timeout() || re.is_body(),
        E::ServerError { code, .. } => *code >= 500,
        _ => false,
    }
}
