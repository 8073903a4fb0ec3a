//! `/v2/groups`: the tree of groups and apps (`GET`, with `?embed=`), its versions, creating
//! (`POST`), updating (`PUT`: the body's `apps` and `groups` replace the group's, `scaleBy`,
//! `version` for a rollback, `?dryRun`), `PATCH` (`enforceRole` of a top-level group) and
//! removing (`DELETE`) groups, as Marathon's `GroupsResource` and `GroupApiService` do.
//!
//! Every change is one `MarathonDeploy` command: the apps that change and the group records
//! written or removed go through Raft together, so a request is applied whole or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::apps::{app_tasks, last_task_failure};
use super::{MarathonError, counts, parse_body, task_json, timestamp};
use crate::api::query::{Params, flag};
use crate::core::marathon::app::AppDefinition;
use crate::core::marathon::deployment::Step;
use crate::core::marathon::group::{GroupDefinition, parse_group_with};
use crate::core::marathon::path::PathId;
use crate::core::marathon::state::{AppChange, GroupRecord, MarathonState, Snapshot, is_under};
use crate::core::marathon::validation::NOT_VALID;
use crate::core::marathon::{ValidationError, Violation};
use crate::core::{Command, Response as CoreResponse, State as CoreState};
use crate::master::Master;

type QueryResult = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Marathon's message when a request changes services and `enforceRole` together.
const ENFORCE_ROLE_UNCHANGEABLE: &str = concat!(
    "enforceRole cannot be modified in a request that adds, removes or modifies services; ",
    "please make these changes in separate requests."
);

/// The query as single-valued parameters (flags) and every `embed` value (repeatable, and
/// comma-separated lists are accepted too).
fn query(query: QueryResult) -> Result<(Params, Vec<String>), MarathonError> {
    let Query(pairs) = query?;
    let embeds = pairs
        .iter()
        .filter(|(k, _)| k == "embed")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    Ok((pairs.into_iter().collect(), embeds))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What to show of each app (`embed=group.apps.tasks`, …; Marathon's `AppInfo.Embed`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AppEmbed {
    pub tasks: bool,
    pub counts: bool,
    pub deployments: bool,
    pub readiness: bool,
    pub last_task_failure: bool,
}

/// Which parts of each group to show (`group.apps`, `group.groups`; pods are always empty).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct GroupEmbed {
    pub apps: bool,
    pub groups: bool,
}

/// Marathon's `InfoEmbedResolver.resolveAppGroup`: without `embed`, groups and apps (without
/// task details); `group.apps.X` embeds X in every app (`tasks` also brings `deployments`,
/// the deprecated `failures` brings tasks, deployments and `lastTaskFailure`). Unknown
/// values are ignored.
pub fn resolve_embeds(embeds: &[String]) -> (AppEmbed, GroupEmbed) {
    if embeds.is_empty() {
        return (AppEmbed::default(), GroupEmbed { apps: true, groups: true });
    }
    let mut app = AppEmbed::default();
    let mut group = GroupEmbed::default();
    for embed in embeds {
        match embed.strip_prefix("group.apps.") {
            Some("tasks") => (app.tasks, app.deployments) = (true, true),
            Some("counts") => app.counts = true,
            Some("deployments") => app.deployments = true,
            Some("readiness") => app.readiness = true,
            Some("lastTaskFailure") => app.last_task_failure = true,
            Some("failures") => (app.tasks, app.deployments, app.last_task_failure) = (true, true, true),
            Some(_) => {}
            None => match embed.as_str() {
                "group.apps" => group.apps = true,
                "group.groups" => group.groups = true,
                _ => {}
            },
        }
    }
    (app, group)
}

/// An app as `/v2/groups` shows it: the definition plus what `embed` asks for.
pub fn app_json(app: &AppDefinition, state: &CoreState, embed: AppEmbed) -> Value {
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
    }
    if embed.readiness {
        v["readinessCheckResults"] = json!([]);
    }
    if embed.last_task_failure
        && let Some(failure) = last_task_failure(state, app.id.as_str())
    {
        v["lastTaskFailure"] = failure;
    }
    v
}

fn parent_of(id: &str) -> String {
    PathId::parse_lenient(id, &PathId::root()).parent().to_string()
}

