//! `strata run` as an unprivileged user created by the test setup (useradd), with the
//! single mapping and with /etc/subuid + /etc/subgid (newuidmap/newgidmap). FUSE tests
//! need /dev/fuse usable by the user: the setup makes it 0666 as Debian hosts have it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const USER: &str = "strata-rl";

/// The tests share the user, /etc/subuid, /etc/subgid and the mode of /dev/fuse: each
/// holds this for its whole run.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the user (idempotent) and a world-accessible work dir with copies of the
/// binaries and the demo image imported into the user's own store.
fn setup(subids: bool) -> Option<(PathBuf, tempfile::TempDir)> {
    if skip_unless_root() {
        return None;
    }
    ensure_user(USER);
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{USER}:")))
            .collect();
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        if subids {
            out.push_str(&format!("{USER}:300000:65536\n"));
        }
        std::fs::write(f, out).expect("writing subid file");
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-rl")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let bin = dir.path().join("strata");
    std::fs::copy(strata(), &bin).expect("copying strata");
    let archive = dir.path().join("demo.tar");
    fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
        .expect("demo image");
    std::fs::set_permissions(
        &archive,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let o = as_user(
        dir.path(),
        &[
            "image",
            "import",
            archive.to_str().expect("utf8"),
            "--tag",
            "demo:latest",
        ],
    );
    assert!(o.status.success(), "import as user: {}", show(&o));
    Some((dir.path().to_path_buf(), dir))
}

/// Asserts that `rel` exists under `upper` and belongs to the test user (what uid 0
/// in the container maps to).
fn assert_owned_by_caller(upper: &Path, rel: &str) {
    let caller = nix::unistd::User::from_name(USER)
        .ok()
        .flatten()
        .expect("the test user exists")
        .uid
        .as_raw();
    let md = std::fs::symlink_metadata(upper.join(rel))
        .unwrap_or_else(|e| panic!("{rel} is not in the upper {}: {e}", upper.display()));
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&md),
        caller,
        "{rel}, created as 0 inside, must belong to the caller outside"
    );
}

fn as_user(dir: &Path, args: &[&str]) -> Output {
    strata_as(USER, dir, args)
}

#[test]
fn rootless_single_and_full_mapping() {
    let _serial = serial();
    let Some((dir, _keep)) = setup(false) else {
        return;
    };
    let o = as_user(
        &dir,
        &[
            "run",
            "--driver",
            "kernel",
            "--name",
            "single",
            "demo",
            "/bin/sh",
            "-c",
            "echo $$ $(id -u) $(hostname); touch /tmp/mine",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let mut f = stdout(&o)
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter();
    assert_eq!(
        (f.next().as_deref(), f.next().as_deref()),
        (Some("1"), Some("0")),
        "{}",
        show(&o)
    );
    let store = store::Store::open(Some(dir.join("store"))).expect("store");
    let c = store.container("single").expect("container");
    assert_owned_by_caller(&c.upper, "tmp/mine");
    // Limits that cannot be applied are refused, and nothing is left behind.
    let o = as_user(
        &dir,
        &[
            "run",
            "--rm",
            "--name",
            "limited",
            "--driver",
            "kernel",
            "-m",
            "16m",
            "demo",
            "/bin/true",
        ],
    );
    if o.status.code() == Some(125) {
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("limits"),
            "{}",
            show(&o)
        );
        assert!(store.container("limited").is_err());
    }

    // Full range through newuidmap/newgidmap.
    let Some((dir, _keep2)) = setup(true) else {
        return;
    };
    let o = as_user(
        &dir,
        &[
            "run",
            "--rm",
            "--driver",
            "kernel",
            "demo",
            "/bin/sh",
            "-c",
            "grep -c . /proc/self/uid_map; chown 1000:1000 /tmp && echo chowned",
        ],
    );
    assert_ok_output(&o, "2\nchowned\n");

    // `rm` of a container whose upper holds files of a subordinate id removes it from
    // inside a user namespace with the same map.
    let o = as_user(
        &dir,
        &[
            "run",
            "--driver",
            "kernel",
            "--name",
            "subid-kept",
            "demo",
            "/bin/sh",
            "-c",
            "mkdir /tmp/sub && touch /tmp/sub/f && chown -R 1000:1000 /tmp/sub && echo ok",
        ],
    );
    assert_ok_output(&o, "ok\n");
    let store = store::Store::open(Some(dir.join("store"))).expect("store");
    let c = store.container("subid-kept").expect("container");
    let rm = as_user(&dir, &["rm", "subid-kept"]);
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert!(!c.dir.exists());
}

/// Sets the permission bits of /dev/fuse for one test and restores the old ones on drop
/// (tests hold [`serial`] meanwhile).
struct DevFuseMode {
    old: u32,
}

impl DevFuseMode {
    fn set(mode: u32) -> DevFuseMode {
        use std::os::unix::fs::PermissionsExt;
        let old = std::fs::metadata("/dev/fuse")
            .expect("/dev/fuse must exist for the FUSE driver tests")
            .permissions()
            .mode()
            & 0o7777;
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(mode))
            .expect("chmod /dev/fuse");
        DevFuseMode { old }
    }
}

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let restored =
            std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.old));
        if let Err(e) = restored {
            eprintln!("restoring the mode of /dev/fuse to {:o}: {e}", self.old);
        }
    }
}

