//! Layer blob compression: detected by magic bytes (gzip, zstd, plain tar), mapped to
//! OCI media types.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{IoContext, StoreError};

/// OCI media type of an uncompressed layer.
pub const MEDIA_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const MEDIA_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const MEDIA_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Opens a layer blob and returns a reader of the uncompressed tar plus the blob's
/// media type, detecting the compression from its first bytes.
pub fn open_layer(path: &Path) -> Result<(Box<dyn Read>, &'static str), StoreError> {
    let file = File::open(path).ctx("open layer blob", path)?;
    decompress(file, path)
}

/// Wraps the stored bytes of a layer blob (`path` names it in errors) in a reader of
/// the uncompressed tar, detecting the compression from the first bytes.
pub fn decompress<'a, R: Read + 'a>(
    stored: R,
    path: &Path,
) -> Result<(Box<dyn Read + 'a>, &'static str), StoreError> {
    let mut r = BufReader::with_capacity(256 * 1024, stored);
    let head = r.fill_buf().ctx("read layer blob", path)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Box::new(flate2::read::MultiGzDecoder::new(r)),
            MEDIA_TAR_GZIP,
        ))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(r).ctx("open zstd layer", path)?;
        Ok((Box::new(d), MEDIA_TAR_ZSTD))
    } else {
        Ok((Box::new(r), MEDIA_TAR))
    }
}

/// The gzip form of layer `layer` (whose blob is a plain tar: a layer strata made with
/// `commit` or `image create`), as registries expect layers. Made once, kept in
/// `blobs/` and named in `distribution/gzip-by-diffid/` (which `prune` honours), so
/// every push of the layer sends the same bytes. Returns its digest and size. The
/// caller holds the store lock.
pub fn gzip_blob(store: &crate::Store, layer: &crate::Layer) -> Result<(String, u64), StoreError> {
    use std::io::Write;

    use crate::digest::{HashingWriter, digest_hex};

    let hex = digest_hex(&layer.diff_id)
        .ok_or_else(|| StoreError::bad(store.root(), format!("bad diffID {}", layer.diff_id)))?;
    let record = store
        .root()
        .join("distribution/gzip-by-diffid/sha256")
        .join(hex);
    if let Ok(d) = std::fs::read_to_string(&record) {
        let d = d.trim().to_string();
        if let Ok(p) = store.blob_path(&d) {
            if let Ok(md) = std::fs::metadata(&p) {
                return Ok((d, md.len()));
            }
        }
    }
    let src = store.blob_path(&layer.blob_digest)?;
    let (mut tar, _) = open_layer(&src)?;
    let dir = store.root().join("blobs/sha256");
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-gzip-")
        .tempfile_in(&dir)
        .ctx("create temp file in", &dir)?;
    let hashing = HashingWriter::new(std::io::BufWriter::new(tmp));
    let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::default());
    std::io::copy(&mut tar, &mut gz).ctx("compress", &src)?;
    let hashing = gz.finish().ctx("compress", &src)?;
    let (buf, digest, size) = hashing.finish();
    let mut tmp = buf
        .into_inner()
        .map_err(|e| StoreError::io("write", &dir, e.into_error()))?;
    tmp.flush().ctx("write", &dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .ctx("chmod", tmp.path())?;
    }
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    let dst = store.blob_path(&digest)?;
    tmp.persist(&dst)
        .map_err(|e| StoreError::io("rename into", &dst, e.error))?;
    if let Some(parent) = record.parent() {
        std::fs::create_dir_all(parent).ctx("create dir", parent)?;
    }
    crate::fsutil::write_atomic(&record, digest.as_bytes())?;
    Ok((digest, size))
}
