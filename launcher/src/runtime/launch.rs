//! The launcher's side of `strata run`: cgroup, id maps, the setup process and the
//! guard, then PID 1 duties from outside: forward signals, relay the pty, collect the
//! exit status, clean up.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::cgroups::Cgroup;
use super::guard::{self, Cleanup};
use super::pid1::FORWARDED;
use super::sync::{BadMessage, Msg, Pipe};
use super::{RunSpec, idmap, network, pty, setup, state};

/// Runs the container described by `spec` to completion; returns the exit status the
/// launcher should exit with (the command's, 128+N on signal N, 126/127).
pub fn launch(spec: &RunSpec) -> Result<i32> {
    let cgroup = Cgroup::create(&spec.id, &spec.limits, spec.idmap.is_some())?;
    let mut userns: Option<OwnedFd> = None;
    let mut helper: Option<network::Running> = None;
    let result = start_and_monitor(spec, cgroup.as_ref(), &mut userns, &mut helper);
    let cleanup = Cleanup {
        cgroup: cgroup.as_ref(),
        remove: spec
            .remove
            .then(|| (spec.store_root.clone(), spec.id.clone())),
        userns: userns.as_ref(),
        net_helper: helper,
    };
    let cleaned = guard::clean(&cleanup);
    if let Ok(code) = result
        && !spec.remove
    {
        let mut st = state::load(&spec.dir).unwrap_or_else(|| running_state(spec, 0, None));
        st.pid = 0;
        st.exit_code = Some(code);
        st.finished_at = Some(state::now());
        let _ = state::save(&spec.dir, &st);
    }
    let code = result?;
    cleaned?;
    Ok(code)
}

/// The state of `spec`'s container while its command (`pid`) runs.
fn running_state(spec: &RunSpec, pid: i32, cgroup: Option<&Cgroup>) -> state::State {
    let me = std::process::id() as i32;
    state::State {
        launcher_pid: me,
        launcher_start: super::procfs::start_time(me),
        pid,
        command: spec.argv.clone(),
        exit_code: None,
        detached: spec.detached,
        started_at: Some(state::now()),
        finished_at: None,
        cgroup_paths: cgroup.map(Cgroup::paths).unwrap_or_default(),
        rootless: spec.rootless(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        user: spec.user.clone(),
        exec_fifo: spec.exec_fifo.clone(),
        error: None,
    }
}

fn start_and_monitor(
    spec: &RunSpec,
    cgroup: Option<&Cgroup>,
    userns: &mut Option<OwnedFd>,
    helper: &mut Option<network::Running>,
) -> Result<i32> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).context("blocking signals")?;
    let r = run_blocked(spec, cgroup, userns, helper, &mask);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    r
}

fn run_blocked(
    spec: &RunSpec,
    cgroup: Option<&Cgroup>,
    userns: &mut Option<OwnedFd>,
    helper: &mut Option<network::Running>,
    mask: &SigSet,
) -> Result<i32> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating a signalfd")?;
    let console = if spec.tty {
        Some(pty::ConsoleSocket::new()?)
    } else {
        None
    };
    let up = Pipe::new()?;
    let down = Pipe::new()?;
    let launcher = nix::unistd::getpid();
    let setup_pid = match crate::sys::process::fork().context("fork of the setup process")? {
        ForkResult::Child => {
            let socket = console.map(|c| {
                drop(c.launcher);
                c.container
            });
            setup::setup_main(spec, launcher, up.writer(), down.reader(), socket)
        }
        ForkResult::Parent { child } => child,
    };
    // Only the container keeps its end: the launcher sees end of file if it exits early.
    let console = console.map(|c| c.launcher);
    let mut up = up.reader();
    let mut down = down.writer();
    let abort = |e: anyhow::Error| -> Result<i32> {
        let _ = kill(setup_pid, Signal::SIGKILL);
        let _ = waitpid(setup_pid, None);
        Err(e)
    };
    if let Some(cg) = cgroup
        && let Err(e) = cg.add(setup_pid.as_raw())
    {
        return abort(e);
    }
    if let Some(map) = &spec.idmap {
        if let Err(e) = up.expect(&Msg::UsernsReady) {
            return abort(e);
        }
        if let Err(e) = idmap::write_maps(setup_pid.as_raw(), map) {
            return abort(e);
        }
        match std::fs::File::open(format!("/proc/{setup_pid}/ns/user")) {
            Ok(f) => *userns = Some(OwnedFd::from(f)),
            Err(e) => {
                return abort(
                    anyhow::Error::from(e).context("opening the container's user namespace"),
                );
            }
        }
    }
    if let Err(e) = down.send(&Msg::Go) {
        return abort(e);
    }
    if let Some(plan) = &spec.net_helper {
        // The setup process has made the network namespace: connect it, then let the
        // command start.
        if let Err(e) = up.expect(&Msg::NetnsReady) {
            return abort(e);
        }
        match network::start(plan, setup_pid.as_raw(), spec.idmap.is_some()) {
            Ok(h) => *helper = Some(h),
            Err(e) => return abort(e.context("--network: starting the network helper")),
        }
        if let Err(e) = down.send(&Msg::Go) {
            return abort(e);
        }
    }
    // The guard outlives a killed launcher and cleans up after it.
    let guard_pipe = Pipe::new()?;
    let guard_cleanup = Cleanup {
        cgroup,
        remove: spec
            .remove
            .then(|| (spec.store_root.clone(), spec.id.clone())),
        userns: userns.as_ref(),
        net_helper: *helper,
    };
    let guard_pid = match crate::sys::process::fork().context("fork of the guard")? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            guard::guard_main(guard_pipe.reader(), &guard_cleanup)
        }
        ForkResult::Parent { child } => child,
    };
    let mut guard_w = guard_pipe.writer();
    let container_pid = match up.recv() {
        Ok(Some(Msg::Started(p))) => Pid::from_raw(p),
        Err(e) if e.is::<BadMessage>() => return abort(e),
        Ok(Some(Msg::Error(text))) => {
            let _ = waitpid(setup_pid, None);
            let _ = guard_w.send(&Msg::Done);
            let _ = waitpid(guard_pid, None);
            bail!("{text}");
        }
        Ok(_) | Err(_) => {
            let status = waitpid(setup_pid, None);
            let _ = guard_w.send(&Msg::Done);
            let _ = waitpid(guard_pid, None);
            bail!("the setup process exited before starting the container ({status:?})");
        }
    };
    let _ = state::save(
        &spec.dir,
        &running_state(spec, container_pid.as_raw(), cgroup),
    );
    let master = match console.as_ref().map(pty::receive_master).transpose() {
        Ok(m) => m.flatten(),
        Err(e) => {
            let _ = kill(container_pid, Signal::SIGKILL);
            let _ = waitpid(setup_pid, None);
            let _ = guard_w.send(&Msg::Done);
            let _ = waitpid(guard_pid, None);
            return Err(e);
        }
    };
    let raw = master.as_ref().map(|_| pty::raw_stdin());
    let r = monitor(
        setup_pid,
        container_pid,
        &sfd,
        master.as_ref().map(|m| m.as_fd()),
        spec.interactive,
    );
    drop(raw);
    // The launcher cleans up itself; tell the guard it has nothing to do.
    let _ = guard_w.send(&Msg::Done);
    let _ = waitpid(guard_pid, None);
    r
}

