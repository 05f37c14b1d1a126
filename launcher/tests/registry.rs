//! `strata pull`, `login`, `logout` against a real registry (Debian's docker-registry on
//! a loopback port, started and stopped by each test), filled by skopeo: TLS with a CA
//! made in the test and htpasswd users, plain HTTP behind `--tls-verify=false`,
//! layers not fetched twice, an interrupted download resumed, corrupt bytes refused
//! with nothing registered, multi-platform images, and errors that name the cause.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{show, stdout, strata};
use fixtures::registry::{RegistryOptions, TestRegistry};
use fixtures::token_issuer::Policy;
use serde_json::Value;

/// The registry, or `None` after saying why the test is skipped (never under CI=true).
fn registry_or_skip(opts: RegistryOptions) -> Option<TestRegistry> {
    let missing: Vec<&str> = [
        (TestRegistry::available(), "docker-registry"),
        (which("skopeo"), "skopeo"),
    ]
    .iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, n)| *n)
    .collect();
    if !missing.is_empty() {
        let why = format!("needs {} (scripts/deps installs them)", missing.join(", "));
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and this test {why}"
        );
        eprintln!("skipped: this test {why}");
        return None;
    }
    Some(TestRegistry::start(&opts).unwrap_or_else(|e| panic!("start the registry: {e:#}")))
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A test's private world: a store, an auth file, a HOME without docker config.
struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    fn auth_file(&self) -> PathBuf {
        self.tmp.path().join("auth/auth.json")
    }

    /// Runs `strata --root STORE ARGS` with `stdin` fed in.
    fn strata_in(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(strata())
            .arg("--root")
            .arg(self.store())
            .args(args)
            .env("REGISTRY_AUTH_FILE", self.auth_file())
            .env("HOME", self.tmp.path())
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run strata");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("wait for strata")
    }

    fn strata(&self, args: &[&str]) -> Output {
        self.strata_in(args, "")
    }

    /// The tags `strata image ls` shows.
    fn images(&self) -> String {
        let o = self.strata(&["image", "ls"]);
        assert!(o.status.success(), "{}", show(&o));
        stdout(&o)
    }
}

/// The demo image as an OCI layout under `dir`.
fn demo_layout(dir: &Path) -> PathBuf {
    let spec = fixtures::images::demo_spec().expect("demo spec");
    let out = dir.join("demo-layout");
    fixtures::images::write_image(&spec, &out, fixtures::images::ImageFormat::OciLayout)
        .expect("write the demo layout");
    out
}

/// `skopeo copy [--all] SRC docker://ADDR/REPO` with the registry's TLS flags.
fn skopeo_push(reg: &TestRegistry, src: &str, repo: &str, creds: Option<&str>, all: bool) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q"]);
    if all {
        cmd.arg("--all");
    }
    cmd.args(reg.skopeo_flags("dest"));
    if let Some(c) = creds {
        cmd.arg(format!("--dest-creds={c}"));
    }
    cmd.arg(src).arg(format!("docker://{}/{repo}", reg.addr));
    let o = cmd.output().expect("run skopeo");
    assert!(o.status.success(), "skopeo copy {src}: {}", show(&o));
}

/// The manifest the registry serves for `repo`, as skopeo reads it.
fn manifest(reg: &TestRegistry, repo: &str, creds: Option<&str>) -> Value {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]).args(reg.skopeo_flags(""));
    if let Some(c) = creds {
        cmd.arg(format!("--creds={c}"));
    }
    let o = cmd
        .arg(format!("docker://{}/{repo}", reg.addr))
        .output()
        .expect("run skopeo");
    assert!(o.status.success(), "skopeo inspect: {}", show(&o));
    serde_json::from_slice(&o.stdout).expect("manifest JSON")
}

fn config_hex(m: &Value) -> String {
    m["config"]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("config digest")
        .to_string()
}

fn assert_fails_with(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(125), "{}", show(o));
    let err = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {}", show(o));
    }
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("strata:") && !l.contains("warning"))
            .count(),
        1,
        "one error line: {}",
        show(o)
    );
}

