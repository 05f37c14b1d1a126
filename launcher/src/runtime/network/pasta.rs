//! pasta for a container's network namespace: its command line (addresses and
//! routes copied from the host, the published ports, nothing forwarded from the
//! namespace back to the host's ports, the gateway mapped to the host's loopback) and
//! starting it until it has forked into the background.

use std::net::IpAddr;
use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};

use super::ports::{PortMapping, Proto};
use super::{HelperPlan, Running};

/// The container's nameserver for a host whose resolvers are on its loopback: pasta
/// passes queries sent there to the host's first nameserver (the address podman uses).
pub const DNS_FORWARD: [u8; 4] = [169, 254, 1, 1];

/// pasta's `-t`/`-u` spec of one published port: `[ADDR/]HOST:CONTAINER`.
fn port_spec(p: &PortMapping) -> String {
    let addr = match p.host_ip {
        Some(IpAddr::V4(a)) => format!("{a}/"),
        Some(IpAddr::V6(a)) => format!("{a}/"),
        None => String::new(),
    };
    format!("{addr}{}:{}", p.host_port, p.container_port)
}

/// pasta's arguments for `ports`, the namespaces given as paths (`userns` when
/// rootless), its pid written to `pid_file`. As root pasta would change to `nobody`
/// and drop the capabilities it needs to join the namespace: `--runas 0` keeps it.
pub fn args(
    ports: &[PortMapping],
    dns_forward: Option<IpAddr>,
    netns: &str,
    userns: Option<&str>,
    as_root: bool,
    pid_file: &str,
) -> Vec<String> {
    let mut a: Vec<String> = vec!["--config-net".into(), "--quiet".into()];
    if as_root {
        a.extend(["--runas".into(), "0".into()]);
    }
    for (flag, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
        let specs: Vec<String> = ports
            .iter()
            .filter(|p| p.proto == proto)
            .map(port_spec)
            .collect();
        if specs.is_empty() {
            a.extend([flag.to_string(), "none".into()]);
        }
        for s in specs {
            a.extend([flag.to_string(), s]);
        }
    }
    // Nothing from the namespace's loopback to the host's ports: the host is reached
    // through the gateway address (pasta maps it to the host's loopback).
    a.extend(["-T".into(), "none".into(), "-U".into(), "none".into()]);
    if let Some(d) = dns_forward {
        a.extend(["--dns-forward".into(), d.to_string()]);
    }
    a.extend(["--pid".into(), pid_file.into()]);
    if let Some(u) = userns {
        a.extend(["--userns".into(), u.into()]);
    }
    a.extend(["--netns".into(), netns.into()]);
    a
}

/// Runs pasta for `netns` and waits until it is in the background with the network
/// configured; its own message on failure.
pub fn start(
    plan: &HelperPlan,
    netns: &OwnedFd,
    userns: Option<&OwnedFd>,
    rootless: bool,
) -> Result<Running> {
    let program = super::find_program("pasta")
        .context("--network pasta: pasta is not installed (package passt)")?;
    let pid_file = plan.runtime_dir.join("pasta.pid");
    let log = plan.runtime_dir.join("pasta.log");
    let _ = std::fs::remove_file(&pid_file);
    let netns_path = super::inherited_path(netns)?;
    let userns_path = userns.map(super::inherited_path).transpose()?;
    let stderr =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = std::process::Command::new(&program)
        .args(args(
            &plan.ports,
            plan.dns_forward,
            &netns_path,
            userns_path.as_deref(),
            !rootless && nix::unistd::geteuid().is_root(),
            &pid_file.to_string_lossy(),
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .status()
        .with_context(|| format!("running {}", program.display()))?;
    if !status.success() {
        let msg = super::helper_message(&log);
        let hint = if rootless && msg.contains("tun") {
            " (rootless pasta needs /dev/net/tun readable and writable by every user, mode 0666)"
        } else {
            ""
        };
        bail!("pasta: {msg} ({status}){hint}");
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("pasta wrote no pid to {}", pid_file.display()))?;
    let start = super::super::procfs::start_time(pid)
        .with_context(|| format!("pasta (pid {pid}) exited after starting"))?;
    Ok(Running { pid, start })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::network::ports::parse;

    #[test]
    fn command_line() -> Result<()> {
        let ports = [
            parse("8080:80")?,
            parse("127.0.0.1:5353:53/udp")?,
            parse("81:81")?,
        ]
        .concat();
        let dns = Some(IpAddr::from(DNS_FORWARD));
        let a = args(&ports, dns, "/proc/self/fd/7", None, true, "/r/pasta.pid").join(" ");
        assert_eq!(
            a,
            "--config-net --quiet --runas 0 -t 8080:80 -t 81:81 -u 127.0.0.1/5353:53 \
             -T none -U none --dns-forward 169.254.1.1 --pid /r/pasta.pid \
             --netns /proc/self/fd/7"
        );
        let r = args(&[], None, "/n", Some("/u"), false, "/p").join(" ");
        assert_eq!(
            r,
            "--config-net --quiet -t none -u none -T none -U none --pid /p --userns /u --netns /n"
        );
        Ok(())
    }
}
