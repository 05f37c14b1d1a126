//! SIGKILL the real `strata` at a random moment of `image import`, `commit`,
//! `image export`, `export` and `pull` (from a loopback docker-registry), then check
//! that the store registers nothing half-made (every image's config, blobs and layer
//! dirs exist and verify; every layer dir and blob under its final name is complete;
//! every tag names an image), that the same command run again finishes (in bounded
//! time: the lock was released) and leaves no staging behind (`tmp/` but
//! `tmp/downloads`, `.tmp-*` files), and that an export is absent or complete.
//!
//! Delays are drawn from a seeded generator over the length of an uninterrupted run.
//! `STRATA_KILL_SEEDS` (default 20) sets how many seeds each operation gets;
//! `STRATA_KILL_SEED=N` replays one. A failure names its operation and seed.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::strata;
use fixtures::images::{Compression, Entry, ImageFormat, ImageSpec, LayerSpec, write_image};
use store::Store;

/// How long a command may take once restarted before the test calls it hung.
const RERUN_LIMIT: Duration = Duration::from_secs(180);

/// splitmix64: small, seedable, good enough to spread kill times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// The seeds to run: `STRATA_KILL_SEED` alone, else `0..STRATA_KILL_SEEDS` (20).
fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("STRATA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![s];
    }
    let n = std::env::var("STRATA_KILL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20u64);
    (0..n).collect()
}

/// An image big enough that each operation takes a while: a gzip layer of random
/// bytes, a plain layer of many small files, a plain layer of random bytes.
fn big_spec(tag: &str) -> ImageSpec {
    let mut rng = Rng(7);
    let file = |path: String, data: Vec<u8>| Entry::File {
        path,
        mode: 0o644,
        data,
    };
    let layer = |entries, compression| LayerSpec {
        entries,
        compression,
        created_by: "kill test".into(),
    };
    let mut small = vec![Entry::Dir {
        path: "many".into(),
        mode: 0o755,
    }];
    for i in 0..400 {
        small.push(file(format!("many/f{i}"), rng.bytes(2048)));
    }
    ImageSpec {
        layers: vec![
            layer(
                vec![
                    Entry::Dir {
                        path: "bin".into(),
                        mode: 0o755,
                    },
                    file("bin/blob1".into(), rng.bytes(6 << 20)),
                ],
                Compression::Gzip,
            ),
            layer(small, Compression::None),
            layer(
                vec![file("blob3".into(), rng.bytes(6 << 20))],
                Compression::None,
            ),
        ],
        config: serde_json::json!({"Cmd": ["/bin/sh"]}),
        tag: Some(tag.into()),
    }
}

