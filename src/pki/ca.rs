//! Creating the cluster CA and issuing node certificates (rcgen).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::PkiError;

/// What a certificate's holder is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Agent => "agent",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "master" => Ok(Role::Master),
            "agent" => Ok(Role::Agent),
            other => Err(format!("unknown role {other:?}; expected \"master\" or \"agent\"")),
        }
    }
}

/// The cluster CA: its certificate and signing key.
pub struct Ca {
    pub cert_pem: String,
    key: KeyPair,
}

/// Paths of an issued certificate and key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Read { path: path.to_path_buf(), source })
}

/// Writes `contents` to `path`, creating parents; `secret` files get mode 0600.
pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    let werr = |source| PkiError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(werr)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(werr)?;
    file.write_all(contents.as_bytes()).map_err(werr)?;
    file.sync_all().map_err(werr)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

impl Ca {
    /// Creates a new CA in `dir` (`ca.crt`, `ca.key` mode 0600). Refuses to overwrite.
    pub fn init(dir: &Path, cluster_name: &str) -> Result<Self, PkiError> {
        if dir.join(CA_KEY_FILE).exists() {
            return Err(PkiError::CaExists(dir.to_path_buf()));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("medos cluster CA {cluster_name}"));
        dn.push(DnType::OrganizationName, "medos");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        let ca = Self { cert_pem: cert.pem(), key };
        write_file(&dir.join(CA_CERT_FILE), &ca.cert_pem, false)?;
        write_file(&dir.join(CA_KEY_FILE), &ca.key.serialize_pem(), true)?;
        Ok(ca)
    }

    /// Loads an existing CA from `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| PkiError::BadPem {
            path: key_path,
            what: "private key",
            detail: e.to_string(),
        })?;
        Ok(Self { cert_pem, key })
    }

    /// Issues a certificate for `name` in `role`, valid for `hosts` (DNS names or IPs),
    /// written as `out_dir/NAME.crt` and `out_dir/NAME.key` (0600).
    pub fn issue(&self, role: Role, name: &str, hosts: &[String], out_dir: &Path) -> Result<IssuedCert, PkiError> {
        let (cert_pem, key_pem) = self.issue_pem(role, name, hosts)?;
        let issued = IssuedCert { cert: out_dir.join(format!("{name}.crt")), key: out_dir.join(format!("{name}.key")) };
        write_file(&issued.cert, &cert_pem, false)?;
        write_file(&issued.key, &key_pem, true)?;
        Ok(issued)
    }

    /// Issues a certificate and returns `(cert_pem, key_pem)` without writing files.
    pub fn issue_pem(&self, role: Role, name: &str, hosts: &[String]) -> Result<(String, String), PkiError> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let key = KeyPair::generate()?;
        let cert = node_params(role, name, hosts)?.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Loads a CA from its certificate and key files (a master's `tls.ca` and `ca_key`) and
    /// checks that the key belongs to the certificate.
    pub fn load_files(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert_pem = read(cert_path)?;
        let key = KeyPair::from_pem(&read(key_path)?).map_err(|e| PkiError::BadPem {
            path: key_path.to_path_buf(),
            what: "private key",
            detail: e.to_string(),
        })?;
        let der = super::tls::certs_from_pem(cert_pem.as_bytes(), cert_path)?;
        let (_, cert) = x509_parser::parse_x509_certificate(der[0].as_ref()).map_err(|e| PkiError::BadPem {
            path: cert_path.to_path_buf(),
            what: "certificate",
            detail: e.to_string(),
        })?;
        use rcgen::PublicKeyData;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::KeyMismatch { key: key_path.to_path_buf(), cert: cert_path.to_path_buf() });
        }
        Ok(Self { cert_pem, key })
    }

    /// Signs a node certificate for the public key of a PKCS#10 request (PEM), whose
    /// signature is verified. Only the key is taken from the request: name, role and hosts
    /// are the caller's, so a request cannot ask for more than it was granted.
    pub fn sign_request(&self, csr_pem: &str, role: Role, name: &str, hosts: &[String]) -> Result<String, PkiError> {
        let request = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadRequest(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = node_params(role, name, hosts)?.signed_by(&request.public_key, &issuer)?;
        Ok(cert.pem())
    }
}

/// The parameters of every node certificate: CN = name, OU = role, the hosts (plus the name
/// when it is a DNS name) as subject alternative names, server and client authentication.
fn node_params(role: Role, name: &str, hosts: &[String]) -> Result<CertificateParams, PkiError> {
    let mut sans: Vec<String> = hosts.to_vec();
    if !sans.iter().any(|h| h == name) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        sans.push(name.to_string());
    }
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    dn.push(DnType::OrganizationName, "medos");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 1825);
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_signed_for_its_key_with_the_callers_name_and_role() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), "test").unwrap();
        let loaded = Ca::load_files(&dir.path().join(CA_CERT_FILE), &dir.path().join(CA_KEY_FILE)).unwrap();
        // The request asks to be a master; the CA decides it is an agent.
        let key = KeyPair::generate().unwrap();
        let mut asked = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        asked.distinguished_name.push(DnType::OrganizationalUnitName, "master");
        let csr = asked.serialize_request(&key).unwrap().pem().unwrap();
        let pem = loaded.sign_request(&csr, Role::Agent, "a1", &["10.0.0.5".into()]).unwrap();
        let der = super::super::tls::certs_from_pem(pem.as_bytes(), Path::new("issued")).unwrap();
        let identity = super::super::tls::peer_identity(&der[0]).unwrap();
        assert_eq!((identity.name.as_str(), identity.role), ("a1", Role::Agent));
        let (_, cert) = x509_parser::parse_x509_certificate(der[0].as_ref()).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(cert.public_key().raw, key.subject_public_key_info().as_slice());
        let sans = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap().value.general_names);
        assert!(sans.contains("10.0.0.5") || sans.contains("[10, 0, 0, 5]"), "{sans}");
        assert!(!sans.contains("evil"), "{sans}");
        let _ = ca;

        // A request that does not parse is refused.
        assert!(matches!(loaded.sign_request("junk", Role::Agent, "a1", &[]), Err(PkiError::BadRequest(_))));
        // A key from another CA does not load with this certificate.
        let other = tempfile::tempdir().unwrap();
        Ca::init(other.path(), "other").unwrap();
        let Err(err) = Ca::load_files(&dir.path().join(CA_CERT_FILE), &other.path().join(CA_KEY_FILE)) else {
            panic!("another CA's key was accepted");
        };
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    }
}
