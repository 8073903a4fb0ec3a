//! Marathon app definitions: the model after parsing, defaulting and normalisation.
//!
//! [`AppDefinition`] serialises to exactly the definition part of Marathon's
//! `GET /v2/apps/{id}` (every default filled, deprecated fields translated, empty optional
//! collections omitted as Marathon's RAML serialiser omits them). It deserialises from that
//! same JSON (the replicated state stores it), through the reader in
//! [`super::validation`]. Requests are parsed with [`super::validation::parse_app`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::constraints::Constraint;
use super::path::PathId;
use crate::core::tasks::{self, HealthCommand, HealthProtocol};

/// The role apps get when they name none, and the role medos's Marathon registers with: DC/OS
/// runs Marathon with `--mesos_role slave_public`.
pub const DEFAULT_ROLE: &str = "slave_public";
/// The unreserved role.
pub const UNRESERVED_ROLE: &str = "*";
/// The name given to `container` networks that name none (DC/OS's `--default_network_name`).
pub const DEFAULT_NETWORK_NAME: &str = "dcos";
/// The network name that old `ipAddress` definitions use for the bridge (`--mesos_bridge_name`).
pub const MESOS_BRIDGE_NAME: &str = "mesos-bridge";

pub const DEFAULT_CPUS: f64 = 1.0;
pub const DEFAULT_MEM: f64 = 128.0;
pub const DEFAULT_BACKOFF_SECONDS: u64 = 1;
pub const DEFAULT_BACKOFF_FACTOR: f64 = 1.15;
pub const DEFAULT_MAX_LAUNCH_DELAY_SECONDS: u64 = 300;

/// An environment variable: a value, or a reference to a secret (`{"secret": "name"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Value(String),
    Secret(String),
}

impl EnvValue {
    fn to_json(&self) -> Value {
        match self {
            EnvValue::Value(v) => Value::String(v.clone()),
            EnvValue::Secret(s) => json!({ "secret": s }),
        }
    }
}

/// A URI the Mesos fetcher would download into the sandbox before the task starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub uri: String,
    pub extract: bool,
    pub executable: bool,
    pub cache: bool,
    pub dest_path: Option<String>,
}

impl Artifact {
    /// An artifact with Marathon's defaults (`extract` true, the rest false).
    pub fn new(uri: &str) -> Artifact {
        Artifact { uri: uri.to_string(), extract: true, executable: false, cache: false, dest_path: None }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("uri".into(), json!(self.uri));
        o.insert("extract".into(), json!(self.extract));
        o.insert("executable".into(), json!(self.executable));
        o.insert("cache".into(), json!(self.cache));
        if let Some(d) = &self.dest_path {
            o.insert("destPath".into(), json!(d));
        }
        Value::Object(o)
    }
}

/// A host port the app needs (host networking). `port` 0 means any free port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDefinition {
    pub port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl PortDefinition {
    pub fn new(port: u32) -> PortDefinition {
        PortDefinition { port, protocol: "tcp".into(), name: None, labels: BTreeMap::new() }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("port".into(), json!(self.port));
        if !self.labels.is_empty() {
            o.insert("labels".into(), json!(self.labels));
        }
        if let Some(n) = &self.name {
            o.insert("name".into(), json!(n));
        }
        o.insert("protocol".into(), json!(self.protocol));
        Value::Object(o)
    }
}

/// `container.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Mesos,
    Docker,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Mesos => "MESOS",
            ContainerKind::Docker => "DOCKER",
        }
    }
}

/// `container.docker`: the image and the Docker-only options (kept, see the compatibility doc).
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSpec {
    pub image: String,
    pub force_pull_image: bool,
    pub privileged: bool,
    pub parameters: Vec<DockerParameter>,
    pub credential: Option<Value>,
    pub pull_config: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerParameter {
    pub key: String,
    pub value: String,
}

/// A container port mapping (container and bridge networking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub container_port: u32,
    pub host_port: Option<u32>,
    pub service_port: u32,
    pub protocol: String,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub network_names: Vec<String>,
}

