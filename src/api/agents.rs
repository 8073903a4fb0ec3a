//! Agent endpoints: the agent protocol (`/internal/agent/v1/*`, agent certificates only)
//! and the operator's view of agents (`/v1/agents`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::agent_protocol::{
    AgentEvent, HeartbeatRequest, NotLeader, RegisterRequest, RegisterResponse, StatusRequest, StatusResponse,
};
use super::error::ApiError;
use super::server::ConnInfo;
use crate::core::placement::free_on;
use crate::core::{Agent, AgentMode, AgentStatus, Command, Resources, Response as CoreResponse};
use crate::master::Master;
use crate::pki::Role;

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Admits only agents of this cluster (verified client certificate with `OU=agent`).
pub async fn require_agent(req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<ConnInfo>().and_then(|i| i.peer.clone()) {
        Some(peer) if peer.role == Role::Agent => Ok(next.run(req).await),
        _ => Err(ApiError::Forbidden("agent endpoints accept only agents' client certificates".into())),
    }
}

fn not_leader(master: &Master) -> Response {
    let body = NotLeader { leader_api: master.leader().map(|(_, n)| n.api) };
    (StatusCode::MISDIRECTED_REQUEST, Json(body)).into_response()
}

/// `POST /internal/agent/v1/register`.
pub async fn register(
    State(master): State<Arc<Master>>,
    body: JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    let Json(mut req) = body?;
    if !master.is_leader() {
        return Ok(not_leader(&master));
    }
    master.read_barrier().await?;
    if req.registration.agent_id.is_empty() {
        // Agents choose their id before registering, so that a retried registration is the
        // same one; this serves agents that send none.
        req.registration.agent_id = super::agent_protocol::new_agent_id();
    }
    let agent_id = req.registration.agent_id.clone();
    // Counts as a heartbeat first, so the leader does not mark it unreachable mid-registration.
    master.agents.heartbeat(&agent_id);
    let command = Command::AgentRegister { registration: req.registration, at_ms: crate::clock::now_ms() };
    match master.propose(command).await? {
        CoreResponse::AgentRegistered { reregistered, .. } => {
            tracing::info!(agent = %agent_id, reregistered, tasks = req.tasks.len(), "agent registered");
        }
        CoreResponse::Rejected { message } => return Err(ApiError::BadRequest(message)),
        other => return Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
    let (lost, unwanted) = crate::master::agents::reconcile(&master, &agent_id, &req.tasks);
    for command in lost {
        master.propose(command).await?;
    }
    master.agents.kill_unknown(&agent_id, unwanted);
    master.agents.heartbeat(&agent_id);
    let dns = crate::master::agents::cluster_dns(&master, &master.state.read().expect("state lock"));
    Ok(Json(RegisterResponse {
        agent_id,
        heartbeat_interval_ms: master.config.agents.heartbeat_interval_ms,
        leader: master.name.clone(),
        dns,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    agent_id: String,
}

/// `GET /internal/agent/v1/events?agent_id=ID`: one JSON event per line until the agent or
/// the leadership goes away.
pub async fn events(
    State(master): State<Arc<Master>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    if !master.is_leader() {
        return Ok(not_leader(&master));
    }
    if !master.state.read().expect("state lock").agents.contains_key(&q.agent_id) {
        return Err(ApiError::NotFound(format!("agent {} is not registered; register first", q.agent_id)));
    }
    let rx = master.agents.open_stream(&q.agent_id);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).expect("events serialise");
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), rx))
    });
    // The first line tells the agent the stream is open.
    let hello = futures_util::stream::once(async {
        let mut line = serde_json::to_vec(&AgentEvent::Ping).expect("events serialise");
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    use futures_util::StreamExt;
    let body = Body::from_stream(hello.chain(stream));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// `POST /internal/agent/v1/heartbeat`.
pub async fn heartbeat(
    State(master): State<Arc<Master>>,
    body: JsonBody<HeartbeatRequest>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    if !master.is_leader() {
        return Ok(not_leader(&master));
    }
    let status = master.state.read().expect("state lock").agents.get(&req.agent_id).map(|a| a.status);
    match status {
        None => Err(ApiError::NotFound(format!("agent {} is not registered; register again", req.agent_id))),
        Some(AgentStatus::Unreachable) => Err(ApiError::Conflict {
            code: "ERR_REREGISTER",
            message: format!("agent {} was marked unreachable; register again", req.agent_id),
            current_revision: None,
        }),
        Some(AgentStatus::Active) => {
            master.agents.heartbeat(&req.agent_id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

/// `POST /internal/agent/v1/status`: answered once the update is committed.
pub async fn status(
    State(master): State<Arc<Master>>,
    body: JsonBody<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let Json(req) = body?;
    match master.propose(Command::TaskStatusUpdate { status: req.status }).await? {
        CoreResponse::TaskUpdated { applied, .. } => Ok(Json(StatusResponse { applied })),
        // An update for a task the masters no longer know is acknowledged and dropped.
        CoreResponse::Rejected { .. } => Ok(Json(StatusResponse { applied: false })),
        other => Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
}

/// An agent as `GET /v1/agents` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    pub used: Resources,
    pub free: Resources,
    pub active_tasks: usize,
}

fn view(state: &crate::core::State, agent: &Agent) -> AgentView {
    let (free, _) = free_on(state, &agent.id).expect("agent exists");
    let mut used = agent.total.clone();
    used.subtract(&free);
    used.ports.clear();
    let active_tasks = state.tasks.values().filter(|t| t.agent_id == agent.id && !t.state.is_terminal()).count();
    AgentView { agent: agent.clone(), used, free: Resources { ports: vec![], ..free }, active_tasks }
}

/// `GET /v1/agents`.
pub async fn list(State(master): State<Arc<Master>>) -> Result<Json<Vec<AgentView>>, ApiError> {
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    Ok(Json(state.agents.values().map(|a| view(&state, a)).collect()))
}

/// `GET /v1/agents/{id}` (an id or a hostname).
pub async fn show(State(master): State<Arc<Master>>, Path(id): Path<String>) -> Result<Json<AgentView>, ApiError> {
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    let agent = state
        .agents
        .values()
        .find(|a| a.id == id || a.hostname == id)
        .ok_or_else(|| ApiError::NotFound(format!("no agent {id:?}; see `medos node list`")))?;
    Ok(Json(view(&state, agent)))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// `drain`, `deactivate` or `reactivate`.
    pub mode: String,
}

/// `POST /v1/agents/{id}/mode` `{"mode": "drain"|"deactivate"|"reactivate"}`.
pub async fn set_mode(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    body: JsonBody<ModeRequest>,
) -> Result<Json<AgentView>, ApiError> {
    let Json(req) = body?;
    let mode = match req.mode.as_str() {
        "drain" => AgentMode::Draining,
        "deactivate" => AgentMode::Deactivated,
        "reactivate" => AgentMode::Normal,
        other => {
            return Err(ApiError::BadRequest(format!("mode: {other:?} is not one of drain, deactivate, reactivate")));
        }
    };
    master.read_barrier().await?;
    let agent_id = {
        let state = master.state.read().expect("state lock");
        state.agents.values().find(|a| a.id == id || a.hostname == id).map(|a| a.id.clone())
    }
    .ok_or_else(|| ApiError::NotFound(format!("no agent {id:?}; see `medos node list`")))?;
    match master
        .propose(Command::AgentSetMode { agent_id: agent_id.clone(), mode, at_ms: crate::clock::now_ms() })
        .await?
    {
        CoreResponse::AgentUpdated { .. } => {}
        CoreResponse::Rejected { message } => return Err(ApiError::BadRequest(message)),
        other => return Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
    let state = master.state.read().expect("state lock");
    let agent = state.agents.get(&agent_id).ok_or_else(|| ApiError::NotFound(format!("agent {agent_id} is gone")))?;
    Ok(Json(view(&state, agent)))
}
