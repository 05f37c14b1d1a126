//! `strata`: image store and container runtime on stratafs.

fn main() {
    eprintln!("strata: not built yet");
    std::process::exit(125);
}
