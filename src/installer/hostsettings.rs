//! The hosts and SSH settings the remote steps (preflight, deploy, …) work on, as
//! `genconf/config.yaml` gives them (`master_list`, `agent_list`, `public_agent_list`,
//! `ssh_user`, `ssh_port`, `ssh_key_path`).

use std::path::PathBuf;

/// The hosts and SSH settings the remote commands (preflight, deploy, …) work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    pub masters: Vec<String>,
    pub agents: Vec<String>,
    pub public_agents: Vec<String>,
    pub ssh: SshSettings,
}

/// How to reach the hosts with the system's ssh client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    /// `-i` for ssh; `None`: the user's ssh config and agent decide.
    pub key_path: Option<PathBuf>,
}