#[test]
fn login_then_pull_over_tls_with_htpasswd() {
    let Some(reg) = registry_or_skip(RegistryOptions {
        tls: true,
        users: vec![("alice".into(), "s3cret-pw".into())],
        ..Default::default()
    }) else {
        return;
    };
    let w = World::new();
    let layout = demo_layout(w.tmp.path());
    skopeo_push(
        &reg,
        &format!("oci:{}", layout.display()),
        "demo:1",
        Some("alice:s3cret-pw"),
        false,
    );
    let want = config_hex(&manifest(&reg, "demo:1", Some("alice:s3cret-pw")));
    let reference = format!("{}/demo:1", reg.addr);
    let certs = reg
        .ca_dir
        .as_ref()
        .expect("TLS registry")
        .display()
        .to_string();
    let cert_dir = format!("--cert-dir={certs}");

    // Without credentials the registry says no, and nothing is registered.
    let o = w.strata(&["pull", &cert_dir, &reference]);
    assert_fails_with(&o, &[&reference, "unauthorized"]);
    assert_eq!(w.images().lines().count(), 1, "{}", w.images());

    // Without the CA the certificate is refused, naming the registry.
    let o = w.strata(&["pull", "--creds=alice:s3cret-pw", &reference]);
    assert_fails_with(&o, &[&reference, &reg.addr]);

    // A wrong password is refused and not stored.
    let o = w.strata_in(
        &[
            "login",
            &cert_dir,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr,
        ],
        "nope\n",
    );
    assert_fails_with(&o, &[&reg.addr, "unauthorized"]);
    assert!(!w.auth_file().exists());

    let o = w.strata_in(
        &[
            "login",
            &cert_dir,
            "-u",
            "alice",
            "--password-stdin",
            &reg.addr,
        ],
        "s3cret-pw\n",
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        !show(&o).contains("s3cret-pw"),
        "password printed: {}",
        show(&o)
    );
    let mode = std::fs::metadata(w.auth_file())
        .expect("auth.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let auth: Value =
        serde_json::from_slice(&std::fs::read(w.auth_file()).expect("read auth.json"))
            .expect("JSON");
    assert!(auth["auths"][&reg.addr]["auth"].is_string(), "{auth}");

    // podman's flags: --cert-dir, -q; the id on stdout.
    let o = w.strata(&["pull", "-q", &cert_dir, &reference]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), want);
    assert!(o.stderr.is_empty(), "-q printed: {}", show(&o));
    assert!(w.images().contains(&reference), "{}", w.images());

    // --creds overrides the stored credentials.
    let o = w.strata(&["pull", &cert_dir, "--creds=alice:wrong", &reference]);
    assert_fails_with(&o, &[&reference, "unauthorized"]);

    // Push with the stored credentials, then not after logout.
    let copy = format!("{}/copy:1", reg.addr);
    let o = w.strata(&["push", &cert_dir, &reference, &copy]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        config_hex(&manifest(&reg, "copy:1", Some("alice:s3cret-pw"))),
        want
    );

    let o = w.strata(&["logout", &reg.addr]);
    assert!(o.status.success(), "{}", show(&o));
    let o = w.strata(&["push", &cert_dir, &reference, &copy]);
    assert_fails_with(&o, &[&copy, "unauthorized"]);
    let auth: Value =
        serde_json::from_slice(&std::fs::read(w.auth_file()).expect("read auth.json"))
            .expect("JSON");
    assert!(auth["auths"].get(&reg.addr).is_none(), "{auth}");
    let o = w.strata(&["logout", &reg.addr]);
    assert_fails_with(&o, &["not logged into"]);
}

