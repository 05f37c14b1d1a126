//! Unprivileged callers: a table of operations run as uid/gid 65534 (through
//! `setresuid` children) on objects of root's and of their own, in sticky,
//! world-writable and closed directories, lower and upper. Each must give the
//! kernel's errno and leave the same tree (set-user-ID / set-group-ID bits cleared by
//! writes and truncation included) as on kernel overlayfs.

mod common;

use std::path::Path;

use common::*;
use fixtures::layers::LayerSet;

const NOBODY: u32 = 65534;

/// Objects of root's in a lower: a sticky dir, a world-writable dir, a closed dir,
/// privileged files.
fn layers(root: &Path) -> anyhow::Result<LayerSet> {
    let set = LayerSet::create(root, 2)?;
    let l = set.lower(1)?;
    l.dir("sticky", 0o1777)?;
    l.file("sticky/roots", b"root's\n", 0o666)?;
    l.dir("ww", 0o777)?;
    l.file("ww/roots", b"root's\n", 0o644)?;
    l.dir("ww/rootdir", 0o755)?;
    l.dir("ww/opendir", 0o777)?;
    l.dir("closed", 0o755)?;
    l.file("closed/f", b"closed\n", 0o666)?;
    l.file("suid", b"set-user-ID\n", 0o4777)?;
    l.file("sgid", b"set-group-ID\n", 0o2777)?;
    l.file("sgid_noexec", b"set-group-ID, no group x\n", 0o2767)?;
    l.file("suid_trunc", b"truncated\n", 0o6777)?;
    l.file("suid_falloc", b"fallocated\n", 0o6777)?;
    l.finish()?;
    let top = set.lower(0)?;
    top.dir("ww", 0o777)?;
    top.file("ww/top", b"top\n", 0o666)?;
    top.finish()?;
    Ok(set)
}

#[test]
fn unprivileged_callers_get_the_kernels_answers() {
    let Some(mut d) = Differential::new(layers) else {
        return;
    };
    let nobody = Caller::nobody();
    // Objects of nobody's, made by nobody.
    d.step_as(Op::Write(p("sticky/mine"), p("mine\n")), nobody);
    d.step_as(Op::Mkdir(p("sticky/mydir"), 0o755), nobody);
    d.step_as(Op::Write(p("ww/mine"), p("mine\n")), nobody);
    d.step_as(Op::Mkdir(p("ww/mydir"), 0o755), nobody);
    // An upper file of root's in the sticky dir.
    d.step(Op::Write(p("sticky/roots_upper"), p("root's upper\n")));
    d.step(Op::Chmod(p("sticky/roots_upper"), 0o666));
    let table: Vec<Op> = vec![
        // Sticky directory: only the owner (of the file or the dir) removes or renames.
        Op::Unlink(p("sticky/roots")),
        Op::Unlink(p("sticky/roots_upper")),
        Op::Rename(p("sticky/roots"), p("sticky/taken"), 0),
        Op::Rename(p("sticky/mine"), p("sticky/roots_upper"), 0),
        Op::Rename(p("sticky/mine"), p("sticky/mine2"), 0),
        Op::Unlink(p("sticky/mine2")),
        Op::Rmdir(p("sticky/mydir")),
        // World-writable: anyone removes and renames files; a directory moves to
        // another parent only with write access to itself (its "..").
        Op::Rename(p("ww/roots"), p("ww/renamed"), 0),
        Op::Unlink(p("ww/top")),
        Op::Rename(p("ww/rootdir"), p("ww/opendir/x"), 0),
        Op::Rename(p("ww/rootdir"), p("ww/rootdir2"), 0),
        Op::Rename(p("ww/mydir"), p("ww/opendir/mine"), 0),
        Op::Rename(p("ww/opendir"), p("ww/od2"), libc::RENAME_NOREPLACE),
        // A directory nobody may write.
        Op::Create(p("closed/new"), 0o644),
        Op::Mkdir(p("closed/d"), 0o755),
        Op::Unlink(p("closed/f")),
        Op::Rename(p("closed/f"), p("ww/f"), 0),
        Op::Symlink(p("x"), p("closed/s")),
        Op::Link(p("closed/f"), p("ww/link_to_roots")),
        // Others' files: attributes are the owner's to change.
        Op::Chmod(p("ww/renamed"), 0o777),
        Op::Chown(p("ww/renamed"), NOBODY, NOBODY),
        Op::Chown(p("ww/mine"), 0, 0),
        Op::Chown(p("ww/mine"), NOBODY, 0),
        Op::Utimes(p("ww/renamed"), 1_000_000),
        Op::Utimes(p("ww/mine"), 1_000_000),
        Op::SetXattr(p("ww/renamed"), p("user.x"), b"1".to_vec()),
        Op::SetXattr(p("ww/mine"), p("user.x"), b"1".to_vec()),
        Op::Truncate(p("ww/renamed"), 0),
        Op::Write(p("closed/f"), p("overwritten by nobody\n")),
        // Privilege bits: a write or truncation by a non-owner clears them.
        Op::Append(p("suid"), p("written by nobody\n")),
        Op::Append(p("sgid"), p("written by nobody\n")),
        Op::Append(p("sgid_noexec"), p("written by nobody\n")),
        Op::Truncate(p("suid_trunc"), 3),
        Op::Fallocate(p("suid_falloc"), 0, 8192),
        Op::Chmod(p("ww/mine"), 0o2755),
    ];
    for op in table {
        d.step_as(op, nobody);
    }
    d.compare_upper("after the table");
    d.finish();
}

#[test]
fn a_writer_sees_its_privilege_bits_cleared_on_its_own_descriptor() {
    let Some(mut d) = Differential::new(layers) else {
        return;
    };
    let nobody = Caller::nobody();
    // Root's fresh set-user-ID / set-group-ID files (upper), and the lower ones.
    for (name, mode) in [("new_suid", 0o4777), ("new_sgid", 0o2777)] {
        d.step(Op::Write(p(name), p("root's\n")));
        d.step(Op::Chmod(p(name), mode));
    }
    for f in ["new_suid", "new_sgid", "suid", "sgid"] {
        d.step_as(Op::WriteFstatPriv(p(f)), nobody);
    }
    d.finish();
}
