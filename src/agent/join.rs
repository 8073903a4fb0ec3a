//! Joining with a token: how an agent without a certificate obtains one (as k3s does).
//!
//! The agent generates its key pair here (it never leaves the host), downloads the CA from a
//! master without trusting it, checks the CA against the fingerprint the join token pins,
//! and only then, over TLS verified against that CA, sends the token and a certificate
//! signing request to `POST /v1/join`. The CA, the certificate and the key (mode 0600) are
//! written to the `tls` paths; the next start finds them and does not join again.

use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use reqwest::StatusCode;

use super::AgentConfig;
use super::AgentError;
use crate::api::error::ErrorBody;
use crate::api::join::{ERR_NO_CA_KEY, JoinRequest, JoinResponse};
use crate::pki::join::{JoinToken, validate_host};

/// How long the agent keeps trying while masters are unreachable or not ready.
const PATIENCE: Duration = Duration::from_secs(120);

/// Why one attempt with one master failed.
#[derive(Debug)]
enum Attempt {
    /// The cluster refused the token or the request: no master will accept it.
    Fatal(String),
    /// This master cannot help (another CA, no `ca_key`); others may.
    ThisMaster(String),
    /// Unreachable or not ready; worth retrying.
    Retry(String),
}

/// The paths in `config.tls` that do not exist.
fn missing_files(config: &AgentConfig) -> Vec<&std::path::Path> {
    [&config.tls.ca, &config.tls.cert, &config.tls.key]
        .into_iter()
        .map(|p| p.as_path())
        .filter(|p| !p.exists())
        .collect()
}

