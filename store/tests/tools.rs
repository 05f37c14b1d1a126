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
    let (img, c, _) = change_in_container(
        &store,
        &demo,
        "demo",
        "box",
        "",
        "echo changed > etc/motd; echo new > added; rm etc/passwd; rm -rf opt/app; mkdir opt/app; echo fresh > opt/app/only",
    );
    assert_eq!(
        fs::read_to_string(c.init_layer.join("etc/hostname"))
            .ok()
            .as_deref(),
        Some("box\n")
    );
    let changes = diff_lines(&store, &c);
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
    let new = store::new_image::commit_container(&store, "box", "demo:committed")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new.layers.len(), img.layers.len() + 1);
    let top = store
        .blob_path(&new.layers[new.layers.len() - 1].blob_digest)
        .unwrap_or_else(|e| panic!("{e}"));
    let (names, _, _) = tar_listing(&top);
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
    let (_, _, files) = tar_listing(&out);
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

/// `path type mode content` lines for the tree under `root` (not following symlinks),
/// leaving out the top-level names in `skip`.
fn snapshot(root: &Path, skip: &[&str]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(dir: &Path, rel: &str, skip: &[&str], out: &mut Vec<String>) {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            if rel.is_empty() && skip.contains(&n.as_str()) {
                continue;
            }
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let p = dir.join(&n);
            let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{e}"));
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.push(format!("{r} dir {mode:o}"));
                walk(&p, &r, skip, out);
            } else if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap_or_else(|e| panic!("{e}"));
                out.push(format!("{r} link {}", t.display()));
            } else {
                let data = fs::read(&p).unwrap_or_else(|e| panic!("{e}"));
                out.push(format!(
                    "{r} file {mode:o} {}",
                    String::from_utf8_lossy(&data).trim()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", skip, &mut out);
    out
}

fn mount_overlay(lowers: &[std::path::PathBuf], rest: &str, at: &Path) {
    let lowerdir = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={lowerdir}{rest}"))
        .arg(at));
}

/// Names and PAX keys of a layer tar.
fn tar_listing(
    blob: &Path,
) -> (
    Vec<String>,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
) {
    let (mut names, mut keys, mut data) =
        (Vec::new(), Vec::new(), std::collections::BTreeMap::new());
    let mut ar = tar::Archive::new(fs::File::open(blob).unwrap_or_else(|e| panic!("{e}")));
    for e in ar.entries().unwrap_or_else(|e| panic!("{e}")) {
        let mut e = e.unwrap_or_else(|e| panic!("{e}"));
        let name = String::from_utf8_lossy(&e.path_bytes())
            .trim_end_matches('/')
            .to_string();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts.flatten() {
                keys.push(x.key().unwrap_or("?").to_string());
            }
        }
        let mut s = String::new();
        if e.header().entry_type().is_file() {
            let _ = e.read_to_string(&mut s);
        }
        data.insert(name.clone(), s);
        names.push(name);
    }
    (names, keys, data)
}

/// `strata diff` output as `K /path` lines.
fn diff_lines(store: &Store, c: &store::Container) -> Vec<String> {
    store
        .container_changes(c)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|ch| format!("{} {}", ch.kind.letter(), ch.path))
        .collect()
}

/// Imports `archive`, creates container `name` of `image`, mounts kernel overlayfs
/// over it (`opts` appended to the mount options), runs `script` in the merged dir,
/// snapshots the merged tree (without /etc) and unmounts.
fn change_in_container(
    store: &Store,
    archive: &Path,
    image: &str,
    name: &str,
    opts: &str,
    script: &str,
) -> (store::Image, store::Container, Vec<String>) {
    store::import::import(store, archive, None).unwrap_or_else(|e| panic!("{e}"));
    let img = store.resolve_image(image).unwrap_or_else(|e| panic!("{e}"));
    let c = store
        .create_container(&img, Some(name), name)
        .unwrap_or_else(|e| panic!("{e}"));
    let lowers = store
        .container_lower_dirs(&c)
        .unwrap_or_else(|e| panic!("{e}"));
    let rest = format!(
        ",upperdir={},workdir={}{opts}",
        c.upper.display(),
        c.work.display()
    );
    mount_overlay(&lowers, &rest, &c.merged);
    let m = c.merged.display().to_string();
    let changed = std::panic::catch_unwind(|| {
        sh(&format!("cd {m}\n{script}"));
        snapshot(&c.merged, &["etc"])
    });
    run(Command::new("umount").arg(&c.merged));
    let snap = changed.unwrap_or_else(|_| panic!("changing the merged tree failed"));
    (img, c, snap)
}