#[test]
fn rootless_fuse_driver() {
    let _serial = serial();
    let Some((dir, _keep)) = setup(false) else {
        return;
    };
    let _mode = DevFuseMode::set(0o666);
    let store = store::Store::open(Some(dir.join("store"))).expect("store");
    let o = as_user(
        &dir,
        &[
            "run",
            "--driver",
            "fuse",
            "--name",
            "fuse-kept",
            "demo",
            "/bin/sh",
            "-c",
            "set -e; id -u; echo hi > /etc/fuse-file; mkdir /tmp/d; echo ok",
        ],
    );
    assert_ok_output(&o, "0\nok\n");
    let c = store.container("fuse-kept").expect("container");
    for p in ["etc/fuse-file", "tmp/d"] {
        assert_owned_by_caller(&c.upper, p);
    }
    assert_not_in_lowers(&store, "demo", "etc/fuse-file");
    assert!(
        !mounted(c.merged.to_str().expect("utf8")),
        "union left mounted"
    );
    let rm = as_user(&dir, &["rm", "fuse-kept"]);
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert!(!c.dir.exists());

    // --rm: nothing left.
    let o = as_user(
        &dir,
        &[
            "run",
            "--rm",
            "--name",
            "fuse-rm",
            "demo",
            "/bin/sh",
            "-c",
            "touch /x; echo $$",
        ],
    );
    assert_ok_output(&o, "1");
    assert!(
        store.container("fuse-rm").is_err(),
        "--rm left the container"
    );
    assert!(
        store.list_containers().expect("list").is_empty(),
        "containers left behind"
    );
}

#[test]
fn rootless_fuse_unusable_is_one_line() {
    let _serial = serial();
    let Some((dir, _keep)) = setup(false) else {
        return;
    };
    let _mode = DevFuseMode::set(0o600);
    let o = as_user(
        &dir,
        &["run", "--rm", "--name", "nofuse", "demo", "/bin/true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("strata: ") && err.contains("/dev/fuse"),
        "{err}"
    );
    assert!(err.contains("--driver kernel"), "{err}");
    let store = store::Store::open(Some(dir.join("store"))).expect("store");
    assert!(
        store.list_containers().expect("list").is_empty(),
        "a failed run left a container"
    );
    let leftovers = std::fs::read_dir(dir.join("store/containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "a failed run left files under containers/");
    // The suggested alternative works.
    let o = as_user(
        &dir,
        &["run", "--rm", "--driver", "kernel", "demo", "/bin/true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

/// `strata pull` as the unprivileged user: a registry on loopback (filled by skopeo as
/// root), the layers extracted rootless, the pulled image run.
#[test]
fn rootless_pull_and_run() {
    let _serial = serial();
    let Some((dir, _keep)) = setup(false) else {
        return;
    };
    if !fixtures::registry::TestRegistry::available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and this test needs docker-registry (scripts/deps)"
        );
        eprintln!("skipped: needs docker-registry (scripts/deps installs it)");
        return;
    }
    let reg = fixtures::registry::TestRegistry::start(&Default::default())
        .unwrap_or_else(|e| panic!("start the registry: {e:#}"));
    let layout = dir.join("layout");
    let spec = fixtures::images::demo_spec().expect("demo spec");
    fixtures::images::write_image(&spec, &layout, fixtures::images::ImageFormat::OciLayout)
        .expect("layout");
    let o = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{}/demo:rl", reg.addr))
        .output()
        .expect("skopeo");
    assert!(o.status.success(), "{}", show(&o));
    let reference = format!("{}/demo:rl", reg.addr);
    let o = as_user(&dir, &["pull", "-q", "--tls-verify=false", &reference]);
    assert!(o.status.success(), "{}", show(&o));
    let o = as_user(
        &dir,
        &[
            "run",
            "--rm",
            "--driver",
            "kernel",
            &reference,
            "/bin/sh",
            "-c",
            "echo pulled $(id -u)",
        ],
    );
    assert_ok_output(&o, "pulled 0");
}
