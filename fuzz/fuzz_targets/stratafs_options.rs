//! stratafs' command line: any `-o` string (and a mount point) parses to a command or a
//! usage error, never a panic.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let opts = parts.next().unwrap_or_default().to_vec();
    let rest = parts.next().unwrap_or(b"/mnt").to_vec();
    let argv = vec![
        OsString::from("stratafs"),
        OsString::from("-o"),
        OsString::from_vec(opts),
        OsString::from_vec(rest),
    ];
    let _ = stratafs::options::parse(&argv);
});
