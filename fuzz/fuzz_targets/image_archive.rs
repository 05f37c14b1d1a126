//! Image archives: any bytes as a docker-archive or OCI archive (a tar), unpacked and
//! read as a docker archive and as an OCI layout (manifest, index, configs, layer
//! paths), end in image sources or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(scratch) = tempfile::tempdir() else {
        return;
    };
    let archive = scratch.path().join("image.tar");
    let dest = scratch.path().join("unpacked");
    if std::fs::write(&archive, data).is_err() || std::fs::create_dir(&dest).is_err() {
        return;
    }
    if store::import::unpack::unpack_archive(&archive, &dest).is_err() {
        return;
    }
    let _ = store::import::docker::read_docker(&dest);
    let _ = store::import::oci::read_layout(&dest);
});
