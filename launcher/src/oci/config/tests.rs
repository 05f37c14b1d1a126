//! The translation of config.json, without a container.

use super::*;

fn placement(dir: &Path) -> Placement {
    Placement {
        id: "c1".into(),
        state_dir: dir.join("state"),
        exec_fifo: dir.join("state/exec.fifo"),
        console: false,
        new_keyring: true,
        preserve_fds: 0,
    }
}

fn bundle(config: Value) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(d.path().join("rootfs")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.path().join("config.json"), config.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    d
}

fn base() -> Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "box",
        "process": {
            "args": ["sh"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0, "additionalGids": [10]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
            "noNewPrivileges": true
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=1m"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                           {"type": "network", "path": "/proc/1/ns/net"}],
            "resources": {"memory": {"limit": 67108864, "swap": 134217728},
                          "cpu": {"quota": 50000, "period": 100000, "shares": 512},
                          "pids": {"limit": 10}},
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        }
    })
}

#[test]
fn a_full_config_translates() {
    let b = bundle(base());
    let t = load(b.path(), &placement(b.path())).unwrap_or_else(|e| panic!("{e:#}"));
    let s = &t.spec;
    assert_eq!(s.argv, vec!["sh"]);
    assert_eq!(s.user.as_deref(), Some("0:0"));
    assert_eq!(s.additional_gids, vec![10]);
    assert_eq!(s.caps.bounding, vec![5]);
    assert!(s.rootfs_readonly && s.no_new_privs && s.union.is_none());
    assert_eq!(s.hostname, "box");
    assert_eq!(
        s.namespaces.unshare,
        CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS
    );
    assert_eq!(s.namespaces.join.len(), 1);
    assert_eq!(s.network, Network::Host);
    assert_eq!(s.limits.memory, Some(64 << 20));
    assert_eq!(s.limits.cpus, Some(0.5));
    assert_eq!(s.limits.cpu_shares, Some(512));
    assert_eq!(s.limits.memory_swap, Some(128 << 20));
    assert_eq!(s.limits.pids, Some(10));
    assert_eq!(s.rlimits.len(), 1);
    let mounts = s.mounts.clone().unwrap_or_default();
    assert_eq!(mounts[1].flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV);
    assert_eq!(mounts[1].data.as_deref(), Some("mode=1777,size=1m"));
    assert_eq!(t.cgroups_path, PathBuf::from("strata-runtime/c1"));
}

#[test]
fn unsupported_fields_are_named() {
    for (patch, want) in [
        ("/linux/intelRdt", "linux.intelRdt"),
        ("/hooks", "hooks"),
        ("/process/apparmorProfile", "process.apparmorProfile"),
        ("/linux/resources/cpu/cpus", "linux.resources.cpu.cpus"),
    ] {
        let mut c = base();
        let (parent, key) = patch.rsplit_once('/').unwrap_or(("", patch));
        let obj = c.pointer_mut(parent).and_then(Value::as_object_mut);
        let Some(obj) = obj else {
            panic!("no {parent}");
        };
        obj.insert(key.to_string(), serde_json::json!({"x": "y"}));
        let b = bundle(c);
        let err = load(b.path(), &placement(b.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains(want), "{patch}: {err:#}");
    }
}

#[test]
fn a_user_namespace_needs_mappings_and_time_is_refused() {
    for t in ["user", "time"] {
        let mut c = base();
        if let Some(a) = c
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
        {
            a.push(serde_json::json!({"type": t}));
        }
        let b = bundle(c);
        let err = load(b.path(), &placement(b.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("linux.namespaces"), "{err:#}");
    }
}

#[test]
fn mount_options() {
    let m = mount(
        "/data",
        Some("bind"),
        Some(Path::new("/srv")),
        &["rbind".into(), "ro".into(), "rprivate".into()],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(m.bind, Some(Bind::Recursive));
    assert_eq!(m.flags, MsFlags::MS_RDONLY);
    assert_eq!(m.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
    assert!(mount("/x", Some("tmpfs"), None, &["tmpcopyup".into()]).is_err());
    assert!(mount("x", Some("tmpfs"), None, &[]).is_err());
    let c = mount("/sys/fs/cgroup", Some("cgroup"), None, &["ro".into()])
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(c.fstype.as_deref(), Some("cgroup2"));
}

#[test]
fn a_user_namespace_takes_the_mappings() {
    let mut c = base();
    if let Some(a) = c
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    {
        a.push(serde_json::json!({"type": "user"}));
    }
    c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    c["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1001, "size": 1}]);
    let b = bundle(c);
    let t = load(b.path(), &placement(b.path())).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        t.spec.idmap,
        Some(IdMapping::Explicit {
            uid: vec![MapRange {
                container: 0,
                host: 1000,
                count: 1
            }],
            gid: vec![MapRange {
                container: 0,
                host: 1001,
                count: 1
            }],
        })
    );
    // Mappings without a user namespace are refused.
    let mut c = base();
    c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let b = bundle(c);
    assert!(load(b.path(), &placement(b.path())).is_err());
}

#[test]
fn sysctls_must_be_namespaced() {
    let mut c = base();
    c["linux"]["sysctl"] = serde_json::json!({"kernel.shmmax": "1000"});
    c["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "ipc"}]);
    c.as_object_mut().map(|o| o.remove("hostname"));
    let b = bundle(c.clone());
    let t = load(b.path(), &placement(b.path())).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        t.spec.sysctl,
        vec![("kernel.shmmax".to_string(), "1000".to_string())]
    );
    for key in ["net.ipv4.ip_forward", "vm.swappiness", "kernel/../x"] {
        c["linux"]["sysctl"] = serde_json::json!({key: "1"});
        let b = bundle(c.clone());
        let err = load(b.path(), &placement(b.path()))
            .map(|_| ())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("linux.sysctl"),
            "{key}: {err:#}"
        );
    }
}

#[test]
fn rootfs_propagation() {
    let mut c = base();
    c["linux"]["rootfsPropagation"] = serde_json::json!("rslave");
    let b = bundle(c.clone());
    let t = load(b.path(), &placement(b.path())).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        t.spec.rootfs_propagation,
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    );
    c["linux"]["rootfsPropagation"] = serde_json::json!("sideways");
    let b = bundle(c);
    let err = load(b.path(), &placement(b.path()))
        .map(|_| ())
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("linux.rootfsPropagation"),
        "{err:#}"
    );
}
