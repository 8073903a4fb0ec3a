//! Mesos's read endpoints, in Mesos 1.x's JSON shapes, for the tools that poll them
//! (Mesos-DNS, the DC/OS UI and CLI, monitoring agents, `mesos-ps`-style scripts):
//! `/mesos/master/state`, `/mesos/state-summary`, `/mesos/master/slaves`,
//! `/mesos/master/frameworks`, `/mesos/master/tasks`, `/mesos/metrics/snapshot` and
//! `/mesos/master/redirect` (each also without `master/`, and with `.json` where Mesos has it).
//!
//! Shape decisions, where medos differs from a Mesos master:
//! - **Any master answers** from its replicated state after a read barrier (`?stale` skips it);
//!   Mesos redirects non-leading masters to the leader. `leader`/`leader_info` and
//!   `master/elected` still tell who leads.
//! - **Frameworks are built in.** Tasks carry medos framework names; the Mesos id of a
//!   framework is derived from the cluster id: `marathon` is `<cluster_id>-0000` (the id
//!   Marathon's `/v2/info` reports), `medos-tasks` (`medos task run`) is `<cluster_id>-0001`;
//!   any other name is used as it is ([`framework_id`]). Both built-ins are always listed,
//!   registered since the cluster was created; they have no `pid` (as Mesos writes HTTP
//!   frameworks), no offers and no executors.
//! - **Agents**: the `pid` is `slave(1)@ADDRESS:PORT` with the agent's task address and its API
//!   port; unreachable agents are not in `slaves` and are counted in `unreachable_slaves`
//!   (their tasks are `unreachable_tasks`); deactivated and draining agents are listed with
//!   `active: false`. A public agent carries the attribute `public_ip: "true"` (as DC/OS sets
//!   it) and its resources are reserved for the role `slave_public`, so its tasks have that role.
//! - **Tasks**: `executor_id` is empty (command tasks), `agent_id` repeats `slave_id`, statuses
//!   carry a `container_status` with the agent's address (what Mesos-DNS reads), ports appear
//!   as a `ports` range resource and in `discovery`. Ended tasks are the `completed_tasks` the
//!   cluster still keeps (the newest [`crate::core::state::COMPLETED_TASKS_KEPT`]).
//! - **Metrics** are this master's view of the replicated state, read without a barrier so a
//!   master cut off from its quorum still answers monitoring (`master/elected` is then 0). The
//!   `master/tasks_<ended state>` figures count the ended tasks still kept, not events since
//!   the master started. Extras: `registrar/log/recovered` and `registrar/log/ensemble_size`
//!   (Raft voters), `medos/raft/*` (term, log and snapshot indexes, voters, learners),
//!   `medos/images` and Mesos's `system/*` host figures.
//! - `/mesos/master/redirect` answers 307 with `Location: //LEADER_HOST:PORT/mesos`
//!   (protocol-relative, as Mesos answers), so `LOCATION + "/master/state"` works.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::query::{Params, flag, number};
use super::tasks::ONE_OFF_FRAMEWORK;
use crate::core::{Agent, AgentMode, AgentStatus, PortRange, Resources, Task, TaskState};
use crate::master::Master;

/// The Mesos release whose endpoint shapes these follow (DC/OS 2.1's, with Marathon 1.10).
pub const MESOS_VERSION: &str = "1.10.0";

/// The framework name on tasks of the built-in Marathon (`core::marathon`'s framework id).
pub const MARATHON_FRAMEWORK: &str = "marathon";

/// Default `limit` of `/master/tasks`, as in Mesos.
pub const TASK_LIMIT: u64 = 100;

/// The role of resources on public agents (DC/OS's static reservation).
pub const PUBLIC_ROLE: &str = "slave_public";

/// The Mesos framework id for a task's `framework_id`.
pub fn framework_id(cluster_id: &str, framework: &str) -> String {
    match framework {
        MARATHON_FRAMEWORK => format!("{cluster_id}-0000"),
        ONE_OFF_FRAMEWORK => format!("{cluster_id}-0001"),
        other => other.to_string(),
    }
}

/// The routes, all read-only (merged into the token-protected router).
pub fn routes() -> Router<Arc<Master>> {
    let mut router = Router::new();
    for prefix in ["/mesos", "/mesos/master"] {
        router = router
            .route(&format!("{prefix}/state"), get(state))
            .route(&format!("{prefix}/state.json"), get(state))
            .route(&format!("{prefix}/state-summary"), get(state_summary))
            .route(&format!("{prefix}/slaves"), get(slaves))
            .route(&format!("{prefix}/frameworks"), get(frameworks))
            .route(&format!("{prefix}/tasks"), get(tasks))
            .route(&format!("{prefix}/tasks.json"), get(tasks))
            .route(&format!("{prefix}/metrics/snapshot"), get(metrics))
            .route(&format!("{prefix}/redirect"), get(redirect));
    }
    router
}

// ---------------------------------------------------------------------------------------
// Wire shapes

/// Mesos's summary of resources: the four scalars always, ranges as `"[b-e, b-e]"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MesosResources {
    pub cpus: f64,
    pub gpus: f64,
    pub mem: f64,
    pub disk: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
}

/// `leader_info`: a Mesos `MasterInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterInfoJson {
    pub id: String,
    pub pid: String,
    pub port: u16,
    pub hostname: String,
}