/// Group `id` of `snapshot` in Marathon's `GroupInfo` shape, its subgroups and apps as
/// `embed` says; `app` renders one app.
pub fn group_json(
    snapshot: &Snapshot,
    id: &str,
    version: &str,
    embed: GroupEmbed,
    app: &dyn Fn(&AppDefinition) -> Value,
) -> Value {
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for group in snapshot.group_ids().into_iter().filter(|g| g != "/") {
        children.entry(parent_of(&group)).or_default().push(group);
    }
    let mut apps: BTreeMap<String, Vec<&AppDefinition>> = BTreeMap::new();
    for (app_id, definition) in &snapshot.apps {
        apps.entry(parent_of(app_id)).or_default().push(definition);
    }
    fn render(
        id: &str,
        snapshot: &Snapshot,
        children: &BTreeMap<String, Vec<String>>,
        apps: &BTreeMap<String, Vec<&AppDefinition>>,
        version: &str,
        embed: GroupEmbed,
        app: &dyn Fn(&AppDefinition) -> Value,
    ) -> Value {
        let record = snapshot.groups.get(id);
        let path = PathId::parse_lenient(id, &PathId::root());
        let mut v = Map::new();
        v.insert("id".into(), json!(id));
        let app_list: Vec<Value> =
            if embed.apps { apps.get(id).into_iter().flatten().map(|a| app(a)).collect() } else { Vec::new() };
        v.insert("apps".into(), Value::Array(app_list));
        v.insert("pods".into(), json!([]));
        let groups: Vec<Value> = if embed.groups {
            children
                .get(id)
                .into_iter()
                .flatten()
                .map(|child| render(child, snapshot, children, apps, version, embed, app))
                .collect()
        } else {
            Vec::new()
        };
        v.insert("groups".into(), Value::Array(groups));
        v.insert("dependencies".into(), json!(record.map(|r| r.dependencies.clone()).unwrap_or_default()));
        v.insert("version".into(), json!(version));
        if path.is_top_level() {
            v.insert("enforceRole".into(), json!(record.and_then(|r| r.enforce_role).unwrap_or(false)));
        }
        Value::Object(v)
    }
    render(id, snapshot, &children, &apps, version, embed, app)
}

/// The version of an empty tree (Marathon's `Timestamp(0)`).
const EPOCH: &str = "1970-01-01T00:00:00.000Z";

fn unknown_group(id: &str) -> MarathonError {
    MarathonError::NotFound(format!("Group '{id}' does not exist"))
}

/// `GET /v2/groups`: the root group.
pub async fn get_root(State(master): State<Arc<Master>>, q: QueryResult) -> Result<Json<Value>, MarathonError> {
    get(&master, "", q).await
}

/// `GET /v2/groups/{id}`, `…/versions`, `…/versions/{version}`, `…/apps`.
pub async fn get_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    q: QueryResult,
) -> Result<Json<Value>, MarathonError> {
    get(&master, &rest, q).await
}

fn lenient(id: &str) -> PathId {
    PathId::parse_lenient(id, &PathId::root())
}

async fn get(master: &Master, rest: &str, q: QueryResult) -> Result<Json<Value>, MarathonError> {
    let (_, embeds) = query(q)?;
    let (app_embed, group_embed) = resolve_embeds(&embeds);
    let rest = rest.trim_matches('/');
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    let m = &state.marathon;
    // Marathon's path patterns, in its order.
    if rest == "apps" || rest.ends_with("/apps") {
        let id = lenient(rest.strip_suffix("apps").unwrap_or(""));
        if !m.group_exists(id.as_str()) {
            return Err(unknown_group(id.as_str()));
        }
        let apps: Vec<Value> = m.subtree(id.as_str()).apps.values().map(|a| app_json(a, &state, app_embed)).collect();
        return Ok(Json(Value::Array(apps)));
    }
    if rest == "versions" || rest.ends_with("/versions") {
        let id = lenient(rest.strip_suffix("versions").unwrap_or(""));
        if !m.group_exists(id.as_str()) {
            return Err(unknown_group(id.as_str()));
        }
        return Ok(Json(json!(m.versions_of_group(id.as_str()))));
    }
    let version_path =
        if let Some(v) = rest.strip_prefix("versions/") { Some(("", v)) } else { rest.rsplit_once("/versions/") };
    if let Some((group, version)) = version_path {
        let id = lenient(group);
        let snapshot =
            m.at_version(version).filter(|s| s.has_group(id.as_str())).ok_or_else(|| unknown_group(id.as_str()))?;
        let plain = |a: &AppDefinition| serde_json::to_value(a).unwrap_or(Value::Null);
        return Ok(Json(group_json(&snapshot.subtree(id.as_str()), id.as_str(), version, group_embed, &plain)));
    }
    let id = lenient(rest);
    if !m.group_exists(id.as_str()) {
        return Err(unknown_group(id.as_str()));
    }
    let version = m.group_version(id.as_str()).unwrap_or_else(|| EPOCH.to_string());
    let render = |a: &AppDefinition| app_json(a, &state, app_embed);
    Ok(Json(group_json(&m.subtree(id.as_str()), id.as_str(), &version, group_embed, &render)))
}