impl Default for PortMapping {
    fn default() -> Self {
        PortMapping {
            container_port: 0,
            host_port: None,
            service_port: 0,
            protocol: "tcp".into(),
            name: None,
            labels: BTreeMap::new(),
            network_names: Vec::new(),
        }
    }
}

impl PortMapping {
    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("containerPort".into(), json!(self.container_port));
        if let Some(h) = self.host_port {
            o.insert("hostPort".into(), json!(h));
        }
        o.insert("labels".into(), json!(self.labels));
        if let Some(n) = &self.name {
            o.insert("name".into(), json!(n));
        }
        o.insert("protocol".into(), json!(self.protocol));
        o.insert("servicePort".into(), json!(self.service_port));
        if !self.network_names.is_empty() {
            o.insert("networkNames".into(), json!(self.network_names));
        }
        Value::Object(o)
    }
}

/// `container`.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub kind: ContainerKind,
    pub docker: Option<DockerSpec>,
    /// Volumes as given (host volumes only; see the compatibility doc).
    pub volumes: Vec<Value>,
    /// Only with container or bridge networking (Marathon drops them with host networking).
    pub port_mappings: Option<Vec<PortMapping>>,
    pub linux_info: Option<Value>,
}

impl Container {
    fn to_json(&self, non_host_networking: bool) -> Value {
        let mut o = Map::new();
        o.insert("type".into(), json!(self.kind.as_str()));
        if let Some(d) = &self.docker {
            let mut dj = Map::new();
            if let Some(c) = &d.credential {
                dj.insert("credential".into(), c.clone());
            }
            if let Some(p) = &d.pull_config {
                dj.insert("pullConfig".into(), p.clone());
            }
            dj.insert("forcePullImage".into(), json!(d.force_pull_image));
            dj.insert("image".into(), json!(d.image));
            dj.insert(
                "parameters".into(),
                Value::Array(d.parameters.iter().map(|p| json!({"key": p.key, "value": p.value})).collect()),
            );
            dj.insert("privileged".into(), json!(d.privileged));
            o.insert("docker".into(), Value::Object(dj));
        }
        if let Some(l) = &self.linux_info {
            o.insert("linuxInfo".into(), l.clone());
        }
        o.insert("volumes".into(), Value::Array(self.volumes.clone()));
        if non_host_networking && let Some(pm) = &self.port_mappings {
            o.insert("portMappings".into(), Value::Array(pm.iter().map(PortMapping::to_json).collect()));
        }
        Value::Object(o)
    }
}

/// `networks[].mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetworkMode {
    Host,
    Container,
    ContainerBridge,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Host => "host",
            NetworkMode::Container => "container",
            NetworkMode::ContainerBridge => "container/bridge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub mode: NetworkMode,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl Network {
    pub fn host() -> Network {
        Network { mode: NetworkMode::Host, name: None, labels: BTreeMap::new() }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        if let Some(n) = &self.name {
            o.insert("name".into(), json!(n));
        }
        o.insert("mode".into(), json!(self.mode.as_str()));
        if !self.labels.is_empty() {
            o.insert("labels".into(), json!(self.labels));
        }
        Value::Object(o)
    }
}

/// Marathon's health check protocols. `HTTP`, `HTTPS` and `TCP` were run by Marathon itself;
/// medos runs every check on the agent (see [`AppDefinition::task_health_checks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthCheckProtocol {
    Http,
    Https,
    Tcp,
    Command,
    MesosHttp,
    MesosHttps,
    MesosTcp,
}

impl HealthCheckProtocol {
    pub const ALL: [HealthCheckProtocol; 7] =
        [Self::Http, Self::Https, Self::Tcp, Self::Command, Self::MesosHttp, Self::MesosHttps, Self::MesosTcp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Tcp => "TCP",
            Self::Command => "COMMAND",
            Self::MesosHttp => "MESOS_HTTP",
            Self::MesosHttps => "MESOS_HTTPS",
            Self::MesosTcp => "MESOS_TCP",
        }
    }

    /// The checks Marathon ran from the scheduler (not Mesos checks).
    pub fn is_marathon_side(self) -> bool {
        matches!(self, Self::Http | Self::Https | Self::Tcp)
    }
}

