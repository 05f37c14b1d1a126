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
