//! Shared by the integration tests: mounts (kernel overlayfs as the reference, the FUSE
//! implementation selected by `STRATA_TEST_FS`), operations reduced to errnos, merged
//! tree snapshots, and [`Differential`], which runs the same steps on both.

#![allow(dead_code, unused_imports)] // each test file uses a part

pub mod ext4;
pub mod mount;
pub mod ops;
pub mod peer;
pub mod sys;
pub mod tree;
pub mod upper;

use std::path::Path;

use fixtures::layers::{LayerSet, copy_layer_set};

pub use mount::{Impl, Mount, is_mounted, mount_kernel};
pub use ops::{Caller, Op, p};
pub use peer::{fuse_overlayfs2_or_skip, mount_daemon};
pub use sys::{cpath, errno_of};
pub use tree::{Snapshot, diff, snapshot};

/// True when the test can run (root, /dev/fuse, kernel overlayfs); otherwise prints why
/// and returns false, except under `CI=true`, where a missing prerequisite fails.
pub fn privileged_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let fuse = Path::new("/dev/fuse").exists();
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.ends_with("\toverlay")))
        || std::process::Command::new("modprobe")
            .arg("overlay")
            .status()
            .is_ok_and(|s| s.success());
    let imp = Impl::selected();
    let bin = imp.bin.exists();
    // Unmounting FUSE mounts goes through fusermount3 (package fuse3, `scripts/deps`).
    let fusermount = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("fusermount3").is_file()));
    if root && fuse && overlay && bin && fusermount {
        return true;
    }
    let why = format!(
        "needs root ({root}), /dev/fuse ({fuse}), kernel overlayfs ({overlay}), {} ({bin}), \
         fusermount3 ({fusermount}; scripts/deps installs it)",
        imp.bin.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and this test {why}"
    );
    eprintln!("skipped: this test {why}");
    false
}

/// The same layer set mounted twice — kernel overlayfs and the implementation under
/// test — over identical copies; each step runs on both and mismatches are collected
/// (errno per operation, merged tree after each step) and reported together by
/// [`Differential::finish`].
pub struct Differential {
    tmp: tempfile::TempDir,
    /// The kernel's copy of the layers.
    pub kernel: LayerSet,
    /// The copy the implementation under test mounts.
    pub under: LayerSet,
    /// The implementation under test.
    pub imp: Impl,
    kmount: Option<Mount>,
    umount: Option<Mount>,
    mismatches: Vec<String>,
    reported: std::collections::BTreeSet<String>,
    steps: Vec<String>,
}

impl Differential {
    /// Generates the layers with `build` (given a fresh directory), copies them, mounts
    /// both sides and compares the initial trees. `None` when the test must skip.
    pub fn new(build: impl FnOnce(&Path) -> anyhow::Result<LayerSet>) -> Option<Self> {
        Self::start(|tmp| {
            let kernel = build(&tmp.join("kernel")).expect("generate layers");
            let under = copy_layer_set(&kernel, &tmp.join("under")).expect("copy layers");
            (kernel, under)
        })
    }

    /// Like [`Self::new`] with different layers for each side that must look the same —
    /// e.g. the kernel's whiteout format for the kernel and another format for the
    /// implementation under test.
    pub fn with_layers(
        kernel: impl FnOnce(&Path) -> anyhow::Result<LayerSet>,
        under: impl FnOnce(&Path) -> anyhow::Result<LayerSet>,
    ) -> Option<Self> {
        Self::start(|tmp| {
            (
                kernel(&tmp.join("kernel")).expect("generate the kernel's layers"),
                under(&tmp.join("under")).expect("generate the layers under test"),
            )
        })
    }

