//! The launcher side of an OCI `create`: forks the same setup process `strata run`
//! uses (on a [`RunSpec`] with no union and an exec fifo), puts it in the cgroup,
//! and returns once the container's init is set up and waits on the fifo. The setup
//! process exits after forking the init, so nothing waits on the caller: the init is
//! reparented to the nearest subreaper (conmon, containerd's shim) or to PID 1.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use super::cgroups::Cgroup;
use super::sync::{Msg, Pipe};
use super::{RunSpec, hooks, idmap, setup};

/// Creates the container of `spec` (with `exec_fifo` and `outlives_setup`) in `cgroup`; `console`
/// is the connected console socket the init sends its pty master over. Returns the
/// init's pid (in the caller's pid namespace) once it waits on the fifo.
pub fn create(spec: &RunSpec, cgroup: Option<&Cgroup>, console: Option<OwnedFd>) -> Result<i32> {
    if spec.exec_fifo.is_none() || !spec.outlives_setup {
        bail!("an OCI created container needs an exec fifo and an init that outlives its setup");
    }
    let up = Pipe::new()?;
    let down = Pipe::new()?;
    let me = nix::unistd::getpid();
    let setup_pid = match crate::sys::process::fork().context("fork of the setup process")? {
        ForkResult::Child => setup::setup_main(spec, me, up.writer(), down.reader(), console),
        ForkResult::Parent { child } => child,
    };
    drop(console);
    let mut up = up.reader();
    let mut down = down.writer();
    let mut init: Option<Pid> = None;
    let result = (|| -> Result<Pid> {
        if let Some(cg) = cgroup {
            cg.add(setup_pid.as_raw())?;
        }
        if let Some(map) = &spec.idmap {
            up.expect(&Msg::UsernsReady)?;
            idmap::write_maps(setup_pid.as_raw(), map)?;
        }
        down.send(&Msg::Go)?;
        // Both the setup process (started) and the init (ready) write this pipe.
        let mut ready = false;
        loop {
            if let (Some(p), true) = (init, ready) {
                return Ok(p);
            }
            match up.recv()? {
                Some(Msg::Started(p)) => init = Some(Pid::from_raw(p)),
                Some(Msg::Ready) => ready = true,
                Some(Msg::Hooks) => {
                    let pid = init.context("the container's init asked for hooks unstarted")?;
                    hooks::run(
                        &spec.hooks.create_runtime,
                        &spec.hooks.state_for(pid.as_raw(), "creating"),
                    )
                    .context("createRuntime hooks")?;
                    down.send(&Msg::Go)?;
                }
                Some(Msg::Error(text)) => bail!("{text}"),
                Some(other) => bail!("unexpected message {:?} from the setup", other.encode()),
                None => bail!("the container's init exited during its setup"),
            }
        }
    })();
    if result.is_err() {
        if let Some(p) = init {
            let _ = kill(p, Signal::SIGKILL);
        }
        let _ = kill(setup_pid, Signal::SIGKILL);
    }
    let _ = waitpid(setup_pid, None);
    result.map(Pid::as_raw)
}
