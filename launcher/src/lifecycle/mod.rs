//! strata's own container lifecycle (`run -d`, `create`/`start`, `exec`, `logs`,
//! `stop`, `kill`, `wait`, `restart`, `inspect`, `top`, `stats`, `cp`) on the
//! runtime's core: a detached container is run by a monitor process (`monitor`) that
//! is the same launcher `strata run` is (`runtime::launch`), its stdio in a log file,
//! its state in `containers/<id>/runtime/state.json` (`runtime::state`).
//! One module per job; none depends on `cmd_*`.

pub mod config;
pub mod cp;
pub mod exec;
pub mod inspect;
pub mod logs;
pub mod monitor;
pub mod stats;
pub mod stop;
pub mod top;

use anyhow::{Result, bail};

use crate::runtime::state::{self, State};

/// The state of a container that is running; an error naming it otherwise.
pub fn running_state(c: &store::Container) -> Result<State> {
    match state::load(&c.dir) {
        Some(s) if state::status(&s) == state::Status::Running && s.pid > 0 => Ok(s),
        _ => bail!("container {} is not running", c.name),
    }
}