#[test]
fn plain_http_registry_and_layers_not_fetched_twice() {
    let Some(reg) = registry_or_skip(RegistryOptions::default()) else {
        return;
    };
    let w = World::new();
    let layout = demo_layout(w.tmp.path());
    skopeo_push(
        &reg,
        &format!("oci:{}", layout.display()),
        "lib/demo:v1",
        None,
        false,
    );
    let m = manifest(&reg, "lib/demo:v1", None);
    let layers = m["layers"].as_array().expect("layers").len();
    let reference = format!("{}/lib/demo:v1", reg.addr);

    // HTTPS is the default: a plain-HTTP registry is refused, naming the host.
    let o = w.strata(&["pull", &reference]);
    assert_fails_with(&o, &[&reference, &reg.addr]);

    let o = w.strata(&["pull", "--tls-verify=false", &reference]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), config_hex(&m));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: --tls-verify=false"), "{err}");
    assert_eq!(err.matches("Copying blob").count(), layers, "{err}");

    // Again: every layer is in the store, nothing is downloaded.
    let o = w.strata(&["pull", "--tls-verify=false", &reference]);
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("skipped: already in the store").count(),
        layers,
        "{err}"
    );

    // Another tag of the same image: the same id, both tags shown.
    skopeo_push(
        &reg,
        &format!("oci:{}", layout.display()),
        "other:2",
        None,
        false,
    );
    let other = format!("{}/other:2", reg.addr);
    let o = w.strata(&["pull", "--tls-verify=false", &other]);
    assert_eq!(stdout(&o).trim(), config_hex(&m), "{}", show(&o));
    let images = w.images();
    assert!(
        images.contains(&reference) && images.contains(&other),
        "{images}"
    );

    // The pulled image runs (as root: namespaces and mounts).
    if nix::unistd::geteuid().is_root() {
        let o = w.strata(&[
            "run",
            "--rm",
            "--driver",
            "kernel",
            &reference,
            "/bin/sh",
            "-c",
            "echo pulled",
        ]);
        assert_eq!(stdout(&o).trim(), "pulled", "{}", show(&o));
    }

    // The store records which blob is which layer, for push.
    let dist = w.store().join("distribution/diffid-by-digest/sha256");
    assert_eq!(
        std::fs::read_dir(&dist).map(|d| d.count()).unwrap_or(0),
        layers
    );
}

#[test]
fn interrupted_download_resumes_and_corrupt_bytes_are_refused() {
    let Some(reg) = registry_or_skip(RegistryOptions::default()) else {
        return;
    };
    let w = World::new();
    let layout = demo_layout(w.tmp.path());
    skopeo_push(
        &reg,
        &format!("oci:{}", layout.display()),
        "demo:1",
        None,
        false,
    );
    let m = manifest(&reg, "demo:1", None);
    let reference = format!("{}/demo:1", reg.addr);
    let biggest = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .expect("a layer")
        .clone();
    let digest = biggest["digest"].as_str().expect("digest").to_string();
    let hex = digest.trim_start_matches("sha256:").to_string();
    let bytes = std::fs::read(reg.blob_data(&digest)).expect("the registry's blob");
    let half = bytes.len() / 2;
    let downloads = w.store().join("tmp/downloads");

    // A first pull that stopped half way through the biggest layer.
    std::fs::create_dir_all(&downloads).expect("mkdir");
    std::fs::write(downloads.join(format!("{hex}.partial")), &bytes[..half]).expect("write");
    let o = w.strata(&["pull", "--tls-verify=false", &reference]);
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("resumed at {half} bytes")), "{err}");
    assert_eq!(stdout(&o).trim(), config_hex(&m));

    // A partial file with wrong bytes: the digest check refuses the blob, names it,
    // registers nothing and drops the bad bytes, so the next pull succeeds.
    let w2 = World::new();
    let downloads = w2.store().join("tmp/downloads");
    std::fs::create_dir_all(&downloads).expect("mkdir");
    std::fs::write(downloads.join(format!("{hex}.partial")), vec![0u8; half]).expect("write");
    let o = w2.strata(&["pull", "--tls-verify=false", &reference]);
    assert_fails_with(&o, &[&reference, "digest mismatch", &digest]);
    assert_eq!(w2.images().lines().count(), 1, "{}", w2.images());
    assert!(!downloads.join(format!("{hex}.partial")).exists());
    let o = w2.strata(&["pull", "--tls-verify=false", &reference]);
    assert!(o.status.success(), "{}", show(&o));

    // The registry itself serving bad bytes.
    let mut bad = bytes.clone();
    bad[half] ^= 0xff;
    std::fs::write(reg.blob_data(&digest), &bad).expect("corrupt the registry's blob");
    let w3 = World::new();
    let o = w3.strata(&["pull", "--tls-verify=false", &reference]);
    assert_fails_with(&o, &[&reference, "digest mismatch", &digest]);
    assert_eq!(w3.images().lines().count(), 1, "{}", w3.images());
    assert!(!w3.store().join("blobs/sha256").join(&hex).exists());
}

