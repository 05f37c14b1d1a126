//! `NAME[:TAG]` image references.

use crate::error::StoreError;

/// Normalizes `NAME` or `NAME:TAG` to `NAME:TAG` (default tag `latest`), checking the
/// characters docker allows. A `:` after the last `/` separates the tag, so
/// `host:5000/name` keeps its port.
pub fn normalize(reference: &str) -> Result<String, StoreError> {
    let bad = |reason: &str| StoreError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    if reference.is_empty() {
        return Err(bad("empty"));
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
    {
        return Err(bad(
            "name may hold only lowercase letters, digits, '.', '_', '-', '/'",
        ));
    }
    if tag.is_empty() || tag.len() > 128 {
        return Err(bad("tag must be 1 to 128 characters"));
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad("tag may hold only letters, digits, '.', '_', '-'"));
    }
    Ok(format!("{name}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ports() {
        assert_eq!(normalize("demo").ok().as_deref(), Some("demo:latest"));
        assert_eq!(normalize("demo:1.0").ok().as_deref(), Some("demo:1.0"));
        assert_eq!(
            normalize("localhost:5000/a/b").ok().as_deref(),
            Some("localhost:5000/a/b:latest")
        );
        assert!(normalize("Demo").is_err());
        assert!(normalize("demo:").is_err());
        assert!(normalize("").is_err());
    }
}
