//! The command line and `-o` options, as fuse-overlayfs and mount.fuse3 pass them.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use crate::daemon::mount_flag::{self, MountFlag};

/// One uid/gid mapping range, `STORED:SHOWN:COUNT` as fuse-overlayfs reads
/// `uidmapping=`: the id stored in the layers, then the id shown through the mount
/// (podman passes its container:host maps so, and may prefix a colon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// First id as the layers store it.
    pub stored: u32,
    /// First id as the mount shows it.
    pub shown: u32,
    /// Number of ids.
    pub count: u32,
}

/// Everything the command line says.
#[derive(Debug, Clone, Default)]
pub struct MountConfig {
    /// Lower layers, top-most first.
    pub lowers: Vec<PathBuf>,
    /// The writable layer.
    pub upper: Option<PathBuf>,
    /// The work dir (same filesystem as upper).
    pub work: Option<PathBuf>,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The mount's source name (fsname).
    pub source: Option<String>,
    /// Stay in the foreground.
    pub foreground: bool,
    /// Log every request.
    pub debug: bool,
    /// `uidmapping=` ranges.
    pub uid_mapping: Vec<IdMapping>,
    /// `gidmapping=` ranges.
    pub gid_mapping: Vec<IdMapping>,
    /// Show every file as owned by root.
    pub squash_to_root: bool,
    /// Show every file as owned by this uid.
    pub squash_to_uid: Option<u32>,
    /// Show every file as owned by this gid.
    pub squash_to_gid: Option<u32>,
    /// Report nlink 1 for directories.
    pub static_nlink: bool,
    /// No POSIX ACL support.
    pub noacl: bool,
    /// fsync reaches the disk (default on).
    pub fsync: bool,
    /// Worker threads.
    pub threads: usize,
    /// Kernel cache timeout for entries and attributes.
    pub timeout: Duration,
    /// Let every user access the mount.
    pub allow_other: bool,
    /// Let the kernel check permissions (always on; accepted for compatibility).
    pub default_permissions: bool,
    /// Read-only mount.
    pub read_only: bool,
    /// Write overlay xattrs as `user.overlay.*`.
    pub user_xattr: bool,
    /// Mount options passed through to the kernel (nodev, nosuid, noexec, ...).
    pub kernel_flags: Vec<MountFlag>,
    /// How file I/O reaches the real files (`io=`).
    pub io: IoStrategy,
    /// `noio_uring`: never take requests through FUSE-over-io_uring queues, even
    /// where the kernel offers them (`io_uring`, the default, takes them).
    pub no_io_uring: bool,
    /// `stats=PATH`: where the requests served per opcode are written, at unmount and
    /// on SIGUSR1 (an absolute path).
    pub stats: Option<PathBuf>,
    /// `noxattrs=1`: every extended attribute request through the mount fails ENOTSUP.
    pub no_xattrs: bool,
    /// Env `FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT`: whiteouts are written as `.wh.NAME`
    /// files instead of character devices 0/0.
    pub whiteout_files: bool,
    /// `xattr_permissions=0|1|2`: owners and modes of the upper kept in
    /// `security.fuseoverlayfs.override_stat` (1) or `user.containers.override_stat` (2).
    pub xattr_permissions: u8,
    /// One line each for options accepted without effect, said once on stderr.
    pub notices: Vec<String>,
}

/// How file I/O reaches the real files: the trade between round trips per `open()`
/// and the daemon staying out of reads and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IoStrategy {
    /// `io=inode` (default): the kernel opens files without asking the daemon
    /// (FUSE_NO_OPEN_SUPPORT); reads and writes name the inode and the daemon keeps
    /// the real files open. Best for many opens of small files.
    #[default]
    Inode,
    /// `io=handles`: an OPEN and a RELEASE request per `open()`, one real file each.
    Handles,
    /// `io=passthrough`: as `handles`, and upper files opened to write or of 64 KiB
    /// and more are passed through to the kernel (root, kernel >= 6.9). Best for
    /// large writes.
    Passthrough,
    /// `io=passthrough-all`: as `passthrough`, and lower files of 64 KiB and more
    /// opened to read are passed through too (reads at the lower file system's speed,
    /// its page cache shared). The trade: a reader opened before the file's copy-up
    /// keeps reading the lower file's data, as a read-only `MAP_SHARED` mapping does
    /// on kernel overlayfs (there a `read()` follows the copy-up).
    PassthroughAll,
}

