//! The setup process: enters the user namespace (rootless) and a private mount
//! namespace, mounts the union, unshares the container's namespaces, forks the command
//! (PID 1 of the new pid namespace), waits for it, unmounts, and exits with its status.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid};

use super::sync::{Channel, Msg};
use super::syscall::linux::LinuxSyscall;
use super::{EXIT_STRATA_ERROR, RunSpec, init, namespaces, union};

/// Entry point of the setup process (never returns). `to_parent` carries `u`, `p<pid>`
/// or `e<error>`; `from_parent` carries `g` once cgroup and maps are in place.
pub fn setup_main(
    spec: &RunSpec,
    launcher: nix::unistd::Pid,
    mut to_parent: Channel,
    mut from_parent: Channel,
    console: Option<OwnedFd>,
) -> ! {
    let code = match run(spec, launcher, &mut to_parent, &mut from_parent, console) {
        Ok(code) => code,
        Err(e) => {
            let _ = to_parent.send(&Msg::Error(format!("{e:#}")));
            EXIT_STRATA_ERROR
        }
    };
    std::process::exit(code)
}

fn run(
    spec: &RunSpec,
    launcher: nix::unistd::Pid,
    to_parent: &mut Channel,
    from_parent: &mut Channel,
    console: Option<OwnedFd>,
) -> Result<i32> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .context("PR_SET_PDEATHSIG")?;
    if nix::unistd::getppid() != launcher {
        anyhow::bail!("the launcher exited during setup");
    }
    let sys = LinuxSyscall;
    if spec.idmap.is_some() {
        namespaces::unshare_ns(&sys, nix::sched::CloneFlags::CLONE_NEWUSER)?;
        to_parent.send(&Msg::UsernsReady)?;
    }
    from_parent.expect(&Msg::Go)?;
    if spec.idmap.is_some() {
        let root_g = Gid::from_raw(0);
        let root_u = Uid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .context("becoming gid 0 in the user namespace")?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .context("becoming uid 0 in the user namespace")?;
    }
    namespaces::private_mount_ns(&sys)?;
    let mounted = match &spec.union {
        Some(dirs) => Some(union::mount_union(
            spec.driver,
            dirs,
            &spec.merged,
            spec.idmap.is_some(),
            true,
        )?),
        None => None,
    };
    spec.namespaces.enter(&sys)?;
    if spec.net_helper.is_some() {
        // The launcher connects the new network namespace before the command runs.
        to_parent.send(&Msg::NetnsReady)?;
        from_parent.expect(&Msg::Go)?;
    }
    // Closed by the container once it is set up: by the exec of its command (the pipe is
    // close-on-exec), before a created container waits on its fifo, or when it dies.
    // See `wait_set_up`.
    let (set_up_r, set_up_w) = if spec.outlives_setup {
        (None, None)
    } else {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context("pipe for the container's set-up")?;
        (Some(r), Some(w))
    };
    let child = match crate::sys::process::fork().context("fork of the container process")? {
        ForkResult::Child => {
            // A created container's init reports on the same pipe (ready or error).
            let ready = if spec.outlives_setup {
                Some((to_parent.take(), from_parent.take()))
            } else {
                None
            };
            drop(set_up_r);
            init::container_main(spec, console, ready, set_up_w)
        }
        ForkResult::Parent { child } => child,
    };
    // The console socket belongs to the container now.
    drop(console);
    drop(set_up_w);
    if let Some(r) = set_up_r {
        wait_set_up(r);
    }
    to_parent.send(&Msg::Started(child.as_raw()))?;
    if spec.outlives_setup {
        // A created container outlives this process: nothing to wait for or unmount.
        return Ok(0);
    }
    let code = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the container"),
        }
    };
    if let Some(m) = mounted {
        m.unmount()?;
    }
    Ok(code)
}

/// Blocks until every write end of the set-up pipe is closed: the container closed
/// its own once set up, or exited. Nothing is ever written.
fn wait_set_up(r: std::os::fd::OwnedFd) {
    use std::io::Read;
    let mut f = std::fs::File::from(r);
    let mut buf = [0u8; 1];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
