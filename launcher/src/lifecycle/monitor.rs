//! The monitor of a detached container: `strata run -d`, `create` and `start` spawn it
//! (the hidden `strata container-monitor [--created] ID`) with its stdio on the
//! container's log file; for `create` the container's command waits on an exec fifo
//! (`runtime/exec_fifo.rs`, as an OCI `create` leaves it) until `start` opens it;
//! it leaves the caller's session (setsid) and runs the container with the same
//! launcher `strata run` is (`runtime::launch`: setup process, guard, signal
//! forwarding, cleanup), so the exit code and finish time land in the container's
//! state when it ends. Killed, it leaves a state whose launcher is gone: `ps` says so,
//! and its guard cleans up the container's processes and cgroup.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{config, logs};
use crate::run_spec;
use crate::runtime::{self, exec_fifo, procfs, state};

/// The hidden subcommand the monitor runs as.
pub const SUBCOMMAND: &str = "container-monitor";

/// How long `start` waits for the container's command to be started.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The exec fifo of the container in `dir` while it is created and not started.
pub fn fifo_path(dir: &Path) -> std::path::PathBuf {
    dir.join("runtime").join("exec.fifo")
}

/// Spawns the monitor of container `c` (of the store at `store_root`) and returns once
/// the container's command runs (or already finished; with `created`, waits on its
/// exec fifo), or with the reason it could not start.
pub fn start(store_root: &Path, c: &store::Container, created: bool) -> Result<()> {
    let log_path = logs::path(&c.dir);
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening the log {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("duplicating the log {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the strata binary (/proc/self/exe)")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--root").arg(store_root).arg(SUBCOMMAND);
    if created {
        cmd.arg("--created");
    }
    let mut child = cmd
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .with_context(|| format!("starting the monitor {}", exe.display()))?;
    let monitor = child.id() as i32;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let st = state::load(&c.dir).filter(|s| s.launcher_pid == monitor);
        if let Some(s) = &st {
            if let Some(e) = &s.error {
                bail!("{e}");
            }
            if s.pid > 0 || s.exit_code.is_some() {
                return Ok(());
            }
        }
        if let Some(status) = child.try_wait().context("waiting for the monitor")? {
            if status.success() {
                // It ran and ended already (and with --rm, went).
                return Ok(());
            }
            // Its error, as it recorded it, else the end of its log (the caller may
            // remove the container, log included).
            if let Some(e) = state::load(&c.dir)
                .filter(|s| s.launcher_pid == monitor)
                .and_then(|s| s.error)
            {
                bail!("{e}");
            }
            let log = std::fs::read(&log_path).unwrap_or_default();
            let tail = String::from_utf8_lossy(&log[logs::tail_start(&log, 5)..]).into_owned();
            bail!(
                "the container's monitor exited ({status}) before the container started: {}",
                tail.trim()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "container {} did not start within {}s; see {}",
                c.name,
                START_TIMEOUT.as_secs(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Body of the monitor process: runs container `id` to its end (with `created`, its
/// command first waits for `start` on the exec fifo); exit status 0 once the
/// container ran (its code is in its state), 125 when it could not start.
pub fn main(root: Option<std::path::PathBuf>, id: &str, created: bool) -> Result<ExitCode> {
    // Out of the caller's session: its terminal's hangup never reaches us.
    let _ = nix::unistd::setsid();
    // A `stop` while the container starts is kept pending, for the launcher to pass on
    // once it runs (it reads the blocked signals from a signalfd), not fatal here.
    let mut mask = nix::sys::signal::SigSet::empty();
    for s in runtime::pid1::FORWARDED {
        mask.add(*s);
    }
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .context("blocking signals in the monitor")?;
    let store = store::Store::open(root)?;
    let c = store.container(id)?;
    let me = std::process::id() as i32;
    let mut st = state::State {
        launcher_pid: me,
        launcher_start: procfs::start_time(me),
        detached: true,
        ..Default::default()
    };
    state::save(&c.dir, &st)?;
    let ran = (|| -> Result<i32> {
        let args = config::load(&c.dir)?;
        let checked = run_spec::check(&args)?;
        let image = store.image_by_id(&c.image_id)?;
        let mut spec = run_spec::build(&store, &args, checked, &c, &image)?;
        spec.detached = true;
        let fifo = fifo_path(&c.dir);
        // One left by a created container that was never started.
        match std::fs::remove_file(&fifo) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", fifo.display()));
            }
            _ => {}
        }
        if created {
            exec_fifo::make(&fifo)?;
            spec.exec_fifo = Some(fifo);
        }
        st.command = spec.argv.clone();
        runtime::launch::launch(&spec)
    })();
    // A created container killed before `start` leaves its fifo.
    let _ = std::fs::remove_file(fifo_path(&c.dir));
    match ran {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("strata: {e:#}");
            // With --rm the container may be gone: write no state into a dir that went.
            if c.dir.join("upper").exists() {
                let mut last = state::load(&c.dir).unwrap_or(st);
                if last.exit_code.is_none() {
                    last.pid = 0;
                    last.exit_code = Some(runtime::EXIT_STRATA_ERROR);
                    last.finished_at = Some(state::now());
                    last.error = Some(format!("{e:#}"));
                    let _ = state::save(&c.dir, &last);
                }
            }
            Ok(ExitCode::from(runtime::EXIT_STRATA_ERROR as u8))
        }
    }
}
