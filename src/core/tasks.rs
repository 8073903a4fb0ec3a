//! Tasks, their Mesos states and reasons, and the rules for moving between states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::Resources;

/// Mesos task states, spelled as Mesos spells them.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum TaskState {
    TASK_STAGING,
    TASK_STARTING,
    TASK_RUNNING,
    TASK_KILLING,
    TASK_FINISHED,
    TASK_FAILED,
    TASK_KILLED,
    TASK_ERROR,
    TASK_LOST,
    TASK_DROPPED,
    TASK_UNREACHABLE,
    TASK_GONE,
    TASK_GONE_BY_OPERATOR,
    TASK_UNKNOWN,
}

impl TaskState {
    /// Terminal states never change again.
    pub fn is_terminal(self) -> bool {
        use TaskState::*;
        matches!(
            self,
            TASK_FINISHED
                | TASK_FAILED
                | TASK_KILLED
                | TASK_ERROR
                | TASK_LOST
                | TASK_DROPPED
                | TASK_GONE
                | TASK_GONE_BY_OPERATOR
        )
    }

    /// Whether a task in this state holds resources on its agent.
    pub fn holds_resources(self) -> bool {
        !self.is_terminal()
    }

    pub fn as_str(self) -> &'static str {
        use TaskState::*;
        match self {
            TASK_STAGING => "TASK_STAGING",
            TASK_STARTING => "TASK_STARTING",
            TASK_RUNNING => "TASK_RUNNING",
            TASK_KILLING => "TASK_KILLING",
            TASK_FINISHED => "TASK_FINISHED",
            TASK_FAILED => "TASK_FAILED",
            TASK_KILLED => "TASK_KILLED",
            TASK_ERROR => "TASK_ERROR",
            TASK_LOST => "TASK_LOST",
            TASK_DROPPED => "TASK_DROPPED",
            TASK_UNREACHABLE => "TASK_UNREACHABLE",
            TASK_GONE => "TASK_GONE",
            TASK_GONE_BY_OPERATOR => "TASK_GONE_BY_OPERATOR",
            TASK_UNKNOWN => "TASK_UNKNOWN",
        }
    }
}

/// Whether a task may move from `from` to `to`. Terminal states are final; anything else
/// may move forward, and an unreachable task may come back when its agent returns.
pub fn transition_allowed(from: TaskState, to: TaskState) -> bool {
    use TaskState::*;
    if from.is_terminal() {
        return false;
    }
    if from == to {
        // Repeated RUNNING updates carry health changes.
        return to == TASK_RUNNING || to == TASK_UNREACHABLE;
    }
    match to {
        TASK_STAGING => false,
        TASK_STARTING => matches!(from, TASK_STAGING | TASK_UNREACHABLE),
        TASK_RUNNING => matches!(from, TASK_STAGING | TASK_STARTING | TASK_UNREACHABLE | TASK_KILLING),
        TASK_KILLING => matches!(from, TASK_STAGING | TASK_STARTING | TASK_RUNNING | TASK_UNREACHABLE),
        TASK_UNKNOWN => false,
        _ => true,
    }
}

/// A Mesos CommandInfo: `shell` runs `/bin/sh -c value`; otherwise the program `value` is
/// exec'd with `arguments` as its whole argv (argv[0] included), as Mesos does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    #[serde(default = "yes")]
    pub shell: bool,
    pub value: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
}

fn yes() -> bool {
    true
}

/// What to run. Chosen by a framework (the app scheduler, `medos task run`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub command: CommandSpec,
    /// Image name (loaded with `medos image load`); `None` runs on the host filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub resources: Resources,
    /// How many host ports to assign (exposed as PORT0…, PORTS).
    #[serde(default)]
    pub port_count: u16,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// SIGTERM → SIGKILL delay when the task is killed.
    #[serde(default = "default_grace_ms")]
    pub kill_grace_ms: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Checks the agent runs while the task is RUNNING; results arrive as `healthy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
}

/// How a health check probes the task (Marathon's protocols; Mesos runs them on the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthProtocol {
    #[serde(alias = "HTTP")]
    MesosHttp,
    #[serde(alias = "HTTPS")]
    MesosHttps,
    #[serde(alias = "TCP")]
    MesosTcp,
    Command,
}

/// A Marathon health check, with Marathon's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub protocol: HealthProtocol,
    /// HTTP path (`/` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Which of the task's ports to probe (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<usize>,
    /// A fixed port instead of `port_index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// For COMMAND checks: a shell command run inside the task's container; exit 0 = healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<HealthCommand>,
    #[serde(default = "d300")]
    pub grace_period_seconds: u64,
    #[serde(default = "d60")]
    pub interval_seconds: u64,
    #[serde(default = "d20")]
    pub timeout_seconds: u64,
    #[serde(default = "d3")]
    pub max_consecutive_failures: u32,
    #[serde(default = "d15")]
    pub delay_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCommand {
    pub value: String,
}