#[test]
fn renamed_lower_dirs_commit_diff_export_via_kernel_overlay() {
    use fixtures::images::{Compression, Entry, ImageSpec, LayerSpec, write_image};
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let d = |p: &str| Entry::Dir {
        path: p.into(),
        mode: 0o755,
    };
    let f = |p: &str, s: &str| Entry::File {
        path: p.into(),
        mode: 0o644,
        data: s.as_bytes().to_vec(),
    };
    let layer = |entries| LayerSpec {
        entries,
        compression: Compression::Gzip,
        created_by: "t".into(),
    };
    let spec = ImageSpec {
        layers: vec![
            layer(vec![
                d("a"),
                d("a/sub"),
                d("b"),
                d("d"),
                d("n"),
                f("a/x", "x"),
                f("a/keep", "keep"),
                f("a/sub/y", "y"),
                f("a/sub/w", "w"),
                Entry::Symlink {
                    path: "a/link".into(),
                    target: "keep".into(),
                },
                f("b/f", "bf"),
                f("d/old", "old"),
                f("n/stale", "stale"),
                f("top.txt", "top data"),
            ]),
            layer(vec![
                d("a"),
                f("a/z", "z"),
                d("a/sub"),
                Entry::Whiteout {
                    path: "a/sub/w".into(),
                },
                d("d"),
                Entry::Opaque { dir: "d".into() },
                f("d/new", "new"),
            ]),
        ],
        config: serde_json::json!({"Cmd": ["/bin/sh"]}),
        tag: Some("ren:1".into()),
    };
    let archive = write_image(
        &spec,
        &dir.path().join("ren.tar"),
        ImageFormat::DockerArchive,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_, c, before) = change_in_container(
        &store,
        &archive,
        "ren:1",
        "mv",
        ",redirect_dir=on,index=on,metacopy=on",
        "mv a a2; rm a2/x; echo added > a2/added; echo mod > a2/sub/y
         rm -rf n; mv d n
         mkdir e; mv b e/b2; mv a2/sub e/sub2
         chmod 600 top.txt a2/keep",
    );
    for want in [
        "a2/keep file 600 keep",
        "a2/z file 644 z",
        "n/new file 644 new",
        "e/b2/f file 644 bf",
        "e/sub2/y file 644 mod",
        "top.txt file 600 top data",
    ] {
        assert!(
            before.contains(&want.to_string()),
            "{want} not in {before:?}"
        );
    }
    // The upper really holds redirects and metacopy files.
    let redirect = |p: &Path| {
        let mut buf = [0u8; 256];
        rustix::fs::lgetxattr(p, "trusted.overlay.redirect", &mut buf[..])
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
            .ok()
    };
    assert_eq!(redirect(&c.upper.join("a2")).as_deref(), Some("a"));
    assert_eq!(redirect(&c.upper.join("e/sub2")).as_deref(), Some("/a/sub"));
    let mut buf = [0u8; 64];
    assert!(
        rustix::fs::lgetxattr(
            c.upper.join("top.txt"),
            "trusted.overlay.metacopy",
            &mut buf[..]
        )
        .is_ok(),
        "top.txt was not copied up metadata-only"
    );

    // diff
    let changes = diff_lines(&store, &c);
    for want in [
        "D /a",
        "A /a2",
        "A /a2/keep",
        "A /a2/z",
        "A /a2/added",
        "D /b",
        "D /d",
        "C /n",
        "A /n/new",
        "D /n/stale",
        "A /e/b2/f",
        "A /e/sub2/y",
        "C /top.txt",
    ] {
        assert!(
            changes.contains(&want.to_string()),
            "{want} missing from {changes:?}"
        );
    }
    for unwanted in ["A /a2/x", "D /a2/x", "A /a2/sub", "A /e/sub2/w", "A /n/old"] {
        assert!(
            !changes.contains(&unwanted.to_string()),
            "{unwanted} in {changes:?}"
        );
    }

    // commit: whiteouts at the old names, the new dirs whole and opaque, metacopy data
    let new = store::new_image::commit_container(&store, "mv", "ren:committed")
        .unwrap_or_else(|e| panic!("{e}"));
    let top = store
        .blob_path(&new.layers[new.layers.len() - 1].blob_digest)
        .unwrap_or_else(|e| panic!("{e}"));
    let (names, keys, data) = tar_listing(&top);
    for want in [
        ".wh.a",
        ".wh.b",
        ".wh.d",
        "a2",
        "a2/.wh..wh..opq",
        "a2/keep",
        "a2/link",
        "a2/z",
        "a2/added",
        "n/.wh..wh..opq",
        "n/new",
        "e/b2/.wh..wh..opq",
        "e/b2/f",
        "e/sub2/.wh..wh..opq",
        "e/sub2/y",
        "top.txt",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "{want} missing from {names:?}"
        );
    }
    for unwanted in [
        "a2/x",
        "a2/sub",
        "n/stale",
        "n/old",
        "e/sub2/w",
        "a2/.wh.x",
        "etc/hostname",
    ] {
        assert!(
            !names.iter().any(|n| n == unwanted),
            "{unwanted} in {names:?}"
        );
    }
    assert_eq!(data.get("top.txt").map(String::as_str), Some("top data"));
    assert_eq!(data.get("a2/keep").map(String::as_str), Some("keep"));
    assert_eq!(data.get("e/sub2/y").map(String::as_str), Some("mod\n"));
    assert!(
        keys.iter()
            .all(|k| !k.contains("overlay") && !k.contains("stratafs")),
        "overlay xattrs leaked: {keys:?}"
    );

    // export: the flattened rootfs shows the renamed tree
    let out = dir.path().join("rootfs.tar");
    store
        .export_container_to_file(&c, &out)
        .unwrap_or_else(|e| panic!("{e}"));
    let (flat, _, flat_data) = tar_listing(&out);
    for want in [
        "a2/keep",
        "a2/z",
        "n/new",
        "e/b2/f",
        "e/sub2/y",
        "etc/hostname",
    ] {
        assert!(
            flat.contains(&want.to_string()),
            "{want} missing from export {flat:?}"
        );
    }
    for unwanted in ["a", "b", "d", "n/stale", "a2/x", "e/sub2/w"] {
        assert!(
            !flat.iter().any(|n| n == unwanted),
            "{unwanted} in export {flat:?}"
        );
    }
    assert_eq!(
        flat_data.get("top.txt").map(String::as_str),
        Some("top data")
    );

    // re-import the committed image elsewhere: kernel overlayfs shows the same tree
    let exported = dir.path().join("committed.tar");
    store::export::export_image(
        &store,
        "ren:committed",
        ArchiveFormat::DockerArchive,
        &exported,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let store2 = open(&dir.path().join("again"));
    let imgs = store::import::import(&store2, &exported, None).unwrap_or_else(|e| panic!("{e}"));
    let lowers2 = store2
        .lower_dirs(&imgs[0])
        .unwrap_or_else(|e| panic!("{e}"));
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap_or_else(|e| panic!("{e}"));
    mount_overlay(&lowers2, "", &mnt);
    let after = std::panic::catch_unwind(|| snapshot(&mnt, &["etc"]));
    run(Command::new("umount").arg(&mnt));
    let after = after.unwrap_or_else(|_| panic!("reading the re-imported tree failed"));
    assert_eq!(after, before);
}
