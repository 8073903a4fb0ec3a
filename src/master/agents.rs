//! The leader's view of connected agents: event streams, heartbeats, and the loop that sends
//! launches and kills, marks silent agents unreachable, and drains agents.
//!
//! Nothing here is replicated: heartbeat times and open streams are per-leader facts. A new
//! leader gives every agent a full timeout from the moment it took over before marking it
//! unreachable, and re-sends whatever the state says an agent should run or kill (agents
//! ignore launches of tasks they already have).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::node::Master;
use crate::api::agent_protocol::{AgentEvent, ClusterDns, TaskReport};
use crate::core::vips::VipRoute;
use crate::core::{AgentMode, AgentStatus, Command, TaskState, TaskStatus};

#[derive(Default)]
struct Session {
    last_seen: Option<Instant>,
    stream: Option<mpsc::Sender<AgentEvent>>,
    sent_launch: HashSet<String>,
    sent_kill: HashSet<String>,
    /// The cluster DNS last sent on the stream (`None`: nothing sent yet).
    sent_dns: Option<Option<ClusterDns>>,
    /// The version of the VIP table last sent on the stream.
    sent_vips: Option<u64>,
    /// Tasks the agent runs that the masters do not want (from reconciliation).
    kill_unknown: Vec<String>,
}

/// Where tasks find the cluster DNS: every master's DNS server and the cluster domain.
pub fn cluster_dns(master: &Master, state: &crate::core::State) -> Option<ClusterDns> {
    let servers = state.dns_servers();
    (!servers.is_empty()).then(|| ClusterDns { servers, domain: master.config.dns.domain.clone() })
}

/// Connected agents, kept by the leader.
#[derive(Default)]
pub struct AgentHub {
    sessions: Mutex<HashMap<String, Session>>,
    leader_since: Mutex<Option<Instant>>,
    vips: Mutex<VipTable>,
}

/// The VIP table as last computed: rebuilt when the applied index moves, and given a new
/// version only when its contents change (agents get it again only then).
#[derive(Default)]
struct VipTable {
    applied: Option<u64>,
    version: u64,
    routes: Arc<Vec<VipRoute>>,
}

/// Events buffered per agent stream before the stream counts as stuck.
const STREAM_BUFFER: usize = 1024;

impl AgentHub {
    pub fn heartbeat(&self, agent_id: &str) {
        let mut sessions = self.sessions.lock().expect("hub lock");
        sessions.entry(agent_id.to_string()).or_default().last_seen = Some(Instant::now());
    }

    /// Opens (or replaces) an agent's event stream.
    pub fn open_stream(&self, agent_id: &str) -> mpsc::Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut sessions = self.sessions.lock().expect("hub lock");
        let session = sessions.entry(agent_id.to_string()).or_default();
        session.stream = Some(tx);
        session.last_seen = Some(Instant::now());
        session.sent_launch.clear();
        session.sent_kill.clear();
        session.sent_dns = None;
        session.sent_vips = None;
        rx
    }

    /// Records, at (re)registration, tasks the agent runs that must be killed.
    pub fn kill_unknown(&self, agent_id: &str, task_ids: Vec<String>) {
        let mut sessions = self.sessions.lock().expect("hub lock");
        sessions.entry(agent_id.to_string()).or_default().kill_unknown.extend(task_ids);
    }

    /// The VIP table of `state`, with its version.
    fn vip_routes(&self, state: &crate::core::State) -> (u64, Arc<Vec<VipRoute>>) {
        let mut table = self.vips.lock().expect("hub lock");
        if table.applied != Some(state.last_applied) {
            let routes = crate::core::vips::routes(state);
            if *table.routes != routes {
                table.routes = Arc::new(routes);
                table.version += 1;
            }
            table.applied = Some(state.last_applied);
        }
        (table.version, table.routes.clone())
    }

    fn became_leader(&self, leader: bool) {
        let mut since = self.leader_since.lock().expect("hub lock");
        match (leader, since.is_some()) {
            (true, false) => {
                *since = Some(Instant::now());
                // Streams opened with an earlier leader are gone; heartbeats start afresh.
                self.sessions.lock().expect("hub lock").clear();
            }
            (false, true) => {
                *since = None;
                self.sessions.lock().expect("hub lock").clear();
            }
            _ => {}
        }
    }
}