fn d300() -> u64 {
    300
}
fn d60() -> u64 {
    60
}
fn d20() -> u64 {
    20
}
fn d3() -> u32 {
    3
}
fn d15() -> u64 {
    15
}

impl HealthCheck {
    /// Checks the fields against the task, naming the bad one.
    pub fn validate(&self, port_count: u16, at: usize) -> Result<(), String> {
        let field = |f: &str| format!("healthChecks[{at}].{f}");
        match self.protocol {
            HealthProtocol::Command => {
                if self.command.as_ref().is_none_or(|c| c.value.trim().is_empty()) {
                    return Err(format!("{}: COMMAND checks need a command value", field("command")));
                }
            }
            _ => {
                if self.port.is_none() && self.port_index.unwrap_or(0) >= usize::from(port_count) {
                    return Err(format!(
                        "{}: the task has {port_count} port(s); give portIndex below that or a port",
                        field("portIndex")
                    ));
                }
            }
        }
        if self.interval_seconds == 0 || self.timeout_seconds == 0 {
            return Err(format!("{} and timeoutSeconds must be at least 1", field("intervalSeconds")));
        }
        if self.timeout_seconds > self.interval_seconds {
            return Err(format!("{} must not exceed intervalSeconds", field("timeoutSeconds")));
        }
        Ok(())
    }
}

pub fn default_grace_ms() -> u64 {
    3_000
}

/// One status update, as agents send them (at least once; `uuid` makes them idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: String,
    pub uuid: String,
    pub state: TaskState,
    /// Mesos reason, e.g. `REASON_CONTAINER_LIMITATION_MEMORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub timestamp_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// `SOURCE_EXECUTOR`, `SOURCE_AGENT` or `SOURCE_MASTER`.
    pub source: String,
}

/// A task as the masters know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub framework_id: String,
    pub agent_id: String,
    pub spec: TaskSpec,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: String,
    /// Host ports assigned from the agent's ranges.
    #[serde(default)]
    pub ports: Vec<u16>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Set when someone asked for the task to be killed; the grace period to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace_ms: Option<u64>,
    /// Latest status updates (bounded), newest last.
    #[serde(default)]
    pub statuses: Vec<TaskStatus>,
    /// The image `spec.image` named, resolved when the task was placed (so agents need no
    /// lookup, and a later re-tag does not change a running task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<super::images::ImageRecord>>,
    /// The Marathon app this task is an instance of, and the app version it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

/// Status updates kept per task.
pub const STATUS_HISTORY: usize = 16;

impl Task {
    /// Applies a status update. Returns `false` when it is a duplicate or not allowed.
    pub fn update(&mut self, status: &TaskStatus) -> bool {
        if self.statuses.iter().any(|s| s.uuid == status.uuid) {
            return false;
        }
        if !transition_allowed(self.state, status.state) {
            return false;
        }
        self.state = status.state;
        self.reason = status.reason.clone();
        self.message = status.message.clone();
        self.updated_at_ms = status.timestamp_ms;
        if status.exit_code.is_some() {
            self.exit_code = status.exit_code;
        }
        if status.healthy.is_some() {
            self.healthy = status.healthy;
        }
        self.statuses.push(status.clone());
        if self.statuses.len() > STATUS_HISTORY {
            self.statuses.remove(0);
        }
        true
    }
}