/// `GET /master/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterState {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    pub start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elected_time: Option<f64>,
    pub id: String,
    pub pid: String,
    pub hostname: String,
    pub capabilities: Vec<String>,
    pub activated_slaves: f64,
    pub deactivated_slaves: f64,
    pub unreachable_slaves: f64,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_info: Option<MasterInfoJson>,
    pub flags: BTreeMap<String, String>,
    pub slaves: Vec<Slave>,
    pub recovered_slaves: Vec<Slave>,
    pub frameworks: Vec<Framework>,
    pub completed_frameworks: Vec<Framework>,
    pub orphan_tasks: Vec<MesosTask>,
    pub unregistered_frameworks: Vec<String>,
}

/// An agent as `state` and `slaves` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slave {
    pub id: String,
    pub hostname: String,
    pub port: u16,
    pub attributes: BTreeMap<String, String>,
    pub pid: String,
    pub registered_time: f64,
    pub resources: MesosResources,
    pub used_resources: MesosResources,
    pub offered_resources: MesosResources,
    pub reserved_resources: BTreeMap<String, MesosResources>,
    pub unreserved_resources: MesosResources,
    pub active: bool,
    pub version: String,
    pub capabilities: Vec<String>,
}

/// Task counts by state, as `state-summary` writes them (Mesos's ten).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    #[serde(rename = "TASK_STAGING")]
    pub staging: u64,
    #[serde(rename = "TASK_STARTING")]
    pub starting: u64,
    #[serde(rename = "TASK_RUNNING")]
    pub running: u64,
    #[serde(rename = "TASK_KILLING")]
    pub killing: u64,
    #[serde(rename = "TASK_FINISHED")]
    pub finished: u64,
    #[serde(rename = "TASK_KILLED")]
    pub killed: u64,
    #[serde(rename = "TASK_FAILED")]
    pub failed: u64,
    #[serde(rename = "TASK_LOST")]
    pub lost: u64,
    #[serde(rename = "TASK_ERROR")]
    pub error: u64,
    #[serde(rename = "TASK_UNREACHABLE")]
    pub unreachable: u64,
}

impl TaskCounts {
    fn count(&mut self, state: TaskState) {
        use TaskState::*;
        match state {
            TASK_STAGING => self.staging += 1,
            TASK_STARTING => self.starting += 1,
            TASK_RUNNING => self.running += 1,
            TASK_KILLING => self.killing += 1,
            TASK_FINISHED => self.finished += 1,
            TASK_KILLED => self.killed += 1,
            TASK_FAILED => self.failed += 1,
            TASK_LOST => self.lost += 1,
            TASK_ERROR => self.error += 1,
            TASK_UNREACHABLE => self.unreachable += 1,
            // Mesos's summary leaves these out too.
            TASK_DROPPED | TASK_GONE | TASK_GONE_BY_OPERATOR | TASK_UNKNOWN => {}
        }
    }
}

/// An agent in `state-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaveSummary {
    #[serde(flatten)]
    pub slave: Slave,
    #[serde(flatten)]
    pub counts: TaskCounts,
    pub framework_ids: Vec<String>,
}

/// The fields a framework has in both `state` and `state-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkBase {
    pub id: String,
    pub name: String,
    pub used_resources: MesosResources,
    pub offered_resources: MesosResources,
    pub capabilities: Vec<String>,
    pub hostname: String,
    pub webui_url: String,
    pub active: bool,
    pub connected: bool,
    pub recovered: bool,
}

/// A framework in `state-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkSummary {
    #[serde(flatten)]
    pub framework: FrameworkBase,
    #[serde(flatten)]
    pub counts: TaskCounts,
    pub slave_ids: Vec<String>,
}

/// A framework in `state` and `frameworks`, with its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    #[serde(flatten)]
    pub framework: FrameworkBase,
    pub user: String,
    pub failover_timeout: f64,
    pub checkpoint: bool,
    pub registered_time: f64,
    pub unregistered_time: f64,
    pub resources: MesosResources,
    pub role: String,
    pub roles: Vec<String>,
    pub tasks: Vec<MesosTask>,
    pub unreachable_tasks: Vec<MesosTask>,
    pub completed_tasks: Vec<MesosTask>,
    /// Always empty: built-in frameworks are not offered resources.
    pub offers: Vec<serde_json::Value>,
    /// Always empty: tasks run under the command executor.
    pub executors: Vec<serde_json::Value>,
}

/// `GET /state-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSummary {
    pub hostname: String,
    pub cluster: String,
    pub slaves: Vec<SlaveSummary>,
    pub frameworks: Vec<FrameworkSummary>,
}

/// `GET /master/slaves`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlavesResponse {
    pub slaves: Vec<Slave>,
    pub recovered_slaves: Vec<Slave>,
}

/// `GET /master/frameworks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworksResponse {
    pub frameworks: Vec<Framework>,
    pub completed_frameworks: Vec<Framework>,
    pub unregistered_frameworks: Vec<String>,
}

/// `GET /master/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksResponse {
    pub tasks: Vec<MesosTask>,
}

/// A Mesos `Label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// A task in Mesos's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MesosTask {
    pub id: String,
    pub name: String,
    pub framework_id: String,
    pub executor_id: String,
    pub slave_id: String,
    pub agent_id: String,
    pub state: TaskState,
    pub resources: MesosResources,
    pub role: String,
    pub statuses: Vec<MesosTaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Discovery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
}

/// One status update of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MesosTaskStatus {
    pub state: TaskState,
    /// Seconds since the epoch.
    pub timestamp: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    pub container_status: ContainerStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub container_id: MesosId,
    pub network_infos: Vec<NetworkInfo>,
}