/// `strata --root ROOT ARGS` with a private HOME, output to files under `logs`.
fn command(root: &Path, logs: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(strata());
    c.arg("--root")
        .arg(root)
        .args(args)
        .env("HOME", logs)
        .env("REGISTRY_AUTH_FILE", logs.join("auth.json"))
        .env_remove("DOCKER_CONFIG")
        .env_remove("STRATA_MAX_LAYER_SIZE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Runs to completion within [`RERUN_LIMIT`] (else kills it and fails: a lock left
/// held, a hang); returns how long it took.
fn run_to_end(root: &Path, logs: &Path, args: &[&str], what: &str) -> Result<Duration, String> {
    let err = logs.join("stderr");
    let f = fs::File::create(&err).map_err(|e| format!("create {}: {e}", err.display()))?;
    let start = Instant::now();
    let mut child = command(root, logs, args)
        .stderr(f)
        .spawn()
        .map_err(|e| format!("spawn strata: {e}"))?;
    loop {
        if let Some(st) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            let took = start.elapsed();
            if st.success() {
                return Ok(took);
            }
            let mut msg = String::new();
            let _ = fs::File::open(&err).and_then(|mut f| f.read_to_string(&mut msg));
            return Err(format!("{what}: strata {args:?} failed ({st}): {msg}"));
        }
        if start.elapsed() > RERUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{what}: strata {args:?} still running after {RERUN_LIMIT:?} (a lock left held?)"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts the command and SIGKILLs it after `delay`; whether it was still running.
fn run_killed(root: &Path, logs: &Path, args: &[&str], delay: Duration) -> bool {
    let mut child = command(root, logs, args).spawn().expect("spawn strata");
    let deadline = Instant::now() + delay;
    loop {
        if child.try_wait().expect("wait for strata").is_some() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_micros(500)));
    }
    let killed = child.kill().is_ok();
    let st = child.wait().expect("reap strata");
    killed && st.code().is_none()
}

fn sha256_file(p: &Path) -> Result<String, String> {
    let f = fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
    store::digest::HashingReader::new(f)
        .finish()
        .map(|(d, _)| d)
        .map_err(|e| format!("read {}: {e}", p.display()))
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The store's invariants: nothing half-made is registered or under a final name.
/// With `settled` (after a command ran to the end) no staging may be left either.
fn check_store(root: &Path, settled: bool) -> Result<(), String> {
    let store = Store::open(Some(root.to_path_buf())).map_err(|e| e.to_string())?;
    let ids = store.image_ids().map_err(|e| e.to_string())?;
    for id in &ids {
        let img = store
            .image_by_id(id)
            .map_err(|e| format!("image {id} registered but unreadable: {e}"))?;
        let cfg = store
            .blob_path(&img.config_digest)
            .map_err(|e| e.to_string())?;
        if sha256_file(&cfg)? != img.config_digest {
            return Err(format!("image {id}: config blob does not verify"));
        }
        for l in &img.layers {
            let blob = store.blob_path(&l.blob_digest).map_err(|e| e.to_string())?;
            if !blob.is_file() {
                return Err(format!("image {id}: layer blob {} missing", l.blob_digest));
            }
            let dir = store.layer_dir(&l.chain_id).map_err(|e| e.to_string())?;
            if !dir.join("diff").is_dir() || !dir.join("layer.json").is_file() {
                return Err(format!(
                    "image {id}: layer dir {} incomplete",
                    dir.display()
                ));
            }
        }
    }
    for (tag, id) in store.tags().map_err(|e| e.to_string())? {
        if !ids.contains(&id) {
            return Err(format!(
                "tag {tag} names image {id}, which is not registered"
            ));
        }
    }
    for name in names(&root.join("layers")) {
        let d = root.join("layers").join(&name);
        if !d.join("diff").is_dir() || !d.join("layer.json").is_file() {
            return Err(format!("layer dir {} is half-made", d.display()));
        }
    }
    for name in names(&root.join("blobs/sha256")) {
        let p = root.join("blobs/sha256").join(&name);
        if store::digest::is_hex64(&name) && sha256_file(&p)? != format!("sha256:{name}") {
            return Err(format!("blob {} does not match its name", p.display()));
        }
    }
    if settled {
        let mut left: Vec<String> = names(&root.join("tmp"))
            .into_iter()
            .filter(|n| n != "downloads")
            .map(|n| format!("tmp/{n}"))
            .collect();
        left.extend(
            names(&root.join("tmp/downloads"))
                .into_iter()
                .map(|n| format!("tmp/downloads/{n}")),
        );
        for d in ["blobs/sha256", "images", ""] {
            left.extend(
                names(&root.join(d))
                    .into_iter()
                    .filter(|n| n.starts_with(".tmp-"))
                    .map(|n| format!("{d}/{n}")),
            );
        }
        if !left.is_empty() {
            return Err(format!("staging left after a completed run: {left:?}"));
        }
    }
    Ok(())
}

/// One operation under test.
struct Op<'a> {
    name: &'a str,
    /// Sets up a fresh root for a seed (or reuses one); returns the root.
    prepare: &'a dyn Fn(u64) -> PathBuf,
    /// The command line for a seed.
    args: &'a dyn Fn(u64) -> Vec<String>,
    /// Checks the command's effect once it ran to the end (`Ok` or why not), and,
    /// with `false`, what a killed run may have left (an export absent or complete).
    outcome: &'a dyn Fn(u64, bool) -> Result<(), String>,
}

/// Calibrates on one uninterrupted run, then kills each seed's run at a random point
/// of that span (narrowed each time a run finishes before its kill), reruns it and
/// checks the store.
fn kill_and_rerun(op: &Op<'_>, logs: &Path) {
    let calib = u64::MAX;
    let root = (op.prepare)(calib);
    let args = (op.args)(calib);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    // Twice, the second (warm caches) timed: kill times spread over a typical run.
    let mut span = Duration::ZERO;
    for _ in 0..2 {
        (op.prepare)(calib);
        span = run_to_end(&root, logs, &argv, op.name).unwrap_or_else(|e| panic!("{e}"));
        (op.outcome)(calib, true).unwrap_or_else(|e| panic!("{}: calibration run: {e}", op.name));
    }
    let mut span_us = (span.as_micros() as u64).max(1000) * 11 / 10;
    let mut killed = 0;
    let all = seeds();
    for &seed in &all {
        let root = (op.prepare)(seed);
        let args = (op.args)(seed);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let delay = Duration::from_micros(Rng(seed ^ 0x5eed).next() % span_us);
        let result = (|| {
            if run_killed(&root, logs, &argv, delay) {
                killed += 1;
            } else {
                // It finished first: runs are quicker than the calibration's (a loaded
                // machine makes one run slow), so later kills aim earlier.
                span_us = (span_us * 3 / 4).max(200);
            }
            check_store(&root, false).map_err(|e| format!("after the kill: {e}"))?;
            (op.outcome)(seed, false).map_err(|e| format!("after the kill: {e}"))?;
            run_to_end(&root, logs, &argv, op.name).map_err(|e| format!("rerun: {e}"))?;
            check_store(&root, true).map_err(|e| format!("after the rerun: {e}"))?;
            (op.outcome)(seed, true).map_err(|e| format!("after the rerun: {e}"))
        })();
        if let Err(e) = result {
            panic!(
                "{} killed after {delay:?} (seed {seed}; replay with STRATA_KILL_SEED={seed}): {e}",
                op.name
            );
        }
    }
    eprintln!(
        "{}: {} seeds over {:?}, {killed} killed mid-way",
        op.name,
        all.len(),
        span
    );
    if all.len() >= 8 {
        assert!(
            killed * 4 >= all.len(),
            "{}: only {killed} of {} runs were killed before they finished",
            op.name,
            all.len()
        );
    }
}

/// A store root per seed under `base` (fresh each time).
fn fresh_root(base: &Path, seed: u64) -> PathBuf {
    let r = base.join(format!("root-{seed}"));
    let _ = fs::remove_dir_all(&r);
    // The previous seed's root is no longer needed.
    for n in names(base) {
        if n.starts_with("root-") && n != format!("root-{seed}") {
            let _ = fs::remove_dir_all(base.join(n));
        }
    }
    r
}

fn tag_id(root: &Path, tag: &str) -> Result<String, String> {
    let store = Store::open(Some(root.to_path_buf())).map_err(|e| e.to_string())?;
    store
        .resolve_image(tag)
        .map(|i| i.id)
        .map_err(|e| format!("{tag}: {e}"))
}

#[test]
fn killed_import_leaves_the_store_consistent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let archive = write_image(
        &big_spec("big:1"),
        &base.join("big.tar"),
        ImageFormat::DockerArchive,
    )
    .expect("write the image");
    let a = archive.display().to_string();
    let last = std::cell::RefCell::new(PathBuf::new());
    let prepare = |seed| {
        let r = fresh_root(base, seed);
        *last.borrow_mut() = r.clone();
        r
    };
    let args = |_| vec!["image".to_string(), "import".into(), a.clone()];
    let outcome = |_, done: bool| {
        if done {
            tag_id(&last.borrow(), "big:1").map(|_| ())
        } else {
            Ok(())
        }
    };
    let logs = base.join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    kill_and_rerun(
        &Op {
            name: "image import",
            prepare: &prepare,
            args: &args,
            outcome: &outcome,
        },
        &logs,
    );
}

