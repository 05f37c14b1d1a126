//! Interop through the on-disk format: an upper written by the implementation under
//! test, remounted with kernel overlayfs, shows the kernel's tree — and the reverse.

mod common;

use common::*;
use fixtures::layers;

/// Changes touching every marker kind: whiteouts, opaque dirs, redirects, copy-ups with
/// metadata, hard links, new objects of each type.
fn script() -> Vec<Op> {
    vec![
        Op::Unlink(p("top")),
        Op::Unlink(p("ne/child")),
        Op::Rmdir(p("ne")),
        Op::Mkdir(p("wd"), 0o750),
        Op::Rename(p("ren"), p("ren-moved"), 0),
        Op::Rename(p("d/sub"), p("sub-moved"), 0),
        Op::Append(p("owned"), p("+")),
        Op::Chmod(p("d/keep"), 0o600),
        Op::SetXattr(p("exec"), p("user.x"), b"1".to_vec()),
        Op::Write(p("opq/more"), p("more")),
        Op::Mkfifo(p("fifo2")),
        Op::Symlink(p("ren-moved/a"), p("to-a")),
        Op::Link(p("mid"), p("mid-link")),
        Op::WriteAt(p("sparse"), 4096 * 8, p("mid")),
        Op::Rename(p("abs"), p("dang"), libc::RENAME_EXCHANGE),
    ]
}

fn remount_and_compare(
    expected: &Snapshot,
    mount: impl FnOnce() -> Mount,
    set: &fixtures::layers::LayerSet,
    label: &str,
) -> Vec<String> {
    set.reset_work().expect("reset work dir");
    let m = mount();
    let got = snapshot(&set.mnt);
    m.unmount();
    diff("original", expected, label, &got)
}

#[test]
fn impl_upper_under_kernel_and_kernel_upper_under_impl() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    for op in script() {
        d.step(op);
    }
    let expected = snapshot(d.km());
    let imp = d.imp.clone();
    d.unmount();
    let mut problems = Vec::new();
    let under = d.under.clone();
    let kernel = d.kernel.clone();
    let a = remount_and_compare(
        &expected,
        || mount_kernel(&under, true),
        &under,
        &format!("kernel over {}'s upper", imp.name),
    );
    if !a.is_empty() {
        problems.push(format!(
            "kernel overlayfs over the upper {} wrote:\n  {}",
            imp.name,
            shorten(&a.join("\n  "))
        ));
    }
    let b = remount_and_compare(
        &expected,
        || imp.mount(&kernel),
        &kernel,
        &format!("{} over the kernel's upper", imp.name),
    );
    if !b.is_empty() {
        problems.push(format!(
            "{} over the upper kernel overlayfs wrote:\n  {}",
            imp.name,
            shorten(&b.join("\n  "))
        ));
    }
    for p in problems {
        d.mismatch(p);
    }
    d.finish();
}

/// Kernel overlayfs (`index=on`) mounts the work dir the implementation used as it
/// is, not cleaned first (what switching drivers does): its index entries are kept
/// apart from the kernel's `index`, which the kernel checks and otherwise refuses.
/// The index itself is stratafs' own format, which the kernel does not read (README):
/// the names of the hard-linked file copied up through one of them, and those of a
/// file hard-linked through the mount (whose index link the kernel counts in
/// st_nlink), are left out of the comparison; everything else must match.
#[test]
fn kernel_mounts_the_work_dir_as_left() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    // A copy-up of a hard-linked lower file fills the implementation's index.
    d.step(Op::Append(p("h1"), p("+")));
    for op in script() {
        d.step(op);
    }
    let expected = snapshot(d.km());
    let imp = d.imp.clone();
    d.unmount();
    let m = mount_kernel(&d.under, true);
    let got = snapshot(&d.under.mnt);
    m.unmount();
    let group = ["h1:", "h2:", "d/h3:", "#links:", "mid:", "mid-link:"];
    let problems: Vec<String> = diff("original", &expected, "kernel over the left work dir", &got)
        .into_iter()
        .filter(|l| !group.iter().any(|g| l.starts_with(g)))
        .collect();
    if !problems.is_empty() {
        d.mismatch(format!(
            "kernel overlayfs over the upper and work dir {} left:\n  {}",
            imp.name,
            shorten(&problems.join("\n  "))
        ));
    }
    d.finish();
}
