//! `/v2/apps`: create, list, show, update (PUT with `partialUpdate`, PATCH), remove, restart,
//! the app's tasks (list, kill with `?scale`, `?wipe`, `?host`), and versions.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{MarathonError, counts, deployment_json, parse_body, task_json, timestamp};
use crate::api::query::{Params, flag};
use crate::core::marathon::app::{AppDefinition, VersionInfo};
use crate::core::marathon::path::PathId;
use crate::core::marathon::state::{AppChange, FRAMEWORK_ID};
use crate::core::marathon::validation::{RoleContext, parse_app, patch_app, replace_app, update_version};
use crate::core::{Command, Response as CoreResponse, State as CoreState, Task, TaskState};
use crate::master::Master;

type QueryResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

/// Proposes one change as a deployment; answers its id and version.
pub async fn deploy(
    master: &Master,
    changes: Vec<AppChange>,
    groups: Vec<crate::core::marathon::state::GroupRecord>,
    force: bool,
    at_ms: u64,
    version: String,
) -> Result<(String, String), MarathonError> {
    let deployment_id = uuid();
    let command = Command::MarathonDeploy {
        deployment_id: deployment_id.clone(),
        version: version.clone(),
        at_ms,
        changes,
        groups,
        force,
    };
    match master.propose(command).await? {
        CoreResponse::DeploymentStarted { deployment_id, version } => Ok((deployment_id, version)),
        CoreResponse::DeploymentConflict { deployments } => Err(MarathonError::Locked(deployments)),
        CoreResponse::Rejected { message } if message.contains("cyclic") || message.contains("depends on") => {
            Err(MarathonError::Invalid(crate::core::marathon::ValidationError {
                message: "Object is not valid".into(),
                details: vec![crate::core::marathon::Violation { path: "/".into(), errors: vec![message] }],
            }))
        }
        CoreResponse::Rejected { message } => Err(MarathonError::BadRequest(message)),
        other => Err(MarathonError::Api(crate::api::error::ApiError::Internal(format!("unexpected result {other:?}")))),
    }
}

fn uuid() -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The app's non-terminal tasks, without expunged ones (unreachable tasks Marathon gave up
/// on: they are killed if their agent returns).
pub(super) fn app_tasks<'a>(state: &'a CoreState, app_id: &str) -> Vec<&'a Task> {
    state
        .tasks
        .values()
        .filter(|t| t.framework_id == FRAMEWORK_ID && t.app_id.as_deref() == Some(app_id) && !t.state.is_terminal())
        .filter(|t| !(t.state == TaskState::TASK_UNREACHABLE && t.kill_grace_ms.is_some()))
        .collect()
}

pub(super) fn last_task_failure(state: &CoreState, app_id: &str) -> Option<Value> {
    state
        .tasks
        .values()
        .filter(|t| {
            t.app_id.as_deref() == Some(app_id)
                && matches!(
                    t.state,
                    TaskState::TASK_FAILED | TaskState::TASK_ERROR | TaskState::TASK_LOST | TaskState::TASK_GONE
                )
        })
        .max_by_key(|t| t.updated_at_ms)
        .map(|t| {
            json!({
                "appId": app_id,
                "host": state.agents.get(&t.agent_id).map(|a| a.hostname.clone()).unwrap_or_default(),
                "message": t.message,
                "state": t.state.as_str(),
                "taskId": t.id,
                "timestamp": timestamp(t.updated_at_ms),
                "version": t.app_version,
                "slaveId": t.agent_id,
            })
        })
}

/// Which parts to embed in app objects (`embed=apps.tasks`, …).
#[derive(Default, Clone, Copy)]
struct Embed {
    tasks: bool,
    counts: bool,
    deployments: bool,
    last_task_failure: bool,
}

