//! `strata cp SRC DST`, one side `CONTAINER:PATH` (as podman writes it): the copy is
//! made by a child process that takes a descriptor of the host side first, then enters
//! the container's root (a running container's mount namespace, and its user
//! namespace when rootless; a stopped container's union, mounted for the copy, by
//! chroot), so container paths resolve inside the container. The tree is copied fd-relative (`*at` calls, never following a
//! symlink, which is copied as one): regular files, directories, symlinks, modes.
//! As podman does: a DST that is a directory receives SRC under its own name; else
//! DST names the copy.

use std::ffi::{CStr, OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::runtime::spec::Driver;
use crate::runtime::sync::{Msg, Pipe};
use crate::runtime::union;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A host path.
    Host(PathBuf),
    /// A container (name or id) and a path in it.
    Container(String, PathBuf),
}

/// Parses `CONTAINER:PATH` (the part before the first `:` holds no `/`) or a host path.
pub fn parse(s: &str) -> Endpoint {
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => {
            let p = if p.is_empty() { "/" } else { p };
            Endpoint::Container(c.to_string(), PathBuf::from(p))
        }
        _ => Endpoint::Host(PathBuf::from(s)),
    }
}

/// Which way a copy goes.
enum Direction {
    In,
    Out,
}

/// Copies `src` to `dst`, exactly one of them in a container of `store`.
pub fn copy(store: &store::Store, src: &Endpoint, dst: &Endpoint) -> Result<()> {
    let (name, host, inside, dir) = match (src, dst) {
        (Endpoint::Host(h), Endpoint::Container(c, p)) => (c, h, p, Direction::In),
        (Endpoint::Container(c, p), Endpoint::Host(h)) => (c, h, p, Direction::Out),
        _ => bail!("cp: exactly one of SRC and DST must be CONTAINER:PATH"),
    };
    if !inside.is_absolute() {
        bail!(
            "cp: the container path {} must be absolute",
            inside.display()
        );
    }
    let c = store.container(name)?;
    let running = super::running_state(&c).ok();
    if running.is_none() && !nix::unistd::geteuid().is_root() {
        bail!(
            "cp with the stopped container {} needs root (rootless, start it first)",
            c.name
        );
    }
    // A stopped container's union, mounted for the copy and unmounted after.
    let mut mounted = None;
    let root = match &running {
        Some(st) => Root::Namespaces(Namespaces::of(st.pid)?),
        None => {
            let dirs = union::UnionDirs {
                lowers: store.container_lower_dirs(&c)?,
                upper: Some(c.upper.clone()),
                work: Some(c.work.clone()),
            };
            let driver = super::config::load(&c.dir)
                .map(|a| a.driver)
                .unwrap_or(Driver::Fuse);
            std::fs::create_dir_all(&c.merged)
                .with_context(|| format!("creating {}", c.merged.display()))?;
            let m = union::mount_union(driver, &dirs, &c.merged, false, false)?;
            mounted = Some(m);
            Root::Dir(c.merged.clone())
        }
    };
    let r = in_child(&root, host, inside, &dir);
    if let Some(m) = mounted {
        let u = m.unmount();
        r?;
        return u;
    }
    r
}

/// The namespaces of a running container the copier joins.
struct Namespaces {
    /// Its user namespace when it is not ours (rootless).
    user: Option<std::fs::File>,
    /// Its mount namespace: joining it makes its root (the container's) ours.
    mnt: std::fs::File,
}

impl Namespaces {
    fn of(pid: i32) -> Result<Namespaces> {
        use std::os::unix::fs::MetadataExt;
        let open = |name: &str| {
            let p = format!("/proc/{pid}/ns/{name}");
            std::fs::File::open(&p).with_context(|| format!("opening {p}"))
        };
        let theirs = std::fs::metadata(format!("/proc/{pid}/ns/user"))
            .with_context(|| format!("reading /proc/{pid}/ns/user"))?;
        let ours = std::fs::metadata("/proc/self/ns/user").ok();
        let same = ours.is_some_and(|o| o.ino() == theirs.ino() && o.dev() == theirs.dev());
        Ok(Namespaces {
            user: if same { None } else { Some(open("user")?) },
            mnt: open("mnt")?,
        })
    }
}

/// Where the copier finds the container's files.
enum Root {
    /// A running container: its namespaces.
    Namespaces(Namespaces),
    /// A stopped container's union, mounted here.
    Dir(PathBuf),
}

/// Forks the copier: it opens the host side, enters `root`, copies.
fn in_child(root: &Root, host: &Path, inside: &Path, dir: &Direction) -> Result<()> {
    let errors = Pipe::new()?;
    match crate::sys::process::fork().context("fork of the copier")? {
        ForkResult::Child => {
            let mut to_parent = errors.writer();
            let code = match copier(root, host, inside, dir) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = to_parent.send(&Msg::Error(format!("{e:#}")));
                    1
                }
            };
            let _ = std::io::stdout().flush();
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            let mut from_child = errors.reader();
            let msg = from_child.recv();
            let status = waitpid(child, None).context("waiting for the copier")?;
            if let Ok(Some(Msg::Error(text))) = msg {
                bail!("{text}");
            }
            match status {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => bail!("the copier failed ({other:?})"),
            }
        }
    }
}

/// The source as (parent dir fd, name) and the destination as (dir fd, name to make).
type Ends = ((OwnedFd, OsString), (OwnedFd, OsString));