/// Mesos's `{"value": …}` wrapper of ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MesosId {
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub ip_addresses: Vec<IpAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAddress {
    /// `IPv4` or `IPv6`.
    pub protocol: String,
    pub ip_address: String,
}

/// A Mesos `DiscoveryInfo` naming the task's host ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    pub visibility: String,
    pub name: String,
    pub ports: DiscoveryPorts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryPorts {
    pub ports: Vec<DiscoveryPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryPort {
    pub number: u16,
    pub protocol: String,
}

/// A Mesos `ContainerInfo` for tasks that run in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub mesos: MesosContainer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MesosContainer {
    pub image: ImageInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub docker: DockerImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerImage {
    pub name: String,
}

/// `GET /metrics/snapshot`: a flat object of numbers with Mesos's metric names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    #[serde(rename = "master/elected")]
    pub elected: f64,
    #[serde(rename = "master/uptime_secs")]
    pub uptime_secs: f64,
    #[serde(rename = "master/slaves_active")]
    pub slaves_active: f64,
    #[serde(rename = "master/slaves_inactive")]
    pub slaves_inactive: f64,
    #[serde(rename = "master/slaves_connected")]
    pub slaves_connected: f64,
    #[serde(rename = "master/slaves_disconnected")]
    pub slaves_disconnected: f64,
    #[serde(rename = "master/slaves_unreachable")]
    pub slaves_unreachable: f64,
    #[serde(rename = "master/frameworks_active")]
    pub frameworks_active: f64,
    #[serde(rename = "master/frameworks_inactive")]
    pub frameworks_inactive: f64,
    #[serde(rename = "master/frameworks_connected")]
    pub frameworks_connected: f64,
    #[serde(rename = "master/frameworks_disconnected")]
    pub frameworks_disconnected: f64,
    #[serde(rename = "master/outstanding_offers")]
    pub outstanding_offers: f64,
    #[serde(rename = "master/tasks_staging")]
    pub tasks_staging: f64,
    #[serde(rename = "master/tasks_starting")]
    pub tasks_starting: f64,
    #[serde(rename = "master/tasks_running")]
    pub tasks_running: f64,
    #[serde(rename = "master/tasks_killing")]
    pub tasks_killing: f64,
    #[serde(rename = "master/tasks_unreachable")]
    pub tasks_unreachable: f64,
    #[serde(rename = "master/tasks_finished")]
    pub tasks_finished: f64,
    #[serde(rename = "master/tasks_failed")]
    pub tasks_failed: f64,
    #[serde(rename = "master/tasks_killed")]
    pub tasks_killed: f64,
    #[serde(rename = "master/tasks_lost")]
    pub tasks_lost: f64,
    #[serde(rename = "master/tasks_error")]
    pub tasks_error: f64,
    #[serde(rename = "master/tasks_dropped")]
    pub tasks_dropped: f64,
    #[serde(rename = "master/tasks_gone")]
    pub tasks_gone: f64,
    #[serde(rename = "master/tasks_gone_by_operator")]
    pub tasks_gone_by_operator: f64,
    #[serde(rename = "master/cpus_total")]
    pub cpus_total: f64,
    #[serde(rename = "master/cpus_used")]
    pub cpus_used: f64,
    #[serde(rename = "master/cpus_percent")]
    pub cpus_percent: f64,
    #[serde(rename = "master/mem_total")]
    pub mem_total: f64,
    #[serde(rename = "master/mem_used")]
    pub mem_used: f64,
    #[serde(rename = "master/mem_percent")]
    pub mem_percent: f64,
    #[serde(rename = "master/disk_total")]
    pub disk_total: f64,
    #[serde(rename = "master/disk_used")]
    pub disk_used: f64,
    #[serde(rename = "master/disk_percent")]
    pub disk_percent: f64,
    #[serde(rename = "master/gpus_total")]
    pub gpus_total: f64,
    #[serde(rename = "master/gpus_used")]
    pub gpus_used: f64,
    #[serde(rename = "master/gpus_percent")]
    pub gpus_percent: f64,
    /// 1 once this master holds the cluster's state (its identity is applied).
    #[serde(rename = "registrar/log/recovered")]
    pub registrar_recovered: f64,
    /// Raft voters.
    #[serde(rename = "registrar/log/ensemble_size")]
    pub registrar_ensemble_size: f64,
    #[serde(rename = "medos/raft/term")]
    pub raft_term: f64,
    #[serde(rename = "medos/raft/last_log_index")]
    pub raft_last_log_index: f64,
    #[serde(rename = "medos/raft/last_applied")]
    pub raft_last_applied: f64,
    #[serde(rename = "medos/raft/snapshot_index")]
    pub raft_snapshot_index: f64,
    #[serde(rename = "medos/raft/voters")]
    pub raft_voters: f64,
    #[serde(rename = "medos/raft/learners")]
    pub raft_learners: f64,
    #[serde(rename = "medos/images")]
    pub images: f64,
    #[serde(flatten)]
    pub system: SystemMetrics,
}

