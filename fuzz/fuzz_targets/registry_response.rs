//! What a registry serves, as a pull reads it: the `WWW-Authenticate` challenge of a
//! 401 (parsed by `http-auth`, as oci-client reads it for the bearer realm and
//! service), a manifest or manifest list/index (picked for a platform), and the image
//! config against the manifest. Input: the three parts separated by `\n--\n`. Refused
//! or read, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry::platform::Platform;
use registry::pull::{Served, read_config, read_manifest};

fn challenges(header: &str) {
    for c in http_auth::parser::ChallengeParser::new(header).flatten() {
        let _ = c.scheme.eq_ignore_ascii_case("Bearer");
        for (k, v) in &c.params {
            let _ = (k.len(), v.to_unescaped());
        }
    }
}

fn split3(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let sep = b"\n--\n";
    let find = |d: &[u8]| d.windows(sep.len()).position(|w| w == sep);
    let Some(a) = find(data) else {
        return (data, data, data);
    };
    let (head, rest) = (&data[..a], &data[a + sep.len()..]);
    match find(rest) {
        Some(b) => (head, &rest[..b], &rest[b + sep.len()..]),
        None => (head, rest, rest),
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, manifest, config) = split3(data);
    if let Ok(h) = std::str::from_utf8(header) {
        challenges(h);
    }
    let target = "fuzz.example/repo:tag";
    let digest = store::digest::sha256_digest(manifest);
    for want in [
        Platform::host(),
        Platform::parse("linux/arm64/v8").unwrap_or_else(|_| Platform::host()),
    ] {
        match read_manifest(manifest, &digest, target, &want) {
            Ok(Served::Index(d)) => {
                let _ = store::digest::digest_hex(d.digest().as_ref());
            }
            Ok(Served::Manifest(m)) => {
                let _ = store::digest::digest_hex(m.config().digest().as_ref());
                for l in m.layers() {
                    let _ = store::digest::digest_hex(l.digest().as_ref());
                }
                if let Ok(ids) = read_config(&m, config, Some(&want), target) {
                    let _ = store::digest::chain_ids(&ids);
                }
                let _ = read_config(&m, config, None, target);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
