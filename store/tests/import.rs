//! Imports real archives (written by `fixtures`) in every format and hostile ones.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fixtures::images::{
    Compression, Entry, ImageFormat, ImageSpec, LayerSpec, build_demo_image, demo_spec, layer_tar,
    write_image,
};
use sha2::{Digest, Sha256};
use store::{Store, StoreError};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn open(dir: &Path) -> Store {
    Store::open(Some(dir.join("root"))).unwrap_or_else(|e| panic!("open: {e}"))
}

fn lxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(path, name, &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// Independent chainIDs of the demo image.
fn demo_chain_ids() -> Vec<String> {
    let spec = demo_spec().unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<String> = Vec::new();
    for l in &spec.layers {
        let diff = sha(&layer_tar(&l.entries).unwrap_or_else(|e| panic!("{e}")));
        let chain = match out.last() {
            None => diff,
            Some(p) => sha(format!("{p} {diff}").as_bytes()),
        };
        out.push(chain);
    }
    out
}

fn check_demo(store: &Store) {
    let img = store
        .resolve_image("demo")
        .unwrap_or_else(|e| panic!("resolve: {e}"));
    let chains: Vec<String> = img.layers.iter().map(|l| l.chain_id.clone()).collect();
    assert_eq!(chains, demo_chain_ids());
    assert_eq!(img.config.cmd, vec!["/bin/sh".to_string()]);
    let lowers = store.lower_dirs(&img).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lowers.len(), 3);
    let (top, mid, base) = (&lowers[0], &lowers[1], &lowers[2]);
    let sh = base.join("bin/sh");
    assert!(fs::symlink_metadata(&sh).is_ok(), "{}", sh.display());
    let tmp = fs::metadata(base.join("tmp")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    // layer 2: whiteout of etc/legacy.conf as char 0/0
    let wh = fs::symlink_metadata(mid.join("etc/legacy.conf")).unwrap_or_else(|e| panic!("{e}"));
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!mid.join("etc/.wh.legacy.conf").exists());
    // layer 3: opaque opt/app
    let app = top.join("opt/app");
    assert_eq!(
        lxattr(&app, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!app.join(".wh..wh..opq").exists());
    let hello = fs::metadata(app.join("hello.sh")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hello.permissions().mode() & 0o777, 0o755);
    assert_eq!(hello.mtime(), 1_700_000_000);
}

fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: these tests need root"
    );
    eprintln!("skipping: needs root (char 0/0 whiteouts, trusted xattrs)");
    false
}

#[test]
fn import_each_format() {
    if !require_root() {
        return;
    }
    for (format, name) in [
        (ImageFormat::DockerArchive, "demo.tar"),
        (ImageFormat::OciLayout, "oci"),
        (ImageFormat::OciArchive, "demo.oci.tar"),
    ] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out =
            build_demo_image(&dir.path().join(name), format).unwrap_or_else(|e| panic!("{e}"));
        let store = open(dir.path());
        let imgs =
            store::import::import(&store, &out, None).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(imgs.len(), 1);
        assert_eq!(imgs[0].tags, vec!["demo:latest".to_string()]);
        check_demo(&store);
        // idempotent
        let again = store::import::import(&store, &out, Some("demo:again"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again[0].id, imgs[0].id);
        assert_eq!(store.images().map(|v| v.len()).ok(), Some(1));
    }
}

fn zstd_compress(tar: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(zstd::encode_all(tar, 3)?)
}

fn small_layer(entries: Vec<Entry>, compression: Compression) -> LayerSpec {
    LayerSpec {
        entries,
        compression,
        created_by: "test".into(),
    }
}

fn file(path: &str, data: &str) -> Entry {
    Entry::File {
        path: path.into(),
        mode: 0o644,
        data: data.as_bytes().to_vec(),
    }
}

fn layer_dir_count(store: &Store) -> usize {
    fs::read_dir(store.root().join("layers"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn shared_base_extracted_once_and_zstd() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let base = small_layer(vec![file("a", "base\n")], Compression::Gzip);
    let one = ImageSpec {
        layers: vec![
            base.clone(),
            small_layer(vec![file("b", "one\n")], Compression::None),
        ],
        config: serde_json::json!({"Cmd": ["/a"]}),
        tag: Some("one:latest".into()),
    };
    let two = ImageSpec {
        layers: vec![
            base,
            small_layer(
                vec![file("c", "two\n")],
                Compression::Custom(zstd_compress, "application/vnd.oci.image.layer.v1.tar+zstd"),
            ),
        ],
        config: serde_json::json!({"Cmd": ["/b"]}),
        tag: Some("two:latest".into()),
    };
    let p1 = write_image(&one, &dir.path().join("one"), ImageFormat::OciLayout)
        .unwrap_or_else(|e| panic!("{e}"));
    let p2 = write_image(&two, &dir.path().join("two.tar"), ImageFormat::OciArchive)
        .unwrap_or_else(|e| panic!("{e}"));
    store::import::import(&store, &p1, None).unwrap_or_else(|e| panic!("{e}"));
    let img1 = store.resolve_image("one").unwrap_or_else(|e| panic!("{e}"));
    let base_dir = store
        .layer_dir(&img1.layers[0].chain_id)
        .unwrap_or_else(|e| panic!("{e}"));
    let ino = fs::metadata(base_dir.join("diff/a"))
        .map(|m| m.ino())
        .unwrap_or(0);
    assert_eq!(layer_dir_count(&store), 2);
    store::import::import(&store, &p2, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        layer_dir_count(&store),
        3,
        "only the new layer is extracted"
    );
    assert_eq!(
        fs::metadata(base_dir.join("diff/a"))
            .map(|m| m.ino())
            .unwrap_or(1),
        ino
    );
    let img2 = store.resolve_image("two").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        img2.layers[1].media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let lowers = store.lower_dirs(&img2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fs::read_to_string(lowers[0].join("c")).ok().as_deref(),
        Some("two\n")
    );
}

/// Everything under the root except tmp/ and the lock, with sizes.
fn snapshot(store: &Store) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![store.root().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(store.root())
                .map(Path::to_path_buf)
                .unwrap_or_default();
            if rel.starts_with("tmp") || rel == Path::new("lock") {
                continue;
            }
            let m = fs::symlink_metadata(&p).ok();
            if m.as_ref().is_some_and(|m| m.is_dir()) {
                stack.push(p.clone());
            }
            out.push((rel, m.map(|m| m.len()).unwrap_or(0)));
        }
    }
    out.sort();
    out
}