/// Mesos's `system/*` metrics of the master's host (absent where `/proc` cannot be read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemMetrics {
    #[serde(rename = "system/cpus_total", default, skip_serializing_if = "Option::is_none")]
    pub cpus_total: Option<f64>,
    #[serde(rename = "system/load_1min", default, skip_serializing_if = "Option::is_none")]
    pub load_1min: Option<f64>,
    #[serde(rename = "system/load_5min", default, skip_serializing_if = "Option::is_none")]
    pub load_5min: Option<f64>,
    #[serde(rename = "system/load_15min", default, skip_serializing_if = "Option::is_none")]
    pub load_15min: Option<f64>,
    #[serde(rename = "system/mem_total_bytes", default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<f64>,
    #[serde(rename = "system/mem_free_bytes", default, skip_serializing_if = "Option::is_none")]
    pub mem_free_bytes: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// Building the shapes from the state

/// `host` and `port` of an `https://host:port` URL.
fn host_port(url: &str, default_port: u16) -> (String, u16) {
    match reqwest::Url::parse(url) {
        Ok(u) => (u.host_str().unwrap_or_default().to_string(), u.port_or_known_default().unwrap_or(default_port)),
        Err(_) => (url.to_string(), default_port),
    }
}

/// Mesos's range notation: `[31000-31009, 31020-31020]`.
fn ranges_text(ranges: &[PortRange]) -> String {
    let parts: Vec<String> = ranges.iter().map(|r| format!("{}-{}", r.begin, r.end)).collect();
    format!("[{}]", parts.join(", "))
}

/// Sorted, merged ranges covering `ports`.
fn port_ranges(ports: impl IntoIterator<Item = u16>) -> Vec<PortRange> {
    let ports: BTreeSet<u16> = ports.into_iter().collect();
    let mut out: Vec<PortRange> = Vec::new();
    for port in ports {
        match out.last_mut() {
            Some(last) if u32::from(last.end) + 1 == u32::from(port) => last.end = port,
            _ => out.push(PortRange { begin: port, end: port }),
        }
    }
    out
}

fn mesos_resources(r: &Resources, ports: &[PortRange]) -> MesosResources {
    MesosResources {
        cpus: r.cpus,
        gpus: 0.0,
        mem: r.mem,
        disk: r.disk,
        ports: (!ports.is_empty()).then(|| ranges_text(ports)),
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A duration as Mesos prints its flags (`200ms`, `1.5secs`).
fn mesos_duration(ms: u64) -> String {
    if ms < 1000 { format!("{ms}ms") } else { format!("{}secs", secs(ms)) }
}

fn role_of(agent: Option<&Agent>) -> &'static str {
    if agent.is_some_and(|a| a.public) { PUBLIC_ROLE } else { "*" }
}

/// A built-in (or otherwise named) framework and what Mesos would know of it.
struct FrameworkDef {
    /// The name tasks carry in `framework_id`.
    key: String,
    name: String,
    webui_url: String,
    failover_timeout: f64,
    capabilities: Vec<String>,
}

/// Everything the endpoints derive from one consistent look at the state.
struct View<'a> {
    state: &'a crate::core::State,
    cluster_id: String,
    hostname: String,
    advertise: String,
    created_secs: f64,
}

impl<'a> View<'a> {
    fn new(master: &Master, state: &'a crate::core::State) -> Self {
        let (hostname, _) = host_port(&master.advertise, 443);
        View {
            state,
            cluster_id: state.cluster_id().unwrap_or_default().to_string(),
            hostname,
            advertise: master.advertise.trim_end_matches('/').to_string(),
            created_secs: state.identity.as_ref().map_or(0.0, |i| secs(i.created_at_ms)),
        }
    }

    fn framework_id(&self, key: &str) -> String {
        if self.cluster_id.is_empty() { key.to_string() } else { framework_id(&self.cluster_id, key) }
    }

    /// The built-in frameworks, then any other framework name tasks carry.
    fn framework_defs(&self) -> Vec<FrameworkDef> {
        let mut defs = vec![
            FrameworkDef {
                key: MARATHON_FRAMEWORK.into(),
                name: "marathon".into(),
                webui_url: format!("{}/marathon", self.advertise),
                failover_timeout: 604_800.0,
                capabilities: vec!["PARTITION_AWARE".into(), "TASK_KILLING_STATE".into()],
            },
            FrameworkDef {
                key: ONE_OFF_FRAMEWORK.into(),
                name: ONE_OFF_FRAMEWORK.into(),
                webui_url: String::new(),
                failover_timeout: 0.0,
                capabilities: vec!["TASK_KILLING_STATE".into()],
            },
        ];
        let others: BTreeSet<&str> = self
            .state
            .tasks
            .values()
            .map(|t| t.framework_id.as_str())
            .filter(|f| *f != MARATHON_FRAMEWORK && *f != ONE_OFF_FRAMEWORK)
            .collect();
        defs.extend(others.into_iter().map(|key| FrameworkDef {
            key: key.into(),
            name: key.into(),
            webui_url: String::new(),
            failover_timeout: 0.0,
            capabilities: vec![],
        }));
        defs
    }

