//! `strata create`, `start`, `exec`, `logs`, `stop`, `kill`, `wait`, `restart`,
//! `inspect`, `top`, `stats`, `cp`: the command lines of the lifecycle (module
//! `lifecycle` does the work), and the hidden `container-monitor`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::lifecycle::{self, cp, exec, inspect, logs, monitor, stats, stop, top};
use crate::run_spec::{self, RunArgs};
use crate::runtime::{self, state};

/// The exit status for a strata error.
fn strata_error() -> ExitCode {
    ExitCode::from(runtime::EXIT_STRATA_ERROR as u8)
}

/// A container's exit code as this process's status.
fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(runtime::EXIT_STRATA_ERROR as u8))
}

/// Arguments of `strata start`.
#[derive(Args)]
pub struct StartArgs {
    /// Follow the container's output and exit with its exit code (one container).
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Container names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `strata exec`.
#[derive(Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (K=V).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (UID[:GID] or NAME[:GROUP]).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Container name or id.
    pub container: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Arguments of `strata logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// Follow the log while the container runs.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Container name or id.
    pub container: String,
}

/// Arguments of `strata stop` and `restart`.
#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Container names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `strata kill`.
#[derive(Args)]
pub struct KillArgs {
    /// Signal (name or number).
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub signal: String,
    /// Container names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of the commands taking containers only (`wait`, `inspect`).
#[derive(Args)]
pub struct ContainersArgs {
    /// Container names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Arguments of `strata port`.
#[derive(Args)]
pub struct PortArgs {
    /// Container name or id.
    pub container: String,
    /// Only this container port (`PORT[/tcp|/udp]`).
    pub port: Option<String>,
}

/// Arguments of `strata top`.
#[derive(Args)]
pub struct TopArgs {
    /// Container name or id.
    pub container: String,
}

/// Arguments of `strata stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// Print once and exit (the only mode so far).
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Container names or ids (default: the running ones).
    pub containers: Vec<String>,
}

/// Arguments of `strata cp`.
#[derive(Args)]
pub struct CpArgs {
    /// Source: a host path or CONTAINER:PATH.
    pub src: String,
    /// Destination: a host path or CONTAINER:PATH.
    pub dst: String,
}

