//! `GET /v2/events`: Marathon's event stream (server-sent events), built from the commands
//! this master applies, so every master serves it, leader or not.
//!
//! Events: `event_stream_attached`, `api_post_event`, `group_change_success`,
//! `deployment_info`, `deployment_step_success`, `deployment_success`, `deployment_failed`,
//! `status_update_event`, `instance_changed_event`, `health_status_changed_event`,
//! `app_terminated_event`. `?event_type=a,b` keeps only those types.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{MarathonError, deployment_json, timestamp};
use crate::api::query::Params;
use crate::api::server::ConnInfo;
use crate::core::marathon::state::{Deployment, FRAMEWORK_ID};
use crate::core::{Command, Response, TaskState};
use crate::master::Master;
use crate::master::store::AppliedCommand;

/// Translates applied commands into Marathon events; remembers deployments so that steps and
/// ends can name their plan after the state has dropped them.
struct Translator {
    deployments: HashMap<String, Deployment>,
    health: HashMap<String, Option<bool>>,
}

fn plan_json(d: &Deployment) -> Value {
    let mut plan = deployment_json(d);
    plan["steps"] = json!(
        d.steps
            .iter()
            .flat_map(|s| s.actions.iter().map(|a| json!({"action": a.action.as_str(), "app": a.app})))
            .collect::<Vec<_>>()
    );
    plan
}

fn step_json(d: &Deployment, step: usize) -> Value {
    let actions: Vec<Value> = d
        .steps
        .get(step)
        .map(|s| {
            s.actions
                .iter()
                .map(|a| json!({"type": a.action.as_str(), "action": a.action.as_str(), "app": a.app}))
                .collect()
        })
        .unwrap_or_default();
    json!({ "actions": actions })
}

impl Translator {
    fn new(state: &crate::core::State) -> Self {
        Translator {
            deployments: state.marathon.deployments.clone().into_iter().collect(),
            health: state.tasks.values().map(|t| (t.id.clone(), t.healthy)).collect(),
        }
    }

    fn translate(&mut self, applied: &AppliedCommand, state: &crate::core::State) -> Vec<(&'static str, Value)> {
        let now = timestamp(crate::clock::now_ms());
        let mut out = Vec::new();
        match (&applied.command, &applied.response) {
            (Command::MarathonDeploy { changes, version, .. }, Response::DeploymentStarted { deployment_id, .. }) => {
                for change in changes {
                    let uri = format!("/v2/apps{}", change.id);
                    let definition = change.app.as_ref().map(|a| json!(a)).unwrap_or(Value::Null);
                    out.push((
                        "api_post_event",
                        json!({"timestamp": now, "clientIp": Value::Null, "uri": uri, "appDefinition": definition}),
                    ));
                    if change.app.is_none() {
                        out.push(("app_terminated_event", json!({"timestamp": now, "appId": change.id})));
                    }
                }
                out.push(("group_change_success", json!({"timestamp": now, "groupId": "/", "version": version})));
                if let Some(d) = state.marathon.deployments.get(deployment_id) {
                    self.deployments.insert(d.id.clone(), d.clone());
                    out.push((
                        "deployment_info",
                        json!({"timestamp": now, "plan": plan_json(d), "currentStep": step_json(d, 0)}),
                    ));
                } else {
                    out.push(("deployment_success", json!({"timestamp": now, "id": deployment_id})));
                }
            }
            (
                Command::MarathonDeploymentStepDone { deployment_id, step },
                Response::DeploymentUpdated { applied: true, .. },
            ) => {
                if let Some(d) = self.deployments.get(deployment_id).cloned() {
                    out.push((
                        "deployment_step_success",
                        json!({"timestamp": now, "plan": plan_json(&d), "currentStep": step_json(&d, *step)}),
                    ));
                    if step + 1 >= d.steps.len() {
                        out.push((
                            "deployment_success",
                            json!({"timestamp": now, "id": deployment_id, "plan": plan_json(&d)}),
                        ));
                        self.deployments.remove(deployment_id);
                    } else {
                        out.push((
                            "deployment_info",
                            json!({"timestamp": now, "plan": plan_json(&d), "currentStep": step_json(&d, step + 1)}),
                        ));
                    }
                }
            }
            (Command::MarathonDeploymentStop { deployment_id }, Response::DeploymentUpdated { applied: true, .. }) => {
                let plan = self.deployments.remove(deployment_id).map(|d| plan_json(&d)).unwrap_or(Value::Null);
                out.push(("deployment_failed", json!({"timestamp": now, "id": deployment_id, "plan": plan})));
            }
            (Command::TaskStatusUpdate { status }, Response::TaskUpdated { applied: true, .. }) => {
                let Some(task) = state.tasks.get(&status.task_id) else { return out };
                if task.framework_id != FRAMEWORK_ID {
                    return out;
                }
                let host = state.agents.get(&task.agent_id).map(|a| a.hostname.clone()).unwrap_or_default();
                let address = state.agents.get(&task.agent_id).map(|a| a.address.clone()).unwrap_or_default();
                let previous = self.health.insert(task.id.clone(), status.healthy.or(task.healthy)).flatten();
                if status.healthy.is_some() && status.healthy != previous {
                    out.push((
                        "health_status_changed_event",
                        json!({"timestamp": now, "appId": task.app_id, "taskId": task.id, "instanceId": task.id, "version": task.app_version, "alive": status.healthy}),
                    ));
                    if status.state == TaskState::TASK_RUNNING && previous.is_some() {
                        return out;
                    }
                }
                out.push((
                    "status_update_event",
                    json!({
                        "timestamp": now,
                        "slaveId": task.agent_id,
                        "taskId": task.id,
                        "taskStatus": status.state.as_str(),
                        "message": status.message,
                        "appId": task.app_id,
                        "host": host,
                        "ipAddresses": [{"ipAddress": address, "protocol": "IPv4"}],
                        "ports": task.ports,
                        "version": task.app_version,
                    }),
                ));
                out.push((
                    "instance_changed_event",
                    json!({
                        "timestamp": now,
                        "instanceId": task.id,
                        "condition": condition(status.state),
                        "runSpecId": task.app_id,
                        "agentId": task.agent_id,
                        "host": host,
                        "runSpecVersion": task.app_version,
                    }),
                ));
                if status.state.is_terminal() {
                    self.health.remove(&task.id);
                }
            }
            _ => {}
        }
        for (event_type, body) in out.iter_mut() {
            body["eventType"] = json!(event_type);
        }
        out
    }
}

