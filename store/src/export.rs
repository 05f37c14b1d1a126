//! `strata image export`: an image from the store as an oci-archive or a
//! docker-archive tar (an unnamed file named only when complete).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::json;

use crate::compression::open_layer;
use crate::error::{IoContext, StoreError};
use crate::{Image, Store, digest};

/// Archive formats `export_image` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// OCI image layout in a tar.
    OciArchive,
    /// `docker save` format.
    DockerArchive,
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
}

fn add_file<W: Write>(b: &mut tar::Builder<W>, name: &str, src: &Path) -> Result<(), StoreError> {
    let mut f = fs::File::open(src).ctx("open", src)?;
    b.append_file(name, &mut f).ctx("archive", src)
}

fn write_oci<W: Write>(
    store: &Store,
    img: &Image,
    b: &mut tar::Builder<W>,
) -> Result<(), StoreError> {
    let cfg_path = store.blob_path(&img.config_digest)?;
    let cfg_size = fs::metadata(&cfg_path).ctx("stat", &cfg_path)?.len();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.config_digest, "size": cfg_size},
        "layers": img.layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.blob_digest, "size": l.blob_size})).collect::<Vec<_>>(),
    });
    let mbytes =
        serde_json::to_vec(&manifest).map_err(|e| StoreError::bad(&cfg_path, e.to_string()))?;
    let mdigest = digest::sha256_digest(&mbytes);
    let mut desc = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": mbytes.len()});
    if let Some(tag) = img.tags.first() {
        let short = tag.rsplit_once(':').map_or("latest", |(_, t)| t);
        desc["annotations"] =
            json!({"org.opencontainers.image.ref.name": short, "io.containerd.image.name": tag});
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]});
    let ibytes =
        serde_json::to_vec(&index).map_err(|e| StoreError::bad(&cfg_path, e.to_string()))?;
    let io = |e| StoreError::io("archive", &cfg_path, e);
    add_bytes(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    add_bytes(b, "index.json", &ibytes).map_err(io)?;
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    add_bytes(b, &format!("blobs/sha256/{}", hex(&mdigest)), &mbytes).map_err(io)?;
    add_file(
        b,
        &format!("blobs/sha256/{}", hex(&img.config_digest)),
        &cfg_path,
    )?;
    let mut seen = Vec::new();
    let pb = crate::progress::layers(img.layers.len() as u64, "exporting");
    for l in &img.layers {
        pb.inc(1);
        if seen.contains(&l.blob_digest) {
            continue;
        }
        seen.push(l.blob_digest.clone());
        add_file(
            b,
            &format!("blobs/sha256/{}", hex(&l.blob_digest)),
            &store.blob_path(&l.blob_digest)?,
        )?;
    }
    Ok(())
}

fn write_docker<W: Write>(
    store: &Store,
    img: &Image,
    b: &mut tar::Builder<W>,
) -> Result<(), StoreError> {
    let cfg_path = store.blob_path(&img.config_digest)?;
    let cfg_name = format!("{}.json", img.id);
    add_file(b, &cfg_name, &cfg_path)?;
    let mut names = Vec::new();
    let pb = crate::progress::layers(img.layers.len() as u64, "exporting");
    for l in &img.layers {
        pb.inc(1);
        let name = format!("{}/layer.tar", l.diff_id.trim_start_matches("sha256:"));
        if !names.contains(&name) {
            let blob = store.blob_path(&l.blob_digest)?;
            let (r, _) = open_layer(&blob)?;
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(l.size);
            h.set_mtime(0);
            b.append_data(&mut h, &name, r).ctx("archive", &blob)?;
        }
        names.push(name);
    }
    let manifest = json!([{"Config": cfg_name, "RepoTags": img.tags, "Layers": names}]);
    let bytes =
        serde_json::to_vec(&manifest).map_err(|e| StoreError::bad(&cfg_path, e.to_string()))?;
    add_bytes(b, "manifest.json", &bytes).ctx("archive", &cfg_path)
}

/// Writes `image` to `out` in `format`; `out` appears only when complete.
pub fn export_image(
    store: &Store,
    image: &str,
    format: ArchiveFormat,
    out: &Path,
) -> Result<(), StoreError> {
    // Its blobs stay while they are read (`prune` waits).
    let _pin = store.pin()?;
    let img = store.resolve_image(image)?;
    let pending = crate::fsutil::OutputFile::create(out)?;
    let mut b = tar::Builder::new(BufWriter::new(pending.file()));
    match format {
        ArchiveFormat::OciArchive => write_oci(store, &img, &mut b)?,
        ArchiveFormat::DockerArchive => write_docker(store, &img, &mut b)?,
    }
    let w = b.into_inner().ctx("finish", out)?;
    w.into_inner()
        .map_err(|e| StoreError::io("write", out, e.into_error()))?;
    pending.persist()?;
    Ok(())
}
