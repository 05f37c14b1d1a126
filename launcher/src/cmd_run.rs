//! `strata run`, `ps`, `rm`, `mount`, `unmount`: the runtime's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::run_config::{self, RunConfig, RunFlags};
use crate::runtime::spec::{self, Driver, Limits, Network};
use crate::runtime::{self, RunSpec, idmap, state, union};

/// Arguments of `strata run`.
#[derive(Args)]
pub struct RunArgs {
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

/// Arguments of `strata ps`.
#[derive(Args)]
pub struct PsArgs {
    /// Show only container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Arguments of `strata rm`.
#[derive(Args)]
pub struct RmArgs {
    /// Container names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `strata mount`.
#[derive(Args)]
pub struct MountArgs {
    /// Union driver.
    #[arg(long, value_enum, default_value = "fuse")]
    pub driver: Driver,
    /// Image or container.
    pub target: String,
    /// Directory to mount the union at.
    pub dir: PathBuf,
}

/// Arguments of `strata unmount`.
#[derive(Args)]
pub struct UnmountArgs {
    /// Directory a union is mounted at.
    pub dir: PathBuf,
}

/// Limits from the flags, validated before anything is created.
fn limits(args: &RunArgs) -> Result<Limits> {
    Ok(Limits {
        memory: args.memory.as_deref().map(spec::parse_size).transpose()?,
        cpus: args.cpus.as_deref().map(spec::parse_cpus).transpose()?,
        pids: args
            .pids_limit
            .as_deref()
            .map(spec::parse_pids)
            .transpose()?,
    })
}

/// Runs `strata run`.
pub fn run(root: Option<PathBuf>, args: RunArgs) -> Result<ExitCode> {
    // Everything a user can get wrong is checked before the container exists.
    let limits = limits(&args)?;
    let volumes = args
        .volumes
        .iter()
        .map(|v| spec::parse_volume(v))
        .collect::<Result<Vec<_>>>()?;
    let mut cli_env = Vec::new();
    for f in &args.env_file {
        cli_env.extend(spec::parse_env_file(f)?);
    }
    cli_env.extend(args.env.iter().map(|e| spec::expand_env_entry(e)));
    if let Some(e) = cli_env.iter().find(|e| e.starts_with('=')) {
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
    let store = store::Store::open(root)?;
    let image = store.resolve_image(&args.image)?;
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
            env: &cli_env,
            workdir: args.workdir.as_deref(),
            user: args.user.as_deref(),
            term: term.as_deref(),
        },
    )?;
    let provisional = args.hostname.clone();
    let container = store.create_container(
        &image,
        args.name.as_deref(),
        provisional.as_deref().unwrap_or("localhost"),
    )?;
    let hostname = provisional.unwrap_or_else(|| container.id[..12].to_string());
    let built = (|| -> Result<RunSpec> {
        if args.hostname.is_none() {
            // The init layer carries /etc/hostname; rewrite it with the id-based name.
            let etc = container.init_layer.join("etc/hostname");
            if etc.exists() {
                std::fs::write(&etc, format!("{hostname}\n"))
                    .with_context(|| format!("writing {}", etc.display()))?;
            }
        }
        let mut lowers = vec![container.init_layer.clone()];
        lowers.extend(store.lower_dirs(&image)?);
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
            hostname,
            namespaces: runtime::namespaces::NsPlan::for_network(args.network),
            mounts: None,
            masked_paths: strings(runtime::rootfs::MASKED_PATHS),
            readonly_paths: strings(runtime::rootfs::READONLY_PATHS),
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
            network: args.network,
            limits,
            volumes,
            tty: args.tty,
            interactive: args.interactive,
            init: args.init,
            idmap,
            remove: args.rm,
            store_root: store.root().to_path_buf(),
        })
    })();
    let spec = match built {
        Ok(s) => s,
        Err(e) => {
            if args.rm {
                let _ = store.remove_container(&container.id);
            }
            return Err(e);
        }
    };
    let code = match runtime::launch::launch(&spec) {
        Ok(code) => code,
        Err(e) => {
            // A container that never started (or was asked for --rm) leaves nothing.
            if args.rm || state::load(&spec.dir).is_none() {
                let _ = runtime::guard::remove_container(store.root(), &spec.id, None);
            }
            return Err(e);
        }
    };
    Ok(ExitCode::from(
        u8::try_from(code).unwrap_or(runtime::EXIT_STRATA_ERROR as u8),
    ))
}

