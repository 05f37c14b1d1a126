//! Capabilities: drop the bounding set to the default container set (podman's), set
//! effective/permitted/inheritable to it, and forbid privilege gain (no_new_privs).

use anyhow::{Context, Result};

/// The default capability set (podman's default, by number).
pub const DEFAULT_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    18, // CAP_SYS_CHROOT
    31, // CAP_SETFCAP
];

/// Capability sets by number, as a container asks for them (OCI
/// `process.capabilities`; `strata run` uses [`CapSets::default`], podman's set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSets {
    /// Kept in the bounding set; the rest is dropped.
    pub bounding: Vec<u32>,
    /// Effective set (for uid 0 in the container).
    pub effective: Vec<u32>,
    /// Permitted set (for uid 0 in the container).
    pub permitted: Vec<u32>,
    /// Inheritable set.
    pub inheritable: Vec<u32>,
}

impl Default for CapSets {
    /// [`DEFAULT_CAPS`] in bounding, effective and permitted; inheritable empty.
    fn default() -> Self {
        CapSets {
            bounding: DEFAULT_CAPS.to_vec(),
            effective: DEFAULT_CAPS.to_vec(),
            permitted: DEFAULT_CAPS.to_vec(),
            inheritable: Vec::new(),
        }
    }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `keep` from the bounding set. Must run while the
/// process still has CAP_SETPCAP (before switching to a non-root user).
pub fn drop_bounding(keep: &[u32]) -> Result<()> {
    for cap in 0..=last_cap() {
        if keep.contains(&cap) {
            continue;
        }
        // A capability set has 64 bits; no kernel numbers a capability past them.
        let Some(bit) = 1u64.checked_shl(cap) else {
            continue;
        };
        let set = rustix::thread::CapabilitySet::from_bits_retain(bit);
        // EINVAL: a number past the running kernel's last capability.
        if let Err(e) = rustix::thread::remove_capability_from_bounding_set(set)
            && e != rustix::io::Errno::INVAL
        {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("dropping capability {cap} from the bounding set"));
        }
    }
    Ok(())
}

/// Sets effective and permitted to the default set intersected with what the process
/// has (for uid 0 in the container; others lose all on setuid), and empties the
/// inheritable set, as runc and moby do since CVE-2022-24769 (an inheritable set lets
/// a program with file capabilities gain them past the bounding set's intent).
pub fn set_default_caps() -> Result<()> {
    set_caps(&CapSets::default())
}

/// Sets effective, permitted and inheritable to `sets`' (each intersected with what
/// the process has permitted).
pub fn set_caps(sets: &CapSets) -> Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets, capabilities, set_capabilities};
    let mask = |caps: &[u32]| {
        let bits = caps
            .iter()
            .filter_map(|c| 1u64.checked_shl(*c))
            .fold(0u64, |m, b| m | b);
        CapabilitySet::from_bits_retain(bits)
    };
    let cur = capabilities(None)
        .map_err(std::io::Error::from)
        .context("capget")?;
    set_capabilities(
        None,
        CapabilitySets {
            effective: mask(&sets.effective) & cur.permitted,
            permitted: mask(&sets.permitted) & cur.permitted,
            inheritable: mask(&sets.inheritable) & cur.permitted,
        },
    )
    .map_err(std::io::Error::from)
    .context("capset")
}

/// Sets no_new_privs: setuid binaries and file capabilities grant nothing.
pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")
}