impl Embed {
    fn parse(params: &Params, single: bool) -> Self {
        // Repeated `embed` parameters collapse to one in `Params`; commas separate several too.
        let embeds: Vec<String> =
            params.get("embed").map(|e| e.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default();
        if single {
            return Embed { tasks: true, counts: true, deployments: true, last_task_failure: true };
        }
        let has = |what: &str| embeds.iter().any(|e| e == &format!("apps.{what}") || e == &format!("app.{what}"));
        Embed {
            tasks: has("tasks"),
            // Counts and deployments are always included in lists, as Marathon does.
            counts: true,
            deployments: true,
            last_task_failure: has("lastTaskFailure"),
        }
    }
}

fn app_info(app: &AppDefinition, state: &CoreState, embed: Embed) -> Value {
    let mut v = serde_json::to_value(app).unwrap_or(Value::Null);
    let tasks = app_tasks(state, app.id.as_str());
    if embed.counts {
        for (k, n) in counts(&tasks, !app.health_checks.is_empty()) {
            v[k] = json!(n);
        }
    }
    if embed.deployments {
        v["deployments"] = json!(
            state.marathon.deployments_of(app.id.as_str()).iter().map(|d| json!({"id": d.id})).collect::<Vec<_>>()
        );
    }
    if embed.tasks {
        v["tasks"] = json!(tasks.iter().map(|t| task_json(t, state)).collect::<Vec<_>>());
        v["readinessCheckResults"] = json!([]);
    }
    if embed.last_task_failure
        && let Some(failure) = last_task_failure(state, app.id.as_str())
    {
        v["lastTaskFailure"] = failure;
    }
    v
}

/// `GET /v2/apps` with `?id=`, `?cmd=`, `?label=` filters and `?embed=`.
pub async fn list(State(master): State<Arc<Master>>, query: QueryResult) -> Result<Json<Value>, MarathonError> {
    let Query(params) = query?;
    let embed = Embed::parse(&params, false);
    let id_filter = params.get("id").cloned();
    let cmd_filter = params.get("cmd").cloned();
    let label_filter = params.get("label").cloned();
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    let apps: Vec<Value> = state
        .marathon
        .apps
        .values()
        .map(|r| &r.app)
        .filter(|a| id_filter.as_deref().is_none_or(|f| a.id.as_str().contains(f)))
        .filter(|a| cmd_filter.as_deref().is_none_or(|f| a.cmd.as_deref().is_some_and(|c| c.contains(f))))
        .filter(|a| label_filter.as_deref().is_none_or(|f| label_selects(f, a)))
        .map(|a| app_info(a, &state, embed))
        .collect();
    Ok(Json(json!({ "apps": apps })))
}

/// Marathon's label selector: `key`, `key==value`, `key!=value`, comma-separated (all must hold).
fn label_selects(selector: &str, app: &AppDefinition) -> bool {
    selector.split(',').map(str::trim).filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            app.labels.get(k.trim()).map(String::as_str) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==") {
            app.labels.get(k.trim()).map(String::as_str) == Some(v.trim())
        } else {
            app.labels.contains_key(term)
        }
    })
}

fn new_version(now: u64) -> String {
    timestamp(now)
}

fn stamp(app: &mut AppDefinition, version: &str, previous: Option<&AppDefinition>) {
    let config_changed = previous.is_none_or(|p| p.needs_restart(app));
    let last_config = if config_changed {
        version.to_string()
    } else {
        previous
            .and_then(|p| p.version_info.as_ref().map(|v| v.last_config_change_at.clone()))
            .unwrap_or_else(|| version.to_string())
    };
    app.version = Some(version.to_string());
    app.version_info = Some(VersionInfo { last_scaling_at: version.to_string(), last_config_change_at: last_config });
}

/// Creates a parsed app as one deployment, refusing an id that an app (or a group with
/// content) has; answers the app's id and the deployment id. `POST /v2/apps` and package
/// installs both create apps through here.
pub async fn create_app(
    master: &Master,
    mut app: AppDefinition,
    force: bool,
) -> Result<(String, String), MarathonError> {
    master.read_barrier().await?;
    {
        let state = master.state.read().expect("state lock");
        if state.marathon.apps.contains_key(app.id.as_str()) {
            return Err(MarathonError::Conflict(format!("An app with id [{}] already exists.", app.id)));
        }
        // An empty group gives way to the app (the state replaces it); one with content does not.
        let prefix = format!("{}/", app.id);
        let group_has_content = state.marathon.apps.keys().any(|id| id.starts_with(&prefix))
            || state.marathon.groups.keys().any(|id| id.starts_with(&prefix));
        if state.marathon.groups.contains_key(app.id.as_str()) && group_has_content {
            return Err(MarathonError::Conflict(format!("A group with id [{}] already exists.", app.id)));
        }
    }
    let now = crate::clock::now_ms();
    let version = new_version(now);
    stamp(&mut app, &version, None);
    let id = app.id.to_string();
    let change = AppChange { id: id.clone(), app: Some(Box::new(app)), force_restart: false };
    let (deployment_id, _) = deploy(master, vec![change], vec![], force, now, version).await?;
    Ok((id, deployment_id))
}

