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