/// One entry of `healthChecks`, normalised as Marathon stores it (fields that do not apply to
/// the protocol are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHealthCheck {
    pub protocol: HealthCheckProtocol,
    /// `command.value` of a COMMAND check.
    pub command: Option<String>,
    pub path: Option<String>,
    pub port_index: Option<u32>,
    pub port: Option<u32>,
    /// Only HTTP and HTTPS checks have it (always set for them).
    pub ignore_http1xx: Option<bool>,
    /// `IPv4` or `IPv6`.
    pub ip_protocol: String,
    pub grace_period_seconds: u32,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub max_consecutive_failures: u32,
    pub delay_seconds: u32,
}

impl AppHealthCheck {
    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("gracePeriodSeconds".into(), json!(self.grace_period_seconds));
        if let Some(c) = &self.command {
            o.insert("command".into(), json!({ "value": c }));
        }
        if let Some(i) = self.ignore_http1xx {
            o.insert("ignoreHttp1xx".into(), json!(i));
        }
        o.insert("intervalSeconds".into(), json!(self.interval_seconds));
        o.insert("maxConsecutiveFailures".into(), json!(self.max_consecutive_failures));
        if let Some(p) = &self.path {
            o.insert("path".into(), json!(p));
        }
        if let Some(p) = self.port {
            o.insert("port".into(), json!(p));
        }
        if let Some(p) = self.port_index {
            o.insert("portIndex".into(), json!(p));
        }
        o.insert("protocol".into(), json!(self.protocol.as_str()));
        o.insert("ipProtocol".into(), json!(self.ip_protocol));
        o.insert("timeoutSeconds".into(), json!(self.timeout_seconds));
        o.insert("delaySeconds".into(), json!(self.delay_seconds));
        Value::Object(o)
    }

    /// The agent-side check medos runs for this one. Marathon's scheduler-side HTTP, HTTPS and
    /// TCP checks become MESOS_HTTP, MESOS_HTTPS and MESOS_TCP checks run next to the task.
    pub fn to_task_check(&self) -> tasks::HealthCheck {
        let protocol = match self.protocol {
            HealthCheckProtocol::Http | HealthCheckProtocol::MesosHttp => HealthProtocol::MesosHttp,
            HealthCheckProtocol::Https | HealthCheckProtocol::MesosHttps => HealthProtocol::MesosHttps,
            HealthCheckProtocol::Tcp | HealthCheckProtocol::MesosTcp => HealthProtocol::MesosTcp,
            HealthCheckProtocol::Command => HealthProtocol::Command,
        };
        let command = self.command.as_ref().map(|value| HealthCommand { value: value.clone() });
        tasks::HealthCheck {
            protocol,
            path: self.path.clone(),
            port_index: if command.is_some() { None } else { self.port_index.map(|i| i as usize) },
            port: if command.is_some() { None } else { self.port.and_then(|p| u16::try_from(p).ok()) },
            command,
            grace_period_seconds: u64::from(self.grace_period_seconds),
            interval_seconds: u64::from(self.interval_seconds),
            timeout_seconds: u64::from(self.timeout_seconds),
            max_consecutive_failures: self.max_consecutive_failures,
            delay_seconds: u64::from(self.delay_seconds),
        }
    }
}

/// One entry of `readinessChecks` (kept; medos does not run readiness checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessCheck {
    pub name: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    pub path: String,
    pub port_name: String,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub http_status_codes_for_ready: Vec<u32>,
    pub preserve_last_response: bool,
}

impl ReadinessCheck {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "protocol": self.protocol,
            "path": self.path,
            "portName": self.port_name,
            "intervalSeconds": self.interval_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "httpStatusCodesForReady": self.http_status_codes_for_ready,
            "preserveLastResponse": self.preserve_last_response,
        })
    }
}

/// How a restart replaces tasks: keep `minimum_health_capacity * instances` healthy, start at
/// most `maximum_over_capacity * instances` extra.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpgradeStrategy {
    pub minimum_health_capacity: f64,
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy { minimum_health_capacity: 1.0, maximum_over_capacity: 1.0 }
    }
}

/// Which surplus tasks a scale-down kills first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillSelection {
    #[default]
    YoungestFirst,
    OldestFirst,
}

