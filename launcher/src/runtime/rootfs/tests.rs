//! The rootfs steps' calls, recorded (no root, no container): which mounts, in which
//! order, with which flags, for root and rootless plans, with and without an own
//! network namespace, with volumes, masked and read-only paths; and that a failing
//! call stops the steps with an error naming where.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag, makedev};
use nix::sys::statvfs::FsFlags;

use super::super::devices::DEVICES;
use super::super::spec::Volume;
use super::super::syscall::recording::{Call, MountCall, RecordingSyscall};
use super::{MASKED_PATHS, READONLY_PATHS, RootfsPlan, finish, move_root, pivot, prepare};

const NOSUID: MsFlags = MsFlags::MS_NOSUID;
const NODEV: MsFlags = MsFlags::MS_NODEV;
const NOEXEC: MsFlags = MsFlags::MS_NOEXEC;
const RDONLY: MsFlags = MsFlags::MS_RDONLY;
const BIND: MsFlags = MsFlags::MS_BIND;
const REC: MsFlags = MsFlags::MS_REC;
const REMOUNT_RO: MsFlags = MsFlags::MS_REMOUNT
    .union(MsFlags::MS_BIND)
    .union(MsFlags::MS_RDONLY);

fn m(
    source: Option<&str>,
    fstype: Option<&str>,
    target: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> MountCall {
    (
        source.map(str::to_string),
        fstype.map(str::to_string),
        target.to_string(),
        flags,
        data.map(str::to_string),
    )
}

fn proc_mount() -> MountCall {
    m(
        Some("proc"),
        Some("proc"),
        "proc",
        NOSUID | NODEV | NOEXEC,
        None,
    )
}

fn dev_tmpfs() -> MountCall {
    m(
        Some("tmpfs"),
        Some("tmpfs"),
        "dev",
        NOSUID | MsFlags::MS_STRICTATIME | NOEXEC,
        Some("mode=755,size=65536k"),
    )
}

fn devpts(data: &str) -> MountCall {
    m(
        Some("devpts"),
        Some("devpts"),
        "dev/pts",
        NOSUID | NOEXEC,
        Some(data),
    )
}

fn shm() -> MountCall {
    m(
        Some("shm"),
        Some("tmpfs"),
        "dev/shm",
        NOSUID | NOEXEC | NODEV,
        Some("mode=1777,size=65536k"),
    )
}

fn fresh_sysfs() -> MountCall {
    m(
        Some("sysfs"),
        Some("sysfs"),
        "sys",
        NOSUID | NODEV | NOEXEC | RDONLY,
        None,
    )
}

/// A temporary directory standing for the union mount point.
fn rootfs() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary rootfs")
}

fn plan<'a>(
    root: &'a Path,
    rootless: bool,
    own_netns: bool,
    volumes: &'a [Volume],
) -> RootfsPlan<'a> {
    RootfsPlan {
        rootfs: root,
        rootless,
        own_netns,
        volumes,
        mounts: None,
    }
}

#[test]
fn root_without_own_netns_makes_nodes_and_mounts_fresh_sysfs() {
    let root = rootfs();
    let sys = RecordingSyscall::new();
    prepare(&sys, &plan(root.path(), false, false, &[])).expect("prepare");
    assert_eq!(
        sys.mounts_under(root.path()),
        vec![
            proc_mount(),
            dev_tmpfs(),
            devpts("newinstance,ptmxmode=0666,mode=0620,gid=5"),
            shm(),
            fresh_sysfs(),
        ]
    );
    // Every device node made with mknod, then chmod'ed past the umask.
    let nodes: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Mknod { .. } | Call::Chmod { .. }))
        .collect();
    let want: Vec<Call> = DEVICES
        .iter()
        .flat_map(|(name, major, minor)| {
            let path = root.path().join("dev").join(name);
            [
                Call::Mknod {
                    path: path.clone(),
                    kind: SFlag::S_IFCHR,
                    perm: Mode::from_bits_truncate(0o666),
                    dev: makedev(*major, *minor),
                },
                Call::Chmod {
                    path,
                    mode: Mode::from_bits_truncate(0o666),
                },
            ]
        })
        .collect();
    assert_eq!(nodes, want);
    // The symlinks /dev always has are made for real.
    let ptmx = std::fs::read_link(root.path().join("dev/ptmx")).expect("dev/ptmx symlink");
    assert_eq!(ptmx, PathBuf::from("pts/ptmx"));
}

