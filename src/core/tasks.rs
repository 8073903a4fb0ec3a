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
    /// URIs the agent downloads into the sandbox before the task starts (the Mesos fetcher).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetch: Vec<FetchUri>,
}

/// Longest `uri` and `destPath` of a [`FetchUri`] (Marathon's limit for both).
pub const MAX_FETCH_FIELD_LEN: usize = 1024;

/// One URI for the Mesos fetcher (Mesos's `CommandInfo.URI`, Marathon's `fetch` item), with
/// Marathon's field names and defaults. Only `http` and `https` are fetched: `file://` and
/// bare paths would copy files of the agent's host (the agent runs as root) into a sandbox, and
/// `hdfs://`, `s3://`, `ftp://` need clients medos does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchUri {
    pub uri: String,
    /// Unpack `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`, `.tar.xz`/`.txz`, `.zip` into the
    /// sandbox and gunzip `.gz` (the downloaded file stays too), as Mesos does.
    #[serde(default = "yes")]
    pub extract: bool,
    /// Make the file executable (mode 0755); an executable is never extracted.
    #[serde(default)]
    pub executable: bool,
    /// Accepted for compatibility; every fetch downloads (there is no fetcher cache).
    #[serde(default)]
    pub cache: bool,
    /// Where the file goes, relative to the sandbox; default: the last segment of the URI's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
}

impl FetchUri {
    /// A URI with Marathon's defaults (`extract` true, the rest false).
    pub fn new(uri: &str) -> FetchUri {
        FetchUri { uri: uri.to_string(), extract: true, executable: false, cache: false, dest_path: None }
    }

    /// The fetcher's rules for this URI, checked by the agent before it downloads anything
    /// (a task that breaks them fails with the message): an `http` or `https` URI with a
    /// host, and a sandbox-relative destination that cannot leave the sandbox.
    pub fn check(&self) -> Result<(), String> {
        let uri = self.uri.as_str();
        if uri.is_empty() || uri.len() > MAX_FETCH_FIELD_LEN {
            return Err(format!("the URI must be 1 to {MAX_FETCH_FIELD_LEN} characters"));
        }
        if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the URI contains whitespace or control characters".into());
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(
                "not an http:// or https:// URI (medos fetches only http and https; local paths are not copied)".into(),
            );
        };
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(format!(
                "the {scheme}:// scheme is not supported: medos fetches only http and https URIs{}",
                if scheme.eq_ignore_ascii_case("file") {
                    " (files of the agent's host are not copied into sandboxes)"
                } else {
                    ""
                }
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() || host.starts_with(':') {
            return Err("the URI names no host".into());
        }
        if let Some(dest) = &self.dest_path {
            sandbox_path(dest).map_err(|e| format!("destPath {dest:?}: {e}"))?;
        }
        Ok(())
    }
}

/// Marathon's `fetch` items (and legacy `uris`) are handed to the agent as they are.
impl From<&super::marathon::app::Artifact> for FetchUri {
    fn from(a: &super::marathon::app::Artifact) -> FetchUri {
        FetchUri {
            uri: a.uri.clone(),
            extract: a.extract,
            executable: a.executable,
            cache: a.cache,
            dest_path: a.dest_path.clone(),
        }
    }
}

/// Splits a sandbox-relative path into its components, refusing what could leave the sandbox
/// (absolute paths, `..`) or names no file. `.` and empty components are dropped.
pub fn sandbox_path(path: &str) -> Result<Vec<&str>, String> {
    if path.is_empty() || path.len() > MAX_FETCH_FIELD_LEN {
        return Err(format!("must be 1 to {MAX_FETCH_FIELD_LEN} characters"));
    }
    if path.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    if path.starts_with('/') {
        return Err("must be relative to the sandbox, not absolute".into());
    }
    if path.ends_with('/') {
        return Err("must name a file, not a directory".into());
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err("must not contain `..` (it could leave the sandbox)".into()),
            c => components.push(c),
        }
    }
    if components.is_empty() {
        return Err("must name a file, not the sandbox itself".into());
    }
    Ok(components)
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
    /// Whether the task can take traffic (DNS names, the `/service` proxy): TASK_RUNNING, and
    /// reported healthy when it runs health checks or `app_checked` says its app has them.
    pub fn ready(&self, app_checked: bool) -> bool {
        let checked = app_checked || !self.spec.health_checks.is_empty();
        self.state == TaskState::TASK_RUNNING && (!checked || self.healthy == Some(true))
    }

