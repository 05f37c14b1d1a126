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

/// A file being written for `dest` that no one sees until [`OutputFile::persist`]:
/// an unnamed `O_TMPFILE` in `dest`'s directory where the filesystem supports it (a
/// writer killed mid-way leaves nothing behind), else a `.strata-export-*` temp file
/// there (left behind by a kill, as with `cp` or `docker save`).
pub struct OutputFile {
    file: File,
    dest: PathBuf,
    named: Option<tempfile::NamedTempFile>,
}

impl OutputFile {
    /// Starts a file to become `dest` (mode 0644 before the umask).
    pub fn create(dest: &Path) -> Result<OutputFile, StoreError> {
        use rustix::fs::{CWD, Mode, OFlags, openat};
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        match openat(CWD, dir, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => Ok(OutputFile {
                file: File::from(fd),
                dest: dest.to_path_buf(),
                named: None,
            }),
            Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR => {
                Err(StoreError::io("create a file in", dir, e.into()))
            }
            Err(_) => {
                // No O_TMPFILE here (an older kernel, a filesystem without it).
                let named = tempfile::Builder::new()
                    .prefix(".strata-export-")
                    .tempfile_in(dir)
                    .ctx("create temp file in", dir)?;
                let file = named.reopen().ctx("open", named.path())?;
                Ok(OutputFile {
                    file,
                    dest: dest.to_path_buf(),
                    named: Some(named),
                })
            }
        }
    }

    /// The file to write to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Flushes the file to disk and gives it its name, replacing what `dest` held.
    /// An unnamed file is linked in under a temp name and renamed over `dest` (link
    /// cannot replace), so `dest` is at every moment absent, the old file or the new.
    pub fn persist(self) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.dest;
        self.file.sync_all().ctx("fsync", &dest)?;
        if let Some(named) = self.named {
            named
                .as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .ctx("chmod", named.path())?;
            return named
                .persist(&dest)
                .map(|_| ())
                .map_err(|e| StoreError::io("rename into", &dest, e.error));
        }
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .ok_or_else(|| StoreError::bad(&dest, "no file name"))?;
        // Where nothing holds the name yet, the file is linked in under it directly:
        // no temp name a kill could leave behind.
        match link_fd(&self.file, &dest) {
            Ok(()) => return Ok(()),
            Err(_) if fs::symlink_metadata(&dest).is_err() => {
                return Err(StoreError::io(
                    "link",
                    &dest,
                    std::io::Error::other("cannot name the written file"),
                ));
            }
            Err(_) => {}
        }
        let tmp = dir.join(format!(
            ".{}.strata-{}",
            name.to_string_lossy(),
            &random_hex64()?[..12]
        ));
        link_fd(&self.file, &tmp)?;
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io("rename into", &dest, e));
        }
        Ok(())
    }
}

/// Gives the unnamed file `f` the name `to`: through `/proc/self/fd` (any user), else
/// `AT_EMPTY_PATH` (needs CAP_DAC_READ_SEARCH).
fn link_fd(f: &File, to: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;

    use rustix::fs::{AtFlags, CWD, linkat};
    let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
    match linkat(CWD, proc_path.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(()),
        Err(first) => linkat(f, "", CWD, to, AtFlags::EMPTY_PATH)
            .map_err(|_| StoreError::io("link", to, first.into())),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn output_file_appears_only_when_persisted() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = t.path().join("out.tar");
        fs::write(&dest, b"old").unwrap_or_else(|e| panic!("{e}"));
        let pending = OutputFile::create(&dest).unwrap_or_else(|e| panic!("{e}"));
        pending
            .file()
            .write_all(b"new contents")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&dest).ok().as_deref(), Some(&b"old"[..]));
        pending.persist().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&dest).ok().as_deref(), Some(&b"new contents"[..]));
        let names: Vec<_> = fs::read_dir(t.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.tar")]);
        // Dropped unpersisted: nothing named (with O_TMPFILE) or the temp removed.
        let gone = t.path().join("never.tar");
        let p = OutputFile::create(&gone).unwrap_or_else(|e| panic!("{e}"));
        drop(p);
        assert_eq!(fs::read_dir(t.path()).map(|r| r.count()).ok(), Some(1));
    }
}