impl IoStrategy {
    /// Whether files may be passed through to the kernel.
    pub fn passes_through(self) -> bool {
        matches!(self, IoStrategy::Passthrough | IoStrategy::PassthroughAll)
    }
}

/// A command-line problem: the message names the option, the path and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Mount with this configuration.
    Mount(Box<MountConfig>),
    /// Print help.
    Help,
    /// Print the version.
    Version,
}

/// The usage text.
pub const USAGE: &str = "usage: stratafs [-f] [-d|--debug] [-o OPT[,OPT...]] [SOURCE] MOUNTPOINT
options: lowerdir=L1:L2,upperdir=U,workdir=W,uidmapping=STORED:SHOWN:N[:...],
         gidmapping=...,squash_to_root,squash_to_uid=N,squash_to_gid=N,static_nlink,
         noacl,noxattrs=0|1,fsync=0|1,volatile,threaded=0|1,timeout=SECONDS,debug,
         allow_other,default_permissions,ro,rw,noatime,relatime,nodiratime,...
         accepted for fuse-overlayfs, said on stderr when without effect: xino=,
         ino32_t,redirect_dir=,writeback=,max_write=,fast_ino=,xattr_permissions=,
         splice_read,splice_write,splice_move,kernel_cache; refused: plugins=
         io=inode|handles|passthrough|passthrough-all (stratafs: how file I/O
         reaches the real files), io_uring|noio_uring (stratafs: requests through
         per-CPU io_uring queues where the kernel offers them; default io_uring),
         stats=PATH (stratafs: requests served per opcode, written to PATH at
         unmount and on SIGUSR1)";