use crate::clock::now_ms;

/// The leader's periodic work on agents. Runs on every master; acts only while leader.
pub async fn agent_duties(master: std::sync::Arc<Master>) {
    let interval = Duration::from_millis(master.config.agents.heartbeat_interval_ms);
    let unreachable_after = Duration::from_millis(master.config.agents.unreachable_after_ms);
    let mut applied = master.applied.clone();
    let mut tick = tokio::time::interval(interval.min(Duration::from_millis(500)));
    let mut last_ping = Instant::now();
    // Each pass scans the tasks and sessions: passes are spaced out under a stream of commits.
    let mut pace = super::pace::Pace::new(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = applied.changed() => if changed.is_err() { return },
        }
        pace.next_pass().await;
        let leader = master.is_leader();
        master.agents.became_leader(leader);
        if !leader {
            continue;
        }
        let ping = last_ping.elapsed() >= interval;
        if ping {
            last_ping = Instant::now();
        }
        dispatch(&master, ping);
        let bookkeeping: Vec<Command> =
            overdue(&master, unreachable_after).into_iter().chain(drains(&master)).collect();
        pace.done();
        for command in bookkeeping {
            if let Err(e) = master.propose(command).await {
                tracing::warn!(error = %e, "agent bookkeeping write failed; retrying on the next tick");
            }
        }
    }
}

/// Sends launches, kills and pings on open streams.
fn dispatch(master: &Master, ping: bool) {
    let state = master.state.read().expect("state lock");
    // Only tasks to launch or to kill matter; index them by agent in one pass.
    let mut actionable: HashMap<&str, Vec<&crate::core::Task>> = HashMap::new();
    for task in state.tasks.values() {
        if task.state == TaskState::TASK_STAGING || (task.kill_grace_ms.is_some() && !task.state.is_terminal()) {
            actionable.entry(task.agent_id.as_str()).or_default().push(task);
        }
    }
    let dns = cluster_dns(master, &state);
    let (vips_version, vips) = master.agents.vip_routes(&state);
    let mut sessions = master.agents.sessions.lock().expect("hub lock");
    for (agent_id, session) in sessions.iter_mut() {
        let Some(stream) = session.stream.clone() else { continue };
        let mut events = Vec::new();
        if session.sent_dns.as_ref() != Some(&dns) {
            session.sent_dns = Some(dns.clone());
            events.push(AgentEvent::ClusterDns { dns: dns.clone() });
        }
        if session.sent_vips != Some(vips_version) {
            session.sent_vips = Some(vips_version);
            events.push(AgentEvent::Vips { routes: vips.to_vec() });
        }
        for &task in actionable.get(agent_id.as_str()).into_iter().flatten() {
            if task.state == TaskState::TASK_STAGING && !session.sent_launch.contains(&task.id) {
                session.sent_launch.insert(task.id.clone());
                events.push(AgentEvent::Launch { task: Box::new(task.clone()) });
            }
            if let Some(grace_ms) = task.kill_grace_ms
                && !task.state.is_terminal()
                && !session.sent_kill.contains(&task.id)
            {
                session.sent_kill.insert(task.id.clone());
                events.push(AgentEvent::Kill { task_id: task.id.clone(), grace_ms });
            }
        }
        for task_id in session.kill_unknown.drain(..) {
            events.push(AgentEvent::Kill { task_id, grace_ms: 0 });
        }
        if ping {
            events.push(AgentEvent::Ping);
        }
        for event in events {
            if stream.try_send(event).is_err() {
                // Closed or stuck: forget the stream; the agent reconnects and gets everything again.
                tracing::info!(agent = %agent_id, "agent event stream closed");
                session.stream = None;
                session.sent_launch.clear();
                session.sent_kill.clear();
                session.sent_dns = None;
                session.sent_vips = None;
                break;
            }
        }
    }
}

