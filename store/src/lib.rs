//! strata's layer store: blobs by digest, extracted layers by chainID, images and
//! containers on disk. Knows nothing of FUSE; the launcher mounts what it lays out.
//!
//! Layout under the root:
//! * `blobs/sha256/<hex>` — image configs and layer blobs as imported
//! * `layers/<chainid-hex>/{diff/,layer.json}` — each layer extracted once per chainID,
//!   whiteouts in overlay format
//! * `images/<id>.json` — per-image record (config digest, layers)
//! * `tags.json` — `NAME:TAG` → image id
//! * `containers/<id>/{upper,work,merged,init,container.json}`
//! * `distribution/` — which registry blobs are which layers ([`distribution`])
//! * `lock` — `flock`ed by writers; `pin.lock` — held shared by pulls, pushes and
//!   exports, exclusive by `prune` ([`lock`]); `tmp/` — work dirs of in-flight
//!   operations (what a killed writer left is removed by the next one to take the lock)
//!   and partial downloads (`tmp/downloads/`, resumed by the next pull)

#![forbid(unsafe_code)]

pub mod changes;
pub mod compression;
pub mod container;
pub mod digest;
pub mod distribution;
pub mod error;
pub mod export;
pub mod extract;
pub mod fsutil;
pub mod image;
pub mod import;
pub mod layer_tree;
pub mod lock;
pub mod mountinfo;
pub mod new_image;
pub mod ops;
pub mod progress;
pub mod reference;
pub mod root;
pub mod tarwrite;
mod upper_walk;

use std::fs;
use std::path::{Path, PathBuf};

pub use container::Container;
pub use error::StoreError;
pub use image::{Image, ImageRunConfig, Layer};

use container::ContainerRecord;
use error::IoContext;
use image::{ImageRecord, TagIndex};
use lock::StoreLock;

/// A handle on a store root. Cheap; every call reads the on-disk state afresh, so
/// several processes can share one root (writers serialize on the lock file).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    max_layer_size: u64,
}

/// The environment variable that sets [`Store::max_layer_size`] (bytes, or with a
/// `K`/`M`/`G`/`T` suffix in powers of 1024; `0` means no limit).
pub const MAX_LAYER_SIZE_ENV: &str = "STRATA_MAX_LAYER_SIZE";

/// The default cap on a layer's uncompressed size: 64 GiB, far above any real layer
/// (the largest public images' layers are a few GiB) yet below what a decompression
/// bomb would fill a disk with. Ratio caps are not used: layers of zeros or sparse
/// files legitimately compress a thousandfold (zstd far more).
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