fn raw(name: &str, kind: tar::EntryType, link: &str) -> Entry {
    Entry::Raw {
        name: name.as_bytes().to_vec(),
        kind,
        link: link.as_bytes().to_vec(),
        data: if kind == tar::EntryType::Regular {
            b"x".to_vec()
        } else {
            Vec::new()
        },
    }
}

fn hostile(dir: &Path, name: &str, entries: Vec<Entry>) -> PathBuf {
    let spec = ImageSpec {
        layers: vec![
            small_layer(vec![file("ok", "fine\n")], Compression::Gzip),
            small_layer(entries, Compression::Gzip),
        ],
        config: serde_json::json!({}),
        tag: Some(format!("{name}:latest")),
    };
    write_image(&spec, &dir.join(name), ImageFormat::OciLayout).unwrap_or_else(|e| panic!("{e}"))
}

fn expect_refused(store: &Store, path: &Path, needle: &str) {
    let before = snapshot(store);
    let err = match store::import::import(store, path, None) {
        Ok(_) => panic!("{} imported but should be refused", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(needle),
        "error {err:?} should mention {needle:?}"
    );
    assert_eq!(
        snapshot(store),
        before,
        "store changed by refused import: {err}"
    );
    assert!(
        !dir_has_entries(&store.root().join("tmp")),
        "tmp not cleaned"
    );
}

fn dir_has_entries(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut r| r.next().is_some())
        .unwrap_or(false)
}

