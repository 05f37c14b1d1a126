//! Round trips with real tools and real kernel overlayfs: images built by umoci and
//! converted by skopeo are imported; exports are accepted by skopeo and umoci; a
//! container changed through a kernel overlay mount is diffed, committed and exported.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use fixtures::images::{ImageFormat, build_demo_image};
use sha2::{Digest, Sha256};
use store::Store;
use store::export::ArchiveFormat;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !ci(),
            "CI=true but {tool} is missing (scripts/deps installs it)"
        );
        eprintln!("skipping: {tool} not installed");
    }
    ok
}

fn root() -> bool {
    let ok = nix::unistd::geteuid().is_root();
    if !ok {
        assert!(!ci(), "CI=true but not root");
        eprintln!("skipping: needs root");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(script: &str) {
    run(Command::new("sh").arg("-ec").arg(script));
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn open(dir: &Path) -> Store {
    Store::open(Some(dir.join("root"))).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn umoci_and_skopeo_images_import_and_export() {
    if !root() || !have("umoci") || !have("skopeo") || !Path::new("/bin/busybox").is_file() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path().display().to_string();
    sh(&format!(
        "cd {d}
         umoci init --layout lay
         umoci new --image lay:t
         umoci unpack --image lay:t b
         mkdir -p b/rootfs/bin b/rootfs/opt/app/sub b/rootfs/etc
         cp /bin/busybox b/rootfs/bin/busybox; ln -s busybox b/rootfs/bin/sh
         echo gone > b/rootfs/etc/legacy; echo old > b/rootfs/opt/app/sub/old; chmod 0640 b/rootfs/opt/app/sub/old
         umoci repack --refresh-bundle --image lay:t b
         rm b/rootfs/etc/legacy; echo hi > b/rootfs/etc/motd
         umoci repack --refresh-bundle --image lay:t b
         rm -rf b/rootfs/opt/app; mkdir b/rootfs/opt/app; echo new > b/rootfs/opt/app/new
         umoci repack --refresh-bundle --image lay:t b
         skopeo copy oci:lay:t oci-archive:img.oci.tar:demo:t
         skopeo copy oci:lay:t docker-archive:img.docker.tar:demo:t"
    ));
    let config = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        &format!("oci:{d}/lay:t"),
    ]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_else(|e| panic!("{e}"));
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(diff_ids.len() >= 3);
    let mut chains: Vec<String> = Vec::new();
    for id in &diff_ids {
        let c = match chains.last() {
            None => id.clone(),
            Some(p) => sha(format!("{p} {id}").as_bytes()),
        };
        chains.push(c);
    }
    for src in ["lay", "img.oci.tar", "img.docker.tar"] {
        let store = open(&dir.path().join(format!("s-{src}")));
        let imgs = store::import::import(&store, &dir.path().join(src), Some("umo:t"))
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        let img = &imgs[0];
        let got: Vec<String> = img.layers.iter().map(|l| l.chain_id.clone()).collect();
        assert_eq!(got, chains, "{src}");
        let lowers = store.lower_dirs(img).unwrap_or_else(|e| panic!("{e}"));
        let base = &lowers[lowers.len() - 1];
        let old = fs::metadata(base.join("opt/app/sub/old")).unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(old.permissions().mode() & 0o777, 0o640, "{src}");
        // Mount the image with kernel overlayfs: the whiteout and the replaced dir apply.
        let mnt = dir.path().join(format!("m-{src}"));
        fs::create_dir(&mnt).unwrap_or_else(|e| panic!("{e}"));
        let lowerdir = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        run(Command::new("mount")
            .args([
                "-t",
                "overlay",
                "overlay",
                "-o",
                &format!("lowerdir={lowerdir}"),
            ])
            .arg(&mnt));
        let motd = fs::read_to_string(mnt.join("etc/motd"));
        let legacy = mnt.join("etc/legacy").exists();
        let sub = mnt.join("opt/app/sub").exists();
        let new = mnt.join("opt/app/new").exists();
        run(Command::new("umount").arg(&mnt));
        assert_eq!(motd.ok().as_deref(), Some("hi\n"));
        assert!(
            !legacy && !sub && new,
            "{src}: legacy={legacy} sub={sub} new={new}"
        );
        // Export back; skopeo and umoci accept it.
        let out = dir.path().join(format!("out-{src}.tar"));
        store::export::export_image(&store, "umo:t", ArchiveFormat::OciArchive, &out)
            .unwrap_or_else(|e| panic!("{e}"));
        let unpacked = dir.path().join(format!("u-{src}"));
        run(Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}", out.display()))
            .arg(format!("oci:{}:x", unpacked.display())));
        let bundle = dir.path().join(format!("bundle-{src}"));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:x", unpacked.display()))
            .arg(&bundle));
        assert!(bundle.join("rootfs/opt/app/new").is_file());
        assert!(!bundle.join("rootfs/etc/legacy").exists());
        let dout = dir.path().join(format!("out-{src}.docker.tar"));
        store::export::export_image(&store, "umo:t", ArchiveFormat::DockerArchive, &dout)
            .unwrap_or_else(|e| panic!("{e}"));
        let inspect = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", dout.display())));
        assert!(inspect.contains("umo:t") || inspect.contains("Layers"));
    }
}

#[test]
fn container_diff_commit_export_via_kernel_overlay() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let demo = build_demo_image(&dir.path().join("demo.tar"), ImageFormat::DockerArchive)
        .unwrap_or_else(|e| panic!("{e}"));
    store::import::import(&store, &demo, None).unwrap_or_else(|e| panic!("{e}"));
    let img = store
        .resolve_image("demo")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = store
        .create_container(&img, Some("box"), "box")
        .unwrap_or_else(|e| panic!("{e}"));
    let lowers = store
        .container_lower_dirs(&c)
        .unwrap_or_else(|e| panic!("{e}"));
    let lowerdir = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        c.upper.display(),
        c.work.display()
    );
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&c.merged));
    let m = c.merged.display().to_string();
    let changed = std::panic::catch_unwind(|| {
        sh(&format!(
            "cd {m}; echo changed > etc/motd; echo new > added; rm etc/passwd; rm -rf opt/app; mkdir opt/app; echo fresh > opt/app/only"
        ))
    });
    run(Command::new("umount").arg(&c.merged));
    assert!(changed.is_ok());
    assert_eq!(
        fs::read_to_string(c.init_layer.join("etc/hostname"))
            .ok()
            .as_deref(),
        Some("box\n")
    );
    let changes: Vec<String> = store
        .container_changes(&c)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|ch| format!("{} {}", ch.kind.letter(), ch.path))
        .collect();
    for want in [
        "A /added",
        "C /etc/motd",
        "D /etc/passwd",
        "C /opt/app",
        "A /opt/app/only",
    ] {
        assert!(
            changes.contains(&want.to_string()),
            "{want} missing from {changes:?}"
        );
    }
    // commit: the new top layer holds OCI whiteouts
    let new = store::build::commit_container(&store, "box", "demo:committed")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new.layers.len(), img.layers.len() + 1);
    let top = store
        .blob_path(&new.layers[new.layers.len() - 1].blob_digest)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(&top).unwrap_or_else(|e| panic!("{e}")));
    for e in ar.entries().unwrap_or_else(|e| panic!("{e}")).flatten() {
        names.push(String::from_utf8_lossy(&e.path_bytes()).into_owned());
    }
    assert!(names.iter().any(|n| n == "etc/.wh.passwd"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "opt/app/.wh..wh..opq"),
        "{names:?}"
    );
    let newlowers = store.lower_dirs(&new).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        fs::symlink_metadata(newlowers[0].join("etc/passwd")).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_char_device()
        })
    );
    // export: the flattened rootfs
    let out = dir.path().join("rootfs.tar");
    store
        .export_container_to_file(&c, &out)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut files = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(fs::File::open(&out).unwrap_or_else(|e| panic!("{e}")));
    for e in ar.entries().unwrap_or_else(|e| panic!("{e}")).flatten() {
        let mut e = e;
        let name = String::from_utf8_lossy(&e.path_bytes())
            .trim_end_matches('/')
            .to_string();
        let mut s = String::new();
        if e.header().entry_type().is_file() {
            let _ = e.read_to_string(&mut s);
        }
        files.insert(name, s);
    }
    assert_eq!(files.get("etc/motd").map(String::as_str), Some("changed\n"));
    assert_eq!(files.get("etc/hostname").map(String::as_str), Some("box\n"));
    assert!(files.contains_key("bin/busybox") || files.contains_key("bin/sh"));
    for gone in [
        "etc/passwd",
        "etc/legacy.conf",
        "opt/app/config",
        "opt/app/old-config",
    ] {
        assert!(!files.contains_key(gone), "{gone} should not be exported");
    }
    assert!(files.contains_key("opt/app/only"));
    // prune keeps what images use; rm refuses while the container exists
    assert!(store.remove_image("demo:latest").is_err());
    store
        .remove_container("box")
        .unwrap_or_else(|e| panic!("{e}"));
    let before = store.images().map(|v| v.len()).unwrap_or(0);
    store.prune().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.images().map(|v| v.len()).unwrap_or(0), before);
    assert!(store.lower_dirs(&new).is_ok());
}
