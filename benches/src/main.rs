//! Runs the same workloads on stratafs, kernel overlayfs, fuse-overlayfs and the plain
//! directory, and prints one table.

fn main() {
    println!("benches: not built yet");
}
