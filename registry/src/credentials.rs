//! Registry credentials where podman and docker keep them: `auth.json`
//! (`$REGISTRY_AUTH_FILE`, else `/run/containers/0/auth.json` as root, else
//! `$XDG_RUNTIME_DIR/containers/auth.json`, without a session
//! `/run/user/UID/containers/auth.json` or `~/.config/containers/auth.json`), read
//! also from `~/.docker/config.json`.
//! Entries are `{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}`.
//! Credentials are never printed or logged.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::RegistryError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or identity token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// Parses `--creds USER[:PASSWORD]`.
    pub fn parse(s: &str) -> Result<Credentials, RegistryError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                username: u.into(),
                password: p.into(),
            }),
            _ => Err(RegistryError::Local(
                "--creds wants USER:PASSWORD (the user name may not be empty)".into(),
            )),
        }
    }

    fn encoded(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.password))
    }

    fn decode(auth: &str) -> Option<Credentials> {
        let raw = STANDARD.decode(auth.trim()).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some(Credentials {
            username: u.into(),
            password: p.into(),
        })
    }
}

/// The `auth.json` strata writes (podman's place for it).
pub fn auth_file() -> Result<PathBuf, RegistryError> {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(PathBuf::from("/run/containers/0/auth.json"));
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(runtime).join("containers/auth.json"));
    }
    // No session (runuser, cron): the user's runtime dir if there is one, else the
    // file containers/image also reads under the home.
    let run = PathBuf::from(format!("/run/user/{uid}"));
    if run.is_dir() {
        return Ok(run.join("containers/auth.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            RegistryError::Local(
                "no XDG_RUNTIME_DIR, /run/user/UID or HOME for auth.json (set REGISTRY_AUTH_FILE)"
                    .into(),
            )
        })?;
    Ok(PathBuf::from(home).join(".config/containers/auth.json"))
}

/// docker's config, also read for credentials.
fn docker_config() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The keys an entry for `registry` may have in a file (docker writes Docker Hub as
/// its v1 URL, some tools write `https://` in front).
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![registry.to_string(), format!("https://{registry}")];
    if registry == "docker.io" {
        keys.extend(
            [
                "https://index.docker.io/v1/",
                "index.docker.io",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    keys
}

fn read_json(path: &Path) -> Result<Option<Value>, RegistryError> {
    match fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            RegistryError::Local(format!("{}: not a credentials file: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::Local(format!(
            "read {}: {e}",
            path.display()
        ))),
    }
}

fn find_in(doc: &Value, registry: &str) -> Option<Credentials> {
    let auths = doc.get("auths")?.as_object()?;
    keys_for(registry)
        .iter()
        .filter_map(|k| auths.get(k))
        .find_map(|e| e.get("auth")?.as_str().and_then(Credentials::decode))
}

/// The stored credentials for `registry`, from `auth.json` first, then docker's config.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let files = [Some(auth_file()?), docker_config()];
    for f in files.into_iter().flatten() {
        // A file this user may not read (another user's HOME under runuser) holds
        // nothing for it: anonymous access goes on. A malformed one is an error.
        let doc = match read_json(&f) {
            Err(e) if fs::metadata(&f).is_err() || fs::File::open(&f).is_err() => {
                log::warn!("{e}; skipped");
                None
            }
            other => other?,
        };
        if let Some(doc) = doc {
            if let Some(c) = find_in(&doc, registry) {
                log::debug!("credentials for {registry} from {}", f.display());
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// Writes `doc` to `path` atomically, mode 0600, its directory 0700 if created.
fn write_private(path: &Path, doc: &Value) -> Result<(), RegistryError> {
    let local = |what: &str, p: &Path, e: std::io::Error| {
        RegistryError::Local(format!("{what} {}: {e}", p.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| local("create", dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| local("chmod", dir, e))?;
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("auth.json"),
        std::process::id()
    ));
    let bytes = serde_json::to_vec_pretty(doc)
        .map_err(|e| RegistryError::Local(format!("encode {}: {e}", path.display())))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| local("create", &tmp, e))?;
    f.write_all(&bytes)
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| local("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        local("rename into", path, e)
    })
}

fn auths_mut(doc: &mut Value) -> Option<&mut Map<String, Value>> {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let obj = doc.as_object_mut()?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    auths.as_object_mut()
}

/// Stores `creds` for `registry` in `auth.json`, keeping every other entry and key.
/// Returns the file written.
pub fn save(registry: &str, creds: &Credentials) -> Result<PathBuf, RegistryError> {
    let path = auth_file()?;
    let mut doc = read_json(&path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let auths = auths_mut(&mut doc)
        .ok_or_else(|| RegistryError::Local(format!("{}: not an object", path.display())))?;
    auths.insert(
        registry.to_string(),
        serde_json::json!({ "auth": creds.encoded() }),
    );
    write_private(&path, &doc)?;
    Ok(path)
}

/// Removes the entry for `registry` from `auth.json`; false if there was none.
pub fn remove(registry: &str) -> Result<bool, RegistryError> {
    let path = auth_file()?;
    let Some(mut doc) = read_json(&path)? else {
        return Ok(false);
    };
    let Some(auths) = auths_mut(&mut doc) else {
        return Ok(false);
    };
    let mut removed = false;
    for k in keys_for(registry) {
        removed |= auths.remove(&k).is_some();
    }
    if removed {
        write_private(&path, &doc)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_docker_keys() {
        let c = Credentials::parse("u:p:w").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.password, "p:w");
        assert_eq!(Credentials::decode(&c.encoded()), Some(c.clone()));
        assert!(Credentials::parse(":x").is_err());
        assert!(!format!("{c:?}").contains("p:w"));
        let doc =
            serde_json::json!({"auths": {"https://index.docker.io/v1/": {"auth": c.encoded()}}});
        assert_eq!(find_in(&doc, "docker.io"), Some(c));
        assert_eq!(find_in(&doc, "quay.io"), None);
    }
}
