//! Smaller `/v2` endpoints: killing tasks of several apps (`POST /v2/tasks/delete`),
//! resetting an app's launch delay (`DELETE /v2/queue/{app}/delay`), leader abdication (not
//! supported: `DELETE /v2/leader`), plugins (none) and pods (none; creating one is refused).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{MarathonError, parse_body, task_json, timestamp};
use crate::api::error::ApiError;
use crate::api::query::{Params, flag};
use crate::core::marathon::ValidationError;
use crate::core::marathon::path::PathId;
use crate::core::marathon::state::{AppChange, FRAMEWORK_ID, stamp};
use crate::core::{Command, Task};
use crate::master::Master;

type QueryResult = Result<Query<Params>, QueryRejection>;

/// The task ids of a `{"ids": [...]}` body, with play-json's errors.
fn task_ids(body: &Value) -> Result<Vec<String>, MarathonError> {
    let reading =
        |path: &str, error: &str| MarathonError::Invalid(ValidationError::single("Invalid JSON", path, error));
    if !body.is_object() {
        return Err(reading("/", "error.expected.jsobject"));
    }
    let ids = match body.get("ids") {
        None | Some(Value::Null) => return Err(reading("/ids", "error.path.missing")),
        Some(Value::Array(ids)) => ids,
        Some(_) => return Err(reading("/ids", "error.expected.jsarray")),
    };
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match id {
            Value::String(s) if !out.contains(s) => out.push(s.clone()),
            Value::String(_) => {}
            _ => return Err(reading(&format!("/ids({i})"), "error.expected.jsstring")),
        }
    }
    Ok(out)
}

/// `POST /v2/tasks/delete` `{"ids": [...]}`: kills tasks of any apps. With `?scale=true` the
/// apps' instance counts drop by the tasks killed (one deployment for all of them), otherwise
/// the apps replace the tasks. Unknown ids are ignored, as in Marathon. `?wipe` is accepted
/// (medos has no reservations to wipe) but not together with `scale`.
pub async fn delete_tasks(
    State(master): State<Arc<Master>>,
    query: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    let scale = flag(&params, "scale")?;
    let force = flag(&params, "force")?;
    let wipe = flag(&params, "wipe")?;
    if scale && wipe {
        return Err(MarathonError::BadRequest("You cannot use scale and wipe at the same time.".into()));
    }
    let ids = task_ids(&parse_body(&body)?)?;
    master.read_barrier().await?;
    let now = crate::clock::now_ms();
    let version = timestamp(now);
    // The tasks by app, the kill commands, and with `scale` the new definitions.
    let (tasks, kills, changes) = {
        let state = master.state.read().expect("state lock");
        let m = &state.marathon;
        let mut by_app: BTreeMap<String, Vec<Task>> = BTreeMap::new();
        for id in &ids {
            if let Some(task) = state.tasks.get(id).filter(|t| t.framework_id == FRAMEWORK_ID && !t.state.is_terminal())
                && let Some(app) = task.app_id.as_deref().filter(|a| m.apps.contains_key(*a))
            {
                by_app.entry(app.to_string()).or_default().push(task.clone());
            }
        }
        let mut kills = Vec::new();
        let mut changes = Vec::new();
        for (app_id, tasks) in &by_app {
            let record = &m.apps[app_id];
            for task in tasks {
                kills.push(Command::TaskKill {
                    task_id: task.id.clone(),
                    grace_ms: record.app.kill_grace_ms(),
                    at_ms: now,
                });
            }
            if scale {
                // Nothing is killed when the scale would conflict.
                let locked: Vec<String> = m.deployments_of(app_id).iter().map(|d| d.id.clone()).collect();
                if !force && !locked.is_empty() {
                    return Err(MarathonError::Locked(locked));
                }
                let mut app = record.app.clone();
                app.instances = app.instances.saturating_sub(tasks.len() as u32);
                stamp(&mut app, &version, Some(&record.app));
                changes.push(AppChange { id: app_id.clone(), app: Some(Box::new(app)), force_restart: false });
            }
        }
        (by_app.into_values().flatten().collect::<Vec<Task>>(), kills, changes)
    };
    // Kill first: the scale-down then finds exactly the wanted tasks left.
    for kill in kills {
        master.propose(kill).await?;
    }
    if scale {
        let (deployment_id, version) = super::groups::deploy(&master, changes, Vec::new(), force, now, version).await?;
        let mut response = Json(json!({"version": version, "deploymentId": deployment_id})).into_response();
        if let Ok(v) = HeaderValue::from_str(&deployment_id) {
            response.headers_mut().insert("Marathon-Deployment-Id", v);
        }
        return Ok(response);
    }
    let state = master.state.read().expect("state lock");
    let list: Vec<Value> = tasks.iter().map(|t| task_json(state.tasks.get(&t.id).unwrap_or(t), &state)).collect();
    Ok(Json(json!({ "tasks": list })).into_response())
}

