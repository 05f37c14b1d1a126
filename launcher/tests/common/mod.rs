//! Shared setup for the runtime's integration tests: a store holding the demo image,
//! the strata binary, and skip rules (root needed; never skipped under CI=true).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `strata` binary under test.
pub fn strata() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

/// Whether this test must be skipped for lack of root; prints why. Under CI=true a
/// missing prerequisite fails instead.
pub fn skip_unless_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs root and CI=true forbids skipping");
    }
    eprintln!("skipping: needs root");
    true
}

/// A store with the demo image imported as `demo:latest`, shared by the tests of one
/// binary (world-readable so the unprivileged test user can use its layers).
pub fn demo_store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    STORE.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("strata-launcher-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("creating the test store dir");
        let archive = base.join("demo.tar");
        fixtures::images::build_demo_image(&archive, fixtures::images::ImageFormat::DockerArchive)
            .expect("building the demo image");
        let root = base.join("store");
        let store = store::Store::open(Some(root.clone())).expect("opening the store");
        store::import::import(&store, &archive, Some("demo:latest"))
            .expect("importing the demo image");
        root
    })
}

/// Runs `strata --root <store> ARGS`.
pub fn run_strata(root: &Path, args: &[&str]) -> Output {
    Command::new(strata())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("running strata")
}

/// Stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A one-line summary of an output for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
