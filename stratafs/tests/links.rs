//! Hard links: links present in lowers stay one inode after any name is copied up (the
//! kernel's `index=on`), and link(2) over layers behaves as the kernel's.

mod common;

use common::*;
use fixtures::layers;

#[test]
fn lower_hard_links_stay_linked_across_copy_up() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Append(p("h1"), p("+")), 0); // h2 and d/h3 see it too
    d.step_expect(Op::Read(p("d/h3")), 0);
    d.step_expect(Op::Chmod(p("d/h3"), 0o600), 0);
    d.step_expect(Op::Link(p("h2"), p("h4")), 0);
    d.step_expect(Op::Unlink(p("h1")), 0);
    d.step_expect(Op::Append(p("h4"), p("!")), 0);
    d.remount();
    d.compare("after remount");
    d.finish();
}

#[test]
fn link_over_layers() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Link(p("top"), p("d/top-link")), 0); // copies top up first
    d.step_expect(Op::Append(p("d/top-link"), p("+")), 0);
    d.step_expect(Op::Link(p("d/y"), p("gone")), 0); // onto a whited-out name
    d.step_expect(Op::Link(p("d/sub/deep/f"), p("deep-link")), 0);
    d.step_expect(Op::Link(p("d"), p("dir-link")), libc::EPERM);
    d.step_expect(Op::Link(p("top"), p("mid")), libc::EEXIST);
    d.step_expect(Op::Link(p("wd"), p("x")), libc::ENOENT);
    d.step_expect(Op::Link(p("abs"), p("abs-link")), 0); // a symlink itself
    d.step_expect(Op::Link(p("fifo"), p("fifo-link")), 0);
    d.finish();
}

/// Removing the lower names of a hard-linked file one by one: after the first, the
/// others resolve to the index copy, whose own link count no longer counts them; each
/// removal must still take one off the count the remaining names show (random seed 23
/// found `d/h3` left at 2). The remounts make the kernel look every name up afresh.
#[test]
fn lower_hard_link_names_removed_one_by_one() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Unlink(p("h2")), 0);
    d.remount();
    d.step_expect(Op::Unlink(p("h1")), 0);
    d.remount();
    d.compare("after remount");
    d.step_expect(Op::Append(p("d/h3"), p("+")), 0);
    d.step_expect(Op::Link(p("d/h3"), p("h5")), 0);
    d.remount();
    d.step_expect(Op::Unlink(p("d/h3")), 0);
    d.compare_upper("at the end");
    d.finish();
}
