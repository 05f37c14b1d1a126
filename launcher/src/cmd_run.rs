//! `strata run`, `ps`, `rm`, `mount`, `unmount`: the runtime's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::run_spec;
pub use crate::run_spec::RunArgs;
use crate::runtime::spec::Driver;
use crate::runtime::{self, idmap, state, union};

/// Arguments of `strata ps`.
#[derive(Args)]
pub struct PsArgs {
    /// Show only container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show every container (else only the running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
}

/// Arguments of `strata rm`.
#[derive(Args)]
pub struct RmArgs {
    /// Stop a running container (SIGKILL) and remove it.
    #[arg(short = 'f', long)]
    pub force: bool,
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

/// Runs `strata run`: in the foreground, or with `-d` under a monitor (prints the id).
pub fn run(root: Option<PathBuf>, mut args: RunArgs) -> Result<ExitCode> {
    run_spec::resolve_network(&mut args);
    let checked = run_spec::check(&args)?;
    let store = store::Store::open(root)?;
    let (container, image) = run_spec::create_container(&store, &args)?;
    if args.detach {
        let started = (|| -> Result<()> {
            crate::lifecycle::config::save(&container.dir, &args)?;
            crate::lifecycle::monitor::start(store.root(), &container, false)
        })();
        if let Err(e) = started {
            let _ = runtime::guard::remove_container(store.root(), &container.id, None);
            return Err(e);
        }
        println!("{}", container.id);
        return Ok(ExitCode::SUCCESS);
    }
    let spec = match run_spec::build(&store, &args, checked, &container, &image) {
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

/// Runs `strata ps`: running containers, or with `-a` every one, with status, exit
/// code and creation time.
pub fn ps(root: Option<PathBuf>, args: PsArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let containers = store.list_containers()?;
    if !args.quiet {
        println!(
            "{:<14} {:<24} {:<14} {:<26} {:<16} COMMAND",
            "CONTAINER ID", "NAME", "IMAGE", "STATUS", "CREATED"
        );
    }
    let now = state::now();
    for c in containers {
        let st = state::load(&c.dir);
        let status = st.as_ref().map(state::status);
        if !args.all && status != Some(state::Status::Running) {
            continue;
        }
        if args.quiet {
            println!("{}", &c.id[..12.min(c.id.len())]);
            continue;
        }
        let shown = match (&st, status) {
            (Some(s), Some(state::Status::Running)) => format!("running (pid {})", s.pid),
            (_, Some(state::Status::Exited(code))) => format!("exited ({code})"),
            _ => crate::lifecycle::inspect::status_word(st.as_ref()).to_string(),
        };
        let cmd = st.map(|s| s.command.join(" ")).unwrap_or_default();
        println!(
            "{:<14} {:<24} {:<14} {:<26} {:<16} {}",
            &c.id[..12.min(c.id.len())],
            c.name,
            &c.image_id[..12.min(c.image_id.len())],
            shown,
            runtime::clock::ago(c.created, now),
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
                if !args.force {
                    bail!(
                        "container {} is running (launcher pid {}); stop it first or use -f",
                        c.name,
                        s.launcher_pid
                    );
                }
                crate::lifecycle::stop::stop(&c, std::time::Duration::ZERO)?;
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