#[test]
fn multi_platform_images_and_errors_that_name_the_cause() {
    let Some(reg) = registry_or_skip(RegistryOptions::default()) else {
        return;
    };
    let w = World::new();
    let spec = fixtures::images::demo_spec().expect("demo spec");
    let layout = w.tmp.path().join("multi");
    let configs =
        fixtures::images::write_multi_arch_layout(&spec, &layout, "multi", &["arm64", "amd64"])
            .expect("write the layout");
    skopeo_push(
        &reg,
        &format!("oci:{}:multi", layout.display()),
        "multi:1",
        None,
        true,
    );
    let reference = format!("{}/multi:1", reg.addr);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();

    // This machine's platform by default (the tests run on amd64), any by --platform.
    let host = if cfg!(target_arch = "x86_64") {
        &configs[1]
    } else {
        &configs[0]
    };
    let o = w.strata(&["pull", "--tls-verify=false", &reference]);
    assert_eq!(stdout(&o).trim(), hex(host), "{}", show(&o));
    let o = w.strata(&[
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
        &reference,
    ]);
    assert_eq!(stdout(&o).trim(), hex(&configs[0]), "{}", show(&o));
    let o = w.strata(&[
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/s390x",
        &reference,
    ]);
    assert_fails_with(&o, &[&reference, "linux/s390x", "linux/arm64, linux/amd64"]);

    // By digest: the manifest list's digest pulls the platform's image too.
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo");
    let list_digest = stdout(&o).trim().to_string();
    let by_digest = format!("{}/multi@{list_digest}", reg.addr);
    let o = w.strata(&["pull", "--tls-verify=false", &by_digest]);
    assert_eq!(stdout(&o).trim(), hex(host), "{}", show(&o));

    let missing = format!("{}/multi:nope", reg.addr);
    let o = w.strata(&["pull", "--tls-verify=false", &missing]);
    assert_fails_with(&o, &[&missing, "not found"]);
    let o = w.strata(&["pull", "Not/A/Reference"]);
    assert_fails_with(&o, &["Not/A/Reference", "invalid reference"]);
    let o = w.strata(&["pull", "--platform", "linux", &reference]);
    assert_fails_with(&o, &["--platform"]);
}

/// The digest skopeo reports for `reference`'s manifest.
fn manifest_digest(reg: &TestRegistry, repo: &str) -> String {
    let o = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}"])
        .args(reg.skopeo_flags(""))
        .arg(format!("docker://{}/{repo}", reg.addr))
        .output()
        .expect("run skopeo");
    assert!(o.status.success(), "skopeo inspect: {}", show(&o));
    stdout(&o).trim().to_string()
}