#[test]
fn hostile_archives_refused_store_unchanged() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    // a valid image first, so "unchanged" is checked against a non-empty store
    let demo = build_demo_image(&dir.path().join("demo.tar"), ImageFormat::DockerArchive)
        .unwrap_or_else(|e| panic!("{e}"));
    store::import::import(&store, &demo, None).unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let reg = tar::EntryType::Regular;
    let cases = [
        (hostile(d, "trav", vec![raw("../evil", reg, "")]), "../evil"),
        (
            hostile(d, "abs", vec![raw("/etc/evil", reg, "")]),
            "absolute",
        ),
        (
            hostile(
                d,
                "symdir",
                vec![
                    raw("lnk", tar::EntryType::Symlink, "/etc"),
                    raw("lnk/evil", reg, ""),
                ],
            ),
            "beneath a symlink",
        ),
        (
            hostile(
                d,
                "hardesc",
                vec![raw("h", tar::EntryType::Link, "../../etc/passwd")],
            ),
            "hard link target escapes",
        ),
        (
            hostile(
                d,
                "hardabs",
                vec![raw("h", tar::EntryType::Link, "/etc/passwd")],
            ),
            "hard link target escapes",
        ),
    ];
    for (path, needle) in &cases {
        expect_refused(&store, path, needle);
    }
    // digest mismatch: flip a byte of a layer blob in an OCI layout
    let good = hostile(d, "mismatch", vec![file("x", "y\n")]);
    let blobs = good.join("blobs/sha256");
    let mut target = None;
    for e in fs::read_dir(&blobs).into_iter().flatten().flatten() {
        let data = fs::read(e.path()).unwrap_or_default();
        if data.starts_with(&[0x1f, 0x8b]) {
            target = Some((e.path(), data));
        }
    }
    let (p, mut data) = target.unwrap_or_else(|| panic!("no gzip blob"));
    let last = data.len() - 10;
    data[last] ^= 0xff;
    fs::write(&p, &data).unwrap_or_else(|e| panic!("{e}"));
    expect_refused(&store, &good, "digest mismatch");
    // truncated gzip in a docker-archive (no blob digest there: caught decompressing)
    let spec = ImageSpec {
        layers: vec![small_layer(
            vec![file("big", &"z".repeat(100_000))],
            Compression::Gzip,
        )],
        config: serde_json::json!({}),
        tag: Some("trunc:latest".into()),
    };
    let t = write_image(&spec, &d.join("trunc.tar"), ImageFormat::DockerArchive)
        .unwrap_or_else(|e| panic!("{e}"));
    let unpacked = d.join("trunc-dir");
    fs::create_dir(&unpacked).unwrap_or_else(|e| panic!("{e}"));
    let mut ar = tar::Archive::new(fs::File::open(&t).unwrap_or_else(|e| panic!("{e}")));
    ar.unpack(&unpacked).unwrap_or_else(|e| panic!("{e}"));
    for e in fs::read_dir(&unpacked).into_iter().flatten().flatten() {
        let lt = e.path().join("layer.tar");
        if lt.is_file() {
            let data = fs::read(&lt).unwrap_or_default();
            fs::write(&lt, &data[..data.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    expect_refused(&store, &unpacked, "incomplete deflate stream");
    // bogus manifest
    let bogus = d.join("bogus");
    fs::create_dir(&bogus).unwrap_or_else(|e| panic!("{e}"));
    fs::write(bogus.join("manifest.json"), b"{\"not\": \"a list\"}")
        .unwrap_or_else(|e| panic!("{e}"));
    expect_refused(&store, &bogus, "bad docker-archive manifest");
    let bogus2 = d.join("bogus2");
    fs::create_dir(&bogus2).unwrap_or_else(|e| panic!("{e}"));
    fs::write(bogus2.join("index.json"), b"[1,2,3]").unwrap_or_else(|e| panic!("{e}"));
    expect_refused(&store, &bogus2, "bad OCI index");
    // the demo is still intact
    check_demo_if_root(&store);
}

fn check_demo_if_root(store: &Store) {
    if nix::unistd::geteuid().is_root() {
        check_demo(store);
    }
}

#[test]
fn missing_path_is_clear() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let err = store::import::import(&store, &dir.path().join("nope.tar"), None);
    assert!(matches!(err, Err(StoreError::Io { .. })));
}

#[test]
fn concurrent_imports_serialize() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let demo = build_demo_image(&dir.path().join("demo.tar"), ImageFormat::DockerArchive)
        .unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let st = store.clone();
                let p = demo.clone();
                s.spawn(move || store::import::import(&st, &p, None).is_ok())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    assert_eq!(results, vec![true, true, true]);
    assert_eq!(store.images().map(|v| v.len()).ok(), Some(1));
    assert_eq!(layer_dir_count(&store), 3);
}

#[test]
fn create_from_dir_with_parent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap_or_else(|e| panic!("{e}"));
    fs::write(rootfs.join("etc/base"), "base\n").unwrap_or_else(|e| panic!("{e}"));
    fs::hard_link(rootfs.join("etc/base"), rootfs.join("etc/link"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("base", rootfs.join("etc/sym")).unwrap_or_else(|e| panic!("{e}"));
    let base = store::new_image::image_from_tree(
        &store,
        &rootfs,
        store::tarwrite::TreeKind::Rootfs,
        None,
        "base",
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(base.layers.len(), 1);
    let top = dir.path().join("top");
    fs::create_dir_all(&top).unwrap_or_else(|e| panic!("{e}"));
    fs::write(top.join("extra"), "x\n").unwrap_or_else(|e| panic!("{e}"));
    let stacked = store::new_image::image_from_tree(
        &store,
        &top,
        store::tarwrite::TreeKind::Rootfs,
        Some(&base),
        "stacked:1",
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stacked.layers.len(), 2);
    assert_eq!(stacked.layers[0].chain_id, base.layers[0].chain_id);
    let lowers = store.lower_dirs(&stacked).unwrap_or_else(|e| panic!("{e}"));
    let b = &lowers[1];
    let m1 = fs::metadata(b.join("etc/base")).map(|m| m.ino()).ok();
    let m2 = fs::metadata(b.join("etc/link")).map(|m| m.ino()).ok();
    assert_eq!(m1, m2, "hard link kept");
    assert_eq!(
        fs::read_link(b.join("etc/sym")).ok(),
        Some(PathBuf::from("base"))
    );
    assert!(lowers[0].join("extra").is_file());
    assert_eq!(
        store.tag_image("stacked:1", "alias").ok().as_deref(),
        Some("alias:latest")
    );
    assert!(matches!(
        store.remove_image("alias"),
        Ok(store::ops::Removed::Untagged(_))
    ));
    assert!(matches!(
        store.remove_image("stacked:1"),
        Ok(store::ops::Removed::Deleted(_))
    ));
    let pruned = store.prune().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pruned.layers.len(),
        1,
        "only the stacked top layer is unused"
    );
    assert!(store.lower_dirs(&base).is_ok());
}

fn tar_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A docker-archive as docker 25+ writes it: layers under blobs/, `<id>/layer.tar`
/// symlinks pointing at them.
fn symlinked_docker_archive(path: &Path, link_target: &str) {
    let layer = layer_tar(&[file("hello", "world\n")]).unwrap_or_else(|e| panic!("{e}"));
    let diff = sha(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    }))
    .unwrap_or_default();
    let cfg_hex = sha(&config).trim_start_matches("sha256:").to_string();
    let layer_hex = diff.trim_start_matches("sha256:").to_string();
    let mut b = tar::Builder::new(Vec::new());
    tar_file(&mut b, &format!("blobs/sha256/{layer_hex}"), &layer);
    tar_file(&mut b, &format!("blobs/sha256/{cfg_hex}"), &config);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    let target = link_target.replace("LAYER", &layer_hex);
    b.append_link(&mut h, "abc/layer.tar", &target)
        .unwrap_or_else(|e| panic!("{e}"));
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{cfg_hex}"),
        "RepoTags": ["sym:latest"],
        "Layers": ["abc/layer.tar"],
    }]);
    tar_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap_or_default(),
    );
    fs::write(path, b.into_inner().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn docker_archive_with_symlinked_layers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let good = dir.path().join("good.tar");
    symlinked_docker_archive(&good, "../blobs/sha256/LAYER");
    store::import::import(&store, &good, None).unwrap_or_else(|e| panic!("{e}"));
    let img = store.resolve_image("sym").unwrap_or_else(|e| panic!("{e}"));
    let lowers = store.lower_dirs(&img).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fs::read_to_string(lowers[0].join("hello")).ok().as_deref(),
        Some("world\n")
    );
    let evil = dir.path().join("evil.tar");
    symlinked_docker_archive(&evil, "../../../../etc/passwd");
    expect_refused(&store, &evil, "link points outside the archive");
}

