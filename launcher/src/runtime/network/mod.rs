//! A container's network beyond `none` and `host`: the `--network` modes, and the
//! user-mode network helper (pasta or slirp4netns) the launcher starts for the
//! container's network namespace once the setup process has made it, and stops when
//! the container ends. One job per module: `ports` (`-p`/`-P` and the kept list),
//! `resolv` (`/etc/resolv.conf` and `/etc/hosts`), `pasta`, `slirp`.

pub mod pasta;
pub mod ports;
pub mod resolv;
pub mod slirp;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use ports::PortMapping;

/// `--network`: what the container's network is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// A network namespace of its own with only `lo`.
    None,
    /// The host's network namespace.
    Host,
    /// Its own namespace connected by pasta (the default when pasta is installed).
    Pasta,
    /// Its own namespace connected by slirp4netns.
    Slirp4netns,
    /// Joins the network namespace at this path (`ns:PATH`).
    Ns(PathBuf),
}

impl NetworkMode {
    /// Parses `none`, `host`, `pasta`, `slirp4netns` or `ns:PATH` (any case for the
    /// words, as older saved flags spell them `None`/`Host`).
    pub fn parse(s: &str) -> Result<NetworkMode> {
        if let Some(path) = s.strip_prefix("ns:") {
            if !path.starts_with('/') {
                bail!("invalid --network {s:?}: ns:PATH needs an absolute path");
            }
            return Ok(NetworkMode::Ns(PathBuf::from(path)));
        }
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "pasta" => NetworkMode::Pasta,
            "slirp4netns" => NetworkMode::Slirp4netns,
            _ => {
                bail!("invalid --network {s:?}: expected none, host, pasta, slirp4netns or ns:PATH")
            }
        })
    }

    /// The default: pasta when it is installed, else `none` (saying why on stderr).
    pub fn default_mode() -> NetworkMode {
        if find_program("pasta").is_some() {
            NetworkMode::Pasta
        } else {
            eprintln!(
                "strata: pasta is not installed (package passt); the container has no network (--network none)"
            );
            NetworkMode::None
        }
    }

    /// The namespace side of the mode: whether the container gets a network namespace
    /// of its own (`None`) or not (`Host`, also for a joined one).
    pub fn namespace(&self) -> super::spec::Network {
        match self {
            NetworkMode::None | NetworkMode::Pasta | NetworkMode::Slirp4netns => {
                super::spec::Network::None
            }
            NetworkMode::Host | NetworkMode::Ns(_) => super::spec::Network::Host,
        }
    }

    /// The helper this mode starts, if any.
    pub fn helper(&self) -> Option<HelperKind> {
        match self {
            NetworkMode::Pasta => Some(HelperKind::Pasta),
            NetworkMode::Slirp4netns => Some(HelperKind::Slirp4netns),
            _ => None,
        }
    }

    /// The address that reaches the host's loopback from the container, if any.
    pub fn gateway(&self) -> Option<std::net::IpAddr> {
        match self {
            NetworkMode::Pasta => resolv::host_gateway(),
            NetworkMode::Slirp4netns => Some(slirp::HOST_LOOPBACK.into()),
            _ => None,
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Pasta => f.write_str("pasta"),
            NetworkMode::Slirp4netns => f.write_str("slirp4netns"),
            NetworkMode::Ns(p) => write!(f, "ns:{}", p.display()),
        }
    }
}

impl serde::Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NetworkMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NetworkMode::parse(&s).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// Which user-mode network helper connects the container's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperKind {
    /// pasta (package passt).
    Pasta,
    /// slirp4netns.
    Slirp4netns,
}

/// What the launcher starts for the container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperPlan {
    /// pasta or slirp4netns.
    pub kind: HelperKind,
    /// The published ports.
    pub ports: Vec<PortMapping>,
    /// Where the helper's pid and log go (the container's `runtime/` dir).
    pub runtime_dir: PathBuf,
    /// An address whose DNS queries the helper passes to the host's first nameserver
    /// (pasta's `--dns-forward`), for hosts whose resolvers listen on their loopback.
    pub dns_forward: Option<std::net::IpAddr>,
}

/// A running helper: its pid and start time (so a reused pid is never signalled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The helper's pid.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat`).
    pub start: u64,
}

impl Running {
    /// Stops the helper (SIGKILL: neither helper keeps state worth a clean exit, and
    /// pasta in the background does not exit on SIGTERM), reaping it when it is the
    /// launcher's child; nothing if it is gone.
    pub fn stop(&self) {
        use nix::sys::signal::{Signal, kill};
        use nix::sys::wait::{WaitPidFlag, waitpid};
        if !super::procfs::is_same_process(self.pid, self.start) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = kill(pid, Signal::SIGKILL);
        for _ in 0..200 {
            let gone = !super::procfs::is_same_process(self.pid, self.start);
            // slirp4netns, or pasta once forked into the background under a subreaper
            // launcher, is the launcher's to reap.
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            if gone {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Starts `plan`'s helper for the network namespace of `setup_pid` (and, rootless,
/// its user namespace); returns once the namespace is configured and the ports bound.
pub fn start(plan: &HelperPlan, setup_pid: i32, rootless: bool) -> Result<Running> {
    let netns = open_ns(setup_pid, "net")?;
    let userns = if rootless {
        Some(open_ns(setup_pid, "user")?)
    } else {
        None
    };
    std::fs::create_dir_all(&plan.runtime_dir)
        .with_context(|| format!("creating {}", plan.runtime_dir.display()))?;
    match plan.kind {
        HelperKind::Pasta => pasta::start(plan, &netns, userns.as_ref(), rootless),
        HelperKind::Slirp4netns => slirp::start(plan, &netns, userns.as_ref()),
    }
}

fn open_ns(pid: i32, kind: &str) -> Result<OwnedFd> {
    let p = format!("/proc/{pid}/ns/{kind}");
    let f = std::fs::File::open(&p).with_context(|| format!("opening {p}"))?;
    Ok(OwnedFd::from(f))
}

/// `/proc/self/fd/N` for `fd`, made inheritable: the helper opens the namespace
/// through its own descriptor (pasta running as root drops the capabilities it would
/// need to open another process's `/proc/PID/ns/*`).
fn inherited_path(fd: &OwnedFd) -> Result<String> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).context("passing a namespace to the helper")?;
    Ok(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The helper's log (its stderr), its own message on failure: lines other than its
/// syslog complaints, joined in one line.
fn helper_message(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Failed to send") && !l.contains("syslog"))
        .collect();
    if lines.is_empty() {
        "no message".to_string()
    } else {
        lines.join("; ")
    }
}

/// The first `name` on `$PATH` (or the standard directories).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() -> Result<()> {
        for s in ["none", "host", "pasta", "slirp4netns", "ns:/run/netns/x"] {
            assert_eq!(NetworkMode::parse(s)?.to_string(), s);
        }
        assert_eq!(NetworkMode::parse("None")?, NetworkMode::None);
        assert!(NetworkMode::parse("bridge").is_err());
        assert!(NetworkMode::parse("ns:relative").is_err());
        let json = serde_json::to_string(&NetworkMode::Pasta)?;
        assert_eq!(json, "\"pasta\"");
        let back: NetworkMode = serde_json::from_str("\"Host\"")?;
        assert_eq!(back, NetworkMode::Host);
        Ok(())
    }
}
