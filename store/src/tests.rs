//! Unit tests of the store API over a hand-registered image.

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir()
        .ok()
        .unwrap_or_else(|| panic!("tempdir"));
    let s = Store::open(Some(dir.path().join("root")));
    let s = s.unwrap_or_else(|e| panic!("open: {e}"));
    (dir, s)
}

/// Registers a two-layer image by hand (what import does, minus archives).
fn register(s: &Store, tag: &str, salt: &str) -> String {
    let diff_ids = vec![
        digest::sha256_digest(format!("l1{salt}").as_bytes()),
        digest::sha256_digest(format!("l2{salt}").as_bytes()),
    ];
    let chains = digest::chain_ids(&diff_ids);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let data = serde_json::to_vec(&config).unwrap_or_default();
    let cfg_digest = digest::sha256_digest(&data);
    let id = digest::digest_hex(&cfg_digest).unwrap_or("").to_string();
    let blob = s.blob_path(&cfg_digest).unwrap_or_else(|e| panic!("{e}"));
    fsutil::write_atomic(&blob, &data).unwrap_or_else(|e| panic!("{e}"));
    let mut layers = Vec::new();
    for (d, c) in diff_ids.iter().zip(&chains) {
        let ld = s
            .layer_dir(c)
            .unwrap_or_else(|e| panic!("{e}"))
            .join("diff");
        fs::create_dir_all(&ld).unwrap_or_else(|e| panic!("{e}"));
        layers.push(Layer {
            blob_digest: d.clone(),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            blob_size: 0,
            diff_id: d.clone(),
            chain_id: c.clone(),
            size: 0,
        });
    }
    let rec = ImageRecord {
        id: id.clone(),
        config_digest: cfg_digest,
        layers,
        created: 1,
        manifest_digest: None,
    };
    fsutil::write_json(&s.image_record_path(&id), &rec).unwrap_or_else(|e| panic!("{e}"));
    let mut tags = s.tags().unwrap_or_default();
    tags.insert(tag.to_string(), id.clone());
    s.save_tags(&tags).unwrap_or_else(|e| panic!("{e}"));
    id
}

#[test]
fn resolve_by_name_tag_id_and_prefix() {
    let (_d, s) = store();
    let id = register(&s, "demo:latest", "a");
    for r in [
        "demo",
        "demo:latest",
        &id,
        &id[..10],
        &format!("sha256:{id}"),
    ] {
        let img = s.resolve_image(r).unwrap_or_else(|e| panic!("{r}: {e}"));
        assert_eq!(img.id, id);
        assert_eq!(img.tags, vec!["demo:latest".to_string()]);
        assert_eq!(img.config.cmd, vec!["/bin/sh".to_string()]);
    }
    assert!(matches!(
        s.resolve_image("nope"),
        Err(StoreError::ImageNotFound(_))
    ));
    assert!(s.resolve_image("demo:other").is_err());
}

#[test]
fn lower_dirs_top_most_first() {
    let (_d, s) = store();
    let id = register(&s, "demo:latest", "b");
    let img = s.resolve_image(&id).unwrap_or_else(|e| panic!("{e}"));
    let lowers = s.lower_dirs(&img).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lowers.len(), 2);
    let top = s
        .layer_dir(&img.layers[1].chain_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .join("diff");
    assert_eq!(lowers[0], top);
}

#[test]
fn container_lifecycle() {
    let (_d, s) = store();
    let id = register(&s, "demo:latest", "c");
    let img = s.resolve_image("demo").unwrap_or_else(|e| panic!("{e}"));
    let c = s
        .create_container(&img, Some("web"), "web")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.image_id, id);
    for d in [&c.upper, &c.work, &c.merged] {
        assert!(d.is_dir(), "{}", d.display());
    }
    let hostname = fs::read_to_string(c.init_layer.join("etc/hostname")).unwrap_or_default();
    assert_eq!(hostname, "web\n");
    assert!(c.init_layer.join("etc/hosts").is_file());
    assert!(c.init_layer.join("etc/resolv.conf").is_file());
    assert!(matches!(
        s.create_container(&img, Some("web"), "web"),
        Err(StoreError::NameInUse(_))
    ));
    let anon = s
        .create_container(&img, None, "box")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(anon.name.starts_with("strata-"));
    let auto = s
        .create_container(&img, None, "")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(auto.hostname, auto.id[..12]);
    let h = fs::read_to_string(auto.init_layer.join("etc/hosts")).unwrap_or_default();
    assert!(h.contains(&auto.id[..12]));
    s.remove_container(&auto.id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.list_containers().map(|v| v.len()).ok(), Some(2));
    assert_eq!(
        s.container(&c.id[..12]).map(|x| x.name).ok().as_deref(),
        Some("web")
    );
    let lowers = s.container_lower_dirs(&c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lowers[0], c.init_layer);
    assert_eq!(lowers.len(), 3);
    s.remove_container("web").unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.dir.exists());
    assert!(matches!(
        s.container("web"),
        Err(StoreError::ContainerNotFound(_))
    ));
    assert_eq!(s.list_containers().map(|v| v.len()).ok(), Some(1));
}

#[test]
fn ambiguous_prefix() {
    let (_d, s) = store();
    let a = register(&s, "a:latest", "x");
    let b = register(&s, "b:latest", "y");
    // Find a common prefix length (often 0): an empty-ish shared prefix is ambiguous.
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    if common > 0 {
        assert!(matches!(
            s.resolve_image(&a[..common]),
            Err(StoreError::AmbiguousImage(_))
        ));
    }
    assert_eq!(s.images().map(|v| v.len()).ok(), Some(2));
}

#[test]
fn prune_waits_for_a_pin_and_keeps_what_was_registered_meanwhile() {
    let (_d, s) = store();
    // What a pull holds while it runs: a layer blob it found in the store (no image
    // uses it yet) and a partial download.
    let blob = s
        .blob_path(&digest::sha256_digest(b"l1pulled"))
        .unwrap_or_else(|e| panic!("{e}"));
    fsutil::write_atomic(&blob, b"layer").unwrap_or_else(|e| panic!("{e}"));
    let partial = s.root().join("tmp/downloads/abc.partial");
    fs::create_dir_all(s.root().join("tmp/downloads")).unwrap_or_else(|e| panic!("{e}"));
    fs::write(&partial, b"part").unwrap_or_else(|e| panic!("{e}"));
    let pin = s.pin().unwrap_or_else(|e| panic!("pin: {e}"));
    let root = s.root().to_path_buf();
    let pruner = std::thread::spawn(move || Store::open(Some(root)).and_then(|s| s.prune()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !pruner.is_finished(),
        "prune ran while the store was pinned"
    );
    assert!(blob.is_file() && partial.is_file());
    // The pull registers its image (its first layer's blob is that one), and ends.
    register(&s, "pulled:latest", "pulled");
    drop(pin);
    let pruned = pruner
        .join()
        .unwrap_or_else(|_| panic!("pruner panicked"))
        .unwrap_or_else(|e| panic!("prune: {e}"));
    assert!(blob.is_file(), "the registered image's blob was pruned");
    assert!(!partial.exists(), "a leftover download stays after prune");
    assert!(pruned.blobs.is_empty(), "{:?}", pruned.blobs);
    // A pin after the prune is taken at once.
    drop(s.pin().unwrap_or_else(|e| panic!("pin: {e}")));
}
