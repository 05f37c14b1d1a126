//! The FUSE requests behind a stratafs time: the daemon counts what it serves per
//! opcode and writes the counts to its `-o stats=PATH` file on SIGUSR1, so one pass of
//! a workload on a live mount is the difference of two snapshots. A round trip is
//! what a FUSE file system pays on top of kernel overlayfs's work, so
//! (time - kernel's time) / round trips is the cost of one on this machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Requests served per opcode, and the round trips among them (FORGETs excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// Count per opcode name.
    pub by_op: BTreeMap<String, u64>,
    /// Requests the kernel waited on.
    pub round_trips: u64,
}

impl Requests {
    /// Parses the daemon's table (`NAME<TAB>count<TAB>busy_us` lines, then
    /// `ROUND_TRIPS<TAB>n`).
    pub fn parse(text: &str) -> Result<Requests> {
        let mut r = Requests::default();
        let mut saw_total = false;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut fields = line.split('\t');
            let name = fields.next().unwrap_or_default();
            let count: u64 = fields
                .next()
                .and_then(|c| c.parse().ok())
                .with_context(|| format!("stats line without a count: {line:?}"))?;
            if name == "ROUND_TRIPS" {
                r.round_trips = count;
                saw_total = true;
            } else {
                r.by_op.insert(name.to_string(), count);
            }
        }
        if !saw_total {
            bail!("stats without a ROUND_TRIPS line");
        }
        Ok(r)
    }

    /// What was served after `before` was taken.
    pub fn since(&self, before: &Requests) -> Requests {
        let by_op = self
            .by_op
            .iter()
            .map(|(op, n)| {
                (
                    op.clone(),
                    n - before.by_op.get(op).copied().unwrap_or(0).min(*n),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Requests {
            by_op,
            round_trips: self.round_trips.saturating_sub(before.round_trips),
        }
    }

    /// The `n` most frequent round-trip opcodes, e.g. `SETATTR 4000, LOOKUP 2105`.
    pub fn most_frequent(&self, n: usize) -> String {
        let mut ops: Vec<(&String, &u64)> = self
            .by_op
            .iter()
            .filter(|(op, _)| !op.contains("FORGET"))
            .collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        ops.iter()
            .take(n)
            .map(|(op, c)| format!("{op} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Asks the daemon `pid` to write its counts to `path` (SIGUSR1) and reads them.
pub fn snapshot(pid: u32, path: &Path) -> Result<Requests> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
    }
    if let Err(e) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    ) {
        bail!("signal stratafs ({pid}): {}", std::io::Error::from(e));
    }
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Requests::parse(&text).with_context(|| format!("parse {}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("stratafs ({pid}) wrote no {} within 10 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str =
        "# opcode\trequests\tbusy_us\nLOOKUP\t5\t50\nFORGET\t2\t1\nROUND_TRIPS\t5\n";
    const AFTER: &str = "# opcode\trequests\tbusy_us\nLOOKUP\t9\t90\nGETATTR\t7\t20\nFORGET\t9\t3\nROUND_TRIPS\t16\n";

    #[test]
    fn a_pass_is_the_difference_of_two_snapshots() {
        let before = Requests::parse(BEFORE).unwrap();
        let after = Requests::parse(AFTER).unwrap();
        let pass = after.since(&before);
        assert_eq!(pass.round_trips, 11);
        assert_eq!(pass.by_op.get("LOOKUP"), Some(&4));
        assert_eq!(pass.by_op.get("GETATTR"), Some(&7));
        assert_eq!(pass.most_frequent(2), "GETATTR 7, LOOKUP 4");
    }

    #[test]
    fn a_table_without_its_total_is_refused() {
        assert!(Requests::parse("LOOKUP\t5\t50\n").is_err());
        assert!(Requests::parse("LOOKUP\tx\t50\nROUND_TRIPS\t1\n").is_err());
    }
}
