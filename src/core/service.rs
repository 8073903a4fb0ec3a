//! Which instances serve `/service/<name>/…`, DC/OS Admin Router's service proxy: a Marathon
//! app labelled `DCOS_SERVICE_NAME=<name>` is reached through the masters at
//! `/service/<name>/`, on the port its `DCOS_SERVICE_PORT_INDEX` names (default 0), over the
//! scheme of `DCOS_SERVICE_SCHEME` (`http` by default, or `https`). Pure: the adapter in
//! `api::service` does the HTTP.

use super::State;
use super::marathon::app::AppDefinition;
use super::marathon::state::FRAMEWORK_ID;
use super::tasks::TaskState;

pub const LABEL_NAME: &str = "DCOS_SERVICE_NAME";
pub const LABEL_PORT_INDEX: &str = "DCOS_SERVICE_PORT_INDEX";
pub const LABEL_SCHEME: &str = "DCOS_SERVICE_SCHEME";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// One instance that can take a proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub task_id: String,
    pub host: String,
    pub port: u16,
}

/// Where a request under `/service/` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The service name the path started with (it may contain `/`).
    pub service: String,
    pub app_id: String,
    /// The rest of the path, without a leading `/` (the service sees `/<rest>`).
    pub rest: String,
    pub scheme: Scheme,
    /// Running instances (healthy ones only when the app has health checks), in task id order.
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no service is named {0:?}: label a Marathon app with DCOS_SERVICE_NAME={0:?} to reach it here")]
    NoService(String),
    #[error("app {app} has label {label}={value:?}, but {expected}")]
    BadLabel { app: String, label: &'static str, value: String, expected: String },
    #[error("service {service:?} (app {app}) has no {what} instance to take the request")]
    NoInstance { service: String, app: String, what: &'static str },
}

/// Routes `path` (what follows `/service/`): the longest leading run of its segments that
/// some app's `DCOS_SERVICE_NAME` equals (names of apps in groups contain `/`).
pub fn route(state: &State, path: &str) -> Result<Route, RouteError> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut found = None;
    for n in (1..=segments.len()).rev() {
        let name = segments[..n].join("/");
        if name.is_empty() {
            continue;
        }
        if let Some(app) = app_named(state, &name) {
            found = Some((name, app, segments[n..].join("/")));
            break;
        }
    }
    let name = segments.first().copied().unwrap_or_default().to_string();
    let (service, app, rest) = found.ok_or(RouteError::NoService(name))?;
    let bad = |label: &'static str, value: &str, expected: &str| RouteError::BadLabel {
        app: app.id.to_string(),
        label,
        value: value.to_string(),
        expected: expected.to_string(),
    };
    let scheme = match app.labels.get(LABEL_SCHEME).map(|s| s.trim().to_ascii_lowercase()) {
        None => Scheme::Http,
        Some(s) if s == "http" => Scheme::Http,
        Some(s) if s == "https" => Scheme::Https,
        Some(_) => return Err(bad(LABEL_SCHEME, &app.labels[LABEL_SCHEME], "it must be http or https")),
    };
    let index = match app.labels.get(LABEL_PORT_INDEX) {
        None => 0,
        Some(v) => {
            v.trim().parse::<usize>().map_err(|_| bad(LABEL_PORT_INDEX, v, "it must be a port index (0, 1, …)"))?
        }
    };
    let ports = app.host_ports().len();
    if index >= ports.max(1) {
        let value = app.labels.get(LABEL_PORT_INDEX).cloned().unwrap_or_default();
        return Err(bad(LABEL_PORT_INDEX, &value, &format!("the app has {ports} port(s)")));
    }
    let checked = !app.health_checks.is_empty();
    let app_id = app.id.to_string();
    let mut running = 0;
    let mut backends = Vec::new();
    for task in state.tasks.values() {
        if task.framework_id != FRAMEWORK_ID
            || task.app_id.as_deref() != Some(app_id.as_str())
            || task.state != TaskState::TASK_RUNNING
            || task.kill_grace_ms.is_some()
        {
            continue;
        }
        running += 1;
        if !task.ready(checked) {
            continue;
        }
        let (Some(agent), Some(&port)) = (state.agents.get(&task.agent_id), task.ports.get(index)) else { continue };
        backends.push(Backend { task_id: task.id.clone(), host: agent.address.clone(), port });
    }
    if backends.is_empty() {
        let what = if running > 0 { "healthy" } else { "running" };
        return Err(RouteError::NoInstance { service, app: app_id, what });
    }
    Ok(Route { service, app_id, rest, scheme, backends })
}

