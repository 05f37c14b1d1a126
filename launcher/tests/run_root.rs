//! `strata run` as root with kernel overlayfs: namespaces, rootfs, exit codes, cleanup.

mod common;

use common::*;

fn run_kernel(args: &[&str]) -> std::process::Output {
    let mut all = vec!["run", "--rm", "--driver", "kernel"];
    all.extend_from_slice(args);
    run_strata(demo_store(), &all)
}

#[test]
fn pid_hostname_and_uid() {
    if skip_unless_root() {
        return;
    }
    let o = run_kernel(&[
        "--hostname",
        "box1",
        "demo",
        "/bin/sh",
        "-c",
        "echo $$ $(hostname) $(id -u)",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "1 box1 0", "{}", show(&o));
}