// ---------------------------------------------------------------------------------------------
// Changing

fn invalid(path: &str, error: impl Into<String>) -> MarathonError {
    MarathonError::Invalid(ValidationError::single(NOT_VALID, path, error))
}

/// The group id of a request path (`POST`/`PUT /v2/groups/{id}`), checked as Marathon does.
fn request_path(rest: &str) -> Result<PathId, MarathonError> {
    let id = PathId::parse(rest, &PathId::root()).map_err(|e| invalid("/", e))?;
    if let Some(v) = id.violations().into_iter().next() {
        return Err(invalid("/", v));
    }
    Ok(id)
}

/// Whether a request body changes apps (Marathon's `Group.updateModifiesServices`).
fn modifies_services(json: &Value) -> bool {
    let given = |k: &str| json.get(k).is_some_and(|v| !v.is_null());
    given("version")
        || given("scaleBy")
        || given("apps")
        || json.get("groups").and_then(Value::as_array).is_some_and(|gs| gs.iter().any(modifies_services))
}

/// Top-level groups of the request that exist keep their `enforceRole` when the body does not
/// name it (Marathon would reset it to the `--new_group_enforce_role` default, which then
/// conflicts with changing apps); naming another value while changing apps is refused with
/// Marathon's message.
fn inherit_enforce_role(
    json: &mut Value,
    base: &PathId,
    m: &MarathonState,
    at: &str,
    modifies: bool,
    errors: &mut Vec<Violation>,
) {
    let Value::Object(o) = json else { return };
    let id = match o.get("id") {
        Some(Value::String(s)) => PathId::parse_lenient(s, base),
        None | Some(Value::Null) => base.clone(),
        Some(_) => return,
    };
    let rollback_or_scale = ["version", "scaleBy"].iter().any(|k| o.get(*k).is_some_and(|v| !v.is_null()));
    if id.is_top_level()
        && !rollback_or_scale
        && let Some(current) = m.groups.get(id.as_str()).and_then(|g| g.enforce_role)
    {
        match o.get("enforceRole") {
            None | Some(Value::Null) => {
                o.insert("enforceRole".into(), Value::Bool(current));
            }
            Some(Value::Bool(b)) if *b != current && modifies => errors
                .push(Violation { path: format!("{at}/enforceRole"), errors: vec![ENFORCE_ROLE_UNCHANGEABLE.into()] }),
            _ => {}
        }
    }
    if let Some(Value::Array(groups)) = o.get_mut("groups") {
        for (i, group) in groups.iter_mut().enumerate() {
            inherit_enforce_role(group, &id, m, &format!("{at}/groups({i})"), modifies, errors);
        }
    }
}

/// Reads, normalises and validates a group request against the current state.
fn parse_request(m: &MarathonState, json: &mut Value, base: &PathId) -> Result<GroupDefinition, MarathonError> {
    let modifies = modifies_services(json);
    let mut errors = Vec::new();
    inherit_enforce_role(json, base, m, "", modifies, &mut errors);
    if !errors.is_empty() {
        return Err(MarathonError::Invalid(ValidationError { message: NOT_VALID.into(), details: errors }));
    }
    let id = match json.get("id") {
        Some(Value::String(s)) => PathId::parse_lenient(s, base),
        _ => base.clone(),
    };
    let top = id.top_level();
    let enforcing = m.groups.get(top.as_str()).and_then(|g| g.enforce_role).unwrap_or(false);
    parse_group_with(json, base, enforcing).map_err(MarathonError::Invalid)
}