/// Waits for the setup process while forwarding signals and relaying the pty (the
/// launcher's stdin only with `interactive`, as `-t` without `-i` does in podman).
fn monitor(
    setup_pid: Pid,
    container: Pid,
    sfd: &SignalFd,
    master: Option<BorrowedFd<'_>>,
    interactive: bool,
) -> Result<i32> {
    let mut forced: Option<Signal> = None;
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some() && interactive;
    let mut master_open = master.is_some();
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (master, master_open) {
            fds.push(PollFd::new(m, PollFlags::POLLIN));
        }
        if stdin_open && master_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if let (Some(m), true) = (master, master_ready)
            && !copy(m, std::io::stdout().as_fd())
        {
            master_open = false;
        }
        if let (Some(m), true) = (master, stdin_ready)
            && !copy(stdin.as_fd(), m)
        {
            stdin_open = false;
        }
        if !sig_ready {
            continue;
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGWINCH if master.is_some() => {
                    // The kernel signals the container's foreground process group.
                    if let Some(m) = master {
                        pty::copy_winsize(stdin.as_fd(), m);
                    }
                }
                s => forward(container, s, &mut forced),
            }
        }
        match waitpid(setup_pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => {
                if let Some(m) = master {
                    drain(m);
                }
                return Ok(match forced {
                    Some(s) if code == 128 + Signal::SIGKILL as i32 => 128 + s as i32,
                    _ => code,
                });
            }
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            _ => {}
        }
    }
}

/// Copies what is readable from `from` to `to`; false at end of file or error.
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    let n = match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => return false,
        Ok(n) => n,
    };
    let mut off = 0usize;
    while off < n {
        match nix::unistd::write(to, &buf[off..n]) {
            Ok(0) | Err(_) => return false,
            Ok(w) => off += w,
        }
    }
    true
}

/// Reads whatever the container left in the pty after it exited.
fn drain(master: BorrowedFd<'_>) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(fl) = fcntl(master, FcntlArg::F_GETFL) {
        let _ = fcntl(
            master,
            FcntlArg::F_SETFL(OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK),
        );
    }
    while copy(master, std::io::stdout().as_fd()) {}
}

/// Delivers `sig` to the container's PID 1. A PID 1 without a handler ignores
/// terminating signals (the kernel protects namespace inits), so for those the launcher
/// kills it and reports 128+N as if the signal had terminated it.
fn forward(container: Pid, sig: Signal, forced: &mut Option<Signal>) {
    let terminating = !matches!(
        sig,
        Signal::SIGCHLD | Signal::SIGCONT | Signal::SIGWINCH | Signal::SIGURG
    );
    if terminating && !handles(container, sig) {
        *forced = Some(sig);
        let _ = kill(container, Signal::SIGKILL);
    } else {
        let _ = kill(container, sig);
    }
}

/// Whether `pid` catches, ignores or blocks `sig` (from /proc/PID/status).
fn handles(pid: Pid, sig: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let bit = 1u64 << (sig as i32 - 1);
    status.lines().any(|l| {
        ["SigBlk:", "SigIgn:", "SigCgt:"].iter().any(|k| {
            l.strip_prefix(k)
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .is_some_and(|m| m & bit != 0)
        })
    })
}