/// Agents silent for too long.
fn overdue(master: &Master, unreachable_after: Duration) -> Vec<Command> {
    let since = master.agents.leader_since.lock().expect("hub lock").unwrap_or_else(Instant::now);
    let state = master.state.read().expect("state lock");
    let sessions = master.agents.sessions.lock().expect("hub lock");
    state
        .agents
        .values()
        .filter(|a| a.status == AgentStatus::Active)
        .filter(|a| {
            let seen = sessions.get(&a.id).and_then(|s| s.last_seen).unwrap_or(since).max(since);
            seen.elapsed() > unreachable_after
        })
        .map(|a| {
            tracing::warn!(agent = %a.id, hostname = %a.hostname, "agent missed its heartbeats; marking it unreachable");
            Command::AgentUnreachable { agent_id: a.id.clone(), at_ms: now_ms() }
        })
        .collect()
}

/// Kill requests for tasks on draining agents.
fn drains(master: &Master) -> Vec<Command> {
    let state = master.state.read().expect("state lock");
    let draining: HashSet<&str> =
        state.agents.values().filter(|a| a.mode == AgentMode::Draining).map(|a| a.id.as_str()).collect();
    if draining.is_empty() {
        return Vec::new();
    }
    state
        .tasks
        .values()
        .filter(|t| !t.state.is_terminal() && t.kill_grace_ms.is_none())
        .filter(|t| draining.contains(t.agent_id.as_str()))
        .map(|t| Command::TaskKill { task_id: t.id.clone(), grace_ms: t.spec.kill_grace_ms, at_ms: now_ms() })
        .collect()
}

/// Reconciles what an agent reports at registration with the masters' state: tasks the
/// masters think run there but the agent does not know are lost; tasks the agent runs that
/// the masters do not want are killed.
pub fn reconcile(master: &Master, agent_id: &str, reports: &[TaskReport]) -> (Vec<Command>, Vec<String>) {
    let state = master.state.read().expect("state lock");
    let known: HashSet<&str> = reports.iter().map(|r| r.task_id.as_str()).collect();
    let lost: Vec<Command> = state
        .tasks
        .values()
        .filter(|t| t.agent_id == agent_id && !t.state.is_terminal() && !known.contains(t.id.as_str()))
        // A task still staging may simply not have reached the agent yet.
        .filter(|t| t.state != TaskState::TASK_STAGING)
        .map(|t| Command::TaskStatusUpdate {
            status: TaskStatus {
                task_id: t.id.clone(),
                uuid: format!("reconcile-{}-{}", now_ms(), t.id),
                state: TaskState::TASK_LOST,
                reason: Some("REASON_RECONCILIATION".into()),
                message: format!("agent {agent_id} does not know this task"),
                timestamp_ms: now_ms(),
                exit_code: None,
                healthy: None,
                source: "SOURCE_MASTER".into(),
            },
        })
        .collect();
    // Tasks marked unreachable while the agent was away come back in the state it reports.
    let returned = reports.iter().filter(|r| !r.state.is_terminal()).filter_map(|r| {
        let t = state.tasks.get(&r.task_id)?;
        (t.agent_id == agent_id && t.state == TaskState::TASK_UNREACHABLE).then(|| Command::TaskStatusUpdate {
            status: TaskStatus {
                task_id: t.id.clone(),
                uuid: format!("reregistered-{}-{}", now_ms(), t.id),
                state: r.state,
                reason: Some("REASON_SLAVE_REREGISTERED".into()),
                message: format!("agent {agent_id} re-registered"),
                timestamp_ms: now_ms(),
                exit_code: None,
                healthy: None,
                source: "SOURCE_MASTER".into(),
            },
        })
    });
    let lost: Vec<Command> = lost.into_iter().chain(returned).collect();
    let unwanted = reports
        .iter()
        .filter(|r| !r.state.is_terminal())
        .filter(|r| match state.tasks.get(&r.task_id) {
            None => true,
            Some(t) => t.agent_id != agent_id || t.state.is_terminal(),
        })
        .map(|r| r.task_id.clone())
        .collect();
    (lost, unwanted)
}