/// `ceil(instances × factor)`, as Marathon's `scaleBy` (a rounding error of the product does
/// not add an instance).
pub fn scaled(instances: u32, factor: f64) -> u32 {
    let x = (f64::from(instances) * factor - 1e-9).ceil();
    if x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

/// The tree under the request's group after a structural update, as Marathon's
/// `UpdateGroupStructureOp`: for a group that exists, `apps`, `groups` and `dependencies` the
/// body gives replace the group's (a subgroup of the body that exists is updated the same
/// way, recursively), and what it does not give stays; a new group is exactly the body.
fn structural(current: &Snapshot, def: &GroupDefinition, json: &Value, version: &str, target: &mut Snapshot) {
    let id = def.id.to_string();
    let exists = current.has_group(&id);
    let given = |k: &str| !exists || json.get(k).is_some_and(|v| !v.is_null());
    if !def.id.is_root() {
        let dependencies = if given("dependencies") {
            def.dependencies.clone()
        } else {
            current.groups.get(&id).map(|g| g.dependencies.clone()).unwrap_or_default()
        };
        target.groups.insert(
            id.clone(),
            GroupRecord { dependencies, enforce_role: def.enforce_role, ..GroupRecord::new(def.id.clone(), version) },
        );
    }
    if given("apps") {
        for app in &def.apps {
            target.apps.insert(app.id.to_string(), app.clone());
        }
    } else {
        for (app_id, app) in current.apps.iter().filter(|(a, _)| parent_of(a) == id) {
            target.apps.insert(app_id.clone(), app.clone());
        }
    }
    if given("groups") {
        let bodies = json.get("groups").and_then(Value::as_array).cloned().unwrap_or_default();
        for (i, group) in def.groups.iter().enumerate() {
            structural(current, group, bodies.get(i).unwrap_or(&Value::Null), version, target);
        }
    } else {
        for child in current.group_ids().into_iter().filter(|g| g != "/" && parent_of(g) == id) {
            let kept = current.subtree(&child);
            target.groups.extend(kept.groups);
            target.apps.extend(kept.apps);
        }
    }
}

/// The changes a group request makes: a rollback (`version`), a scale (`scaleBy`) or a
/// structural update.
fn changes_for(
    m: &MarathonState,
    def: &GroupDefinition,
    json: &Value,
    version: &str,
) -> Result<(Vec<AppChange>, Vec<GroupRecord>), MarathonError> {
    let id = def.id.as_str();
    if let Some(v) = &def.version {
        let old = m.at_version(v).filter(|s| s.has_group(id)).ok_or_else(|| {
            MarathonError::Invalid(ValidationError {
                message: format!("Group {id} not available in version {v}"),
                details: Vec::new(),
            })
        })?;
        return Ok(m.replace_subtree(id, &old.subtree(id), version));
    }
    if let Some(factor) = def.scale_by {
        if !m.group_exists(id) {
            return Err(unknown_group(id));
        }
        let mut target = m.subtree(id);
        for app in target.apps.values_mut() {
            app.instances = scaled(app.instances, factor);
        }
        return Ok(m.replace_subtree(id, &target, version));
    }
    let current = m.subtree(id);
    let mut target = Snapshot::default();
    structural(&current, def, json, version, &mut target);
    Ok(m.replace_subtree(id, &target, version))
}

fn uuid() -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Proposes one change; a refusal by the state (a dependency cycle, a clash) is Marathon's 422.
pub(super) async fn deploy(
    master: &Master,
    changes: Vec<AppChange>,
    groups: Vec<GroupRecord>,
    force: bool,
    at_ms: u64,
    version: String,
) -> Result<(String, String), MarathonError> {
    let deployment_id = uuid();
    let command =
        Command::MarathonDeploy { deployment_id: deployment_id.clone(), version, at_ms, changes, groups, force };
    match master.propose(command).await? {
        CoreResponse::DeploymentStarted { deployment_id, version } => Ok((deployment_id, version)),
        CoreResponse::DeploymentConflict { deployments } => Err(MarathonError::Locked(deployments)),
        CoreResponse::Rejected { message } => Err(invalid("/", message)),
        other => Err(MarathonError::Api(crate::api::error::ApiError::Internal(format!("unexpected result {other:?}")))),
    }
}

/// Marathon's `deploymentResult`: `{"version", "deploymentId"}` and the `Marathon-Deployment-Id`
/// header.
fn deployment_result(status: StatusCode, deployment_id: &str, version: &str) -> Response {
    let mut response = (status, Json(json!({"version": version, "deploymentId": deployment_id}))).into_response();
    if let Ok(v) = HeaderValue::from_str(deployment_id) {
        response.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    response
}

fn steps_json(steps: &[Step]) -> Value {
    let step = |s: &Step| {
        let actions: Vec<Value> =
            s.actions.iter().map(|a| json!({"action": a.action.as_str(), "app": a.app})).collect();
        json!({ "actions": actions })
    };
    json!({ "steps": steps.iter().map(step).collect::<Vec<_>>() })
}

/// `POST /v2/groups`: creates a group (201; 409 when it or an app with its id exists).
pub async fn post_root(
    State(master): State<Arc<Master>>,
    q: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    create(&master, "", q, &body).await
}

/// `POST /v2/groups/{id}`: creates a group; the body's `id` is relative to `{id}`.
pub async fn post_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    q: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    create(&master, &rest, q, &body).await
}

async fn create(master: &Master, rest: &str, q: QueryResult, body: &[u8]) -> Result<Response, MarathonError> {
    let (params, _) = query(q)?;
    let force = flag(&params, "force")?;
    let base = request_path(rest)?;
    let mut json = parse_body(body)?;
    let now = crate::clock::now_ms();
    let version = timestamp(now);
    master.read_barrier().await?;
    let (id, changes, groups) = {
        let state = master.state.read().expect("state lock");
        let m = &state.marathon;
        let def = parse_request(m, &mut json, &base)?;
        let id = def.id.to_string();
        if m.group_exists(&id) {
            return Err(MarathonError::Conflict(format!(
                "Group {id} is already created. Use PUT to change this group."
            )));
        }
        if m.apps.contains_key(&id) {
            return Err(MarathonError::Conflict(format!("An app with the path {id} already exists.")));
        }
        let (changes, groups) = changes_for(m, &def, &json, &version)?;
        (id, changes, groups)
    };
    let (deployment_id, version) = deploy(master, changes, groups, force, now, version).await?;
    let mut response = deployment_result(StatusCode::CREATED, &deployment_id, &version);
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/groups{id}")) {
        response.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(response)
}

/// `PUT /v2/groups`: updates the root group.
pub async fn put_root(
    State(master): State<Arc<Master>>,
    q: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    update(&master, "", q, &body).await
}

/// `PUT /v2/groups/{id}`: updates (or creates) a group: a structural update, `{"scaleBy": F}`
/// or `{"version": V}`; `?dryRun=true` answers the plan's steps and changes nothing.
pub async fn put_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    q: QueryResult,
    body: Bytes,
) -> Result<Response, MarathonError> {
    update(&master, &rest, q, &body).await
}

