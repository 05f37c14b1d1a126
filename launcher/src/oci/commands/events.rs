//! `events [--stats] [--interval D] ID`, as runc's: with `--stats` one
//! `{"type":"stats","id":ID,"data":{...}}` line from the container's cgroup; without,
//! such a line every interval (default 5 s) and an `{"type":"oom","id":ID}` line
//! whenever the memory cgroup's OOM count rises, until the container is gone (exit 0).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::oci::state::{Record, StateDir, Status};
use crate::runtime::cgroups::stats::{self, Stats};

/// runc's default `--interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// How often the OOM count and the container's liveness are looked at between stats.
const POLL: Duration = Duration::from_millis(100);

/// One line `events` prints (runc's `types.Event`).
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// `stats` or `oom`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The container's id.
    pub id: &'a str,
    /// The stats (none for `oom`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// Prints the events of container `id` on stdout.
pub fn events(root: &Path, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    let dir = StateDir::new(root, id)?;
    let record = dir.load()?;
    if record.status() == Status::Stopped {
        bail!("container {id} is not running");
    }
    if record.cgroup_paths.is_empty() {
        bail!("container {id} has no cgroup (a rootless container without limits)");
    }
    let mut out = std::io::stdout().lock();
    if stats_once {
        return print(&mut out, &stats_event(&record));
    }
    if interval.is_zero() {
        bail!("--interval must be more than zero");
    }
    let mut ooms = stats::oom_count(&record.cgroup_paths).unwrap_or(0);
    let mut next = Instant::now();
    while record.alive() {
        if Instant::now() >= next {
            print(&mut out, &stats_event(&record))?;
            next += interval;
        }
        if let Some(n) = stats::oom_count(&record.cgroup_paths)
            && n > ooms
        {
            ooms = n;
            let oom = Event {
                kind: "oom",
                id: &record.id,
                data: None,
            };
            print(&mut out, &oom)?;
        }
        std::thread::sleep(
            POLL.min(next.saturating_duration_since(Instant::now()))
                .max(
                    // never spin
                    Duration::from_millis(10),
                ),
        );
    }
    Ok(())
}

fn stats_event(record: &Record) -> Event<'_> {
    Event {
        kind: "stats",
        id: &record.id,
        data: Some(stats::read(&record.cgroup_paths)),
    }
}

/// One JSON line, flushed (a reader follows the stream).
fn print(out: &mut impl Write, event: &Event<'_>) -> Result<()> {
    let line = serde_json::to_string(event).context("encoding an event")?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}
