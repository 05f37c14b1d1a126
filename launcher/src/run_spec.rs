//! What a `strata run` (or `create`) command line makes: its flags (kept with a
//! detached container, so its monitor and `start` rebuild the same container), their
//! checks, the container in the store, and the [`RunSpec`] the launcher runs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::run_config::{self, RunConfig, RunFlags};
use crate::runtime::spec::{self, Driver, Limits, Network, Volume};
use crate::runtime::{self, RunSpec, idmap, union};

/// Arguments of `strata run`.
#[derive(Args, Serialize, Deserialize)]
pub struct RunArgs {
    /// Run in the background under a monitor; print the container id.
    #[arg(short = 'd', long)]
    #[serde(default)]
    pub detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Container name.
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (K=V, or K to pass the launcher's value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file of K=V lines.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (UID[:GID] or NAME[:GROUP]) inside the container.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Bind mount SRC:DST[:ro].
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Hostname (default: the first 12 characters of the container id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Network: `none` (only lo) or `host`.
    #[arg(long, value_enum, default_value = "none")]
    pub network: Network,
    /// Memory limit (e.g. 256m, 1g).
    #[arg(short = 'm', long = "memory", value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU quota in CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Relative CPU weight in shares (1024 the default; `cpu.weight` on cgroup v2).
    #[arg(long = "cpu-shares", value_name = "N", value_parser = clap::value_parser!(u64).range(2..=262_144))]
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes.
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<String>,
    /// Union driver: stratafs (fuse) or kernel overlayfs.
    #[arg(long, value_enum, default_value = "fuse")]
    pub driver: Driver,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run an init as PID 1 that forwards signals to the command and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Image name, NAME:TAG or id.
    pub image: String,
    /// Command and arguments (default: the image's Entrypoint/Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The flags' values, checked before anything is created.
pub struct Checked {
    limits: Limits,
    volumes: Vec<Volume>,
    env: Vec<String>,
    idmap: Option<idmap::IdMapping>,
}

/// Checks everything a user can get wrong before the container exists.
pub fn check(args: &RunArgs) -> Result<Checked> {
    let limits = Limits {
        memory: args.memory.as_deref().map(spec::parse_size).transpose()?,
        cpus: args.cpus.as_deref().map(spec::parse_cpus).transpose()?,
        pids: args
            .pids_limit
            .as_deref()
            .map(spec::parse_pids)
            .transpose()?,
        cpu_shares: args.cpu_shares,
        memory_swap: None,
    };
    let volumes = args
        .volumes
        .iter()
        .map(|v| spec::parse_volume(v))
        .collect::<Result<Vec<_>>>()?;
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(spec::parse_env_file(f)?);
    }
    env.extend(args.env.iter().map(|e| spec::expand_env_entry(e)));
    if let Some(e) = env.iter().find(|e| e.starts_with('=')) {
        bail!("invalid environment variable {e:?}: empty name");
    }
    let rootless = !nix::unistd::geteuid().is_root();
    let idmap = if rootless {
        Some(idmap::for_caller()?)
    } else {
        None
    };
    if args.driver == Driver::Fuse {
        union::check_fuse_available()?;
    }
    if let Some(w) = &args.workdir
        && !w.starts_with('/')
    {
        bail!("invalid --workdir {w:?}: must be an absolute path");
    }
    if args.detach && args.interactive {
        bail!("-i with -d: a detached container has no stdin (strata has no attach)");
    }
    Ok(Checked {
        limits,
        volumes,
        env,
        idmap,
    })
}

/// Creates the container of `args.image` in the store (its init layer's hostname
/// set); returns it and its image.
pub fn create_container(
    store: &store::Store,
    args: &RunArgs,
) -> Result<(store::Container, store::Image)> {
    let image = store.resolve_image(&args.image)?;
    let provisional = args.hostname.clone();
    let container = store.create_container(
        &image,
        args.name.as_deref(),
        provisional.as_deref().unwrap_or("localhost"),
    )?;
    if args.hostname.is_none() {
        // The init layer carries /etc/hostname; rewrite it with the id-based name.
        let etc = container.init_layer.join("etc/hostname");
        let written = if etc.exists() {
            std::fs::write(&etc, format!("{}\n", hostname(args, &container)))
                .with_context(|| format!("writing {}", etc.display()))
        } else {
            Ok(())
        };
        if let Err(e) = written {
            let _ = store.remove_container(&container.id);
            return Err(e);
        }
    }
    Ok((container, image))
}

fn hostname(args: &RunArgs, c: &store::Container) -> String {
    args.hostname
        .clone()
        .unwrap_or_else(|| c.id.chars().take(12).collect())
}

/// The [`RunSpec`] of `container` (of `image`) as `args` and their checked values
/// ask.
pub fn build(
    store: &store::Store,
    args: &RunArgs,
    checked: Checked,
    container: &store::Container,
    image: &store::Image,
) -> Result<RunSpec> {
    let term = std::env::var("TERM").ok().filter(|_| args.tty);
    let RunConfig {
        argv,
        env,
        cwd,
        user,
    } = run_config::resolve(
        &image.config,
        &RunFlags {
            image: &args.image,
            command: &args.command,
            env: &checked.env,
            workdir: args.workdir.as_deref(),
            user: args.user.as_deref(),
            term: term.as_deref(),
        },
    )?;
    let mut lowers = vec![container.init_layer.clone()];
    lowers.extend(store.lower_dirs(image)?);
    Ok(RunSpec {
        id: container.id.clone(),
        name: container.name.clone(),
        dir: container.dir.clone(),
        union: Some(union::UnionDirs {
            lowers,
            upper: Some(container.upper.clone()),
            work: Some(container.work.clone()),
        }),
        merged: container.merged.clone(),
        driver: args.driver,
        argv,
        env,
        cwd,
        user,
        hostname: hostname(args, container),
        namespaces: runtime::namespaces::NsPlan::for_network(args.network),
        mounts: None,
        masked_paths: strings(runtime::rootfs::MASKED_PATHS),
        readonly_paths: strings(runtime::rootfs::READONLY_PATHS),
        no_pivot: false,
        rootfs_readonly: false,
        rootfs_propagation: nix::mount::MsFlags::empty(),
        caps: runtime::caps::CapSets::default(),
        additional_gids: Vec::new(),
        rlimits: Vec::new(),
        no_new_privs: true,
        umask: None,
        sysctl: Vec::new(),
        oom_score_adj: None,
        new_keyring: false,
        preserve_fds: None,
        hooks: Default::default(),
        seccomp: None,
        exec_fifo: None,
        outlives_setup: false,
        network: args.network,
        limits: checked.limits,
        volumes: checked.volumes,
        tty: args.tty,
        interactive: args.interactive,
        init: args.init,
        in_userns: checked.idmap.is_none() && idmap::in_user_namespace(),
        idmap: checked.idmap,
        remove: args.rm,
        detached: args.detach,
        store_root: store.root().to_path_buf(),
    })
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