#[test]
fn rootless_without_own_netns_binds_devices_and_a_read_only_host_sys() {
    let root = rootfs();
    let mut sys = RecordingSyscall::new();
    // What a user namespace locks on the host's /sys: kept on the read-only remount.
    sys.fs_flags = FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC;
    prepare(&sys, &plan(root.path(), true, false, &[])).expect("prepare");
    let mut want = vec![proc_mount(), dev_tmpfs()];
    for (name, _, _) in DEVICES {
        let host = format!("/dev/{name}");
        want.push(m(Some(&host), None, &format!("dev/{name}"), BIND, None));
    }
    want.extend([
        devpts("newinstance,ptmxmode=0666,mode=0620"),
        shm(),
        m(Some("/sys"), None, "sys", BIND | REC, None),
        m(
            None,
            None,
            "sys",
            REMOUNT_RO | NOSUID | NODEV | NOEXEC,
            None,
        ),
    ]);
    assert_eq!(sys.mounts_under(root.path()), want);
    assert!(
        !sys.calls().iter().any(|c| matches!(c, Call::Mknod { .. })),
        "no mknod in a user namespace"
    );
    // The bind targets exist as empty files.
    assert!(root.path().join("dev/null").is_file());
}

#[test]
fn rootless_with_own_netns_mounts_fresh_sysfs() {
    let root = rootfs();
    let sys = RecordingSyscall::new();
    prepare(&sys, &plan(root.path(), true, true, &[])).expect("prepare");
    let mounts = sys.mounts_under(root.path());
    assert_eq!(mounts.last(), Some(&fresh_sysfs()));
    assert!(
        !mounts
            .iter()
            .any(|(_, _, target, flags, _)| target == "sys" && flags.contains(BIND))
    );
}

#[test]
fn a_refused_sysfs_falls_back_to_binding_the_hosts() {
    let root = rootfs();
    let sys = RecordingSyscall::new().fail_when(
        |c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs"),
        Errno::EPERM,
    );
    prepare(&sys, &plan(root.path(), true, true, &[])).expect("prepare");
    let mounts = sys.mounts_under(root.path());
    assert_eq!(
        mounts[mounts.len() - 3..],
        [
            fresh_sysfs(),
            m(Some("/sys"), None, "sys", BIND | REC, None),
            m(None, None, "sys", REMOUNT_RO, None),
        ]
    );
}

#[test]
fn volumes_are_bound_after_sys_and_read_only_ones_remounted() {
    let host = tempfile::tempdir().expect("host dir");
    let data = host.path().join("data");
    std::fs::create_dir(&data).expect("volume dir");
    let conf = host.path().join("app.conf");
    std::fs::write(&conf, "x").expect("volume file");
    let volumes = [
        Volume {
            source: data.clone(),
            target: PathBuf::from("/srv/data"),
            readonly: false,
        },
        Volume {
            source: conf.clone(),
            target: PathBuf::from("/etc/app.conf"),
            readonly: true,
        },
    ];
    let root = rootfs();
    let sys = RecordingSyscall::new();
    prepare(&sys, &plan(root.path(), false, true, &volumes)).expect("prepare");
    let mounts = sys.mounts_under(root.path());
    let data_s = data.display().to_string();
    let conf_s = conf.display().to_string();
    assert_eq!(
        mounts[mounts.len() - 4..],
        [
            fresh_sysfs(),
            m(Some(&data_s), None, "srv/data", BIND | REC, None),
            m(Some(&conf_s), None, "etc/app.conf", BIND | REC, None),
            m(None, None, "etc/app.conf", REMOUNT_RO, None),
        ]
    );
    // Targets made with the kind of their source.
    assert!(root.path().join("srv/data").is_dir());
    assert!(root.path().join("etc/app.conf").is_file());
}

#[test]
fn a_failed_mount_stops_the_steps_and_names_its_target() {
    let root = rootfs();
    let sys = RecordingSyscall::new().fail_when(
        |c| matches!(c, Call::Mount { target, .. } if target.ends_with("dev/pts")),
        Errno::EACCES,
    );
    let err = prepare(&sys, &plan(root.path(), false, false, &[])).expect_err("must fail");
    let msg = format!("{err:#}");
    let pts = root.path().join("dev/pts");
    assert!(
        msg.contains(&format!("at {}", pts.display())),
        "message names the target: {msg}"
    );
    assert!(msg.contains("devpts"), "message names the fs type: {msg}");
    assert!(
        msg.contains(Errno::EACCES.desc()),
        "message has the errno: {msg}"
    );
    let mounts = sys.mounts_under(root.path());
    assert_eq!(mounts.last().map(|m| m.2.as_str()), Some("dev/pts"));
}

