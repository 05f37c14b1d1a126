//! The FUSE request decoder and handlers: any bytes, cut into requests by their own
//! length fields, served one after the other by an overlay over a small lower and an
//! upper in a scratch dir (not mounted), end in replies, never a panic.
#![no_main]

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;
use stratafs::options::{Command, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(scratch) = tempfile::tempdir() else {
        return;
    };
    let d = scratch.path();
    for sub in ["lower/dir/sub", "upper", "work", "mnt"] {
        if std::fs::create_dir_all(d.join(sub)).is_err() {
            return;
        }
    }
    for (name, body) in [
        ("lower/a", "a\n"),
        ("lower/dir/b", "bb\n"),
        ("lower/dir/sub/c", ""),
    ] {
        if std::fs::write(d.join(name), body).is_err() {
            return;
        }
    }
    let opts = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        d.display()
    );
    let argv: Vec<OsString> = vec![
        "stratafs".into(),
        "-o".into(),
        opts.into(),
        d.join("mnt").into(),
    ];
    let Ok(Command::Mount(cfg)) = parse(&argv) else {
        return;
    };
    let Ok(fs) = stratafs::cli::unmounted_fs(&cfg) else {
        return;
    };
    let mut out = vec![0u8; 1 << 20];
    let mut rest = data;
    while rest.len() >= 4 {
        let claimed = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let len = claimed.clamp(1, rest.len());
        let _ = stratafs::transport::serve_bytes(&fs, &rest[..len], &mut out);
        rest = &rest[len..];
    }
});
