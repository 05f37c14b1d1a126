//! The `stratafs` command line: fuse-overlayfs' and mount.fuse3's calling convention.

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs stratafs with `args` (argv, including argv[0]) exactly as the `stratafs` binary
/// does: parses options, mounts, daemonizes unless `-f`, serves until unmounted.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let _ = args;
    eprintln!("stratafs: not implemented yet");
    ExitCode::FAILURE
}
