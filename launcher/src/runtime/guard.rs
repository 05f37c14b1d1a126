//! The guard: a small process that outlives the launcher. When the launcher dies
//! without saying it cleaned up (SIGKILL included), the guard stops the network helper,
//! kills what is left in the cgroup, removes it, and with `--rm` removes the container
//! from the store.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::cgroups::Cgroup;
use super::sync::{Channel, Msg};

/// What to clean up.
pub struct Cleanup<'a> {
    /// The container's cgroup.
    pub cgroup: Option<&'a Cgroup>,
    /// With `--rm`: store root and container id.
    pub remove: Option<(PathBuf, String)>,
    /// Rootless: the container's user namespace, entered to remove files owned by
    /// subordinate ids.
    pub userns: Option<&'a OwnedFd>,
    /// The network helper (pasta, slirp4netns) to stop.
    pub net_helper: Option<super::network::Running>,
}

/// Body of the guard process: waits for the launcher's pipe to close; `d` means the
/// launcher cleaned up itself.
pub fn guard_main(mut from_launcher: Channel, cleanup: &Cleanup<'_>) -> ! {
    let _ = nix::unistd::setsid();
    for s in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGQUIT,
    ] {
        let _ = crate::sys::process::ignore_signal(s);
    }
    if let Ok(Some(Msg::Done)) = from_launcher.recv() {
        std::process::exit(0)
    }
    let code = match clean(cleanup) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strata: cleanup after the launcher died: {e:#}");
            1
        }
    };
    std::process::exit(code)
}

/// Stops the network helper, removes the cgroup and (with `--rm`) the container. Used by the launcher after a
/// normal exit and by the guard after the launcher died.
pub fn clean(cleanup: &Cleanup<'_>) -> Result<()> {
    if let Some(h) = &cleanup.net_helper {
        h.stop();
    }
    let mut first: Result<()> = Ok(());
    if let Some(cg) = cleanup.cgroup
        && let Err(e) = cg.remove()
    {
        first = Err(e);
    }
    if let Some((root, id)) = &cleanup.remove {
        let r = remove_container(root, id, cleanup.userns);
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// Removes a container from the store, inside its user namespace when given (in a
/// child process, as setns into a user namespace needs a single-threaded process).
pub fn remove_container(root: &std::path::Path, id: &str, userns: Option<&OwnedFd>) -> Result<()> {
    let Some(ns) = userns else {
        let store = store::Store::open(Some(root.to_path_buf()))?;
        return remove_retrying(&store, id);
    };
    match crate::sys::process::fork().context("fork for container removal")? {
        nix::unistd::ForkResult::Child => {
            let r = (|| -> Result<()> {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWUSER)
                    .map_err(std::io::Error::from)
                    .context("entering the container's user namespace")?;
                let zero_g = nix::unistd::Gid::from_raw(0);
                let zero_u = nix::unistd::Uid::from_raw(0);
                let _ = nix::unistd::setresgid(zero_g, zero_g, zero_g);
                let _ = nix::unistd::setresuid(zero_u, zero_u, zero_u);
                let store = store::Store::open(Some(root.to_path_buf()))?;
                remove_retrying(&store, id)
            })();
            if let Err(e) = r {
                eprintln!("strata: removing container {id}: {e:#}");
                std::process::exit(1);
            }
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            other => anyhow::bail!("removing container {id} failed ({other:?})"),
        },
    }
}

fn remove_retrying(store: &store::Store, id: &str) -> Result<()> {
    // The union may take a moment to go away with the last process of its namespace.
    let mut last = None;
    for _ in 0..100 {
        match store.remove_container(id) {
            Ok(()) => return Ok(()),
            Err(store::StoreError::ContainerNotFound(_)) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("removing container {id}")),
        None => Ok(()),
    }
}