impl KillSelection {
    pub fn as_str(self) -> &'static str {
        match self {
            KillSelection::YoungestFirst => "YOUNGEST_FIRST",
            KillSelection::OldestFirst => "OLDEST_FIRST",
        }
    }
}

/// What happens to tasks on an unreachable agent. Marathon's default (for apps without
/// persistent volumes) is `Enabled` with both timeouts 0: a replacement starts at once and the
/// unreachable task is expunged (killed if it comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreachableStrategy {
    /// `"disabled"`: tasks stay unreachable; nothing replaces them.
    Disabled,
    Enabled {
        inactive_after_seconds: u64,
        expunge_after_seconds: u64,
    },
}

impl Default for UnreachableStrategy {
    fn default() -> Self {
        UnreachableStrategy::Enabled { inactive_after_seconds: 0, expunge_after_seconds: 0 }
    }
}

impl UnreachableStrategy {
    fn to_json(self) -> Value {
        match self {
            UnreachableStrategy::Disabled => json!("disabled"),
            UnreachableStrategy::Enabled { inactive_after_seconds, expunge_after_seconds } => json!({
                "inactiveAfterSeconds": inactive_after_seconds,
                "expungeAfterSeconds": expunge_after_seconds,
            }),
        }
    }
}

/// `versionInfo`: when the app was last scaled and last changed otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub last_scaling_at: String,
    pub last_config_change_at: String,
}

/// A secret the app may reference (`{"source": "..."}`); needs the secrets feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDef {
    pub source: String,
}

/// A Marathon app definition with every default filled.
#[derive(Debug, Clone, PartialEq)]
pub struct AppDefinition {
    pub id: PathId,
    pub cmd: Option<String>,
    pub args: Vec<String>,
    pub user: Option<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub instances: u32,
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub gpus: u32,
    /// `""` (the default) or `//cmd`.
    pub executor: String,
    pub constraints: Vec<Constraint>,
    pub fetch: Vec<Artifact>,
    /// Host ports (host networking; empty with container or bridge networking).
    pub port_definitions: Vec<PortDefinition>,
    pub require_ports: bool,
    pub backoff_seconds: u64,
    pub backoff_factor: f64,
    pub max_launch_delay_seconds: u64,
    pub container: Option<Container>,
    pub health_checks: Vec<AppHealthCheck>,
    /// Mesos `check` (kept, not run).
    pub check: Option<Value>,
    pub readiness_checks: Vec<ReadinessCheck>,
    pub dependencies: Vec<PathId>,
    pub upgrade_strategy: UpgradeStrategy,
    pub labels: BTreeMap<String, String>,
    pub accepted_resource_roles: Option<Vec<String>>,
    /// Never empty after normalisation (`[{"mode": "host"}]` by default).
    pub networks: Vec<Network>,
    pub secrets: BTreeMap<String, SecretDef>,
    pub residency: Option<Value>,
    pub executor_resources: Option<Value>,
    pub resource_limits: Option<Value>,
    pub kill_selection: KillSelection,
    pub unreachable_strategy: UnreachableStrategy,
    pub task_kill_grace_period_seconds: Option<u64>,
    pub tty: Option<bool>,
    pub role: String,
    /// Set by the proposer: ISO-8601 UTC with milliseconds (`2015-09-30T09:09:17.614Z`).
    pub version: Option<String>,
    pub version_info: Option<VersionInfo>,
}

