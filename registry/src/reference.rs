//! Image references as users type them: `host[:port]/repo[:tag]`, `repo@sha256:...`,
//! short names completed as docker completes them (`busybox` is
//! `docker.io/library/busybox:latest`).

use oci_client::Reference;

use crate::error::RegistryError;

/// Parses `s` into a full reference (registry, repository, tag and/or digest).
pub fn parse(s: &str) -> Result<Reference, RegistryError> {
    let bad = |reason: String| RegistryError::BadReference {
        reference: s.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(bad("empty".into()));
    }
    let r = Reference::try_from(s).map_err(|e| bad(e.to_string()))?;
    // oci-spec lets an upper-case first component through as a registry name when it
    // is not one (no '.', ':' or "localhost"), giving an upper-case repository.
    if r.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository names must be lowercase".into()));
    }
    if let Some(d) = r.digest() {
        if store::digest::digest_hex(d).is_none() {
            return Err(bad(format!("only sha256 digests are supported, not {d}")));
        }
    }
    Ok(r)
}

/// `registry/repository` (docker's `SourceRepository`): where a blob was seen.
pub fn repository_key(r: &Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

/// The store tag a pull of `r` sets: `registry/repository:tag`; none for a reference
/// by digest alone (the image is then known by its id).
pub fn store_tag(r: &Reference) -> Option<String> {
    r.tag()
        .map(|t| format!("{}/{}:{t}", r.registry(), r.repository()))
}

/// The registry host as credentials and certificate dirs are keyed (`host[:port]`;
/// `docker.io` for Docker Hub).
pub fn registry_key(r: &Reference) -> &str {
    r.registry()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_defaults() {
        let r = parse("busybox").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store_tag(&r).as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(repository_key(&r), "docker.io/library/busybox");
        let r = parse("127.0.0.1:5000/a/b:v1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(registry_key(&r), "127.0.0.1:5000");
        assert_eq!(store_tag(&r).as_deref(), Some("127.0.0.1:5000/a/b:v1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("localhost:5000/x@{d}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(store_tag(&r), None);
        assert!(parse("").is_err());
        for bad in [
            "docker.io/Upper",
            "demo:bad tag",
            "a//b",
            "UPPER/case",
            "x:",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("x@md5:abc").is_err());
    }
}
