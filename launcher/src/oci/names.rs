//! Names config.json and the command line use, and what they stand for: capabilities
//! (`CAP_CHOWN` → 0), rlimits (`RLIMIT_NOFILE`), signals (`15`, `TERM`, `SIGTERM`).

use anyhow::{Result, bail};
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;

/// Linux capabilities by number (index = number), as `capability.h` names them.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of capability `name` (`CAP_X`; case-insensitive, the prefix optional).
pub fn capability(name: &str) -> Result<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    match CAPABILITIES.iter().position(|c| *c == full) {
        Some(n) => Ok(n as u32),
        None => bail!("unknown capability {name:?}"),
    }
}

/// The resource an OCI rlimit type (`RLIMIT_NOFILE`, ...) names.
pub fn rlimit(name: &str) -> Result<Resource> {
    Ok(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => bail!("unknown rlimit type {name:?}"),
    })
}

/// A signal as `kill` takes it: a number (`15`), a name (`TERM`, `SIGTERM`, any case).
pub fn signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow::anyhow!("unknown signal number {n}"));
    }
    let upper = s.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>()
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_by_name() {
        assert_eq!(capability("CAP_CHOWN").ok(), Some(0));
        assert_eq!(capability("net_bind_service").ok(), Some(10));
        assert_eq!(capability("CAP_CHECKPOINT_RESTORE").ok(), Some(40));
        assert!(capability("CAP_NOPE").is_err());
    }

    #[test]
    fn signals_by_number_and_name() {
        for s in ["15", "TERM", "SIGTERM", "term"] {
            assert_eq!(signal(s).ok(), Some(Signal::SIGTERM), "{s}");
        }
        assert_eq!(signal("9").ok(), Some(Signal::SIGKILL));
        assert!(signal("NOPE").is_err());
        assert!(signal("999").is_err());
    }

    #[test]
    fn rlimits_by_name() {
        assert_eq!(rlimit("RLIMIT_NOFILE").ok(), Some(Resource::RLIMIT_NOFILE));
        assert!(rlimit("RLIMIT_X").is_err());
    }
}