    /// A task for tests of the pure core: `sleep 1000` with 0.1 cpus and 32 MiB on `agent`,
    /// holding host `ports`.
    #[cfg(test)]
    pub(crate) fn for_test(
        id: &str,
        framework: &str,
        name: &str,
        agent: &str,
        state: TaskState,
        ports: &[u16],
    ) -> Self {
        Task {
            id: id.into(),
            framework_id: framework.into(),
            agent_id: agent.into(),
            spec: TaskSpec {
                name: name.into(),
                command: CommandSpec { shell: true, value: "sleep 1000".into(), arguments: vec![] },
                image: None,
                resources: Resources { cpus: 0.1, mem: 32.0, disk: 0.0, ports: vec![] },
                port_count: ports.len() as u16,
                env: BTreeMap::new(),
                user: None,
                kill_grace_ms: 1000,
                labels: BTreeMap::new(),
                health_checks: vec![],
                fetch: vec![],
            },
            state,
            reason: None,
            message: String::new(),
            ports: ports.to_vec(),
            created_at_ms: 1,
            updated_at_ms: 1,
            exit_code: None,
            healthy: None,
            kill_grace_ms: None,
            statuses: vec![],
            image: None,
            app_id: None,
            app_version: None,
        }
    }

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
    // Only the bounds Marathon's app validation guarantees too: a launch refused here would be
    // retried by the Marathon loop on every pass. Schemes and destinations are checked by the
    // agent (`FetchUri::check`), which fails the task with the reason, as the Mesos fetcher does.
    for (i, f) in spec.fetch.iter().enumerate() {
        if f.uri.is_empty() || f.uri.len() > MAX_FETCH_FIELD_LEN {
            return Err(format!("fetch[{i}].uri must be 1 to {MAX_FETCH_FIELD_LEN} characters"));
        }
        if f.dest_path.as_ref().is_some_and(|d| d.is_empty() || d.len() > MAX_FETCH_FIELD_LEN) {
            return Err(format!("fetch[{i}].destPath must be 1 to {MAX_FETCH_FIELD_LEN} characters"));
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
            fetch: vec![],
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

    #[test]
    fn fetch_uris_parse_with_marathon_names_and_defaults() {
        let f: FetchUri = serde_json::from_str(r#"{"uri": "https://example.com/a.tgz"}"#).unwrap();
        assert_eq!(f, FetchUri::new("https://example.com/a.tgz"));
        let f: FetchUri =
            serde_json::from_str(r#"{"uri": "http://h/x", "extract": false, "executable": true, "destPath": "bin/x"}"#)
                .unwrap();
        assert!(!f.extract && f.executable && !f.cache);
        assert_eq!(f.dest_path.as_deref(), Some("bin/x"));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["destPath"], "bin/x");
        // Tasks written before `fetch` existed still load, and tasks without it do not grow.
        let mut s = spec();
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("fetch"), "{text}");
        assert_eq!(serde_json::from_str::<TaskSpec>(&text).unwrap(), s);
        s.fetch = vec![f];
        assert_eq!(serde_json::from_str::<TaskSpec>(&serde_json::to_string(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn fetch_uri_rules_name_the_problem() {
        let check = |uri: &str, dest: Option<&str>| {
            FetchUri { dest_path: dest.map(str::to_string), ..FetchUri::new(uri) }.check()
        };
        for ok in ["http://h/a.tgz", "HTTPS://h:8443/x?y=1", "http://user@h/x", "http://[::1]:80/x"] {
            assert_eq!(check(ok, None), Ok(()), "{ok}");
        }
        assert_eq!(check("http://h/x", Some("conf/./app.conf")), Ok(()));
        let cases = [
            ("file:///etc/shadow", None, "file:// scheme is not supported"),
            ("/etc/shadow", None, "only http and https"),
            ("hdfs://nn/x", None, "hdfs:// scheme is not supported"),
            ("ftp://h/x", None, "ftp:// scheme is not supported"),
            ("http:///x", None, "no host"),
            ("http://h/a b", None, "whitespace"),
            ("", None, "1 to 1024"),
            ("http://h/x", Some("/etc/passwd"), "absolute"),
            ("http://h/x", Some("a/../../x"), "`..`"),
            ("http://h/x", Some(".."), "`..`"),
            ("http://h/x", Some("dir/"), "name a file"),
            ("http://h/x", Some("./"), "name a file"),
            ("http://h/x", Some("."), "not the sandbox itself"),
            ("http://h/x", Some(""), "1 to 1024"),
        ];
        for (uri, dest, want) in cases {
            let err = check(uri, dest).unwrap_err();
            assert!(err.contains(want), "{uri} {dest:?}: {err}");
        }
        assert!(check("http://h/x", Some("a\0b")).unwrap_err().contains("NUL"));
        assert_eq!(sandbox_path("./a//b/c").unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn spec_validation_bounds_fetch_fields_only() {
        let mut s = spec();
        // The scheme is the agent's to judge (a Marathon app may carry any valid URI).
        s.fetch = vec![FetchUri::new("file:///x")];
        assert_eq!(validate_spec(&s), Ok(()));
        s.fetch = vec![FetchUri::new(&format!("http://h/{}", "x".repeat(1024)))];
        assert!(validate_spec(&s).unwrap_err().contains("fetch[0].uri"));
        s.fetch = vec![FetchUri { dest_path: Some(String::new()), ..FetchUri::new("http://h/x") }];
        assert!(validate_spec(&s).unwrap_err().contains("fetch[0].destPath"));
    }
}
