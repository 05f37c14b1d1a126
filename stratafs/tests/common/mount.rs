//! Mounting the two sides of a differential test: kernel overlayfs (the reference) and
//! the FUSE implementation under test, with guards that unmount on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::layers::LayerSet;

/// The FUSE overlay implementation under test, chosen by env `STRATA_TEST_FS`:
/// `stratafs` (default, this crate's binary) or `fuse-overlayfs` (/usr/bin/fuse-overlayfs,
/// used to validate the harness itself).
#[derive(Debug, Clone)]
pub struct Impl {
    /// Short name for messages and for `mount -t fuse.NAME`.
    pub name: &'static str,
    /// The daemon binary.
    pub bin: PathBuf,
}

impl Impl {
    /// The implementation selected by `STRATA_TEST_FS`.
    pub fn selected() -> Self {
        match std::env::var("STRATA_TEST_FS").as_deref() {
            Ok("fuse-overlayfs") => Self {
                name: "fuse-overlayfs",
                bin: PathBuf::from("/usr/bin/fuse-overlayfs"),
            },
            Ok("stratafs") | Err(_) => Self {
                name: "stratafs",
                bin: PathBuf::from(env!("CARGO_BIN_EXE_stratafs")),
            },
            Ok(other) => panic!("STRATA_TEST_FS={other}: expected stratafs or fuse-overlayfs"),
        }
    }

    /// Runs the daemon on `set` with `options` (a full `-o` value); returns the guard or
    /// the daemon's stderr. For stratafs, env `STRATA_TEST_IO` (inode, handles,
    /// passthrough) picks its `io=` strategy, so one suite covers each I/O path,
    /// unless `options` names one.
    pub fn mount_with(&self, mnt: &Path, options: &str) -> Result<Mount, String> {
        let mut options = options.to_string();
        if self.name == "stratafs" && !options.split(',').any(|o| o.starts_with("io=")) {
            if let Ok(io) = std::env::var("STRATA_TEST_IO") {
                options.push_str(&format!(",io={io}"));
            }
        }
        let options = options.as_str();
        let out = Command::new(&self.bin)
            .args(["-o", options])
            .arg(mnt)
            .output()
            .map_err(|e| format!("run {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} -o {options} {} failed ({}): {}",
                self.name,
                mnt.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if !is_mounted(mnt) {
            return Err(format!(
                "{} exited 0 but {} is not mounted",
                self.name,
                mnt.display()
            ));
        }
        Ok(Mount {
            mnt: mnt.to_path_buf(),
            fuse: true,
        })
    }

    /// Mounts `set` writable (lowers, upper, work) on `set.mnt`, panicking on failure.
    pub fn mount(&self, set: &LayerSet) -> Mount {
        self.mount_with(&set.mnt, &set.options())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `io=` strategy stratafs runs with when no option names one.
    pub fn io_from_env() -> String {
        std::env::var("STRATA_TEST_IO").unwrap_or_else(|_| "inode".into())
    }
}

/// A live mount; unmounted (lazily if busy) when dropped, so failing tests leave nothing.
#[derive(Debug)]
pub struct Mount {
    mnt: PathBuf,
    fuse: bool,
}

impl Mount {
    /// Adopts a mount made some other way (e.g. through `mount -t fuse.NAME`).
    pub fn adopt(mnt: &Path, fuse: bool) -> Self {
        Self {
            mnt: mnt.to_path_buf(),
            fuse,
        }
    }

    /// Unmounts now, asserting it worked (a clean `fusermount3 -u` / umount2).
    pub fn unmount(self) {
        let how = if self.fuse { "fusermount3" } else { "umount2" };
        self.unmount_with(how);
    }

    /// Unmounts now with `how` — `fusermount3` (-u), `umount` (the command) or
    /// `umount2` (the syscall) — asserting it worked and nothing is left mounted.
    pub fn unmount_with(self, how: &str) {
        // EBUSY can be transient: a process another test thread is forking holds copies
        // of our descriptors until it execs.
        let mut ok = false;
        for _ in 0..50 {
            ok = match how {
                "umount2" => umount2(&self.mnt, 0),
                tool => {
                    let mut cmd = Command::new(tool);
                    if tool == "fusermount3" {
                        cmd.arg("-u");
                    }
                    cmd.arg(&self.mnt)
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                }
            };
            if ok {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(ok, "{how} {} failed", self.mnt.display());
        assert!(
            !is_mounted(&self.mnt),
            "{} still mounted",
            self.mnt.display()
        );
        // Already unmounted: nothing left for Drop to do.
        std::mem::forget(self);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !is_mounted(&self.mnt) {
            return;
        }
        if self.fuse {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .status();
        }
        if is_mounted(&self.mnt) && !umount2(&self.mnt, 0) {
            umount2(&self.mnt, libc::MNT_DETACH);
        }
    }
}

fn umount2(p: &Path, flags: libc::c_int) -> bool {
    let c = super::cpath(p);
    // SAFETY: `c` is a valid NUL-terminated path.
    unsafe { libc::umount2(c.as_ptr(), flags) == 0 }
}

/// Whether something is mounted exactly at `p` (per /proc/self/mountinfo).
pub fn is_mounted(p: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// The reference mount options: what DESIGN.md says stratafs behaves like.
pub const KERNEL_FEATURES: &str = "redirect_dir=on,index=on,xino=on";

/// Mounts kernel overlayfs over `set` with [`KERNEL_FEATURES`] (read-only when `upper`
/// is false). Layer paths are passed relative to `set.root` (the mount runs there) so
/// even hundreds of lowers fit in one page of mount options.
pub fn mount_kernel(set: &LayerSet, upper: bool) -> Mount {
    let rel = |p: &Path| p.strip_prefix(&set.root).unwrap_or(p).display().to_string();
    let lowers: Vec<String> = set.lowers.iter().map(|l| rel(l)).collect();
    let mut opts = format!("lowerdir={}", lowers.join(":"));
    if upper {
        opts += &format!(
            ",upperdir={},workdir={},{KERNEL_FEATURES}",
            rel(&set.upper),
            rel(&set.work)
        );
    }
    let out = Command::new("mount")
        .current_dir(&set.root)
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&set.mnt)
        .output()
        .expect("run mount(8)");
    assert!(
        out.status.success(),
        "kernel overlay mount -o {opts} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mount {
        mnt: set.mnt.clone(),
        fuse: false,
    }
}
