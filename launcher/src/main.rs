//! `strata`: image store and container runtime on stratafs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for an error of strata itself (as podman/docker use 125).
const EXIT_STRATA_ERROR: u8 = 125;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Container images and runtime on stratafs"
)]
struct Cli {
    /// Root of the store (else $STRATA_ROOT, /var/lib/strata as root, or
    /// $XDG_DATA_HOME/strata).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of `RunArgs` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Manage images in the store.
    #[command(subcommand)]
    Image(launcher::cmd_image::ImageCommand),
    /// List changes in a container's filesystem (A/C/D).
    Diff(launcher::cmd_image::DiffArgs),
    /// Turn a container's changes into a new image.
    Commit(launcher::cmd_image::CommitArgs),
    /// Write a container's flattened rootfs as a tar.
    Export(launcher::cmd_image::ExportArgs),
    /// Pull an image from a registry into the store.
    Pull(launcher::cmd_registry::PullArgs),
    /// Push an image of the store to a registry.
    Push(launcher::cmd_registry::PushArgs),
    /// Log in to a registry (credentials kept in auth.json, as podman keeps them).
    Login(launcher::cmd_registry::LoginArgs),
    /// Forget the credentials for a registry.
    Logout(launcher::cmd_registry::LogoutArgs),
    /// Run a command in a new container.
    Run(launcher::cmd_run::RunArgs),
    /// Create a container without starting it (prints its id).
    Create(launcher::cmd_run::RunArgs),
    /// Start created or stopped containers under a monitor.
    Start(launcher::cmd_lifecycle::StartArgs),
    /// Run a command in a running container.
    Exec(launcher::cmd_lifecycle::ExecArgs),
    /// Print a detached container's output.
    Logs(launcher::cmd_lifecycle::LogsArgs),
    /// Stop containers: SIGTERM, then SIGKILL after a timeout.
    Stop(launcher::cmd_lifecycle::StopArgs),
    /// Send a signal to containers' PID 1.
    Kill(launcher::cmd_lifecycle::KillArgs),
    /// Wait for containers to end; print their exit codes.
    Wait(launcher::cmd_lifecycle::ContainersArgs),
    /// Stop and start containers again.
    Restart(launcher::cmd_lifecycle::StopArgs),
    /// Show containers as JSON.
    Inspect(launcher::cmd_lifecycle::ContainersArgs),
    /// List a container's processes.
    Top(launcher::cmd_lifecycle::TopArgs),
    /// List a container's published ports.
    Port(launcher::cmd_lifecycle::PortArgs),
    /// Show containers' memory, CPU time and process count.
    Stats(launcher::cmd_lifecycle::StatsArgs),
    /// Copy files between a container and the host (CONTAINER:PATH).
    Cp(launcher::cmd_lifecycle::CpArgs),
    /// List containers.
    Ps(launcher::cmd_run::PsArgs),
    /// Remove containers.
    Rm(launcher::cmd_run::RmArgs),
    /// Mount an image's or container's union at DIR (for inspection).
    Mount(launcher::cmd_run::MountArgs),
    /// Unmount a union mounted by `strata mount`.
    Unmount(launcher::cmd_run::UnmountArgs),
    /// Hold a detached container (run by `run -d` and `start`).
    #[command(hide = true, name = "container-monitor")]
    ContainerMonitor {
        /// The command waits on an exec fifo for `start`.
        #[arg(long)]
        created: bool,
        /// Container id.
        id: String,
    },
    /// Serve stratafs in this process (what `stratafs` does); used by the launcher.
    #[command(hide = true, name = "stratafs", disable_help_flag = true)]
    Stratafs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root;
    let result = match cli.command {
        Command::Image(cmd) => launcher::cmd_image::image(root, cmd),
        Command::Diff(args) => launcher::cmd_image::diff(root, args),
        Command::Commit(args) => launcher::cmd_image::commit(root, args),
        Command::Export(args) => launcher::cmd_image::export(root, args),
        Command::Pull(args) => launcher::cmd_registry::pull(root, args),
        Command::Push(args) => launcher::cmd_registry::push(root, args),
        Command::Login(args) => launcher::cmd_registry::login(args),
        Command::Logout(args) => launcher::cmd_registry::logout(args),
        Command::Run(args) => launcher::cmd_run::run(root, args),
        Command::Create(args) => launcher::cmd_lifecycle::create(root, args),
        Command::Start(args) => launcher::cmd_lifecycle::start(root, args),
        Command::Exec(args) => launcher::cmd_lifecycle::exec(root, args),
        Command::Logs(args) => launcher::cmd_lifecycle::logs(root, args),
        Command::Stop(args) => launcher::cmd_lifecycle::stop(root, args),
        Command::Kill(args) => launcher::cmd_lifecycle::kill(root, args),
        Command::Wait(args) => launcher::cmd_lifecycle::wait(root, args),
        Command::Restart(args) => launcher::cmd_lifecycle::restart(root, args),
        Command::Inspect(args) => launcher::cmd_lifecycle::inspect(root, args),
        Command::Top(args) => launcher::cmd_lifecycle::top(root, args),
        Command::Port(args) => launcher::cmd_lifecycle::port(root, args),
        Command::Stats(args) => launcher::cmd_lifecycle::stats(root, args),
        Command::Cp(args) => launcher::cmd_lifecycle::cp(root, args),
        Command::ContainerMonitor { id, created } => {
            launcher::cmd_lifecycle::monitor(root, &id, created)
        }
        Command::Ps(args) => launcher::cmd_run::ps(root, args),
        Command::Rm(args) => launcher::cmd_run::rm(root, args),
        Command::Mount(args) => launcher::cmd_run::mount(root, args),
        Command::Unmount(args) => launcher::cmd_run::unmount(root, args),
        Command::Stratafs { args } => {
            let mut argv = vec![std::ffi::OsString::from("stratafs")];
            argv.extend(args);
            return stratafs::cli::main(argv);
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("strata: {err:#}");
            ExitCode::from(EXIT_STRATA_ERROR)
        }
    }
}