    /// Agents Mesos would list as registered (not unreachable).
    fn reachable_agents(&self) -> impl Iterator<Item = &'a Agent> {
        self.state.agents.values().filter(|a| a.status == AgentStatus::Active)
    }

    fn agent_tasks(&self, agent_id: &str) -> impl Iterator<Item = &'a Task> {
        self.state.tasks.values().filter(move |t| t.agent_id == agent_id)
    }

    fn task(&self, t: &Task) -> MesosTask {
        let agent = self.state.agents.get(&t.agent_id);
        let address = agent.map(|a| a.address.clone()).unwrap_or_default();
        let protocol = if address.contains(':') { "IPv6" } else { "IPv4" };
        let container_status = ContainerStatus {
            container_id: MesosId { value: t.id.clone() },
            network_infos: if address.is_empty() {
                vec![]
            } else {
                vec![NetworkInfo {
                    ip_addresses: vec![IpAddress { protocol: protocol.into(), ip_address: address.clone() }],
                }]
            },
        };
        let statuses = t
            .statuses
            .iter()
            .map(|s| MesosTaskStatus {
                state: s.state,
                timestamp: secs(s.timestamp_ms),
                healthy: s.healthy,
                container_status: container_status.clone(),
            })
            .collect();
        let discovery = (!t.ports.is_empty()).then(|| Discovery {
            visibility: "FRAMEWORK".into(),
            name: t.spec.name.clone(),
            ports: DiscoveryPorts {
                ports: t.ports.iter().map(|p| DiscoveryPort { number: *p, protocol: "tcp".into() }).collect(),
            },
        });
        let container = t.spec.image.as_ref().map(|image| ContainerInfo {
            kind: "MESOS".into(),
            mesos: MesosContainer {
                image: ImageInfo { kind: "DOCKER".into(), docker: DockerImage { name: image.clone() } },
            },
        });
        MesosTask {
            id: t.id.clone(),
            name: t.spec.name.clone(),
            framework_id: self.framework_id(&t.framework_id),
            executor_id: String::new(),
            slave_id: t.agent_id.clone(),
            agent_id: t.agent_id.clone(),
            state: t.state,
            resources: mesos_resources(&t.spec.resources, &port_ranges(t.ports.iter().copied())),
            role: role_of(agent).into(),
            statuses,
            user: t.spec.user.clone(),
            labels: t.spec.labels.iter().map(|(k, v)| Label { key: k.clone(), value: v.clone() }).collect(),
            discovery,
            container,
        }
    }

    fn slave(&self, agent: &Agent) -> Slave {
        let (_, port) = host_port(&agent.api, 5051);
        let mut used = Resources::default();
        let mut used_ports = Vec::new();
        for t in self.agent_tasks(&agent.id).filter(|t| t.state.holds_resources()) {
            used.add(&t.spec.resources);
            used_ports.extend(t.ports.iter().copied());
        }
        let total = mesos_resources(&agent.total, &agent.total.ports);
        let mut reserved = BTreeMap::new();
        let unreserved = if agent.public {
            reserved.insert(PUBLIC_ROLE.to_string(), total.clone());
            MesosResources::default()
        } else {
            total.clone()
        };
        let mut attributes = agent.attributes.clone();
        if agent.public {
            attributes.entry("public_ip".into()).or_insert_with(|| "true".into());
        }
        Slave {
            id: agent.id.clone(),
            hostname: agent.hostname.clone(),
            port,
            attributes,
            pid: format!("slave(1)@{}:{port}", agent.address),
            registered_time: secs(agent.registered_at_ms),
            resources: total,
            used_resources: mesos_resources(&used, &port_ranges(used_ports)),
            offered_resources: MesosResources::default(),
            reserved_resources: reserved,
            unreserved_resources: unreserved,
            active: agent.mode == AgentMode::Normal,
            version: agent.version.clone(),
            capabilities: vec![],
        }
    }

    fn slaves(&self, only: Option<&str>) -> Vec<Slave> {
        self.reachable_agents().filter(|a| only.is_none_or(|id| a.id == id)).map(|a| self.slave(a)).collect()
    }

    fn framework_tasks(&self, key: &str) -> impl Iterator<Item = &'a Task> {
        self.state.tasks.values().filter(move |t| t.framework_id == key)
    }

    fn framework_base(&self, def: &FrameworkDef) -> FrameworkBase {
        let mut used = Resources::default();
        let mut ports = Vec::new();
        for t in self
            .framework_tasks(&def.key)
            .filter(|t| t.state.holds_resources() && t.state != TaskState::TASK_UNREACHABLE)
        {
            used.add(&t.spec.resources);
            ports.extend(t.ports.iter().copied());
        }
        FrameworkBase {
            id: self.framework_id(&def.key),
            name: def.name.clone(),
            used_resources: mesos_resources(&used, &port_ranges(ports)),
            offered_resources: MesosResources::default(),
            capabilities: def.capabilities.clone(),
            hostname: self.hostname.clone(),
            webui_url: def.webui_url.clone(),
            active: true,
            connected: true,
            recovered: false,
        }
    }

    fn framework(&self, def: &FrameworkDef) -> Framework {
        let base = self.framework_base(def);
        let (mut tasks, mut unreachable, mut completed) = (Vec::new(), Vec::new(), Vec::new());
        for t in self.framework_tasks(&def.key) {
            let list = if t.state.is_terminal() {
                &mut completed
            } else if t.state == TaskState::TASK_UNREACHABLE {
                &mut unreachable
            } else {
                &mut tasks
            };
            list.push(self.task(t));
        }
        Framework {
            resources: base.used_resources.clone(),
            framework: base,
            user: "root".into(),
            failover_timeout: def.failover_timeout,
            checkpoint: true,
            registered_time: self.created_secs,
            unregistered_time: 0.0,
            role: "*".into(),
            roles: vec!["*".into(), PUBLIC_ROLE.into()],
            tasks,
            unreachable_tasks: unreachable,
            completed_tasks: completed,
            offers: vec![],
            executors: vec![],
        }
    }

    fn frameworks(&self, only: Option<&str>) -> Vec<Framework> {
        self.framework_defs()
            .iter()
            .filter(|d| only.is_none_or(|id| self.framework_id(&d.key) == id))
            .map(|d| self.framework(d))
            .collect()
    }
}