#[test]
fn a_failed_read_only_remount_of_a_volume_names_it() {
    let host = tempfile::tempdir().expect("host dir");
    let volumes = [Volume {
        source: host.path().to_path_buf(),
        target: PathBuf::from("/ro"),
        readonly: true,
    }];
    let root = rootfs();
    let sys = RecordingSyscall::new().fail_when(
        |c| matches!(c, Call::Mount { flags, .. } if flags.contains(MsFlags::MS_REMOUNT)),
        Errno::EPERM,
    );
    let err = prepare(&sys, &plan(root.path(), false, true, &volumes)).expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&root.path().join("ro").display().to_string()),
        "message names the volume's target: {msg}"
    );
}

#[test]
fn masked_paths_hide_dirs_under_tmpfs_and_files_under_dev_null() {
    let root = rootfs();
    let r = root.path();
    for d in ["proc/acpi", "sys/firmware", "proc/sys"] {
        std::fs::create_dir_all(r.join(d)).expect("dir");
    }
    for f in ["proc/kcore", "proc/sysrq-trigger"] {
        std::fs::write(r.join(f), "").expect("file");
    }
    let sys = RecordingSyscall::new();
    finish(&sys, r, MASKED_PATHS, READONLY_PATHS).expect("finish");
    let masked_dir = |t: &str| m(Some("tmpfs"), Some("tmpfs"), t, RDONLY, Some("size=0"));
    let read_only = |t: &str| {
        [
            m(Some(t), None, t, BIND | REC, None),
            m(None, None, t, REMOUNT_RO, None),
        ]
    };
    let mut want = vec![
        masked_dir("proc/acpi"),
        m(Some("/dev/null"), None, "proc/kcore", BIND, None),
        masked_dir("sys/firmware"),
    ];
    want.extend(read_only("proc/sys"));
    want.extend(read_only("proc/sysrq-trigger"));
    assert_eq!(sys.mounts_under(r), want);
}

#[test]
fn a_failed_mask_names_the_path() {
    let root = rootfs();
    std::fs::create_dir_all(root.path().join("proc")).expect("proc");
    std::fs::write(root.path().join("proc/keys"), "").expect("file");
    let sys = RecordingSyscall::new().fail_when(|_| true, Errno::EPERM);
    let err = finish(&sys, root.path(), MASKED_PATHS, READONLY_PATHS).expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&root.path().join("proc/keys").display().to_string()),
        "{msg}"
    );
}

#[test]
fn pivot_stacks_the_old_root_and_detaches_it() {
    let sys = RecordingSyscall::new();
    pivot(&sys, Path::new("/c/merged")).expect("pivot");
    let here = PathBuf::from(".");
    assert_eq!(
        sys.calls(),
        vec![
            Call::Chdir(PathBuf::from("/c/merged")),
            Call::PivotRoot {
                new_root: here.clone(),
                put_old: here.clone(),
            },
            Call::Umount2 {
                target: here,
                flags: MntFlags::MNT_DETACH,
            },
            Call::Chdir(PathBuf::from("/")),
        ]
    );
}

#[test]
fn no_pivot_moves_the_rootfs_onto_slash_and_chroots() {
    let sys = RecordingSyscall::new();
    move_root(&sys, Path::new("/c/merged")).expect("move_root");
    let here = PathBuf::from(".");
    assert_eq!(
        sys.calls(),
        vec![
            Call::Chdir(PathBuf::from("/c/merged")),
            Call::Mount {
                source: Some(here.clone()),
                target: PathBuf::from("/"),
                fstype: None,
                flags: MsFlags::MS_MOVE,
                data: None,
            },
            Call::Chroot(here),
            Call::Chdir(PathBuf::from("/")),
        ]
    );
    let sys = RecordingSyscall::new().fail_when(|c| matches!(c, Call::Mount { .. }), Errno::EINVAL);
    let err = move_root(&sys, Path::new("/c/merged")).expect_err("must fail");
    assert!(format!("{err:#}").contains("/c/merged"), "{err:#}");
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Chroot(_))));
}

#[test]
fn pivot_falls_back_to_chroot_only_on_einval() {
    let sys =
        RecordingSyscall::new().fail_when(|c| matches!(c, Call::PivotRoot { .. }), Errno::EINVAL);
    pivot(&sys, Path::new("/c/merged")).expect("pivot");
    let calls = sys.calls();
    assert_eq!(calls.get(2), Some(&Call::Chroot(PathBuf::from("."))));
    assert_eq!(calls.last(), Some(&Call::Chdir(PathBuf::from("/"))));

    let sys =
        RecordingSyscall::new().fail_when(|c| matches!(c, Call::PivotRoot { .. }), Errno::EPERM);
    let err = pivot(&sys, Path::new("/c/merged")).expect_err("must fail");
    assert!(format!("{err:#}").contains("pivot_root into /c/merged"));
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Chroot(_))));
}
