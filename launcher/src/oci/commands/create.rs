//! `create [--bundle DIR] [--pid-file F] [--console-socket S] ID`: translates the
//! bundle's config.json, claims the state directory, makes the exec fifo and the
//! cgroup, and starts the container's init through the launcher's core; returns once
//! the init waits on the fifo. A failure leaves no state directory and no cgroup.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::oci::config::{self, Placement};
use crate::oci::state::{Record, StateDir, Status};
use crate::oci::{console, log};
use crate::runtime::cgroups::Cgroup;
use crate::runtime::procfs::start_time as proc_start_time;
use crate::runtime::{created, exec_fifo};

/// `create`'s options.
#[derive(Debug)]
pub struct Options<'a> {
    /// The container id.
    pub id: &'a str,
    /// The bundle directory.
    pub bundle: &'a Path,
    /// `--console-socket`.
    pub console_socket: Option<&'a Path>,
    /// `--pid-file`.
    pub pid_file: Option<&'a Path>,
    /// `--no-pivot`: the rootfs is moved onto `/` and chrooted into, no pivot_root.
    pub no_pivot: bool,
    /// `--preserve-fds N`.
    pub preserve_fds: i32,
    /// `--no-new-keyring`: the container keeps the caller's session keyring.
    pub no_new_keyring: bool,
}

/// Creates the container; returns the init's pid. `rootless`: the caller is no root
/// (the config must make a user namespace, unless the caller is root of one already;
/// no cgroup unless limits are asked for).
pub fn create(root: &Path, opts: &Options<'_>, rootless: bool) -> Result<i32> {
    if opts.preserve_fds < 0 {
        bail!("--preserve-fds {}: must not be negative", opts.preserve_fds);
    }
    let bundle = std::fs::canonicalize(opts.bundle)
        .with_context(|| format!("bundle {}", opts.bundle.display()))?;
    let dir = StateDir::new(root, opts.id)?;
    let at = Placement {
        id: opts.id.to_string(),
        state_dir: dir.dir.clone(),
        exec_fifo: dir.exec_fifo(),
        console: opts.console_socket.is_some(),
        new_keyring: !opts.no_new_keyring,
        preserve_fds: u32::try_from(opts.preserve_fds).unwrap_or(0),
    };
    // Everything the config says is checked before anything is made.
    let mut t = config::load(&bundle, &at)?;
    t.spec.no_pivot = opts.no_pivot;
    if rootless && t.spec.idmap.is_none() && !t.spec.in_userns {
        bail!(
            "rootless: config.json needs a user namespace with linux.uidMappings and \
             linux.gidMappings (strata-runtime spec --rootless writes one)"
        );
    }
    // The claim (mkdir) keeps other creates of the id out; other commands find no
    // state.json until it is written. The lock is let go before forking, so the init
    // (which keeps inherited descriptors until exec) never holds it.
    drop(dir.claim()?);
    let mut cgroup: Option<Cgroup> = None;
    let mut started: Option<i32> = None;
    let made = (|| -> Result<i32> {
        exec_fifo::make(&at.exec_fifo)?;
        // Rootless, a cgroup only for limits (in a delegated v2 subtree).
        if !rootless || t.spec.limits.any() || !t.device_rules.is_empty() {
            let cg = Cgroup::create_at(&t.cgroups_path, &t.spec.limits, &t.device_rules).map_err(
                |e| {
                    if rootless {
                        e.context("cannot apply linux.resources rootless")
                    } else {
                        e
                    }
                },
            )?;
            cgroup = Some(cg);
        }
        let socket = opts.console_socket.map(console::connect).transpose()?;
        let pid = created::create(&t.spec, cgroup.as_ref(), socket)?;
        started = Some(pid);
        let record = Record {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: opts.id.to_string(),
            status: Status::Created,
            pid,
            start_time: proc_start_time(pid).context("the container's init is gone")?,
            bundle: bundle.clone(),
            rootfs: t.spec.merged.clone(),
            annotations: t.annotations.clone(),
            created: log::now_rfc3339(),
            owner: owner(),
            cgroup_paths: cgroup.as_ref().map(Cgroup::paths).unwrap_or_default(),
            hooks: t.hooks.clone(),
        };
        dir.save(&record)?;
        if let Some(p) = opts.pid_file {
            write_pid_file(p, pid)?;
        }
        Ok(pid)
    })();
    match made {
        Ok(pid) => Ok(pid),
        Err(e) => {
            // The init waits on the fifo: it goes too (with no cgroup, nothing else
            // would kill it).
            if let Some(pid) = started {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if let Some(cg) = &cgroup {
                let _ = cg.remove();
            }
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Writes `pid` to `path` atomically (a temporary file beside it, renamed).
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("strata-tmp");
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing the pid file {}", path.display()))
}

/// The calling user's name, or its uid.
fn owner() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
