//! One client per registry: TLS roots (system, `--cert-dir`, podman's
//! `/etc/containers/certs.d/HOST[:PORT]/*.crt`), `--tls-verify=false` (certificates not
//! checked, plain HTTP where the registry speaks no TLS, said loudly), and the
//! credentials to offer (`--creds`, else the stored ones, else none). Proxies come from
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (reqwest reads them).

use std::path::{Path, PathBuf};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::credentials::{self, Credentials};
use crate::error::RegistryError;
use crate::reference::registry_key;

/// Where podman looks for a registry's CA certificates.
pub const CERTS_D: &str = "/etc/containers/certs.d";

/// How to trust a registry.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Check certificates (false: `--tls-verify=false`, which also allows plain HTTP).
    pub verify: bool,
    /// `--cert-dir`: more CA certificates (`*.crt`, PEM).
    pub cert_dir: Option<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            verify: true,
            cert_dir: None,
        }
    }
}

/// A client set up for one registry, with the credentials to use there.
pub struct Connection {
    /// The oci-client client.
    pub client: Client,
    /// What to authenticate with.
    pub auth: RegistryAuth,
    /// The registry (`host[:port]`) for messages.
    pub host: String,
}

/// The `*.crt` files of `dir` (none if it does not exist).
fn certificates_in(dir: &Path) -> Result<Vec<Certificate>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RegistryError::Local(format!(
                "read certificates in {}: {e}",
                dir.display()
            )));
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).map_err(|e| {
                RegistryError::Local(format!("read certificate {}: {e}", p.display()))
            })?;
            if !data.windows(11).any(|w| w == b"BEGIN CERTI") {
                return Err(RegistryError::Local(format!(
                    "{}: not a PEM certificate",
                    p.display()
                )));
            }
            Ok(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
        })
        .collect()
}

fn config_for(
    host: &str,
    tls: &TlsOptions,
    protocol: ClientProtocol,
) -> Result<ClientConfig, RegistryError> {
    let mut roots = certificates_in(&Path::new(CERTS_D).join(host))?;
    if let Some(d) = &tls.cert_dir {
        if !d.is_dir() {
            return Err(RegistryError::Local(format!(
                "--cert-dir {}: not a directory",
                d.display()
            )));
        }
        roots.extend(certificates_in(d)?);
    }
    Ok(ClientConfig {
        protocol,
        accept_invalid_certificates: !tls.verify,
        extra_root_certificates: roots,
        max_concurrent_download: 3,
        max_concurrent_upload: 3,
        user_agent: concat!("strata/", env!("CARGO_PKG_VERSION")),
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        read_timeout: Some(std::time::Duration::from_secs(120)),
        ..ClientConfig::default()
    })
}

fn client(host: &str, tls: &TlsOptions, protocol: ClientProtocol) -> Result<Client, RegistryError> {
    // reqwest's rustls is built without a default crypto provider: ring, installed once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = config_for(host, tls, protocol)?;
    Client::try_from(cfg).map_err(|e| RegistryError::Local(format!("TLS settings for {host}: {e}")))
}

/// True when `e` is the failure of a TLS handshake with a server that speaks plain
/// HTTP (or nothing TLS understands).
fn is_tls_failure(e: &OciDistributionError) -> bool {
    matches!(e, OciDistributionError::RequestError(re) if re.is_connect() || re.is_request())
}

impl Connection {
    /// Sets up a client for `r`'s registry. `creds` overrides the stored credentials.
    /// With `tls.verify` off, HTTPS without certificate checks is tried first, then
    /// plain HTTP.
    pub async fn open(
        r: &Reference,
        tls: &TlsOptions,
        creds: Option<&Credentials>,
    ) -> Result<Connection, RegistryError> {
        let host = registry_key(r).to_string();
        let creds = match creds {
            Some(c) => Some(c.clone()),
            None => credentials::lookup(&host)?,
        };
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        let mut client = client(&host, tls, ClientProtocol::Https)?;
        if !tls.verify {
            eprintln!(
                "strata: warning: --tls-verify=false: the certificate of {host} is not checked \
                 and plain HTTP is used if it speaks no TLS"
            );
            // GET /v2/ over HTTPS: a TLS failure means an HTTP-only registry.
            // Other errors (a refused anonymous token) are the real requests' to report.
            let probe = client
                .auth(r, &RegistryAuth::Anonymous, RegistryOperation::Pull)
                .await;
            if let Err(e) = probe.as_ref().map(|_| ()) {
                if is_tls_failure(e) {
                    log::info!("{host} does not answer HTTPS ({e}); using HTTP");
                    client = self::client(&host, tls, ClientProtocol::Http)?;
                }
            }
        }
        Ok(Connection { client, auth, host })
    }

    /// Authenticates for `op` on `r` now, so a refusal is reported as such (the
    /// requests themselves fall back to anonymous access when a token is refused).
    pub async fn authenticate(
        &self,
        r: &Reference,
        op: RegistryOperation,
        target: &str,
    ) -> Result<(), RegistryError> {
        self.client
            .auth(r, &self.auth, op)
            .await
            .map(|_| ())
            .map_err(|e| RegistryError::from_oci(target, &self.host, e))
    }

    /// Maps an oci-client error of an operation on `target`.
    pub fn error(&self, target: &str, e: OciDistributionError) -> RegistryError {
        RegistryError::from_oci(target, &self.host, e)
    }
}