/// Makes sure the agent has its CA, certificate and key: does nothing when the files exist,
/// joins with `config.join_token` when they do not.
pub async fn ensure_credentials(config: &AgentConfig) -> Result<(), AgentError> {
    let missing = missing_files(config);
    if missing.is_empty() {
        return Ok(());
    }
    let Some(text) = &config.join_token else {
        return Err(AgentError::Other(format!(
            "{} does not exist: give this agent a join token (join_token in its config, or --join-token) made \
             with `medos node join-token create`, or a certificate made with `medos ca issue --role agent` in [tls]",
            missing[0].display()
        )));
    };
    let token = JoinToken::parse(text).map_err(|e| AgentError::Join(format!("join_token: {e}")))?;
    tracing::info!(token_id = %token.id(), masters = ?config.masters, "no certificate yet; joining with the join token");
    let key = KeyPair::generate().map_err(|e| AgentError::Join(format!("generating the agent's key: {e}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, config.name.as_str());
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| AgentError::Join(format!("making the certificate signing request: {e}")))?;
    let request = JoinRequest {
        token: text.trim().to_string(),
        csr,
        name: config.name.clone(),
        hosts: certificate_hosts(config),
    };

    let deadline = Instant::now() + PATIENCE;
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut refusals = Vec::new();
        let mut retryable = false;
        for url in &config.masters {
            match join_one(url, &token, &request, &key).await {
                Ok(answer) => {
                    store(config, &answer, &key)?;
                    tracing::info!(master = %url, public = answer.public, "joined: certificate stored");
                    return Ok(());
                }
                Err(Attempt::Fatal(message)) => return Err(AgentError::Join(format!("{url}: {message}"))),
                Err(Attempt::ThisMaster(message)) => refusals.push(format!("{url}: {message}")),
                Err(Attempt::Retry(message)) => {
                    retryable = true;
                    refusals.push(format!("{url}: {message}"));
                }
            }
        }
        if !retryable || Instant::now() + backoff > deadline {
            return Err(AgentError::Join(refusals.join("; ")));
        }
        tracing::warn!(errors = %refusals.join("; "), retry_in = ?backoff, "could not join yet");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The names the agent's certificate is valid for: its address, host name and the host of
/// its advertised API (masters verify it when they call the agent's API).
fn certificate_hosts(config: &AgentConfig) -> Vec<String> {
    let mut hosts = vec![config.address.clone(), config.hostname.clone()];
    if let Some(listen) = config.listen
        && !listen.ip().is_unspecified()
    {
        hosts.push(listen.ip().to_string());
    }
    if let Some(host) = config.api.strip_prefix("https://").and_then(|rest| rest.split('/').next()) {
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        hosts.push(host.trim_start_matches('[').trim_end_matches(']').to_string());
    }
    let mut out: Vec<String> = Vec::new();
    for host in hosts {
        if out.contains(&host) {
            continue;
        }
        match validate_host(&host) {
            Ok(()) => out.push(host),
            Err(e) => tracing::warn!(error = %e, "left out of the agent's certificate"),
        }
    }
    out
}

fn http_client(tls: rustls::ClientConfig) -> Result<reqwest::Client, Attempt> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| Attempt::Fatal(format!("building the HTTP client: {e}")))
}

fn describe(e: &reqwest::Error) -> String {
    crate::api::client::describe(e)
}

async fn join_one(url: &str, token: &JoinToken, request: &JoinRequest, key: &KeyPair) -> Result<JoinResponse, Attempt> {
    // 1. The CA, downloaded without trusting anyone, then pinned by the token's fingerprint.
    let anyone = http_client(crate::pki::tls::trust_on_first_use_config())?;
    let resp = anyone.get(format!("{url}/ca.crt")).send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    if !resp.status().is_success() {
        return Err(Attempt::Retry(format!("GET /ca.crt answered {}", resp.status())));
    }
    let ca_pem = resp.bytes().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    let ca = crate::pki::tls::certs_from_pem(&ca_pem, std::path::Path::new("/ca.crt"))
        .map_err(|e| Attempt::ThisMaster(format!("it serves an unreadable CA: {e}")))?;
    let fingerprint = crate::pki::fingerprint(&ca[0]);
    if !token.pins(&fingerprint) {
        return Err(Attempt::ThisMaster(format!(
            "it serves a CA with fingerprint {fingerprint}, but the join token pins {}; the token belongs to another \
             cluster, or something is impersonating this master (the token was not sent)",
            token.ca_sha256
        )));
    }
    // 2. The token and the request, over TLS verified against the pinned CA.
    let tls = crate::pki::tls::client_config_for_ca(&ca_pem).map_err(|e| Attempt::ThisMaster(e.to_string()))?;
    let pinned = http_client(tls)?;
    let resp =
        pinned.post(format!("{url}/v1/join")).json(request).send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| Attempt::Retry(describe(&e)))?;
    if !status.is_success() {
        let body = ErrorBody::parse_or_text(&bytes, status);
        let message = format!("{status}: {}", body.message);
        return Err(if body.code == ERR_NO_CA_KEY {
            Attempt::ThisMaster(message)
        } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Attempt::Retry(message)
        } else {
            Attempt::Fatal(message)
        });
    }
    let answer: JoinResponse = serde_json::from_slice(&bytes)
        .map_err(|e| Attempt::ThisMaster(format!("unreadable answer to POST /v1/join: {e}")))?;
    // 3. The answer must be a certificate for our key under the pinned CA.
    let ca_answered = crate::pki::tls::certs_from_pem(answer.ca.as_bytes(), std::path::Path::new("answer"))
        .map_err(|e| Attempt::ThisMaster(format!("unreadable CA in the answer: {e}")))?;
    if crate::pki::fingerprint(&ca_answered[0]) != fingerprint {
        return Err(Attempt::ThisMaster("it answered with another CA than the one it serves".into()));
    }
    let cert = crate::pki::tls::certs_from_pem(answer.certificate.as_bytes(), std::path::Path::new("answer"))
        .map_err(|e| Attempt::ThisMaster(format!("unreadable certificate in the answer: {e}")))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert[0].as_ref())
        .map_err(|e| Attempt::ThisMaster(format!("unreadable certificate in the answer: {e}")))?;
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(Attempt::ThisMaster("it answered with a certificate for another key".into()));
    }
    Ok(answer)
}

/// Writes the CA, then the key (0600), then the certificate: a crash in between leaves the
/// certificate missing, so the next start joins again with a new key.
fn store(config: &AgentConfig, answer: &JoinResponse, key: &KeyPair) -> Result<(), AgentError> {
    let write_err = |e: String| AgentError::Join(format!("storing the agent's credentials: {e}"));
    crate::atomic_file::write_atomic(&config.tls.ca, answer.ca.as_bytes()).map_err(write_err)?;
    crate::atomic_file::write_atomic_secret(&config.tls.key, key.serialize_pem().as_bytes()).map_err(write_err)?;
    crate::atomic_file::write_atomic(&config.tls.cert, answer.certificate.as_bytes()).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_covers_address_hostname_and_api_host() {
        let mut config: AgentConfig = toml::from_str(
            r#"
            name = "a"
            hostname = "node-7.example"
            address = "10.0.0.7"
            masters = ["https://m:1"]
            work_dir = "/tmp/a"
            api = "https://[fd00::7]:5051"
            listen = "0.0.0.0:5051"
            [tls]
            ca = "ca"
            cert = "c"
            key = "k"
            "#,
        )
        .unwrap();
        assert_eq!(certificate_hosts(&config), ["10.0.0.7", "node-7.example", "fd00::7"]);
        config.api = String::new();
        config.listen = Some("127.0.0.1:5051".parse().unwrap());
        config.hostname = "bad host".into();
        assert_eq!(certificate_hosts(&config), ["10.0.0.7", "127.0.0.1"]);
    }
}
