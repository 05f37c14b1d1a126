//! `strata image import`: docker-archive tars, OCI layout dirs and oci-archive tars.

pub mod docker;
pub mod oci;
pub mod register;
pub mod unpack;

use std::path::Path;

pub use register::{ImageSource, LayerSource, register, register_all};

use crate::error::StoreError;
use crate::{Image, Store, fsutil, reference};

/// Imports the image(s) at `path` (detecting the format), adding `extra_tag` if given
/// (only to an archive holding one image). Re-importing the same image is a no-op apart
/// from tags. All or nothing: if any image of the archive fails verification, none of
/// them is registered and the store is unchanged.
pub fn import(
    store: &Store,
    path: &Path,
    extra_tag: Option<&str>,
) -> Result<Vec<Image>, StoreError> {
    let extra = extra_tag.map(reference::normalize).transpose()?;
    let meta = std::fs::metadata(path).map_err(|e| StoreError::io("stat", path, e))?;
    let _lock = store.lock()?;
    let work = fsutil::temp_dir(store.root())?;
    let root = if meta.is_dir() {
        path.to_path_buf()
    } else {
        let d = work.path().join("archive");
        std::fs::create_dir(&d).map_err(|e| StoreError::io("create dir", &d, e))?;
        unpack::unpack_archive(path, &d)?;
        d
    };
    let mut sources = if root.join("manifest.json").is_file() {
        docker::read_docker(&root)?
    } else if root.join("index.json").is_file() {
        oci::read_layout(&root)?
    } else {
        return Err(StoreError::bad(
            path,
            "neither a docker-archive (manifest.json) nor an OCI layout (index.json)",
        ));
    };
    if let Some(t) = extra {
        match sources.as_mut_slice() {
            [one] => one.tags.push(t),
            _ => {
                return Err(StoreError::bad(
                    path,
                    format!(
                        "--tag {t} is ambiguous: the archive holds {} images",
                        sources.len()
                    ),
                ));
            }
        }
    }
    register_all(store, &sources)
}
