//! The privileged calls the rootfs steps make, behind one narrow trait, so that what
//! `rootfs`, `devices`, `mounts` and `namespaces` do (which mounts, in which order, with
//! which flags) is unit-tested without root or a container: [`linux::LinuxSyscall`]
//! makes the calls, a recording implementation (`recording.rs`, tests only) records them
//! and can fail a chosen one.
//!
//! Only calls that need privilege or change the calling process (mount, umount,
//! pivot_root, chroot, chdir, unshare, sethostname, mknod, chmod of a device node) and
//! the one query that needs a mount (statvfs of a mount point's flags) go through it;
//! creating directories, empty files and symlinks under the rootfs stays plain
//! `std::fs`, which a test runs for real in a temporary directory.

pub mod linux;
#[cfg(test)]
pub mod recording;

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statvfs::FsFlags;

/// The privileged calls of the rootfs steps. Each mirrors one system call and returns
/// its bare errno; the callers add what they were doing and where.
pub trait Syscall {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    /// `chroot(2)`.
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    /// `chdir(2)` (the process' working directory: pivot_root works relative to it).
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// `unshare(2)`.
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    /// `setns(2)`: joins the namespace `fd` refers to (of type `flags`).
    fn setns(&self, fd: std::os::fd::BorrowedFd<'_>, flags: CloneFlags) -> nix::Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// `mknod(2)`.
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: libc::dev_t) -> nix::Result<()>;
    /// `chmod(2)` (following symlinks), for modes the umask cut from `mknod`.
    fn chmod(&self, path: &Path, mode: Mode) -> nix::Result<()>;
    /// The mount flags of the file system at `path` (`statvfs(3)`'s `f_flag`).
    fn statvfs_flags(&self, path: &Path) -> nix::Result<FsFlags>;
}
