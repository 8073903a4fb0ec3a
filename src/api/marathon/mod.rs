//! Marathon's REST API (`/v2/…`, also under `/marathon/v2/…`): apps, groups, deployments,
//! tasks, the launch queue, info, leader, plugins and pods (none). Bodies and errors have
//! Marathon's shapes, so existing scripts and clients work unchanged. Every change is one
//! `MarathonDeploy` (or task kill) command; the leader's Marathon loop (`master::marathon`)
//! carries deployments out.

pub mod apps;
pub mod events;
pub mod groups;
pub mod misc;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::core::marathon::ValidationError;
use crate::core::marathon::state::{Deployment, FRAMEWORK_ID};
use crate::core::{Task, TaskState};
use crate::master::Master;

/// Marathon's version reported by `/v2/info` (the API level medos follows).
pub const MARATHON_VERSION: &str = "1.10.0";

/// The routes, to be nested under `/v2` and `/marathon/v2`.
pub fn routes() -> axum::Router<Arc<Master>> {
    axum::Router::new()
        .route("/apps", get(apps::list).post(apps::create).put(apps::update_many).patch(apps::update_many))
        .route("/apps/", get(apps::list).post(apps::create).put(apps::update_many).patch(apps::update_many))
        .route(
            "/apps/{*rest}",
            get(apps::get_path)
                .put(apps::put_path)
                .patch(apps::patch_path)
                .delete(apps::delete_path)
                .post(apps::post_path),
        )
        .route("/deployments", get(list_deployments))
        .route("/deployments/{id}", axum::routing::delete(delete_deployment))
        .route("/tasks", get(list_tasks))
        .route("/queue", get(queue))
        .route("/info", get(info))
        .route("/leader", get(leader))
        .route("/events", get(events::events))
        .route(
            "/groups",
            get(groups::get_root).post(groups::post_root).put(groups::put_root).delete(groups::delete_root),
        )
        .route(
            "/groups/",
            get(groups::get_root).post(groups::post_root).put(groups::put_root).delete(groups::delete_root),
        )
        .route(
            "/groups/{*rest}",
            get(groups::get_path)
                .post(groups::post_path)
                .put(groups::put_path)
                .patch(groups::patch_path)
                .delete(groups::delete_path),
        )
        .route("/tasks/delete", axum::routing::post(misc::delete_tasks))
        .route("/queue/{*rest}", axum::routing::delete(misc::delete_queue_delay))
        .route("/leader", axum::routing::delete(misc::abdicate))
        .route("/plugins", get(misc::plugins))
        .route("/plugins/{*rest}", axum::routing::any(misc::plugin_request))
        .route("/pods", get(misc::pods).post(misc::pod_create))
        .route("/pods/{*rest}", get(misc::pod).put(misc::pod_create).delete(misc::pod))
}

/// Errors with Marathon's bodies.
#[derive(Debug)]
pub enum MarathonError {
    /// 422 `{"message": "Object is not valid", "details": [{"path", "errors"}]}`.
    Invalid(ValidationError),
    /// 409: apps locked by deployments.
    Locked(Vec<String>),
    /// 409 with a message (e.g. the app exists).
    Conflict(String),
    NotFound(String),
    BadRequest(String),
    Api(ApiError),
}

impl From<ApiError> for MarathonError {
    fn from(e: ApiError) -> Self {
        MarathonError::Api(e)
    }
}

impl From<crate::master::ProposeError> for MarathonError {
    fn from(e: crate::master::ProposeError) -> Self {
        MarathonError::Api(e.into())
    }
}

impl From<axum::extract::rejection::QueryRejection> for MarathonError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        MarathonError::Api(e.into())
    }
}

impl IntoResponse for MarathonError {
    fn into_response(self) -> Response {
        match self {
            MarathonError::Invalid(e) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!(e))).into_response(),
            MarathonError::Locked(ids) => {
                let first = ids.first().cloned().unwrap_or_default();
                let body = json!({
                    "message": format!(
                        "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{first}'."
                    ),
                    "deployments": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                });
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            MarathonError::Conflict(message) => {
                (StatusCode::CONFLICT, Json(json!({ "message": message }))).into_response()
            }
            MarathonError::NotFound(message) => {
                (StatusCode::NOT_FOUND, Json(json!({ "message": message }))).into_response()
            }
            MarathonError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
            }
            MarathonError::Api(e) => e.into_response(),
        }
    }
}

/// Parses a request body as JSON, with Marathon's 400 for syntax errors.
pub fn parse_body(bytes: &[u8]) -> Result<Value, MarathonError> {
    serde_json::from_slice(bytes).map_err(|e| MarathonError::BadRequest(format!("Invalid JSON: {e}")))
}

