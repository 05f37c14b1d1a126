//! The `stratafs` command: checks the layers, mounts, daemonizes unless `-f`, serves.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use crate::daemon::options::{self, Command, MountConfig};
use crate::fuse::{FuseAdapter, OverlayFs};
use crate::layers::Layer;
use crate::overlay::{Overlay, OverlaySettings};
use crate::sys;
use crate::transport::Tallies;

/// Runs stratafs with `args` (argv, including argv[0]) exactly as the `stratafs` binary
/// does: parses options, mounts, daemonizes unless `-f`, serves until unmounted.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cfg = match options::parse(&args) {
        Ok(Command::Mount(mut cfg)) => {
            options::apply_env(&mut cfg, |k| std::env::var_os(k));
            // Once, before daemonizing, so the caller sees them.
            for line in &cfg.notices {
                eprintln!("stratafs: {line}");
            }
            cfg
        }
        Ok(Command::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("stratafs {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("stratafs: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg.debug {
        let _ = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Debug)
            .try_init();
    }
    let prepared = match prepare(&cfg) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("stratafs: {msg}");
            return ExitCode::FAILURE;
        }
    };
    if cfg.foreground {
        return match serve(&cfg, prepared, None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("stratafs: {msg}");
                ExitCode::FAILURE
            }
        };
    }
    daemonize(&cfg, prepared)
}

/// The opened layers, ready to become an overlay.
struct Prepared {
    lowers: Vec<Layer>,
    upper: Option<Layer>,
    work: Option<(OwnedFd, OwnedFd)>,
}

