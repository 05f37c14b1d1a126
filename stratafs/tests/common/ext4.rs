//! A fresh, loop-mounted ext4 file system for tests whose scenario needs ext4's own
//! allocation (e.g. a freed inode number handed to the next object made), which the
//! shared, long-used `/tmp` does not promise.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::mount::{Mount, is_mounted};

/// An ext4 image in a temporary directory, mounted until dropped.
pub struct Ext4 {
    _dir: tempfile::TempDir,
    mount: Option<Mount>,
    mnt: PathBuf,
}

impl Ext4 {
    /// Makes and mounts a `mib` MiB image (needs root, `mkfs.ext4` and a loop device).
    pub fn new(mib: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the ext4 image");
        let img = dir.path().join("ext4.img");
        let mnt = dir.path().join("fs");
        std::fs::create_dir(&mnt).expect("create the ext4 mount point");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(mib << 20))
            .unwrap_or_else(|e| panic!("create {}: {e}", img.display()));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        Self {
            _dir: dir,
            mount: Some(Mount::adopt(&mnt, false)),
            mnt,
        }
    }

    /// The file system's root.
    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            if is_mounted(&self.mnt) {
                m.unmount();
            }
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
