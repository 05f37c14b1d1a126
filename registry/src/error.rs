//! Errors of registry operations: each names the reference (or registry) and the cause
//! in one line, as `strata` prints them.

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// Why a pull, push or login failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    BadReference {
        /// As given.
        reference: String,
        /// Why it was refused.
        reason: String,
    },
    /// The registry refused the credentials (or asks for some).
    #[error("{target}: unauthorized: {detail}")]
    Unauthorized {
        /// Reference or registry.
        target: String,
        /// What the registry said.
        detail: String,
    },
    /// The tag or digest is not in the repository.
    #[error("{target}: not found: {detail}")]
    NotFound {
        /// Reference.
        target: String,
        /// What the registry said.
        detail: String,
    },
    /// A blob or manifest did not hash to its digest.
    #[error("{target}: digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Reference.
        target: String,
        /// Which blob or manifest.
        what: String,
        /// What the manifest (or reference) says.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The registry answered with something strata cannot use.
    #[error("{target}: {detail}")]
    Protocol {
        /// Reference or registry.
        target: String,
        /// What is wrong.
        detail: String,
    },
    /// The connection failed (DNS, TCP, TLS, proxy).
    #[error("{target}: cannot reach {host}: {detail}")]
    Connection {
        /// Reference or registry.
        target: String,
        /// The registry host.
        host: String,
        /// The cause, with its sources.
        detail: String,
    },
    /// The store refused the image.
    #[error("{target}: {source}")]
    Store {
        /// Reference.
        target: String,
        /// The store's error.
        #[source]
        source: store::StoreError,
    },
    /// Local trouble: credentials file, certificates, runtime.
    #[error("{0}")]
    Local(String),
}

/// Every source of `e`, joined: reqwest's top error says little ("error sending
/// request"); the TLS or socket cause is further down.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

impl RegistryError {
    /// Maps an `oci-client` error met while working on `target` at `host`.
    pub fn from_oci(target: &str, host: &str, e: OciDistributionError) -> Self {
        let target = target.to_string();
        match e {
            OciDistributionError::AuthenticationFailure(detail) => RegistryError::Unauthorized {
                target,
                detail: one_line(&detail),
            },
            OciDistributionError::UnauthorizedError { url } => RegistryError::Unauthorized {
                target,
                detail: format!("the registry refused {url} (log in with `strata login {host}`)"),
            },
            OciDistributionError::ImageManifestNotFoundError(detail) => {
                RegistryError::NotFound { target, detail }
            }
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{} ({url})", e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    RegistryError::NotFound { target, detail }
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    RegistryError::Unauthorized { target, detail }
                } else {
                    RegistryError::Protocol { target, detail }
                }
            }
            OciDistributionError::ServerError {
                code: 404,
                url,
                message,
            } => RegistryError::NotFound {
                target,
                detail: format!("{url}: {}", one_line(&message)),
            },
            OciDistributionError::ServerError { code, url, message }
                if code == 401 || code == 403 =>
            {
                RegistryError::Unauthorized {
                    target,
                    detail: format!("{url}: HTTP {code} {}", one_line(&message)),
                }
            }
            OciDistributionError::RequestError(e) if e.status().is_some() => {
                let code = e.status().map_or(0, |s| s.as_u16());
                let detail = chain(&e);
                match code {
                    401 | 403 => RegistryError::Unauthorized {
                        target,
                        detail: format!("{detail} (log in with `strata login {host}`)"),
                    },
                    404 => RegistryError::NotFound { target, detail },
                    _ => RegistryError::Protocol { target, detail },
                }
            }
            OciDistributionError::RequestError(e) => RegistryError::Connection {
                target,
                host: host.to_string(),
                detail: with_hint(chain(&e)),
            },
            other => RegistryError::Protocol {
                target,
                detail: chain(&other),
            },
        }
    }
}

/// A connection failure's text with what to do about the common ones.
fn with_hint(detail: String) -> String {
    let hint = if detail.contains("InvalidContentType") || detail.contains("corrupt message") {
        " (the registry does not speak TLS: for a plain-HTTP registry give --tls-verify=false)"
    } else if detail.contains("UnknownIssuer") || detail.contains("certificate") {
        " (give the registry's CA with --cert-dir DIR or in /etc/containers/certs.d/HOST:PORT/)"
    } else {
        ""
    };
    detail + hint
}

/// `s` on one line, cut to a readable length (registries answer with HTML pages).
fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 200 {
        let cut: String = s.chars().take(200).collect();
        format!("{cut}...")
    } else {
        s
    }
}
