//! Commands proposed through Raft and the responses their application produces.

use serde::{Deserialize, Serialize};

use super::agents::{AgentMode, AgentRegistration};
use super::tasks::{Task, TaskStatus};
use super::users::User;

/// One change to the cluster state. Every field that depends on time, randomness or
/// configuration was decided by the proposer, so applying a command is deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Sets the cluster identity once; later `InitCluster` commands are ignored.
    InitCluster {
        cluster_id: String,
        created_at_ms: u64,
        /// Base64 HMAC key that signs API tokens on every master.
        token_secret: String,
        /// The first administrator, if the operator configured one.
        admin: Option<User>,
    },
    /// Writes `key`. With `cas = Some(0)` the key must not exist; with `cas = Some(r)` its
    /// `mod_revision` must be `r`.
    KvPut {
        key: String,
        #[serde(with = "super::base64_bytes")]
        value: Vec<u8>,
        cas: Option<u64>,
    },
    /// Deletes `key` (or every key under it with `recurse`), optionally compare-and-swap.
    KvDelete { key: String, cas: Option<u64>, recurse: bool },
    /// Creates or replaces a user (the password hash was computed by the proposer).
    UserPut { user: User },
    /// Removes a user.
    UserDelete { uid: String },
    /// An agent registers or re-registers (same id) with what it has.
    AgentRegister { registration: AgentRegistration, at_ms: u64 },
    /// The leader saw no heartbeat from the agent for too long.
    AgentUnreachable { agent_id: String, at_ms: u64 },
    /// The operator changed an agent's maintenance mode.
    AgentSetMode { agent_id: String, mode: AgentMode, at_ms: u64 },
    /// A placed task (state TASK_STAGING, agent and ports chosen by the proposer).
    TaskLaunch { task: Box<Task> },
    /// Placed tasks launched together (a framework's accepted offers of one round); each is
    /// checked as `TaskLaunch` checks one, and refused ones do not stop the others.
    TaskLaunchBatch { tasks: Vec<Task> },
    /// A status update from an agent (or from the leader, for lost agents).
    TaskStatusUpdate { status: TaskStatus },
    /// Someone asked for a task to be killed.
    TaskKill { task_id: String, grace_ms: u64, at_ms: u64 },
    /// Where master `name` answers cluster DNS (`IP:port`), or that it does not (`None`).
    /// Each master records its own once it runs, so agents can point tasks at every master.
    MasterDns { name: String, addr: Option<String> },
    /// The range VIPs are allocated from (the leader's configuration, `127.x.y.z/n`); VIPs
    /// outside it move into it.
    VipRange { range: String },
    /// An image whose blobs every master holds; its names move to it from other images.
    ImageAdd { image: Box<super::images::ImageRecord> },
    /// Forgets an image (by name or digest); masters later delete blobs no image uses.
    ImageRemove { reference: String },
    /// A change to Marathon apps (and groups), carried out as one deployment.
    MarathonDeploy {
        deployment_id: String,
        version: String,
        at_ms: u64,
        changes: Vec<super::marathon::state::AppChange>,
        #[serde(default)]
        groups: Vec<super::marathon::state::GroupRecord>,
        force: bool,
    },
    /// The leader finished step `step` (0-based) of a deployment.
    MarathonDeploymentStepDone { deployment_id: String, step: usize },
    /// Stops a deployment where it is (`DELETE /v2/deployments/{id}?force=true`).
    MarathonDeploymentStop { deployment_id: String },
    /// Adds a package repository at `index` (0 = first; `None` = last). `content` is the
    /// index document of a repository the cluster holds (`uri` = `cluster:NAME`); without it
    /// `uri` is an http(s) URL the masters fetch.
    PackageRepoAdd {
        name: String,
        uri: String,
        index: Option<usize>,
        #[serde(default)]
        content: Option<Box<serde_json::Value>>,
    },
    /// Removes the package repository with this name or URI.
    PackageRepoRemove { name_or_uri: String },
    /// Adds one package (Universe package JSON) to the cluster repository `local`.
    PackageAdd { package: Box<serde_json::Value> },
}

/// What applying a [`Command`] produced; returned to the client that proposed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Nothing to report (membership and blank entries).
    #[default]
    Applied,
    ClusterInitialized {
        cluster_id: String,
    },
    AlreadyInitialized {
        cluster_id: String,
    },
    KvWritten {
        revision: u64,
    },
    KvDeleted {
        revision: u64,
        deleted: u64,
    },
    /// A compare-and-swap did not match; `current` is the key's `mod_revision` (0: absent).
    CasFailed {
        current: u64,
    },
    /// The command was valid JSON but broke a domain rule; nothing was changed.
    Rejected {
        message: String,
    },
    UserWritten {
        uid: String,
    },
    UserDeleted {
        uid: String,
        existed: bool,
    },
    AgentRegistered {
        agent_id: String,
        reregistered: bool,
    },
    AgentUpdated {
        agent_id: String,
    },
    TaskLaunched {
        task_id: String,
    },
    /// A batch: the tasks launched, and the refused ones with why.
    TasksLaunched {
        launched: Vec<String>,
        rejected: Vec<(String, String)>,
    },
    /// `applied: false` for a duplicate or an update not allowed from the current state.
    TaskUpdated {
        task_id: String,
        applied: bool,
    },
    TaskKillRequested {
        task_id: String,
    },
    ImageAdded {
        manifest: String,
    },
    ImageRemoved {
        manifest: String,
    },
    DeploymentStarted {
        deployment_id: String,
        version: String,
    },
    /// The apps are locked by these deployments (retry with `force`).
    DeploymentConflict {
        deployments: Vec<String>,
    },
    /// `applied: false` when the deployment is gone or already past the step (a retry).
    DeploymentUpdated {
        deployment_id: String,
        applied: bool,
    },
    /// The package repositories after a change, in priority order.
    PackageRepos {
        repositories: Vec<super::packages::RepoSource>,
    },
    /// A package was added to the cluster repository `local`.
    PackageAdded {
        name: String,
        version: String,
        replaced: bool,
    },
}