async fn update(master: &Master, rest: &str, q: QueryResult, body: &[u8]) -> Result<Response, MarathonError> {
    let (params, _) = query(q)?;
    let force = flag(&params, "force")?;
    let dry_run = flag(&params, "dryRun")?;
    let base = request_path(rest)?;
    let mut json = parse_body(body)?;
    let now = crate::clock::now_ms();
    let version = timestamp(now);
    master.read_barrier().await?;
    let (changes, groups) = {
        let state = master.state.read().expect("state lock");
        let m = &state.marathon;
        let def = parse_request(m, &mut json, &base)?;
        let (changes, groups) = changes_for(m, &def, &json, &version)?;
        if dry_run {
            let steps = m.preview(&changes, &groups).map_err(|e| invalid("/", e))?;
            return Ok(Json(steps_json(&steps)).into_response());
        }
        (changes, groups)
    };
    let (deployment_id, version) = deploy(master, changes, groups, force, now, version).await?;
    Ok(deployment_result(StatusCode::OK, &deployment_id, &version))
}

/// `PATCH /v2/groups/{id}` `{"enforceRole": B}`: changes a top-level group's setting without
/// touching its apps (absent means `false`, as in Marathon).
pub async fn patch_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    body: Bytes,
) -> Result<Response, MarathonError> {
    let json = parse_body(&body)?;
    let enforce = match json.get("enforceRole") {
        _ if !json.is_object() => {
            return Err(MarathonError::Invalid(ValidationError::single(
                "Invalid JSON",
                "/",
                "error.expected.jsobject",
            )));
        }
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(MarathonError::Invalid(ValidationError::single(
                "Invalid JSON",
                "/enforceRole",
                "error.expected.jsboolean",
            )));
        }
    };
    let id = lenient(rest.trim_matches('/'));
    if !id.is_top_level() {
        return Err(invalid("/", "Path needs to be top-level"));
    }
    let now = crate::clock::now_ms();
    let version = timestamp(now);
    master.read_barrier().await?;
    let record = {
        let state = master.state.read().expect("state lock");
        let m = &state.marathon;
        if !m.group_exists(id.as_str()) {
            return Err(unknown_group(id.as_str()));
        }
        let current = m.groups.get(id.as_str()).cloned().unwrap_or_else(|| GroupRecord::new(id.clone(), &version));
        GroupRecord { enforce_role: Some(enforce), ..current }
    };
    deploy(&master, Vec::new(), vec![record], false, now, version).await?;
    Ok(StatusCode::OK.into_response())
}

