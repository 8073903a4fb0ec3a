//! The replicated state and its single mutation path, [`State::apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::agents::{Agent, AgentStatus};
use super::command::{Command, Response};
use super::kv::{self, KvStore, Written};
use super::tasks::{self, Task, TaskState, TaskStatus};
use super::users::{self, User};

/// Terminal tasks kept for `task list --completed` and reconciliation; older ones are dropped.
pub const COMPLETED_TASKS_KEPT: usize = 1000;

/// A master as the Raft membership knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: u64,
    pub name: String,
    /// HTTPS base URL that serves the API and the Raft RPCs.
    pub api: String,
    /// Voters count toward quorum; learners only replicate.
    pub voter: bool,
}

/// Cluster identity, fixed by the first `InitCluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub cluster_id: String,
    pub created_at_ms: u64,
    pub token_secret: String,
}

/// Everything the masters agree on. Later issues add agents, apps, tasks and packages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub identity: Option<ClusterIdentity>,
    /// The latest membership, mirrored from Raft membership entries.
    pub masters: Vec<MasterInfo>,
    pub kv: KvStore,
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub agents: BTreeMap<String, Agent>,
    #[serde(default)]
    pub tasks: BTreeMap<String, Task>,
    /// Images by manifest digest.
    #[serde(default)]
    pub images: BTreeMap<String, super::images::ImageRecord>,
    /// The built-in Marathon: apps, groups, deployments.
    #[serde(default)]
    pub marathon: super::marathon::state::MarathonState,
    /// Where each master (by name) answers cluster DNS, `IP:port`.
    #[serde(default)]
    pub master_dns: BTreeMap<String, String>,
    /// VIP addresses of named VIPs, and the range they come from.
    #[serde(default)]
    pub vips: super::vips::Vips,
    /// Package repositories and the content of those the cluster holds.
    #[serde(default)]
    pub packages: super::packages::PackageState,
    /// Index of the last applied log entry (0 before any).
    pub last_applied: u64,
}

