//! Which processes get attributes with their directory listings (READDIRPLUS).
//!
//! Attributes in a listing save one LOOKUP round trip per name for a process that
//! stats what it lists (`ls -l`, `du`, `tar`, `git status`), but cost a stat of every
//! entry in the layer (a name search and an inode read each, cold) for one that only
//! walks names (`find`, a plain `ls`). The kernel's own heuristic (READDIRPLUS_AUTO)
//! always asks for attributes with a directory's first chunk, which for the usual
//! small directory is all of it. The daemon sees which process asks, so it decides per
//! process: the first listing a process reads comes without attributes; once it looks
//! up a file it was just listed, its listings carry them.

use dashmap::DashMap;

/// Processes tracked at most; past this the record starts over (it only steers speed).
const MAX_TRACKED: usize = 4096;

/// What one process did with its listings.
#[derive(Debug, Clone, Copy, Default)]
struct Habit {
    /// The directory whose listing it was last given without attributes.
    bare_dir: u64,
    /// It looked up a file from such a listing: it stats what it lists.
    stats_listed: bool,
}

/// Per-process readdirplus decisions.
#[derive(Debug, Default)]
pub struct PlusPolicy {
    habits: DashMap<u32, Habit>,
}

impl PlusPolicy {
    /// Whether `pid`, starting to read directory `dir`, should get attributes. When not,
    /// the caller answers the first chunk with "." and ".." only, so that the kernel
    /// reads the rest as a plain listing; the directory is remembered for
    /// [`PlusPolicy::looked_up`].
    pub fn wants_attributes(&self, pid: u32, dir: u64) -> bool {
        if pid == 0 {
            return false;
        }
        if let Some(mut h) = self.habits.get_mut(&pid) {
            if h.stats_listed {
                return true;
            }
            h.bare_dir = dir;
            return false;
        }
        if self.habits.len() >= MAX_TRACKED {
            self.habits.clear();
        }
        self.habits.insert(
            pid,
            Habit {
                bare_dir: dir,
                stats_listed: false,
            },
        );
        false
    }

    /// Records that `pid` looked up a child of `parent` (`is_dir`: a directory, which
    /// a walk that only descends looks up too, so it proves nothing).
    pub fn looked_up(&self, pid: u32, parent: u64, is_dir: bool) {
        if is_dir {
            return;
        }
        if let Some(mut h) = self.habits.get_mut(&pid) {
            if !h.stats_listed && h.bare_dir == parent {
                h.stats_listed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_stats_its_listings_gets_attributes_from_then_on() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.looked_up(10, 5, false);
        assert!(p.wants_attributes(10, 6));
        assert!(p.wants_attributes(10, 7));
    }

    #[test]
    fn descending_into_listed_directories_is_not_statting() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.looked_up(10, 5, true);
        assert!(!p.wants_attributes(10, 6));
    }

    #[test]
    fn lookups_elsewhere_or_by_others_do_not_count() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.looked_up(10, 9, false);
        p.looked_up(11, 5, false);
        assert!(!p.wants_attributes(10, 6));
        assert!(!p.wants_attributes(11, 6));
        assert!(!p.wants_attributes(0, 6));
    }
}
