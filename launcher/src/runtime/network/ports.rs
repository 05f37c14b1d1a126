//! Published ports: `-p [IP:]HOST:CONTAINER[/tcp|/udp]` parsed, `-P`'s image
//! `ExposedPorts` given free host ports, and the list kept with the container
//! (`runtime/ports.json`) for `strata port`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: the host's `host_ip:host_port` forwarded to the container's
/// `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address bound (`None`: every address).
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub proto: Proto,
}

impl std::fmt::Display for PortMapping {
    /// `80/tcp -> 0.0.0.0:8080`, as `docker port` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = match self.host_ip {
            Some(IpAddr::V6(a)) => format!("[{a}]"),
            Some(IpAddr::V4(a)) => a.to_string(),
            None => "0.0.0.0".to_string(),
        };
        write!(
            f,
            "{}/{} -> {ip}:{}",
            self.container_port,
            self.proto.as_str(),
            self.host_port
        )
    }
}

fn port(s: &str, what: &str, whole: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("invalid -p {whole:?}: {what} port {s:?} is not a number in 1-65535"),
    }
}

/// Parses `-p [IP:]HOST:CONTAINER[/tcp|/udp]` (an IPv6 address in brackets).
pub fn parse(s: &str) -> Result<PortMapping> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some((_, other)) => {
            bail!("invalid -p {s:?}: unknown protocol {other:?} (expected tcp or udp)")
        }
        None => (s, Proto::Tcp),
    };
    let (rest, container) = spec
        .rsplit_once(':')
        .with_context(|| format!("invalid -p {s:?}: expected [IP:]HOST:CONTAINER[/tcp|/udp]"))?;
    let container_port = port(container, "container", s)?;
    let (host_ip, host) = match rest.rsplit_once(':') {
        None => (None, rest),
        Some((ip, host)) => {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let addr: IpAddr = ip
                .parse()
                .with_context(|| format!("invalid -p {s:?}: {ip:?} is not an IP address"))?;
            (Some(addr), host)
        }
    };
    if host.is_empty() {
        bail!("invalid -p {s:?}: the host port is missing (expected [IP:]HOST:CONTAINER)");
    }
    let host_port = port(host, "host", s)?;
    Ok(PortMapping {
        host_ip,
        host_port,
        container_port,
        proto,
    })
}

/// The ports of an image config's `ExposedPorts` (`"80/tcp": {}`), each given a free
/// host port (what `-P` publishes).
pub fn exposed(raw_config: &serde_json::Value) -> Result<Vec<PortMapping>> {
    let Some(ports) = raw_config
        .pointer("/config/ExposedPorts")
        .and_then(|v| v.as_object())
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for key in ports.keys() {
        let (num, proto) = match key.split_once('/') {
            Some((n, "udp")) => (n, Proto::Udp),
            Some((n, "tcp")) | Some((n, "")) => (n, Proto::Tcp),
            Some((_, p)) => bail!("image ExposedPorts {key:?}: unknown protocol {p:?}"),
            None => (key.as_str(), Proto::Tcp),
        };
        let container_port = port(num, "exposed", key)?;
        out.push(PortMapping {
            host_ip: None,
            host_port: free_port(proto)?,
            container_port,
            proto,
        });
    }
    Ok(out)
}

/// A host port nothing listens on now (the kernel's pick for port 0).
fn free_port(proto: Proto) -> Result<u16> {
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let port = match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => std::net::UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    }
    .context("finding a free host port for -P")?
    .port();
    Ok(port)
}

/// Refuses the same host port twice for one protocol and address.
pub fn check_unique(ports: &[PortMapping]) -> Result<()> {
    for (i, a) in ports.iter().enumerate() {
        if let Some(b) = ports[..i]
            .iter()
            .find(|b| b.host_port == a.host_port && b.proto == a.proto && b.host_ip == a.host_ip)
        {
            bail!(
                "host port {}/{} is published twice ({} and {})",
                a.host_port,
                a.proto.as_str(),
                b,
                a
            );
        }
    }
    Ok(())
}

fn path(dir: &Path) -> PathBuf {
    dir.join("runtime").join("ports.json")
}

/// Keeps `ports` with the container at `dir` (for `strata port`).
pub fn save(dir: &Path, ports: &[PortMapping]) -> Result<()> {
    let p = path(dir);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(ports).context("encoding the port list")?;
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// The ports published by the container at `dir` (none if it kept no list).
pub fn load(dir: &Path) -> Result<Vec<PortMapping>> {
    let p = path(dir);
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() -> Result<()> {
        assert_eq!(
            parse("8080:80")?,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let u = parse("127.0.0.1:5353:53/udp")?;
        assert_eq!(u.host_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(
            (u.host_port, u.container_port, u.proto),
            (5353, 53, Proto::Udp)
        );
        let v6 = parse("[::1]:8080:80/tcp")?;
        assert_eq!(v6.host_ip, Some("::1".parse()?));
        assert_eq!(v6.to_string(), "80/tcp -> [::1]:8080");
        Ok(())
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "80",
            "x:80",
            "80:x",
            "0:80",
            "70000:80",
            "8080:80/sctp",
            "1.2.3:80:80",
            ":80",
            "8080:80/",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn exposed_ports_get_host_ports() -> Result<()> {
        let cfg = serde_json::json!({"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}});
        let mut p = exposed(&cfg)?;
        p.sort_by_key(|m| m.container_port);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].container_port, p[0].proto), (53, Proto::Udp));
        assert!(p[1].host_port > 0);
        assert!(exposed(&serde_json::json!({}))?.is_empty());
        Ok(())
    }

    #[test]
    fn duplicates_refused() -> Result<()> {
        assert!(check_unique(&[parse("8080:80")?, parse("8080:81")?]).is_err());
        assert!(check_unique(&[parse("8080:80")?, parse("8080:80/udp")?]).is_ok());
        Ok(())
    }
}