/// A path as a `lowerdir=`/`upperdir=`/`workdir=` value: `\`, `,` and `:` escaped with
/// `\`, as both stratafs ([`split_escaped`]) and kernel overlayfs read them back.
pub fn escape_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &c in path {
        if matches!(c, b'\\' | b',' | b':') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

/// Splits `s` at unescaped `sep`, turning `\X` into `X`.
pub fn split_escaped(s: &[u8], sep: u8) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    let mut it = s.iter();
    while let Some(&c) = it.next() {
        if c == b'\\' {
            if let Some(&n) = it.next() {
                if let Some(last) = out.last_mut() {
                    last.push(n);
                }
            }
        } else if c == sep {
            out.push(Vec::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// Splits an `-o` string at unescaped commas, keeping escapes for the value parser.
fn split_options(s: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    let mut esc = false;
    for &c in s {
        if esc {
            if let Some(last) = out.last_mut() {
                last.push(b'\\');
                last.push(c);
            }
            esc = false;
        } else if c == b'\\' {
            esc = true;
        } else if c == b',' {
            out.push(Vec::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

fn unescape(v: &[u8]) -> PathBuf {
    let parts = split_escaped(v, 0);
    PathBuf::from(OsString::from_vec(parts.concat()))
}

/// `uidmapping=`/`gidmapping=`: `STORED:SHOWN:COUNT` triples as fuse-overlayfs reads
/// them; empty fields are skipped, so podman's leading colon (`:0:100000:65536`) is
/// accepted as fuse-overlayfs accepts it.
fn parse_mapping(opt: &str, v: &str) -> Result<Vec<IdMapping>, UsageError> {
    let nums: Result<Vec<u32>, _> = v
        .split(':')
        .filter(|f| !f.is_empty())
        .map(str::parse::<u32>)
        .collect();
    let nums = nums.map_err(|_| {
        UsageError(format!(
            "{opt}={v}: expected STORED:SHOWN:COUNT[:...] numbers (id in the layers, id shown, how many)"
        ))
    })?;
    if nums.is_empty() || nums.len() % 3 != 0 {
        return Err(UsageError(format!(
            "{opt}={v}: expected STORED:SHOWN:COUNT triples (id in the layers, id shown, how many)"
        )));
    }
    let mut out = Vec::with_capacity(nums.len() / 3);
    for c in nums.chunks(3) {
        let (stored, shown, count) = (c[0], c[1], c[2]);
        let last = |first: u32| count.checked_sub(1).and_then(|n| first.checked_add(n));
        if count == 0 || last(stored).is_none() || last(shown).is_none() {
            return Err(UsageError(format!(
                "{opt}={v}: range {stored}:{shown}:{count} is empty or runs past {}",
                u32::MAX
            )));
        }
        out.push(IdMapping {
            stored,
            shown,
            count,
        });
    }
    Ok(out)
}

/// A `0|1` switch.
fn parse_bool(opt: &str, v: &str) -> Result<bool, UsageError> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(UsageError(format!("{opt}={v}: expected 0 or 1"))),
    }
}

/// The environment variables fuse-overlayfs reads that change what stratafs does:
/// `FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT` (whiteouts as `.wh.NAME` files) and
/// `FUSE_OVERLAYFS_NO_PASSTHROUGH` (no FUSE passthrough: `io=passthrough` and
/// `io=passthrough-all` run as `io=handles`). `var` looks a name up; being set, to
/// any value, counts, as in fuse-overlayfs.
pub fn apply_env(cfg: &mut MountConfig, var: impl Fn(&str) -> Option<OsString>) {
    if var("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT").is_some() {
        cfg.whiteout_files = true;
    }
    if var("FUSE_OVERLAYFS_NO_PASSTHROUGH").is_some() && cfg.io.passes_through() {
        cfg.notices.push(
            "FUSE_OVERLAYFS_NO_PASSTHROUGH is set: no FUSE passthrough, io=passthrough runs as io=handles"
                .into(),
        );
        cfg.io = IoStrategy::Handles;
    }
}

/// Records that option `opt` (as given) is accepted without effect, and why.
fn notice(cfg: &mut MountConfig, opt: &str, why: &str) {
    let line = format!("{opt}: accepted, no effect: {why}");
    let key = opt.split('=').next().unwrap_or(opt);
    let same = |l: &String| l.split([':', '=']).next() == Some(key);
    if !cfg.notices.iter().any(same) {
        cfg.notices.push(line);
    }
}

fn parse_num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, UsageError> {
    v.parse()
        .map_err(|_| UsageError(format!("{opt}={v}: not a valid number")))
}

/// Parses argv (including argv[0]).
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    let mut cfg = MountConfig {
        fsync: true,
        threads: 0,
        timeout: Duration::from_secs(86400),
        ..Default::default()
    };
    let mut positional: Vec<OsString> = Vec::new();
    let mut opts: Vec<Vec<u8>> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_bytes();
        match a {
            b"-f" => cfg.foreground = true,
            b"-d" | b"--debug" => {
                cfg.debug = true;
                cfg.foreground = true;
            }
            b"-s" => {}
            b"-h" | b"--help" => return Ok(Command::Help),
            b"-V" | b"--version" => return Ok(Command::Version),
            b"-o" => {
                i += 1;
                let v = args
                    .get(i)
                    .ok_or_else(|| UsageError("-o: missing option string".into()))?;
                opts.extend(split_options(v.as_bytes()));
            }
            _ if a.starts_with(b"-o") => opts.extend(split_options(&a[2..])),
            _ if a.starts_with(b"-") && a.len() > 1 => {
                return Err(UsageError(format!(
                    "{}: unknown flag",
                    String::from_utf8_lossy(a)
                )));
            }
            _ => positional.push(args[i].clone()),
        }
        i += 1;
    }
    for o in &opts {
        let s = String::from_utf8_lossy(o).into_owned();
        let (key, val) = match s.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (s.clone(), None),
        };
        let raw_val = o.iter().position(|b| *b == b'=').map(|p| &o[p + 1..]);
        let need = |v: &Option<String>| {
            v.clone()
                .ok_or_else(|| UsageError(format!("{key}: needs a value ({key}=...)")))
        };
        if let (Some(flag), None) = (MountFlag::parse(&key), &val) {
            // A generic mount option: passed to the kernel, a later one overriding its
            // opposite, as mount(8) does.
            mount_flag::push(&mut cfg.kernel_flags, flag);
            continue;
        }
        match key.as_str() {
            "lowerdir" => {
                let rv = raw_val.ok_or_else(|| UsageError("lowerdir: needs a value".into()))?;
                cfg.lowers = split_escaped(rv, b':')
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| PathBuf::from(OsString::from_vec(p)))
                    .collect();
            }
            "upperdir" => {
                cfg.upper =
                    Some(unescape(raw_val.ok_or_else(|| {
                        UsageError("upperdir: needs a value".into())
                    })?))
            }
            "workdir" => {
                cfg.work =
                    Some(unescape(raw_val.ok_or_else(|| {
                        UsageError("workdir: needs a value".into())
                    })?))
            }
            "stats" => {
                let rv = raw_val.ok_or_else(|| UsageError("stats: needs a value".into()))?;
                let p = unescape(rv);
                cfg.stats = Some(
                    std::path::absolute(&p)
                        .map_err(|e| UsageError(format!("stats={}: {e}", p.display())))?,
                );
            }
            "uidmapping" => cfg.uid_mapping = parse_mapping(&key, &need(&val)?)?,
            "gidmapping" => cfg.gid_mapping = parse_mapping(&key, &need(&val)?)?,
            "squash_to_root" => cfg.squash_to_root = true,
            "squash_to_uid" => cfg.squash_to_uid = Some(parse_num(&key, &need(&val)?)?),
            "squash_to_gid" => cfg.squash_to_gid = Some(parse_num(&key, &need(&val)?)?),
            "static_nlink" => cfg.static_nlink = true,
            "noacl" => cfg.noacl = true,
            // `sync=N` is fuse-overlayfs' alias of `fsync=N`; bare `sync` is the mount flag.
            "fsync" => cfg.fsync = parse_bool(&key, &need(&val)?)?,
            "sync" if val.is_some() => cfg.fsync = parse_bool(&key, &need(&val)?)?,
            "volatile" => cfg.fsync = false,
            "noxattrs" => cfg.no_xattrs = parse_bool(&key, &need(&val)?)?,
            "debug" => {
                cfg.debug = true;
                cfg.foreground = true;
            }
            "plugins" => {
                return Err(UsageError(format!(
                    "plugins={}: not supported: stratafs has no layer plugins (fuse-overlayfs' \
                     //PLUGIN//DATA lowers); give every lower as a directory",
                    val.unwrap_or_default()
                )));
            }
            // fuse-overlayfs' options whose effect stratafs always has, or that have no
            // meaning for it: accepted, and said once on stderr when without effect.
            "xino" => match need(&val)?.as_str() {
                "on" => {}
                "off" | "auto" => notice(
                    &mut cfg,
                    &s,
                    "st_ino is always stable and unique across layers (as xino=on)",
                ),
                v => return Err(UsageError(format!("xino={v}: expected off, auto or on"))),
            },
            "ino32_t" => notice(
                &mut cfg,
                &s,
                "st_ino stays 64-bit (stratafs composes inode numbers from device and \
                 inode; cut to 32 bits they could collide)",
            ),
            "redirect_dir" => match need(&val)?.as_str() {
                "on" | "follow" => {}
                "off" | "nofollow" => notice(
                    &mut cfg,
                    &s,
                    "renamed lower directories always get a redirect xattr, and redirects \
                     are followed (as kernel overlayfs with redirect_dir=on)",
                ),
                v => {
                    return Err(UsageError(format!(
                        "redirect_dir={v}: expected on, off, follow or nofollow"
                    )));
                }
            },
            "writeback" => {
                if parse_bool(&key, &need(&val)?)? {
                    notice(
                        &mut cfg,
                        &s,
                        "stratafs does not use the kernel's writeback cache (writes reach \
                         the upper file as they are made)",
                    );
                }
            }
            "fast_ino" | "fast_ino_check" => {
                if parse_bool(&key, &need(&val)?)? {
                    notice(
                        &mut cfg,
                        &s,
                        "fuse-overlayfs' inode lookup shortcut; stratafs numbers inodes its own way",
                    );
                }
            }
            "max_write" => {
                let _: u32 = parse_num(&key, &need(&val)?)?;
                notice(
                    &mut cfg,
                    &s,
                    "stratafs asks the kernel for writes of up to 1 MiB",
                );
            }
            "xattr_permissions" => match need(&val)?.as_str() {
                "0" => cfg.xattr_permissions = 0,
                "1" => cfg.xattr_permissions = 1,
                "2" => cfg.xattr_permissions = 2,
                v => {
                    return Err(UsageError(format!(
                        "xattr_permissions={v}: expected 0, 1 or 2"
                    )));
                }
            },
            "splice_read" | "splice_write" | "splice_move" => notice(
                &mut cfg,
                &s,
                "stratafs moves file data with pread/pwrite, copy_file_range and FUSE \
                 passthrough, not splice",
            ),
            // What stratafs does anyway: no splice; the page cache is kept across opens.
            "nosplice_read" | "nosplice_write" | "nosplice_move" | "kernel_cache" => {}
            "threaded" => {
                let v: u32 = parse_num(&key, &need(&val)?)?;
                if v == 0 {
                    cfg.threads = 1;
                }
            }
            "threads" => cfg.threads = parse_num(&key, &need(&val)?)?,
            "io_uring" => cfg.no_io_uring = false,
            "noio_uring" => cfg.no_io_uring = true,
            "io" => {
                cfg.io = match need(&val)?.as_str() {
                    "inode" => IoStrategy::Inode,
                    "handles" => IoStrategy::Handles,
                    "passthrough" => IoStrategy::Passthrough,
                    "passthrough-all" => IoStrategy::PassthroughAll,
                    v => {
                        return Err(UsageError(format!(
                            "io={v}: expected inode, handles, passthrough or passthrough-all"
                        )));
                    }
                }
            }
            "timeout" => {
                let secs: f64 = parse_num(&key, &need(&val)?)?;
                if !(0.0..=1e10).contains(&secs) {
                    return Err(UsageError(format!("timeout={secs}: out of range")));
                }
                cfg.timeout = Duration::from_secs_f64(secs);
            }
            "allow_other" | "allow_root" => cfg.allow_other = true,
            "default_permissions" => cfg.default_permissions = true,
            "ro" => cfg.read_only = true,
            "rw" => cfg.read_only = false,
            "userxattr" => cfg.user_xattr = true,
            "fsname" => cfg.source = val,
            // Generic options a mount helper passes, and kernel-overlay feature options
            // whose behaviour stratafs always has: accepted without effect.
            "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "_netdev"
            | "nofail"
            | "defaults"
            | "suid_dummy"
            | "silent"
            | "loud"
            | "auto_unmount"
            | "subtype"
            | "max_read"
            | "blksize"
            | "context"
            | "fscontext"
            | "defcontext"
            | "rootcontext"
            | "index"
            | "metacopy"
            | "nfs_export"
            | "nosync"
            | "direct_io"
            | "uid"
            | "gid"
            | "default_permissions_off"
            | "x-systemd.automount" => {}
            _ if key.starts_with("x-") || key.starts_with("comment=") => {}
            _ => return Err(UsageError(format!("{key}: unknown option"))),
        }
    }
    match positional.len() {
        1 => cfg.mountpoint = PathBuf::from(&positional[0]),
        2 => {
            cfg.source = Some(positional[0].to_string_lossy().into_owned());
            cfg.mountpoint = PathBuf::from(&positional[1]);
        }
        0 => return Err(UsageError("missing MOUNTPOINT".into())),
        _ => return Err(UsageError(format!("too many arguments: {:?}", positional))),
    }
    if cfg.lowers.is_empty() {
        return Err(UsageError(
            "lowerdir: no lower layer given (-o lowerdir=DIR[:DIR...])".into(),
        ));
    }
    if cfg.lowers.len() > crate::layers::MAX_LOWERS {
        return Err(UsageError(format!(
            "lowerdir: {} layers given, a mount takes at most {}",
            cfg.lowers.len(),
            crate::layers::MAX_LOWERS
        )));
    }
    match (&cfg.upper, &cfg.work) {
        (Some(_), None) => return Err(UsageError("workdir: required with upperdir".into())),
        (None, Some(_)) => return Err(UsageError("upperdir: required with workdir".into())),
        _ => {}
    }
    if cfg.threads == 0 {
        cfg.threads = std::thread::available_parallelism()
            .map(|n| n.get().clamp(2, 8))
            .unwrap_or(2);
    }
    Ok(Command::Mount(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_paths_split_back_to_themselves() {
        for p in [&b"/plain/dir"[..], b"/a,b", b"/c:d", b"/e\\f", b"/all,:\\x"] {
            let mut joined = escape_path(p);
            joined.push(b':');
            joined.extend(escape_path(b"/second"));
            assert_eq!(
                split_escaped(&joined, b':'),
                vec![p.to_vec(), b"/second".to_vec()]
            );
        }
    }

    fn argv(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn escaped_colons_and_commas() {
        let c = parse(&argv(&[
            "stratafs",
            "-o",
            r"lowerdir=/a\:b:/c\,d,upperdir=/u,workdir=/w",
            "/mnt",
        ]))
        .unwrap();
        let Command::Mount(c) = c else { panic!() };
        assert_eq!(c.lowers, vec![PathBuf::from("/a:b"), PathBuf::from("/c,d")]);
        assert_eq!(c.upper, Some(PathBuf::from("/u")));
    }

    #[test]
    fn mount_helper_convention() {
        let c = parse(&argv(&[
            "stratafs",
            "src",
            "/mnt",
            "-o",
            "rw,nodev,lowerdir=/l",
        ]))
        .unwrap();
        let Command::Mount(c) = c else { panic!() };
        assert_eq!(c.source.as_deref(), Some("src"));
        assert_eq!(c.mountpoint, PathBuf::from("/mnt"));
        assert_eq!(c.kernel_flags, [MountFlag::NoDev]);
    }

    #[test]
    fn later_generic_option_wins() {
        let c = parse(&argv(&[
            "stratafs",
            "-o",
            "lowerdir=/l,nodev,nosuid,dev",
            "/m",
        ]))
        .unwrap();
        let Command::Mount(c) = c else { panic!() };
        assert_eq!(c.kernel_flags, [MountFlag::NoSuid, MountFlag::Dev]);
    }

    #[test]
    fn more_lowers_than_a_mount_takes_are_refused() {
        let many = vec!["/l"; crate::layers::MAX_LOWERS + 1].join(":");
        let e = parse(&argv(&[
            "stratafs",
            "-o",
            &format!("lowerdir={many}"),
            "/m",
        ]))
        .unwrap_err();
        assert!(e.0.contains("at most 65534"), "{}", e.0);
        assert!(std::mem::size_of::<crate::layers::LowerEntry>() <= 16);
    }

    #[test]
    fn unknown_option_is_named() {
        let e = parse(&argv(&["stratafs", "-o", "lowerdir=/l,bogus=1", "/mnt"])).unwrap_err();
        assert!(e.0.contains("bogus"), "{}", e.0);
    }

    #[test]
    fn io_strategy() {
        let io = |o: &str| {
            parse(&argv(&["stratafs", "-o", &format!("lowerdir=/l{o}"), "/m"]))
                .map(|c| match c {
                    Command::Mount(c) => c.io,
                    _ => panic!("not a mount"),
                })
                .map_err(|e| e.0)
        };
        assert_eq!(io(""), Ok(IoStrategy::Inode));
        assert_eq!(io(",io=handles"), Ok(IoStrategy::Handles));
        assert_eq!(io(",io=passthrough"), Ok(IoStrategy::Passthrough));
        assert_eq!(io(",io=passthrough-all"), Ok(IoStrategy::PassthroughAll));
        let no_ring =
            |o: &str| match parse(&argv(&["stratafs", "-o", &format!("lowerdir=/l{o}"), "/m"])) {
                Ok(Command::Mount(c)) => Some(c.no_io_uring),
                _ => None,
            };
        assert_eq!(no_ring(""), Some(false));
        assert_eq!(no_ring(",noio_uring"), Some(true));
        assert_eq!(no_ring(",noio_uring,io_uring"), Some(false));
        let e = io(",io=fast").unwrap_err();
        assert!(e.contains("io=fast") && e.contains("expected"), "{e}");
    }

    #[test]
    fn mappings() {
        let c = parse(&argv(&[
            "stratafs",
            "-o",
            "lowerdir=/l,uidmapping=0:1000:1:1:100000:65536",
            "/m",
        ]))
        .unwrap();
        let Command::Mount(c) = c else { panic!() };
        assert_eq!(
            c.uid_mapping,
            vec![
                IdMapping {
                    stored: 0,
                    shown: 1000,
                    count: 1
                },
                IdMapping {
                    stored: 1,
                    shown: 100000,
                    count: 65536
                }
            ]
        );
        // podman's form: a leading colon.
        let m = opt(",gidmapping=:0:100000:65536").unwrap().gid_mapping;
        assert_eq!(
            m,
            vec![IdMapping {
                stored: 0,
                shown: 100000,
                count: 65536
            }]
        );
        for bad in ["0:1", "a:b:c", "0:1:0", "1:4294967295:2", "4294967295:0:2"] {
            let e = opt(&format!(",uidmapping={bad}")).unwrap_err();
            assert!(e.contains(&format!("uidmapping={bad}")), "{e}");
        }
    }

    fn opt(o: &str) -> Result<Box<MountConfig>, String> {
        match parse(&argv(&["stratafs", "-o", &format!("lowerdir=/l{o}"), "/m"])) {
            Ok(Command::Mount(c)) => Ok(c),
            Ok(_) => Err("not a mount".into()),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn fuse_overlayfs_options() {
        let c = opt(",noxattrs=1,volatile,debug").unwrap();
        assert!(c.no_xattrs && !c.fsync && c.debug && c.foreground);
        assert!(c.notices.is_empty(), "{:?}", c.notices);
        assert!(!opt(",noxattrs=1,noxattrs=0").unwrap().no_xattrs);
        assert!(!opt(",sync=0").unwrap().fsync);
        assert_eq!(opt(",sync").unwrap().kernel_flags, [MountFlag::Sync]);
        // What stratafs does anyway: silent.
        let c = opt(
            ",xino=on,redirect_dir=on,redirect_dir=follow,writeback=0,fast_ino=0,\
             xattr_permissions=0,kernel_cache,nosplice_read,nosplice_write,nosplice_move",
        )
        .unwrap();
        assert!(c.notices.is_empty(), "{:?}", c.notices);
        assert_eq!(c.xattr_permissions, 0);
        // Honoured, silently.
        for n in [1u8, 2] {
            let c = opt(&format!(",xattr_permissions={n}")).unwrap();
            assert_eq!(c.xattr_permissions, n);
            assert!(c.notices.is_empty(), "{:?}", c.notices);
        }
        // Without effect: one line each, once.
        let c = opt(
            ",xino=off,xino=auto,ino32_t,redirect_dir=off,writeback=1,fast_ino=1,\
             max_write=131072,splice_read,splice_write,splice_move",
        )
        .unwrap();
        let keys: Vec<&str> = c
            .notices
            .iter()
            .map(|l| l.split([':', '=']).next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "xino",
                "ino32_t",
                "redirect_dir",
                "writeback",
                "fast_ino",
                "max_write",
                "splice_read",
                "splice_write",
                "splice_move"
            ]
        );
        assert!(c.notices.iter().all(|l| l.contains("no effect")));
        assert!(c.notices[0].starts_with("xino=off: "), "{}", c.notices[0]);
        // atime family: mount flags, a later one overriding its opposite.
        assert_eq!(
            opt(",relatime,nodiratime,strictatime,diratime,nostrictatime")
                .unwrap()
                .kernel_flags,
            [
                MountFlag::Relatime,
                MountFlag::DirAtime,
                MountFlag::NoStrictAtime
            ]
        );
        for (bad, names) in [
            (",xino=maybe", "xino=maybe"),
            (",redirect_dir=sometimes", "redirect_dir=sometimes"),
            (",noxattrs=yes", "noxattrs=yes"),
            (",writeback=2", "writeback=2"),
            (",xattr_permissions=3", "xattr_permissions=3"),
            (",max_write=big", "max_write=big"),
            (",fast_ino=x", "fast_ino=x"),
            (",sync=x", "sync=x"),
        ] {
            let e = opt(bad).unwrap_err();
            assert!(e.contains(names), "{bad}: {e}");
        }
        let e = opt(",plugins=/usr/lib/plugin.so").unwrap_err();
        assert!(
            e.contains("plugins=/usr/lib/plugin.so") && e.contains("not supported"),
            "{e}"
        );
    }

    #[test]
    fn environment() {
        let env = |names: &'static [&'static str]| {
            move |k: &str| names.contains(&k).then(|| OsString::from("1"))
        };
        let mut c = opt(",io=passthrough").unwrap();
        apply_env(&mut c, env(&[]));
        assert!(!c.whiteout_files && c.io == IoStrategy::Passthrough && c.notices.is_empty());
        apply_env(
            &mut c,
            env(&[
                "FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT",
                "FUSE_OVERLAYFS_NO_PASSTHROUGH",
            ]),
        );
        assert!(c.whiteout_files);
        assert_eq!(c.io, IoStrategy::Handles);
        assert_eq!(c.notices.len(), 1);
        let mut c = opt("").unwrap();
        apply_env(&mut c, env(&["FUSE_OVERLAYFS_NO_PASSTHROUGH"]));
        assert!(c.io == IoStrategy::Inode && c.notices.is_empty());
    }
}
