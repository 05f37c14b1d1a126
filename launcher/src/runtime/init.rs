//! The container's PID 1 before exec: hostname, loopback, rootfs, pivot_root, user,
//! capabilities, then exec of the command (127 not found, 126 not executable).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};

use super::credentials::{self, Prepared, ProcessPlan};
use super::exec_fifo;
use super::rootfs::{self, RootfsPlan};
use super::spec::{Network, UserSpec, resolve_user};
use super::sync::{Channel, Msg};
use super::syscall::Syscall;
use super::syscall::linux::LinuxSyscall;
use super::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, RunSpec, net};

/// Runs in the new namespaces and never returns: exec's the command or exits with
/// 125/126/127 after printing one line.
/// `console` is the socket the pty master goes to the launcher over (`-t`).
/// `ready` (a created OCI container, with `spec.outlives_setup`) is where the init says it is
/// set up, or why it failed, before it waits on the fifo. `set_up` (the others) is the
/// write end of a pipe the setup process reads (close-on-exec): closed by the exec of
/// the command itself, so the container is reported started only once an `exec` into
/// it finds it whole and its PID 1 is the command; before the fifo's wait for a
/// created container, and before the fork of the command with `--init`.
pub fn container_main(
    spec: &RunSpec,
    console: Option<OwnedFd>,
    ready: Option<(Channel, Channel)>,
    set_up: Option<OwnedFd>,
) -> ! {
    let tty = console.is_some();
    let mut ready = ready;
    let mut set_up = set_up;
    match prepare(spec, console, &mut ready, &mut set_up) {
        Ok((path, argv, envp)) if spec.init => {
            // PID 1 stays this process, set up: the command is its child.
            drop(set_up);
            super::pid1::init_main(tty, || exec_unblocked(&path, &argv, &envp))
        }
        Ok((path, argv, envp)) => {
            if let Some(sig) = stop_pending() {
                // Exec'd now, the command would get it as a PID 1 without a handler
                // yet, which the kernel drops: end as the signal would have ended it.
                std::process::exit(128 + sig as i32);
            }
            exec_unblocked(&path, &argv, &envp)
        }
        Err(e) => {
            if let Some((ch, _)) = ready.as_mut() {
                let _ = ch.send(&Msg::Error(format!("{e:#}")));
            }
            eprintln!("strata: {e:#}");
            std::process::exit(super::EXIT_STRATA_ERROR)
        }
    }
}

/// A terminating signal the launcher passed on before the command runs (`stop` just
/// after `run -d`): it waits, blocked since before the fork, in this process's
/// pending set (`ShdPnd`/`SigPnd` of /proc/self/status).
fn stop_pending() -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let pending = status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("ShdPnd:")
                .or_else(|| l.strip_prefix("SigPnd:"))
        })
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .fold(0u64, |a, b| a | b);
    super::pid1::FORWARDED
        .iter()
        .copied()
        .filter(|s| !matches!(s, Signal::SIGWINCH | Signal::SIGCONT))
        .find(|s| pending & (1u64 << (*s as i32 - 1)) != 0)
}

/// Unblocks every signal (the launcher blocked the forwarded ones before forking) and
/// exec's the command.
pub fn exec_unblocked(path: &CString, argv: &[CString], envp: &[CString]) -> ! {
    let unblocked = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    if let Err(e) = unblocked {
        eprintln!("strata: unblocking signals: {e}");
        std::process::exit(super::EXIT_STRATA_ERROR);
    }
    exec(path, argv, envp)
}

