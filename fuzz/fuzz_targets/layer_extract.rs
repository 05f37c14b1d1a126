//! Layer extraction: any bytes as a layer tar, extracted rootless into a scratch dir,
//! end in an error or a tree, never a panic, and nothing is written outside the dir.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(scratch) = tempfile::tempdir() else {
        return;
    };
    let dest = scratch.path().join("layer");
    let outside = scratch.path().join("outside");
    if std::fs::create_dir(&dest).is_err() || std::fs::create_dir(&outside).is_err() {
        return;
    }
    let opts = store::extract::ExtractOptions { as_root: false };
    let _ = store::extract::extract_layer(data, &dest, "fuzz", opts);
    // Whatever the tar said, its entries stay beneath `dest`.
    let escaped = std::fs::read_dir(scratch.path())
        .map(|rd| rd.filter_map(Result::ok).count())
        .unwrap_or(2);
    assert_eq!(escaped, 2, "an entry was written beside the layer dir");
    assert!(
        std::fs::read_dir(&outside)
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(true),
        "an entry was written outside the layer dir"
    );
});
