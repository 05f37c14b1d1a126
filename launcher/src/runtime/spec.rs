//! What a container run needs, parsed and validated before anything is created: sizes,
//! users, volumes, environment. Parsing lives here so bad flag values fail early (125)
//! and leave nothing on disk.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// How the union filesystem is mounted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Driver {
    /// stratafs (FUSE), or `$STRATA_FUSE_PROGRAM` (e.g. fuse-overlayfs) as a stand-in.
    Fuse,
    /// Kernel overlayfs over the same directories.
    Kernel,
}

/// Network mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Network {
    /// A new network namespace with only `lo`, up.
    None,
    /// The host's network namespace.
    Host,
}

/// Resource limits applied through cgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Memory and swap together, in bytes (v1 `memsw`; `u64::MAX` for no limit on
    /// swap); none: no swap beyond the memory limit.
    pub memory_swap: Option<u64>,
    /// CPU quota in CPUs (e.g. 0.5).
    pub cpus: Option<f64>,
    /// Relative CPU weight in cgroup v1 shares (2..=262144, 1024 the default),
    /// written as `cpu.weight` on cgroup v2 (what containerd and podman send).
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks.
    pub pids: Option<u64>,
}

impl Limits {
    /// Whether any limit was asked for.
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.cpus.is_some()
            || self.cpu_shares.is_some()
            || self.pids.is_some()
    }
}

/// A bind mount from the host into the container (`-v SRC:DST[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host path (absolute, existing).
    pub source: PathBuf,
    /// Path inside the container (absolute).
    pub target: PathBuf,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A resource limit set on the container's process before exec (OCI
/// `process.rlimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Which limit.
    pub resource: nix::sys::resource::Resource,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// The user the command runs as inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserSpec {
    /// Numeric uid inside the container.
    pub uid: u32,
    /// Numeric gid inside the container.
    pub gid: u32,
}

/// Parses a size like `512m`, `1g`, `1048576`, `64k` (binary units, as podman does).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1u64 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1u64 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1u64 << 40),
        _ => (lower, 1u64),
    };
    let n: u64 = num.parse().with_context(|| {
        format!("invalid size {s:?}: expected a number with an optional k, m, g or t suffix")
    })?;
    let bytes = n
        .checked_mul(mult)
        .with_context(|| format!("invalid size {s:?}: too large"))?;
    if bytes == 0 {
        bail!("invalid size {s:?}: must be greater than 0");
    }
    Ok(bytes)
}

/// Parses `--cpus` (a positive decimal number of CPUs).
pub fn parse_cpus(s: &str) -> Result<f64> {
    let v: f64 = s
        .trim()
        .parse()
        .with_context(|| format!("invalid --cpus {s:?}: expected a decimal number such as 0.5"))?;
    if !v.is_finite() || v <= 0.0 || v > 4096.0 {
        bail!("invalid --cpus {s:?}: must be greater than 0");
    }
    Ok(v)
}

/// Parses `--pids-limit` (a positive integer).
pub fn parse_pids(s: &str) -> Result<u64> {
    let v: u64 = s
        .trim()
        .parse()
        .with_context(|| format!("invalid --pids-limit {s:?}: expected a positive integer"))?;
    if v == 0 {
        bail!("invalid --pids-limit {s:?}: must be greater than 0");
    }
    Ok(v)
}

/// Parses `-v SRC:DST[:ro|:rw]`; the source must exist on the host.
pub fn parse_volume(s: &str) -> Result<Volume> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, readonly) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        [_, _, opt] => bail!("invalid volume {s:?}: unknown option {opt:?} (expected ro or rw)"),
        _ => bail!("invalid volume {s:?}: expected SRC:DST[:ro]"),
    };
    if !dst.starts_with('/') {
        bail!("invalid volume {s:?}: destination {dst:?} must be an absolute path");
    }
    if dst.split('/').any(|c| c == "..") {
        bail!("invalid volume {s:?}: destination {dst:?} must not contain '..'");
    }
    let source = std::fs::canonicalize(src)
        .with_context(|| format!("invalid volume {s:?}: source {src:?}"))?;
    Ok(Volume {
        source,
        target: PathBuf::from(dst),
        readonly,
    })
}