/// `DELETE /v2/groups`: removes every app and group.
pub async fn delete_root(State(master): State<Arc<Master>>, q: QueryResult) -> Result<Response, MarathonError> {
    remove(&master, "", q).await
}

/// `DELETE /v2/groups/{id}`: removes the group, its subgroups and every app under it, as one
/// deployment (dependents stop before what they depend on).
pub async fn delete_path(
    State(master): State<Arc<Master>>,
    Path(rest): Path<String>,
    q: QueryResult,
) -> Result<Response, MarathonError> {
    remove(&master, &rest, q).await
}

async fn remove(master: &Master, rest: &str, q: QueryResult) -> Result<Response, MarathonError> {
    let (params, _) = query(q)?;
    let force = flag(&params, "force")?;
    let id = lenient(rest.trim_matches('/'));
    let now = crate::clock::now_ms();
    let version = timestamp(now);
    master.read_barrier().await?;
    let changes = {
        let state = master.state.read().expect("state lock");
        let m = &state.marathon;
        if !m.group_exists(id.as_str()) {
            return Err(unknown_group(id.as_str()));
        }
        m.apps
            .keys()
            .filter(|a| is_under(a, id.as_str()))
            .map(|a| AppChange { id: a.clone(), app: None, force_restart: false })
            .collect()
    };
    let groups = vec![GroupRecord::removal(id, &version)];
    let (deployment_id, version) = deploy(master, changes, groups, force, now, version).await?;
    Ok(deployment_result(StatusCode::OK, &deployment_id, &version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_resolve_as_marathons() {
        let e = |list: &[&str]| resolve_embeds(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(e(&[]), (AppEmbed::default(), GroupEmbed { apps: true, groups: true }));
        let (app, group) = e(&["group.apps", "group.apps.tasks", "group.apps.counts"]);
        assert_eq!(group, GroupEmbed { apps: true, groups: false });
        assert_eq!(app, AppEmbed { tasks: true, counts: true, deployments: true, ..Default::default() });
        let (app, group) = e(&["group.groups", "group.apps.failures", "apps.tasks", "nonsense"]);
        assert_eq!(group, GroupEmbed { apps: false, groups: true });
        assert_eq!(app, AppEmbed { tasks: true, deployments: true, last_task_failure: true, ..Default::default() });
    }

    #[test]
    fn scale_by_rounds_up_without_float_noise() {
        let cases = [(10, 0.3, 3), (1, 1.5, 2), (3, 0.5, 2), (4, 2.0, 8), (5, 0.0, 0), (0, 3.0, 0), (7, 1.0, 7)];
        for (n, f, want) in cases {
            assert_eq!(scaled(n, f), want, "{n} × {f}");
        }
        assert_eq!(scaled(3, 1e300), u32::MAX);
    }

    #[test]
    fn services_are_modified_by_apps_versions_and_scales_at_any_depth() {
        assert!(!modifies_services(&json!({"id": "/g", "enforceRole": true, "dependencies": ["/x"]})));
        assert!(modifies_services(&json!({"id": "/g", "apps": []})));
        assert!(modifies_services(&json!({"id": "/g", "groups": [{"id": "h", "scaleBy": 2}]})));
        assert!(modifies_services(&json!({"version": "2020-01-01T00:00:00.000Z"})));
    }

    #[test]
    fn structural_updates_replace_what_the_body_gives_and_keep_the_rest() {
        let mut m = MarathonState::default();
        let body = json!({
            "id": "/g",
            "dependencies": ["/db"],
            "apps": [{"id": "a", "cmd": "ab"}, {"id": "b", "cmd": "ab"}],
            "groups": [{"id": "h", "apps": [{"id": "c", "cmd": "ab"}]}, {"id": "k", "apps": [{"id": "d", "cmd": "ab"}]}]
        });
        let def = parse_group_with(&body, &PathId::root(), false).unwrap();
        let (changes, groups) = changes_for(&m, &def, &body, "v1").unwrap();
        // A group's dependencies need not exist (Marathon ignores unknown ones).
        let db = GroupRecord::new(lenient("/db"), "v0");
        m.deploy("d0", "v0", 0, &[], &[db], false);
        assert!(matches!(
            m.deploy("d1", "v1", 0, &changes, &groups, false),
            crate::core::marathon::state::DeployOutcome::Started { .. }
        ));

        // Only `apps` given: b goes, a stays, the subgroups and the dependencies stay.
        let body = json!({"id": "/g", "apps": [{"id": "a", "cmd": "ab"}]});
        let def = parse_group_with(&body, &PathId::root(), false).unwrap();
        let (changes, groups) = changes_for(&m, &def, &body, "v2").unwrap();
        let ids: Vec<(&str, bool)> = changes.iter().map(|c| (c.id.as_str(), c.app.is_some())).collect();
        assert_eq!(ids, vec![("/g/b", false)]);
        assert!(groups.iter().all(|g| !g.remove));
        assert_eq!(groups.iter().find(|g| g.id.as_str() == "/g").unwrap().dependencies, vec![lenient("/db")]);

        // `groups` given: k goes with its app; h is updated and keeps its apps (none given).
        let body = json!({"id": "/g", "groups": [{"id": "h", "dependencies": []}]});
        let def = parse_group_with(&body, &PathId::root(), false).unwrap();
        let (changes, groups) = changes_for(&m, &def, &body, "v3").unwrap();
        let ids: Vec<(&str, bool)> = changes.iter().map(|c| (c.id.as_str(), c.app.is_some())).collect();
        assert_eq!(ids, vec![("/g/k/d", false)]);
        assert!(groups.iter().any(|g| g.remove && g.id.as_str() == "/g/k"));
        assert!(groups.iter().any(|g| !g.remove && g.id.as_str() == "/g/h"));
    }

    #[test]
    fn enforce_role_is_kept_unless_named_and_cannot_change_with_apps() {
        let mut m = MarathonState::default();
        let prod = GroupRecord { enforce_role: Some(true), ..GroupRecord::new(lenient("/prod"), "v0") };
        m.deploy("d0", "v0", 0, &[], &[prod], false);
        let mut body = json!({"id": "/prod", "apps": [{"id": "pg", "cmd": "pg"}]});
        let def = parse_request(&m, &mut body, &PathId::root()).unwrap();
        assert_eq!(def.enforce_role, Some(true));
        assert_eq!(def.apps[0].role, "prod");
        let mut body = json!({"groups": [{"id": "prod", "enforceRole": false, "apps": []}]});
        let Err(MarathonError::Invalid(e)) = parse_request(&m, &mut body, &PathId::root()) else { panic!() };
        assert_eq!(e.errors_at("/groups(0)/enforceRole"), vec![ENFORCE_ROLE_UNCHANGEABLE]);
        let mut body = json!({"id": "/prod", "version": "2020-01-01T00:00:00.000Z"});
        assert!(parse_request(&m, &mut body, &PathId::root()).is_ok(), "a rollback names nothing else");
        let mut body = json!({"id": "/prod/db", "apps": [{"id": "pg", "cmd": "pg"}]});
        assert_eq!(parse_request(&m, &mut body, &PathId::root()).unwrap().apps[0].role, "prod");
    }
}