fn describe(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn open_layer(opt: &str, path: &Path) -> Result<Layer, String> {
    let md = std::fs::metadata(path)
        .map_err(|e| format!("{opt}={}: {}", path.display(), describe(&e)))?;
    if !md.is_dir() {
        return Err(format!("{opt}={}: not a directory", path.display()));
    }
    Layer::open(path).map_err(|e| format!("{opt}={}: {}", path.display(), describe(&e)))
}

fn canon(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn prepare(cfg: &MountConfig) -> Result<Prepared, String> {
    crate::sys::raise_nofile_limit();
    let mut lowers = Vec::with_capacity(cfg.lowers.len());
    for l in &cfg.lowers {
        lowers.push(open_layer("lowerdir", l)?);
    }
    let mp = std::fs::metadata(&cfg.mountpoint)
        .map_err(|e| format!("mountpoint {}: {}", cfg.mountpoint.display(), describe(&e)))?;
    if !mp.is_dir() {
        return Err(format!(
            "mountpoint {}: not a directory",
            cfg.mountpoint.display()
        ));
    }
    let (upper, work) = match (&cfg.upper, &cfg.work) {
        (Some(u), Some(w)) if !cfg.read_only => {
            let upper = open_layer("upperdir", u)?;
            let workl = open_layer("workdir", w)?;
            let (cu, cw) = (canon(u), canon(w));
            for l in &cfg.lowers {
                let cl = canon(l);
                if cu.starts_with(&cl) {
                    return Err(format!(
                        "upperdir={}: inside lowerdir={}",
                        u.display(),
                        l.display()
                    ));
                }
                if cl.starts_with(&cu) {
                    return Err(format!(
                        "lowerdir={}: inside upperdir={}",
                        l.display(),
                        u.display()
                    ));
                }
            }
            if cw.starts_with(&cu) || cu.starts_with(&cw) {
                return Err(format!(
                    "workdir={}: must not be inside upperdir={} or contain it",
                    w.display(),
                    u.display()
                ));
            }
            if upper.dev != workl.dev {
                return Err(format!(
                    "workdir={}: not on the same filesystem as upperdir={}",
                    w.display(),
                    u.display()
                ));
            }
            if let Err(e) = sys::process::writable_by_caller(u) {
                return Err(format!(
                    "upperdir={}: not writable: {}",
                    u.display(),
                    describe(&e)
                ));
            }
            let work = prepare_work(w, &workl)?;
            (Some(upper), Some(work))
        }
        _ => (None, None),
    };
    Ok(Prepared {
        lowers,
        upper,
        work,
    })
}

/// stratafs' hard-link index in the work dir. Not `index`: kernel overlayfs with
/// `index=on` checks every entry of `workdir/index` as its own and refuses to mount a
/// work dir holding stratafs' (so an upper stratafs wrote would not mount there).
const INDEX_DIR: &str = "stratafs-index";

/// An `index` dir of an older stratafs (every entry named by 16 hex digits) moves to
/// [`INDEX_DIR`], so its hard links stay together and kernel overlayfs can mount.
fn migrate_old_index(workl: &Layer) {
    let old = Path::new("index");
    if sys::lstat_at(workl.fd(), Path::new(INDEX_DIR)).is_ok() {
        return;
    }
    let Ok(entries) = sys::read_dir_at(workl.fd(), old) else {
        return;
    };
    let ours = |n: &[u8]| n.len() == 16 && n.iter().all(u8::is_ascii_hexdigit);
    if !entries.is_empty() && entries.iter().all(|e| ours(&e.name)) {
        let _ = sys::rename_at(workl.fd(), old, Path::new(INDEX_DIR), 0);
    }
}

/// Creates `workdir/work` (and the index, [`INDEX_DIR`]), emptied of leftovers of an
/// earlier mount.
fn prepare_work(w: &Path, workl: &Layer) -> Result<(OwnedFd, OwnedFd), String> {
    let fail = |what: &str, e: std::io::Error| {
        format!("workdir={}: {what}: {}", w.display(), describe(&e))
    };
    migrate_old_index(workl);
    for sub in ["work", INDEX_DIR] {
        match sys::mkdir_at(workl.fd(), Path::new(sub), 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = sys::lstat_at(workl.fd(), Path::new(sub)).map_err(|e| fail(sub, e))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(format!(
                        "workdir={}: {sub} exists and is not a directory",
                        w.display()
                    ));
                }
            }
            Err(e) => return Err(fail("cannot create work/", e)),
        }
    }
    let work = sys::open_beneath(
        workl.fd(),
        Path::new("work"),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| fail("work", e))?;
    // Clean leftovers of an interrupted copy-up or removal.
    let entries =
        sys::read_dir_at(work_borrow(&work), Path::new("")).map_err(|e| fail("work", e))?;
    for e in entries {
        let p = PathBuf::from(std::ffi::OsStr::from_bytes_compat(&e.name));
        crate::overlay::remove_tree_or_file(work_borrow(&work), &p);
    }
    let left = sys::read_dir_at(work_borrow(&work), Path::new("")).map_err(|e| fail("work", e))?;
    if let Some(e) = left.first() {
        let p = PathBuf::from(std::ffi::OsStr::from_bytes_compat(&e.name));
        let cause = match sys::unlink_at(work_borrow(&work), &p, e.d_type == libc::DT_DIR) {
            Err(err) => describe(&err),
            Ok(()) => "removed only on retry".into(),
        };
        return Err(format!(
            "workdir={}: cannot clean leftover work/{}: {cause}",
            w.display(),
            p.display()
        ));
    }
    // A probe file proves the work dir is usable (writable, not read-only).
    let probe = Path::new(".stratafs-probe");
    match sys::open_beneath(
        work_borrow(&work),
        probe,
        libc::O_WRONLY | libc::O_CREAT,
        0o600,
    ) {
        Ok(_) => {
            let _ = sys::unlink_at(work_borrow(&work), probe, false);
        }
        Err(e) => return Err(fail("not usable", e)),
    }
    let index = sys::open_beneath(
        workl.fd(),
        Path::new(INDEX_DIR),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| fail(INDEX_DIR, e))?;
    Ok((work, index))
}