/// A store holding the big image, imported through the library.
fn store_with_big(base: &Path) -> (PathBuf, Store) {
    let archive = write_image(
        &big_spec("big:1"),
        &base.join("big.tar"),
        ImageFormat::DockerArchive,
    )
    .expect("write the image");
    let root = base.join("store");
    let store = Store::open(Some(root.clone())).expect("open the store");
    store::import::import(&store, &archive, None).expect("import the image");
    (root, store)
}

#[test]
fn killed_commit_leaves_the_store_consistent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let (root, store) = store_with_big(base);
    let img = store.resolve_image("big:1").expect("image");
    let c = store
        .create_container(&img, Some("kc"), "")
        .expect("create a container");
    let mut rng = Rng(11);
    fs::create_dir_all(c.upper.join("data")).expect("upper dir");
    for i in 0..4 {
        fs::write(c.upper.join(format!("data/r{i}")), rng.bytes(2 << 20)).expect("upper file");
    }
    // Each seed changes the upper, so each commit makes a new layer.
    let prepare = |seed: u64| {
        fs::write(c.upper.join("seed"), seed.to_string()).expect("seed file");
        root.clone()
    };
    let args = |seed: u64| {
        vec![
            "commit".to_string(),
            "kc".into(),
            format!("committed:{seed}"),
        ]
    };
    let outcome = |seed: u64, done: bool| {
        let tag = format!("committed:{seed}");
        if !done {
            return Ok(());
        }
        let s = Store::open(Some(root.clone())).map_err(|e| e.to_string())?;
        let img = s.resolve_image(&tag).map_err(|e| format!("{tag}: {e}"))?;
        let top = s.lower_dirs(&img).map_err(|e| e.to_string())?[0].join("seed");
        let got = fs::read_to_string(&top).map_err(|e| format!("{}: {e}", top.display()))?;
        if got != seed.to_string() {
            return Err(format!("{tag}: committed layer holds seed {got}"));
        }
        Ok(())
    };
    let logs = base.join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    kill_and_rerun(
        &Op {
            name: "commit",
            prepare: &prepare,
            args: &args,
            outcome: &outcome,
        },
        &logs,
    );
}