impl State {
    pub fn cluster_id(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.cluster_id.as_str())
    }

    /// Applies one committed command at log `index`. Deterministic: the result depends only
    /// on the state, the index and the command.
    pub fn apply(&mut self, index: u64, command: &Command) -> Response {
        self.last_applied = index;
        match command {
            Command::InitCluster { cluster_id, created_at_ms, token_secret, admin } => {
                if let Some(existing) = &self.identity {
                    return Response::AlreadyInitialized { cluster_id: existing.cluster_id.clone() };
                }
                self.identity = Some(ClusterIdentity {
                    cluster_id: cluster_id.clone(),
                    created_at_ms: *created_at_ms,
                    token_secret: token_secret.clone(),
                });
                if let Some(admin) = admin {
                    self.users.insert(admin.uid.clone(), admin.clone());
                }
                Response::ClusterInitialized { cluster_id: cluster_id.clone() }
            }
            Command::KvPut { key, value, cas } => {
                if let Err(e) = kv::validate_key(key).and_then(|()| kv::validate_value(value)) {
                    return Response::Rejected { message: e.to_string() };
                }
                match self.kv.put(key, value.clone(), *cas, index) {
                    Written::Ok => Response::KvWritten { revision: index },
                    Written::CasFailed { current } => Response::CasFailed { current },
                }
            }
            Command::KvDelete { key, cas, recurse } => {
                if !recurse && let Err(e) = kv::validate_key(key) {
                    return Response::Rejected { message: e.to_string() };
                }
                match self.kv.delete(key, *cas, *recurse) {
                    Ok(deleted) => Response::KvDeleted { revision: index, deleted },
                    Err(current) => Response::CasFailed { current },
                }
            }
            Command::UserPut { user } => {
                if let Err(message) = users::validate_uid(&user.uid) {
                    return Response::Rejected { message };
                }
                self.users.insert(user.uid.clone(), user.clone());
                Response::UserWritten { uid: user.uid.clone() }
            }
            Command::UserDelete { uid } => {
                let existed = self.users.remove(uid).is_some();
                Response::UserDeleted { uid: uid.clone(), existed }
            }
            Command::AgentRegister { registration: r, at_ms } => self.register_agent(r, *at_ms),
            Command::AgentUnreachable { agent_id, at_ms } => self.mark_unreachable(agent_id, *at_ms),
            Command::AgentSetMode { agent_id, mode, at_ms } => match self.agents.get_mut(agent_id) {
                Some(agent) => {
                    agent.mode = *mode;
                    agent.status_changed_at_ms = *at_ms;
                    Response::AgentUpdated { agent_id: agent_id.clone() }
                }
                None => Response::Rejected { message: format!("no agent {agent_id:?}") },
            },
            Command::TaskLaunch { task } => self.launch(task),
            Command::TaskLaunchBatch { tasks } => self.launch_batch(tasks),
            Command::ImageAdd { image } => {
                if let Err(message) = super::images::validate(image) {
                    return Response::Rejected { message };
                }
                for other in self.images.values_mut() {
                    other.names.retain(|n| !image.names.contains(n));
                }
                let entry = self.images.entry(image.manifest.clone()).or_insert_with(|| (**image).clone());
                for name in &image.names {
                    if !entry.names.contains(name) {
                        entry.names.push(name.clone());
                    }
                }
                Response::ImageAdded { manifest: image.manifest.clone() }
            }
            Command::ImageRemove { reference } => {
                match super::images::resolve(self.images.values(), reference).map(|i| i.manifest.clone()) {
                    Some(manifest) => {
                        self.images.remove(&manifest);
                        Response::ImageRemoved { manifest }
                    }
                    None => Response::Rejected { message: format!("no image {reference:?}; see `medos image list`") },
                }
            }
            Command::TaskStatusUpdate { status } => self.update_task(status),
            Command::MarathonDeploy { deployment_id, version, at_ms, changes, groups, force } => {
                use super::marathon::state::DeployOutcome;
                match self.marathon.deploy(deployment_id, version, *at_ms, changes, groups, *force) {
                    DeployOutcome::Started { deployment_id, version } => {
                        self.sync_vips();
                        Response::DeploymentStarted { deployment_id, version }
                    }
                    DeployOutcome::Conflict { deployments } => Response::DeploymentConflict { deployments },
                    DeployOutcome::Invalid { message } => Response::Rejected { message },
                }
            }
            Command::MarathonDeploymentStepDone { deployment_id, step } => {
                let applied = self.marathon.step_done(deployment_id, *step);
                if applied {
                    self.sync_vips();
                }
                Response::DeploymentUpdated { deployment_id: deployment_id.clone(), applied }
            }
            Command::VipRange { range } => match self.set_vip_range(range) {
                Ok(()) => Response::Applied,
                Err(message) => Response::Rejected { message },
            },
            Command::MarathonDeploymentStop { deployment_id } => Response::DeploymentUpdated {
                deployment_id: deployment_id.clone(),
                applied: self.marathon.deployments.remove(deployment_id).is_some(),
            },
            Command::PackageRepoAdd { name, uri, index, content } => {
                match self.packages.add_repo(name, uri, *index, content.as_deref()) {
                    Ok(repositories) => Response::PackageRepos { repositories },
                    Err(message) => Response::Rejected { message },
                }
            }
            Command::PackageRepoRemove { name_or_uri } => match self.packages.remove_repo(name_or_uri) {
                Ok(repositories) => Response::PackageRepos { repositories },
                Err(message) => Response::Rejected { message },
            },
            Command::PackageAdd { package } => match self.packages.add_package(package) {
                Ok(a) => Response::PackageAdded { name: a.name, version: a.version, replaced: a.replaced },
                Err(message) => Response::Rejected { message },
            },
            Command::MasterDns { name, addr } => {
                match addr {
                    Some(addr) => self.master_dns.insert(name.clone(), addr.clone()),
                    None => self.master_dns.remove(name),
                };
                Response::Applied
            }
            Command::TaskKill { task_id, grace_ms, .. } => match self.tasks.get_mut(task_id) {
                Some(task) if task.state.is_terminal() => {
                    Response::Rejected { message: format!("task {task_id} already ended ({})", task.state.as_str()) }
                }
                Some(task) => {
                    task.kill_grace_ms = Some(*grace_ms);
                    Response::TaskKillRequested { task_id: task_id.clone() }
                }
                None => Response::Rejected { message: format!("no task {task_id:?}") },
            },
        }
    }

    fn register_agent(&mut self, r: &super::agents::AgentRegistration, at_ms: u64) -> Response {
        if let Err(message) = r.total.validate("resources") {
            return Response::Rejected { message };
        }
        if r.agent_id.is_empty() || r.hostname.is_empty() {
            return Response::Rejected { message: "agent_id and hostname must not be empty".into() };
        }
        let reregistered = match self.agents.get_mut(&r.agent_id) {
            Some(agent) => {
                agent.hostname = r.hostname.clone();
                agent.address = r.address.clone();
                agent.api = r.api.clone();
                agent.total = r.total.clone();
                agent.attributes = r.attributes.clone();
                agent.public = r.public;
                agent.version = r.version.clone();
                if agent.status != AgentStatus::Active {
                    agent.status = AgentStatus::Active;
                    agent.status_changed_at_ms = at_ms;
                }
                true
            }
            None => {
                self.agents.insert(
                    r.agent_id.clone(),
                    Agent {
                        id: r.agent_id.clone(),
                        hostname: r.hostname.clone(),
                        address: r.address.clone(),
                        api: r.api.clone(),
                        total: r.total.clone(),
                        attributes: r.attributes.clone(),
                        public: r.public,
                        status: AgentStatus::Active,
                        mode: Default::default(),
                        registered_at_ms: at_ms,
                        status_changed_at_ms: at_ms,
                        version: r.version.clone(),
                    },
                );
                false
            }
        };
        Response::AgentRegistered { agent_id: r.agent_id.clone(), reregistered }
    }

    fn mark_unreachable(&mut self, agent_id: &str, at_ms: u64) -> Response {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Response::Rejected { message: format!("no agent {agent_id:?}") };
        };
        agent.status = AgentStatus::Unreachable;
        agent.status_changed_at_ms = at_ms;
        let ids: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.agent_id == agent_id && !t.state.is_terminal() && t.state != TaskState::TASK_UNREACHABLE)
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            let status = TaskStatus {
                task_id: id.clone(),
                uuid: format!("unreachable-{at_ms}-{id}"),
                state: TaskState::TASK_UNREACHABLE,
                reason: Some("REASON_SLAVE_REMOVED".into()),
                message: format!("agent {agent_id} is unreachable"),
                timestamp_ms: at_ms,
                exit_code: None,
                healthy: None,
                source: "SOURCE_MASTER".into(),
            };
            if let Some(task) = self.tasks.get_mut(&id) {
                task.update(&status);
            }
        }
        Response::AgentUpdated { agent_id: agent_id.to_string() }
    }

    fn launch(&mut self, task: &Task) -> Response {
        let Some(usage) = super::placement::free_on(self, &task.agent_id) else {
            return Response::Rejected { message: format!("no agent {:?}", task.agent_id) };
        };
        let mut usage = usage;
        self.launch_with(task, &mut usage)
    }

    /// Launches placed tasks together; the agents' free resources are computed once.
    fn launch_batch(&mut self, tasks: &[Task]) -> Response {
        let mut usage: BTreeMap<String, (super::Resources, Vec<u16>)> = BTreeMap::new();
        for task in tasks {
            if let Some(agent) = self.agents.get(&task.agent_id)
                && !usage.contains_key(&agent.id)
            {
                usage.insert(agent.id.clone(), (agent.total.clone(), Vec::new()));
            }
        }
        for task in self.tasks.values().filter(|t| t.state.holds_resources()) {
            if let Some((free, used)) = usage.get_mut(&task.agent_id) {
                free.subtract(&task.spec.resources);
                used.extend(task.ports.iter().copied());
            }
        }
        let mut launched = Vec::new();
        let mut rejected = Vec::new();
        for task in tasks {
            let response = match usage.get_mut(&task.agent_id) {
                Some(u) => self.launch_with(task, u),
                None => Response::Rejected { message: format!("no agent {:?}", task.agent_id) },
            };
            match response {
                Response::TaskLaunched { task_id } => launched.push(task_id),
                Response::Rejected { message } => rejected.push((task.id.clone(), message)),
                _ => {}
            }
        }
        Response::TasksLaunched { launched, rejected }
    }

    /// Launches one placed task given its agent's free resources and used ports, which it
    /// updates.
    fn launch_with(&mut self, task: &Task, usage: &mut (super::Resources, Vec<u16>)) -> Response {
        if self.tasks.contains_key(&task.id) {
            return Response::Rejected { message: format!("task id {} is already in use", task.id) };
        }
        if let Err(message) = tasks::validate_spec(&task.spec) {
            return Response::Rejected { message };
        }
        if task.spec.image.is_some() != task.image.is_some() {
            return Response::Rejected {
                message: "image: the named image must be resolved when the task is placed".into(),
            };
        }
        let Some(agent) = self.agents.get(&task.agent_id) else {
            return Response::Rejected { message: format!("no agent {:?}", task.agent_id) };
        };
        if !agent.accepts_tasks() {
            return Response::Rejected { message: format!("agent {} does not accept tasks now", agent.id) };
        }
        let (free, used) = usage;
        if !free.fits(&task.spec.resources) {
            return Response::Rejected { message: format!("agent {} no longer has room for the task", task.agent_id) };
        }
        if task.ports.len() != usize::from(task.spec.port_count)
            || task
                .ports
                .iter()
                .enumerate()
                .any(|(i, p)| used.contains(p) || !agent.total.has_port(*p) || task.ports[..i].contains(p))
        {
            return Response::Rejected {
                message: format!("ports {:?} are not free on agent {}", task.ports, task.agent_id),
            };
        }
        free.subtract(&task.spec.resources);
        used.extend(task.ports.iter().copied());
        let mut task = task.clone();
        task.state = TaskState::TASK_STAGING;
        let task_id = task.id.clone();
        self.tasks.insert(task_id.clone(), task);
        Response::TaskLaunched { task_id }
    }

    fn update_task(&mut self, status: &TaskStatus) -> Response {
        let Some(task) = self.tasks.get_mut(&status.task_id) else {
            return Response::Rejected { message: format!("no task {:?}", status.task_id) };
        };
        let applied = task.update(status);
        if applied && status.state.is_terminal() {
            self.trim_completed();
        }
        Response::TaskUpdated { task_id: status.task_id.clone(), applied }
    }

    /// Drops the oldest terminal tasks beyond [`COMPLETED_TASKS_KEPT`].
    fn trim_completed(&mut self) {
        let mut done: Vec<(u64, String)> =
            self.tasks.values().filter(|t| t.state.is_terminal()).map(|t| (t.updated_at_ms, t.id.clone())).collect();
        if done.len() <= COMPLETED_TASKS_KEPT {
            return;
        }
        done.sort();
        for (_, id) in done.iter().take(done.len() - COMPLETED_TASKS_KEPT) {
            self.tasks.remove(id);
        }
    }

    /// Records a membership change (applied from a Raft membership entry at `index`).
    pub fn set_masters(&mut self, index: u64, masters: Vec<MasterInfo>) {
        self.last_applied = index;
        // A master that left the cluster no longer answers its DNS for it.
        self.master_dns.retain(|name, _| masters.iter().any(|m| &m.name == name));
        self.masters = masters;
    }

    /// The DNS servers of the current masters, in the masters' order.
    pub fn dns_servers(&self) -> Vec<String> {
        self.masters.iter().filter_map(|m| self.master_dns.get(&m.name).cloned()).collect()
    }

    /// Records a blank entry (a new leader's first entry).
    pub fn note_blank(&mut self, index: u64) {
        self.last_applied = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, cas: Option<u64>) -> Command {
        Command::KvPut { key: key.into(), value: value.as_bytes().to_vec(), cas }
    }

    fn init(id: &str) -> Command {
        Command::InitCluster {
            cluster_id: id.into(),
            created_at_ms: 1,
            token_secret: "c2VjcmV0".into(),
            admin: Some(User { uid: "admin".into(), password_hash: "h".into(), description: String::new() }),
        }
    }

    #[test]
    fn masters_record_their_dns_and_departed_masters_drop_out() {
        let master = |id: u64, name: &str| MasterInfo {
            id,
            name: name.into(),
            api: format!("https://{name}:7443"),
            voter: true,
        };
        let dns =
            |name: &str, addr: Option<&str>| Command::MasterDns { name: name.into(), addr: addr.map(String::from) };
        let mut s = State::default();
        s.set_masters(1, vec![master(1, "m1"), master(2, "m2"), master(3, "m3")]);
        s.apply(2, &dns("m3", Some("10.0.0.3:53")));
        s.apply(3, &dns("m1", Some("10.0.0.1:53")));
        s.apply(4, &dns("m2", Some("10.0.0.9:53")));
        s.apply(5, &dns("m2", Some("10.0.0.2:53")));
        assert_eq!(
            s.dns_servers(),
            ["10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"],
            "in the masters' order, latest address"
        );
        s.apply(6, &dns("m2", None));
        assert_eq!(s.dns_servers(), ["10.0.0.1:53", "10.0.0.3:53"], "a master without DNS");
        s.set_masters(7, vec![master(1, "m1"), master(2, "m2")]);
        assert_eq!(s.dns_servers(), ["10.0.0.1:53"], "a removed master");
        assert!(!s.master_dns.contains_key("m3"));
    }

    /// Applies `commands` at indexes 1.. and returns the responses.
    fn check(commands: &[Command]) -> (State, Vec<Response>) {
        let mut s = State::default();
        let responses = commands.iter().enumerate().map(|(i, c)| s.apply(i as u64 + 1, c)).collect();
        (s, responses)
    }

    #[test]
    fn apply_table() {
        let cases: Vec<(Vec<Command>, Response)> = vec![
            (vec![init("c1")], Response::ClusterInitialized { cluster_id: "c1".into() }),
            (vec![init("c1"), init("c2")], Response::AlreadyInitialized { cluster_id: "c1".into() }),
            (vec![put("a", "1", None)], Response::KvWritten { revision: 1 }),
            (vec![put("a", "1", None), put("a", "2", Some(1))], Response::KvWritten { revision: 2 }),
            (vec![put("a", "1", None), put("a", "2", Some(0))], Response::CasFailed { current: 1 }),
            (vec![put("", "1", None)], Response::Rejected { message: "key must not be empty".into() }),
            (
                vec![put("a", "1", None), Command::KvDelete { key: "a".into(), cas: Some(1), recurse: false }],
                Response::KvDeleted { revision: 2, deleted: 1 },
            ),
            (
                vec![Command::UserDelete { uid: "nobody".into() }],
                Response::UserDeleted { uid: "nobody".into(), existed: false },
            ),
        ];
        for (commands, expected) in cases {
            let (_, responses) = check(&commands);
            assert_eq!(responses.last().unwrap(), &expected, "{commands:?}");
        }
    }

    #[test]
    fn init_creates_the_admin_and_keeps_the_first_identity() {
        let (s, _) = check(&[init("c1"), init("c2")]);
        assert_eq!(s.cluster_id(), Some("c1"));
        assert!(s.users.contains_key("admin"));
    }

    #[test]
    fn replicas_applying_the_same_commands_agree() {
        let commands = vec![init("c"), put("x", "1", None), put("y", "2", Some(0)), put("x", "3", Some(2))];
        let (a, ra) = check(&commands);
        let (b, rb) = check(&commands);
        assert_eq!(a, b);
        assert_eq!(ra, rb);
        assert_eq!(a.last_applied, 4);
    }

    #[test]
    fn a_rejected_command_changes_nothing_but_the_applied_index() {
        let (before, _) = check(&[put("a", "1", None)]);
        let mut after = before.clone();
        after.apply(2, &put("a", &"v".repeat(kv::MAX_VALUE_BYTES + 1), None));
        assert_eq!(after.kv, before.kv);
        assert_eq!(after.last_applied, 2);
    }

    #[test]
    fn state_round_trips_through_json() {
        let (s, _) = check(&[init("c"), put("k", "\u{0}bin", None)]);
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<State>(&json).unwrap(), s);
    }
}
