//! `strata login` / `strata logout`: credentials checked against the registry, then
//! kept in `auth.json` (see [`crate::credentials`]).

use std::path::PathBuf;

use oci_client::{Reference, RegistryOperation};

use crate::connection::{Connection, TlsOptions};
use crate::credentials::{self, Credentials};
use crate::error::RegistryError;

/// `REGISTRY` as given (`host[:port]`, an `https://` prefix and a path tolerated).
pub fn registry_host(s: &str) -> Result<String, RegistryError> {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(RegistryError::BadReference {
            reference: s.to_string(),
            reason: "expected a registry: HOST[:PORT]".into(),
        });
    }
    // Docker Hub's many names are one registry.
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    })
}

/// Checks `creds` with `registry` and stores them; returns the file written.
pub fn login(
    registry: &str,
    creds: &Credentials,
    tls: &TlsOptions,
) -> Result<PathBuf, RegistryError> {
    let host = registry_host(registry)?;
    // Any repository will do: the registry checks the credentials before the name.
    let probe = Reference::with_tag(host.clone(), "strata/login-check".into(), "latest".into());
    crate::runtime()?.block_on(async {
        let conn = Connection::open(&probe, tls, Some(creds)).await?;
        conn.authenticate(&probe, RegistryOperation::Pull, &host)
            .await?;
        match conn
            .client
            .list_tags(&probe, &conn.auth, Some(1), None)
            .await
            .map_err(|e| conn.error(&host, e))
        {
            Ok(_) | Err(RegistryError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    })?;
    credentials::save(&host, creds)
}

/// Forgets the stored credentials for `registry`; false if there were none.
pub fn logout(registry: &str) -> Result<bool, RegistryError> {
    credentials::remove(&registry_host(registry)?)
}