/// Who this master is, and who leads, in Mesos's terms.
struct Masters {
    id: String,
    pid: String,
    hostname: String,
    port: u16,
    leader: Option<MasterInfoJson>,
}

fn masters(master: &Master) -> Masters {
    let (hostname, port) = host_port(&master.advertise, 443);
    let leader = master.leader().map(|(id, node)| {
        let (hostname, port) = host_port(&node.api, 443);
        MasterInfoJson { id: id.to_string(), pid: format!("master@{hostname}:{port}"), port, hostname }
    });
    Masters { id: master.id.to_string(), pid: format!("master@{hostname}:{port}"), hostname, port, leader }
}

fn master_state(master: &Master, state: &crate::core::State) -> MasterState {
    let view = View::new(master, state);
    let me = masters(master);
    let reachable: Vec<&Agent> = view.reachable_agents().collect();
    let active = reachable.iter().filter(|a| a.mode == AgentMode::Normal).count();
    let unreachable = state.agents.values().filter(|a| a.status == AgentStatus::Unreachable).count();
    let voters = master.members().iter().filter(|m| m.voter).count();
    let mut flags = BTreeMap::new();
    flags.insert("hostname".to_string(), me.hostname.clone());
    flags.insert("port".to_string(), me.port.to_string());
    flags.insert("work_dir".to_string(), master.config.data_dir.display().to_string());
    flags.insert("cluster".to_string(), view.cluster_id.clone());
    flags.insert("registry".to_string(), "replicated_log".to_string());
    flags.insert("quorum".to_string(), (voters / 2 + 1).to_string());
    flags.insert("agent_ping_timeout".to_string(), mesos_duration(master.config.agents.unreachable_after_ms));
    flags.insert("max_agent_ping_timeouts".to_string(), "1".to_string());
    flags.insert("authenticate_http_readonly".to_string(), "true".to_string());
    let start_ms = crate::clock::now_ms().saturating_sub(master.started.elapsed().as_millis() as u64);
    MasterState {
        version: MESOS_VERSION.into(),
        git_sha: option_env!("MEDOS_COMMIT").map(String::from),
        build_date: option_env!("MEDOS_BUILD_DATE").map(String::from),
        start_time: secs(start_ms),
        elected_time: None,
        id: me.id,
        pid: me.pid,
        hostname: me.hostname,
        capabilities: vec![],
        activated_slaves: active as f64,
        deactivated_slaves: (reachable.len() - active) as f64,
        unreachable_slaves: unreachable as f64,
        cluster: view.cluster_id.clone(),
        leader: me.leader.as_ref().map(|l| l.pid.clone()),
        leader_info: me.leader,
        flags,
        slaves: view.slaves(None),
        recovered_slaves: vec![],
        frameworks: view.frameworks(None),
        completed_frameworks: vec![],
        orphan_tasks: vec![],
        unregistered_frameworks: vec![],
    }
}

fn state_summary_of(master: &Master, state: &crate::core::State) -> StateSummary {
    let view = View::new(master, state);
    let defs = view.framework_defs();
    let slaves = view
        .reachable_agents()
        .map(|agent| {
            let mut counts = TaskCounts::default();
            let mut framework_ids = BTreeSet::new();
            for t in view.agent_tasks(&agent.id) {
                counts.count(t.state);
                framework_ids.insert(view.framework_id(&t.framework_id));
            }
            SlaveSummary { slave: view.slave(agent), counts, framework_ids: framework_ids.into_iter().collect() }
        })
        .collect();
    let frameworks = defs
        .iter()
        .map(|def| {
            let mut counts = TaskCounts::default();
            let mut slave_ids = BTreeSet::new();
            for t in view.framework_tasks(&def.key) {
                counts.count(t.state);
                slave_ids.insert(t.agent_id.clone());
            }
            FrameworkSummary { framework: view.framework_base(def), counts, slave_ids: slave_ids.into_iter().collect() }
        })
        .collect();
    StateSummary { hostname: view.hostname.clone(), cluster: view.cluster_id.clone(), slaves, frameworks }
}

/// Tasks as `/master/tasks` lists them: filtered, ordered by launch time, then paged.
fn list_tasks(master: &Master, state: &crate::core::State, q: &TaskQuery) -> TasksResponse {
    let view = View::new(master, state);
    let mut tasks: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| q.framework_id.as_deref().is_none_or(|f| view.framework_id(&t.framework_id) == f))
        .filter(|t| q.task_id.as_deref().is_none_or(|id| t.id == id))
        .collect();
    tasks.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    if !q.ascending {
        tasks.reverse();
    }
    let tasks = tasks.into_iter().skip(q.offset).take(q.limit).map(|t| view.task(t)).collect();
    TasksResponse { tasks }
}

fn percent(used: f64, total: f64) -> f64 {
    if total > 0.0 { used / total } else { 0.0 }
}

