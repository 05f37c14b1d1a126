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

/// A port or a range `A-B` (A <= B), as its first port and its length.
fn ports(s: &str, what: &str, whole: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        None => Ok((port(s, what, whole)?, 1)),
        Some((a, b)) => {
            let (a, b) = (port(a, what, whole)?, port(b, what, whole)?);
            if b < a {
                bail!("invalid -p {whole:?}: the {what} port range {s:?} ends before it starts");
            }
            Ok((a, b - a + 1))
        }
    }
}

/// Parses `-p [[IP:][HOST]:]CONTAINER[/tcp|/udp]` as podman takes it: an IPv6 address
/// in brackets; HOST and CONTAINER ports or ranges (`8000-8009`) of the same length;
/// HOST left out (`80`, `IP::80`), a free host port for each container port. One
/// mapping per port.
pub fn parse(s: &str) -> Result<Vec<PortMapping>> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some((_, other)) => {
            bail!("invalid -p {s:?}: unknown protocol {other:?} (expected tcp or udp)")
        }
        None => (s, Proto::Tcp),
    };
    let (rest, container) = match spec.rsplit_once(':') {
        Some((rest, container)) => (Some(rest), container),
        None => (None, spec),
    };
    let (container_port, count) = ports(container, "container", s)?;
    let (host_ip, host) = match rest.map(|r| r.rsplit_once(':').ok_or(r)) {
        None => (None, ""),
        Some(Err(host)) => {
            if host.is_empty() {
                bail!(
                    "invalid -p {s:?}: the host port is missing (expected [[IP:][HOST]:]CONTAINER)"
                );
            }
            (None, host)
        }
        Some(Ok((ip, host))) => {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let addr: IpAddr = ip
                .parse()
                .with_context(|| format!("invalid -p {s:?}: {ip:?} is not an IP address"))?;
            (Some(addr), host)
        }
    };
    let host_ports = if host.is_empty() {
        (0..count)
            .map(|_| free_port(proto))
            .collect::<Result<Vec<_>>>()?
    } else {
        let (first, n) = ports(host, "host", s)?;
        if n != count {
            bail!("invalid -p {s:?}: the host range has {n} ports and the container range {count}");
        }
        (0..n).map(|i| first + i).collect()
    };
    Ok(host_ports
        .into_iter()
        .zip(0..count)
        .map(|(host_port, i)| PortMapping {
            host_ip,
            host_port,
            container_port: container_port + i,
            proto,
        })
        .collect())
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
    .context("finding a free host port")?
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

    fn one(s: &str) -> Result<PortMapping> {
        let mut v = parse(s)?;
        assert_eq!(v.len(), 1, "{s}");
        Ok(v.remove(0))
    }

    #[test]
    fn parses_the_forms() -> Result<()> {
        assert_eq!(
            one("8080:80")?,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let u = one("127.0.0.1:5353:53/udp")?;
        assert_eq!(u.host_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(
            (u.host_port, u.container_port, u.proto),
            (5353, 53, Proto::Udp)
        );
        let v6 = one("[::1]:8080:80/tcp")?;
        assert_eq!(v6.host_ip, Some("::1".parse()?));
        assert_eq!(v6.to_string(), "80/tcp -> [::1]:8080");
        Ok(())
    }

    #[test]
    fn ranges_map_port_by_port() -> Result<()> {
        let r = parse("127.0.0.1:8000-8002:9000-9002/udp")?;
        let pairs: Vec<_> = r.iter().map(|m| (m.host_port, m.container_port)).collect();
        assert_eq!(pairs, [(8000, 9000), (8001, 9001), (8002, 9002)]);
        assert!(
            r.iter()
                .all(|m| m.proto == Proto::Udp && m.host_ip.is_some())
        );
        Ok(())
    }

    #[test]
    fn a_missing_host_port_is_a_free_one() -> Result<()> {
        for form in ["80", "127.0.0.1::80", "[::1]::80"] {
            let m = one(form)?;
            assert_eq!(m.container_port, 80, "{form}");
            assert!(m.host_port > 0, "{form}");
        }
        let r = parse("80-82")?;
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].container_port, 82);
        Ok(())
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "x:80",
            "80:x",
            "0:80",
            "70000:80",
            "8080:80/sctp",
            "1.2.3:80:80",
            ":80",
            "8080:80/",
            "8000-8001:80",
            "80:81-80",
            "8000-8002:9000-9001",
            "-80:80",
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
        assert!(check_unique(&[one("8080:80")?, one("8080:81")?]).is_err());
        assert!(check_unique(&[one("8080:80")?, one("8080:80/udp")?]).is_ok());
        assert!(check_unique(&parse("8000-8001:80-81")?).is_ok());
        Ok(())
    }
}
