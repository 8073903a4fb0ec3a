//! The cluster's public-key infrastructure: a cluster CA, node certificates, and the rustls
//! configurations every listener and client uses.
//!
//! Roles are carried in the certificate subject's organizational unit (`OU=master`,
//! `OU=agent`): the API trusts Raft RPCs only from a verified `master` certificate.

pub mod ca;
pub mod join;
pub mod tls;

pub use ca::{Ca, IssuedCert, Role};
pub use tls::{PeerIdentity, TlsFiles};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} does not contain a valid PEM {what}: {detail}")]
    BadPem { path: PathBuf, what: &'static str, detail: String },
    #[error("a CA already exists in {0}; remove it first or use another directory")]
    CaExists(PathBuf),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration is invalid: {0}")]
    Tls(String),
    #[error("the private key {key} does not belong to the CA certificate {cert}; point it at that CA's key")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("the certificate signing request is invalid: {0}")]
    BadRequest(String),
}

/// SHA-256 of a DER certificate as lower-case hex with colons, the form shown to users.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(der);
    digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Normalises a user-typed fingerprint (any case, with or without colons).
pub fn normalize_fingerprint(text: &str) -> String {
    let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_lowercase();
    hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

/// Installs ring as the process-wide rustls crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