fn prepare(
    spec: &RunSpec,
    console: Option<OwnedFd>,
    ready: &mut Option<(Channel, Channel)>,
    set_up: &mut Option<OwnedFd>,
) -> Result<Prepared> {
    let tty = console.is_some();
    // A created container's init outlives the setup process that forked it.
    let detached = spec.outlives_setup;
    if !detached {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context("PR_SET_PDEATHSIG")?;
    }
    // The host's /proc is still this process's: its pid there, for the hooks' state.
    let host_pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<i32>().ok()))
        .unwrap_or(0);
    let fifo = spec
        .exec_fifo
        .as_deref()
        .map(exec_fifo::Pending::open)
        .transpose()?;
    // Its own mount namespace, so pivot_root moves only the container (not the setup
    // process and the FUSE daemon, which share the one the union was mounted in).
    let sys = LinuxSyscall;
    super::namespaces::unshare_ns(&sys, nix::sched::CloneFlags::CLONE_NEWNS)?;
    if !spec.hostname.is_empty() {
        sys.sethostname(&spec.hostname)
            .with_context(|| format!("setting hostname {:?}", spec.hostname))?;
    }
    if spec.network == Network::None {
        net::loopback_up()?;
    }
    if spec.union.is_none() {
        rootfs::bind_self(&sys, &spec.merged)?;
    }
    rootfs::prepare(
        &sys,
        &RootfsPlan {
            rootfs: &spec.merged,
            rootless: spec.rootless(),
            own_netns: spec.network == Network::None,
            volumes: &spec.volumes,
            mounts: spec.mounts.as_deref(),
        },
    )?;
    if !spec.hooks.create_runtime.is_empty()
        && let Some((up, down)) = ready.as_mut()
    {
        // The runtime runs them now, the mounts made and before pivot_root.
        up.send(&Msg::Hooks)?;
        down.expect(&Msg::Go)?;
    }
    super::hooks::run(
        &spec.hooks.create_container,
        &spec.hooks.state_for(host_pid, "created"),
    )
    .context("createContainer hooks")?;
    if spec.no_pivot {
        rootfs::move_root(&sys, &spec.merged)?;
    } else {
        rootfs::pivot(&sys, &spec.merged)?;
    }
    // Before finish() makes /proc/sys read-only.
    for (key, value) in &spec.sysctl {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value)
            .with_context(|| format!("setting sysctl {key} to {value:?}"))?;
    }
    if let Some(adj) = spec.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .with_context(|| format!("setting oom_score_adj {adj}"))?;
    }
    rootfs::finish(
        &sys,
        Path::new("/"),
        &spec.masked_paths,
        &spec.readonly_paths,
    )?;
    if spec.rootfs_readonly {
        super::mounts::remount_ro(&sys, Path::new("/"))?;
    }
    if !spec.rootfs_propagation.is_empty() {
        sys.mount(None, Path::new("/"), None, spec.rootfs_propagation, None)
            .context("setting the propagation of the container's /")?;
    }
    if let Some(socket) = console {
        let slave = super::pty::open_in_container(&sys, socket.as_fd())?;
        // The socket was inherited for this purpose only.
        drop(socket);
        // With --init, the command (not the init) takes the terminal as its controlling
        // tty, so job control and ^C reach it.
        attach_tty(slave, !spec.init)?;
    } else if !spec.interactive {
        redirect_stdin_null()?;
    }
    let user = match &spec.user {
        Some(u) => resolve_user(u, Path::new("/"))?,
        None => UserSpec::default(),
    };
    let cwd = Path::new(&spec.cwd);
    if !cwd.is_dir() {
        std::fs::create_dir_all(cwd)
            .with_context(|| format!("creating working directory {}", cwd.display()))?;
    }
    if tty && user.uid != 0 {
        // The terminal belongs to the user the command runs as (as runc does it).
        nix::unistd::fchown(
            std::io::stdin(),
            Some(nix::unistd::Uid::from_raw(user.uid)),
            Some(nix::unistd::Gid::from_raw(user.gid)),
        )
        .context("giving the pty to the container's user")?;
    }
    if spec.new_keyring {
        match crate::sys::keyring::join_new_session_keyring(&spec.id) {
            // Kernels without keys, or keyctl refused (seccomp on the host), as runc.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            r => r.context("joining a new session keyring")?,
        }
    }
    credentials::limits(spec.umask, &spec.rlimits)?;
    if let Some(fifo) = fifo {
        // Set up: the setup process may now say the container is created.
        drop(set_up.take());
        // Set up: say so, then wait for `start` (still root, so /proc/self/fd opens).
        if let Some((mut ch, _)) = ready.take() {
            ch.send(&Msg::Ready)?;
        }
        fifo.wait()?;
        super::hooks::run(
            &spec.hooks.start_container,
            &spec.hooks.state_for(host_pid, "running"),
        )
        .context("startContainer hooks")?;
    }
    let prepared = credentials::become_process(&ProcessPlan {
        argv: &spec.argv,
        env: &spec.env,
        cwd,
        user,
        additional_gids: &spec.additional_gids,
        rootless: spec.rootless(),
        caps: &spec.caps,
        no_new_privs: spec.no_new_privs,
        seccomp: spec.seccomp.as_ref(),
    })?;
    if let Some(n) = spec.preserve_fds {
        crate::sys::fd::cloexec_from(3 + n).context("closing descriptors past --preserve-fds")?;
    }
    // Signals stay blocked until exec (or for good in the init, which reads them from a
    // signalfd): PID 1 would drop them otherwise.
    // Credential changes clear the parent-death signal: set it again.
    if !detached {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context("PR_SET_PDEATHSIG")?;
    }
    Ok(prepared)
}

/// Makes the pty `slave` stdin, stdout and stderr of a new session (its controlling
/// tty when `controlling`).
pub(super) fn attach_tty(slave: OwnedFd, controlling: bool) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    if controlling {
        super::pty::take_controlling_tty(slave.as_fd())?;
    }
    nix::unistd::dup2_stdin(&slave)
        .and_then(|()| nix::unistd::dup2_stdout(&slave))
        .and_then(|()| nix::unistd::dup2_stderr(&slave))
        .map_err(std::io::Error::from)
        .context("dup2 of the pty")
}

/// Makes `/dev/null` this process's stdin (a container's or an `exec`'d process's
/// without `-i`).
pub fn redirect_stdin_null() -> Result<()> {
    let f = std::fs::File::open("/dev/null").context("opening /dev/null for stdin")?;
    nix::unistd::dup2_stdin(&f)
        .map_err(std::io::Error::from)
        .context("dup2 /dev/null to stdin")
}

fn exec(path: &CString, argv: &[CString], envp: &[CString]) -> ! {
    let name = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.as_bytes().is_empty() {
        eprintln!("strata: {name}: executable file not found in $PATH");
        std::process::exit(EXIT_NOT_FOUND);
    }
    let err = nix::unistd::execve(path, argv, envp).err();
    let code = match err {
        Some(nix::errno::Errno::ENOENT) | Some(nix::errno::Errno::ENOTDIR) => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    };
    let why = err.map(|e| e.desc()).unwrap_or("unknown error");
    eprintln!("strata: {}: {why}", path.to_string_lossy());
    std::process::exit(code)
}