fn copier(root: &Root, host: &Path, inside: &Path, dir: &Direction) -> Result<()> {
    let ends: Ends = match dir {
        Direction::In => {
            let src = source(host)?;
            enter(root)?;
            let dst = destination(inside, &src.1)?;
            (src, dst)
        }
        Direction::Out => {
            // The destination is decided on the host, before the chroot.
            let hostdst = host.to_path_buf();
            let name_of = |p: &Path| p.file_name().map(OsStr::to_os_string);
            let src_name = name_of(inside).unwrap_or_else(|| OsString::from("."));
            let dst = destination(&hostdst, &src_name)?;
            enter(root)?;
            let src = source(inside)?;
            (src, dst)
        }
    };
    let ((sdir, sname), (ddir, dname)) = ends;
    copy_entry(sdir.as_fd(), &sname, ddir.as_fd(), &dname)
}

fn enter(root: &Root) -> Result<()> {
    use crate::runtime::syscall::Syscall;
    let sys = crate::runtime::syscall::linux::LinuxSyscall;
    match root {
        Root::Namespaces(ns) => {
            if let Some(user) = &ns.user {
                sys.setns(user.as_fd(), nix::sched::CloneFlags::CLONE_NEWUSER)
                    .context("joining the container's user namespace")?;
            }
            sys.setns(ns.mnt.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
                .context("joining the container's mount namespace")?;
        }
        Root::Dir(d) => nix::unistd::chroot(d.as_path())
            .with_context(|| format!("chroot into the container's root {}", d.display()))?,
    }
    nix::unistd::chdir("/").context("chdir / in the container")
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening directory {}", p.display()))
}

/// The source `p` as its parent's descriptor and its name (`.` for a root).
fn source(p: &Path) -> Result<(OwnedFd, OsString)> {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let fd = open_dir(parent)?;
            rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(std::io::Error::from)
                .with_context(|| format!("{}", p.display()))?;
            Ok((fd, name.to_os_string()))
        }
        _ => Ok((open_dir(p)?, OsString::from("."))),
    }
}

/// Where a copy of something named `src_name` goes for destination `p`: into `p`
/// when it is a directory, else as `p` itself (its parent must exist).
fn destination(p: &Path, src_name: &OsStr) -> Result<(OwnedFd, OsString)> {
    if p.is_dir() {
        let name = if src_name == "." || src_name.is_empty() {
            bail!("cp: copying a root directory into a directory: name the target");
        } else {
            src_name.to_os_string()
        };
        return Ok((open_dir(p)?, name));
    }
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        bail!("cp: invalid destination {}", p.display());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Ok((open_dir(parent)?, name.to_os_string()))
}

fn io_ctx<T>(r: rustix::io::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(std::io::Error::from).with_context(what)
}

/// Copies entry `sname` of `sdir` to `dname` in `ddir` (recursively), never following
/// a symlink on either side.
fn copy_entry(
    sdir: BorrowedFd<'_>,
    sname: &OsStr,
    ddir: BorrowedFd<'_>,
    dname: &OsStr,
) -> Result<()> {
    let show = || String::from_utf8_lossy(sname.as_bytes()).into_owned();
    let st = io_ctx(
        rustix::fs::statat(sdir, sname, AtFlags::SYMLINK_NOFOLLOW),
        || format!("stat {}", show()),
    )?;
    let mode = Mode::from_raw_mode(st.st_mode) & Mode::from_bits_truncate(0o7777);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            match rustix::fs::mkdirat(ddir, dname, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(std::io::Error::from(e))
                        .with_context(|| format!("mkdir {}", Path::new(dname).display()));
                }
            }
            let from = io_ctx(
                rustix::fs::openat(
                    sdir,
                    sname,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ),
                || format!("opening directory {}", show()),
            )?;
            let to = io_ctx(
                rustix::fs::openat(
                    ddir,
                    dname,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ),
                || format!("opening directory {}", Path::new(dname).display()),
            )?;
            let entries = io_ctx(rustix::fs::Dir::read_from(&from), || {
                format!("listing {}", show())
            })?;
            for e in entries {
                let e = io_ctx(e, || format!("listing {}", show()))?;
                let n: &CStr = e.file_name();
                if n == c"." || n == c".." {
                    continue;
                }
                let n = OsStr::from_bytes(n.to_bytes());
                copy_entry(from.as_fd(), n, to.as_fd(), n)?;
            }
            io_ctx(rustix::fs::fchmod(&to, mode), || {
                format!("chmod {}", Path::new(dname).display())
            })
        }
        FileType::RegularFile => {
            let from = io_ctx(
                rustix::fs::openat(
                    sdir,
                    sname,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ),
                || format!("opening {}", show()),
            )?;
            let to = io_ctx(
                rustix::fs::openat(
                    ddir,
                    dname,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::TRUNC
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                ),
                || format!("creating {}", Path::new(dname).display()),
            )?;
            let mut from = std::fs::File::from(from);
            let mut to = std::fs::File::from(to);
            std::io::copy(&mut from, &mut to)
                .with_context(|| format!("copying {} to {}", show(), Path::new(dname).display()))?;
            io_ctx(rustix::fs::fchmod(&to, mode), || {
                format!("chmod {}", Path::new(dname).display())
            })
        }
        FileType::Symlink => {
            let target = io_ctx(rustix::fs::readlinkat(sdir, sname, Vec::new()), || {
                format!("readlink {}", show())
            })?;
            io_ctx(
                rustix::fs::symlinkat(target.as_c_str(), ddir, dname),
                || format!("symlink {}", Path::new(dname).display()),
            )
        }
        other => bail!(
            "cp: {} is a {other:?}; only files, directories and symlinks are copied",
            show()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse("web:/etc/hosts"),
            Endpoint::Container("web".into(), "/etc/hosts".into())
        );
        assert_eq!(parse("./a:b"), Endpoint::Host("./a:b".into()));
        assert_eq!(parse("/tmp/x"), Endpoint::Host("/tmp/x".into()));
        assert_eq!(parse("c:"), Endpoint::Container("c".into(), "/".into()));
    }
}
