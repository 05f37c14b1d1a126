//! Extended attributes through the mount: user xattrs set/removed with copy-up, and the
//! overlay's own markers (`trusted.overlay.*`) hidden from users, as the kernel hides them.

mod common;

use std::path::Path;

use common::sys::{get_xattr, list_xattrs};
use common::*;
use fixtures::layers;

/// Every xattr name visible on `paths` and the errno/value of reading overlay markers.
fn visible(m: &Path, paths: &[&str]) -> String {
    let mut out = Vec::new();
    for r in paths {
        let p = m.join(r);
        let names = list_xattrs(&p).map(|v| {
            let mut v: Vec<String> = v
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            v.sort();
            v
        });
        let marker = |n: &str| get_xattr(&p, n).map(|v| String::from_utf8_lossy(&v).into_owned());
        out.push(format!(
            "{r}: list {names:?} opaque {:?} redirect {:?} origin {:?}",
            marker("trusted.overlay.opaque"),
            marker("trusted.overlay.redirect"),
            marker("trusted.overlay.origin"),
        ));
    }
    out.join("; ")
}

#[test]
fn overlay_markers_are_hidden_and_user_xattrs_work() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    let paths = ["opq", "ren", "d/keep", "top", "d", ""];
    d.compare_with("xattrs at mount", |m| visible(m, &paths));
    d.step_expect(Op::Rename(p("ren"), p("ren2"), 0), 0); // writes a redirect
    d.step_expect(Op::Mkdir(p("wd"), 0o755), 0); // over a whiteout: opaque
    d.step_expect(Op::Chmod(p("d/keep"), 0o600), 0); // copy-up: origin
    d.step_expect(Op::SetXattr(p("top"), p("user.a"), b"1".to_vec()), 0);
    d.step_expect(Op::SetXattr(p("top"), p("user.b"), vec![0, 1, 2]), 0);
    d.step_expect(Op::RemoveXattr(p("top"), p("user.a")), 0);
    d.step_expect(Op::RemoveXattr(p("top"), p("user.a")), libc::ENODATA);
    let after = ["opq", "ren2", "wd", "d/keep", "top", "d", ""];
    d.compare_with("xattrs after changes", |m| visible(m, &after));
    d.finish();
}

/// Kernel overlayfs (6.7+) lets users set `trusted.overlay.*` names on merged objects,
/// storing them escaped (`trusted.overlay.overlay.*`) so they never act as markers — the
/// basis of nested overlays.
#[test]
fn overlay_xattr_names_set_by_users_are_escaped() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step(Op::SetXattr(
        p("opq"),
        p("trusted.overlay.opaque"),
        b"n".to_vec(),
    ));
    d.step(Op::SetXattr(
        p("top"),
        p("trusted.overlay.whiteout"),
        b"".to_vec(),
    ));
    d.compare_with("xattrs after setting overlay names", |m| {
        visible(m, &["opq", "top"])
    });
    d.remount();
    d.compare("after remount (the names set must not act as markers)");
    d.finish();
}
