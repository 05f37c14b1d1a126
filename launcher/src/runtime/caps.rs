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

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in [`DEFAULT_CAPS`] from the bounding set. Must run while
/// the process still has CAP_SETPCAP (before switching to a non-root user).
pub fn drop_bounding() -> Result<()> {
    for cap in 0..=last_cap() {
        if DEFAULT_CAPS.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e)
                    .with_context(|| format!("dropping capability {cap} from the bounding set"));
            }
        }
    }
    Ok(())
}

/// Sets effective and permitted to the default set intersected with what the process
/// has (for uid 0 in the container; others lose all on setuid), and empties the
/// inheritable set, as runc and moby do since CVE-2022-24769 (an inheritable set lets
/// a program with file capabilities gain them past the bounding set's intent).
pub fn set_default_caps() -> Result<()> {
    let mut mask = [0u32; 2];
    for c in DEFAULT_CAPS {
        mask[(*c / 32) as usize] |= 1 << (c % 32);
    }
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut cur = [CapData::default(); 2];
    // SAFETY: header and two data structs as capget(2) requires for version 3.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            cur.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("capget");
    }
    let mut data = [CapData::default(); 2];
    for i in 0..2 {
        let m = mask[i] & cur[i].permitted;
        data[i] = CapData {
            effective: m,
            permitted: m,
            inheritable: 0,
        };
    }
    // SAFETY: as above, for capset(2).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("capset");
    }
    Ok(())
}

/// Sets no_new_privs: setuid binaries and file capabilities grant nothing.
pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")
}
