//! uid/gid maps for the rootless user namespace: the caller mapped to 0 (always
//! possible), or — with `/etc/subuid` and `/etc/subgid` entries — the caller to 0 plus
//! the subordinate range from 1 up, written by the setuid `newuidmap`/`newgidmap`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One subordinate id range from /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// One line of a `uid_map`/`gid_map`: `count` ids from `container` inside, from `host`
/// outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRange {
    /// First id inside the user namespace.
    pub container: u32,
    /// First id outside.
    pub host: u32,
    /// Number of ids.
    pub count: u32,
}

/// How ids are mapped into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMapping {
    /// Only the caller's uid/gid, as 0.
    Single {
        /// Host uid mapped to 0.
        uid: u32,
        /// Host gid mapped to 0.
        gid: u32,
    },
    /// Caller to 0, then a subordinate range to 1..=count.
    Full {
        /// Host uid mapped to 0.
        uid: u32,
        /// Host gid mapped to 0.
        gid: u32,
        /// Subordinate uids.
        subuid: SubRange,
        /// Subordinate gids.
        subgid: SubRange,
    },
    /// The ranges an OCI config lists (`linux.uidMappings`, `linux.gidMappings`):
    /// written directly as root, or by an unprivileged caller when each maps only its
    /// own id; through `newuidmap`/`newgidmap` otherwise.
    Explicit {
        /// uid ranges.
        uid: Vec<MapRange>,
        /// gid ranges.
        gid: Vec<MapRange>,
    },
}

/// Finds the first range for `user` (by name or numeric id) in a subid file's text.
pub fn parse_subid(text: &str, name: &str, id: u32) -> Option<SubRange> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who.parse::<u32>().ok() != Some(id) {
            return None;
        }
        Some(SubRange {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        })
    })
}

/// The mapping for the calling user: full range when both subid files have an entry
/// (then `newuidmap`/`newgidmap` must exist), else the single mapping.
pub fn for_caller() -> Result<IdMapping> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let sub = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| parse_subid(&t, &name, uid))
    };
    let subgid_id = gid;
    let (Some(subuid), Some(subgid)) = (sub("/etc/subuid"), {
        let t = std::fs::read_to_string("/etc/subgid").ok();
        t.and_then(|t| parse_subid(&t, &name, subgid_id).or_else(|| parse_subid(&t, &name, uid)))
    }) else {
        return Ok(IdMapping::Single { uid, gid });
    };
    for tool in ["newuidmap", "newgidmap"] {
        if which(tool).is_none() {
            bail!(
                "/etc/subuid and /etc/subgid have entries for {name:?} but {tool} is not \
                 installed (Debian package uidmap); install it or remove the entries"
            );
        }
    }
    Ok(IdMapping::Full {
        uid,
        gid,
        subuid,
        subgid,
    })
}

/// Finds an executable on the launcher's PATH.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Writes the maps of process `pid` (which has just unshared its user namespace).
/// Runs in the parent, outside that namespace.
pub fn write_maps(pid: i32, mapping: &IdMapping) -> Result<()> {
    match mapping {
        IdMapping::Single { uid, gid } => {
            let proc = Path::new("/proc").join(pid.to_string());
            write_proc(&proc.join("setgroups"), "deny")?;
            write_proc(&proc.join("uid_map"), &format!("0 {uid} 1\n"))?;
            write_proc(&proc.join("gid_map"), &format!("0 {gid} 1\n"))?;
        }
        IdMapping::Full {
            uid,
            gid,
            subuid,
            subgid,
        } => {
            run_map_tool("newuidmap", pid, *uid, subuid)?;
            run_map_tool("newgidmap", pid, *gid, subgid)?;
        }
        IdMapping::Explicit { uid, gid } => write_explicit(pid, uid, gid)?,
    }
    Ok(())
}

fn write_explicit(pid: i32, uid: &[MapRange], gid: &[MapRange]) -> Result<()> {
    let proc = Path::new("/proc").join(pid.to_string());
    let lines = |ranges: &[MapRange]| {
        ranges
            .iter()
            .map(|r| format!("{} {} {}\n", r.container, r.host, r.count))
            .collect::<String>()
    };
    let own_only =
        |ranges: &[MapRange], own: u32| matches!(ranges, [r] if r.count == 1 && r.host == own);
    if nix::unistd::geteuid().is_root() {
        write_proc(&proc.join("uid_map"), &lines(uid))?;
        write_proc(&proc.join("gid_map"), &lines(gid))?;
    } else if own_only(uid, nix::unistd::getuid().as_raw())
        && own_only(gid, nix::unistd::getgid().as_raw())
    {
        // An unprivileged process may map its own ids once setgroups is denied.
        write_proc(&proc.join("setgroups"), "deny")?;
        write_proc(&proc.join("uid_map"), &lines(uid))?;
        write_proc(&proc.join("gid_map"), &lines(gid))?;
    } else {
        run_map_tool_ranges("newuidmap", pid, uid)?;
        run_map_tool_ranges("newgidmap", pid, gid)?;
    }
    Ok(())
}

fn run_map_tool_ranges(tool: &str, pid: i32, ranges: &[MapRange]) -> Result<()> {
    let mut args = vec![pid.to_string()];
    for r in ranges {
        args.extend([
            r.container.to_string(),
            r.host.to_string(),
            r.count.to_string(),
        ]);
    }
    run_tool(tool, &args)
}

/// Runs `tool ARGS` (newuidmap, newgidmap); its stderr is the error when it fails.
fn run_tool(tool: &str, args: &[String]) -> Result<()> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn write_proc(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

fn run_map_tool(tool: &str, pid: i32, id: u32, range: &SubRange) -> Result<()> {
    let args = [
        pid.to_string(),
        "0".into(),
        id.to_string(),
        "1".into(),
        "1".into(),
        range.start.to_string(),
        range.count.to_string(),
    ];
    run_tool(tool, &args)
}

/// Whether this process runs in a user namespace other than the initial one (whose
/// `uid_map` maps every id onto itself).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| !initial_uid_map(&m))
        .unwrap_or(false)
}

/// Whether `uid_map` text is the initial namespace's: one line, 0 0 4294967295.
fn initial_uid_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    lines == [vec!["0", "0", "4294967295"]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_uid_map_is_told_from_a_namespace_s() {
        assert!(initial_uid_map("         0          0 4294967295\n"));
        assert!(!initial_uid_map("         0       1003          1\n"));
        assert!(!initial_uid_map("0 1003 1\n1 165536 65536\n"));
        assert!(!initial_uid_map(""));
    }

    #[test]
    fn subid_lookup() {
        let t = "alice:100000:65536\n1001:200000:1000\n";
        assert_eq!(
            parse_subid(t, "alice", 1000),
            Some(SubRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subid(t, "bob", 1001),
            Some(SubRange {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(parse_subid(t, "carol", 1002), None);
    }
}
