//! Which processes read the files they look up, so that a cold small file's data is
//! on its way from the disk while the LOOKUP reply and the READ after it make their
//! round trips.
//!
//! `cat`, `grep -r`, a compiler, `xargs cat` after `find`: a process opens a file by
//! name (LOOKUP) and reads it (READ). Cold, the READ waits for the disk (~100 us on
//! this project's test VM) after two round trips the kernel overlay does not make.
//! For a process that has read the last files it looked up, the daemon starts the
//! read of a small file's data (`readahead(2)` on the real file, kept open for the
//! READ) when it answers the LOOKUP. A process that looks names up without reading
//! them (`git status`, `make`, `test -e`) loses the habit and costs no disk reads.

use dashmap::DashMap;

/// Processes tracked at most; past this the record starts over (it only steers speed).
const MAX_TRACKED: usize = 4096;

/// Files read after their lookup, net of those looked up and not read, before the
/// daemon reads ahead for a process.
const READS_TO_LEARN: u8 = 2;

/// The highest score: a reader that stops reading loses the habit after this many
/// lookups not followed by a read, less [`READS_TO_LEARN`].
const MAX_SCORE: u8 = 4;

/// Files up to this size are read ahead whole at their lookup (larger ones get the
/// kernel's own readahead from their first READ).
pub const PREFETCH_MAX: i64 = 128 * 1024;

#[derive(Debug, Clone, Copy, Default)]
struct Habit {
    /// The last regular file the process looked up.
    last: u64,
    /// It was read from its start since.
    last_read: bool,
    score: u8,
}

/// Per-process read-after-lookup habits.
#[derive(Debug, Default)]
pub struct ReadHabits {
    habits: DashMap<u32, Habit>,
}

impl ReadHabits {
    /// `pid` looked up regular file `ino`: true when it reads the files it looks up,
    /// so the caller should start reading this one.
    pub fn looked_up_file(&self, pid: u32, ino: u64) -> bool {
        if pid == 0 {
            return false;
        }
        if let Some(mut h) = self.habits.get_mut(&pid) {
            if h.last != ino && !h.last_read {
                h.score = h.score.saturating_sub(1);
            }
            h.last = ino;
            h.last_read = false;
            return h.score >= READS_TO_LEARN;
        }
        if self.habits.len() >= MAX_TRACKED {
            self.habits.clear();
        }
        self.habits.insert(
            pid,
            Habit {
                last: ino,
                last_read: false,
                score: 0,
            },
        );
        false
    }

    /// `pid` read `ino` from its start.
    pub fn read_start(&self, pid: u32, ino: u64) {
        if let Some(mut h) = self.habits.get_mut(&pid)
            && h.last == ino
            && !h.last_read
        {
            h.last_read = true;
            h.score = (h.score + 1).min(MAX_SCORE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_reads_what_it_looks_up_gets_read_ahead() {
        let r = ReadHabits::default();
        for ino in 10..12 {
            assert!(!r.looked_up_file(7, ino), "not learned yet at {ino}");
            r.read_start(7, ino);
        }
        assert!(r.looked_up_file(7, 12));
        r.read_start(7, 12);
        assert!(r.looked_up_file(7, 13));
    }

    #[test]
    fn lookups_without_reads_lose_the_habit() {
        let r = ReadHabits::default();
        for ino in 10..20 {
            r.looked_up_file(7, ino);
            r.read_start(7, ino);
        }
        // `git status` style: stat after stat, nothing read.
        let mut prefetched = 0;
        for ino in 100..110 {
            prefetched += usize::from(r.looked_up_file(7, ino));
        }
        assert!(
            prefetched <= 3,
            "{prefetched} files read ahead for a stat walk"
        );
        assert!(!r.looked_up_file(7, 200));
    }

    #[test]
    fn reads_of_other_files_or_by_others_do_not_count() {
        let r = ReadHabits::default();
        for ino in 10..20 {
            r.looked_up_file(7, ino);
            r.read_start(7, ino + 1);
            r.read_start(8, ino);
        }
        assert!(!r.looked_up_file(7, 30));
        assert!(!r.looked_up_file(0, 31));
    }
}
