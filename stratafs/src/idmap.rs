//! uid/gid translation between what the mount shows and what the layers store
//! (fuse-overlayfs' `uidmapping=`, `gidmapping=`, `squash_to_*`).
//!
//! As fuse-overlayfs reads them: `uidmapping=STORED:SHOWN:COUNT[:...]`, so with
//! `uidmapping=0:1000:1` a layer file owned by 0 shows as 1000 and a file created by
//! uid 1000 is stored as 0. An id no range covers is shown, and stored, as the
//! kernel's overflow id (`/proc/sys/kernel/overflowuid`, `overflowgid`; 65534),
//! as fuse-overlayfs 2.0 does both ways. `squash_to_*` changes only what is shown.

use crate::daemon::options::{IdMapping, MountConfig};

/// The overflow id when `/proc/sys/kernel/overflow{u,g}id` cannot be read.
pub const OVERFLOW_ID: u32 = 65534;

/// Translates ids one way for attributes and the other way for chown and creation.
#[derive(Debug, Clone)]
pub struct IdMapper {
    uids: Vec<IdMapping>,
    gids: Vec<IdMapping>,
    squash_uid: Option<u32>,
    squash_gid: Option<u32>,
    overflow_uid: u32,
    overflow_gid: u32,
}

impl Default for IdMapper {
    fn default() -> Self {
        IdMapper {
            uids: Vec::new(),
            gids: Vec::new(),
            squash_uid: None,
            squash_gid: None,
            overflow_uid: OVERFLOW_ID,
            overflow_gid: OVERFLOW_ID,
        }
    }
}

/// The kernel's overflow id from `/proc/sys/kernel/NAME`, else 65534.
fn overflow(name: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(OVERFLOW_ID)
}

/// The id shown for stored `id`.
fn shown(maps: &[IdMapping], id: u32, overflow: u32) -> u32 {
    if maps.is_empty() {
        return id;
    }
    maps.iter()
        .find(|m| id >= m.stored && id - m.stored < m.count)
        .map(|m| m.shown + (id - m.stored))
        .unwrap_or(overflow)
}

/// The id stored for shown `id`.
fn stored(maps: &[IdMapping], id: u32, overflow: u32) -> u32 {
    if maps.is_empty() {
        return id;
    }
    maps.iter()
        .find(|m| id >= m.shown && id - m.shown < m.count)
        .map(|m| m.stored + (id - m.shown))
        .unwrap_or(overflow)
}

impl IdMapper {
    /// The mapper a mount's options ask for.
    pub fn from_config(cfg: &MountConfig) -> IdMapper {
        let mapped = !cfg.uid_mapping.is_empty() || !cfg.gid_mapping.is_empty();
        IdMapper {
            uids: cfg.uid_mapping.clone(),
            gids: cfg.gid_mapping.clone(),
            // squash_to_uid/gid win over squash_to_root, as in fuse-overlayfs.
            squash_uid: cfg.squash_to_uid.or(cfg.squash_to_root.then_some(0)),
            squash_gid: cfg.squash_to_gid.or(cfg.squash_to_root.then_some(0)),
            overflow_uid: if mapped {
                overflow("overflowuid")
            } else {
                OVERFLOW_ID
            },
            overflow_gid: if mapped {
                overflow("overflowgid")
            } else {
                OVERFLOW_ID
            },
        }
    }

    /// True when ids pass through unchanged.
    pub fn is_identity(&self) -> bool {
        self.uids.is_empty()
            && self.gids.is_empty()
            && self.squash_uid.is_none()
            && self.squash_gid.is_none()
    }

    /// The uid the mount shows for a stored uid.
    pub fn uid_in(&self, id: u32) -> u32 {
        self.squash_uid
            .unwrap_or_else(|| shown(&self.uids, id, self.overflow_uid))
    }

    /// The gid the mount shows for a stored gid.
    pub fn gid_in(&self, id: u32) -> u32 {
        self.squash_gid
            .unwrap_or_else(|| shown(&self.gids, id, self.overflow_gid))
    }

    /// The stored uid for a uid as the mount shows it. Always `Some`: an id no range
    /// covers is stored as the overflow uid, as fuse-overlayfs 2.0 stores it (for
    /// creation and chown alike).
    pub fn uid_out(&self, id: u32) -> Option<u32> {
        Some(stored(&self.uids, id, self.overflow_uid))
    }

    /// The stored gid for a gid as the mount shows it (see [`IdMapper::uid_out`]).
    pub fn gid_out(&self, id: u32) -> Option<u32> {
        Some(stored(&self.gids, id, self.overflow_gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(stored: u32, shown: u32, count: u32) -> IdMapping {
        IdMapping {
            stored,
            shown,
            count,
        }
    }

    #[test]
    fn stored_then_shown() {
        // uidmapping=0:1000:1:1:100000:65536 — stored 0 shows as 1000, stored 1..
        // as 100000...
        let cfg = MountConfig {
            uid_mapping: vec![range(0, 1000, 1), range(1, 100000, 65536)],
            ..Default::default()
        };
        let m = IdMapper::from_config(&cfg);
        let of = overflow("overflowuid");
        assert_eq!(m.uid_in(0), 1000);
        assert_eq!(m.uid_in(5), 100004);
        assert_eq!(m.uid_in(70000), of);
        assert_eq!(m.uid_out(1000), Some(0));
        assert_eq!(m.uid_out(100004), Some(5));
        assert_eq!(m.uid_out(7), Some(of));
        // No gidmapping: gids pass through.
        assert_eq!(m.gid_in(42), 42);
        assert_eq!(m.gid_out(42), Some(42));
    }

    #[test]
    fn squash_changes_only_what_is_shown() {
        let cfg = MountConfig {
            squash_to_root: true,
            uid_mapping: vec![range(0, 1000, 1)],
            ..Default::default()
        };
        let m = IdMapper::from_config(&cfg);
        assert_eq!(m.uid_in(1234), 0);
        assert_eq!(m.gid_in(1234), 0);
        assert_eq!(m.uid_out(1000), Some(0));
        let cfg = MountConfig {
            squash_to_uid: Some(42),
            ..Default::default()
        };
        let m = IdMapper::from_config(&cfg);
        assert_eq!(m.uid_in(7), 42);
        assert_eq!(m.gid_in(7), 7);
        assert_eq!(m.uid_out(7), Some(7));
        let cfg = MountConfig {
            squash_to_root: true,
            squash_to_gid: Some(9),
            ..Default::default()
        };
        let m = IdMapper::from_config(&cfg);
        assert_eq!((m.uid_in(7), m.gid_in(7)), (0, 9));
    }
}
