//! Ending a container and waiting for its end: `stop` (SIGTERM through its launcher,
//! which passes it on as `strata run` does, then SIGKILL after the timeout), `kill`
//! (any signal to its PID 1), `wait` (until its exit code is recorded).

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::runtime::state::{self, State, Status};

/// How long `stop` waits for the container's end after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(30);

/// Parses a signal as `kill -s` takes it: a number, `TERM` or `SIGTERM`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal number {n}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).with_context(|| format!("unknown signal {s:?}"))
}

/// Waits until the container in `dir` is no longer running, or `deadline`; its last
/// state (None: it is still running at the deadline, or has no state).
pub fn wait_stopped(dir: &std::path::Path, deadline: Option<Instant>) -> Option<State> {
    loop {
        let st = state::load(dir);
        match &st {
            Some(s) if !matches!(state::status(s), Status::Running | Status::Created) => {
                return st;
            }
            None if !dir.exists() => return None,
            _ => {}
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops container `c`: SIGTERM, then SIGKILL to its PID 1 after `timeout` (at once
/// when it is created and not started: its command has not run). Nothing to do when
/// it is not running.
pub fn stop(c: &store::Container, timeout: Duration) -> Result<()> {
    let Some(st) = state::load(&c.dir) else {
        return Ok(());
    };
    let timeout = match state::status(&st) {
        Status::Running => timeout,
        Status::Created => Duration::ZERO,
        Status::Exited(_) | Status::LauncherDied => return Ok(()),
    };
    // The launcher (monitor) passes SIGTERM on to PID 1, and kills a PID 1 that has
    // no handler for it (the kernel would drop the signal), as `strata run` does.
    let _ = kill(Pid::from_raw(st.launcher_pid), Signal::SIGTERM);
    if wait_stopped(&c.dir, Some(Instant::now() + timeout)).is_some() || !c.dir.exists() {
        return Ok(());
    }
    // The state may name the command only now (it was starting).
    let pid = state::load(&c.dir).map(|s| s.pid).unwrap_or(st.pid);
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if wait_stopped(&c.dir, Some(Instant::now() + KILL_GRACE)).is_some() || !c.dir.exists() {
        return Ok(());
    }
    bail!(
        "container {} did not stop within {}s of SIGKILL",
        c.name,
        KILL_GRACE.as_secs()
    )
}

/// Sends `sig` to the PID 1 of running container `c`.
pub fn kill_container(c: &store::Container, sig: Signal) -> Result<()> {
    let st = super::running_state(c)?;
    kill(Pid::from_raw(st.pid), sig)
        .with_context(|| format!("sending {sig} to container {} (pid {})", c.name, st.pid))
}

/// Waits for container `c` to end; its exit code.
pub fn wait(c: &store::Container) -> Result<i32> {
    if state::load(&c.dir).is_none() {
        bail!("container {} was never started", c.name);
    }
    match wait_stopped(&c.dir, None) {
        Some(State {
            exit_code: Some(code),
            ..
        }) => Ok(code),
        Some(_) => bail!(
            "the launcher of container {} died: its exit code is unknown",
            c.name
        ),
        None => bail!("container {} was removed while waiting", c.name),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_signal;
    use nix::sys::signal::Signal;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").ok(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("term").ok(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGUSR1").ok(), Some(Signal::SIGUSR1));
        assert!(parse_signal("nope").is_err());
        assert!(parse_signal("999").is_err());
    }
}
