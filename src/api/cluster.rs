//! Cluster-level endpoints: status, membership changes, and the DC/OS discovery documents
//! (`/metadata`, `/dcos-metadata/dcos-version.json`, `/ca.crt`, `/ping`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::core::MasterInfo;
use crate::master::Master;

/// The medos version (also reported as the DC/OS version document).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberStatus {
    pub name: String,
    pub id: u64,
    pub api: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    pub voter: bool,
    /// Highest log index known replicated to this member (known only on the leader).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub matched_index: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster_id: Option<String>,
    /// Name of the leader as the answering master sees it.
    pub leader: Option<String>,
    pub term: u64,
    pub members: Vec<MemberStatus>,
    /// The master that answered.
    pub served_by: String,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub version: String,
}

/// `GET /v1/cluster/status`.
pub async fn status(State(master): State<Arc<Master>>) -> Json<ClusterStatus> {
    let metrics = master.raft.metrics().borrow().clone();
    let members = master.members();
    let leader_id = metrics.current_leader;
    let replication = metrics.replication.clone();
    let leader = leader_id.and_then(|id| members.iter().find(|m| m.id == id)).map(|m| m.name.clone());
    let members = members
        .iter()
        .map(|m: &MasterInfo| MemberStatus {
            name: m.name.clone(),
            id: m.id,
            api: m.api.clone(),
            role: if Some(m.id) == leader_id {
                "leader"
            } else if m.voter {
                "follower"
            } else {
                "learner"
            }
            .into(),
            voter: m.voter,
            matched_index: replication.as_ref().and_then(|r| r.get(&m.id).cloned().flatten()).map(|l| l.index),
        })
        .collect();
    let cluster_id = master.state.read().expect("state lock").cluster_id().map(String::from);
    Json(ClusterStatus {
        cluster_id,
        leader,
        term: metrics.current_term,
        members,
        served_by: master.name.clone(),
        last_log_index: metrics.last_log_index,
        last_applied: metrics.last_applied.map(|l| l.index),
        snapshot_index: metrics.snapshot.map(|l| l.index),
        version: VERSION.into(),
    })
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddMaster {
    /// The new master's API URL, e.g. `https://10.0.0.4:7443`.
    pub api: String,
}

/// Sends this request to the leader when this master is not the leader.
async fn forward_to_leader(
    master: &Master,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<serde_json::Value>,
) -> Result<Option<Response>, ApiError> {
    if master.is_leader() {
        return Ok(None);
    }
    let (_, leader) = master
        .leader()
        .ok_or_else(|| ApiError::Unavailable("there is no leader right now; retry in a few seconds".into()))?;
    let mut req =
        master.peers.request(method, format!("{}{path}", leader.api)).timeout(std::time::Duration::from_secs(150));
    if let Some(auth) = headers.get(AUTHORIZATION) {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp =
        req.send().await.map_err(|e| ApiError::Unavailable(format!("forwarding to the leader {leader}: {e}")))?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = resp.bytes().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Some((status, [(CONTENT_TYPE, "application/json")], bytes).into_response()))
}

/// `POST /v1/masters` `{"api": URL}`: adds a master (learner, then voter).
pub async fn add_master(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Result<Json<AddMaster>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    if !req.api.starts_with("https://") {
        return Err(ApiError::BadRequest(format!("api: {:?} must be an https:// URL", req.api)));
    }
    let payload = serde_json::to_value(&req).expect("serialises");
    if let Some(r) = forward_to_leader(&master, Method::POST, "/v1/masters", &headers, Some(payload)).await? {
        return Ok(r);
    }
    let added = master.add_master(&req.api).await.map_err(|message| ApiError::Conflict {
        code: "ERR_MEMBERSHIP",
        message,
        current_revision: None,
    })?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

/// `DELETE /v1/masters/{name}`: removes a master from the group.
pub async fn remove_master(
    State(master): State<Arc<Master>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(r) = forward_to_leader(&master, Method::DELETE, &format!("/v1/masters/{name}"), &headers, None).await? {
        return Ok(r);
    }
    let removed = master.remove_master(&name).await.map_err(|message| {
        if message.starts_with("no master named") {
            ApiError::NotFound(message)
        } else {
            ApiError::Conflict { code: "ERR_MEMBERSHIP", message, current_revision: None }
        }
    })?;
    Ok(Json(removed).into_response())
}

/// `GET /v1/masters`.
pub async fn list_masters(State(master): State<Arc<Master>>) -> Json<Vec<MasterInfo>> {
    Json(master.members())
}

/// `GET /ping` (Marathon).
pub async fn ping() -> &'static str {
    "pong"
}

/// `GET /ca.crt`: the cluster CA (PEM), for `medos cluster setup`.
pub async fn ca_cert(State(master): State<Arc<Master>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/x-pem-file")], master.ca_pem.clone())
}

/// `GET /metadata` (DC/OS): the cluster id and this master's address.
pub async fn metadata(State(master): State<Arc<Master>>) -> Result<Json<serde_json::Value>, ApiError> {
    let cluster_id = master.state.read().expect("state lock").cluster_id().map(String::from);
    let cluster_id = cluster_id.ok_or_else(|| ApiError::Unavailable("the cluster is still initialising".into()))?;
    let host = master.advertise.trim_start_matches("https://").rsplit_once(':').map_or("", |(h, _)| h).to_string();
    Ok(Json(serde_json::json!({ "CLUSTER_ID": cluster_id, "PUBLIC_IPV4": host })))
}

/// `GET /dcos-metadata/dcos-version.json` (DC/OS's version document).
pub async fn dcos_version(State(master): State<Arc<Master>>) -> Json<serde_json::Value> {
    let cluster_id = master.state.read().expect("state lock").cluster_id().map(String::from);
    Json(serde_json::json!({
        "version": VERSION,
        "dcos-variant": "medos",
        "dcos-image-commit": option_env!("MEDOS_COMMIT").unwrap_or("unknown"),
        "bootstrap-id": cluster_id,
    }))
}

/// `GET /v1/health`: whether this master is part of a functioning Raft group.
pub async fn health(State(master): State<Arc<Master>>) -> Response {
    let metrics = master.raft.metrics().borrow().clone();
    let healthy = metrics.running_state.is_ok() && metrics.current_leader.is_some();
    let body = serde_json::json!({
        "healthy": healthy,
        "name": master.name,
        "state": format!("{:?}", metrics.state),
        "leader": metrics.current_leader.is_some(),
        "is_leader": metrics.state == ServerState::Leader,
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}
