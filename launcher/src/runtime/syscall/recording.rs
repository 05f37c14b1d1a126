//! [`RecordingSyscall`]: a [`Syscall`] for unit tests that makes no call, records each
//! one in order, and fails the ones a test chose (to check that an error names what
//! failed and where).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statvfs::FsFlags;

use super::Syscall;

/// One recorded call, with its arguments as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chroot(PathBuf),
    Chdir(PathBuf),
    Unshare(CloneFlags),
    Setns(CloneFlags),
    Sethostname(String),
    Mknod {
        path: PathBuf,
        kind: SFlag,
        perm: Mode,
        dev: libc::dev_t,
    },
    Chmod {
        path: PathBuf,
        mode: Mode,
    },
    StatvfsFlags(PathBuf),
}

/// A mount as a test compares it: source, fstype, target relative to the rootfs,
/// flags, data.
pub type MountCall = (
    Option<String>,
    Option<String>,
    String,
    MsFlags,
    Option<String>,
);

/// Which calls fail: a test's predicate over a recorded call.
type FailWhen = Box<dyn Fn(&Call) -> bool>;

/// Records calls instead of making them. Single-threaded, as the rootfs steps are.
#[derive(Default)]
pub struct RecordingSyscall {
    calls: RefCell<Vec<Call>>,
    /// Calls failing with an errno: the first whose predicate matches fails.
    failures: Vec<(FailWhen, Errno)>,
    /// What `statvfs_flags` answers (the flags a mount point carries).
    pub fs_flags: FsFlags,
}

impl RecordingSyscall {
    /// Nothing recorded, nothing failing, mounts with no flags.
    pub fn new() -> RecordingSyscall {
        RecordingSyscall::default()
    }

    /// Makes every call matching `pred` fail with `errno` (it is still recorded).
    pub fn fail_when(mut self, pred: impl Fn(&Call) -> bool + 'static, errno: Errno) -> Self {
        self.failures.push((Box::new(pred), errno));
        self
    }

    /// Everything recorded, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The recorded mounts, with targets (and sources) under `root` made relative
    /// to it (`proc`, `dev/pts`; the root itself is `.`), others kept as given.
    pub fn mounts_under(&self, root: &Path) -> Vec<MountCall> {
        let rel = |p: &Path| match p.strip_prefix(root) {
            Ok(r) if r.as_os_str().is_empty() => ".".to_string(),
            Ok(r) => r.display().to_string(),
            Err(_) => p.display().to_string(),
        };
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => Some((
                    source.as_deref().map(rel),
                    fstype.clone(),
                    rel(target),
                    *flags,
                    data.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: Call) -> nix::Result<()> {
        let failed = self
            .failures
            .iter()
            .find(|(pred, _)| pred(&call))
            .map(|(_, errno)| *errno);
        self.calls.borrow_mut().push(call);
        match failed {
            Some(errno) => Err(errno),
            None => Ok(()),
        }
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        self.record(Call::Umount2 {
            target: target.to_path_buf(),
            flags,
        })
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        self.record(Call::PivotRoot {
            new_root: new_root.to_path_buf(),
            put_old: put_old.to_path_buf(),
        })
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chroot(path.to_path_buf()))
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chdir(path.to_path_buf()))
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn setns(&self, _fd: std::os::fd::BorrowedFd<'_>, flags: CloneFlags) -> nix::Result<()> {
        self.record(Call::Setns(flags))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Sethostname(name.to_string()))
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: libc::dev_t) -> nix::Result<()> {
        self.record(Call::Mknod {
            path: path.to_path_buf(),
            kind,
            perm,
            dev,
        })
    }

    fn chmod(&self, path: &Path, mode: Mode) -> nix::Result<()> {
        self.record(Call::Chmod {
            path: path.to_path_buf(),
            mode,
        })
    }

    fn statvfs_flags(&self, path: &Path) -> nix::Result<FsFlags> {
        self.record(Call::StatvfsFlags(path.to_path_buf()))?;
        Ok(self.fs_flags)
    }
}