/// Runs `op` on each container named; errors are printed one line each, the status
/// is 125 when any failed.
fn each(
    root: Option<PathBuf>,
    names: &[String],
    mut op: impl FnMut(&store::Store, &store::Container) -> Result<()>,
) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let mut failed = false;
    for name in names {
        let r = store
            .container(name)
            .map_err(anyhow::Error::from)
            .and_then(|c| op(&store, &c));
        if let Err(e) = r {
            eprintln!("strata: {name}: {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        strata_error()
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs `strata create`: the container is made, its flags kept, and its command set
/// up under a monitor, waiting on an exec fifo for `start`.
pub fn create(root: Option<PathBuf>, mut args: RunArgs) -> Result<ExitCode> {
    if args.detach {
        bail!("create: -d is implied (`start` runs the container under a monitor)");
    }
    run_spec::resolve_network(&mut args);
    run_spec::check(&args)?;
    let store = store::Store::open(root)?;
    let (container, _) = run_spec::create_container(&store, &args)?;
    let made = lifecycle::config::save(&container.dir, &args)
        .and_then(|()| monitor::start(store.root(), &container, true));
    if let Err(e) = made {
        let _ = runtime::guard::remove_container(store.root(), &container.id, None);
        return Err(e);
    }
    println!("{}", container.id);
    Ok(ExitCode::SUCCESS)
}

/// Starts a created container (opens its exec fifo) or a stopped one (under a new
/// monitor).
fn start_one(store: &store::Store, c: &store::Container) -> Result<()> {
    let Some(s) = state::load(&c.dir) else {
        return monitor::start(store.root(), c, false);
    };
    match state::status(&s) {
        state::Status::Running => bail!("container {} is already running", c.name),
        state::Status::Created => {
            let fifo = monitor::fifo_path(&c.dir);
            let dir = c.dir.clone();
            let alive =
                || state::load(&dir).is_some_and(|s| state::status(&s) == state::Status::Created);
            runtime::exec_fifo::release(&fifo, alive)
        }
        state::Status::Exited(_) | state::Status::LauncherDied => {
            monitor::start(store.root(), c, false)
        }
    }
}

/// Runs `strata start`.
pub fn start(root: Option<PathBuf>, args: StartArgs) -> Result<ExitCode> {
    if args.attach {
        let [name] = args.containers.as_slice() else {
            bail!("start -a takes one container");
        };
        let store = store::Store::open(root)?;
        let c = store.container(name)?;
        let log = logs::path(&c.dir);
        // Only what this run writes.
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        start_one(&store, &c)?;
        let dir = c.dir.clone();
        let running =
            || state::load(&dir).is_some_and(|s| state::status(&s) == state::Status::Running);
        logs::print_from(&log, from, running, &mut std::io::stdout())?;
        return Ok(code(stop::wait(&c)?));
    }
    each(root, &args.containers, |store, c| {
        start_one(store, c)?;
        println!("{}", c.name);
        Ok(())
    })
}

/// Runs `strata exec`; exits with the process's status.
pub fn exec(root: Option<PathBuf>, args: ExecArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let c = store.container(&args.container)?;
    let status = exec::exec(
        &c,
        &exec::ExecOptions {
            argv: &args.command,
            env: &args.env,
            workdir: args.workdir.as_deref(),
            user: args.user.as_deref(),
            tty: args.tty,
            interactive: args.interactive,
        },
    )?;
    Ok(code(status))
}

/// Runs `strata logs`.
pub fn logs(root: Option<PathBuf>, args: LogsArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let c = store.container(&args.container)?;
    let dir = c.dir.clone();
    let running = || state::load(&dir).is_some_and(|s| state::status(&s) == state::Status::Running);
    logs::print(
        &logs::path(&c.dir),
        args.tail,
        args.follow,
        running,
        &mut std::io::stdout(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata stop`.
pub fn stop(root: Option<PathBuf>, args: StopArgs) -> Result<ExitCode> {
    let timeout = Duration::from_secs(args.time);
    each(root, &args.containers, |_, c| {
        stop::stop(c, timeout)?;
        println!("{}", c.name);
        Ok(())
    })
}

/// Runs `strata restart`: stop (if running), then start.
pub fn restart(root: Option<PathBuf>, args: StopArgs) -> Result<ExitCode> {
    let timeout = Duration::from_secs(args.time);
    each(root, &args.containers, |store, c| {
        stop::stop(c, timeout)?;
        start_one(store, c)?;
        println!("{}", c.name);
        Ok(())
    })
}

/// Runs `strata kill`.
pub fn kill(root: Option<PathBuf>, args: KillArgs) -> Result<ExitCode> {
    let sig = stop::parse_signal(&args.signal)?;
    each(root, &args.containers, |_, c| {
        stop::kill_container(c, sig)?;
        println!("{}", c.name);
        Ok(())
    })
}

/// Runs `strata wait`: prints each container's exit code once it ended.
pub fn wait(root: Option<PathBuf>, args: ContainersArgs) -> Result<ExitCode> {
    each(root, &args.containers, |_, c| {
        println!("{}", stop::wait(c)?);
        Ok(())
    })
}

/// Runs `strata inspect`: a JSON array, one object per container.
pub fn inspect(root: Option<PathBuf>, args: ContainersArgs) -> Result<ExitCode> {
    let mut docs = Vec::new();
    let status = each(root, &args.containers, |_, c| {
        docs.push(inspect::inspect(c)?);
        Ok(())
    })?;
    let text = serde_json::to_string_pretty(&serde_json::Value::Array(docs))
        .map_err(anyhow::Error::from)?;
    println!("{text}");
    Ok(status)
}

/// Runs `strata port`: the container's published ports, `80/tcp -> 0.0.0.0:8080`
/// (with a port given, only its host side, as `docker port` prints it).
pub fn port(root: Option<PathBuf>, args: PortArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let c = store.container(&args.container)?;
    let list = runtime::network::ports::load(&c.dir)?;
    let Some(want) = &args.port else {
        for p in &list {
            println!("{p}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (num, proto) = want.split_once('/').unwrap_or((want.as_str(), "tcp"));
    let num: u16 = num
        .parse()
        .with_context(|| format!("invalid port {want:?}: expected PORT[/tcp|/udp]"))?;
    let hits: Vec<_> = list
        .iter()
        .filter(|p| p.container_port == num && p.proto.as_str() == proto)
        .collect();
    if hits.is_empty() {
        bail!("container {} publishes no port {num}/{proto}", c.name);
    }
    for p in hits {
        let shown = p.to_string();
        println!("{}", shown.rsplit(" -> ").next().unwrap_or(&shown));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata top`.
pub fn top(root: Option<PathBuf>, args: TopArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    let c = store.container(&args.container)?;
    let st = lifecycle::running_state(&c)?;
    println!("{:<10} {:<8} COMMAND", "PID", "UID");
    for p in top::processes(st.pid)? {
        println!("{:<10} {:<8} {}", p.pid, p.uid, p.command);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata stats --no-stream`.
pub fn stats(root: Option<PathBuf>, args: StatsArgs) -> Result<ExitCode> {
    if !args.no_stream {
        bail!("stats: only --no-stream is supported");
    }
    let store = store::Store::open(root.clone())?;
    let names = if args.containers.is_empty() {
        store
            .list_containers()?
            .into_iter()
            .filter(|c| lifecycle::running_state(c).is_ok())
            .map(|c| c.id)
            .collect()
    } else {
        args.containers.clone()
    };
    println!(
        "{:<14} {:<24} {:<22} {:<12} PIDS",
        "ID", "NAME", "MEM USAGE / LIMIT", "CPU TIME"
    );
    let dash = || "-".to_string();
    each(root, &names, |_, c| {
        let st = lifecycle::running_state(c)?;
        let s = stats::read(&st.cgroup_paths);
        let mem = format!(
            "{} / {}",
            s.memory.map(stats::human).unwrap_or_else(dash),
            s.memory_limit
                .map(stats::human)
                .unwrap_or_else(|| "unlimited".into())
        );
        let cpu = s
            .cpu_ns
            .map(|ns| format!("{:.3}s", ns as f64 / 1e9))
            .unwrap_or_else(dash);
        let pids = s.pids.map(|p| p.to_string()).unwrap_or_else(dash);
        println!(
            "{:<14} {:<24} {:<22} {:<12} {}",
            &c.id[..12.min(c.id.len())],
            c.name,
            mem,
            cpu,
            pids
        );
        Ok(())
    })
}

/// Runs `strata cp`.
pub fn cp(root: Option<PathBuf>, args: CpArgs) -> Result<ExitCode> {
    let store = store::Store::open(root)?;
    cp::copy(&store, &cp::parse(&args.src), &cp::parse(&args.dst))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the hidden `container-monitor [--created] ID`.
pub fn monitor(root: Option<PathBuf>, id: &str, created: bool) -> Result<ExitCode> {
    monitor::main(root, id, created)
}