fn layer_digests(m: &Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn push_round_trips_byte_for_byte_and_mounts_across_repositories() {
    let Some(reg) = registry_or_skip(RegistryOptions::default()) else {
        return;
    };
    let w = World::new();
    let layout = demo_layout(w.tmp.path());
    skopeo_push(
        &reg,
        &format!("oci:{}", layout.display()),
        "demo:1",
        None,
        false,
    );
    let original = manifest_digest(&reg, "demo:1");
    let pulled = format!("{}/demo:1", reg.addr);
    let o = w.strata(&["pull", "-q", "--tls-verify=false", &pulled]);
    assert!(o.status.success(), "{}", show(&o));

    // A pulled image goes back as it came: the same manifest bytes, its layers mounted
    // from the repository it was pulled from.
    let digestfile = w.tmp.path().join("digest");
    let copy = format!("{}/copy:1", reg.addr);
    let o = w.strata(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        &digestfile.display().to_string(),
        &pulled,
        &format!("docker://{copy}"),
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let layers = layer_digests(&manifest(&reg, "demo:1", None)).len();
    assert_eq!(
        err.matches(&format!("mounted from {}/demo", reg.addr))
            .count(),
        layers,
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&digestfile).expect("digestfile"),
        original
    );
    assert_eq!(manifest_digest(&reg, "copy:1"), original);
    // Again: the registry has everything.
    let o = w.strata(&["push", "--tls-verify=false", &pulled, &copy]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("skipped: already exists").count(),
        layers + 1,
        "{}",
        show(&o)
    );

    // An image strata imported (one plain-tar layer among them) and one it made: an
    // OCI manifest skopeo copies (checking every digest), pulled back to the same id.
    let archive = w.tmp.path().join("demo.tar");
    fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
        .expect("demo archive");
    let o = w.strata(&[
        "image",
        "import",
        &archive.display().to_string(),
        "--tag",
        "mine:1",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let rootfs = w.tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).expect("mkdir");
    std::fs::write(rootfs.join("etc/made-here"), "by strata\n").expect("write");
    let o = w.strata(&[
        "image",
        "create",
        "--from-dir",
        &rootfs.display().to_string(),
        "--parent",
        "mine:1",
        "made:1",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let id = |r: &str| {
        let o = w.strata(&["image", "inspect", r]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", show(&o)));
        v["id"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| panic!("no id: {v}"))
    };
    for (image, repo) in [
        ("mine:1", "mine:1"),
        ("made:1", "made:1"),
        ("made:1", "made-again:1"),
    ] {
        let dest = format!("{}/{repo}", reg.addr);
        let o = w.strata(&["push", "--tls-verify=false", image, &dest]);
        assert!(o.status.success(), "push {image}: {}", show(&o));
        let out = w.tmp.path().join(format!("copied-{repo}"));
        let o = Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{dest}"))
            .arg(format!("oci:{}:x", out.display()))
            .output()
            .expect("skopeo");
        assert!(o.status.success(), "skopeo copy {dest}: {}", show(&o));
        assert_eq!(config_hex(&manifest(&reg, repo, None)), id(image));
        let fresh = World::new();
        let o = fresh.strata(&["pull", "-q", "--tls-verify=false", &dest]);
        assert_eq!(stdout(&o).trim(), id(image), "{}", show(&o));
    }
    // The layer strata made is compressed once: both pushes name the same blob.
    assert_eq!(
        layer_digests(&manifest(&reg, "made:1", None)),
        layer_digests(&manifest(&reg, "made-again:1", None))
    );

    let o = w.strata(&["push", "--tls-verify=false", "no-such:1", &copy]);
    assert_fails_with(&o, &["no-such:1"]);
    let o = w.strata(&[
        "push",
        "--tls-verify=false",
        "mine:1",
        &format!("{}/x@{original}", reg.addr),
    ]);
    assert_fails_with(&o, &["needs a tag"]);
}

#[test]
fn bearer_token_flow_with_tokens_cached_per_scope() {
    let Some(reg) = registry_or_skip(RegistryOptions {
        token: Some(Policy {
            users: vec![("bob".into(), "t0ken-pw".into())],
            anonymous_pull: true,
        }),
        ..Default::default()
    }) else {
        return;
    };
    let issuer = reg.issuer.as_ref().expect("token mode");
    let w = World::new();
    let layout = demo_layout(w.tmp.path());
    skopeo_push(
        &reg,
        &format!("oci:{}", layout.display()),
        "demo:1",
        Some("bob:t0ken-pw"),
        false,
    );
    let m = manifest(&reg, "demo:1", Some("bob:t0ken-pw"));
    let reference = format!("{}/demo:1", reg.addr);

    // Anonymous pull: one token (pull scope) serves the manifest, config and every
    // layer; a second is allowed for the plain-HTTP probe's fresh client.
    let before = issuer.issued();
    let o = w.strata(&["pull", "-q", "--tls-verify=false", &reference]);
    assert_eq!(stdout(&o).trim(), config_hex(&m), "{}", show(&o));
    let used = issuer.issued() - before;
    assert!((1..=2).contains(&used), "{used} tokens for one pull");

    // Anonymous callers get no push right: refused, naming the destination.
    let copy = format!("{}/copy:1", reg.addr);
    let o = w.strata(&["push", "--tls-verify=false", &reference, &copy]);
    assert_fails_with(&o, &[&copy, "unauthorized"]);

    // The token endpoint refuses a wrong password; the right one is stored and used.
    let o = w.strata_in(
        &[
            "login",
            "--tls-verify=false",
            "-u",
            "bob",
            "--password-stdin",
            &reg.addr,
        ],
        "wrong\n",
    );
    assert_fails_with(&o, &[&reg.addr, "unauthorized"]);
    let o = w.strata_in(
        &[
            "login",
            "--tls-verify=false",
            "-u",
            "bob",
            "--password-stdin",
            &reg.addr,
        ],
        "t0ken-pw\n",
    );
    assert!(o.status.success(), "{}", show(&o));
    let o = w.strata(&["push", "--tls-verify=false", &reference, &copy]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        manifest_digest_creds(&reg, "copy:1", "bob:t0ken-pw"),
        manifest_digest_creds(&reg, "demo:1", "bob:t0ken-pw")
    );
}

fn manifest_digest_creds(reg: &TestRegistry, repo: &str, creds: &str) -> String {
    let o = Command::new("skopeo")
        .args([
            "inspect",
            "--format",
            "{{.Digest}}",
            &format!("--creds={creds}"),
        ])
        .args(reg.skopeo_flags(""))
        .arg(format!("docker://{}/{repo}", reg.addr))
        .output()
        .expect("run skopeo");
    assert!(o.status.success(), "skopeo inspect: {}", show(&o));
    stdout(&o).trim().to_string()
}

/// podman (containers/image, the engine users compare with) pulls what strata pushed:
/// an image strata imported, with a layer it made itself.
#[test]
fn podman_pulls_what_strata_pushed() {
    if common::skip_unless_root() {
        return;
    }
    if !which("podman") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and this test needs podman (scripts/deps)"
        );
        eprintln!("skipped: needs podman (scripts/deps installs it)");
        return;
    }
    let Some(reg) = registry_or_skip(RegistryOptions::default()) else {
        return;
    };
    let w = World::new();
    let archive = w.tmp.path().join("demo.tar");
    fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
        .expect("demo archive");
    let o = w.strata(&[
        "image",
        "import",
        &archive.display().to_string(),
        "--tag",
        "mine:1",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let rootfs = w.tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).expect("mkdir");
    std::fs::write(rootfs.join("etc/made-here"), "by strata\n").expect("write");
    let o = w.strata(&[
        "image",
        "create",
        "--from-dir",
        &rootfs.display().to_string(),
        "--parent",
        "mine:1",
        "made:1",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let dest = format!("{}/made:1", reg.addr);
    let o = w.strata(&["push", "-q", "--tls-verify=false", "made:1", &dest]);
    assert!(o.status.success(), "{}", show(&o));
    let o = w.strata(&["image", "inspect", "made:1"]);
    let id = serde_json::from_slice::<Value>(&o.stdout).expect("inspect JSON")["id"]
        .as_str()
        .expect("id")
        .to_string();

    let pod = w.tmp.path().join("podman");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(pod.join("root"))
            .arg("--runroot")
            .arg(pod.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("run podman")
    };
    let o = podman(&["pull", "-q", "--tls-verify=false", &dest]);
    assert!(o.status.success(), "podman pull: {}", show(&o));
    assert_eq!(stdout(&o).trim(), id, "{}", show(&o));
    let o = podman(&["image", "inspect", "--format", "{{.RootFS.Layers}}", &dest]);
    assert!(stdout(&o).matches("sha256:").count() >= 2, "{}", show(&o));
    // podman's rm leaves its storage mounted nowhere; the dir goes with the World.
    let _ = podman(&["rmi", "-a", "-f"]);
}
