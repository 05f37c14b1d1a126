//! Distro smoke test: a real Debian userland on each union driver. A minimal Debian
//! bookworm (debootstrap, variant minbase) becomes an image (`strata image create
//! --from-dir`), and in one container per driver `apt-get update`, `apt-get install
//! python3 git`, then python3, git and `dpkg --audit` must work, on stratafs exactly as
//! on kernel overlayfs: the same command, no apt options to work around either.
//!
//! The debootstrapped rootfs is cached outside the repo (`/var/cache/strata-tests/`,
//! keyed by suite and variant; `STRATA_TEST_CACHE` moves it) and built once: under a
//! lock (both tests of this binary, and other test processes, wait for one build), into
//! a temp dir renamed into place when debootstrap succeeded, so a half-built rootfs is
//! never reused. apt's lists are not cached: `apt-get update` is part of the test.
//!
//! Needs root, `debootstrap` (scripts/deps installs it) and HTTP to the Debian mirror;
//! without them the tests skip with the reason, or fail under CI=true.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::strata;

const SUITE: &str = "bookworm";
const VARIANT: &str = "minbase";
/// The mirror this project's Debian machines use (deb.debian.org, as in their
/// `/etc/apt/sources.list.d/debian.sources`); `STRATA_DEBIAN_MIRROR` overrides it.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const IMAGE: &str = "debian:bookworm";
/// Longest a driver's apt run may take before the test kills it and fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The command under test, the same on both drivers. Markers split the output.
const SCRIPT: &str = "apt-get update && apt-get install -y --no-install-recommends python3 git \
    && echo '== python3' && python3 -c 'print(6*7)' \
    && echo '== git' && git --version \
    && echo '== dpkg --audit' && dpkg --audit \
    && echo '== end'";

fn mirror() -> String {
    std::env::var("STRATA_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string())
}

fn cache_dir() -> PathBuf {
    std::env::var_os("STRATA_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/strata-tests"))
}

/// Whether the test must skip: prints the missing prerequisite, or panics with it
/// under CI=true.
fn skip() -> bool {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    let Some(reason) = MISSING.get_or_init(missing_prerequisite) else {
        return false;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}, and CI=true forbids skipping");
    }
    eprintln!("skipping: {reason}");
    true
}

fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if cache_dir().join(rootfs_name()).is_dir() {
        // debootstrap is not needed for a cached rootfs; apt still needs the mirror.
    } else if Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Some("needs debootstrap (scripts/deps installs it)".into());
    }
    mirror_unreachable(&mirror()).map(|e| format!("the Debian mirror is not reachable: {e}"))
}

/// Fetches `MIRROR/dists/SUITE/Release` headers over plain HTTP; None when it answers
/// 200. (An https mirror is only checked for a TCP connection.)
fn mirror_unreachable(mirror: &str) -> Option<String> {
    let (https, rest) = if let Some(r) = mirror.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = mirror.strip_prefix("https://") {
        (true, r)
    } else {
        return Some(format!("{mirror}: not an http:// or https:// URL"));
    };
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match hostport
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    {
        Some(hp) => hp,
        None => (hostport, if https { 443 } else { 80 }),
    };
    let addrs = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return Some(format!("resolving {host}: {e}")),
    };
    let mut last = format!("{host}: no address");
    for addr in addrs {
        let mut conn = match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                last = format!("connecting to {addr}: {e}");
                continue;
            }
        };
        if https {
            return None;
        }
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "HEAD /{}/dists/{SUITE}/Release HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            path.trim_end_matches('/')
        );
        let mut head = [0u8; 64];
        let status = conn
            .write_all(req.as_bytes())
            .and_then(|_| conn.read(&mut head));
        match status {
            Ok(n) => {
                let line = String::from_utf8_lossy(&head[..n]);
                let line = line.lines().next().unwrap_or("");
                if line.split_whitespace().nth(1) == Some("200") {
                    return None;
                }
                last = format!("{mirror}/dists/{SUITE}/Release: {line}");
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Some(last)
}

fn rootfs_name() -> String {
    format!("debootstrap-{SUITE}-{VARIANT}")
}

/// The debootstrapped rootfs, built on first use and cached across runs.
fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let cache = cache_dir();
        fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("creating {}: {e}", cache.display()));
        let done = cache.join(rootfs_name());
        // Other test processes may build it too: one at a time, the rest reuse it.
        let lock_path = cache.join(format!("{}.lock", rootfs_name()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("locking {}: {e}", lock_path.display()));
        if done.join("usr/bin/apt-get").is_file() {
            eprintln!("distro: reusing the cached rootfs {}", done.display());
            return done;
        }
        // Leftovers of interrupted builds (we hold the lock: none is in progress).
        let partial_prefix = format!(".{}.partial-", rootfs_name());
        for e in fs::read_dir(&cache).expect("listing the cache dir").flatten() {
            if e.file_name().to_string_lossy().starts_with(&partial_prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let _ = fs::remove_dir_all(&done);
        let tmp = cache.join(format!("{partial_prefix}{}", std::process::id()));
        let start = Instant::now();
        let out = Command::new("debootstrap")
            .arg(format!("--variant={VARIANT}"))
            .arg(SUITE)
            .arg(&tmp)
            .arg(mirror())
            .output()
            .expect("running debootstrap");
        if !out.status.success() {
            let log = fs::read_to_string(tmp.join("debootstrap/debootstrap.log"))
                .unwrap_or_default();
            panic!(
                "debootstrap --variant={VARIANT} {SUITE} {} {} failed ({}):\n{}\n{}\ndebootstrap.log (end):\n{}",
                tmp.display(),
                mirror(),
                out.status,
                tail(&String::from_utf8_lossy(&out.stdout), 20),
                tail(&String::from_utf8_lossy(&out.stderr), 20),
                tail(&log, 40)
            );
        }
        apt_clean(&tmp);
        fs::rename(&tmp, &done).unwrap_or_else(|e| {
            panic!("renaming {} to {}: {e}", tmp.display(), done.display())
        });
        eprintln!(
            "distro: debootstrap --variant={VARIANT} {SUITE}: {:.0?}",
            start.elapsed()
        );
        done
    })
}

