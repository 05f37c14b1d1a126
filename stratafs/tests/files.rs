//! File operations beyond read/write: fallocate (copies up first), fsync, O_TMPFILE,
//! and statfs reporting the upper layer's filesystem.

mod common;

use common::*;
use fixtures::layers;

#[test]
fn fallocate_and_fsync_copy_up() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Fallocate(p("top"), 0, 1 << 16), 0); // extends a lower file
    d.step_expect(Op::Fallocate(p("sparse"), 1 << 20, 4096), 0); // fills a hole
    d.step_expect(Op::Fsync(p("d/y"), p("synced")), 0);
    d.step_expect(Op::Fsync(p("fresh-missing"), p("x")), libc::ENOENT);
    d.finish();
}

#[test]
#[ignore = "stratafs has no O_TMPFILE yet: fuser 0.18 has no FUSE_TMPFILE request to implement"]
fn o_tmpfile_in_a_lower_directory() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step(Op::TmpFile(p("d/sub"), p("from-tmpfile")));
    d.step(Op::TmpFile(p(""), p("at-root")));
    d.finish();
}

#[test]
fn statfs_reports_the_upper_filesystem() {
    let Some(d) = Differential::new(layers::standard) else {
        return;
    };
    let fs_of = |p: &std::path::Path| {
        let c = cpath(p);
        // SAFETY: zeroed statvfs is a valid out-parameter; `c` is a valid path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        assert_eq!(r, 0, "statvfs {}", p.display());
        (st.f_bsize, st.f_blocks, st.f_namemax)
    };
    let upper = fs_of(&d.under.upper);
    let kernel = fs_of(d.km());
    let got = fs_of(d.um());
    assert_eq!(
        (got.0, got.1),
        (upper.0, upper.1),
        "{}: statfs block size/count should be the upper's",
        d.imp.name
    );
    assert_eq!(got.2, kernel.2, "f_namemax as kernel overlayfs reports it");
    d.finish();
}

/// A set-group-ID lower directory owned by another group: objects made in it through
/// the mount take that group (and subdirectories the bit), as on any filesystem.
fn setgid_dir(root: &std::path::Path) -> anyhow::Result<layers::LayerSet> {
    let set = layers::LayerSet::create(root, 1)?;
    let l = set.lower(0)?;
    l.dir("shared", 0o2775)?;
    l.owner("shared", 0, 4321)?;
    l.finish()?;
    Ok(set)
}

#[test]
fn new_objects_in_a_setgid_directory_take_its_group() {
    let Some(mut d) = Differential::new(setgid_dir) else {
        return;
    };
    d.step_expect(Op::Create(p("shared/file"), 0o644), 0);
    d.step_expect(Op::Mkdir(p("shared/sub"), 0o755), 0);
    d.step_expect(Op::Create(p("shared/sub/deeper"), 0o600), 0);
    d.step_expect(Op::Symlink(p("file"), p("shared/link")), 0);
    d.finish();
}

/// Set-user-ID and set-group-ID files anyone may write, and one to set the bit on later.
fn privileged_files(root: &std::path::Path) -> anyhow::Result<layers::LayerSet> {
    let set = layers::LayerSet::create(root, 1)?;
    let l = set.lower(0)?;
    l.file("suid", b"a", 0o4777)?;
    l.file("sgid-x", b"a", 0o2777)?;
    l.file("sgid-nox", b"a", 0o2767)?;
    l.file("suid-trunc", b"abc", 0o4777)?;
    l.file("root-writes", b"a", 0o6777)?;
    l.file("later", b"a", 0o777)?;
    l.file("falloc", b"a", 0o6777)?;
    l.finish()?;
    Ok(set)
}

/// Runs `script` with `sh` in `dir` as nobody (no capabilities).
fn as_nobody(dir: &std::path::Path, script: &str) {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["sh", "-ec", script])
        .current_dir(dir)
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "as nobody in {}: {script}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A write, truncate or fallocate by a user without CAP_FSETID clears set-user-ID, and
/// set-group-ID when the group may execute, as on any filesystem; root's writes keep
/// both. Checked again after the bit is set anew on a file already written.
#[test]
fn writes_by_unprivileged_users_clear_setuid_and_setgid() {
    let Some(mut d) = Differential::new(privileged_files) else {
        return;
    };
    // With io=passthrough the kernel clears the bits itself, by FUSE's own rule:
    // set-group-ID only when the group may execute, whoever writes; so no sgid-nox.
    let passthrough = std::env::var("STRATA_TEST_IO").is_ok_and(|v| v.starts_with("passthrough"));
    let not_in_group = if passthrough {
        ""
    } else {
        "printf x >> sgid-nox;"
    };
    let mounts = [d.km().to_path_buf(), d.um().to_path_buf()];
    for m in &mounts {
        as_nobody(
            m,
            &format!(
                "printf x >> suid; printf y >> suid; printf x >> sgid-x; {not_in_group} \
                 truncate -s 1 suid-trunc; fallocate -l 8192 falloc; printf x >> later"
            ),
        );
    }
    d.step(Op::Append(p("root-writes"), p("x")));
    d.compare("after writes by nobody and root");
    d.step(Op::Chmod(p("later"), 0o4777));
    for m in &mounts {
        as_nobody(m, "printf x >> later; truncate -s 0 later");
    }
    d.compare("after the bit was set again and nobody wrote");
    d.finish();
}
