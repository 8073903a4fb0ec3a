//! The master ↔ agent protocol: JSON over the masters' HTTPS port, agent certificates only.
//!
//! The agent always dials the leader: it registers (`POST …/register`, with every task it
//! knows for reconciliation), keeps an event stream open (`GET …/events`, one JSON event per
//! line: launch, kill, ping), heartbeats (`POST …/heartbeat`) and sends status updates
//! (`POST …/status`, answered once the update is committed). A master that is not the leader
//! answers 421 with the leader's URL.

use serde::{Deserialize, Serialize};

use crate::core::{AgentRegistration, Task, TaskState, TaskStatus};

pub const PATH_REGISTER: &str = "/internal/agent/v1/register";
pub const PATH_EVENTS: &str = "/internal/agent/v1/events";
pub const PATH_HEARTBEAT: &str = "/internal/agent/v1/heartbeat";
pub const PATH_STATUS: &str = "/internal/agent/v1/status";

/// A task the agent knows, reported at registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub task_id: String,
    pub state: TaskState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Empty on the first registration: the master assigns an id.
    pub registration: AgentRegistration,
    #[serde(default)]
    pub tasks: Vec<TaskReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub agent_id: String,
    pub heartbeat_interval_ms: u64,
    pub leader: String,
    /// The cluster DNS, for the tasks' `/etc/resolv.conf` (absent when no master serves DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<ClusterDns>,
}

/// Where tasks find the cluster DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDns {
    /// Every master's DNS server, `IP:port`, in the masters' order.
    pub servers: Vec<String>,
    /// The cluster domain (`mesos`).
    pub domain: String,
}

/// Answer of a master that is not the leader (HTTP 421).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotLeader {
    pub leader_api: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub agent_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusRequest {
    pub agent_id: String,
    pub status: TaskStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    /// False for a duplicate or a transition the master does not accept (still acknowledged).
    pub applied: bool,
}

/// Events on the stream from the leader to an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    Launch {
        task: Box<Task>,
    },
    Kill {
        task_id: String,
        grace_ms: u64,
    },
    /// Sent every heartbeat interval so the agent notices a dead stream.
    Ping,
    /// Where tasks find the cluster DNS (sent when a stream opens and whenever it changes;
    /// `None`: no master serves it).
    ClusterDns {
        dns: Option<ClusterDns>,
    },
    /// Every VIP with its ready instances (sent when a stream opens and whenever the table
    /// changes); the agent serves exactly these.
    Vips {
        routes: Vec<crate::core::vips::VipRoute>,
    },
}

/// A fresh agent id in Mesos's form (`<uuid>-S0`). An agent draws its id once, stores it, and
/// registers with it from the first attempt on: a registration retried after a lost answer
/// then names the same agent instead of creating a second one.
pub fn new_agent_id() -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!("{}-{}-{}-{}-{}-S0", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
