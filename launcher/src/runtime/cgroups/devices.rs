//! Device access rules (OCI `linux.resources.devices`) for cgroup v1's `devices`
//! controller: each rule one line of `devices.allow` or `devices.deny`, in order,
//! then the nodes every container gets (those `devices.rs` makes, the pty ones).

use std::path::Path;

use anyhow::{Result, bail};

use super::write_file;

/// One device rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (`devices.allow`) or deny (`devices.deny`).
    pub allow: bool,
    /// `a` (all), `c` (char) or `b` (block).
    pub kind: char,
    /// Major number, `None` for any.
    pub major: Option<i64>,
    /// Minor number, `None` for any.
    pub minor: Option<i64>,
    /// Some of `r`, `w`, `m`.
    pub access: String,
}

impl DeviceRule {
    /// Checks the kind and access letters.
    pub fn new(
        allow: bool,
        kind: char,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> Result<DeviceRule> {
        if !matches!(kind, 'a' | 'c' | 'b') {
            bail!("device type {kind:?}: expected a, c or b");
        }
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            bail!("device access {access:?}: expected letters of rwm");
        }
        Ok(DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.to_string(),
        })
    }

    /// The line the kernel takes: `c 1:3 rwm`, `a *:* rwm`.
    pub fn line(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// What every container may use whatever its rules: the standard nodes (null, zero,
/// full, random, urandom, tty), the console, ptmx and its devpts slaves.
pub fn standard_allowed() -> Vec<DeviceRule> {
    let mut out: Vec<DeviceRule> = crate::runtime::devices::DEVICES
        .iter()
        .map(|(_, major, minor)| DeviceRule {
            allow: true,
            kind: 'c',
            major: Some(*major as i64),
            minor: Some(*minor as i64),
            access: "rwm".into(),
        })
        .collect();
    for (major, minor) in [(5, Some(1)), (5, Some(2)), (136, None)] {
        out.push(DeviceRule {
            allow: true,
            kind: 'c',
            major: Some(major),
            minor,
            access: "rwm".into(),
        });
    }
    out
}

/// Writes `rules`, then [`standard_allowed`], into the v1 devices cgroup `dir`.
pub fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    for r in rules.iter().chain(standard_allowed().iter()) {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write_file(&dir.join(file), &r.line())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() -> Result<()> {
        assert_eq!(
            DeviceRule::new(false, 'a', None, None, "rwm")?.line(),
            "a *:* rwm"
        );
        assert_eq!(
            DeviceRule::new(true, 'c', Some(1), Some(3), "rw")?.line(),
            "c 1:3 rw"
        );
        assert!(DeviceRule::new(true, 'x', None, None, "r").is_err());
        assert!(DeviceRule::new(true, 'c', None, None, "rx").is_err());
        assert!(standard_allowed().iter().any(|r| r.line() == "c 136:* rwm"));
        Ok(())
    }
}
