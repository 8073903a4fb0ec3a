//! rustls configurations: the master listener (server auth, optional client certificates),
//! master-to-master clients (mutual TLS), and CLI clients (server auth against the cluster CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::{PkiError, Role};

/// The files a node needs for TLS.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM), issued by the cluster CA.
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

/// Who is on the other end of a TLS connection, from its verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub name: String,
    pub role: Role,
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Read { path: path.to_path_buf(), source })
}

pub fn certs_from_pem(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs =
        certs.map_err(|e| PkiError::BadPem { path: path.into(), what: "certificate", detail: e.to_string() })?;
    if certs.is_empty() {
        return Err(PkiError::BadPem { path: path.into(), what: "certificate", detail: "no CERTIFICATE block".into() });
    }
    Ok(certs)
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    certs_from_pem(&read(path)?, path)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| PkiError::BadPem {
        path: path.into(),
        what: "private key",
        detail: e.to_string(),
    })
}

pub fn roots_from_pem(pem: &[u8], path: &Path) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem, path)? {
        roots.add(cert).map_err(|e| PkiError::Tls(format!("CA certificate in {}: {e}", path.display())))?;
    }
    Ok(roots)
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// The listener: clients may present a certificate (verified against the CA) or none.
    pub fn server_config(&self) -> Result<ServerConfig, PkiError> {
        let roots = Arc::new(roots_from_pem(&read(&self.ca)?, &self.ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| PkiError::Tls(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)
            .map_err(|e| PkiError::Tls(format!("{}: {e}", self.cert.display())))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A client that trusts the cluster CA and presents this node's certificate.
    pub fn mutual_client_config(&self) -> Result<ClientConfig, PkiError> {
        let roots = roots_from_pem(&read(&self.ca)?, &self.ca)?;
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(load_certs(&self.cert)?, load_key(&self.key)?)
            .map_err(|e| PkiError::Tls(format!("{}: {e}", self.cert.display())))
    }

    /// SHA-256 fingerprint of the CA certificate.
    pub fn ca_fingerprint(&self) -> Result<String, PkiError> {
        let certs = load_certs(&self.ca)?;
        Ok(super::fingerprint(&certs[0]))
    }
}

/// A client that trusts only the given CA (PEM) and presents no certificate.
pub fn client_config_for_ca(ca_pem: &[u8]) -> Result<ClientConfig, PkiError> {
    let roots = roots_from_pem(ca_pem, Path::new("<cluster CA>"))?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client that accepts any server certificate. Used only by `cluster setup` to download
/// the CA before the user confirms its fingerprint; nothing secret is sent over it.
pub fn trust_on_first_use_config() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider())))
        .with_no_client_auth()
}

#[derive(Debug)]
struct AcceptAnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Reads name and role from a client certificate the TLS layer already verified.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<PeerIdentity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let role = subject.iter_organizational_unit().next()?.as_str().ok()?.parse().ok()?;
    Some(PeerIdentity { name, role })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Ca;

    #[test]
    fn issued_certificates_carry_name_and_role_and_load_into_rustls() {
        crate::pki::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(&dir.path().join("ca"), "test").unwrap();
        let issued = ca.issue(Role::Master, "m1", &["127.0.0.1".into()], &dir.path().join("m1")).unwrap();
        let certs = load_certs(&issued.cert).unwrap();
        assert_eq!(peer_identity(&certs[0]), Some(PeerIdentity { name: "m1".into(), role: Role::Master }));
        let files = TlsFiles { ca: dir.path().join("ca/ca.crt"), cert: issued.cert, key: issued.key };
        files.server_config().unwrap();
        files.mutual_client_config().unwrap();
        assert!(matches!(Ca::init(&dir.path().join("ca"), "again"), Err(PkiError::CaExists(_))));
        let mode = std::fs::metadata(dir.path().join("ca/ca.key")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn bad_pem_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.crt");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = load_certs(&path).unwrap_err().to_string();
        assert!(err.contains("junk.crt"), "{err}");
    }
}
