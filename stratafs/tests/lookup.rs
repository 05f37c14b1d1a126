//! Lookup and merged readdir: the top-most layer wins, whiteouts (in every on-disk
//! format) hide, opaque dirs stop merging, non-directories hide what is below, any
//! number of lowers, ENAMETOOLONG — compared against kernel overlayfs.

mod common;

use common::*;
use fixtures::layers::{self, WhiteoutFormat};

#[test]
fn standard_layers_look_the_same() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    for path in [
        "d/x",
        "gone",
        "wd",
        "wd/old",
        "opq/old",
        "opq/new",
        "fdir/c",
        "dover/in",
        "d/h3",
        "d/rel",
        "dang",
        "nope",
        "d/sub/deep/f",
    ] {
        d.run(&Op::Stat(p(path)));
        d.run(&Op::Read(p(path)));
    }
    d.run(&Op::Stat(p("fifo"))); // opening a fifo for reading would block
    for path in ["fifo", "d/sub"] {
        d.run(&Op::Stat(p(path)));
    }
    for dir in ["", "d", "opq", "fdir", "dover", "wd", "d/sub"] {
        d.run(&Op::ListDir(p(dir)));
    }
    d.run(&Op::Readlink(p("d/rel")));
    d.run(&Op::Readlink(p("top")));
    d.finish();
}

