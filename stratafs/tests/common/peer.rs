//! fuse-overlayfs 2.0, the peer some tests compare stratafs with option by option, and
//! mounting any overlay daemon binary by its own command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::mount::{Mount, is_mounted};

/// Where `scripts/deps` installs fuse-overlayfs 2.0.
pub const DEPS_BIN: &str = "/usr/local/lib/strata-deps/fuse-overlayfs-2.0/bin/fuse-overlayfs";

/// The fuse-overlayfs 2.x binary (`$STRATA_FUSE_OVERLAYFS2`, `~/.cargo/bin` or where
/// `scripts/deps` puts it), or why there is none.
pub fn fuse_overlayfs2() -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let candidates = [
        std::env::var_os("STRATA_FUSE_OVERLAYFS2").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/fuse-overlayfs")),
        Some(PathBuf::from(DEPS_BIN)),
    ];
    for bin in candidates.into_iter().flatten() {
        let version = Command::new(&bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        match version {
            Ok(v) if v.contains("version 2.") => return Ok(bin),
            Ok(v) => tried.push(format!("{} (says {:?})", bin.display(), v.trim())),
            Err(e) => tried.push(format!("{} ({e})", bin.display())),
        }
    }
    Err(format!(
        "needs fuse-overlayfs 2.x (scripts/deps installs it); tried: {}",
        tried.join(", ")
    ))
}

/// The fuse-overlayfs 2.x binary, or `None` after printing why the test is skipped;
/// under `CI=true` a missing one fails the test.
pub fn fuse_overlayfs2_or_skip() -> Option<PathBuf> {
    match fuse_overlayfs2() {
        Ok(bin) => Some(bin),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and this test {why}"
            );
            eprintln!("skipped: this test {why}");
            None
        }
    }
}

/// Mounts daemon `bin` with `-o opts` at `m`, waiting for the mount to show (a daemon
/// may return before it does: fuse-overlayfs 2.0 forks first; on a loaded machine that
/// has taken over 2 s).
///
/// Mount each time at a fresh mount point: fuse-overlayfs 2.0's daemon, exiting some
/// time after its unmount, unmounts whatever is mounted at its path by then (fuser's
/// drop), which would be a new mount at the same path.
pub fn mount_daemon(bin: &Path, opts: &str, m: &Path) -> Mount {
    let out = Command::new(bin)
        .args(["-o", opts])
        .arg(m)
        .output()
        .expect("run the daemon");
    let guard = Mount::adopt(m, true);
    assert!(
        out.status.success(),
        "{} -o {opts}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..750 {
        if is_mounted(m) {
            return guard;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "{} -o {opts}: nothing mounted at {}",
        bin.display(),
        m.display()
    );
}
