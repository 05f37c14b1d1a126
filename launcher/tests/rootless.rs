//! `strata run` as an unprivileged user created by the test setup (useradd), with the
//! single mapping and with /etc/subuid + /etc/subgid (newuidmap/newgidmap). FUSE tests
//! need /dev/fuse usable by the user: the setup makes it 0666 as Debian hosts have it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const USER: &str = "strata-rl";

/// Creates the user (idempotent) and a world-accessible work dir with copies of the
/// binaries and the demo image imported into the user's own store.
fn setup(subids: bool) -> Option<(PathBuf, tempfile::TempDir)> {
    if skip_unless_root() {
        return None;
    }
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let st = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", USER])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd failed");
    }
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

fn as_user(dir: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(dir.join("strata"))
        .arg("--root")
        .arg(dir.join("store"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runuser")
}

#[test]
fn rootless_single_and_full_mapping() {
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
    let md = std::fs::metadata(c.upper.join("tmp/mine")).expect("file in upper");
    let uid = std::os::unix::fs::MetadataExt::uid(&md);
    let caller = nix::unistd::User::from_name(USER)
        .ok()
        .flatten()
        .expect("user")
        .uid
        .as_raw();
    assert_eq!(
        uid, caller,
        "file created as 0 inside must belong to the caller outside"
    );
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
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o), "2\nchowned\n", "{}", show(&o));
}
