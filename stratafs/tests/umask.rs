//! The caller's umask, and a parent's default ACL in its place: every way of creating
//! an object (open with O_CREAT, mkdir, mknod of a fifo, O_TMPFILE, symlink) run by
//! children with umask 0, 002, 022, 027 and 077, in an upper directory, in a lower
//! directory (copied up by the create) and in directories with a default ACL, must give
//! the modes and ACLs kernel overlayfs gives.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use fixtures::layers::LayerSet;

const UMASKS: [u32; 5] = [0, 0o002, 0o022, 0o027, 0o077];

fn layers(root: &Path) -> anyhow::Result<LayerSet> {
    let set = LayerSet::create(root, 1)?;
    let l = set.lower(0)?;
    for u in UMASKS {
        l.dir(&format!("lower{u:03o}"), 0o777)?;
    }
    l.finish()?;
    Ok(set)
}

/// Every kind of create, in `dir`, by a child with umask `u`.
fn creates(d: &mut Differential, dir: &str, u: u32) {
    let c = Caller::root(u);
    d.step_as(Op::Create(format!("{dir}/f777"), 0o777), c);
    d.step_as(Op::Create(format!("{dir}/f666"), 0o666), c);
    d.step_as(Op::Create(format!("{dir}/f4777"), 0o4777), c);
    d.step_as(Op::Mkdir(format!("{dir}/d777"), 0o777), c);
    d.step_as(Op::Mkdir(format!("{dir}/d1777"), 0o1777), c);
    d.step_as(Op::Mkfifo(format!("{dir}/p")), c);
    d.step_as(Op::Symlink(p("target"), format!("{dir}/s")), c);
    d.step_as(Op::TmpFile(dir.to_string(), p("t")), c);
}

#[test]
fn creates_follow_the_callers_umask() {
    let Some(mut d) = Differential::new(layers) else {
        return;
    };
    for u in UMASKS {
        let upper = format!("upper{u:03o}");
        d.step(Op::Mkdir(upper.clone(), 0o777));
        d.step(Op::Chmod(upper.clone(), 0o777));
        creates(&mut d, &upper, u);
        creates(&mut d, &format!("lower{u:03o}"), u);
    }
    d.compare_upper("after the creates");
    d.finish();
}

/// `setfacl ARGS path` on both mounts (package acl, `scripts/deps`).
fn setfacl(d: &mut Differential, args: &[&str], rel: &str) {
    for m in [d.km().to_path_buf(), d.um().to_path_buf()] {
        let out = Command::new("setfacl")
            .args(args)
            .arg(m.join(rel))
            .output()
            .expect("run setfacl (package acl: scripts/deps installs it)");
        assert!(
            out.status.success(),
            "setfacl {args:?} {}: {}",
            m.join(rel).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `getfacl` of every object under `rel`, paths relative to the mount.
fn acls(m: &Path, rel: &str) -> String {
    let out = Command::new("getfacl")
        .args(["-R", "-p", "-n"])
        .arg(rel)
        .current_dir(m)
        .output()
        .expect("run getfacl");
    // One block per object, in the order the directories list them: sorted.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.is_empty()).collect();
    blocks.sort();
    blocks.join("\n\n")
}

#[test]
fn a_default_acl_takes_the_umasks_place() {
    let Some(mut d) = Differential::new(layers) else {
        return;
    };
    for u in UMASKS {
        // A default ACL granting everyone everything, and one with a restrictive mask.
        let open = format!("open{u:03o}");
        d.step(Op::Mkdir(open.clone(), 0o755));
        setfacl(&mut d, &["-d", "-m", "u::rwx,g::rwx,o::rwx"], &open);
        creates(&mut d, &open, u);
        let masked = format!("masked{u:03o}");
        d.step(Op::Mkdir(masked.clone(), 0o755));
        setfacl(
            &mut d,
            &["-d", "-m", "u::rwx,g::r-x,o::--x,u:65534:rwx,m::r-x"],
            &masked,
        );
        creates(&mut d, &masked, u);
        // A lower directory given a default ACL through the mount (copied up).
        let lower = format!("lower{u:03o}");
        setfacl(&mut d, &["-d", "-m", "u::rwx,g::rwx,o::r-x"], &lower);
        creates(&mut d, &lower, u);
    }
    d.compare_with("getfacl -R", |m| acls(m, "."));
    d.finish();
}