/// `strata image export` and `strata export`: the output is absent or byte-identical
/// to an export that was not interrupted.
#[test]
fn killed_exports_leave_nothing_partial() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let (root, store) = store_with_big(base);
    let img = store.resolve_image("big:1").expect("image");
    let c = store
        .create_container(&img, Some("kx"), "")
        .expect("create a container");
    fs::write(c.upper.join("added"), "x\n").expect("upper file");
    let out = base.join("out");
    fs::create_dir_all(&out).expect("out dir");
    let logs = base.join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    for (name, cmd) in [
        (
            "image export (oci-archive)",
            vec!["image", "export", "big:1", "-o"],
        ),
        (
            "image export (docker-archive)",
            vec![
                "image",
                "export",
                "--format",
                "docker-archive",
                "big:1",
                "-o",
            ],
        ),
        ("export (container)", vec!["export", "kx", "-o"]),
    ] {
        let reference = std::cell::RefCell::new(None::<Vec<u8>>);
        let file =
            |seed: u64| out.join(format!("{}-{seed}.tar", name.replace([' ', '(', ')'], "")));
        let prepare = |seed: u64| {
            let _ = fs::remove_file(file(seed));
            root.clone()
        };
        let args = |seed: u64| {
            let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            a.push(file(seed).display().to_string());
            a
        };
        let outcome = |seed: u64, done: bool| {
            let f = file(seed);
            let data = match fs::read(&f) {
                Ok(d) => d,
                Err(e) if !done && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(format!("{}: {e}", f.display())),
            };
            let mut r = reference.borrow_mut();
            match r.as_ref() {
                None => *r = Some(data),
                Some(want) if *want == data => {}
                Some(want) => {
                    return Err(format!(
                        "{} is {} bytes, an uninterrupted export {} (partial or different)",
                        f.display(),
                        data.len(),
                        want.len()
                    ));
                }
            }
            Ok(())
        };
        kill_and_rerun(
            &Op {
                name,
                prepare: &prepare,
                args: &args,
                outcome: &outcome,
            },
            &logs,
        );
        let stray: Vec<String> = names(&out)
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        // Exports are written as an unnamed O_TMPFILE where the filesystem has it:
        // then a kill leaves nothing beside the output.
        if tmpfile_supported(&out) {
            assert!(stray.is_empty(), "{name}: killed exports left {stray:?}");
        } else if !stray.is_empty() {
            eprintln!(
                "{name}: no O_TMPFILE in {}: killed exports left {} temp files",
                out.display(),
                stray.len()
            );
        }
    }
    // The oci-archive export imports back as the same image.
    let back = Store::open(Some(base.join("back"))).expect("open");
    let imgs = store::import::import(&back, &out.join("imageexportoci-archive-0.tar"), None)
        .expect("import the export");
    assert_eq!(imgs[0].id, img.id);
}

/// Whether `dir`'s filesystem can make unnamed files (O_TMPFILE).
fn tmpfile_supported(dir: &Path) -> bool {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    open(
        dir,
        OFlag::O_TMPFILE | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o600),
    )
    .is_ok()
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn killed_pull_leaves_the_store_consistent() {
    use fixtures::registry::{RegistryOptions, TestRegistry};
    if !TestRegistry::available() || !which("skopeo") {
        let why = "needs docker-registry and skopeo (scripts/deps installs them)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and this test {why}"
        );
        eprintln!("skipped: this test {why}");
        return;
    }
    let reg = TestRegistry::start(&RegistryOptions::default())
        .unwrap_or_else(|e| panic!("start the registry: {e:#}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let layout = write_image(
        &big_spec("big:1"),
        &base.join("layout"),
        ImageFormat::OciLayout,
    )
    .expect("write the image");
    let o = Command::new("skopeo")
        .args(["copy", "-q"])
        .args(reg.skopeo_flags("dest"))
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{}/kill/big:1", reg.addr))
        .output()
        .expect("run skopeo");
    assert!(o.status.success(), "skopeo copy: {}", common::show(&o));
    let reference = format!("{}/kill/big:1", reg.addr);
    let last = std::cell::RefCell::new(PathBuf::new());
    let prepare = |seed| {
        let r = fresh_root(base, seed);
        *last.borrow_mut() = r.clone();
        r
    };
    let args = |_| {
        vec![
            "pull".to_string(),
            "--tls-verify=false".into(),
            reference.clone(),
        ]
    };
    let outcome = |_, done: bool| {
        if done {
            tag_id(&last.borrow(), &reference).map(|_| ())
        } else {
            Ok(())
        }
    };
    let logs = base.join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    kill_and_rerun(
        &Op {
            name: "pull",
            prepare: &prepare,
            args: &args,
            outcome: &outcome,
        },
        &logs,
    );
}