fn metrics_of(master: &Master, state: &crate::core::State) -> MetricsSnapshot {
    let view = View::new(master, state);
    let raft = master.raft.metrics().borrow().clone();
    let members = master.members();
    let reachable: Vec<&Agent> = view.reachable_agents().collect();
    let active = reachable.iter().filter(|a| a.mode == AgentMode::Normal).count() as f64;
    let mut total = Resources::default();
    let mut used = Resources::default();
    for agent in &reachable {
        total.add(&agent.total);
        for t in view.agent_tasks(&agent.id).filter(|t| t.state.holds_resources()) {
            used.add(&t.spec.resources);
        }
    }
    let mut by_state: BTreeMap<TaskState, f64> = BTreeMap::new();
    for t in state.tasks.values() {
        *by_state.entry(t.state).or_default() += 1.0;
    }
    let n = |s: TaskState| by_state.get(&s).copied().unwrap_or(0.0);
    let frameworks = view.framework_defs().len() as f64;
    use TaskState::*;
    MetricsSnapshot {
        elected: if master.is_leader() { 1.0 } else { 0.0 },
        uptime_secs: master.started.elapsed().as_secs_f64(),
        slaves_active: active,
        slaves_inactive: reachable.len() as f64 - active,
        slaves_connected: reachable.len() as f64,
        slaves_disconnected: 0.0,
        slaves_unreachable: state.agents.values().filter(|a| a.status == AgentStatus::Unreachable).count() as f64,
        frameworks_active: frameworks,
        frameworks_inactive: 0.0,
        frameworks_connected: frameworks,
        frameworks_disconnected: 0.0,
        outstanding_offers: 0.0,
        tasks_staging: n(TASK_STAGING),
        tasks_starting: n(TASK_STARTING),
        tasks_running: n(TASK_RUNNING),
        tasks_killing: n(TASK_KILLING),
        tasks_unreachable: n(TASK_UNREACHABLE),
        tasks_finished: n(TASK_FINISHED),
        tasks_failed: n(TASK_FAILED),
        tasks_killed: n(TASK_KILLED),
        tasks_lost: n(TASK_LOST),
        tasks_error: n(TASK_ERROR),
        tasks_dropped: n(TASK_DROPPED),
        tasks_gone: n(TASK_GONE),
        tasks_gone_by_operator: n(TASK_GONE_BY_OPERATOR),
        cpus_total: total.cpus,
        cpus_used: used.cpus,
        cpus_percent: percent(used.cpus, total.cpus),
        mem_total: total.mem,
        mem_used: used.mem,
        mem_percent: percent(used.mem, total.mem),
        disk_total: total.disk,
        disk_used: used.disk,
        disk_percent: percent(used.disk, total.disk),
        gpus_total: 0.0,
        gpus_used: 0.0,
        gpus_percent: 0.0,
        registrar_recovered: if state.identity.is_some() { 1.0 } else { 0.0 },
        registrar_ensemble_size: members.iter().filter(|m| m.voter).count() as f64,
        raft_term: raft.current_term as f64,
        raft_last_log_index: raft.last_log_index.unwrap_or(0) as f64,
        raft_last_applied: raft.last_applied.map_or(0, |l| l.index) as f64,
        raft_snapshot_index: raft.snapshot.map_or(0, |l| l.index) as f64,
        raft_voters: members.iter().filter(|m| m.voter).count() as f64,
        raft_learners: members.iter().filter(|m| !m.voter).count() as f64,
        images: state.images.len() as f64,
        system: system_metrics(),
    }
}

/// `system/*` from `/proc` (Linux), as Mesos reports them.
fn system_metrics() -> SystemMetrics {
    let mut m = SystemMetrics {
        cpus_total: std::thread::available_parallelism().ok().map(|n| n.get() as f64),
        ..Default::default()
    };
    if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
        let loads: Vec<f64> = text.split_whitespace().take(3).filter_map(|v| v.parse().ok()).collect();
        if let [one, five, fifteen] = loads[..] {
            (m.load_1min, m.load_5min, m.load_15min) = (Some(one), Some(five), Some(fifteen));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let kib = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
                .map(|v| v * 1024.0)
        };
        m.mem_total_bytes = kib("MemTotal:");
        m.mem_free_bytes = kib("MemAvailable:").or_else(|| kib("MemFree:"));
    }
    m
}

// ---------------------------------------------------------------------------------------
// Handlers

type QueryResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

/// Waits for a linearizable view unless `?stale`.
async fn barrier(master: &Master, params: &Params) -> Result<(), ApiError> {
    if !flag(params, "stale")? {
        master.read_barrier().await?;
    }
    Ok(())
}

/// `GET /mesos/master/state` (also `/mesos/state`, `.json`).
pub async fn state(State(master): State<Arc<Master>>, query: QueryResult) -> Result<Json<MasterState>, ApiError> {
    let Query(params) = query?;
    barrier(&master, &params).await?;
    let state = master.state.read().expect("state lock");
    Ok(Json(master_state(&master, &state)))
}

/// `GET /mesos/state-summary`.
pub async fn state_summary(
    State(master): State<Arc<Master>>,
    query: QueryResult,
) -> Result<Json<StateSummary>, ApiError> {
    let Query(params) = query?;
    barrier(&master, &params).await?;
    let state = master.state.read().expect("state lock");
    Ok(Json(state_summary_of(&master, &state)))
}

/// `GET /mesos/master/slaves[?slave_id=ID]`.
pub async fn slaves(State(master): State<Arc<Master>>, query: QueryResult) -> Result<Json<SlavesResponse>, ApiError> {
    let Query(params) = query?;
    barrier(&master, &params).await?;
    let state = master.state.read().expect("state lock");
    let view = View::new(&master, &state);
    Ok(Json(SlavesResponse {
        slaves: view.slaves(params.get("slave_id").map(String::as_str)),
        recovered_slaves: vec![],
    }))
}