/// Removes what debootstrap leaves in apt's lists and caches, as Debian's container
/// images do: the lists so that `apt-get update` in the test really fetches and
/// writes them, the downloaded .debs to keep the image small.
fn apt_clean(rootfs: &Path) {
    for (dir, keep) in [
        ("var/lib/apt/lists", &["lock"][..]),
        ("var/cache/apt/archives", &["lock"][..]),
        ("var/cache/apt", &[][..]),
    ] {
        let dir = rootfs.join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            if is_file && !keep.iter().any(|k| e.file_name() == *k) {
                fs::remove_file(e.path())
                    .unwrap_or_else(|err| panic!("removing {}: {err}", e.path().display()));
            }
        }
    }
}

/// Name prefix of the per-process stores under the temp dir.
const STORE_PREFIX: &str = "strata-distro-tests-";

/// A store holding the rootfs as `debian:bookworm`, shared by the tests of this
/// process; stores of test processes that are gone are removed first.
fn store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    STORE.get_or_init(|| {
        let rootfs = rootfs();
        let tmp = std::env::temp_dir();
        common::remove_stale_stores(STORE_PREFIX);
        let root = tmp.join(format!("{STORE_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let start = Instant::now();
        let out = Command::new(strata())
            .arg("--root")
            .arg(&root)
            .args(["image", "create", "--from-dir"])
            .arg(rootfs)
            .arg(IMAGE)
            .output()
            .expect("running strata image create");
        assert!(
            out.status.success(),
            "strata image create --from-dir {} {IMAGE}: {}",
            rootfs.display(),
            common::show(&out)
        );
        eprintln!("distro: strata image create: {:.0?}", start.elapsed());
        root
    })
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The lines between `== name` and the next `== ` marker, or None without the marker.
fn section(out: &str, name: &str) -> Option<String> {
    let start = format!("== {name}");
    let mut lines = out.lines().skip_while(|l| *l != start);
    lines.next()?;
    Some(
        lines
            .take_while(|l| !l.starts_with("== "))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Runs SCRIPT in a fresh container on `driver` and checks what it printed.
fn apt_get(driver: &str) {
    if skip() {
        return;
    }
    let root = store();
    let start = Instant::now();
    let mut child = Command::new(strata())
        .arg("--root")
        .arg(root)
        .args(["run", "--rm", "--network", "host", "--driver", driver])
        .args(["-e", "DEBIAN_FRONTEND=noninteractive", IMAGE, "sh", "-c"])
        .arg(SCRIPT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning strata run");
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for strata run") {
            break Some(st);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().expect("reading stdout")).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("reading stderr")).into_owned();
    let elapsed = start.elapsed();
    eprintln!("distro: apt-get on --driver {driver}: {elapsed:.0?}");
    let shown = format!(
        "strata run --driver {driver} {IMAGE} sh -c \"{SCRIPT}\"\n{} after {elapsed:.0?}\nstdout (end):\n{}\nstderr (end):\n{}",
        status.map_or("timed out".to_string(), |s| s.to_string()),
        tail(&stdout, 40),
        tail(&stderr, 40)
    );
    let status = status.unwrap_or_else(|| panic!("timed out after {RUN_TIMEOUT:?}\n{shown}"));
    assert_eq!(status.code(), Some(0), "{shown}");
    assert_eq!(
        section(&stdout, "python3").as_deref(),
        Some("42"),
        "{shown}"
    );
    let git = section(&stdout, "git").unwrap_or_default();
    assert!(git.starts_with("git version "), "{shown}");
    assert_eq!(
        section(&stdout, "dpkg --audit").as_deref(),
        Some(""),
        "dpkg --audit found broken packages\n{shown}"
    );
    assert!(stdout.lines().any(|l| l == "== end"), "{shown}");
}

#[test]
fn apt_get_on_kernel_overlayfs() {
    apt_get("kernel");
}

#[test]
fn apt_get_on_stratafs() {
    apt_get("fuse");
}