#[test]
fn xattrs_and_fifos_round_trip() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path());
    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(&rootfs).unwrap_or_else(|e| panic!("{e}"));
    let f = rootfs.join("tagged");
    fs::write(&f, "x").unwrap_or_else(|e| panic!("{e}"));
    let xattr_ok = rustix::fs::lsetxattr(
        &f,
        "user.strata.test",
        b"v1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    if !xattr_ok {
        eprintln!(
            "note: {} does not take user xattrs; xattr part not checked",
            rootfs.display()
        );
    }
    nix::unistd::mkfifo(
        &rootfs.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let img = store::new_image::image_from_tree(
        &store,
        &rootfs,
        store::tarwrite::TreeKind::Rootfs,
        None,
        "x:1",
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let lowers = store.lower_dirs(&img).unwrap_or_else(|e| panic!("{e}"));
    let pipe = fs::symlink_metadata(lowers[0].join("pipe")).unwrap_or_else(|e| panic!("{e}"));
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.permissions().mode() & 0o777, 0o640);
    if xattr_ok {
        assert_eq!(
            lxattr(&lowers[0].join("tagged"), "user.strata.test").as_deref(),
            Some(&b"v1"[..])
        );
    }
}

/// Unpacks the docker-archives `parts` into one archive holding all their images.
fn merged_docker_archive(dir: &Path, name: &str, parts: &[PathBuf]) -> PathBuf {
    let out = dir.join(name);
    fs::create_dir(&out).unwrap_or_else(|e| panic!("{e}"));
    let mut manifest = Vec::new();
    for p in parts {
        let tmp = dir.join(format!("{name}-part"));
        fs::create_dir(&tmp).unwrap_or_else(|e| panic!("{e}"));
        let mut ar = tar::Archive::new(fs::File::open(p).unwrap_or_else(|e| panic!("{e}")));
        ar.unpack(&tmp).unwrap_or_else(|e| panic!("{e}"));
        let m: Vec<serde_json::Value> =
            serde_json::from_slice(&fs::read(tmp.join("manifest.json")).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        manifest.extend(m);
        fs::remove_file(tmp.join("manifest.json")).unwrap_or_else(|e| panic!("{e}"));
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", tmp.display()))
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success());
        fs::remove_dir_all(&tmp).unwrap_or_else(|e| panic!("{e}"));
    }
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    fs::write(out.join("manifest.json"), bytes).unwrap_or_else(|e| panic!("{e}"));
    // and as a tar, as `docker save` writes it
    let tarred = dir.join(format!("{name}.tar"));
    let mut b = tar::Builder::new(fs::File::create(&tarred).unwrap_or_else(|e| panic!("{e}")));
    b.append_dir_all(".", &out)
        .unwrap_or_else(|e| panic!("{e}"));
    b.finish().unwrap_or_else(|e| panic!("{e}"));
    tarred
}