/// Parses an `--env-file`: `K=V` lines, `#` comments and blank lines skipped, a bare `K`
/// takes the launcher's value.
pub fn parse_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading env file {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(expand_env_entry(l));
    }
    Ok(out)
}

/// `K=V` stays as is; a bare `K` becomes `K=<launcher's value>` (empty if unset).
pub fn expand_env_entry(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        format!("{e}={}", std::env::var(e).unwrap_or_default())
    }
}

/// Merges environment lists: later entries override earlier ones with the same key;
/// order of first appearance is kept.
pub fn merge_env(layers: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in layers {
        for e in *list {
            let key = e.split('=').next().unwrap_or("");
            if let Some(slot) = out.iter_mut().find(|x| x.split('=').next() == Some(key)) {
                *slot = e.clone();
            } else {
                out.push(e.clone());
            }
        }
    }
    out
}

/// Default PATH when neither the image nor the user sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `-u`/image `User` (`UID[:GID]`, `NAME[:GROUP]`) against the container's
/// `/etc/passwd` and `/etc/group` under `rootfs`.
pub fn resolve_user(spec: &str, rootfs: &std::path::Path) -> Result<UserSpec> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let (uid, default_gid) = if let Ok(n) = u.parse::<u32>() {
        let gid = passwd_lookup(&passwd, |f| f[2] == u).and_then(|f| f[3].parse().ok());
        (n, gid.unwrap_or(n))
    } else {
        let f = passwd_lookup(&passwd, |f| f[0] == u)
            .with_context(|| format!("user {u:?} not found in the container's /etc/passwd"))?;
        let uid = f[2]
            .parse()
            .with_context(|| format!("bad uid for user {u:?} in /etc/passwd"))?;
        let gid = f[3]
            .parse()
            .with_context(|| format!("bad gid for user {u:?} in /etc/passwd"))?;
        (uid, gid)
    };
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                let f = passwd_lookup(&group, |f| f[0] == g).with_context(|| {
                    format!("group {g:?} not found in the container's /etc/group")
                })?;
                f[2].parse()
                    .with_context(|| format!("bad gid for group {g:?} in /etc/group"))?
            }
        },
    };
    Ok(UserSpec { uid, gid })
}

fn passwd_lookup(text: &str, pred: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && pred(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").ok(), Some(1024));
        assert_eq!(parse_size("64k").ok(), Some(64 << 10));
        assert_eq!(parse_size("16m").ok(), Some(16 << 20));
        assert_eq!(parse_size("2G").ok(), Some(2 << 30));
        assert_eq!(parse_size("1mb").ok(), Some(1 << 20));
        assert!(parse_size("12q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999t").is_err());
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5").ok(), Some(0.5));
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("x").is_err());
        assert_eq!(parse_pids("10").ok(), Some(10));
        assert!(parse_pids("0").is_err());
    }

    #[test]
    fn volumes() -> Result<()> {
        let d = tempfile::tempdir()?;
        let v = parse_volume(&format!("{}:/data:ro", d.path().display()))?;
        assert!(v.readonly);
        assert_eq!(v.target, PathBuf::from("/data"));
        assert!(parse_volume(&format!("{}:data", d.path().display())).is_err());
        assert!(parse_volume("/nonexistent-strata:/x").is_err());
        assert!(parse_volume(&format!("{}:/x:zz", d.path().display())).is_err());
        Ok(())
    }

    #[test]
    fn env_merge() {
        let a = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let b = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(merge_env(&[&a, &b]), vec!["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn users() -> Result<()> {
        let d = tempfile::tempdir()?;
        std::fs::create_dir(d.path().join("etc"))?;
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n",
        )?;
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nusers:x:100:\n")?;
        assert_eq!(
            resolve_user("nobody", d.path())?,
            UserSpec {
                uid: 65534,
                gid: 65533
            }
        );
        assert_eq!(
            resolve_user("1000", d.path())?,
            UserSpec {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            resolve_user("1000:users", d.path())?,
            UserSpec {
                uid: 1000,
                gid: 100
            }
        );
        assert!(resolve_user("ghost", d.path()).is_err());
        Ok(())
    }
}
