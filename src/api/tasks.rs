//! `/v1/tasks`: one-off tasks (`medos task run`), listing, killing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::query::{Params, flag};
use crate::core::placement::place;
use crate::core::tasks::{default_grace_ms, validate_spec};
use crate::core::{Command, CommandSpec, Resources, Response as CoreResponse, Task, TaskSpec, TaskState};
use crate::master::Master;

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// The framework id of tasks started with `medos task run`.
pub const ONE_OFF_FRAMEWORK: &str = "medos-tasks";

/// `POST /v1/tasks`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunTask {
    #[serde(default)]
    pub name: Option<String>,
    /// A shell command (`/bin/sh -c CMD`); or give `args` to exec without a shell.
    #[serde(default)]
    pub cmd: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    #[serde(default = "default_mem")]
    pub mem: f64,
    #[serde(default)]
    pub disk: f64,
    #[serde(default)]
    pub ports: u16,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub kill_grace_seconds: Option<f64>,
    /// Marathon health checks, run by the agent.
    #[serde(default, alias = "healthChecks")]
    pub health_checks: Vec<crate::core::tasks::HealthCheck>,
}

fn default_cpus() -> f64 {
    0.1
}

fn default_mem() -> f64 {
    32.0
}

fn task_id(name: &str) -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!("{name}.{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

impl RunTask {
    fn spec(self) -> Result<TaskSpec, ApiError> {
        let command = match (self.cmd, self.args) {
            (Some(cmd), None) => CommandSpec { shell: true, value: cmd, arguments: vec![] },
            (None, Some(args)) if !args.is_empty() => {
                // As in Mesos: `value` is the program, `arguments` the whole argv (argv[0] too).
                CommandSpec { shell: false, value: args[0].clone(), arguments: args.clone() }
            }
            (Some(_), Some(_)) => return Err(ApiError::BadRequest("give either cmd or args, not both".into())),
            _ => return Err(ApiError::BadRequest("cmd: a command is required (or args)".into())),
        };
        let name = self.name.unwrap_or_else(|| "task".into());
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ApiError::BadRequest(format!("name {name:?}: use letters, digits, '-' and '_'")));
        }
        let grace = match self.kill_grace_seconds {
            Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => (s * 1000.0) as u64,
            Some(s) => return Err(ApiError::BadRequest(format!("kill_grace_seconds {s} must be between 0 and 3600"))),
            None => default_grace_ms(),
        };
        let spec = TaskSpec {
            name,
            command,
            image: self.image,
            resources: Resources { cpus: self.cpus, mem: self.mem, disk: self.disk, ports: vec![] },
            port_count: self.ports,
            env: self.env,
            user: self.user,
            kill_grace_ms: grace,
            labels: BTreeMap::new(),
            health_checks: self.health_checks,
            fetch: Vec::new(),
        };
        validate_spec(&spec).map_err(ApiError::BadRequest)?;
        Ok(spec)
    }
}