/// Copies the OCI layouts `parts` into one layout whose index lists all their images.
fn merged_oci_layout(dir: &Path, name: &str, parts: &[PathBuf]) -> PathBuf {
    let out = dir.join(name);
    fs::create_dir_all(out.join("blobs/sha256")).unwrap_or_else(|e| panic!("{e}"));
    let mut index: Option<serde_json::Value> = None;
    for p in parts {
        for e in fs::read_dir(p.join("blobs/sha256"))
            .into_iter()
            .flatten()
            .flatten()
        {
            fs::copy(e.path(), out.join("blobs/sha256").join(e.file_name()))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let i: serde_json::Value =
            serde_json::from_slice(&fs::read(p.join("index.json")).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        match index.as_mut().and_then(|x| x["manifests"].as_array_mut()) {
            Some(ms) => ms.extend(i["manifests"].as_array().cloned().unwrap_or_default()),
            None => index = Some(i),
        }
    }
    fs::copy(parts[0].join("oci-layout"), out.join("oci-layout")).unwrap_or_else(|e| panic!("{e}"));
    let bytes = serde_json::to_vec(&index).unwrap_or_default();
    fs::write(out.join("index.json"), bytes).unwrap_or_else(|e| panic!("{e}"));
    out
}

fn two_layer_image(dir: &Path, tag: &str, second: Vec<Entry>, format: ImageFormat) -> PathBuf {
    let spec = ImageSpec {
        layers: vec![
            small_layer(vec![file("base", tag)], Compression::Gzip),
            small_layer(second, Compression::Gzip),
        ],
        config: serde_json::json!({}),
        tag: Some(tag.into()),
    };
    let name = format!("{}.{format:?}", tag.replace(':', "-"));
    write_image(&spec, &dir.join(name), format).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn multi_image_archives_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let store = open(d);
    let demo = build_demo_image(&d.join("demo.tar"), ImageFormat::DockerArchive)
        .unwrap_or_else(|e| panic!("{e}"));
    store::import::import(&store, &demo, None).unwrap_or_else(|e| panic!("{e}"));
    let reg = tar::EntryType::Regular;
    for format in [ImageFormat::DockerArchive, ImageFormat::OciLayout] {
        let good = two_layer_image(d, "multi-a:1", vec![file("a", "a\n")], format);
        let good2 = two_layer_image(d, "multi-c:1", vec![file("c", "c\n")], format);
        let evil = two_layer_image(d, "multi-b:1", vec![raw("../evil", reg, "")], format);
        let merge = |name: &str, parts: &[PathBuf]| match format {
            ImageFormat::DockerArchive => merged_docker_archive(d, name, parts),
            _ => merged_oci_layout(d, name, parts),
        };
        // the hostile image second: the first one, verified already, is not kept
        let bad = merge(&format!("bad-{format:?}"), &[good.clone(), evil]);
        expect_refused(&store, &bad, "../evil");
        let tags = store.tags().unwrap_or_default();
        assert!(!tags.contains_key("multi-a:1"), "{tags:?}");
        // a tampered layer in the second image (diffID mismatch)
        let tampered = two_layer_image(d, "multi-t:1", vec![file("t", "t\n")], format);
        let bad2 = match format {
            ImageFormat::DockerArchive => {
                // swap the layer tars of two images: every blob is a valid tar, the
                // config's diff_ids no longer match
                merged_docker_archive(d, &format!("swap-{format:?}"), &[good.clone(), tampered]);
                let unpacked = d.join(format!("swap-{format:?}"));
                let manifest: Vec<serde_json::Value> = serde_json::from_slice(
                    &fs::read(unpacked.join("manifest.json")).unwrap_or_default(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                let l1 = unpacked.join(manifest[1]["Layers"][1].as_str().unwrap_or(""));
                let l0 = unpacked.join(manifest[0]["Layers"][1].as_str().unwrap_or(""));
                fs::copy(&l0, &l1).unwrap_or_else(|e| panic!("{e}"));
                unpacked
            }
            _ => {
                let m =
                    merged_oci_layout(d, &format!("swap-{format:?}"), &[good.clone(), tampered]);
                // overwrite a blob of the second image with other bytes: digest mismatch
                let idx: serde_json::Value =
                    serde_json::from_slice(&fs::read(m.join("index.json")).unwrap_or_default())
                        .unwrap_or_else(|e| panic!("{e}"));
                let mdig = idx["manifests"][1]["digest"]
                    .as_str()
                    .unwrap_or("")
                    .replace("sha256:", "");
                let man: serde_json::Value = serde_json::from_slice(
                    &fs::read(m.join("blobs/sha256").join(&mdig)).unwrap_or_default(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                let ldig = man["layers"][1]["digest"]
                    .as_str()
                    .unwrap_or("")
                    .replace("sha256:", "");
                let lpath = m.join("blobs/sha256").join(&ldig);
                let mut data = fs::read(&lpath).unwrap_or_default();
                let n = data.len() - 10;
                data[n] ^= 0xff;
                fs::write(&lpath, &data).unwrap_or_else(|e| panic!("{e}"));
                m
            }
        };
        let needle = match format {
            ImageFormat::DockerArchive => "diffID of layer 2",
            _ => "digest mismatch",
        };
        expect_refused(&store, &bad2, needle);
        // all good: both registered, each with its tag; --tag is refused for several
        let both = merge(&format!("ok-{format:?}"), &[good, good2]);
        let err = store::import::import(&store, &both, Some("x:y"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("2 images")),
            "{err:?}"
        );
        let imgs = store::import::import(&store, &both, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(imgs.len(), 2);
        assert!(store.resolve_image("multi-a:1").is_ok());
        assert!(store.resolve_image("multi-c:1").is_ok());
        for i in &imgs {
            store.remove_image(&i.id).unwrap_or_else(|e| panic!("{e}"));
        }
        store.prune().unwrap_or_else(|e| panic!("{e}"));
        for p in fs::read_dir(d).into_iter().flatten().flatten() {
            let n = p.file_name().to_string_lossy().into_owned();
            if n.starts_with("multi")
                || n.starts_with("bad")
                || n.starts_with("ok")
                || n.starts_with("swap")
            {
                let _ = fs::remove_dir_all(p.path()).or_else(|_| fs::remove_file(p.path()));
            }
        }
    }
    check_demo_if_root(&store);
}

/// Blobs are verified in the one pass that extracts them: a layout's files are copied
/// while read (and left in place), an archive's unpacked blobs are moved; either way the
/// store holds each blob once, under its digest, with no temp files left.
#[test]
fn blobs_stored_once_from_the_extracting_pass() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    for (format, name) in [
        (ImageFormat::OciLayout, "lay"),
        (ImageFormat::OciArchive, "img.oci.tar"),
        (ImageFormat::DockerArchive, "img.docker.tar"),
    ] {
        let store = open(&d.join(format!("s-{name}")));
        let src = two_layer_image(d, "once:1", vec![file("f", name)], format);
        let before = fs::read_dir(&src).map(|r| r.count()).unwrap_or(0);
        let imgs = store::import::import(&store, &src, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_dir(&src).map(|r| r.count()).unwrap_or(0), before);
        let blobs = store.root().join("blobs/sha256");
        let names: Vec<String> = fs::read_dir(&blobs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{name}: {names:?}"); // config + 2 layers
        for l in &imgs[0].layers {
            let p = store
                .blob_path(&l.blob_digest)
                .unwrap_or_else(|e| panic!("{e}"));
            let data = fs::read(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sha(&data), l.blob_digest, "{name}");
            let mode = fs::metadata(&p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o644), "{name}");
        }
        assert!(
            !dir_has_entries(&store.root().join("tmp")),
            "{name}: tmp not cleaned"
        );
        let _ = fs::remove_dir_all(&src).or_else(|_| fs::remove_file(&src));
    }
}

/// Path, size, link count and contents of one file of the sentinel.
type SentinelEntry = (PathBuf, u64, u64, Vec<u8>);

/// Names, sizes, link counts and contents of everything under `dir` (a sentinel
/// outside the store that hostile layers aim at).
fn sentinel_state(dir: &Path) -> Vec<SentinelEntry> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{e}"));
            if m.is_dir() {
                stack.push(p.clone());
            }
            let data = if m.is_file() {
                fs::read(&p).unwrap_or_default()
            } else {
                Vec::new()
            };
            out.push((p, m.len(), m.nlink(), data));
        }
    }
    out.sort();
    out
}

/// A sentinel dir outside the store holding `passwd`, and its state.
fn sentinel(d: &Path) -> (PathBuf, Vec<SentinelEntry>) {
    let s = d.join("outside");
    fs::create_dir_all(&s).unwrap_or_else(|e| panic!("{e}"));
    fs::write(s.join("passwd"), "root:x:0:0\n").unwrap_or_else(|e| panic!("{e}"));
    let state = sentinel_state(&s);
    (s, state)
}

/// The layer entries of an import whose image is refused, with the sentinel checked.
fn refused_with_sentinel(store: &Store, path: &Path, needle: &str, out: &Path) {
    let before = sentinel_state(out);
    expect_refused(store, path, needle);
    assert_eq!(
        sentinel_state(out),
        before,
        "{}: something was written or linked outside the store",
        path.display()
    );
}

fn dir_entry(name: &str) -> Entry {
    raw(name, tar::EntryType::Directory, "")
}

#[test]
fn more_hostile_layers_refused_nothing_written_outside() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let store = open(d);
    let good = hostile(d, "good", vec![file("x", "y\n")]);
    store::import::import(&store, &good, None).unwrap_or_else(|e| panic!("{e}"));
    let (out, _) = sentinel(d);
    let o = out.display().to_string();
    let reg = tar::EntryType::Regular;
    let sym = tar::EntryType::Symlink;
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        // a dir, replaced by a symlink of the same name pointing outside, then a file
        // written through it
        (
            "dirswap",
            vec![dir_entry("d/"), raw("d", sym, &o), raw("d/evil", reg, "")],
            "\"d/evil\": lies beneath a symlink",
        ),
        // a hard link whose target goes through a symlink of the layer
        (
            "hardsym",
            vec![
                raw("s", sym, &o),
                raw("h", tar::EntryType::Link, "s/passwd"),
            ],
            "\"h\": hard link target lies beneath a symlink",
        ),
        (
            "hardsymrel",
            vec![
                raw("s", sym, "../../../../../../.."),
                raw("h", tar::EntryType::Link, &format!("s{o}/passwd")),
            ],
            "hard link target lies beneath a symlink",
        ),
        // whiteouts whose target is the dir itself, its parent, or beneath a whiteout
        (
            "whdot",
            vec![raw(".wh..", reg, "")],
            "\".wh..\": whiteout of an invalid name",
        ),
        (
            "whdotdot",
            vec![raw(".wh...", reg, "")],
            "\".wh...\": whiteout of an invalid name",
        ),
        (
            "whsub",
            vec![dir_entry("dir/"), raw("dir/.wh..", reg, "")],
            "\"dir/.wh..\": whiteout of an invalid name",
        ),
        (
            "whsubdotdot",
            vec![dir_entry("dir/"), raw("dir/.wh...", reg, "")],
            "\"dir/.wh...\": whiteout of an invalid name",
        ),
        (
            "whparent",
            vec![raw(".wh.../x", reg, "")],
            "\".wh.../x\": lies beneath a whiteout name",
        ),
        (
            "whparentdir",
            vec![dir_entry(".wh.x/"), raw(".wh.x/y", reg, "")],
            "\".wh.x/y\": lies beneath a whiteout name",
        ),
        // a file, replaced by a dir, holding a file; then a file over the dir, and a
        // file beneath that file
        (
            "filebeneathfile",
            vec![dir_entry("p/"), raw("p", reg, ""), raw("p/q", reg, "")],
            "\"p/q\": lies beneath a non-directory",
        ),
        // a hard link to a name the layer does not hold (not created on the way)
        (
            "hardmissing",
            vec![raw("h", tar::EntryType::Link, "no/such/file")],
            "\"h\": hard link target lies beneath a missing directory",
        ),
    ];
    for (name, entries, needle) in cases {
        let p = hostile(d, name, entries);
        refused_with_sentinel(&store, &p, needle, &out);
    }
}

/// A docker-archive dir holding one valid image whose manifest names `layers`.
fn docker_dir_with_layers(d: &Path, name: &str, layers: serde_json::Value) -> PathBuf {
    let spec = ImageSpec {
        layers: vec![small_layer(vec![file("a", "a\n")], Compression::None)],
        config: serde_json::json!({}),
        tag: Some(format!("{name}:latest")),
    };
    let t = write_image(
        &spec,
        &d.join(format!("{name}.tar")),
        ImageFormat::DockerArchive,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = d.join(name);
    fs::create_dir(&out).unwrap_or_else(|e| panic!("{e}"));
    tar::Archive::new(fs::File::open(&t).unwrap_or_else(|e| panic!("{e}")))
        .unpack(&out)
        .unwrap_or_else(|e| panic!("{e}"));
    let mpath = out.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&mpath).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    m[0]["Layers"] = layers;
    fs::write(&mpath, serde_json::to_vec(&m).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    out
}

/// The single layer blob of an OCI layout written by `hostile`-like specs.
fn layout_layer_blobs(layout: &Path) -> Vec<PathBuf> {
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    let mdig = idx["manifests"][0]["digest"]
        .as_str()
        .unwrap_or("")
        .replace("sha256:", "");
    let man: serde_json::Value = serde_json::from_slice(
        &fs::read(layout.join("blobs/sha256").join(mdig)).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    man["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            layout
                .join("blobs/sha256")
                .join(l["digest"].as_str().unwrap_or("").replace("sha256:", ""))
        })
        .collect()
}

#[test]
fn manifest_paths_leaving_the_archive_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let store = open(d);
    let good = hostile(d, "good", vec![file("x", "y\n")]);
    store::import::import(&store, &good, None).unwrap_or_else(|e| panic!("{e}"));
    let (out, _) = sentinel(d);
    // docker-archive manifests naming layers outside the archive
    let up = docker_dir_with_layers(d, "up", serde_json::json!(["../../etc/passwd"]));
    refused_with_sentinel(
        &store,
        &up,
        "\"../../etc/passwd\" refused: name contains '..'",
        &out,
    );
    let abs = docker_dir_with_layers(d, "abs", serde_json::json!(["/etc/passwd"]));
    refused_with_sentinel(&store, &abs, "\"/etc/passwd\" refused: absolute name", &out);
    // the same as tars (the manifest is read from the unpacked copy)
    for (name, src) in [("up", &up), ("abs", &abs)] {
        let t = d.join(format!("{name}-re.tar"));
        let mut b = tar::Builder::new(fs::File::create(&t).unwrap_or_else(|e| panic!("{e}")));
        b.append_dir_all(".", src).unwrap_or_else(|e| panic!("{e}"));
        b.finish().unwrap_or_else(|e| panic!("{e}"));
        drop(b);
        refused_with_sentinel(&store, &t, "refused", &out);
    }
    // OCI index digests that are not sha256:<64 hex>
    for (name, digest) in [
        (
            "dotdot",
            format!("sha256:{}/../../../etc/passwd", "a".repeat(64)),
        ),
        ("short", "sha256:abc".to_string()),
        ("algo", format!("md5:{}", "a".repeat(32))),
        ("slash", format!("sha256:../../{}", "a".repeat(58))),
    ] {
        let lay = hostile(d, &format!("idx-{name}"), vec![file("x", "y\n")]);
        let ipath = lay.join("index.json");
        let mut idx: serde_json::Value =
            serde_json::from_slice(&fs::read(&ipath).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        idx["manifests"][0]["digest"] = serde_json::json!(digest);
        fs::write(&ipath, serde_json::to_vec(&idx).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        refused_with_sentinel(&store, &lay, "index", &out);
    }
    // a layer file symlinked outside the layout, with the right bytes: refused; the
    // same symlink to a copy inside the layout is fine
    let lay = hostile(d, "symout", vec![file("x", "outside\n")]);
    let blob = layout_layer_blobs(&lay)
        .pop()
        .unwrap_or_else(|| panic!("no layer"));
    let copy = out.join("layer-copy");
    fs::copy(&blob, &copy).unwrap_or_else(|e| panic!("{e}"));
    fs::remove_file(&blob).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&copy, &blob).unwrap_or_else(|e| panic!("{e}"));
    refused_with_sentinel(&store, &lay, "leads outside the archive", &out);
    let inside = lay.join("elsewhere");
    fs::copy(&copy, &inside).unwrap_or_else(|e| panic!("{e}"));
    fs::remove_file(&blob).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("../../elsewhere", &blob).unwrap_or_else(|e| panic!("{e}"));
    store::import::import(&store, &lay, None).unwrap_or_else(|e| panic!("symlink inside: {e}"));
    // the whole blobs dir symlinked outside
    let lay2 = hostile(d, "blobsout", vec![file("x", "blobs\n")]);
    let moved = out.join("blobs");
    fs::rename(lay2.join("blobs"), &moved).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&moved, lay2.join("blobs")).unwrap_or_else(|e| panic!("{e}"));
    refused_with_sentinel(&store, &lay2, "leads outside the archive", &out);
}

#[test]
fn decompression_bomb_refused_nothing_left() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let store = open(d).with_max_layer_size(1 << 20);
    let fits = hostile(d, "fits", vec![file("small", &"s".repeat(100_000))]);
    store::import::import(&store, &fits, None).unwrap_or_else(|e| panic!("{e}"));
    let zeros = vec![0u8; 10 << 20];
    let bomb_entries = || {
        vec![Entry::File {
            path: "zeros".into(),
            mode: 0o644,
            data: zeros.clone(),
        }]
    };
    for (format, name) in [
        (ImageFormat::OciLayout, "bomb-layout"),
        (ImageFormat::DockerArchive, "bomb.tar"),
        (ImageFormat::OciArchive, "bomb.oci.tar"),
    ] {
        let spec = ImageSpec {
            layers: vec![small_layer(bomb_entries(), Compression::Gzip)],
            config: serde_json::json!({}),
            tag: Some("bomb:latest".into()),
        };
        let p = write_image(&spec, &d.join(name), format).unwrap_or_else(|e| panic!("{e}"));
        expect_refused(&store, &p, "more than 1048576 bytes uncompressed");
        let blobs_tmp = fs::read_dir(store.root().join("blobs/sha256"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(blobs_tmp, 0, "{name}: a spooled blob was left behind");
    }
    // the message names the layer blob and the limit
    let p = d.join("bomb-layout");
    let err = store::import::import(&store, &p, None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("blobs/sha256/") && err.contains("STRATA_MAX_LAYER_SIZE"),
        "{err}"
    );
    // without the cap (0) the same layer is fine
    let unlimited = store.clone().with_max_layer_size(0);
    store::import::import(&unlimited, &p, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store::parse_size("1M"), Some(1 << 20));
    assert_eq!(store::parse_size("64GiB"), Some(64 << 30));
    assert_eq!(store::parse_size("12"), Some(12));
    assert_eq!(store::parse_size("1X"), None);
}

/// Later entries of the same name replace earlier ones, as docker and containers/storage
/// apply layers: file over file (last wins), dir over file, file over dir (its content
/// gone), dir over symlink (a real dir, nothing written through the link), dir over
/// dir (merged, the last entry's mode).
#[test]
fn duplicate_entries_last_wins_without_escaping() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let store = open(d);
    let (out, _) = sentinel(d);
    let o = out.display().to_string();
    let before = sentinel_state(&out);
    let entries = vec![
        file("dup", "one\n"),
        file("dup", "two\n"),
        file("fd", "file\n"),
        Entry::Dir {
            path: "fd".into(),
            mode: 0o755,
        },
        file("fd/x", "beneath\n"),
        Entry::Dir {
            path: "df".into(),
            mode: 0o755,
        },
        file("df/y", "gone\n"),
        file("df", "now a file\n"),
        Entry::Symlink {
            path: "sd".into(),
            target: o.clone(),
        },
        Entry::Dir {
            path: "sd".into(),
            mode: 0o755,
        },
        file("sd/passwd", "inside\n"),
        Entry::Dir {
            path: "dd".into(),
            mode: 0o700,
        },
        file("dd/a", "a\n"),
        Entry::Dir {
            path: "dd".into(),
            mode: 0o750,
        },
        file("dd/b", "b\n"),
    ];
    let p = hostile(d, "dups", entries);
    store::import::import(&store, &p, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sentinel_state(&out), before, "written outside the store");
    let img = store
        .resolve_image("dups")
        .unwrap_or_else(|e| panic!("{e}"));
    let top = store.lower_dirs(&img).unwrap_or_else(|e| panic!("{e}"))[0].clone();
    let read = |p: &str| fs::read_to_string(top.join(p)).ok();
    assert_eq!(read("dup").as_deref(), Some("two\n"));
    assert!(top.join("fd").is_dir());
    assert_eq!(read("fd/x").as_deref(), Some("beneath\n"));
    assert_eq!(read("df").as_deref(), Some("now a file\n"));
    let sd = fs::symlink_metadata(top.join("sd")).unwrap_or_else(|e| panic!("{e}"));
    assert!(sd.is_dir(), "sd is a real dir");
    assert_eq!(read("sd/passwd").as_deref(), Some("inside\n"));
    assert_eq!(read("dd/a").as_deref(), Some("a\n"));
    assert_eq!(read("dd/b").as_deref(), Some("b\n"));
    let mode = fs::metadata(top.join("dd"))
        .map(|m| m.permissions().mode() & 0o777)
        .ok();
    assert_eq!(mode, Some(0o750));
}