/// `GET /mesos/master/frameworks[?framework_id=ID]`.
pub async fn frameworks(
    State(master): State<Arc<Master>>,
    query: QueryResult,
) -> Result<Json<FrameworksResponse>, ApiError> {
    let Query(params) = query?;
    barrier(&master, &params).await?;
    let state = master.state.read().expect("state lock");
    let view = View::new(&master, &state);
    Ok(Json(FrameworksResponse {
        frameworks: view.frameworks(params.get("framework_id").map(String::as_str)),
        completed_frameworks: vec![],
        unregistered_frameworks: vec![],
    }))
}

/// The query of `/master/tasks`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskQuery {
    limit: usize,
    offset: usize,
    ascending: bool,
    framework_id: Option<String>,
    task_id: Option<String>,
}

impl TaskQuery {
    fn parse(params: &Params) -> Result<Self, ApiError> {
        let size = |name: &str, default: u64| -> Result<usize, ApiError> {
            Ok(usize::try_from(number(params, name)?.unwrap_or(default)).unwrap_or(usize::MAX))
        };
        Ok(TaskQuery {
            limit: size("limit", TASK_LIMIT)?,
            offset: size("offset", 0)?,
            // As in Mesos: anything but `asc` is descending.
            ascending: params.get("order").is_some_and(|o| o == "asc"),
            framework_id: params.get("framework_id").cloned(),
            task_id: params.get("task_id").cloned(),
        })
    }
}

/// `GET /mesos/master/tasks[?limit=100&offset=0&order=asc|des&framework_id=ID&task_id=ID]`:
/// active, unreachable and completed tasks, newest launch first unless `order=asc`.
pub async fn tasks(State(master): State<Arc<Master>>, query: QueryResult) -> Result<Json<TasksResponse>, ApiError> {
    let Query(params) = query?;
    let q = TaskQuery::parse(&params)?;
    barrier(&master, &params).await?;
    let state = master.state.read().expect("state lock");
    Ok(Json(list_tasks(&master, &state, &q)))
}

/// `GET /mesos/metrics/snapshot` (also `/mesos/master/metrics/snapshot`): this master's view,
/// without a read barrier.
pub async fn metrics(State(master): State<Arc<Master>>) -> Json<MetricsSnapshot> {
    let state = master.state.read().expect("state lock");
    Json(metrics_of(&master, &state))
}

/// `GET /mesos/master/redirect`: 307 to the leading master's Mesos endpoints.
pub async fn redirect(State(master): State<Arc<Master>>) -> Response {
    match master.leader() {
        Some((_, node)) => {
            let (host, port) = host_port(&node.api, 443);
            (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, format!("//{host}:{port}/mesos"))]).into_response()
        }
        None => ApiError::Unavailable("no leader elected".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_written_as_mesos_ranges() {
        assert_eq!(ranges_text(&port_ranges([31002, 31000, 31001, 31005])), "[31000-31002, 31005-31005]");
        assert_eq!(ranges_text(&port_ranges([65535])), "[65535-65535]");
        assert!(port_ranges([]).is_empty());
        let r = Resources { cpus: 1.5, mem: 64.0, disk: 0.0, ports: vec![] };
        let json = serde_json::to_value(mesos_resources(&r, &[])).unwrap();
        assert_eq!(json, serde_json::json!({"cpus": 1.5, "gpus": 0.0, "mem": 64.0, "disk": 0.0}));
    }

    #[test]
    fn framework_ids_and_durations() {
        assert_eq!(framework_id("c1", "marathon"), "c1-0000");
        assert_eq!(framework_id("c1", ONE_OFF_FRAMEWORK), "c1-0001");
        assert_eq!(framework_id("c1", "other"), "other");
        assert_eq!(mesos_duration(200), "200ms");
        assert_eq!(mesos_duration(1500), "1.5secs");
        assert_eq!(mesos_duration(15_000), "15secs");
        assert_eq!(host_port("https://10.0.0.1:7443", 443), ("10.0.0.1".into(), 7443));
        assert_eq!(host_port("https://m1.example", 443), ("m1.example".into(), 443));
    }

    #[test]
    fn task_queries_follow_mesos() {
        let params =
            |pairs: &[(&str, &str)]| -> Params { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let q = TaskQuery::parse(&params(&[])).unwrap();
        assert_eq!((q.limit, q.offset, q.ascending), (100, 0, false));
        let q = TaskQuery::parse(&params(&[("limit", "5"), ("offset", "2"), ("order", "asc")])).unwrap();
        assert_eq!((q.limit, q.offset, q.ascending), (5, 2, true));
        assert!(!TaskQuery::parse(&params(&[("order", "whatever")])).unwrap().ascending);
        let err = TaskQuery::parse(&params(&[("limit", "-1")])).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn metrics_serialise_flat_with_mesos_names() {
        let mut counts = TaskCounts::default();
        counts.count(TaskState::TASK_RUNNING);
        counts.count(TaskState::TASK_GONE);
        let json = serde_json::to_value(counts).unwrap();
        assert_eq!(json["TASK_RUNNING"], 1);
        assert_eq!(json.as_object().unwrap().len(), 10);
        let system = serde_json::to_value(SystemMetrics { load_1min: Some(0.5), ..Default::default() }).unwrap();
        assert_eq!(system, serde_json::json!({"system/load_1min": 0.5}));
    }
}
