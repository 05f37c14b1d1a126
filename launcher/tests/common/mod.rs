//! Shared setup for the runtime's integration tests: a store holding the demo image,
//! the strata binary, and skip rules (root needed; never skipped under CI=true).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
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

/// Name prefix of the per-process test stores under the temp dir.
const STORE_PREFIX: &str = "strata-launcher-tests-";

/// Removes the test stores (temp dirs named `PREFIX<pid>`) of test processes that
/// are gone.
pub fn remove_stale_stores(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A store with the demo image imported as `demo:latest`, shared by the tests of one
/// binary (world-readable so the unprivileged test user can use its layers).
pub fn demo_store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    STORE.get_or_init(|| {
        remove_stale_stores(STORE_PREFIX);
        let base = std::env::temp_dir().join(format!("{STORE_PREFIX}{}", std::process::id()));
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

/// Whether every one of `tools` is on PATH. If not, the test is skipped with the reason
/// printed, except under CI=true, where it fails (`scripts/deps` installs them).
pub fn have_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and this test needs {missing:?} (scripts/deps installs them)"
    );
    eprintln!("skipped: needs {missing:?} (scripts/deps installs them)");
    false
}

/// Makes the unprivileged user `name` (`useradd -m`) unless it exists.
pub fn ensure_user(name: &str) {
    let exists = Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let st = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name} failed");
    }
}

/// `DIR/strata --root DIR/store ARGS` run by `user` in `dir` (a world-accessible work
/// dir holding a copy of the binary).
pub fn strata_as(user: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(dir.join("strata"))
        .arg("--root")
        .arg(dir.join("store"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runuser")
}

/// Asserts that `o` exited 0 with `want` on stdout (surrounding whitespace ignored),
/// showing the whole output otherwise.
pub fn assert_ok_output(o: &Output, want: &str) {
    assert_eq!(o.status.code(), Some(0), "{}", show(o));
    assert_eq!(stdout(o).trim(), want.trim(), "{}", show(o));
}

/// Runs `strata run --rm --driver kernel ARGS` on the shared demo store.
pub fn run_kernel(args: &[&str]) -> Output {
    let mut all = vec!["run", "--rm", "--driver", "kernel"];
    all.extend_from_slice(args);
    run_strata(demo_store(), &all)
}

/// A `strata` started in the background with stdout piped, for tests that act while
/// the container runs. Killed (SIGKILL) and reaped on drop if still running.
pub struct Running {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Running {
    /// Starts `strata --root <root> ARGS`.
    pub fn start(root: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(strata())
            .arg("--root")
            .arg(root)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning strata");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Running { child, out }
    }

    /// Reads one line of the container's output and checks it is `want`.
    pub fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .expect("reading strata's stdout");
        assert_eq!(
            line.trim_end(),
            want,
            "unexpected output from the container"
        );
    }

    /// Sends `sig` to the launcher.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signalling strata");
    }

    /// Reads the rest of stdout and waits; returns it and the exit code (-1 when
    /// killed by a signal).
    pub fn finish(mut self) -> (String, i32) {
        let mut rest = String::new();
        self.out
            .read_to_string(&mut rest)
            .expect("reading strata's stdout");
        let code = self.child.wait().expect("waiting for strata").code();
        (rest, code.unwrap_or(-1))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether any mount in this mount namespace has `needle` in its mountinfo line (a
/// mount point, a container id, a layer path).
pub fn mounted(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("reading /proc/self/mountinfo")
        .lines()
        .any(|l| l.contains(needle))
}

/// Asserts that `rel` (a path inside the container) is in none of `image`'s lower
/// layers in `store`.
pub fn assert_not_in_lowers(store: &store::Store, image: &str, rel: &str) {
    let image = store.resolve_image(image).expect("resolving the image");
    for l in store.lower_dirs(&image).expect("lower dirs") {
        assert!(
            !l.join(rel).exists(),
            "write leaked into lower {}",
            l.display()
        );
    }
}

/// Every cgroup directory named `id` under /sys/fs/cgroup (one per v1 hierarchy, or
/// the v2 one).
pub fn find_cgroups(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let p = e.path();
                if e.file_name() == id {
                    out.push(p.clone());
                }
                stack.push(p);
            }
        }
    }
    out
}

/// Polls `f` every 50 ms until it holds or `secs` pass; whether it held.
pub fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
