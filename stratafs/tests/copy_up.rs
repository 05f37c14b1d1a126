//! Copy-up on every modifying operation, keeping mode, owner, times, xattrs (`trusted.*`
//! too) and sparse holes, parents first — compared against kernel overlayfs.

mod common;

use common::*;
use fixtures::layers;

#[test]
fn data_changes_copy_up_and_keep_metadata() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Append(p("owned"), p("+")), 0);
    d.step_expect(Op::WriteAt(p("d/y"), 2, p("ZZ")), 0);
    d.step_expect(Op::Truncate(p("large"), 1000), 0);
    d.step_expect(Op::OpenTrunc(p("top")), 0);
    d.step_expect(Op::Write(p("d/sub/deep/f"), p("rewritten")), 0);
    d.step_expect(Op::Append(p("empty"), p("now not empty")), 0);
    d.step_expect(Op::Append(p("fifo"), p("x")), libc::ENXIO);
    d.compare_upper_xattrs("owned");
    d.compare_upper("after data changes");
    d.finish();
}

#[test]
fn attribute_changes_copy_up() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Chmod(p("d/keep"), 0o600), 0);
    d.compare_upper_xattrs("d/keep");
    d.step_expect(Op::Chown(p("exec"), 42, 43), 0);
    d.step_expect(Op::Chown(p("dang"), 7, 8), 0);
    d.step_expect(Op::Chmod(p("d/rel"), 0o700), 0); // follows the symlink to exec
    d.step_expect(Op::Utimes(p("empty"), 1_600_000_000), 0);
    d.step_expect(Op::Utimes(p("abs"), 1_600_000_001), 0);
    d.step_expect(Op::Utimes(p("d/sub/deep"), 1_600_000_002), 0);
    d.step_expect(Op::SetXattr(p("ren/a"), p("user.new"), b"1".to_vec()), 0);
    d.step_expect(Op::RemoveXattr(p("d/keep"), p("user.k")), 0);
    d.step_expect(Op::RemoveXattr(p("top"), p("user.none")), libc::ENODATA);
    d.step_expect(
        Op::SetXattr(p("ren"), p("user.dir"), b"changed".to_vec()),
        0,
    );
    d.step_expect(Op::Chmod(p("fifo"), 0o600), 0);
    d.step_expect(Op::Chown(p("odir"), 1, 2), 0);
    d.compare_upper_xattrs("d/keep");
    d.compare_upper_xattrs("ren");
    d.compare_upper("after attribute changes");
    d.finish();
}

/// Creating in a lower-only dir copies the parents up first, keeping their mode, owner
/// and times (the parent's mtime changes only where the kernel's does).
#[test]
fn parents_copy_up_first_with_their_metadata() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::Write(p("odir/new"), p("n")), 0);
    d.step_expect(Op::Write(p("d/sub/deep/g"), p("g")), 0);
    d.step_expect(Op::Mkfifo(p("ren/sub/fifo")), 0);
    d.step_expect(Op::Chmod(p("ne/child"), 0o444), 0);
    d.compare_upper("after creating below lower dirs");
    d.finish();
}

/// A 1-byte write to an 8 MiB file with two 4 KiB extents copies it up with its holes
/// (the kernel copies in 1 MiB chunks: at most half the file gets allocated).
#[test]
fn sparse_files_stay_sparse() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    d.step_expect(Op::WriteAt(p("sparse"), 1, p("x")), 0);
    let sides = [
        ("kernel", d.kernel.upper.clone()),
        (d.imp.name, d.under.upper.clone()),
    ];
    for (side, upper) in sides {
        let md = std::fs::metadata(upper.join("sparse"));
        let blocks = md.map(|m| std::os::unix::fs::MetadataExt::blocks(&m));
        if !matches!(blocks, Ok(b) if b * 512 <= 4 << 20) {
            let what = format!("{side}: upper/sparse is not sparse after copy-up: {blocks:?}");
            d.mismatch(what);
        }
    }
    d.finish();
}
