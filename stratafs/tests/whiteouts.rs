//! Removing and re-creating names over lower layers: char 0/0 whiteouts written only
//! where a lower still holds the name, opaque dirs for dirs re-created over whiteouts,
//! ENOTEMPTY/ENOTDIR/EISDIR on the merged view.

mod common;

use common::*;
use fixtures::layers;

#[test]
fn unlink_and_rmdir_write_whiteouts_only_where_needed() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Unlink(p("top")), 0); // top lower
    d.step_expect(Op::Unlink(p("mid")), 0); // middle lower
    d.step_expect(Op::Unlink(p("d/h3")), 0); // bottom, hard-linked
    d.step_expect(Op::Write(p("fresh"), p("f")), 0);
    d.step_expect(Op::Unlink(p("fresh")), 0); // upper only: no whiteout
    d.step_expect(Op::Mkdir(p("newdir"), 0o755), 0);
    d.step_expect(Op::Rmdir(p("newdir")), 0);
    d.step_expect(Op::Unlink(p("dang")), 0);
    d.step_expect(Op::Unlink(p("fifo")), 0);
    d.step_expect(Op::Unlink(p("gone")), libc::ENOENT);
    d.step_expect(Op::Unlink(p("d")), libc::EISDIR);
    d.step_expect(Op::Rmdir(p("exec")), libc::ENOTDIR);
    d.compare_upper("after unlinks");
    d.finish();
}

#[test]
fn rmdir_sees_the_merged_directory() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Rmdir(p("ne")), libc::ENOTEMPTY); // child only in a lower
    d.step_expect(Op::Rmdir(p("d")), libc::ENOTEMPTY); // merged from three layers
    d.step_expect(Op::Unlink(p("ne/child")), 0);
    d.step_expect(Op::ListDir(p("ne")), 0);
    d.step_expect(Op::Rmdir(p("ne")), 0); // only a whiteout left in it
    d.step_expect(Op::Rmdir(p("wd")), libc::ENOENT); // whited out
    d.step_expect(Op::Rmdir(p("opq")), libc::ENOTEMPTY); // opq/new
    d.step_expect(Op::Unlink(p("opq/new")), 0);
    d.step_expect(Op::Rmdir(p("opq")), 0); // opq/old below is hidden by opacity
    d.step_expect(Op::Unlink(p("ren/sub/b")), 0);
    d.step_expect(Op::Rmdir(p("ren/sub")), 0);
    d.step_expect(Op::Rmdir(p("fdir")), libc::ENOTDIR);
    d.step_expect(Op::Unlink(p("dover/in")), 0);
    d.step_expect(Op::Rmdir(p("dover")), 0);
    d.compare_upper("after rmdirs");
    d.finish();
}

/// A name removed and created again: a dir over a whiteout is opaque (the old
/// children stay hidden), a file over a whiteout replaces it.
#[test]
fn recreate_over_whiteouts() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Mkdir(p("wd"), 0o700), 0); // whited out in a middle layer
    d.step_expect(Op::ListDir(p("wd")), 0);
    d.step_expect(Op::Stat(p("wd/old")), libc::ENOENT);
    d.step_expect(Op::Write(p("gone"), p("back")), 0);
    d.step_expect(Op::Write(p("d/x"), p("x again")), 0);
    for name in ["ne/child", "d/sub/deep/f"] {
        d.step_expect(Op::Unlink(p(name)), 0);
    }
    d.step_expect(Op::Rmdir(p("d/sub/deep")), 0);
    d.step_expect(Op::Mkdir(p("d/sub/deep"), 0o755), 0);
    d.step_expect(Op::Mkfifo(p("ne/child")), 0);
    d.step_expect(Op::Symlink(p("../top"), p("d/sub/z2")), 0);
    d.step_expect(Op::Mkchr(p("chr"), libc::makedev(1, 3)), 0);
    d.step_expect(Op::Mkdir(p("top"), 0o755), libc::EEXIST);
    d.step_expect(Op::Create(p("d/y"), 0o644), libc::EEXIST);
    d.compare_upper("after re-creating names");
    d.finish();
}

/// The whiteouts (char 0/0) under `dir` in an upper layer: how many, and how many
/// distinct inodes they use.
fn whiteout_inodes(dir: &std::path::Path) -> (usize, usize) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn walk(dir: &std::path::Path, out: &mut Vec<(u64, u64)>) {
        for e in std::fs::read_dir(dir).expect("read upper").flatten() {
            let md = e.metadata().expect("lstat upper entry");
            if md.file_type().is_char_device() && md.rdev() == 0 {
                out.push((md.dev(), md.ino()));
            } else if md.is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    let mut all = Vec::new();
    walk(dir, &mut all);
    let n = all.len();
    all.sort();
    all.dedup();
    (n, all.len())
}

#[test]
fn whiteouts_share_one_inode_as_the_kernels_do() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    for f in ["top", "mid", "exec", "d/top", "d/y", "ne/child"] {
        d.step_expect(Op::Unlink(p(f)), 0);
    }
    d.step_expect(Op::Rmdir(p("ne")), 0);
    d.compare_upper("after removing lower names");
    let kernel = whiteout_inodes(&d.kernel.upper);
    let ours = whiteout_inodes(&d.under.upper);
    assert!(
        kernel.0 >= 6,
        "kernel overlayfs left {} whiteouts",
        kernel.0
    );
    if kernel != ours {
        d.mismatch(format!(
            "whiteouts (count, distinct inodes): kernel {kernel:?}, stratafs {ours:?}"
        ));
    }
    d.finish();
}
