//! Overlay logic exercised without a mount: layers in temp dirs, operations called
//! directly, results checked on the merged view and on the upper's on-disk format.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::layers::Layer;
use crate::overlay::{NewObject, Overlay, OverlaySettings};
use crate::sys;

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    ov: Overlay,
}

fn names(ov: &Overlay, ino: u64) -> Vec<String> {
    let mut v: Vec<String> = ov
        .list(ino)
        .unwrap()
        .iter()
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    v.sort();
    v
}

/// l1 (top) and l2: l2 has a, d/{x,sub/}, gone, opq/{old}; l1 has b, d/y, a whiteout
/// for gone, an opaque opq/ with new, and `.wh.x` in d.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for d in ["l1", "l2", "u", "w"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    let l1 = root.join("l1");
    let l2 = root.join("l2");
    fs::write(l2.join("a"), "a2").unwrap();
    fs::create_dir_all(l2.join("d/sub")).unwrap();
    fs::write(l2.join("d/x"), "x").unwrap();
    fs::write(l2.join("d/z"), "z").unwrap();
    fs::write(l2.join("gone"), "g").unwrap();
    fs::create_dir(l2.join("opq")).unwrap();
    fs::write(l2.join("opq/old"), "o").unwrap();
    fs::write(l1.join("b"), "b1").unwrap();
    fs::create_dir(l1.join("d")).unwrap();
    fs::write(l1.join("d/y"), "y").unwrap();
    fs::write(l1.join("d/.wh.x"), "").unwrap();
    fs::write(l1.join(".wh.gone"), "").unwrap();
    fs::create_dir(l1.join("opq")).unwrap();
    fs::write(l1.join("opq/.wh..wh..opq"), "").unwrap();
    fs::write(l1.join("opq/new"), "n").unwrap();
    let lowers = vec![Layer::open(&l1).unwrap(), Layer::open(&l2).unwrap()];
    let upper = Layer::open(&root.join("u")).unwrap();
    let wl = Layer::open(&root.join("w")).unwrap();
    for s in ["work", "index"] {
        sys::mkdir_at(wl.fd(), Path::new(s), 0o700).unwrap();
    }
    let work = sys::open_beneath(
        wl.fd(),
        Path::new("work"),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .unwrap();
    let index = sys::open_beneath(
        wl.fd(),
        Path::new("index"),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .unwrap();
    let settings = OverlaySettings {
        user_xattr: !crate::sys::process::is_root(),
        static_nlink: false,
        fsync: false,
        open_files: 64,
        whiteout_files: false,
        xattr_permissions: None,
    };
    let ov = Overlay::new(lowers, Some(upper), Some((work, index)), settings).unwrap();
    Fixture {
        _dir: dir,
        root,
        ov,
    }
}

#[test]
fn merged_view_honours_whiteout_formats_and_opaque() {
    let f = fixture();
    assert_eq!(names(&f.ov, 1), ["a", "b", "d", "opq"]);
    let (d, _) = f.ov.lookup(1, OsStr::new("d")).unwrap();
    assert_eq!(names(&f.ov, d.ino()), ["sub", "y", "z"]);
    let (o, _) = f.ov.lookup(1, OsStr::new("opq")).unwrap();
    assert_eq!(names(&f.ov, o.ino()), ["new"]);
    assert_eq!(
        f.ov.lookup(1, OsStr::new("gone")).unwrap_err(),
        libc::ENOENT
    );
    let long = "n".repeat(256);
    assert_eq!(
        f.ov.lookup(1, OsStr::new(&long)).unwrap_err(),
        libc::ENAMETOOLONG
    );
}

#[test]
fn unlink_of_lower_name_writes_char_whiteout() {
    let f = fixture();
    f.ov.remove(1, OsStr::new("a"), false).unwrap();
    let md = fs::symlink_metadata(f.root.join("u/a")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    assert_eq!(names(&f.ov, 1), ["b", "d", "opq"]);
}

#[test]
fn upper_only_unlink_leaves_no_marker() {
    let f = fixture();
    f.ov.make(
        1,
        OsStr::new("fresh"),
        NewObject::Dir { mode: 0o755 },
        0,
        0,
        0o022,
    )
    .unwrap();
    f.ov.remove(1, OsStr::new("fresh"), true).unwrap();
    assert!(fs::symlink_metadata(f.root.join("u/fresh")).is_err());
}

#[test]
fn rmdir_checks_the_merged_view() {
    let f = fixture();
    assert_eq!(
        f.ov.remove(1, OsStr::new("d"), true).unwrap_err(),
        libc::ENOTEMPTY
    );
    let (d, _) = f.ov.lookup(1, OsStr::new("d")).unwrap();
    for n in ["y", "z"] {
        f.ov.remove(d.ino(), OsStr::new(n), false).unwrap();
    }
    f.ov.remove(d.ino(), OsStr::new("sub"), true).unwrap();
    f.ov.remove(1, OsStr::new("d"), true).unwrap();
    assert!(
        fs::symlink_metadata(f.root.join("u/d"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn copy_up_keeps_data_mode_and_ino() {
    let f = fixture();
    fs::set_permissions(
        f.root.join("l2/a"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let (a, st) = f.ov.lookup(1, OsStr::new("a")).unwrap();
    f.ov.copy_up(&a).unwrap();
    let md = fs::metadata(f.root.join("u/a")).unwrap();
    assert_eq!(fs::read(f.root.join("u/a")).unwrap(), b"a2");
    assert_eq!(md.mode() & 0o7777, 0o640);
    let st2 = f.ov.stat(&a).unwrap();
    assert_eq!(st.st_ino, st2.st_ino);
}

#[test]
fn mkdir_over_whiteout_is_opaque() {
    let f = fixture();
    let (d, _) = f.ov.lookup(1, OsStr::new("d")).unwrap();
    f.ov.remove(1, OsStr::new("a"), false).unwrap();
    f.ov.make(
        1,
        OsStr::new("a"),
        NewObject::Dir { mode: 0o755 },
        0,
        0,
        0o022,
    )
    .unwrap();
    let (a, _) = f.ov.lookup(1, OsStr::new("a")).unwrap();
    assert!(names(&f.ov, a.ino()).is_empty());
    // A directory over a lower directory removed and re-made hides the old contents.
    for n in ["y", "z"] {
        f.ov.remove(d.ino(), OsStr::new(n), false).unwrap();
    }
    f.ov.remove(d.ino(), OsStr::new("sub"), true).unwrap();
    f.ov.remove(1, OsStr::new("d"), true).unwrap();
    f.ov.make(
        1,
        OsStr::new("d"),
        NewObject::Dir { mode: 0o755 },
        0,
        0,
        0o022,
    )
    .unwrap();
    let (d2, _) = f.ov.lookup(1, OsStr::new("d")).unwrap();
    assert!(names(&f.ov, d2.ino()).is_empty());
}

#[test]
fn rename_of_lower_dir_redirects() {
    let f = fixture();
    f.ov.rename(1, OsStr::new("d"), 1, OsStr::new("moved"), 0)
        .unwrap();
    assert_eq!(names(&f.ov, 1), ["a", "b", "moved", "opq"]);
    let (m, _) = f.ov.lookup(1, OsStr::new("moved")).unwrap();
    assert_eq!(names(&f.ov, m.ino()), ["sub", "y", "z"]);
    assert!(
        fs::symlink_metadata(f.root.join("u/d"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn rename_noreplace_and_exchange() {
    let f = fixture();
    assert_eq!(
        f.ov.rename(
            1,
            OsStr::new("a"),
            1,
            OsStr::new("b"),
            libc::RENAME_NOREPLACE
        )
        .unwrap_err(),
        libc::EEXIST
    );
    f.ov.rename(
        1,
        OsStr::new("a"),
        1,
        OsStr::new("b"),
        libc::RENAME_EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read(f.root.join("u/a")).unwrap(), b"b1");
    assert_eq!(fs::read(f.root.join("u/b")).unwrap(), b"a2");
}

/// A lookup resolved while another name of the same hard-linked file was being copied
/// up (lookups take no lock) must not put the node back below: the next write would
/// copy the lower file up again, over the index entry, and fail (the soak lost appends
/// to a hard-linked file this way).
#[test]
fn a_lookup_resolved_before_a_copy_up_keeps_the_node_on_the_copy() {
    use std::io::Write as _;
    let f = fixture();
    fs::hard_link(f.root.join("l2/a"), f.root.join("l2/a_hl")).unwrap();
    let (node, _) = f.ov.lookup(1, OsStr::new("a_hl")).unwrap();
    let root = f.ov.node(1).unwrap();
    // A reader resolves the other name, then a writer's open copies the file up.
    let stale = f.ov.resolve(&root, OsStr::new("a")).unwrap();
    assert!(stale.1.loc.is_lower());
    let append = |ino| -> Result<(), i32> {
        let (fd, _) = f.ov.open(ino, libc::O_WRONLY | libc::O_APPEND)?;
        fs::File::from(fd)
            .write_all(b"+")
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    };
    append(node.ino()).unwrap();
    let (again, st) = f.ov.record_lookup(&root, OsStr::new("a"), stale).unwrap();
    assert!(crate::node::NodeRef::ptr_eq(&node, &again));
    assert!(
        !again.state.read().loc.is_lower(),
        "the node went back to the lower file"
    );
    assert_eq!(st.st_size, 3, "the reply carries the copy's size");
    append(node.ino()).unwrap();
    for name in ["u/a", "u/a_hl"] {
        if let Ok(data) = fs::read(f.root.join(name)) {
            assert_eq!(data, b"a2++", "{name}");
        }
    }
    let (a, _) = f.ov.lookup(1, OsStr::new("a")).unwrap();
    let (fd, _) = f.ov.open(a.ino(), libc::O_RDONLY).unwrap();
    let data = std::io::read_to_string(fs::File::from(fd)).unwrap();
    assert_eq!(data, "a2++");
}
