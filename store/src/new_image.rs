//! New images from directories: `image create --from-dir [--parent]` and `commit`
//! (a container's upper as a new layer on its image). The layer tar is written to a
//! temp file, then the image goes through the same verified registration as an import.

use std::fs;
use std::io::BufWriter;
use std::path::Path;

use serde_json::{Value, json};

use crate::digest::HashingWriter;
use crate::error::{IoContext, StoreError};
use crate::import::{ImageSource, LayerSource, register};
use crate::layer_tree::Lowers;
use crate::tarwrite::{TreeKind, write_tree, write_upper};
use crate::{Image, Store, fsutil, reference};

fn rfc3339_now() -> String {
    // Civil date from Unix days (Howard Hinnant's algorithm), UTC.
    let secs = crate::unix_now();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Stacks the tree at `dir` (of `kind`) as a new layer on `parent` (or alone) and
/// registers the result tagged `tag`.
pub fn image_from_tree(
    store: &Store,
    dir: &Path,
    kind: TreeKind,
    parent: Option<&Image>,
    tag: &str,
    created_by: &str,
) -> Result<Image, StoreError> {
    let tag = reference::normalize(tag)?;
    if !fs::symlink_metadata(dir).ctx("stat", dir)?.is_dir() {
        return Err(StoreError::bad(dir, "not a directory"));
    }
    let _lock = store.lock()?;
    let work = fsutil::temp_dir(store.root())?;
    let tar_path = work.path().join("layer.tar");
    let file = fs::File::create(&tar_path).ctx("create", &tar_path)?;
    let out = HashingWriter::new(BufWriter::new(file));
    let hw = match (kind, parent) {
        // An upper is read over its image's layers: renamed lower dirs and metacopy
        // files take their content from there.
        (TreeKind::Upper, Some(p)) => write_upper(dir, &Lowers::new(store.lower_dirs(p)?), out)?,
        _ => write_tree(dir, kind, out)?,
    };
    let (buf, diff_id, _) = hw.finish();
    buf.into_inner()
        .map_err(|e| StoreError::io("write", &tar_path, e.into_error()))?
        .sync_all()
        .ctx("fsync", &tar_path)?;
    let mut config: Value = match parent {
        Some(p) => p.raw_config.clone(),
        None => json!({
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }),
    };
    let now = rfc3339_now();
    config["created"] = json!(now);
    match config
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
    {
        Some(ids) => ids.push(json!(diff_id)),
        None => config["rootfs"] = json!({"type": "layers", "diff_ids": [diff_id]}),
    }
    let entry = json!({"created": now, "created_by": created_by});
    match config.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(entry),
        None => config["history"] = json!([entry]),
    }
    let mut layers = Vec::new();
    for l in parent.map(|p| p.layers.as_slice()).unwrap_or_default() {
        layers.push(LayerSource {
            path: None,
            expected_digest: Some(l.blob_digest.clone()),
        });
    }
    layers.push(LayerSource {
        path: Some(tar_path.clone()),
        expected_digest: None,
    });
    let bytes = serde_json::to_vec(&config).map_err(|e| StoreError::bad(dir, e.to_string()))?;
    let src = ImageSource {
        config: bytes,
        config_path: dir.to_path_buf(),
        expected_config_digest: None,
        layers,
        tags: vec![tag],
        manifest: None,
    };
    register(store, &src)
}

/// `strata commit`: the container's upper as a new layer on its image.
pub fn commit_container(store: &Store, container: &str, tag: &str) -> Result<Image, StoreError> {
    let c = store.container(container)?;
    let image = store.image_by_id(&c.image_id)?;
    image_from_tree(
        store,
        &c.upper,
        TreeKind::Upper,
        Some(&image),
        tag,
        &format!("strata commit {}", c.name),
    )
}
