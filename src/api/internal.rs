//! Master-to-master endpoints (`/internal/...`), admitted only with a master certificate:
//! Raft RPCs, identity, forwarded proposals and read-index requests.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use super::error::ApiError;
use crate::core::Command;
use crate::master::node::{IdentityAnswer, Proposed, ReadIndex};
use crate::master::types::{NodeId, TypeConfig};
use crate::master::{Master, ProposeError};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub async fn append(
    State(m): State<Arc<Master>>,
    body: JsonBody<AppendEntriesRequest<TypeConfig>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let result = m.raft.append_entries(req).await;
    Ok(Json(serde_json::to_value(result).map_err(|e| ApiError::Internal(e.to_string()))?))
}

pub async fn vote(
    State(m): State<Arc<Master>>,
    body: JsonBody<VoteRequest<NodeId>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let result = m.raft.vote(req).await;
    Ok(Json(serde_json::to_value(result).map_err(|e| ApiError::Internal(e.to_string()))?))
}

pub async fn snapshot(
    State(m): State<Arc<Master>>,
    body: JsonBody<InstallSnapshotRequest<TypeConfig>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let result = m.raft.install_snapshot(req).await;
    Ok(Json(serde_json::to_value(result).map_err(|e| ApiError::Internal(e.to_string()))?))
}

pub async fn identity(State(m): State<Arc<Master>>) -> Json<IdentityAnswer> {
    Json(m.identity())
}

pub async fn propose(State(m): State<Arc<Master>>, body: JsonBody<Command>) -> Result<Json<Proposed>, ApiError> {
    let Json(command) = body?;
    match m.propose_local(command).await? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::NotLeader(format!("{} is not the leader", m.name))),
    }
}

pub async fn read_index(State(m): State<Arc<Master>>) -> Result<Json<ReadIndex>, ApiError> {
    if !m.is_leader() {
        return Err(ApiError::NotLeader(format!("{} is not the leader", m.name)));
    }
    match m.leader_read_index().await {
        Ok(r) => Ok(Json(r)),
        // Lost leadership while confirming it: nothing was read, the follower may retry.
        Err(ProposeError::Other(msg)) => Err(ApiError::NotLeader(msg)),
        Err(e) => Err(e.into()),
    }
}