/// The same logical layers written in each whiteout/opaque format: the implementation
/// must show what kernel overlayfs shows for the kernel's own format (char 0/0).
#[test]
fn whiteouts_and_opaque_dirs_in_every_format() {
    if !privileged_or_skip() {
        return;
    }
    let imp = Impl::selected();
    let tmp = tempfile::tempdir().expect("tempdir");
    let reference =
        layers::whiteout_formats(&tmp.path().join("ref"), WhiteoutFormat::Char).expect("layers");
    let expected = {
        let _m = mount_kernel(&reference, true);
        snapshot(&reference.mnt)
    };
    assert!(expected.contains_key("a/y") && expected.contains_key("c/top"));
    assert!(!expected.contains_key("a/x") && !expected.contains_key("c/old"));
    let mut failures = Vec::new();
    for format in WhiteoutFormat::ALL {
        let set = layers::whiteout_formats(&tmp.path().join(format!("{format:?}")), format)
            .expect("layers");
        let got = {
            let _m = imp.mount(&set);
            snapshot(&set.mnt)
        };
        let d = diff("kernel(char 0/0)", &expected, imp.name, &got);
        if !d.is_empty() {
            failures.push(format!("{format:?}:\n  {}", d.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 400 lowers (under the kernel's limit of 500): same tree as the kernel.
#[test]
fn four_hundred_lowers_like_the_kernel() {
    let Some(mut d) = Differential::new(|r| layers::many_lowers(r, 400)) else {
        return;
    };
    d.run(&Op::Read(p("only399")));
    d.run(&Op::Stat(p("only6")));
    d.step(Op::Write(p("common/c399"), p("copied up from the bottom")));
    d.step(Op::Unlink(p("deep/a/b/c/file")));
    d.finish();
}

/// 1000 lowers (the kernel refuses more than 500): spot checks of the merge rules.
#[test]
fn a_thousand_lowers() {
    if !privileged_or_skip() {
        return;
    }
    let imp = Impl::selected();
    let tmp = tempfile::tempdir().expect("tempdir");
    let set = layers::many_lowers(tmp.path(), 1000).expect("layers");
    let _m = imp.mount(&set);
    let m = &set.mnt;
    let read = |r: &str| std::fs::read_to_string(m.join(r)).map_err(|e| e.to_string());
    assert_eq!(read("shadow"), Ok("layer 0".into()), "top-most lower wins");
    assert_eq!(read("only999"), Ok("999".into()));
    assert_eq!(read("deep/a/b/c/file"), Ok("bottom".into()));
    let names: std::collections::BTreeSet<String> = std::fs::read_dir(m.join("common"))
        .expect("readdir common")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    // Lower i (i % 10 == 5) whites out c{i+1}: 100 of the 1000 names are hidden.
    assert_eq!(names.len(), 900, "merged listing of common/");
    assert!(names.contains("c999") && !names.contains("c6") && !names.contains("c996"));
    assert_eq!(errno_of(std::fs::metadata(m.join("only6"))), libc::ENOENT);
    std::fs::write(m.join("common/c999"), "up").expect("copy-up from the 1000th lower");
    assert_eq!(read("common/c999"), Ok("up".into()));
}

/// Names over 255 bytes get ENAMETOOLONG from every operation, as from the kernel.
#[test]
fn names_over_255_bytes() {
    let Some(mut d) = Differential::new(layers::standard) else {
        return;
    };
    let long = "n".repeat(256);
    let ok = "n".repeat(255);
    for op in [
        Op::Stat(long.clone()),
        Op::Write(long.clone(), p("x")),
        Op::Mkdir(format!("d/{long}"), 0o755),
        Op::Mkfifo(long.clone()),
        Op::Symlink(p("t"), long.clone()),
        Op::Link(p("top"), long.clone()),
        Op::Rename(p("top"), long.clone(), 0),
        Op::Unlink(long.clone()),
        Op::Rmdir(long.clone()),
    ] {
        d.step_expect(op, libc::ENAMETOOLONG);
    }
    d.step_expect(Op::Write(ok.clone(), p("x")), 0);
    d.step_expect(Op::Rename(ok, p("d/renamed"), 0), 0);
    d.finish();
}

/// An upper directory holding an OCI `.wh..wh..opq` entry (an upper made by tools
/// that write the OCI format, as fuse-overlayfs reads it) is opaque and the entry
/// invisible; the kernel's reference is the same upper with `trusted.overlay.opaque`.
#[test]
fn an_oci_opaque_marker_in_the_upper_makes_the_directory_opaque() {
    let lower = |root: &std::path::Path, oci: bool| -> anyhow::Result<layers::LayerSet> {
        let set = layers::LayerSet::create(root, 2)?;
        let l = set.lower(1)?;
        l.dir("d", 0o755)?;
        l.file("d/hidden", b"below the opaque dir\n", 0o644)?;
        l.dir("d/sub", 0o755)?;
        l.finish()?;
        let top = set.lower(0)?;
        top.dir("d", 0o755)?;
        top.file("d/also_hidden", b"x", 0o644)?;
        top.finish()?;
        let d = set.upper.join("d");
        std::fs::create_dir(&d)?;
        std::fs::write(d.join("kept"), b"in the upper\n")?;
        if oci {
            std::fs::write(d.join(".wh..wh..opq"), b"")?;
        } else {
            let c = std::ffi::CString::new(d.as_os_str().as_encoded_bytes())?;
            // SAFETY: valid C strings and a value buffer of the length given.
            let r = unsafe {
                libc::setxattr(
                    c.as_ptr(),
                    c"trusted.overlay.opaque".as_ptr(),
                    b"y".as_ptr().cast(),
                    1,
                    0,
                )
            };
            anyhow::ensure!(r == 0, "setxattr: {}", std::io::Error::last_os_error());
        }
        Ok(set)
    };
    let Some(mut d) = Differential::with_layers(|r| lower(r, false), |r| lower(r, true)) else {
        return;
    };
    d.step(Op::ListDir(p("d")));
    d.step(Op::Stat(p("d/hidden")));
    d.step(Op::Stat(p("d/.wh..wh..opq")));
    d.step(Op::Rmdir(p("d/sub")));
    d.step(Op::Write(p("d/new"), p("new\n")));
    d.step(Op::Unlink(p("d/kept")));
    d.step(Op::Unlink(p("d/new")));
    d.step(Op::Rmdir(p("d")));
    d.step(Op::Mkdir(p("d"), 0o755));
    d.remount();
    d.step(Op::ListDir(p("d")));
    d.finish();
}
