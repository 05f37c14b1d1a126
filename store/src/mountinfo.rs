//! `/proc/self/mountinfo`, read one way: the store (is a container's rootfs still
//! mounted?), the launcher's union mounts and its cgroup v1 hierarchies all ask it, and
//! each used to split the lines itself (one of them undoing the kernel's octal escapes
//! of spaces, tabs, newlines and backslashes in paths, the others not).
//!
//! Format (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE
//! SOURCE SUPER_OPTIONS`; ROOT, MOUNT_POINT and SOURCE have ` `, `\t`, `\n` and `\`
//! written as `\040`, `\011`, `\012` and `\134`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount of the mount namespace, with its paths unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,...`).
    pub mount_options: String,
    /// The filesystem type (`overlay`, `fuse.stratafs`, `cgroup`, ...).
    pub fs_type: String,
    /// The mount source (device, or what the filesystem was given).
    pub source: String,
    /// Per-superblock options (for cgroup v1: the controllers of the hierarchy).
    pub super_options: String,
}

/// Undoes the kernel's octal escapes (`\NNN`) in a mountinfo field; anything else,
/// including a backslash not followed by three octal digits, is kept as is.
pub fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(d) = b.get(i + 1..i + 4)
            && d.iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// One line of mountinfo, or `None` if it is not one.
fn parse_line(line: &str) -> Option<Mount> {
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split(' ');
    let mount_point = pre.nth(4)?;
    let mount_options = pre.next()?;
    let mut post = post.split(' ');
    let fs_type = post.next()?;
    let source = post.next().unwrap_or("");
    let super_options = post.next().unwrap_or("");
    Some(Mount {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        mount_options: mount_options.to_string(),
        fs_type: fs_type.to_string(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
        super_options: super_options.to_string(),
    })
}

/// The mounts listed in mountinfo text `text`, in order; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mounts of this process's mount namespace (empty if /proc cannot be read).
pub fn mounts() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Whether `path` (as given, not resolved) is a mount point in this mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    mounts().iter().any(|m| m.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 22 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:9 - cgroup cgroup rw,memory
36 22 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
90 22 0:50 / /var/lib/my\\040store/c\\011x/merged rw - fuse.stratafs stratafs rw,user_id=0
not a mountinfo line
";

    #[test]
    fn fields() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].mount_point, Path::new("/"));
        assert_eq!(m[0].fs_type, "ext4");
        assert_eq!(m[0].source, "/dev/sda1");
        assert_eq!(m[0].mount_options, "rw,relatime");
        assert_eq!(m[1].fs_type, "cgroup");
        assert_eq!(m[1].super_options, "rw,memory");
        assert_eq!(m[2].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[3].fs_type, "fuse.stratafs");
    }

    #[test]
    fn escaped_paths() {
        let m = parse(SAMPLE);
        assert_eq!(m[3].mount_point, Path::new("/var/lib/my store/c\tx/merged"));
        assert_eq!(unescape("a\\040b\\012c\\134d"), b"a b\nc\\d");
        // Not an escape: kept as is.
        assert_eq!(unescape("a\\04"), b"a\\04");
        assert_eq!(unescape("a\\9999"), b"a\\9999");
        assert_eq!(unescape("\\777"), b"\\777");
        assert_eq!(unescape("end\\"), b"end\\");
    }

    #[test]
    fn this_namespace_has_a_root() {
        assert!(mounts().is_empty() || is_mount_point(Path::new("/")));
    }
}