/// Removes apps (every one must exist) as one deployment; answers its id and version.
/// `DELETE /v2/apps/{id}` and package uninstalls both remove apps through here.
pub async fn remove_apps(master: &Master, ids: Vec<String>, force: bool) -> Result<(String, String), MarathonError> {
    master.read_barrier().await?;
    {
        let state = master.state.read().expect("state lock");
        if let Some(missing) = ids.iter().find(|id| !state.marathon.apps.contains_key(*id)) {
            return Err(no_app(missing));
        }
    }
    let now = crate::clock::now_ms();
    let changes = ids.into_iter().map(|id| AppChange { id, app: None, force_restart: false }).collect();
    deploy(master, changes, vec![], force, now, new_version(now)).await
}

/// `POST /v2/apps`: creates an app (201 with the app and `Marathon-Deployment-Id`).
pub async fn create(
    State(master): State<Arc<Master>>,
    query: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    let force = flag(&params, "force")?;
    let value = parse_body(&body)?;
    let app = parse_app(&value, &PathId::root()).map_err(MarathonError::Invalid)?;
    let (id, deployment_id) = create_app(&master, app, force).await?;
    let state = master.state.read().expect("state lock");
    let app = state.marathon.apps.get(&id).map(|r| app_info(&r.app, &state, Embed::parse(&Params::default(), true)));
    let mut response = (StatusCode::CREATED, Json(app.unwrap_or(Value::Null))).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/apps{id}")) {
        headers.insert(axum::http::header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&deployment_id) {
        headers.insert("Marathon-Deployment-Id", v);
    }
    Ok(response)
}

/// What a path under `/v2/apps/` names.
enum Target {
    App(String),
    Tasks(String),
    Task(String, String),
    Versions(String),
    Version(String, String),
    Restart(String),
}

fn target(rest: &str) -> Result<Target, MarathonError> {
    let rest = rest.trim_end_matches('/');
    let id = |s: &str| -> Result<String, MarathonError> {
        PathId::parse(s, &PathId::root())
            .map(|p| p.to_string())
            .map_err(|e| MarathonError::BadRequest(format!("app id {s:?}: {e}")))
    };
    if let Some(app) = rest.strip_suffix("/tasks") {
        return Ok(Target::Tasks(id(app)?));
    }
    if let Some(app) = rest.strip_suffix("/versions") {
        return Ok(Target::Versions(id(app)?));
    }
    if let Some(app) = rest.strip_suffix("/restart") {
        return Ok(Target::Restart(id(app)?));
    }
    if let Some((app, task)) = rest.rsplit_once("/tasks/") {
        return Ok(Target::Task(id(app)?, task.to_string()));
    }
    if let Some((app, version)) = rest.rsplit_once("/versions/") {
        return Ok(Target::Version(id(app)?, version.to_string()));
    }
    Ok(Target::App(id(rest)?))
}

fn no_app(id: &str) -> MarathonError {
    MarathonError::NotFound(format!("App '{id}' does not exist"))
}