/// Checks a task spec, naming the offending field.
pub fn validate_spec(spec: &TaskSpec) -> Result<(), String> {
    if spec.name.is_empty() || spec.name.len() > 128 {
        return Err("name must be 1 to 128 characters".into());
    }
    if spec.command.value.trim().is_empty() {
        return Err("command.value must not be empty".into());
    }
    spec.resources.validate("resources")?;
    if spec.resources.cpus <= 0.0 {
        return Err("resources.cpus must be greater than 0".into());
    }
    if spec.resources.mem < 4.0 {
        return Err("resources.mem must be at least 4 (MiB)".into());
    }
    if spec.port_count > 100 {
        return Err("port_count must be at most 100".into());
    }
    if let Some(user) = &spec.user
        && (user.is_empty() || user.contains(['/', ':', '\0']))
    {
        return Err(format!("user {user:?} is not a valid user name"));
    }
    for (i, check) in spec.health_checks.iter().enumerate() {
        check.validate(spec.port_count, i)?;
    }
    for key in spec.env.keys() {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(format!("env: {key:?} is not a valid variable name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn transitions_table() {
        let cases = [
            (TASK_STAGING, TASK_STARTING, true),
            (TASK_STARTING, TASK_RUNNING, true),
            (TASK_RUNNING, TASK_RUNNING, true),
            (TASK_RUNNING, TASK_FINISHED, true),
            (TASK_RUNNING, TASK_UNREACHABLE, true),
            (TASK_UNREACHABLE, TASK_RUNNING, true),
            (TASK_UNREACHABLE, TASK_GONE, true),
            (TASK_FINISHED, TASK_RUNNING, false),
            (TASK_KILLED, TASK_KILLED, false),
            (TASK_RUNNING, TASK_STAGING, false),
            (TASK_RUNNING, TASK_STARTING, false),
            (TASK_KILLING, TASK_KILLED, true),
        ];
        for (from, to, ok) in cases {
            assert_eq!(transition_allowed(from, to), ok, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn states_serialise_with_mesos_names() {
        assert_eq!(serde_json::to_string(&TASK_RUNNING).unwrap(), "\"TASK_RUNNING\"");
        assert_eq!(TASK_GONE_BY_OPERATOR.as_str(), "TASK_GONE_BY_OPERATOR");
    }

    fn spec() -> TaskSpec {
        TaskSpec {
            name: "t".into(),
            command: CommandSpec { shell: true, value: "true".into(), arguments: vec![] },
            image: None,
            resources: Resources { cpus: 0.1, mem: 32.0, disk: 0.0, ports: vec![] },
            port_count: 0,
            env: BTreeMap::new(),
            user: None,
            kill_grace_ms: 1000,
            labels: BTreeMap::new(),
            health_checks: vec![],
        }
    }

    #[test]
    fn health_checks_parse_with_marathon_names_and_defaults() {
        let check: HealthCheck =
            serde_json::from_str(r#"{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0}"#).unwrap();
        assert_eq!(check.protocol, HealthProtocol::MesosHttp);
        assert_eq!((check.grace_period_seconds, check.interval_seconds, check.timeout_seconds), (300, 60, 20));
        assert_eq!((check.max_consecutive_failures, check.delay_seconds), (3, 15));
        let mut s = spec();
        s.health_checks = vec![check.clone()];
        assert!(validate_spec(&s).unwrap_err().contains("healthChecks[0].portIndex"));
        s.port_count = 1;
        assert_eq!(validate_spec(&s), Ok(()));
        let cmd: HealthCheck = serde_json::from_str(r#"{"protocol": "COMMAND"}"#).unwrap();
        s.health_checks = vec![cmd];
        assert!(validate_spec(&s).unwrap_err().contains("command"));
        assert!(serde_json::from_str::<HealthCheck>(r#"{"protocol": "UDP"}"#).is_err());
    }

    #[test]
    fn spec_validation_names_the_field() {
        assert_eq!(validate_spec(&spec()), Ok(()));
        let mut s = spec();
        s.command.value = " ".into();
        assert!(validate_spec(&s).unwrap_err().contains("command.value"));
        let mut s = spec();
        s.resources.mem = 1.0;
        assert!(validate_spec(&s).unwrap_err().contains("resources.mem"));
        let mut s = spec();
        s.env.insert("A=B".into(), "x".into());
        assert!(validate_spec(&s).unwrap_err().contains("env"));
    }
}