    fn start(make: impl FnOnce(&Path) -> (LayerSet, LayerSet)) -> Option<Self> {
        if !privileged_or_skip() {
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let (kernel, under) = make(tmp.path());
        let imp = Impl::selected();
        let kmount = Some(mount_kernel(&kernel, true));
        let umount = Some(imp.mount(&under));
        let mut d = Self {
            tmp,
            kernel,
            under,
            imp,
            kmount,
            umount,
            mismatches: Vec::new(),
            reported: Default::default(),
            steps: Vec::new(),
        };
        d.compare("initial tree");
        Some(d)
    }

    /// The kernel's mount point.
    pub fn km(&self) -> &Path {
        &self.kernel.mnt
    }

    /// The mount point of the implementation under test.
    pub fn um(&self) -> &Path {
        &self.under.mnt
    }

    /// A scratch directory that lives as long as the test.
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// Runs `op` on both mounts without comparing trees; records an errno mismatch.
    pub fn run(&mut self, op: &Op) -> (i32, i32) {
        let (k, u) = (op.apply(self.km()), op.apply(self.um()));
        self.record(format!("{op:?}"), k, u)
    }

    /// Like [`Self::run`], the operation made by `caller` (see [`Caller`]).
    pub fn run_as(&mut self, op: &Op, caller: Caller) -> (i32, i32) {
        let (k, u) = (
            op.apply_as(self.km(), caller),
            op.apply_as(self.um(), caller),
        );
        self.record(format!("{op:?} as {caller:?}"), k, u)
    }

    /// Like [`Self::step`], the operation made by `caller`.
    pub fn step_as(&mut self, op: Op, caller: Caller) {
        self.run_as(&op, caller);
        self.compare(&shorten(&format!("after {op:?} as {caller:?}")));
    }

    fn record(&mut self, op: String, k: i32, u: i32) -> (i32, i32) {
        let op = shorten(&op);
        self.steps
            .push(format!("{op} -> kernel {k} / {} {u}", self.imp.name));
        if k != u {
            self.mismatches.push(format!(
                "step {} {op}: errno kernel {k} ({}) / {} {u} ({})",
                self.steps.len(),
                strerror(k),
                self.imp.name,
                strerror(u)
            ));
        }
        (k, u)
    }

    /// Runs `op` on both mounts, then compares the merged trees.
    pub fn step(&mut self, op: Op) {
        self.run(&op);
        self.compare(&shorten(&format!("after {op:?}")));
    }

    /// Like [`Self::step`], also checking the kernel's errno is `expected` (a check on
    /// the scenario itself: it must exercise what it claims to).
    pub fn step_expect(&mut self, op: Op, expected: i32) {
        let (k, _) = self.run(&op);
        assert_eq!(
            k,
            expected,
            "scenario bug: kernel overlayfs gave errno {k} ({}) for {}",
            strerror(k),
            shorten(&format!("{op:?}"))
        );
        self.compare(&shorten(&format!("after {op:?}")));
    }

    /// Compares the two merged trees now; records the differences under `label`.
    pub fn compare(&mut self, label: &str) {
        let (k, u) = (snapshot(self.km()), snapshot(self.um()));
        // Report each difference once, at the step that introduced it.
        let d: Vec<String> = diff("kernel", &k, self.imp.name, &u)
            .into_iter()
            .filter(|l| self.reported.insert(l.clone()))
            .collect();
        if !d.is_empty() {
            let d = shorten(&d.join("\n  "));
            self.mismatches
                .push(format!("tree differs {label}:\n  {d}"));
        }
    }

    /// Compares `probe` run on both mount points (e.g. a full xattr listing).
    pub fn compare_with(&mut self, label: &str, probe: impl Fn(&Path) -> String) {
        let (k, u) = (probe(self.km()), probe(self.um()));
        if k != u && (k.contains('\n') || u.contains('\n')) {
            // Long outputs: the lines of each that the other lacks, in order.
            let only = |a: &str, b: &str| {
                let other: std::collections::BTreeSet<&str> = b.lines().collect();
                a.lines()
                    .filter(|l| !other.contains(l))
                    .collect::<Vec<_>>()
                    .join("\n    ")
            };
            self.mismatches.push(format!(
                "{label} differs:\n  only in kernel:\n    {}\n  only in {}:\n    {}",
                only(&k, &u),
                self.imp.name,
                only(&u, &k)
            ));
        } else if k != u {
            self.mismatches.push(format!(
                "{label} differs:\n  kernel: {k}\n  {}: {u}",
                self.imp.name
            ));
        }
    }

    /// Records a mismatch found by a scenario's own check.
    pub fn mismatch(&mut self, what: String) {
        self.mismatches.push(what);
    }

    /// Compares what both sides left in their upper layers on disk: whiteouts, opaque
    /// dirs, redirects, no stray markers.
    pub fn compare_upper(&mut self, label: &str) {
        let (k, u) = (
            upper::markers(&self.kernel.upper, &self.kernel.lowers),
            upper::markers(&self.under.upper, &self.under.lowers),
        );
        if k != u {
            self.mismatches.push(format!(
                "upper markers differ {label}:\n  kernel: {k:?}\n  {}: {u:?}",
                self.imp.name
            ));
        }
    }

    /// Like [`Self::compare_upper`], an opaque marker counting where the directory found
    /// below it through its parents' redirects is one (see
    /// [`upper::markers_following_redirects`]): for tests that rename directories
    /// around and then create in them.
    pub fn compare_upper_following_redirects(&mut self, label: &str) {
        let (k, u) = (
            upper::markers_following_redirects(&self.kernel.upper, &self.kernel.lowers),
            upper::markers_following_redirects(&self.under.upper, &self.under.lowers),
        );
        if k != u {
            self.mismatches.push(format!(
                "upper markers differ {label}:\n  kernel: {k:?}\n  {}: {u:?}",
                self.imp.name
            ));
        }
    }

    /// Compares the carried-over xattrs of `rel` in both uppers (after a copy-up).
    pub fn compare_upper_xattrs(&mut self, rel: &str) {
        let (k, u) = (
            upper::carried_xattrs(&self.kernel.upper.join(rel)),
            upper::carried_xattrs(&self.under.upper.join(rel)),
        );
        if k != u {
            self.mismatches.push(format!(
                "xattrs of upper/{rel} differ:\n  kernel: {k:?}\n  {}: {u:?}",
                self.imp.name
            ));
        }
    }

    /// Number of mismatches recorded so far.
    pub fn mismatch_count(&self) -> usize {
        self.mismatches.len()
    }

    /// Unmounts both sides (cleanly, asserting it worked).
    pub fn unmount(&mut self) {
        if let Some(m) = self.kmount.take() {
            m.unmount();
        }
        if let Some(m) = self.umount.take() {
            m.unmount();
        }
    }

    /// Mounts the side under test again with `extra` options appended (e.g. an `io=`
    /// strategy the environment does not pick).
    pub fn remount_under_with(&mut self, extra: &str) {
        if let Some(m) = self.umount.take() {
            m.unmount();
        }
        let options = format!("{}{extra}", self.under.options());
        let m = self.imp.mount_with(&self.under.mnt, &options);
        self.umount = Some(m.unwrap_or_else(|e| panic!("{e}")));
    }

    /// Remounts both sides over their layers as they are now (work dirs kept).
    pub fn remount(&mut self) {
        self.unmount();
        self.kmount = Some(mount_kernel(&self.kernel, true));
        self.umount = Some(self.imp.mount(&self.under));
    }

    /// Unmounts both sides; the full report of every mismatch (and the steps run), or
    /// `None` when both sides agreed throughout.
    pub fn report(mut self) -> Option<String> {
        self.unmount();
        if self.mismatches.is_empty() {
            return None;
        }
        let ignored = match tree::ignored() {
            i if i.is_empty() => String::new(),
            i => format!(" (ignoring {i:?} per STRATA_TEST_IGNORE)"),
        };
        Some(format!(
            "{} differs from kernel overlayfs ({KF}){ignored} in {} place(s):\n{}\n\nsteps run:\n{}",
            self.imp.name,
            self.mismatches.len(),
            self.mismatches.join("\n"),
            self.steps.join("\n"),
            KF = mount::KERNEL_FEATURES
        ))
    }

    /// Panics with the [`Self::report`] if there was any mismatch.
    pub fn finish(self) {
        if let Some(r) = self.report() {
            panic!("{r}");
        }
    }
}

/// The errno's name-ish description for messages.
pub fn strerror(e: i32) -> String {
    if e == 0 {
        "ok".into()
    } else {
        std::io::Error::from_raw_os_error(e).to_string()
    }
}

/// `s` with every run of more than 16 equal characters written as `c×N`, so messages
/// about 255-byte names stay readable.
pub fn shorten(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let mut n = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            n += 1;
        }
        if n > 16 {
            out.push_str(&format!("{c}×{n}"));
        } else {
            out.extend(std::iter::repeat_n(c, n));
        }
    }
    out
}
