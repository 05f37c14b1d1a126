//! Requests served, per opcode, and the time the serving threads spent on them: what
//! a workload costs in round trips, the figure that explains a FUSE file system's
//! distance to kernel overlayfs. Each serving thread counts into its own `Tally` (one
//! writer, no locked instruction on the hot path); `Tallies::sum` adds them up when
//! asked (`-o stats=PATH`: at unmount and on SIGUSR1).

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;

/// Opcodes counted one by one; anything above is counted under slot 0.
const SLOTS: usize = 64;

/// The kernel's names for its FUSE opcodes (`include/uapi/linux/fuse.h`), by number.
fn opcode_name(opcode: usize) -> Option<&'static str> {
    Some(match opcode {
        1 => "LOOKUP",
        2 => "FORGET",
        3 => "GETATTR",
        4 => "SETATTR",
        5 => "READLINK",
        6 => "SYMLINK",
        8 => "MKNOD",
        9 => "MKDIR",
        10 => "UNLINK",
        11 => "RMDIR",
        12 => "RENAME",
        13 => "LINK",
        14 => "OPEN",
        15 => "READ",
        16 => "WRITE",
        17 => "STATFS",
        18 => "RELEASE",
        20 => "FSYNC",
        21 => "SETXATTR",
        22 => "GETXATTR",
        23 => "LISTXATTR",
        24 => "REMOVEXATTR",
        25 => "FLUSH",
        26 => "INIT",
        27 => "OPENDIR",
        28 => "READDIR",
        29 => "RELEASEDIR",
        30 => "FSYNCDIR",
        31 => "GETLK",
        32 => "SETLK",
        33 => "SETLKW",
        34 => "ACCESS",
        35 => "CREATE",
        36 => "INTERRUPT",
        37 => "BMAP",
        38 => "DESTROY",
        39 => "IOCTL",
        40 => "POLL",
        41 => "NOTIFY_REPLY",
        42 => "BATCH_FORGET",
        43 => "FALLOCATE",
        44 => "READDIRPLUS",
        45 => "RENAME2",
        46 => "LSEEK",
        47 => "COPY_FILE_RANGE",
        48 => "SETUPMAPPING",
        49 => "REMOVEMAPPING",
        50 => "SYNCFS",
        51 => "TMPFILE",
        52 => "STATX",
        _ => return None,
    })
}

/// Whether the kernel waits for a reply to this opcode (FORGETs and INTERRUPT are
/// one-way messages, not round trips).
fn is_round_trip(opcode: usize) -> bool {
    use super::abi::{BATCH_FORGET, FORGET, INTERRUPT, NOTIFY_REPLY};
    !matches!(
        u32::try_from(opcode),
        Ok(FORGET | INTERRUPT | NOTIFY_REPLY | BATCH_FORGET)
    )
}

/// One serving thread's counts; only that thread writes them.
#[derive(Debug)]
pub struct Tally {
    count: [AtomicU64; SLOTS],
    busy_ns: [AtomicU64; SLOTS],
}

impl Tally {
    /// Counts one request of `opcode` that kept the thread busy for `busy`.
    #[inline]
    pub fn add(&self, opcode: u32, busy: Duration) {
        let i = if (opcode as usize) < SLOTS {
            opcode as usize
        } else {
            0
        };
        // One writer per tally: a plain load and store, no read-modify-write lock.
        let c = &self.count[i];
        c.store(c.load(Relaxed) + 1, Relaxed);
        let b = &self.busy_ns[i];
        b.store(b.load(Relaxed) + busy.as_nanos() as u64, Relaxed);
    }
}

/// Every serving thread's tally, to be summed on demand.
#[derive(Debug, Default)]
pub struct Tallies {
    threads: Mutex<Vec<Arc<Tally>>>,
}

impl Tallies {
    /// A new, empty set (shared by the transports of one mount).
    pub fn new() -> Arc<Tallies> {
        Arc::new(Tallies::default())
    }

    /// A tally for one more serving thread.
    pub fn register(&self) -> Arc<Tally> {
        let t = Arc::new(Tally {
            count: std::array::from_fn(|_| AtomicU64::new(0)),
            busy_ns: std::array::from_fn(|_| AtomicU64::new(0)),
        });
        self.threads.lock().push(t.clone());
        t
    }

    /// The counts of every thread so far, added up.
    pub fn sum(&self) -> Totals {
        let mut totals = Totals {
            count: [0; SLOTS],
            busy_ns: [0; SLOTS],
        };
        for t in self.threads.lock().iter() {
            for i in 0..SLOTS {
                totals.count[i] += t.count[i].load(Relaxed);
                totals.busy_ns[i] += t.busy_ns[i].load(Relaxed);
            }
        }
        totals
    }
}

/// Requests served per opcode and the serving threads' busy time, added up.
#[derive(Debug, Clone)]
pub struct Totals {
    count: [u64; SLOTS],
    busy_ns: [u64; SLOTS],
}

impl Totals {
    /// Requests the kernel waited on (every opcode but FORGETs and INTERRUPT).
    pub fn round_trips(&self) -> u64 {
        (0..SLOTS)
            .filter(|&i| is_round_trip(i))
            .map(|i| self.count[i])
            .sum()
    }

    /// Writes the table to `path` whole (a temporary file renamed over it), so a
    /// reader never sees half of it.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut f = std::fs::File::create(&tmp)?;
        write!(f, "{self}")?;
        f.flush()?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

/// One line per opcode seen (`NAME<TAB>count<TAB>busy microseconds`), then the round
/// trips in all: a format both people and scripts read.
impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# opcode\trequests\tbusy_us")?;
        for i in 1..SLOTS {
            if self.count[i] > 0 {
                let name = opcode_name(i).unwrap_or("UNKNOWN");
                writeln!(f, "{name}\t{}\t{}", self.count[i], self.busy_ns[i] / 1000)?;
            }
        }
        if self.count[0] > 0 {
            writeln!(f, "OTHER\t{}\t{}", self.count[0], self.busy_ns[0] / 1000)?;
        }
        writeln!(f, "ROUND_TRIPS\t{}", self.round_trips())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_add_up_across_threads_and_skip_one_way_messages() {
        let all = Tallies::new();
        let a = all.register();
        let b = all.register();
        a.add(1, Duration::from_micros(10));
        b.add(1, Duration::from_micros(5));
        b.add(42, Duration::from_micros(1));
        a.add(4000, Duration::from_micros(2));
        let t = all.sum();
        assert_eq!(t.round_trips(), 3, "BATCH_FORGET is not a round trip");
        let text = t.to_string();
        assert!(text.contains("LOOKUP\t2\t15\n"), "{text}");
        assert!(text.contains("BATCH_FORGET\t1\t1\n"), "{text}");
        assert!(text.contains("OTHER\t1\t2\n"), "{text}");
        assert!(text.ends_with("ROUND_TRIPS\t3\n"), "{text}");
    }

    #[test]
    fn totals_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        let all = Tallies::new();
        all.register().add(3, Duration::from_micros(7));
        all.sum().write_to(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# opcode\trequests\tbusy_us\nGETATTR\t1\t7\nROUND_TRIPS\t1\n"
        );
        assert!(!dir.path().join("stats.tmp").exists());
    }
}
