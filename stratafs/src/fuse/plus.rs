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
//!
//! The kernel caches a directory's listing (the daemon leaves directory opens to it),
//! so a listing given bare is served bare to the next process too, which the daemon
//! never sees: `find` then `find -printf '%s'` (or `ls -lR`, `du`) would look up every
//! name on its own (20k LOOKUPs for 20k files, 4x kernel overlayfs). So the daemon
//! remembers which directories it listed bare, and when a process looks up a file in
//! one of them (it stats what it lists, from the cache or from the daemon) it drops
//! the kernel's cached bare listings: that process's next listings come to the daemon,
//! which gives them with attributes.

use dashmap::DashMap;

/// Processes tracked at most; past this the record starts over (it only steers speed).
const MAX_TRACKED: usize = 4096;

/// Directories listed bare remembered at most; the ones past this stay cached bare.
const MAX_BARE_DIRS: usize = 1 << 16;

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
    /// Directories whose first listing chunk was given without attributes since the
    /// last [`PlusPolicy::take_bare_dirs`]: the kernel may hold them cached bare.
    bare_dirs: DashMap<u64, ()>,
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
    /// a walk that only descends looks up too, so it proves nothing). True when `pid`
    /// has just shown that it stats what it lists, a listing given bare may still be
    /// cached by the kernel, and so the caller should drop those
    /// ([`PlusPolicy::take_bare_dirs`]) for `pid`'s next listings to come with
    /// attributes.
    pub fn looked_up(&self, pid: u32, parent: u64, is_dir: bool) -> bool {
        if is_dir || pid == 0 {
            return false;
        }
        // Listed bare by anyone: this process may have read it from the kernel's cache.
        let listed_bare = self.bare_dirs.contains_key(&parent);
        if let Some(mut h) = self.habits.get_mut(&pid) {
            if h.stats_listed || !(h.bare_dir == parent || listed_bare) {
                return false;
            }
            h.stats_listed = true;
        } else {
            if !listed_bare {
                return false;
            }
            if self.habits.len() >= MAX_TRACKED {
                self.habits.clear();
            }
            self.habits.insert(
                pid,
                Habit {
                    bare_dir: 0,
                    stats_listed: true,
                },
            );
        }
        !self.bare_dirs.is_empty()
    }

    /// The listing of `dir` was given without attributes from its start, whole: the
    /// kernel caches it so, and it is one to drop when a process shows it stats what
    /// it lists. Only small listings are given here: a reader in the middle of a
    /// dropped cache goes on from a listing taken anew, which for a large directory
    /// listed while its lowers were read may come in another order.
    pub fn listed_bare(&self, dir: u64) {
        if self.bare_dirs.len() < MAX_BARE_DIRS {
            self.bare_dirs.insert(dir, ());
        }
    }

    /// A name in `dir` was made, removed or renamed through the mount. The kernel
    /// starts its cached listing of `dir` over at the next read from the start, and
    /// that read comes here; dropping the cache instead could have a reader in the
    /// middle of it continue on a listing taken after the change (a name seen twice
    /// or not at all), so `dir` is no longer one to drop.
    pub fn changed(&self, dir: u64) {
        self.bare_dirs.remove(&dir);
    }

    /// The directories listed bare since the last call, forgotten: the caller drops
    /// the kernel's cached listings of them.
    pub fn take_bare_dirs(&self) -> Vec<u64> {
        let dirs: Vec<u64> = self.bare_dirs.iter().map(|e| *e.key()).collect();
        for d in &dirs {
            self.bare_dirs.remove(d);
        }
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_stats_its_listings_gets_attributes_from_then_on() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.listed_bare(5);
        assert!(
            p.looked_up(10, 5, false),
            "the bare listing of 5 is to be dropped"
        );
        assert_eq!(p.take_bare_dirs(), vec![5]);
        assert!(p.wants_attributes(10, 6));
        assert!(p.wants_attributes(10, 7));
        assert!(!p.looked_up(10, 6, false), "already known");
        assert!(p.take_bare_dirs().is_empty());
    }

    #[test]
    fn statting_a_listing_another_process_was_given_bare_drops_the_cached_ones() {
        let p = PlusPolicy::default();
        // `find` is given 5 and 6 bare; the kernel caches both listings.
        assert!(!p.wants_attributes(10, 5));
        p.listed_bare(5);
        assert!(!p.wants_attributes(10, 6));
        p.listed_bare(6);
        // `find -printf %s` reads 5 from the kernel's cache and looks up a file in it.
        assert!(p.looked_up(11, 5, false));
        let mut dirs = p.take_bare_dirs();
        dirs.sort();
        assert_eq!(dirs, vec![5, 6]);
        // Its next listing comes to the daemon and gets attributes; find's do not.
        assert!(p.wants_attributes(11, 6));
        assert!(!p.wants_attributes(10, 7));
        p.listed_bare(7);
    }

    #[test]
    fn a_changed_directory_is_not_dropped() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.listed_bare(5);
        assert!(!p.wants_attributes(10, 6));
        p.listed_bare(6);
        p.changed(5);
        assert!(p.looked_up(11, 6, false));
        assert_eq!(p.take_bare_dirs(), vec![6]);
    }

    #[test]
    fn descending_into_listed_directories_is_not_statting() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.listed_bare(5);
        p.looked_up(10, 5, true);
        assert!(!p.wants_attributes(10, 6));
        p.listed_bare(6);
    }

    #[test]
    fn lookups_outside_bare_listings_do_not_count() {
        let p = PlusPolicy::default();
        assert!(!p.wants_attributes(10, 5));
        p.listed_bare(5);
        assert!(!p.looked_up(10, 9, false));
        assert!(!p.looked_up(11, 9, false));
        assert!(!p.looked_up(0, 5, false));
        assert!(!p.wants_attributes(10, 6));
        p.listed_bare(6);
        assert!(!p.wants_attributes(11, 6));
        p.listed_bare(6);
        assert!(!p.wants_attributes(0, 6));
        p.listed_bare(6);
    }
}
