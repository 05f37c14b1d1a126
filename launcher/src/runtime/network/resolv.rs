//! The container's `/etc/resolv.conf` and `/etc/hosts`, as `--dns`, `--dns-search`,
//! `--add-host` and the network mode ask (the gateway that reaches the host's
//! loopback named `host.containers.internal`).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, bail};

/// The name `/etc/hosts` gives the address that reaches the host (its loopback,
/// through pasta's gateway mapping or slirp4netns' 10.0.2.2), as podman names it.
pub const HOST_NAME: &str = "host.containers.internal";

/// What the two files are made of.
#[derive(Debug, Clone, Default)]
pub struct NameConfig {
    /// `--dns`: nameservers (none: the host's, without loopback ones).
    pub dns: Vec<IpAddr>,
    /// `--dns-search`: search domains (none: the host's).
    pub search: Vec<String>,
    /// `--add-host NAME:IP` entries.
    pub hosts: Vec<(String, IpAddr)>,
    /// The address of the host as the container sees it, if it has one.
    pub gateway: Option<IpAddr>,
    /// A nameserver used when the host offers none usable (slirp4netns' forwarder).
    pub fallback_dns: Option<IpAddr>,
    /// Put in place of the host's loopback nameservers (`127.0.0.53` of
    /// systemd-resolved, a local dnsmasq), which the container cannot reach: an address
    /// the network helper forwards to the host's first nameserver (pasta).
    pub loopback_dns: Option<IpAddr>,
}

/// Parses `--add-host NAME:IP` (`NAME:host-gateway` takes `gateway`).
pub fn parse_add_host(s: &str, gateway: Option<IpAddr>) -> Result<(String, IpAddr)> {
    let (name, ip) = s
        .split_once(':')
        .with_context(|| format!("invalid --add-host {s:?}: expected NAME:IP"))?;
    check_name(name).with_context(|| format!("invalid --add-host {s:?}"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let addr = if ip == "host-gateway" {
        gateway.with_context(|| {
            format!("invalid --add-host {s:?}: this network mode has no host gateway")
        })?
    } else {
        ip.parse()
            .with_context(|| format!("invalid --add-host {s:?}: {ip:?} is not an IP address"))?
    };
    Ok((name.to_string(), addr))
}

/// Parses one `--dns` address.
pub fn parse_dns(s: &str) -> Result<IpAddr> {
    s.parse()
        .with_context(|| format!("invalid --dns {s:?}: not an IP address"))
}

/// Checks a host or domain name (letters, digits, `-`, `_`, `.`), so it is one word
/// in the files.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        bail!("{name:?} is not a valid host name");
    }
    Ok(())
}

/// The `/etc/resolv.conf` for `cfg`, given the host's file.
pub fn resolv_conf(cfg: &NameConfig, host: &str) -> String {
    let mut out = String::new();
    let mut servers: Vec<String> = cfg.dns.iter().map(|a| a.to_string()).collect();
    if servers.is_empty() {
        for line in host.lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("nameserver")
                && let Some(a) = w.next()
            {
                let on_loopback = a.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                let server = match (on_loopback, cfg.loopback_dns) {
                    (false, _) => a.to_string(),
                    (true, Some(forward)) => forward.to_string(),
                    (true, None) => continue,
                };
                if !servers.contains(&server) {
                    servers.push(server);
                }
            }
        }
    }
    if servers.is_empty() {
        match cfg.fallback_dns {
            Some(a) => servers.push(a.to_string()),
            None => servers.extend(["8.8.8.8".to_string(), "8.8.4.4".to_string()]),
        }
    }
    let search: Vec<String> = if cfg.search.is_empty() {
        host.lines()
            .filter_map(|l| l.strip_prefix("search "))
            .flat_map(|l| l.split_whitespace().map(str::to_string))
            .collect()
    } else {
        cfg.search.clone()
    };
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    for l in host.lines().filter(|l| l.starts_with("options ")) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The `/etc/hosts` for `cfg` and the container's `hostname`.
pub fn hosts(cfg: &NameConfig, hostname: &str) -> String {
    let mut out = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    if let Some(gw) = cfg.gateway {
        out.push_str(&format!("{gw}\t{HOST_NAME} host.strata.internal\n"));
    }
    for (name, ip) in &cfg.hosts {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    out
}

/// The host's default IPv4 gateway (from `/proc/net/route`), which pasta gives the
/// container and maps to the host's loopback.
pub fn host_gateway() -> Option<IpAddr> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&"00000000") {
            return None;
        }
        let raw = u32::from_str_radix(f.get(2)?, 16).ok()?;
        // The file holds the address in the host's byte order (little-endian here).
        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(raw.to_le())))).filter(|a| !a.is_unspecified())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_flags_and_host() {
        let host = "nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp\noptions edns0\n";
        let plain = resolv_conf(&NameConfig::default(), host);
        assert_eq!(plain, "search corp\nnameserver 10.1.1.1\noptions edns0\n");
        let cfg = NameConfig {
            dns: vec!["192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))],
            search: vec!["example.test".into()],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&cfg, host),
            "search example.test\nnameserver 192.0.2.1\noptions edns0\n"
        );
        let slirp = NameConfig {
            fallback_dns: Some(IpAddr::from([10, 0, 2, 3])),
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&slirp, "nameserver 127.0.0.53\n"),
            "nameserver 10.0.2.3\n"
        );
        let pasta = NameConfig {
            loopback_dns: Some(IpAddr::from([169, 254, 1, 1])),
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(
                &pasta,
                "nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.1.1.1\n"
            ),
            "nameserver 169.254.1.1\nnameserver 10.1.1.1\n"
        );
    }

    #[test]
    fn hosts_with_gateway_and_added() -> Result<()> {
        let gw = Some(IpAddr::from([10, 0, 2, 2]));
        let cfg = NameConfig {
            hosts: vec![
                parse_add_host("db.test:192.0.2.9", gw)?,
                parse_add_host("me:host-gateway", gw)?,
            ],
            gateway: gw,
            ..Default::default()
        };
        let h = hosts(&cfg, "box");
        assert!(h.contains("127.0.1.1\tbox\n"));
        assert!(h.contains("10.0.2.2\thost.containers.internal"));
        assert!(h.contains("192.0.2.9\tdb.test\n"));
        assert!(h.contains("10.0.2.2\tme\n"));
        Ok(())
    }

    #[test]
    fn bad_names_and_addresses() {
        assert!(parse_add_host("x", None).is_err());
        assert!(parse_add_host("a b:1.2.3.4", None).is_err());
        assert!(parse_add_host("a:1.2.3", None).is_err());
        assert!(parse_add_host("a:host-gateway", None).is_err());
        assert!(parse_add_host("x\n1.2.3.4 evil:1.2.3.4", None).is_err());
        assert!(parse_dns("nope").is_err());
        assert!(check_name("ok-name.test").is_ok());
    }
}