/// Runs `strata ps`.
pub fn ps(root: Option<PathBuf>, args: PsArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let containers = store.list_containers()?;
    if !args.quiet {
        println!(
            "{:<14} {:<24} {:<14} {:<22} COMMAND",
            "CONTAINER ID", "NAME", "IMAGE", "STATUS"
        );
    }
    for c in containers {
        if args.quiet {
            println!("{}", &c.id[..12.min(c.id.len())]);
            continue;
        }
        let st = state::load(&c.dir);
        let status = match &st {
            Some(s) if state::is_running(s) => format!("running (pid {})", s.pid),
            Some(s) => match s.exit_code {
                Some(code) => format!("exited ({code})"),
                None => "exited (launcher died)".to_string(),
            },
            None => "created".to_string(),
        };
        let cmd = st.map(|s| s.command.join(" ")).unwrap_or_default();
        println!(
            "{:<14} {:<24} {:<14} {:<22} {}",
            &c.id[..12.min(c.id.len())],
            c.name,
            &c.image_id[..12.min(c.image_id.len())],
            status,
            cmd
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata rm`.
pub fn rm(root: Option<PathBuf>, args: RmArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let mut failed = false;
    for name in &args.containers {
        let r = (|| -> Result<()> {
            let c = store.container(name)?;
            if let Some(s) = state::load(&c.dir)
                && state::is_running(&s)
            {
                bail!(
                    "container {} is running (launcher pid {}); stop it first",
                    c.name,
                    s.launcher_pid
                );
            }
            let rootless = !nix::unistd::geteuid().is_root();
            if rootless && let Ok(map @ idmap::IdMapping::Full { .. }) = idmap::for_caller() {
                return remove_in_userns(&store, &c.id, &map);
            }
            store.remove_container(&c.id)?;
            Ok(())
        })();
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("strata: rm {name}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(runtime::EXIT_STRATA_ERROR as u8)
    } else {
        ExitCode::SUCCESS
    })
}

/// How long `rm`'s user-namespace helper waits for its id maps (it used to poll
/// `/proc/self/uid_map` 500 times, 10 ms apart).
const USERNS_MAPS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Rootless with subordinate ids: files in the upper may belong to mapped ids the
/// caller cannot delete; remove from inside a fresh user namespace with the same map.
fn remove_in_userns(store: &store::Store, id: &str, map: &idmap::IdMapping) -> Result<()> {
    use nix::unistd::ForkResult;
    use runtime::sync::{Msg, Pipe};
    let up = Pipe::new()?;
    let down = Pipe::new()?;
    match crate::sys::process::fork().context("fork")? {
        ForkResult::Child => {
            let mut to_parent = up.writer();
            let mut from_parent = down.reader();
            let code = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
                Ok(()) => {
                    let _ = to_parent.send(&Msg::UsernsReady);
                    drop(to_parent);
                    // Stay until the parent has written the maps and holds the namespace
                    // (woken by its message, or by end of file if it gave up).
                    match from_parent.recv_timeout(USERNS_MAPS_TIMEOUT) {
                        Ok(Some(Msg::Go)) => 0,
                        _ => 1,
                    }
                }
                Err(_) => 1,
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            let mut from_child = up.reader();
            let mut to_child = down.writer();
            from_child.expect(&Msg::UsernsReady)?;
            idmap::write_maps(child.as_raw(), map)?;
            let ns = std::fs::File::open(format!("/proc/{child}/ns/user"))
                .context("opening user namespace")?;
            let _ = to_child.send(&Msg::Go);
            let _ = nix::sys::wait::waitpid(child, None);
            runtime::guard::remove_container(
                store.root(),
                id,
                Some(&std::os::fd::OwnedFd::from(ns)),
            )
        }
    }
}

/// Runs `strata mount`: mounts an image (read-only) or a container's union at DIR in the
/// host's mount namespace (as root, or rootless with FUSE).
pub fn mount(root: Option<PathBuf>, args: MountArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let dirs = match store.container(&args.target) {
        Ok(c) => union::UnionDirs {
            lowers: store.container_lower_dirs(&c)?,
            upper: Some(c.upper.clone()),
            work: Some(c.work.clone()),
        },
        Err(store::StoreError::ContainerNotFound(_)) => {
            let image = store.resolve_image(&args.target).with_context(|| {
                format!("{:?} is neither a container nor an image", args.target)
            })?;
            union::UnionDirs {
                lowers: store.lower_dirs(&image)?,
                upper: None,
                work: None,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("mount point {}", args.dir.display()))?;
    let rootless = !nix::unistd::geteuid().is_root();
    if rootless && args.driver == Driver::Kernel {
        bail!("--driver kernel needs root for `strata mount` (use --driver fuse)");
    }
    let mut dirs = dirs;
    if dirs.upper.is_none() && args.driver == Driver::Kernel && dirs.lowers.len() == 1 {
        // Kernel overlayfs needs two lowers for a read-only mount; the same layer twice
        // is equivalent.
        let l = dirs.lowers[0].clone();
        dirs.lowers.push(l);
    }
    union::mount_union(args.driver, &dirs, &dir, rootless, false)?;
    println!("{}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata unmount`.
pub fn unmount(_root: Option<PathBuf>, args: UnmountArgs) -> Result<ExitCode> {
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("mount point {}", args.dir.display()))?;
    if !store::mountinfo::is_mount_point(&dir) {
        bail!("{} is not a mount point", dir.display());
    }
    if nix::unistd::geteuid().is_root() {
        nix::mount::umount2(&dir, nix::mount::MntFlags::empty())
            .with_context(|| format!("unmounting {}", dir.display()))?;
    } else {
        let st = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&dir)
            .status()
            .context("running fusermount3 -u")?;
        if !st.success() {
            bail!("fusermount3 -u {} failed ({st})", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