/// `GET /v2/apps/{id}`, `…/tasks`, `…/versions`, `…/versions/{version}`.
pub async fn get_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    query: QueryResult,
) -> Result<Json<Value>, MarathonError> {
    let Query(params) = query?;
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    match target(&rest)? {
        Target::App(id) => {
            // `GET /v2/apps/grp/*` lists the apps of a group, as Marathon does.
            if let Some(prefix) = id.strip_suffix("/*") {
                let apps: Vec<Value> = state
                    .marathon
                    .apps
                    .values()
                    .filter(|r| r.app.id.as_str().starts_with(&format!("{prefix}/")))
                    .map(|r| app_info(&r.app, &state, Embed::parse(&params, false)))
                    .collect();
                return Ok(Json(json!({ "*": apps })));
            }
            let record = state.marathon.apps.get(&id).ok_or_else(|| no_app(&id))?;
            Ok(Json(json!({ "app": app_info(&record.app, &state, Embed::parse(&params, true)) })))
        }
        Target::Tasks(id) => {
            if !state.marathon.apps.contains_key(&id) {
                return Err(no_app(&id));
            }
            let tasks: Vec<Value> = app_tasks(&state, &id).iter().map(|t| task_json(t, &state)).collect();
            Ok(Json(json!({ "tasks": tasks })))
        }
        Target::Versions(id) => {
            let record = state.marathon.apps.get(&id).ok_or_else(|| no_app(&id))?;
            let mut versions: Vec<&String> = record.versions.keys().collect();
            versions.reverse();
            Ok(Json(json!({ "versions": versions })))
        }
        Target::Version(id, version) => {
            let record = state.marathon.apps.get(&id).ok_or_else(|| no_app(&id))?;
            let app = record
                .versions
                .get(&version)
                .ok_or_else(|| MarathonError::NotFound(format!("App '{id}' does not exist in version {version}")))?;
            Ok(Json(serde_json::to_value(app).unwrap_or(Value::Null)))
        }
        Target::Task(id, task) => {
            let t = state
                .tasks
                .get(&task)
                .filter(|t| t.app_id.as_deref() == Some(id.as_str()))
                .ok_or_else(|| MarathonError::NotFound(format!("Task '{task}' does not exist")))?;
            Ok(Json(json!({ "task": task_json(t, &state) })))
        }
        Target::Restart(_) => Err(MarathonError::NotFound("use POST to restart an app".into())),
    }
}

/// `PUT /v2/apps/{id}`: a partial update by default (`?partialUpdate=false` replaces the
/// definition); creates the app when it does not exist. A body with a `version` rolls back to
/// that version.
pub async fn put_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    query: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    let partial = params.get("partialUpdate").is_none_or(|v| v != "false");
    update(&master, &rest, &params, &body, partial).await
}

/// `PATCH /v2/apps/{id}`: a partial update.
pub async fn patch_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    query: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    update(&master, &rest, &params, &body, true).await
}