/// `DELETE /v2/queue/{app}/delay`: forgets the launch delay of an app waiting for instances
/// (204), so the next offer can start them. The delays live in the leader's memory, so a
/// follower forwards the request to the leader.
pub async fn delete_queue_delay(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Response, MarathonError> {
    let rest = rest.trim_end_matches('/');
    let Some(app) = rest.strip_suffix("/delay") else {
        return Err(MarathonError::NotFound(format!("no such resource: DELETE /v2/queue/{rest}")));
    };
    let id = PathId::parse_lenient(app, &PathId::root()).to_string();
    if !master.is_leader() {
        return forward_to_leader(&master, reqwest::Method::DELETE, &format!("/v2/queue{id}/delay"), &headers).await;
    }
    master.read_barrier().await?;
    let queued = master.marathon.queue().get(&id).is_some_and(|q| q.waiting > 0)
        && master.state.read().expect("state lock").marathon.apps.contains_key(&id);
    if !queued {
        return Err(MarathonError::NotFound(format!("Application {id} not found in tasks queue.")));
    }
    master.marathon.reset_delay(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Sends a request (without body) to the leader with the caller's token and answers what it
/// answers: for what only the leader's memory knows (launch delays, offer statistics).
pub(super) async fn forward_to_leader(
    master: &Master,
    method: reqwest::Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, MarathonError> {
    let (_, leader) = master
        .leader()
        .ok_or_else(|| ApiError::Unavailable("there is no leader right now; retry in a few seconds".into()))?;
    let mut request =
        master.peers.request(method, format!("{}{path}", leader.api)).timeout(std::time::Duration::from_secs(30));
    if let Some(auth) = headers.get(AUTHORIZATION) {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let answer = request
        .send()
        .await
        .map_err(|e| ApiError::Unavailable(format!("forwarding to the leader {}: {e}", leader.api)))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = answer.bytes().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if bytes.is_empty() {
        return Ok(status.into_response());
    }
    Ok((status, [(CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// `DELETE /v2/leader`: Marathon's leader steps down and another instance is elected. medos's
/// masters elect their leader with Raft; there is no abdication on request (501).
pub async fn abdicate() -> Response {
    let message = "medos does not abdicate on request: the masters elect their leader with Raft. \
                   Restart the leading master, or remove it from the cluster (DELETE /v1/masters/{name}), \
                   and another master takes over within an election timeout.";
    (StatusCode::NOT_IMPLEMENTED, Json(json!({ "message": message }))).into_response()
}

/// `GET /v2/plugins`: medos loads no Marathon plugins.
pub async fn plugins() -> Json<Value> {
    Json(json!({ "plugins": [] }))
}

/// Any request to `/v2/plugins/{id}/…`.
pub async fn plugin_request(Path(rest): Path<String>) -> MarathonError {
    let id = rest.split('/').next().unwrap_or_default();
    MarathonError::NotFound(format!("No plugin with this pluginId: {id}"))
}

/// `GET /v2/pods` and `GET /v2/pods/::status`: medos runs no pods.
pub async fn pods() -> Json<Value> {
    Json(json!([]))
}

fn pod_id(rest: &str) -> String {
    let id = rest.split("::").next().unwrap_or_default();
    PathId::parse_lenient(id, &PathId::root()).to_string()
}

/// `GET`/`DELETE /v2/pods/{id}` (and `::status`, `::versions`, `::instances`): no pod exists.
pub async fn pod(Path(rest): Path<String>) -> Result<Json<Value>, MarathonError> {
    if rest.trim_matches('/') == "::status" {
        return Ok(Json(json!([])));
    }
    Err(MarathonError::NotFound(format!("Pod '{}' does not exist", pod_id(&rest))))
}

/// `POST /v2/pods`, `PUT /v2/pods/{id}`: pods are not supported (501).
pub async fn pod_create() -> Response {
    let message = "medos does not run pods yet: run each container as an app (POST /v2/apps), \
                   in a group (POST /v2/groups) when they belong together";
    (StatusCode::NOT_IMPLEMENTED, Json(json!({ "message": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_bodies_are_read_as_marathon_reads_them() {
        assert_eq!(task_ids(&json!({"ids": ["a", "b", "a"]})).unwrap(), vec!["a", "b"]);
        for (body, path, error) in [
            (json!({}), "/ids", "error.path.missing"),
            (json!({"ids": "a"}), "/ids", "error.expected.jsarray"),
            (json!({"ids": ["a", 3]}), "/ids(1)", "error.expected.jsstring"),
            (json!([]), "/", "error.expected.jsobject"),
        ] {
            let Err(MarathonError::Invalid(e)) = task_ids(&body) else { panic!("{body}") };
            assert_eq!(e.errors_at(path), vec![error], "{body}");
        }
    }

    #[test]
    fn pod_ids_drop_their_suffixes() {
        assert_eq!(pod_id("web::status"), "/web");
        assert_eq!(pod_id("a/b::instances/x"), "/a/b");
        assert_eq!(pod_id("a/b"), "/a/b");
    }
}