/// Marathon's instance condition names.
fn condition(state: TaskState) -> &'static str {
    match state {
        TaskState::TASK_STAGING => "Staging",
        TaskState::TASK_STARTING => "Starting",
        TaskState::TASK_RUNNING => "Running",
        TaskState::TASK_KILLING => "Killing",
        TaskState::TASK_FINISHED => "Finished",
        TaskState::TASK_FAILED => "Failed",
        TaskState::TASK_KILLED => "Killed",
        TaskState::TASK_UNREACHABLE => "Unreachable",
        TaskState::TASK_GONE => "Gone",
        TaskState::TASK_DROPPED => "Dropped",
        TaskState::TASK_ERROR => "Error",
        _ => "Unknown",
    }
}

/// `GET /v2/events`.
pub async fn events(
    State(master): State<Arc<Master>>,
    conn: Option<axum::Extension<ConnInfo>>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, MarathonError> {
    let Query(params) = query?;
    let filter: Option<Vec<String>> = params
        .get("event_type")
        .map(|t| t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
    let remote = conn.map(|c| c.0.remote.ip().to_string()).unwrap_or_default();
    let receiver = master.events.subscribe();
    let translator = {
        let state = master.state.read().expect("state lock");
        Translator::new(&state)
    };
    let attached = json!({"remoteAddress": remote, "eventType": "event_stream_attached", "timestamp": timestamp(crate::clock::now_ms())});
    let mut pending: std::collections::VecDeque<(String, Value)> = std::collections::VecDeque::new();
    pending.push_back(("event_stream_attached".into(), attached));
    let stream = futures_util::stream::unfold(
        (receiver, translator, pending, master, filter),
        |(mut receiver, mut translator, mut pending, master, filter)| async move {
            loop {
                if let Some((event_type, body)) = pending.pop_front() {
                    if filter.as_ref().is_some_and(|f| !f.contains(&event_type)) {
                        continue;
                    }
                    let event = Event::default().event(event_type).data(body.to_string());
                    return Some((Ok(event), (receiver, translator, pending, master, filter)));
                }
                match receiver.recv().await {
                    Ok(applied) => {
                        let state = master.state.read().expect("state lock");
                        for (t, body) in translator.translate(&applied, &state) {
                            pending.push_back((t.to_string(), body));
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "an event listener fell behind; events were dropped");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
