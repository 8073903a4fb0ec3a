//! Agents (Mesos "slaves"): the worker hosts that run tasks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resources::Resources;

/// What the masters believe about an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    /// Registered and heartbeating.
    Active,
    /// Missed its heartbeats; its tasks are TASK_UNREACHABLE until it returns.
    Unreachable,
}

/// What the operator asked of an agent (DC/OS maintenance modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentMode {
    /// Accepts new tasks.
    #[default]
    Normal,
    /// Accepts no new tasks; running tasks are left alone.
    Deactivated,
    /// Accepts no new tasks and its tasks are being killed.
    Draining,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Mesos-style id, e.g. `4f0f…-S0`; kept across agent restarts.
    pub id: String,
    pub hostname: String,
    /// IP address tasks on this agent are reached at.
    pub address: String,
    /// The agent's own HTTPS API (sandbox files, logs, exec).
    pub api: String,
    pub total: Resources,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// A public agent (Mesos role `slave_public`).
    #[serde(default)]
    pub public: bool,
    pub status: AgentStatus,
    #[serde(default)]
    pub mode: AgentMode,
    pub registered_at_ms: u64,
    pub status_changed_at_ms: u64,
    #[serde(default)]
    pub version: String,
}

impl Agent {
    /// An active agent for tests of the pure core: 4 cpus and 4 GiB, reached at `address`.
    #[cfg(test)]
    pub(crate) fn for_test(id: &str, address: &str, status: AgentStatus) -> Self {
        Agent {
            id: id.into(),
            hostname: format!("host-{id}"),
            address: address.into(),
            api: format!("https://{address}:5051"),
            total: Resources { cpus: 4.0, mem: 4096.0, disk: 0.0, ports: vec![] },
            attributes: BTreeMap::new(),
            public: false,
            status,
            mode: AgentMode::Normal,
            registered_at_ms: 1,
            status_changed_at_ms: 1,
            version: String::new(),
        }
    }

    /// Whether new tasks may be placed here.
    pub fn accepts_tasks(&self) -> bool {
        self.status == AgentStatus::Active && self.mode == AgentMode::Normal
    }
}

/// What an agent says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRegistration {
    pub agent_id: String,
    pub hostname: String,
    pub address: String,
    pub api: String,
    pub total: Resources,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub version: String,
}
