//! Small filesystem helpers: atomic writes (temp + fsync + rename), temp dirs inside
//! the store, random ids.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{IoContext, StoreError};

/// Writes `data` to `path` atomically: a temp file in the same dir, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::bad(path, "no parent directory"))?;
    fs::create_dir_all(dir).ctx("create dir", dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("create temp file in", dir)?;
    tmp.write_all(data).ctx("write", tmp.path())?;
    tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| StoreError::io("rename into", path, e.error))?;
    Ok(())
}

/// Reads a whole file, naming the path on error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs::read(path).ctx("read", path)
}

/// Parses a JSON file, naming the path on error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let data = read_file(path)?;
    serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let data = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &data)
}

/// 32 random bytes as 64 hex digits (container ids).
pub fn random_hex64() -> Result<String, StoreError> {
    let path = Path::new("/dev/urandom");
    let mut buf = [0u8; 32];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .ctx("read", path)?;
    Ok(hex::encode(buf))
}

/// Removes a directory tree if it exists (after making every dir writable, as rootless
/// extraction may have left read-only dirs).
pub fn remove_tree(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("stat", path, e)),
        Ok(m) if !m.is_dir() => return fs::remove_file(path).ctx("remove", path),
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_dirs_writable(path);
    fs::remove_dir_all(path).ctx("remove", path)
}

fn make_dirs_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700));
    if let Ok(rd) = fs::read_dir(path) {
        for e in rd.flatten() {
            make_dirs_writable(&e.path());
        }
    }
}

/// Creates a fresh private temp dir under `<root>/tmp`, removed on drop unless kept.
pub fn temp_dir(root: &Path) -> Result<tempfile::TempDir, StoreError> {
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).ctx("create dir", &tmp)?;
    tempfile::Builder::new()
        .prefix("work-")
        .tempdir_in(&tmp)
        .ctx("create temp dir in", &tmp)
}

/// The entries of a directory, or empty if it does not exist.
pub fn list_dir(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    match fs::read_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io("read dir", path, e)),
        Ok(rd) => {
            let mut out = Vec::new();
            for e in rd {
                out.push(e.ctx("read dir", path)?.path());
            }
            out.sort();
            Ok(out)
        }
    }
}

/// Turns a name from a layer (a tar entry, a hard link target, an overlay redirect)
/// into a relative path of normal components, or says why not: the one rule for names
/// that must stay inside a layer, shared by extraction and the overlay reader.
pub fn sanitize(name: &[u8]) -> Result<PathBuf, String> {
    let p = Path::new(OsStr::from_bytes(name));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("name contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute name".into());
            }
        }
    }
    Ok(out)
}
