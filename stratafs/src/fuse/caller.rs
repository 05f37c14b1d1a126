//! What a request does not say about the process behind it: whether it holds
//! CAP_FSETID and which groups it is in. The kernel leaves clearing set-user-ID and
//! set-group-ID bits on write and truncate to the daemon (`FUSE_HANDLE_KILLPRIV_V2`),
//! and the rule turns on both; they are read from `/proc` only when a file carrying
//! such a bit is written, which is rare.

use std::fs;
use std::os::unix::fs::MetadataExt;

/// The inode number of the initial user namespace (`PROC_USER_INIT_INO`): the one
/// `capable()` checks capabilities in.
const INIT_USER_NS_INO: u64 = 0xEFFF_FFFD;

/// Bit of CAP_FSETID (capability 4) in the capability sets of `/proc/PID/status`.
const CAP_FSETID_BIT: u64 = 1 << 4;

/// The process behind a request, as far as it matters for clearing privilege bits.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Holds CAP_FSETID in the initial user namespace (the kernel's `capable()`).
    pub fsetid: bool,
    /// Its filesystem gid and supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// Reads process `pid`'s status. A process that is gone (or a status that cannot be
    /// read) counts as unprivileged and in no group: bits are cleared, never kept.
    pub fn of(pid: u32) -> Caller {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            return Caller::default();
        };
        let init_ns = fs::metadata(format!("/proc/{pid}/ns/user"))
            .map(|m| m.ino() == INIT_USER_NS_INO)
            .unwrap_or(false);
        let mut caller = parse_status(&status);
        caller.fsetid &= init_ns;
        caller
    }

    /// The bits (`S_ISUID`, `S_ISGID`) a write or truncate by this caller clears from
    /// a file of `mode` and group `gid`, as the VFS does (`setattr_should_drop_suidgid`):
    /// none with CAP_FSETID; else set-user-ID, and set-group-ID when the group may
    /// execute or the caller is not in the group.
    pub fn bits_to_clear(&self, mode: u32, gid: u32) -> u32 {
        if self.fsetid {
            return 0;
        }
        let mut bits = mode & libc::S_ISUID;
        if mode & libc::S_ISGID != 0 && (mode & libc::S_IXGRP != 0 || !self.groups.contains(&gid)) {
            bits |= libc::S_ISGID;
        }
        bits
    }
}

/// Whether a file of `mode` has a bit a write by someone might clear (so the caller
/// needs to be looked at).
pub fn has_privilege_bits(mode: u32) -> bool {
    mode & (libc::S_ISUID | libc::S_ISGID) != 0
}

fn parse_status(status: &str) -> Caller {
    let mut caller = Caller::default();
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("CapEff:") {
            caller.fsetid = u64::from_str_radix(v.trim(), 16)
                .map(|caps| caps & CAP_FSETID_BIT != 0)
                .unwrap_or(false);
        } else if let Some(v) = line.strip_prefix("Gid:") {
            // real, effective, saved, filesystem: permission checks use the last.
            if let Some(fsgid) = v.split_whitespace().nth(3).and_then(|g| g.parse().ok()) {
                caller.groups.push(fsgid);
            }
        } else if let Some(v) = line.strip_prefix("Groups:") {
            caller
                .groups
                .extend(v.split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
        }
    }
    caller
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: &str = "Name:\tsh\nUid:\t65534\t65534\t65534\t65534\n\
        Gid:\t65534\t65534\t65534\t100\nGroups:\t27 44 \nCapEff:\t0000000000000000\n";
    const ROOT: &str = "Gid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\t000001ffffffffff\n";

    #[test]
    fn status_gives_fsgid_groups_and_fsetid() {
        let nobody = parse_status(NOBODY);
        assert_eq!(nobody.groups, vec![100, 27, 44]);
        assert!(!nobody.fsetid);
        let root = parse_status(ROOT);
        assert!(root.fsetid);
        assert_eq!(root.groups, vec![0]);
    }

    #[test]
    fn bits_cleared_follow_the_vfs_rule() {
        let nobody = parse_status(NOBODY);
        assert_eq!(nobody.bits_to_clear(0o4777, 0), libc::S_ISUID);
        assert_eq!(nobody.bits_to_clear(0o2777, 27), libc::S_ISGID); // group may execute
        assert_eq!(nobody.bits_to_clear(0o2767, 27), 0); // in the group, no execute
        assert_eq!(nobody.bits_to_clear(0o2767, 0), libc::S_ISGID); // not in the group
        assert_eq!(
            nobody.bits_to_clear(0o6777, 44),
            libc::S_ISUID | libc::S_ISGID
        );
        assert_eq!(parse_status(ROOT).bits_to_clear(0o6777, 5), 0);
        assert!(has_privilege_bits(0o2644) && !has_privilege_bits(0o1777));
    }

    #[test]
    fn a_process_that_is_gone_clears_everything() {
        let gone = Caller::of(u32::MAX);
        assert_eq!(gone.bits_to_clear(0o6767, 0), libc::S_ISUID | libc::S_ISGID);
    }
}
