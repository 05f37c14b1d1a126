//! rename(2) and renameat2 flags over layers: lower directories move without EXDEV
//! (redirect xattr), RENAME_NOREPLACE and RENAME_EXCHANGE, and every errno the kernel
//! gives for bad renames.

mod common;

use common::*;
use fixtures::layers;

#[test]
fn lower_directories_rename_with_redirects() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Rename(p("ren"), p("ren2"), 0), 0);
    d.step_expect(Op::Read(p("ren2/sub/b")), 0);
    d.step_expect(Op::Stat(p("ren")), libc::ENOENT);
    d.step_expect(Op::Mkdir(p("ren"), 0o755), 0); // new, empty: the old one moved
    d.step_expect(Op::ListDir(p("ren")), 0);
    d.step_expect(Op::Rename(p("ren2/sub"), p("d/moved"), 0), 0); // nested lower dir
    d.step_expect(Op::Write(p("d/moved/c"), p("c")), 0);
    d.step_expect(Op::Rename(p("d"), p("d2"), 0), 0); // merged from three layers
    d.step_expect(Op::Read(p("d2/moved/b")), 0);
    d.step_expect(Op::Rename(p("odir"), p("d2/sub/deep/odir"), 0), 0);
    d.compare_upper("after renaming lower dirs");
    d.remount();
    d.compare("after remount");
    d.finish();
}

#[test]
fn file_renames_and_errnos() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Rename(p("top"), p("d/top2"), 0), 0);
    d.step_expect(Op::Rename(p("mid"), p("exec"), 0), 0); // over a lower file
    d.step_expect(Op::Rename(p("abs"), p("gone"), 0), 0); // onto a whited-out name
    d.step_expect(Op::Rename(p("empty"), p("empty"), 0), 0);
    d.step_expect(Op::Rename(p("h1"), p("h2"), 0), 0); // hard links of one inode
    d.step_expect(Op::Rename(p("d/y"), p("d"), 0), libc::ENOTEMPTY); // emptiness first
    d.step_expect(Op::Mkdir(p("d/sub/deep/e"), 0o755), 0);
    d.step_expect(Op::Rename(p("d/y"), p("d/sub/deep/e"), 0), libc::EISDIR);
    d.step_expect(Op::Rename(p("ne"), p("fdir"), 0), libc::ENOTDIR);
    d.step_expect(Op::Rename(p("d/sub"), p("ne"), 0), libc::ENOTEMPTY);
    d.step_expect(Op::Rename(p("d"), p("d/sub/deep/in"), 0), libc::EINVAL);
    d.step_expect(Op::Rename(p("wd"), p("x"), 0), libc::ENOENT);
    d.step_expect(Op::Mkdir(p("emptydir"), 0o755), 0);
    d.step_expect(Op::Rename(p("ren"), p("emptydir"), 0), 0); // over an empty dir
    d.compare_upper("after file renames");
    d.finish();
}

#[test]
fn renameat2_noreplace_and_exchange() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    let (nr, ex) = (libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE);
    d.step_expect(Op::Rename(p("abs"), p("dang"), nr), libc::EEXIST);
    d.step_expect(Op::Rename(p("abs"), p("gone"), nr), 0); // whited out: free
    d.step_expect(Op::Rename(p("exec"), p("fresh"), nr), 0);
    d.step_expect(Op::Rename(p("top"), p("mid"), ex), 0); // two lower files
    d.step_expect(Op::Write(p("new"), p("n")), 0);
    d.step_expect(Op::Rename(p("new"), p("d/y"), ex), 0); // upper <-> lower
    d.step_expect(Op::Rename(p("ne"), p("d/sub"), ex), 0); // two lower dirs
    d.step_expect(Op::Rename(p("ren"), p("owned"), ex), 0); // dir <-> file
    d.step_expect(Op::Rename(p("top"), p("nothing"), ex), libc::ENOENT);
    d.step_expect(Op::Rename(p("top"), p("mid"), nr | ex), libc::EINVAL);
    d.compare_upper("after renameat2");
    d.finish();
}

/// Four lowers holding the same directories, populated in the bottom one, with files
/// in the middle ones too: the layout of a multi-layer image.
fn deep_lowers(root: &std::path::Path) -> anyhow::Result<layers::LayerSet> {
    let set = layers::LayerSet::create(root, 4)?;
    for i in 0..4 {
        let l = set.lower(i)?;
        l.dir("a", 0o755)?;
        l.dir("a/dir", 0o755)?;
        l.dir("a/dir/nested", 0o755)?;
        l.dir("a/empty", 0o755)?;
        match i {
            3 => {
                l.file("a/dir/a", b"bottom\n", 0o644)?;
                l.file("a/dir/nested/n3", b"bottom nested\n", 0o644)?;
            }
            2 => {
                l.file("a/dir/b", b"layer 2\n", 0o644)?;
                l.file("a/dir/nested/n2", b"layer 2 nested\n", 0o644)?;
            }
            1 => {
                l.file("a/dir/c", b"layer 1\n", 0o644)?;
            }
            _ => {}
        }
        l.finish()?;
    }
    Ok(set)
}

/// A directory merged over several lowers keeps every lower's files wherever it is
/// renamed: into a sibling, back to its name, again after a rename, with its parent
/// renamed, nested ones inside it; after a remount; and the upper reads the same
/// under kernel overlayfs (`redirect_dir=on`).
#[test]
fn directories_merged_over_many_lowers_keep_them_when_renamed() {
    let Some(mut d) = Differential::new(deep_lowers) else {
        return;
    };
    d.step_expect(Op::Rename(p("a/dir"), p("a/empty/x"), 0), 0);
    d.step_expect(Op::Read(p("a/empty/x/a")), 0);
    d.step_expect(Op::Read(p("a/empty/x/nested/n3")), 0);
    d.step_expect(Op::Rename(p("a/empty/x"), p("a/dir"), 0), 0);
    d.step_expect(Op::Read(p("a/dir/b")), 0);
    d.step_expect(Op::Rename(p("a/dir/nested"), p("a/nested2"), 0), 0);
    d.step_expect(Op::Rename(p("a/dir"), p("y"), 0), 0);
    d.step_expect(Op::Rename(p("y"), p("a/empty/z"), 0), 0);
    d.step_expect(Op::Rename(p("a"), p("a2"), 0), 0);
    d.step_expect(Op::Read(p("a2/empty/z/c")), 0);
    d.step_expect(Op::Read(p("a2/nested2/n2")), 0);
    d.step_expect(Op::Write(p("a2/empty/z/new"), p("new\n")), 0);
    d.step_expect(Op::Unlink(p("a2/empty/z/a")), 0);
    d.compare_upper("after the renames");
    d.remount();
    d.compare("after remount");
    d.step_expect(Op::Rename(p("a2/empty/z"), p("a2/dir"), 0), 0);
    d.step_expect(Op::ListDir(p("a2/dir")), 0);
    d.unmount();
    // The implementation's upper under kernel overlayfs shows the kernel's tree.
    let expected = {
        let m = mount_kernel(&d.kernel, true);
        let s = snapshot(&d.kernel.mnt);
        m.unmount();
        s
    };
    d.under.reset_work().expect("reset work dir");
    let m = mount_kernel(&d.under, true);
    let got = snapshot(&d.under.mnt);
    m.unmount();
    let problems = diff("kernel's upper", &expected, "stratafs' upper", &got);
    if !problems.is_empty() {
        d.mismatch(format!(
            "kernel overlayfs over the upper {} wrote differs:\n  {}",
            d.imp.name,
            problems.join("\n  ")
        ));
    }
    d.finish();
}