fn work_borrow(fd: &OwnedFd) -> std::os::fd::BorrowedFd<'_> {
    std::os::fd::AsFd::as_fd(fd)
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn fuse_config(cfg: &MountConfig, writable: bool) -> fuser::Config {
    use fuser::MountOption as M;
    let mut c = fuser::Config::default();
    let mut o = vec![
        M::FSName(cfg.source.clone().unwrap_or_else(|| "stratafs".into())),
        M::Subtype("stratafs".into()),
        M::DefaultPermissions,
    ];
    if !writable {
        o.push(M::RO);
    }
    o.extend(
        cfg.kernel_flags
            .iter()
            .filter_map(|f| f.fusermount3_option()),
    );
    c.mount_options = o;
    let root = sys::process::is_root();
    c.acl = if cfg.allow_other || root {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    c.n_threads = Some(cfg.threads.max(1));
    c.clone_fd = cfg.threads > 1;
    c
}

/// Files kept open for I/O by inode: half of what the fd limit leaves after the
/// layers and some headroom, within [64, 16384].
fn open_file_budget(layers: usize) -> usize {
    let limit = crate::sys::raise_nofile_limit() as usize;
    (limit.saturating_sub(layers + 256) / 2).clamp(64, 16384)
}

/// The file system a mount of `cfg` serves, set up (layers opened, work dir cleaned)
/// but not mounted: what the fuzz target of the request decoder drives.
pub fn unmounted_fs(cfg: &MountConfig) -> Result<Arc<OverlayFs>, String> {
    build_fs(cfg, prepare(cfg)?)
}

fn build_fs(cfg: &MountConfig, p: Prepared) -> Result<Arc<OverlayFs>, String> {
    let settings = OverlaySettings {
        user_xattr: cfg.user_xattr || !sys::process::is_root(),
        static_nlink: cfg.static_nlink,
        fsync: cfg.fsync,
        open_files: open_file_budget(p.lowers.len()),
        whiteout_files: cfg.whiteout_files,
        xattr_permissions: crate::override_stat::OverrideKind::from_option(cfg.xattr_permissions),
    };
    let ov = Overlay::new(p.lowers, p.upper, p.work, settings).map_err(|e| {
        format!(
            "cannot set up the overlay: {}",
            describe(&std::io::Error::from_raw_os_error(e))
        )
    })?;
    let fs = OverlayFs::new(
        ov,
        cfg.timeout,
        crate::idmap::IdMapper::from_config(cfg),
        cfg.io,
    );
    Ok(Arc::new(if cfg.no_xattrs {
        fs.without_xattrs()
    } else {
        fs
    }))
}

fn serve(cfg: &MountConfig, p: Prepared, ready: Option<OwnedFd>) -> Result<(), String> {
    let tallies = Tallies::new();
    if let Some(path) = &cfg.stats {
        // Written once now, so a path that cannot be written fails the mount.
        tallies
            .sum()
            .write_to(path)
            .map_err(|e| format!("stats={}: {}", path.display(), describe(&e)))?;
        // Before any thread starts, so that every one inherits SIGUSR1 blocked.
        write_stats_on_signal(path.clone(), tallies.clone());
    }
    let writable = p.upper.is_some();
    let fs = build_fs(cfg, p)?;
    fs.set_posix_acl(!cfg.noacl && !cfg.no_xattrs);
    // io_uring queues are set up before INIT so the kernel is only told yes when they
    // can be served.
    let rings = if cfg.no_io_uring {
        None
    } else {
        match crate::transport::prepare() {
            Ok(Some(r)) => {
                fs.offer_uring();
                Some(r)
            }
            Ok(None) => {
                log::debug!("FUSE over io_uring not offered by the kernel (enable_uring)");
                None
            }
            Err(e) => {
                log::info!("FUSE over io_uring not used: {e}");
                None
            }
        }
    };
    let adapter = FuseAdapter(fs.clone());
    let config = fuse_config(cfg, writable);
    let mount_err =
        |e: std::io::Error| format!("mount {}: {}", cfg.mountpoint.display(), describe(&e));
    let allow_other = config.acl == fuser::SessionACL::All;
    let config_acl = config.acl;
    let session =
        match crate::daemon::mount::mount_fuse(cfg, writable, allow_other).map_err(mount_err)? {
            Some(fd) => {
                let acl = config.acl;
                fuser::Session::from_fd(adapter, fd, acl, config).map_err(|e| {
                    crate::daemon::mount::detach(cfg);
                    mount_err(e)
                })?
            }
            // No privilege to mount: fusermount3 does it, without the options it refuses.
            None => {
                for f in cfg
                    .kernel_flags
                    .iter()
                    .filter(|f| f.fusermount3_option().is_none())
                {
                    eprintln!(
                        "stratafs: {}: fusermount3 cannot set it on an unprivileged mount; \
                     mounted without it",
                        f.name()
                    );
                }
                fuser::Session::new(adapter, &cfg.mountpoint, &config).map_err(mount_err)?
            }
        };
    // INIT is answered by now (fuser's handshake).
    match session.as_fd().try_clone_to_owned() {
        Ok(dev) => fs.attach_device(dev),
        Err(e) => log::warn!("cannot duplicate the FUSE device fd: {e}"),
    }
    // Who may use the mount besides what the kernel checks (fuser's session ACL).
    let access = crate::transport::Access {
        owner_only: (config_acl == fuser::SessionACL::Owner).then(sys::process::euid),
    };
    if let Some(rings) = rings.filter(|_| fs.uring_accepted()) {
        let started = session.as_fd().try_clone_to_owned().and_then(|dev| {
            crate::transport::start(
                rings,
                fs.clone(),
                dev,
                access,
                crate::fuse::ring_payload_size(),
                tallies.clone(),
            )
        });
        if let Err(e) = started {
            // The kernel now waits for every queue: without them the mount would hang.
            crate::daemon::mount::detach(cfg);
            return Err(format!(
                "serving {} through io_uring: {} (mount with -o noio_uring to avoid it)",
                cfg.mountpoint.display(),
                describe(&e)
            ));
        }
    }
    if let Some(ready) = ready {
        let mut f = std::fs::File::from(ready);
        let _ = f.write_all(b"ok");
        drop(f);
        redirect_stdio();
    }
    // fuser mounted and answered INIT; the device is served with the ring's decoder
    // from here on. `session` lives until the end (fusermount's mount is undone when
    // it is dropped).
    let served = session.as_fd().try_clone_to_owned().and_then(|dev| {
        crate::transport::serve_device(
            fs.clone(),
            dev,
            access,
            cfg.threads.max(1),
            crate::fuse::ring_payload_size(),
            &tallies,
        )
    });
    drop(session);
    if let Some(path) = &cfg.stats {
        write_stats(path, &tallies);
    }
    served.map_err(|e| format!("serving {}: {}", cfg.mountpoint.display(), describe(&e)))
}

/// `-o stats=PATH`: SIGUSR1 (blocked in every thread, waited for by one) writes the
/// counts so far, so a benchmark can read them between two passes on one mount.
fn write_stats_on_signal(path: PathBuf, tallies: Arc<Tallies>) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGUSR1);
    if let Err(e) = set.thread_block() {
        log::warn!("stats: cannot block SIGUSR1: {e}; counts written at unmount only");
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("stratafs-stats".into())
        .spawn(move || {
            while set.wait().is_ok() {
                write_stats(&path, &tallies);
            }
        });
    if let Err(e) = spawned {
        log::warn!("stats: cannot start the SIGUSR1 thread: {e}");
    }
}

fn write_stats(path: &Path, tallies: &Tallies) {
    if let Err(e) = tallies.sum().write_to(path) {
        log::warn!("stats: cannot write {}: {e}", path.display());
    }
}

fn redirect_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        sys::process::redirect_stdio(null);
    }
}

fn daemonize(cfg: &MountConfig, p: Prepared) -> ExitCode {
    let (rd, wr) = match sys::process::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("stratafs: pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    // No other thread exists yet in this process.
    match sys::process::fork_detached() {
        Err(e) => {
            eprintln!("stratafs: fork: {e}");
            ExitCode::FAILURE
        }
        Ok(sys::process::Forked::Child) => {
            drop(rd);
            match serve(cfg, p, Some(wr)) {
                Ok(()) => std::process::exit(0),
                Err(msg) => {
                    eprintln!("stratafs: {msg}");
                    std::process::exit(1)
                }
            }
        }
        Ok(sys::process::Forked::Parent) => {
            drop(wr);
            drop(p);
            let mut buf = Vec::new();
            let _ = std::fs::File::from(rd).read_to_end(&mut buf);
            if buf == b"ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