/// Milliseconds since the epoch as Marathon writes times: `2015-09-30T09:09:17.614Z`.
pub fn timestamp(ms: u64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// A task in Marathon's JSON shape.
pub fn task_json(task: &Task, state: &crate::core::State) -> Value {
    let agent = state.agents.get(&task.agent_id);
    let started = task.statuses.iter().find(|s| s.state == TaskState::TASK_RUNNING).map(|s| timestamp(s.timestamp_ms));
    let mut v = json!({
        "id": task.id,
        "appId": task.app_id,
        "slaveId": task.agent_id,
        "host": agent.map(|a| a.hostname.as_str()).unwrap_or(""),
        "state": task.state.as_str(),
        "stagedAt": timestamp(task.created_at_ms),
        "startedAt": started,
        "ports": task.ports,
        "servicePorts": task
            .app_id
            .as_ref()
            .and_then(|id| state.marathon.apps.get(id))
            .map(|r| r.app.port_definitions.iter().map(|p| p.port).collect::<Vec<_>>())
            .unwrap_or_default(),
        "version": task.app_version,
        "ipAddresses": agent.map(|a| vec![json!({"ipAddress": a.address, "protocol": "IPv4"})]).unwrap_or_default(),
        "localVolumes": [],
        "role": if agent.is_some_and(|a| a.public) { "slave_public" } else { "*" },
    });
    if let Some(healthy) = task.healthy {
        let last = task.statuses.last();
        v["healthCheckResults"] = json!([{
            "alive": healthy,
            "consecutiveFailures": if healthy { 0 } else { 1 },
            "firstSuccess": Value::Null,
            "lastFailure": if healthy { Value::Null } else { json!(last.map(|s| timestamp(s.timestamp_ms))) },
            "lastSuccess": if healthy { json!(last.map(|s| timestamp(s.timestamp_ms))) } else { Value::Null },
            "lastFailureCause": if healthy { Value::Null } else { json!(last.map(|s| s.message.clone())) },
            "instanceId": task.id,
        }]);
    }
    v
}

/// A deployment in Marathon's JSON shape.
pub fn deployment_json(d: &Deployment) -> Value {
    let steps: Vec<Value> = d
        .steps
        .iter()
        .map(|s| json!({"actions": s.actions.iter().map(|a| json!({"action": a.action.as_str(), "app": a.app})).collect::<Vec<_>>()}))
        .collect();
    let current: Vec<Value> = d
        .current_actions()
        .iter()
        .map(|a| json!({"action": a.action.as_str(), "app": a.app, "readinessCheckResults": []}))
        .collect();
    json!({
        "id": d.id,
        "version": d.version,
        "affectedApps": d.affected_apps,
        "affectedPods": [],
        "steps": steps,
        "currentActions": current,
        "currentStep": d.current_step + 1,
        "totalSteps": d.steps.len(),
    })
}

async fn list_deployments(State(master): State<Arc<Master>>) -> Result<Json<Value>, MarathonError> {
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    let mut list: Vec<&Deployment> = state.marathon.deployments.values().collect();
    list.sort_by_key(|d| d.started_at_ms);
    Ok(Json(Value::Array(list.into_iter().map(deployment_json).collect())))
}

/// `DELETE /v2/deployments/{id}`: rolls the change back (a new deployment to the definitions
/// before it); with `?force=true` only stops it, leaving apps as they are now.
async fn delete_deployment(
    State(master): State<Arc<Master>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    query: Result<axum::extract::Query<super::query::Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, MarathonError> {
    let axum::extract::Query(params) = query?;
    let force = super::query::flag(&params, "force")?;
    master.read_barrier().await?;
    let deployment = {
        let state = master.state.read().expect("state lock");
        state.marathon.deployments.get(&id).cloned()
    }
    .ok_or_else(|| MarathonError::NotFound(format!("DeploymentPlan {id} does not exist")))?;
    if force {
        master.propose(crate::core::Command::MarathonDeploymentStop { deployment_id: id }).await?;
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let now = crate::clock::now_ms();
    let version = timestamp(now);
    let changes = deployment
        .original
        .iter()
        .map(|(app_id, before)| crate::core::marathon::state::AppChange {
            id: app_id.clone(),
            app: before.clone().map(|mut app| {
                app.version = Some(version.clone());
                Box::new(app)
            }),
            force_restart: false,
        })
        .collect();
    let (deployment_id, version) = apps::deploy(&master, changes, vec![], true, now, version).await?;
    Ok((StatusCode::OK, Json(json!({"deploymentId": deployment_id, "version": version}))).into_response())
}

async fn list_tasks(
    State(master): State<Arc<Master>>,
    query: Result<axum::extract::Query<super::query::Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, MarathonError> {
    let axum::extract::Query(params) = query?;
    let status = params.get("status").map(|s| s.to_ascii_lowercase());
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    let tasks: Vec<Value> = state
        .tasks
        .values()
        .filter(|t| t.framework_id == FRAMEWORK_ID && !t.state.is_terminal())
        .filter(|t| match status.as_deref() {
            Some("running") => t.state == TaskState::TASK_RUNNING,
            Some("staging") => t.state == TaskState::TASK_STAGING,
            _ => true,
        })
        .map(|t| task_json(t, &state))
        .collect();
    Ok(Json(json!({ "tasks": tasks })))
}

/// `GET /v2/queue`: the launch queue lives in the leader's memory; a follower asks the leader.
async fn queue(State(master): State<Arc<Master>>, headers: axum::http::HeaderMap) -> Result<Response, MarathonError> {
    if !master.is_leader() {
        return misc::forward_to_leader(&master, reqwest::Method::GET, "/v2/queue", &headers).await;
    }
    master.read_barrier().await?;
    let queue = master.marathon.queue();
    let state = master.state.read().expect("state lock");
    let now = crate::clock::now_ms();
    let entries: Vec<Value> = queue
        .iter()
        .filter(|(_, info)| info.waiting > 0)
        .filter_map(|(id, info)| {
            let app = &state.marathon.apps.get(id)?.app;
            let left_ms = info.delayed_until_ms.map(|u| u.saturating_sub(now)).unwrap_or(0);
            Some(json!({
                "app": app,
                "count": info.waiting,
                "role": "*",
                "delay": {"timeLeftSeconds": left_ms / 1000, "overdue": left_ms == 0},
                "since": info.last_unused_offer_at_ms.map(timestamp),
                "processedOffersSummary": {
                    "processedOffersCount": info.processed_offers_count,
                    "unusedOffersCount": info.unused_offers_count,
                    "lastUnusedOfferAt": info.last_unused_offer_at_ms.map(timestamp),
                    "lastUsedOfferAt": info.last_used_offer_at_ms.map(timestamp),
                    "rejectSummaryLastOffers": info.summary,
                },
                "lastUnusedOffers": info.last_refusals.iter().map(|(host, reasons)| json!({
                    "offer": {"hostname": host},
                    "reason": reasons,
                })).collect::<Vec<_>>(),
                "blocked": info.blocked,
            }))
        })
        .collect();
    Ok(Json(json!({ "queue": entries })).into_response())
}

async fn info(State(master): State<Arc<Master>>) -> Json<Value> {
    let leader = master.leader().map(|(_, node)| node.api.clone());
    let leader_host = leader.as_deref().map(host_port).unwrap_or_default();
    let framework_id = {
        let state = master.state.read().expect("state lock");
        state.cluster_id().map(|c| format!("{c}-0000")).unwrap_or_default()
    };
    Json(json!({
        "name": "marathon",
        "version": MARATHON_VERSION,
        "buildref": env!("CARGO_PKG_VERSION"),
        "elected": master.is_leader(),
        "leader": leader_host,
        "frameworkId": framework_id,
        "marathon_config": {
            "master": "medos",
            "mesos_role": "*",
            "mesos_user": "root",
            "framework_name": "marathon",
            "hostname": host_port(&master.advertise),
            "failover_timeout": 604800,
            "task_launch_timeout": 300000,
            "reconciliation_interval": 600000,
            "decline_offer_duration": 120000,
        },
        "http_config": {"http_port": Value::Null, "https_port": port_of(&master.advertise)},
        "zookeeper_config": {},
    }))
}

async fn leader(State(master): State<Arc<Master>>) -> Result<Json<Value>, MarathonError> {
    match master.leader() {
        Some((_, node)) => Ok(Json(json!({ "leader": host_port(&node.api) }))),
        None => Err(MarathonError::NotFound("There is no leader".into())),
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
}

fn port_of(url: &str) -> Option<u16> {
    host_port(url).rsplit(':').next()?.parse().ok()
}

/// Counts of an app's tasks for the app JSON.
pub fn counts(tasks: &[&Task], with_checks: bool) -> BTreeMap<&'static str, usize> {
    let mut c = BTreeMap::new();
    c.insert(
        "tasksStaged",
        tasks.iter().filter(|t| matches!(t.state, TaskState::TASK_STAGING | TaskState::TASK_STARTING)).count(),
    );
    c.insert("tasksRunning", tasks.iter().filter(|t| t.state == TaskState::TASK_RUNNING).count());
    let healthy = tasks.iter().filter(|t| t.state == TaskState::TASK_RUNNING && t.healthy == Some(true)).count();
    let unhealthy = tasks.iter().filter(|t| t.state == TaskState::TASK_RUNNING && t.healthy == Some(false)).count();
    c.insert("tasksHealthy", if with_checks { healthy } else { 0 });
    c.insert("tasksUnhealthy", if with_checks { unhealthy } else { 0 });
    c
}
