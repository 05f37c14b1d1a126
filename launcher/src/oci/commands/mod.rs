//! One module per command; [`dispatch`] checks the global options and runs one.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use anyhow::{Result, bail};
use liboci_cli::{CommonCmd, StandardCmd};

use super::cli::{self, Command, CommandLine};
use super::log::Logger;

/// Runs the command of `cli`; the exit status (the container's for `run`).
pub fn dispatch(cli: &CommandLine, log: &Logger) -> Result<u8> {
    if cli.global.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: strata-runtime writes cgroupfs itself \
             (use the cgroupfs cgroup manager)"
        );
    }
    match cli.global.log_format.as_deref() {
        None | Some("text") | Some("json") => {}
        Some(other) => bail!("--log-format {other:?}: expected text or json"),
    }
    let root = || cli::state_root(&cli.global);
    log.debug(&format!("{:?}", cli.command));
    match &cli.command {
        Command::Standard(s) => match &**s {
            StandardCmd::Create(a) => {
                let opts = create::Options {
                    id: &a.container_id,
                    bundle: &a.bundle,
                    console_socket: a.console_socket.as_deref(),
                    pid_file: a.pid_file.as_deref(),
                    no_pivot: a.no_pivot,
                    preserve_fds: a.preserve_fds,
                    no_new_keyring: a.no_new_keyring,
                };
                create::create(&root()?, &opts, cli.rootless).map(|_| 0)
            }
            StandardCmd::Start(a) => start::start(&root()?, &a.container_id).map(|()| 0),
            StandardCmd::State(a) => state::state(&root()?, &a.container_id).map(|()| 0),
            StandardCmd::Kill(a) => {
                kill::kill(&root()?, &a.container_id, &a.signal, a.all).map(|()| 0)
            }
            StandardCmd::Delete(a) => {
                delete::delete(&root()?, &a.container_id, a.force).map(|()| 0)
            }
        },
        Command::Common(c) => match &**c {
            CommonCmd::Run(a) => run::run(&root()?, a, cli.rootless),
            CommonCmd::List(a) => list::list(&root()?, &a.format, a.quiet).map(|()| 0),
            CommonCmd::Ps(a) => ps::ps(&root()?, &a.container_id, &a.format).map(|()| 0),
            CommonCmd::Features(_) => features::features().map(|()| 0),
            CommonCmd::Spec(a) => spec::spec(a.bundle.as_deref(), a.rootless).map(|()| 0),
            CommonCmd::Exec(a) => exec::exec(&root()?, a),
            CommonCmd::Update(a) => update::update(&root()?, a).map(|()| 0),
            CommonCmd::Pause(a) => pause::pause(&root()?, &a.container_id, true).map(|()| 0),
            CommonCmd::Resume(a) => pause::pause(&root()?, &a.container_id, false).map(|()| 0),
            CommonCmd::Events(a) => events::events(
                &root()?,
                &a.container_id,
                a.stats,
                cli.events_interval.unwrap_or(events::DEFAULT_INTERVAL),
            )
            .map(|()| 0),
            other => bail!(
                "{}: not supported by strata-runtime yet",
                format!("{other:?}")
                    .split(['(', ' '])
                    .next()
                    .unwrap_or("this command")
                    .to_lowercase()
            ),
        },
    }
}