fn app_named<'a>(state: &'a State, name: &str) -> Option<&'a AppDefinition> {
    state
        .marathon
        .apps
        .values()
        .map(|r| &r.app)
        .find(|app| app.labels.get(LABEL_NAME).is_some_and(|n| n.trim_matches('/') == name))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::core::marathon::path::PathId;
    use crate::core::marathon::state::AppRecord;
    use crate::core::marathon::validation::parse_app;
    use crate::core::{Agent, AgentStatus, Task};

    fn task(id: &str, app: &str, agent: &str, state: TaskState, ports: Vec<u16>, healthy: Option<bool>) -> Task {
        Task { app_id: Some(app.into()), healthy, ..Task::for_test(id, FRAMEWORK_ID, "t", agent, state, &ports) }
    }

    fn state(apps: Vec<Value>, tasks: Vec<Task>) -> State {
        let mut s = State::default();
        s.agents.insert("a1".into(), Agent::for_test("a1", "10.0.0.1", AgentStatus::Active));
        s.agents.insert("a2".into(), Agent::for_test("a2", "10.0.0.2", AgentStatus::Active));
        for v in apps {
            let app = parse_app(&v, &PathId::root()).unwrap();
            let record = AppRecord { app: app.clone(), versions: BTreeMap::new() };
            s.marathon.apps.insert(app.id.to_string(), record);
        }
        for t in tasks {
            s.tasks.insert(t.id.clone(), t);
        }
        s
    }

    fn web(id: &str, labels: Value) -> Value {
        json!({"id": id, "cmd": "serve", "labels": labels, "portDefinitions": [{"port": 0}, {"port": 0}]})
    }

    #[test]
    fn routes_by_label_with_port_index_scheme_and_nested_names() {
        use TaskState::*;
        let s = state(
            vec![
                web("/web", json!({"DCOS_SERVICE_NAME": "web"})),
                web(
                    "/grp/api",
                    json!({"DCOS_SERVICE_NAME": "grp/api", "DCOS_SERVICE_PORT_INDEX": "1", "DCOS_SERVICE_SCHEME": "https"}),
                ),
                web("/grp", json!({"DCOS_SERVICE_NAME": "grp"})),
            ],
            vec![
                task("w1", "/web", "a1", TASK_RUNNING, vec![31000, 31001], None),
                task("w2", "/web", "a2", TASK_RUNNING, vec![31002, 31003], None),
                task("w3", "/web", "a2", TASK_STAGING, vec![31004, 31005], None),
                task("x1", "/grp/api", "a1", TASK_RUNNING, vec![31010, 31011], None),
                task("g1", "/grp", "a2", TASK_RUNNING, vec![31020, 31021], None),
            ],
        );
        let b = |task: &str, host: &str, port: u16| Backend { task_id: task.into(), host: host.into(), port };
        // (path after /service/, service, app, rest, scheme, backends)
        let cases = [
            ("web/", "web", "/web", "", Scheme::Http, vec![b("w1", "10.0.0.1", 31000), b("w2", "10.0.0.2", 31002)]),
            (
                "web/a/b",
                "web",
                "/web",
                "a/b",
                Scheme::Http,
                vec![b("w1", "10.0.0.1", 31000), b("w2", "10.0.0.2", 31002)],
            ),
            ("web", "web", "/web", "", Scheme::Http, vec![b("w1", "10.0.0.1", 31000), b("w2", "10.0.0.2", 31002)]),
            // The longest name wins: grp/api is its own service, grp/other goes to grp.
            ("grp/api/v1", "grp/api", "/grp/api", "v1", Scheme::Https, vec![b("x1", "10.0.0.1", 31011)]),
            ("grp/other", "grp", "/grp", "other", Scheme::Http, vec![b("g1", "10.0.0.2", 31020)]),
        ];
        for (path, service, app, rest, scheme, backends) in cases {
            let r = route(&s, path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                (r.service.as_str(), r.app_id.as_str(), r.rest.as_str(), r.scheme, r.backends),
                (service, app, rest, scheme, backends),
                "{path}"
            );
        }
    }

    #[test]
    fn refusals_name_the_service_the_label_or_the_missing_instances() {
        use TaskState::*;
        let checked = json!({"id": "/h", "cmd": "serve", "labels": {"DCOS_SERVICE_NAME": "h"},
            "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/"}]});
        let s = state(
            vec![
                web("/idle", json!({"DCOS_SERVICE_NAME": "idle"})),
                web("/badix", json!({"DCOS_SERVICE_NAME": "badix", "DCOS_SERVICE_PORT_INDEX": "x"})),
                web("/far", json!({"DCOS_SERVICE_NAME": "far", "DCOS_SERVICE_PORT_INDEX": "2"})),
                web("/ftp", json!({"DCOS_SERVICE_NAME": "ftp", "DCOS_SERVICE_SCHEME": "ftp"})),
                checked,
            ],
            vec![
                task("i1", "/idle", "a1", TASK_FINISHED, vec![31000, 31001], None),
                task("h1", "/h", "a1", TASK_RUNNING, vec![31030], Some(false)),
                task("h2", "/h", "a2", TASK_RUNNING, vec![31031], None),
            ],
        );
        assert_eq!(route(&s, "nothing/here"), Err(RouteError::NoService("nothing".into())));
        assert_eq!(
            route(&s, "idle/"),
            Err(RouteError::NoInstance { service: "idle".into(), app: "/idle".into(), what: "running" })
        );
        assert_eq!(
            route(&s, "h/"),
            Err(RouteError::NoInstance { service: "h".into(), app: "/h".into(), what: "healthy" })
        );
        for (path, label) in [("badix/", LABEL_PORT_INDEX), ("far/", LABEL_PORT_INDEX), ("ftp/", LABEL_SCHEME)] {
            match route(&s, path) {
                Err(RouteError::BadLabel { label: l, .. }) => assert_eq!(l, label, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        // Health decides once it is known.
        let mut healthy = s.clone();
        healthy.tasks.get_mut("h2").unwrap().healthy = Some(true);
        assert_eq!(route(&healthy, "h/").unwrap().backends.len(), 1);
    }
}
