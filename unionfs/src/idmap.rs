//! uid/gid translation between what the mount shows and what the layers store
//! (fuse-overlayfs' `uidmapping=`, `gidmapping=`, `squash_to_*`).

use crate::options::{IdMapping, MountConfig};

/// The id shown for an id that no mapping covers (the kernel's overflow id).
pub const OVERFLOW_ID: u32 = 65534;

/// Translates ids one way for attributes and the other way for chown and creation.
#[derive(Debug, Clone, Default)]
pub struct IdMapper {
    uids: Vec<IdMapping>,
    gids: Vec<IdMapping>,
    squash_uid: Option<u32>,
    squash_gid: Option<u32>,
}

fn inside(maps: &[IdMapping], id: u32) -> u32 {
    if maps.is_empty() {
        return id;
    }
    maps.iter()
        .find(|m| id >= m.outside && id - m.outside < m.count)
        .map(|m| m.inside + (id - m.outside))
        .unwrap_or(OVERFLOW_ID)
}

fn outside(maps: &[IdMapping], id: u32) -> Option<u32> {
    if maps.is_empty() {
        return Some(id);
    }
    maps.iter()
        .find(|m| id >= m.inside && id - m.inside < m.count)
        .map(|m| m.outside + (id - m.inside))
}

impl IdMapper {
    /// The mapper a mount's options ask for.
    pub fn from_config(cfg: &MountConfig) -> IdMapper {
        IdMapper {
            uids: cfg.uid_mapping.clone(),
            gids: cfg.gid_mapping.clone(),
            squash_uid: if cfg.squash_to_root {
                Some(0)
            } else {
                cfg.squash_to_uid
            },
            squash_gid: if cfg.squash_to_root {
                Some(0)
            } else {
                cfg.squash_to_gid
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

    /// The uid the mount shows for an on-disk uid.
    pub fn uid_in(&self, id: u32) -> u32 {
        self.squash_uid.unwrap_or_else(|| inside(&self.uids, id))
    }

    /// The gid the mount shows for an on-disk gid.
    pub fn gid_in(&self, id: u32) -> u32 {
        self.squash_gid.unwrap_or_else(|| inside(&self.gids, id))
    }

    /// The on-disk uid for a uid as the mount shows it; `None` when unmapped (EINVAL).
    pub fn uid_out(&self, id: u32) -> Option<u32> {
        outside(&self.uids, id)
    }

    /// The on-disk gid for a gid as the mount shows it; `None` when unmapped.
    pub fn gid_out(&self, id: u32) -> Option<u32> {
        outside(&self.gids, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways() {
        let cfg = MountConfig {
            uid_mapping: vec![
                IdMapping {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdMapping {
                    inside: 1,
                    outside: 100000,
                    count: 65536,
                },
            ],
            ..Default::default()
        };
        let m = IdMapper::from_config(&cfg);
        assert_eq!(m.uid_in(1000), 0);
        assert_eq!(m.uid_in(100004), 5);
        assert_eq!(m.uid_in(7), OVERFLOW_ID);
        assert_eq!(m.uid_out(0), Some(1000));
        assert_eq!(m.uid_out(5), Some(100004));
        assert_eq!(m.uid_out(70000), None);
        assert_eq!(m.gid_in(42), 42);
    }

    #[test]
    fn squash() {
        let cfg = MountConfig {
            squash_to_root: true,
            ..Default::default()
        };
        let m = IdMapper::from_config(&cfg);
        assert_eq!(m.uid_in(1234), 0);
        assert_eq!(m.gid_in(1234), 0);
    }
}