impl Default for AppDefinition {
    /// Marathon's defaults for an app with id `/`, no command and one port (host networking).
    fn default() -> Self {
        AppDefinition {
            id: PathId::root(),
            cmd: None,
            args: Vec::new(),
            user: None,
            env: BTreeMap::new(),
            instances: 1,
            cpus: DEFAULT_CPUS,
            mem: DEFAULT_MEM,
            disk: 0.0,
            gpus: 0,
            executor: String::new(),
            constraints: Vec::new(),
            fetch: Vec::new(),
            port_definitions: vec![PortDefinition { name: Some("default".into()), ..PortDefinition::new(0) }],
            require_ports: false,
            backoff_seconds: DEFAULT_BACKOFF_SECONDS,
            backoff_factor: DEFAULT_BACKOFF_FACTOR,
            max_launch_delay_seconds: DEFAULT_MAX_LAUNCH_DELAY_SECONDS,
            container: None,
            health_checks: Vec::new(),
            check: None,
            readiness_checks: Vec::new(),
            dependencies: Vec::new(),
            upgrade_strategy: UpgradeStrategy::default(),
            labels: BTreeMap::new(),
            accepted_resource_roles: None,
            networks: vec![Network::host()],
            secrets: BTreeMap::new(),
            residency: None,
            executor_resources: None,
            resource_limits: None,
            kill_selection: KillSelection::YoungestFirst,
            unreachable_strategy: UnreachableStrategy::default(),
            task_kill_grace_period_seconds: None,
            tty: None,
            role: DEFAULT_ROLE.to_string(),
            version: None,
            version_info: None,
        }
    }
}

impl AppDefinition {
    /// The container image (`container.docker.image`), for MESOS and DOCKER containers alike.
    pub fn image(&self) -> Option<&str> {
        self.container.as_ref()?.docker.as_ref().map(|d| d.image.as_str())
    }

    /// Whether the app uses container or bridge networking.
    pub fn has_non_host_networking(&self) -> bool {
        self.networks.iter().any(|n| n.mode != NetworkMode::Host)
    }

    /// The host ports each task needs, in order (they become `PORT0`, `PORT1`, …); 0 means any
    /// free port. With host networking these are the port definitions; with container or
    /// bridge networking, the `hostPort` of every port mapping that has one.
    pub fn host_ports(&self) -> Vec<u32> {
        if self.has_non_host_networking() {
            self.container.iter().flat_map(|c| c.port_mappings.iter().flatten()).filter_map(|m| m.host_port).collect()
        } else {
            self.port_definitions.iter().map(|p| p.port).collect()
        }
    }

    /// The checks the agent runs, converted to the agent's check type. Marathon's HTTP, HTTPS
    /// and TCP checks run as MESOS_HTTP, MESOS_HTTPS and MESOS_TCP (next to the task instead of
    /// from the scheduler; same paths, ports, timing and failure counting).
    pub fn task_health_checks(&self) -> Vec<tasks::HealthCheck> {
        self.health_checks.iter().map(AppHealthCheck::to_task_check).collect()
    }

    /// SIGTERM → SIGKILL delay: `taskKillGracePeriodSeconds`, or medos's default.
    pub fn kill_grace_ms(&self) -> u64 {
        self.task_kill_grace_period_seconds.map(|s| s.saturating_mul(1000)).unwrap_or_else(tasks::default_grace_ms)
    }

    /// Marathon's `isUpgrade`: whether going from `self` to `to` needs new tasks, i.e. anything
    /// but `instances`, `version` and `versionInfo` differs (constraints, health checks,
    /// dependencies and accepted roles compare as sets). Apps with different ids never do.
    pub fn needs_restart(&self, to: &AppDefinition) -> bool {
        self.id == to.id && self.comparable() != to.comparable()
    }

    /// Whether the change from `self` to `to` only scales.
    pub fn is_only_scale_change(&self, to: &AppDefinition) -> bool {
        !self.needs_restart(to) && self.instances != to.instances
    }

    fn comparable(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(o) = &mut v {
            for key in ["instances", "version", "versionInfo"] {
                o.remove(key);
            }
            for key in ["constraints", "healthChecks", "dependencies", "acceptedResourceRoles"] {
                if let Some(Value::Array(items)) = o.get_mut(key) {
                    items.sort_by_key(|i| i.to_string());
                    items.dedup();
                }
            }
        }
        v
    }

