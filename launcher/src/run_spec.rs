//! What a `strata run` (or `create`) command line makes: its flags (kept with a
//! detached container, so its monitor and `start` rebuild the same container), their
//! checks, the container in the store, and the [`RunSpec`] the launcher runs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::run_config::{self, RunConfig, RunFlags};
use crate::runtime::network::{self, NetworkMode, ports, resolv};
use crate::runtime::spec::{self, Driver, Limits, Volume};
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
    /// Network: `pasta` (the default when installed), `slirp4netns`, `none` (only lo),
    /// `host` or `ns:PATH` (join that network namespace).
    #[arg(long, value_name = "MODE")]
    #[serde(default)]
    pub network: Option<String>,
    /// Publish a container port on the host: `[[IP:][HOST]:]CONTAINER[/tcp|/udp]`, the
    /// ports or ranges (`8000-8009`) of the same length; without HOST, a free one.
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[[IP:][HOST]:]CONTAINER[/PROTO]"
    )]
    #[serde(default)]
    pub publish: Vec<String>,
    /// Publish every port of the image's ExposedPorts on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    #[serde(default)]
    pub publish_all: bool,
    /// A nameserver for the container's /etc/resolv.conf (repeatable).
    #[arg(long = "dns", value_name = "IP")]
    #[serde(default)]
    pub dns: Vec<String>,
    /// A search domain for the container's /etc/resolv.conf (repeatable).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// An /etc/hosts entry NAME:IP (IP `host-gateway`: the host's address).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    #[serde(default)]
    pub add_host: Vec<String>,
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
    network: NetworkMode,
    ports: Vec<ports::PortMapping>,
    names: resolv::NameConfig,
}

/// Fills in the default network mode (pasta when installed) if `--network` was not
/// given, so a kept container keeps the mode it was made with.
pub fn resolve_network(args: &mut RunArgs) {
    if args.network.is_none() {
        args.network = Some(NetworkMode::default_mode().to_string());
    }
}

/// Checks `--network`, `-p`/`-P`, `--dns`, `--dns-search` and `--add-host`.
fn check_network(
    args: &RunArgs,
) -> Result<(NetworkMode, Vec<ports::PortMapping>, resolv::NameConfig)> {
    let mode = match &args.network {
        Some(m) => NetworkMode::parse(m)?,
        None => NetworkMode::None,
    };
    if let NetworkMode::Ns(p) = &mode
        && !p.exists()
    {
        bail!("invalid --network ns:{}: no such file", p.display());
    }
    let ports = args
        .publish
        .iter()
        .map(|p| ports::parse(p))
        .collect::<Result<Vec<_>>>()?
        .concat();
    ports::check_unique(&ports)?;
    if (!ports.is_empty() || args.publish_all) && mode.helper().is_none() {
        bail!("-p/-P need --network pasta or slirp4netns (this container's network is {mode})");
    }
    let gateway = mode.gateway();
    let names = resolv::NameConfig {
        dns: args
            .dns
            .iter()
            .map(|d| resolv::parse_dns(d))
            .collect::<Result<_>>()?,
        search: args
            .dns_search
            .iter()
            .map(|d| {
                resolv::check_name(d)
                    .with_context(|| format!("invalid --dns-search {d:?}"))
                    .map(|()| d.clone())
            })
            .collect::<Result<_>>()?,
        hosts: args
            .add_host
            .iter()
            .map(|h| resolv::parse_add_host(h, gateway))
            .collect::<Result<_>>()?,
        gateway,
        fallback_dns: (mode == NetworkMode::Slirp4netns).then_some(network::slirp::DNS.into()),
        loopback_dns: (mode == NetworkMode::Pasta).then_some(network::pasta::DNS_FORWARD.into()),
    };
    Ok((mode, ports, names))
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
    let (network, ports, names) = check_network(args)?;
    Ok(Checked {
        limits,
        volumes,
        env,
        idmap,
        network,
        ports,
        names,
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
    let mode = checked.network;
    let mut published = checked.ports;
    if args.publish_all {
        published.extend(ports::exposed(&image.raw_config)?);
        ports::check_unique(&published)?;
    }
    ports::save(&container.dir, &published)?;
    write_name_files(&checked.names, &mode, args, container)?;
    let mut namespaces = runtime::namespaces::NsPlan::for_network(mode.namespace());
    if let NetworkMode::Ns(path) = &mode {
        namespaces
            .join
            .push((nix::sched::CloneFlags::CLONE_NEWNET, path.clone()));
    }
    let net_helper = mode.helper().map(|kind| network::HelperPlan {
        kind,
        ports: published,
        runtime_dir: container.dir.join("runtime"),
        dns_forward: checked.names.loopback_dns,
    });
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
        namespaces,
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
        network: mode.namespace(),
        net_helper,
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

/// Writes the init layer's `/etc/resolv.conf` and `/etc/hosts` when the network
/// mode or the flags change them from what the store wrote.
fn write_name_files(
    names: &resolv::NameConfig,
    mode: &NetworkMode,
    args: &RunArgs,
    container: &store::Container,
) -> Result<()> {
    if mode.helper().is_none()
        && names.dns.is_empty()
        && names.search.is_empty()
        && names.hosts.is_empty()
    {
        return Ok(());
    }
    let etc = container.init_layer.join("etc");
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (name, text) in [
        ("resolv.conf", resolv::resolv_conf(names, &host)),
        ("hosts", resolv::hosts(names, &hostname(args, container))),
    ] {
        let p = etc.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
