//! Choosing the image for a platform out of a manifest list / OCI index
//! (`--platform OS/ARCH[/VARIANT]`, default: this machine's).

use oci_spec::image::{Descriptor, ImageIndex};

use crate::error::RegistryError;

/// `OS/ARCH[/VARIANT]`, in OCI's names (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... if asked for.
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Parses `--platform`.
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts
                    .get(2)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_string()),
            }),
            _ => Err(RegistryError::Local(format!(
                "--platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"
            ))),
        }
    }

    /// This machine's platform.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    fn of(d: &Descriptor) -> Option<Platform> {
        let p = d.platform().as_ref()?;
        Some(Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        })
    }
}

/// The descriptor of `index` for `want`: the same OS and architecture, and the asked
/// variant (any variant when none is asked for, the first listed winning, as docker
/// picks).
pub fn choose<'a>(index: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor, String> {
    let same_arch = |d: &&Descriptor| {
        Platform::of(d).is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
    };
    let found = match &want.variant {
        Some(v) => index
            .manifests()
            .iter()
            .filter(same_arch)
            .find(|d| Platform::of(d).and_then(|p| p.variant).as_deref() == Some(v.as_str())),
        None => index.manifests().iter().find(same_arch),
    };
    found.ok_or_else(|| {
        let have: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(Platform::of)
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect();
        format!(
            "no image for {want} in the manifest list (it has: {})",
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_os_arch_variant() {
        let d = |arch: &str, variant: Option<&str>, n: char| {
            let mut p = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                p["variant"] = v.into();
            }
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", n.to_string().repeat(64)), "size": 1, "platform": p})
        };
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [d("arm", Some("v6"), 'a'), d("arm", Some("v7"), 'b'), d("amd64", None, 'c')]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let pick = |s: &str| {
            choose(
                &index,
                &Platform::parse(s).unwrap_or_else(|e| panic!("{e}")),
            )
            .map(|d| d.digest().to_string())
        };
        assert!(pick("linux/amd64").is_ok_and(|d| d.contains("ccc")));
        assert!(pick("linux/arm/v7").is_ok_and(|d| d.contains("bbb")));
        assert!(pick("linux/arm").is_ok_and(|d| d.contains("aaa")));
        let err = pick("linux/s390x").err().unwrap_or_default();
        assert!(
            err.contains("linux/arm/v6, linux/arm/v7, linux/amd64"),
            "{err}"
        );
        assert!(Platform::parse("linux").is_err());
    }
}