/// Parses a size as [`MAX_LAYER_SIZE_ENV`] takes it: bytes, or a number with a
/// `K`, `M`, `G` or `T` suffix (powers of 1024, optionally followed by `iB` or `B`).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store at `root`, else at the default root:
    /// `$STRATA_ROOT`, `/var/lib/strata` as root, `$XDG_DATA_HOME/strata` or
    /// `~/.local/share/strata` otherwise. The layer size cap is taken from
    /// `$STRATA_MAX_LAYER_SIZE` if set, else [`DEFAULT_MAX_LAYER_SIZE`].
    pub fn open(root: Option<PathBuf>) -> Result<Store, StoreError> {
        let max_layer_size = match std::env::var(MAX_LAYER_SIZE_ENV) {
            Err(_) => DEFAULT_MAX_LAYER_SIZE,
            Ok(v) => parse_size(&v).ok_or_else(|| {
                StoreError::Conflict(format!(
                    "${MAX_LAYER_SIZE_ENV}={v:?}: not a size (bytes, or a number with K, M, G or T)"
                ))
            })?,
        };
        let root = match root {
            Some(r) => r,
            None => root::default_root()?,
        };
        for sub in ["blobs/sha256", "layers", "images", "containers", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).ctx("create dir", &d)?;
        }
        let root = fs::canonicalize(&root).ctx("resolve", &root)?;
        Ok(Store {
            root,
            max_layer_size,
        })
    }

    /// The same store with the cap on a layer's uncompressed size set to `bytes`
    /// (`0`: no limit). An import or pull of a layer expanding past it is refused.
    pub fn with_max_layer_size(mut self, bytes: u64) -> Store {
        self.max_layer_size = bytes;
        self
    }

    /// The cap on a layer's uncompressed size in bytes (`0`: no limit).
    pub fn max_layer_size(&self) -> u64 {
        self.max_layer_size
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the writer lock (blocking until other writers are done), then removes
    /// what writers killed mid-operation left (see [`Store::remove_stale_temp`]).
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let lock = StoreLock::acquire(&self.root.join("lock"))?;
        self.remove_stale_temp();
        Ok(lock)
    }

    /// Pins the store for an operation that works on it without the writer lock (a
    /// pull, a push, an export): `prune` waits until it ends. Take it before
    /// [`Store::lock`], never while holding that.
    pub fn pin(&self) -> Result<lock::Pin, StoreError> {
        lock::Pin::shared(&self.pin_path())
    }

    /// The pin's lock file (see [`lock`]).
    fn pin_path(&self) -> PathBuf {
        self.root.join("pin.lock")
    }

    /// Removes the staging a killed writer left: `tmp/*` but `tmp/downloads` (work
    /// dirs of imports, commits and container creation, `rm-*` and `prune-*` trash)
    /// and `.tmp-*` files (atomic writes, spooled blobs) in `blobs/sha256`, `images`
    /// and the root. Every writer makes these only while holding the lock, so once the
    /// caller holds it none of them is in use. `tmp/downloads` holds partial
    /// downloads, fetched without the lock and resumed by the next pull; `prune`
    /// removes those. Failures are logged, not returned: leftovers only cost space.
    fn remove_stale_temp(&self) {
        let tmp = self.root.join("tmp");
        for p in fsutil::list_dir(&tmp).unwrap_or_default() {
            if p.file_name().is_some_and(|n| n == "downloads") {
                continue;
            }
            log::debug!("removing {} (left by a killed writer)", p.display());
            if let Err(e) = fsutil::remove_tree(&p) {
                log::warn!("stale temp not removed: {e}");
            }
        }
        for dir in [
            self.root.join("blobs/sha256"),
            self.root.join("images"),
            self.root.clone(),
        ] {
            for p in fsutil::list_dir(&dir).unwrap_or_default() {
                let stale = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".tmp-"));
                if stale && p.is_file() {
                    log::debug!("removing {} (left by a killed writer)", p.display());
                    if let Err(e) = fs::remove_file(&p) {
                        log::warn!("stale temp {} not removed: {e}", p.display());
                    }
                }
            }
        }
    }

    /// Path of a blob by `sha256:` digest.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = digest::digest_hex(digest).ok_or_else(|| StoreError::InvalidReference {
            reference: digest.to_string(),
            reason: "not a sha256 digest".into(),
        })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Directory of an extracted layer (`layers/<hex>`) by chainID.
    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        let hex = digest::digest_hex(chain_id).ok_or_else(|| StoreError::InvalidReference {
            reference: chain_id.to_string(),
            reason: "not a sha256 chainID".into(),
        })?;
        Ok(self.root.join("layers").join(hex))
    }

    fn image_record_path(&self, id: &str) -> PathBuf {
        self.root.join("images").join(format!("{id}.json"))
    }

    /// The tag index.
    pub fn tags(&self) -> Result<TagIndex, StoreError> {
        let p = self.root.join("tags.json");
        if !p.exists() {
            return Ok(TagIndex::new());
        }
        fsutil::read_json(&p)
    }

    /// Replaces the tag index (caller holds the lock).
    pub fn save_tags(&self, tags: &TagIndex) -> Result<(), StoreError> {
        fsutil::write_json(&self.root.join("tags.json"), tags)
    }

    /// Ids of all images, sorted.
    pub fn image_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for p in fsutil::list_dir(&self.root.join("images"))? {
            if let Some(id) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|id| digest::is_hex64(id))
            {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    /// Loads an image by full id.
    pub fn image_by_id(&self, id: &str) -> Result<Image, StoreError> {
        let path = self.image_record_path(id);
        if !path.exists() {
            return Err(StoreError::ImageNotFound(id.to_string()));
        }
        let rec: ImageRecord = fsutil::read_json(&path)?;
        let cfg_path = self.blob_path(&rec.config_digest)?;
        let raw_config: serde_json::Value = fsutil::read_json(&cfg_path)?;
        let tags = self
            .tags()?
            .into_iter()
            .filter(|(_, v)| v == id)
            .map(|(k, _)| k)
            .collect();
        Ok(Image {
            id: rec.id,
            tags,
            config: ImageRunConfig::from_config_json(&raw_config),
            config_digest: rec.config_digest,
            layers: rec.layers,
            created: rec.created,
            manifest_digest: rec.manifest_digest,
            raw_config,
        })
    }

    /// All images, sorted by id.
    pub fn images(&self) -> Result<Vec<Image>, StoreError> {
        self.image_ids()?
            .iter()
            .map(|id| self.image_by_id(id))
            .collect()
    }

    /// Resolves `NAME`, `NAME:TAG` (default `:latest`), a full id (optionally
    /// `sha256:`-prefixed) or a unique id prefix.
    pub fn resolve_image(&self, reference: &str) -> Result<Image, StoreError> {
        let tags = self.tags()?;
        if let Ok(norm) = reference::normalize(reference) {
            if let Some(id) = tags.get(&norm) {
                return self.image_by_id(id);
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        let is_hex = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_hex {
            let matches: Vec<String> = self
                .image_ids()?
                .into_iter()
                .filter(|id| id.starts_with(prefix))
                .collect();
            match matches.len() {
                0 => {}
                1 => return self.image_by_id(&matches[0]),
                _ => return Err(StoreError::AmbiguousImage(reference.to_string())),
            }
        }
        Err(StoreError::ImageNotFound(reference.to_string()))
    }

    /// The image's extracted layer dirs, top-most first (the order `lowerdir=` wants).
    pub fn lower_dirs(&self, image: &Image) -> Result<Vec<PathBuf>, StoreError> {
        let mut out = Vec::with_capacity(image.layers.len());
        for l in image.layers.iter().rev() {
            let d = self.layer_dir(&l.chain_id)?.join("diff");
            if !d.is_dir() {
                return Err(StoreError::Corrupt {
                    path: d,
                    reason: format!(
                        "layer {} of image {} is missing; re-import the image",
                        l.chain_id, image.id
                    ),
                });
            }
            out.push(d);
        }
        Ok(out)
    }

    /// A container's full lower stack, top-most first: its init layer, then the image's
    /// layers.
    pub fn container_lower_dirs(&self, c: &Container) -> Result<Vec<PathBuf>, StoreError> {
        let image = self.image_by_id(&c.image_id)?;
        let mut out = vec![c.init_layer.clone()];
        out.extend(self.lower_dirs(&image)?);
        Ok(out)
    }

    /// Creates `containers/<id>/{upper,work,merged}` and the init layer for a new
    /// container of `image`. `name` defaults to `strata-<first 12 of id>`; an empty
    /// `hostname` means the first 12 hex digits of the id (as docker does).
    pub fn create_container(
        &self,
        image: &Image,
        name: Option<&str>,
        hostname: &str,
    ) -> Result<Container, StoreError> {
        if !hostname.is_empty() {
            container::check_hostname(hostname)?;
        }
        if let Some(n) = name {
            container::check_name(n)?;
        }
        let _lock = self.lock()?;
        // The image must still be there once we hold the lock.
        self.image_by_id(&image.id)?;
        let id = fsutil::random_hex64()?;
        let hostname = if hostname.is_empty() {
            &id[..12]
        } else {
            hostname
        };
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| format!("strata-{}", &id[..12]));
        if self.list_containers()?.iter().any(|c| c.name == name) {
            return Err(StoreError::NameInUse(name));
        }
        let tmp = fsutil::temp_dir(&self.root)?;
        for sub in ["upper", "work", "merged", "init", "runtime"] {
            let d = tmp.path().join(sub);
            fs::create_dir(&d).ctx("create dir", &d)?;
        }
        container::write_init_layer(&tmp.path().join("init"), hostname)?;
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            image_id: image.id.clone(),
            hostname: hostname.to_string(),
            created: unix_now(),
        };
        fsutil::write_json(&tmp.path().join("container.json"), &rec)?;
        let dir = self.root.join("containers").join(&id);
        let tmp_path = tmp.keep();
        fs::rename(&tmp_path, &dir).ctx("rename into", &dir)?;
        Ok(Container::from_record(dir, rec))
    }

    /// Loads a container by name, full id or unique id prefix.
    pub fn container(&self, name_or_id: &str) -> Result<Container, StoreError> {
        let all = self.list_containers()?;
        if let Some(c) = all
            .iter()
            .find(|c| c.name == name_or_id || c.id == name_or_id)
        {
            return Ok(c.clone());
        }
        let by_prefix: Vec<&Container> = all
            .iter()
            .filter(|c| !name_or_id.is_empty() && c.id.starts_with(name_or_id))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(StoreError::ContainerNotFound(name_or_id.to_string())),
            _ => Err(StoreError::Conflict(format!(
                "container reference {name_or_id:?} is ambiguous"
            ))),
        }
    }

    /// All containers, oldest first.
    pub fn list_containers(&self) -> Result<Vec<Container>, StoreError> {
        let mut out = Vec::new();
        for dir in fsutil::list_dir(&self.root.join("containers"))? {
            let rec_path = dir.join("container.json");
            if !rec_path.exists() {
                continue;
            }
            let rec: ContainerRecord = fsutil::read_json(&rec_path)?;
            out.push(Container::from_record(dir, rec));
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Removes a container's storage. The caller (the runtime) must have unmounted
    /// `merged` and stopped its processes first; a still-mounted `merged` is refused.
    pub fn remove_container(&self, name_or_id: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let c = self.container(name_or_id)?;
        if mountinfo::is_mount_point(&c.merged) {
            return Err(StoreError::Conflict(format!(
                "container {} is still mounted at {}; stop it first",
                c.name,
                c.merged.display()
            )));
        }
        // Rename out of the way first so a crash mid-removal leaves no half container.
        let trash = self.root.join("tmp").join(format!("rm-{}", c.id));
        fs::rename(&c.dir, &trash).ctx("rename", &c.dir)?;
        fsutil::remove_tree(&trash)
    }
}

#[cfg(test)]
mod tests;
