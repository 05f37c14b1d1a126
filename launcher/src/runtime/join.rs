//! A process joining a running container (OCI `exec`): it enters the container's
//! cgroup and the namespaces of its init that differ from the caller's (user first,
//! mount last, so the root becomes the container's), forks into the pid namespace,
//! drops to its credentials through the same step as the init (`credentials.rs`) and
//! execs. The caller learns its pid, and whether exec was reached or what failed.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use super::credentials::{self, ProcessPlan};
use super::spec::Rlimit;
use super::sync::{Channel, Msg, Pipe};
use super::syscall::Syscall;
use super::syscall::linux::LinuxSyscall;
use super::{EXIT_STRATA_ERROR, cgroups, init, pty};

/// The namespaces joined, in the order they are entered.
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// What to join and run.
pub struct JoinSpec<'a> {
    /// The container's init (its namespaces are joined).
    pub init_pid: i32,
    /// The container's cgroup directories.
    pub cgroup_paths: &'a [PathBuf],
    /// The process.
    pub plan: ProcessPlan<'a>,
    /// Its umask.
    pub umask: Option<u32>,
    /// Its resource limits.
    pub rlimits: &'a [Rlimit],
    /// A connected console socket: the process gets a pty whose master goes there.
    pub console: Option<OwnedFd>,
    /// Only stdio and this many descriptors after it reach the process.
    pub preserve_fds: Option<u32>,
}

/// Starts the process; returns its pid (in the caller's pid namespace) once it
/// exec'd, or the error that stopped it.
pub fn spawn(spec: JoinSpec<'_>) -> Result<i32> {
    let mut joined = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = PathBuf::from(format!("/proc/{}/ns/{name}", spec.init_pid));
        let md = std::fs::metadata(&theirs)
            .with_context(|| format!("the container's {name} namespace"))?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
        if ours.is_some_and(|o| o.ino() == md.ino() && o.dev() == md.dev()) {
            continue;
        }
        let f = std::fs::File::open(&theirs)
            .with_context(|| format!("opening {}", theirs.display()))?;
        joined.push((*flag, f));
    }
    let up = Pipe::new()?;
    let helper = match crate::sys::process::fork().context("fork of the exec helper")? {
        ForkResult::Child => {
            let mut to_parent = up.writer();
            let code = match enter(&spec, &joined, &mut to_parent) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = to_parent.send(&Msg::Error(format!("{e:#}")));
                    EXIT_STRATA_ERROR
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => child,
    };
    drop(spec.console);
    let mut up = up.reader();
    let started = up.recv();
    let _ = waitpid(helper, None);
    let pid = match started? {
        Some(Msg::Started(p)) => p,
        Some(Msg::Error(text)) => bail!("{text}"),
        _ => bail!("the exec helper exited without starting the process"),
    };
    // End of file: the process exec'd (the pipe is close-on-exec); else its error.
    match up.recv()? {
        None => Ok(pid),
        Some(Msg::Error(text)) => bail!("{text}"),
        Some(other) => bail!(
            "unexpected message {:?} from the exec'd process",
            other.encode()
        ),
    }
}

/// In the helper: cgroup, namespaces, then the fork into the pid namespace.
fn enter(
    spec: &JoinSpec<'_>,
    joined: &[(CloneFlags, std::fs::File)],
    to_parent: &mut Channel,
) -> Result<()> {
    let me = nix::unistd::getpid().as_raw().to_string();
    for p in spec.cgroup_paths {
        cgroups::write_file(&p.join("cgroup.procs"), &me)?;
    }
    // The mount namespace last, and from inside the pid namespace: its /proc is the
    // container's, where only a process of that pid namespace finds /proc/self.
    let (mnt, others): (Vec<_>, Vec<_>) = joined
        .iter()
        .partition(|(flag, _)| *flag == CloneFlags::CLONE_NEWNS);
    for (flag, f) in others {
        setns(f, *flag)?;
    }
    match crate::sys::process::fork().context("fork into the container")? {
        ForkResult::Child => {
            let mut to_parent = to_parent.take();
            if let Err(e) = mnt.iter().try_for_each(|(flag, f)| setns(f, *flag)) {
                let _ = to_parent.send(&Msg::Error(format!("{e:#}")));
                std::process::exit(EXIT_STRATA_ERROR);
            }
            run(spec, to_parent)
        }
        ForkResult::Parent { child } => to_parent.send(&Msg::Started(child.as_raw())),
    }
}

/// In the container: limits, pty, credentials, exec; an error goes to the caller.
fn run(spec: &JoinSpec<'_>, mut to_parent: Channel) -> ! {
    let prepared = (|| {
        credentials::limits(spec.umask, spec.rlimits)?;
        if let Some(n) = spec.preserve_fds {
            crate::sys::fd::cloexec_from(3 + n)
                .context("closing descriptors past --preserve-fds")?;
        }
        if let Some(socket) = &spec.console {
            let (slave, _) = pty::open_and_send(socket.as_fd())?;
            init::attach_tty(slave, true)?;
        }
        credentials::become_process(&spec.plan)
    })();
    match prepared {
        Ok((path, argv, envp)) => init::exec_unblocked(&path, &argv, &envp),
        Err(e) => {
            let _ = to_parent.send(&Msg::Error(format!("{e:#}")));
            std::process::exit(EXIT_STRATA_ERROR)
        }
    }
}

fn setns(f: &std::fs::File, flag: CloneFlags) -> Result<()> {
    LinuxSyscall
        .setns(f.as_fd(), flag)
        .with_context(|| format!("joining the container's namespace ({flag:?})"))
}