async fn update(
    master: &Master,
    rest: &str,
    params: &Params,
    body: &[u8],
    partial: bool,
) -> Result<Response, MarathonError> {
    let force = flag(params, "force")?;
    let Target::App(id) = target(rest)? else {
        return Err(MarathonError::NotFound(format!("no such resource: /v2/apps/{rest}")));
    };
    let value = parse_body(body)?;
    master.read_barrier().await?;
    let current = {
        let state = master.state.read().expect("state lock");
        state.marathon.apps.get(&id).cloned()
    };
    let now = crate::clock::now_ms();
    let version = new_version(now);
    let app = updated_app(current.as_ref(), &id, &value, partial, &version)?;
    let created = current.is_none();
    let change = AppChange { id: id.clone(), app: Some(Box::new(app)), force_restart: false };
    let (deployment_id, version) = deploy(master, vec![change], vec![], force, now, version).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut response = (status, Json(json!({"deploymentId": deployment_id, "version": version}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&deployment_id) {
        response.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    Ok(response)
}

/// The definition an update body leads to: a rollback (`{"version": V}`), a partial update
/// of an existing app, or a whole definition (a new app, or `partialUpdate=false`); stamped
/// with `version`.
fn updated_app(
    current: Option<&crate::core::marathon::state::AppRecord>,
    id: &str,
    value: &Value,
    partial: bool,
    version: &str,
) -> Result<AppDefinition, MarathonError> {
    let rollback = update_version(value).map_err(MarathonError::Invalid)?;
    let path_id = PathId::parse(id, &PathId::root()).map_err(MarathonError::BadRequest)?;
    let mut app = match (current, rollback) {
        (Some(record), Some(v)) => record
            .versions
            .get(&v)
            .cloned()
            .ok_or_else(|| MarathonError::NotFound(format!("App '{id}' does not exist in version {v}")))?,
        (None, Some(v)) => return Err(MarathonError::NotFound(format!("App '{id}' does not exist in version {v}"))),
        (Some(record), None) if partial => patch_app(&record.app, value).map_err(MarathonError::Invalid)?,
        (current, None) => {
            let roles = RoleContext { existing_role: current.map(|r| r.app.role.clone()), ..Default::default() };
            replace_app(&path_id, value, &roles).map_err(MarathonError::Invalid)?
        }
    };
    if app.id.as_str() != id {
        return Err(MarathonError::Invalid(crate::core::marathon::ValidationError {
            message: "Object is not valid".into(),
            details: vec![crate::core::marathon::Violation {
                path: "/id".into(),
                errors: vec![format!("The id of the app in the body ({}) does not match the path ({id})", app.id)],
            }],
        }));
    }
    stamp(&mut app, version, current.map(|r| &r.app));
    Ok(app)
}

/// `PUT /v2/apps` and `PATCH /v2/apps` with an array: creates or updates several apps in one
/// deployment (partial updates unless `?partialUpdate=false` on `PUT`); every app needs an
/// `id`. Errors name the item: `/(2)/cpus`.
pub async fn update_many(
    State(master): State<Arc<Master>>,
    method: axum::http::Method,
    query: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    let force = flag(&params, "force")?;
    let partial = method == axum::http::Method::PATCH || params.get("partialUpdate").is_none_or(|v| v != "false");
    let value = parse_body(&body)?;
    let Some(items) = value.as_array() else {
        return Err(MarathonError::Invalid(crate::core::marathon::ValidationError {
            message: "Invalid JSON".into(),
            details: vec![crate::core::marathon::Violation {
                path: "/".into(),
                errors: vec!["error.expected.jsarray".into()],
            }],
        }));
    };
    master.read_barrier().await?;
    let now = crate::clock::now_ms();
    let version = new_version(now);
    let mut changes = Vec::new();
    let mut details = Vec::new();
    {
        let state = master.state.read().expect("state lock");
        for (index, item) in items.iter().enumerate() {
            let Some(raw_id) = item.get("id").and_then(Value::as_str) else {
                details.push(crate::core::marathon::Violation {
                    path: format!("/({index})/id"),
                    errors: vec!["error.path.missing".into()],
                });
                continue;
            };
            let id = match PathId::parse(raw_id, &PathId::root()) {
                Ok(id) => id.to_string(),
                Err(e) => {
                    details.push(crate::core::marathon::Violation { path: format!("/({index})/id"), errors: vec![e] });
                    continue;
                }
            };
            match updated_app(state.marathon.apps.get(&id), &id, item, partial, &version) {
                Ok(app) => changes.push(AppChange { id, app: Some(Box::new(app)), force_restart: false }),
                Err(MarathonError::Invalid(e)) => details.extend(e.details.into_iter().map(|mut v| {
                    v.path = format!("/({index}){}", if v.path == "/" { "" } else { v.path.as_str() });
                    v
                })),
                Err(other) => return Err(other),
            }
        }
    }
    if !details.is_empty() {
        return Err(MarathonError::Invalid(crate::core::marathon::ValidationError {
            message: "Object is not valid".into(),
            details,
        }));
    }
    let (deployment_id, version) = deploy(&master, changes, vec![], force, now, version).await?;
    let mut response = Json(json!({"deploymentId": deployment_id, "version": version})).into_response();
    if let Ok(v) = HeaderValue::from_str(&deployment_id) {
        response.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    Ok(response)
}

/// `DELETE /v2/apps/{id}`, `…/tasks` (`?host`, `?scale`, `?wipe`), `…/tasks/{task}`.
pub async fn delete_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    query: QueryResult,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    let force = flag(&params, "force")?;
    let scale = flag(&params, "scale")?;
    master.read_barrier().await?;
    let now = crate::clock::now_ms();
    match target(&rest)? {
        Target::App(id) => {
            let (deployment_id, version) = remove_apps(&master, vec![id], force).await?;
            Ok(Json(json!({"deploymentId": deployment_id, "version": version})).into_response())
        }
        Target::Tasks(id) => {
            let host = params.get("host").cloned();
            let tasks: Vec<Task> = {
                let state = master.state.read().expect("state lock");
                if !state.marathon.apps.contains_key(&id) {
                    return Err(no_app(&id));
                }
                app_tasks(&state, &id)
                    .into_iter()
                    .filter(|t| {
                        host.as_deref().is_none_or(|h| state.agents.get(&t.agent_id).is_some_and(|a| a.hostname == h))
                    })
                    .cloned()
                    .collect()
            };
            kill_tasks(&master, &id, tasks, scale, force, now).await
        }
        Target::Task(id, task_id) => {
            let task = {
                let state = master.state.read().expect("state lock");
                state.tasks.get(&task_id).filter(|t| t.app_id.as_deref() == Some(id.as_str())).cloned()
            }
            .ok_or_else(|| MarathonError::NotFound(format!("Task '{task_id}' does not exist")))?;
            let response = kill_tasks(&master, &id, vec![task.clone()], scale, force, now).await?;
            if scale {
                return Ok(response);
            }
            let state = master.state.read().expect("state lock");
            let t = state.tasks.get(&task.id).unwrap_or(&task);
            Ok(Json(json!({ "task": task_json(t, &state) })).into_response())
        }
        Target::Versions(_) | Target::Version(..) | Target::Restart(_) => {
            Err(MarathonError::NotFound(format!("no such resource: DELETE /v2/apps/{rest}")))
        }
    }
}

/// Kills tasks of an app; with `scale`, the app's instance count drops by as many (one
/// deployment), otherwise the app replaces them.
async fn kill_tasks(
    master: &Master,
    app_id: &str,
    tasks: Vec<Task>,
    scale: bool,
    force: bool,
    now: u64,
) -> Result<Response, MarathonError> {
    let grace_ms = {
        let state = master.state.read().expect("state lock");
        state
            .marathon
            .apps
            .get(app_id)
            .map(|r| r.app.kill_grace_ms())
            .unwrap_or_else(crate::core::tasks::default_grace_ms)
    };
    let mut deployment = None;
    if scale {
        let current = {
            let state = master.state.read().expect("state lock");
            state.marathon.apps.get(app_id).cloned()
        }
        .ok_or_else(|| no_app(app_id))?;
        let mut app = current.app.clone();
        app.instances = app.instances.saturating_sub(tasks.len() as u32);
        let version = new_version(now);
        stamp(&mut app, &version, Some(&current.app));
        // Kill first: the scale-down then finds exactly the wanted tasks left.
        for task in &tasks {
            master.propose(Command::TaskKill { task_id: task.id.clone(), grace_ms, at_ms: now }).await?;
        }
        let change = AppChange { id: app_id.to_string(), app: Some(Box::new(app)), force_restart: false };
        deployment = Some(deploy(master, vec![change], vec![], force, now, version).await?);
    } else {
        for task in &tasks {
            master.propose(Command::TaskKill { task_id: task.id.clone(), grace_ms, at_ms: now }).await?;
        }
    }
    match deployment {
        Some((deployment_id, version)) => {
            Ok(Json(json!({"deploymentId": deployment_id, "version": version})).into_response())
        }
        None => {
            let state = master.state.read().expect("state lock");
            let list: Vec<Value> =
                tasks.iter().map(|t| task_json(state.tasks.get(&t.id).unwrap_or(t), &state)).collect();
            Ok(Json(json!({ "tasks": list })).into_response())
        }
    }
}

/// `POST /v2/apps/{id}/restart`: replaces every task with a new one of the same definition.
pub async fn post_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    query: QueryResult,
) -> Result<Response, MarathonError> {
    let Query(params) = query?;
    let force = flag(&params, "force")?;
    let Target::Restart(id) = target(&rest)? else {
        return Err(MarathonError::NotFound(format!("no such resource: POST /v2/apps/{rest}")));
    };
    master.read_barrier().await?;
    let current = {
        let state = master.state.read().expect("state lock");
        state.marathon.apps.get(&id).cloned()
    }
    .ok_or_else(|| no_app(&id))?;
    let now = crate::clock::now_ms();
    let version = new_version(now);
    let mut app = current.app.clone();
    app.version = Some(version.clone());
    app.version_info = Some(VersionInfo { last_scaling_at: version.clone(), last_config_change_at: version.clone() });
    let change = AppChange { id, app: Some(Box::new(app)), force_restart: true };
    let (deployment_id, version) = deploy(&master, vec![change], vec![], force, now, version).await?;
    Ok(Json(json!({"deploymentId": deployment_id, "version": version})).into_response())
}

/// Used by `GET /v2/deployments` consumers that want one deployment.
pub fn deployment_value(state: &CoreState, id: &str) -> Option<Value> {
    state.marathon.deployments.get(id).map(deployment_json)
}