    /// The JSON Marathon returns for the definition (`GET /v2/apps/{id}` without the status
    /// fields).
    pub fn to_json(&self) -> Value {
        let non_host = self.has_non_host_networking();
        let mut o = Map::new();
        o.insert("id".into(), json!(self.id));
        if let Some(roles) = self.accepted_resource_roles.as_ref().filter(|r| !r.is_empty()) {
            o.insert("acceptedResourceRoles".into(), json!(roles));
        }
        if !self.args.is_empty() {
            o.insert("args".into(), json!(self.args));
        }
        o.insert("backoffFactor".into(), json!(self.backoff_factor));
        o.insert("backoffSeconds".into(), json!(self.backoff_seconds));
        if let Some(cmd) = &self.cmd {
            o.insert("cmd".into(), json!(cmd));
        }
        if !self.constraints.is_empty() {
            o.insert("constraints".into(), json!(self.constraints));
        }
        if let Some(c) = &self.container {
            o.insert("container".into(), c.to_json(non_host));
        }
        o.insert("cpus".into(), json!(self.cpus));
        if !self.dependencies.is_empty() {
            o.insert("dependencies".into(), json!(self.dependencies));
        }
        o.insert("disk".into(), json!(self.disk));
        if !self.env.is_empty() {
            o.insert("env".into(), Value::Object(self.env.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()));
        }
        o.insert("executor".into(), json!(self.executor));
        if let Some(r) = &self.executor_resources {
            o.insert("executorResources".into(), r.clone());
        }
        if !self.fetch.is_empty() {
            o.insert("fetch".into(), Value::Array(self.fetch.iter().map(Artifact::to_json).collect()));
        }
        if !self.health_checks.is_empty() {
            o.insert(
                "healthChecks".into(),
                Value::Array(self.health_checks.iter().map(AppHealthCheck::to_json).collect()),
            );
        }
        if let Some(c) = &self.check {
            o.insert("check".into(), c.clone());
        }
        o.insert("instances".into(), json!(self.instances));
        o.insert("labels".into(), json!(self.labels));
        o.insert("maxLaunchDelaySeconds".into(), json!(self.max_launch_delay_seconds));
        o.insert("mem".into(), json!(self.mem));
        o.insert("gpus".into(), json!(self.gpus));
        o.insert("networks".into(), Value::Array(self.networks.iter().map(Network::to_json).collect()));
        if !non_host {
            o.insert(
                "portDefinitions".into(),
                Value::Array(self.port_definitions.iter().map(PortDefinition::to_json).collect()),
            );
        }
        if !self.readiness_checks.is_empty() {
            o.insert(
                "readinessChecks".into(),
                Value::Array(self.readiness_checks.iter().map(ReadinessCheck::to_json).collect()),
            );
        }
        if let Some(r) = &self.residency {
            o.insert("residency".into(), r.clone());
        }
        if let Some(r) = &self.resource_limits {
            o.insert("resourceLimits".into(), r.clone());
        }
        o.insert("requirePorts".into(), json!(self.require_ports));
        if !self.secrets.is_empty() {
            o.insert(
                "secrets".into(),
                Value::Object(self.secrets.iter().map(|(k, s)| (k.clone(), json!({"source": s.source}))).collect()),
            );
        }
        if let Some(g) = self.task_kill_grace_period_seconds {
            o.insert("taskKillGracePeriodSeconds".into(), json!(g));
        }
        o.insert(
            "upgradeStrategy".into(),
            json!({
                "maximumOverCapacity": self.upgrade_strategy.maximum_over_capacity,
                "minimumHealthCapacity": self.upgrade_strategy.minimum_health_capacity,
            }),
        );
        if let Some(u) = &self.user {
            o.insert("user".into(), json!(u));
        }
        if let Some(v) = &self.version {
            o.insert("version".into(), json!(v));
        }
        if let Some(v) = &self.version_info {
            o.insert("versionInfo".into(), json!(v));
        }
        o.insert("killSelection".into(), json!(self.kill_selection.as_str()));
        o.insert("unreachableStrategy".into(), self.unreachable_strategy.to_json());
        if let Some(t) = self.tty {
            o.insert("tty".into(), json!(t));
        }
        o.insert("role".into(), json!(self.role));
        Value::Object(o)
    }
}

impl Serialize for AppDefinition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for AppDefinition {
    /// Reads the JSON [`AppDefinition::to_json`] writes (the stored form). Types are checked
    /// and deprecated fields translated, but Marathon's validation rules are not applied: use
    /// [`super::validation::parse_app`] for requests.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        super::validation::read_stored_app(&value).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}
