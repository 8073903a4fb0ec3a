//! Agents joining with a token: `POST /v1/join-tokens` (operators, with a login token)
//! creates a join token; `POST /v1/join` (public: the new agent has no certificate yet)
//! exchanges a valid join token and a certificate signing request for an agent certificate.
//!
//! Neither changes cluster state: tokens are MACs under the replicated token-signing secret
//! (see [`crate::pki::join`]), so any master creates and verifies them. Only masters with
//! `ca_key` sign; the agent's private key never leaves the agent.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::server::ConnInfo;
use crate::master::Master;
use crate::pki::Role;
use crate::pki::join::{self, JoinKind, JoinToken};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Most subject alternative names one agent may ask for.
pub const MAX_HOSTS: usize = 32;
/// Largest accepted CSR (PEM); real ones are well under 2 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// `POST /v1/join-tokens` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// Lifetime in seconds (default 24 h; 60 s to 365 days).
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    /// Agents joining with this token register as public agents.
    #[serde(default)]
    pub public: bool,
}

fn default_ttl() -> u64 {
    join::DEFAULT_TTL_SECS
}

/// `POST /v1/join-tokens` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenCreated {
    /// The token itself (secret: anyone holding it can join an agent until it expires).
    pub token: String,
    /// Names the token in logs; not secret.
    pub id: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub public: bool,
    /// The CA fingerprint the token pins (colon-separated hex).
    pub ca_fingerprint: String,
    /// The master that answered and whether it can sign (has `ca_key`).
    pub served_by: String,
    pub served_by_signs: bool,
}

/// `POST /v1/join` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    /// PKCS#10 certificate signing request (PEM) made with the agent's own key.
    pub csr: String,
    /// The agent's name: the certificate's CN.
    pub name: String,
    /// IP addresses and DNS names the agent's API is reached at (subject alternative names).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `POST /v1/join` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The agent's certificate (PEM), `OU=agent`.
    pub certificate: String,
    /// The cluster CA (PEM).
    pub ca: String,
    /// Whether the token made this a public agent.
    pub public: bool,
}

/// The error code of a master that cannot sign (no `ca_key`).
pub const ERR_NO_CA_KEY: &str = "ERR_NO_CA_KEY";
/// The error code of a refused join token.
pub const ERR_INVALID_JOIN_TOKEN: &str = "ERR_INVALID_JOIN_TOKEN";

fn cluster_secret(master: &Master) -> Result<String, ApiError> {
    let state = master.state.read().expect("state lock");
    state
        .identity
        .as_ref()
        .map(|i| i.token_secret.clone())
        .ok_or_else(|| ApiError::Unavailable("the cluster is still initialising; retry in a moment".into()))
}

fn ca_fingerprint(master: &Master) -> Result<String, ApiError> {
    let der = crate::pki::tls::certs_from_pem(master.ca_pem.as_bytes(), &master.config.tls.ca)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(crate::pki::fingerprint(&der[0]))
}

/// `POST /v1/join-tokens`: creates a join token (needs a login token).
pub async fn create_token(
    State(master): State<Arc<Master>>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    body: JsonBody<CreateJoinToken>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    join::check_ttl(req.ttl_seconds).map_err(|e| ApiError::BadRequest(format!("ttl_seconds: {e}")))?;
    let secret = cluster_secret(&master)?;
    let fingerprint = ca_fingerprint(&master)?;
    let kind = if req.public { JoinKind::Public } else { JoinKind::Agent };
    let expires_at = crate::clock::now_secs() + req.ttl_seconds;
    let token = JoinToken::create(&secret, &fingerprint, kind, expires_at, rand::random());
    tracing::info!(
        token_id = %token.id(),
        by = caller.map(|c| c.0.uid).unwrap_or_default(),
        "join token created"
    );
    let created = JoinTokenCreated {
        token: token.to_string(),
        id: token.id(),
        expires_at,
        public: req.public,
        ca_fingerprint: fingerprint,
        served_by: master.name.clone(),
        served_by_signs: master.ca_signer.is_some(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

fn no_ca_key(master: &Master) -> Response {
    let message = format!(
        "master {} cannot sign agent certificates: set `ca_key` (or --ca-key) in its config to the cluster CA's key \
         file, or join through a master that has it",
        master.name
    );
    let body = ErrorBody {
        code: ERR_NO_CA_KEY.into(),
        title: "Not Implemented".into(),
        description: message.clone(),
        message,
        current_revision: None,
    };
    (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response()
}

/// `POST /v1/join`: verifies the join token and signs the agent's CSR.
pub async fn join(
    State(master): State<Arc<Master>>,
    conn: Option<axum::Extension<ConnInfo>>,
    body: JsonBody<JoinRequest>,
) -> Result<Response, ApiError> {
    let remote = conn.map(|c| c.0.remote.to_string()).unwrap_or_default();
    let Json(req) = body.inspect_err(|e| {
        tracing::warn!(%remote, reason = %e.body_text(), "join refused: unreadable request");
    })?;
    let refuse = |reason: String, token_id: &str| {
        tracing::warn!(%remote, name = %req.name, token_id, %reason, "join refused");
        reason
    };
    // The token first: nothing else is looked at for a caller without a valid one.
    let token = JoinToken::parse(&req.token)
        .map_err(|e| ApiError::BadRequest(format!("token: {}", refuse(e.to_string(), ""))))?;
    let secret = cluster_secret(&master)?;
    let fingerprint = ca_fingerprint(&master)?;
    token
        .verify(&secret, &fingerprint, crate::clock::now_secs())
        .map_err(|e| ApiError::Unauthorized(ERR_INVALID_JOIN_TOKEN, refuse(e.to_string(), &token.id())))?;
    let Some(ca) = master.ca_signer.clone() else {
        let _ = refuse("this master has no ca_key".into(), &token.id());
        return Ok(no_ca_key(&master));
    };
    join::validate_node_name(&req.name)
        .map_err(|e| ApiError::BadRequest(format!("name: {}", refuse(e, &token.id()))))?;
    if req.hosts.len() > MAX_HOSTS {
        let reason = refuse(format!("{} hosts; at most {MAX_HOSTS}", req.hosts.len()), &token.id());
        return Err(ApiError::BadRequest(format!("hosts: {reason}")));
    }
    for (i, host) in req.hosts.iter().enumerate() {
        join::validate_host(host)
            .map_err(|e| ApiError::BadRequest(format!("hosts[{i}]: {}", refuse(e, &token.id()))))?;
    }
    if req.csr.len() > MAX_CSR_BYTES {
        let reason = refuse(format!("{} bytes; at most {MAX_CSR_BYTES}", req.csr.len()), &token.id());
        return Err(ApiError::BadRequest(format!("csr: {reason}")));
    }
    let (csr, name, hosts) = (req.csr.clone(), req.name.clone(), req.hosts.clone());
    let signed = tokio::task::spawn_blocking(move || ca.sign_request(&csr, Role::Agent, &name, &hosts))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let certificate =
        signed.map_err(|e| ApiError::BadRequest(format!("csr: {}", refuse(e.to_string(), &token.id()))))?;
    tracing::info!(%remote, name = %req.name, token_id = %token.id(), public = token.kind == JoinKind::Public, "agent joined: certificate issued");
    Ok(Json(JoinResponse { certificate, ca: master.ca_pem.clone(), public: token.kind == JoinKind::Public })
        .into_response())
}
