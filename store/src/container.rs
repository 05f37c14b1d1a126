//! Containers' storage: `containers/<id>/{upper,work,merged}`, the init layer and the
//! record `container.json`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, StoreError};

/// What the store keeps per container in `containers/<id>/container.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Id of the image it was created from.
    pub image_id: String,
    /// Hostname written into the init layer.
    pub hostname: String,
    /// Unix time of creation.
    pub created: u64,
}

/// A container's storage, as the launcher mounts it: the image's lowers, then
/// `init_layer` above them, `upper` and `work` for the writable layer, `merged` as the
/// mount point. The runtime may keep its own state under `dir/runtime/`.
#[derive(Debug, Clone)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Id of the image it was created from.
    pub image_id: String,
    /// Hostname written into the init layer.
    pub hostname: String,
    /// `containers/<id>`.
    pub dir: PathBuf,
    /// The writable upper layer.
    pub upper: PathBuf,
    /// The overlay work dir (same filesystem as `upper`).
    pub work: PathBuf,
    /// The mount point of the union.
    pub merged: PathBuf,
    /// Read-only layer holding `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`;
    /// goes directly above the image's layers.
    pub init_layer: PathBuf,
    /// Unix time of creation.
    pub created: u64,
}

impl Container {
    /// The container as laid out under `dir`, from its record.
    pub fn from_record(dir: PathBuf, rec: ContainerRecord) -> Container {
        Container {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            init_layer: dir.join("init"),
            dir,
            id: rec.id,
            name: rec.name,
            image_id: rec.image_id,
            hostname: rec.hostname,
            created: rec.created,
        }
    }
}

/// Checks a container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as docker allows.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !first_ok
        || !bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        || name.len() > 128
    {
        return Err(StoreError::InvalidReference {
            reference: name.to_string(),
            reason: "container names are [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 characters".into(),
        });
    }
    Ok(())
}

/// Checks a hostname (RFC 1123 labels) so it can go into `/etc/hosts` safely.
pub fn check_hostname(hostname: &str) -> Result<(), StoreError> {
    let ok = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidReference {
            reference: hostname.to_string(),
            reason: "not a valid hostname".into(),
        })
    }
}

/// Writes the init layer: `etc/hostname`, `etc/hosts`, `etc/resolv.conf` (the host's
/// resolv.conf, with loopback nameservers dropped since they do not work in a new
/// network namespace; a public fallback if nothing is left).
pub fn write_init_layer(dir: &Path, hostname: &str) -> Result<(), StoreError> {
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).ctx("create dir", &etc)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).ctx("chmod", dir)?;
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).ctx("chmod", &etc)?;
    let files = [
        ("hostname", format!("{hostname}\n")),
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
            ),
        ),
        ("resolv.conf", resolv_conf()),
    ];
    for (name, content) in files {
        let p = etc.join(name);
        fs::write(&p, content).ctx("write", &p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).ctx("chmod", &p)?;
    }
    Ok(())
}

fn resolv_conf() -> String {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    let mut has_ns = false;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            has_ns = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !has_ns {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hostnames() {
        assert!(check_name("web-1").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_hostname("abc.example").is_ok());
        assert!(check_hostname("bad host").is_err());
        assert!(check_hostname("x\n1.2.3.4 evil").is_err());
    }
}