/// `POST /v1/tasks`: places and launches a task; answers 201 with the task (TASK_STAGING).
pub async fn run(
    State(master): State<Arc<Master>>,
    body: JsonBody<RunTask>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let Json(req) = body?;
    let spec = req.spec()?;
    let id = task_id(&spec.name);
    // Placement reads the newest state; the apply re-checks, so a race only costs a retry.
    for _ in 0..3 {
        master.read_barrier().await?;
        let (placement, image) = {
            let state = master.state.read().expect("state lock");
            let image = match &spec.image {
                Some(reference) => Some(Box::new(
                    crate::core::images::resolve(state.images.values(), reference)
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "image: no image {reference:?}; load it with `medos image load FILE` (see `medos image list`)"
                            ))
                        })?
                        .clone(),
                )),
                None => None,
            };
            (place(&state, &spec), image)
        };
        let placement = placement.map_err(|refusals| {
            let reasons: Vec<String> =
                refusals.iter().map(|r| format!("{} ({}): {}", r.hostname, r.agent_id, r.reason)).collect();
            ApiError::Conflict {
                code: "ERR_NO_PLACEMENT",
                message: if reasons.is_empty() {
                    "no agent is registered; start one (`medos dev --agents 1`)".into()
                } else {
                    format!("no agent can run this task now: {}", reasons.join("; "))
                },
                current_revision: None,
            }
        })?;
        let now = crate::clock::now_ms();
        let task = Task {
            id: id.clone(),
            framework_id: ONE_OFF_FRAMEWORK.into(),
            agent_id: placement.agent_id,
            spec: spec.clone(),
            state: TaskState::TASK_STAGING,
            reason: None,
            message: String::new(),
            ports: placement.ports,
            created_at_ms: now,
            updated_at_ms: now,
            exit_code: None,
            healthy: None,
            kill_grace_ms: None,
            statuses: vec![],
            image,
            app_id: None,
            app_version: None,
        };
        match master.propose(Command::TaskLaunch { task: Box::new(task) }).await? {
            CoreResponse::TaskLaunched { .. } => {
                let state = master.state.read().expect("state lock");
                let task = state
                    .tasks
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| ApiError::Internal(format!("task {id} vanished after launch")))?;
                return Ok((StatusCode::CREATED, Json(task)));
            }
            CoreResponse::Rejected { message } if message.contains("no longer") || message.contains("not free") => {
                continue;
            }
            CoreResponse::Rejected { message } => return Err(ApiError::BadRequest(message)),
            other => return Err(ApiError::Internal(format!("unexpected result {other:?}"))),
        }
    }
    Err(ApiError::Unavailable("the cluster changed while placing the task three times; retry".into()))
}

/// `GET /v1/tasks` (`?completed` includes ended tasks).
pub async fn list(
    State(master): State<Arc<Master>>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let Query(params) = query?;
    let completed = flag(&params, "completed")?;
    if !flag(&params, "stale")? {
        master.read_barrier().await?;
    }
    let state = master.state.read().expect("state lock");
    Ok(Json(state.tasks.values().filter(|t| completed || !t.state.is_terminal()).cloned().collect()))
}

fn find<'a>(state: &'a crate::core::State, id: &str) -> Result<&'a Task, ApiError> {
    if let Some(t) = state.tasks.get(id) {
        return Ok(t);
    }
    let matches: Vec<&Task> = state.tasks.values().filter(|t| t.id.starts_with(id)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ApiError::NotFound(format!("no task {id:?}; see `medos task list --completed`"))),
        _ => Err(ApiError::BadRequest(format!("{id:?} matches {} tasks; give more of the id", matches.len()))),
    }
}

/// `GET /v1/tasks/{id}` (a unique prefix of the id is enough).
pub async fn show(State(master): State<Arc<Master>>, Path(id): Path<String>) -> Result<Json<Task>, ApiError> {
    master.read_barrier().await?;
    let state = master.state.read().expect("state lock");
    Ok(Json(find(&state, &id)?.clone()))
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    #[serde(default)]
    pub grace_seconds: Option<f64>,
}

/// `POST /v1/tasks/{id}/kill` `{"grace_seconds"}`.
pub async fn kill(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    body: Option<Json<KillRequest>>,
) -> Result<Json<Task>, ApiError> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    master.read_barrier().await?;
    let (task_id, default_grace) = {
        let state = master.state.read().expect("state lock");
        let t = find(&state, &id)?;
        (t.id.clone(), t.spec.kill_grace_ms)
    };
    let grace_ms = match req.grace_seconds {
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => (s * 1000.0) as u64,
        Some(s) => return Err(ApiError::BadRequest(format!("grace_seconds {s} must be between 0 and 3600"))),
        None => default_grace,
    };
    match master
        .propose(Command::TaskKill { task_id: task_id.clone(), grace_ms, at_ms: crate::clock::now_ms() })
        .await?
    {
        CoreResponse::TaskKillRequested { .. } => {}
        CoreResponse::Rejected { message } => {
            return Err(ApiError::Conflict { code: "ERR_TASK_ENDED", message, current_revision: None });
        }
        other => return Err(ApiError::Internal(format!("unexpected result {other:?}"))),
    }
    let state = master.state.read().expect("state lock");
    state.tasks.get(&task_id).cloned().map(Json).ok_or_else(|| ApiError::NotFound(format!("task {task_id} is gone")))
}
