//! `stratafs`: the FUSE overlay daemon, called like fuse-overlayfs and mount.fuse3.

fn main() -> std::process::ExitCode {
    stratafs::cli::main(std::env::args_os().collect())
}
