//! `medos agent --simulate N`: N agents in one process, for scale tests and benchmarks.
//!
//! Every simulated agent is a real agent (`agent::start_with`): it registers with the leader
//! over mutual TLS, keeps its own event stream open, heartbeats, checkpoints its tasks and
//! sends status updates through its own durable outbox. Only the containers are fake
//! ([`FakeContainers`]): a task is TASK_RUNNING as soon as it is launched and runs until it is
//! killed. What the agents share to fit thousands into one process on a small machine:
//!
//! - one certificate: the masters admit any client certificate of the cluster CA with
//!   `OU=agent` (`api::agents::require_agent`) and assign agent ids themselves, so the agents
//!   need not have their own;
//! - one HTTP client (`reqwest`, HTTP/1.1): one TLS config and one connection pool; each event
//!   stream holds its own connection, heartbeats and status updates reuse pooled ones;
//! - one work dir: agent `i` keeps its checkpoints and outbox in `WORK_DIR/NAME-i` (a tmpfs
//!   keeps the fsyncs cheap);
//! - slower background loops ([`session::Tuning`]) and no health checker.
//!
//! Each agent gets its own hostname (`NAME-00000`, `NAME-00001`, …) and the attributes
//! `rack=r<i mod racks>` and `zone=z<i mod zones>` on top of the configured ones, so Marathon
//! constraints (`["hostname","MAX_PER","2"]`, `["rack","GROUP_BY"]`) have something to work on.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::executor::{Containers, Exit};
use super::fake::FakeContainers;
use super::{AgentConfig, AgentError, RunningAgent, StartOptions, session};
use crate::core::Task;

/// How to simulate.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub count: usize,
    /// Distinct `rack` attribute values (`r0` …).
    pub racks: usize,
    /// Distinct `zone` attribute values (`z0` …).
    pub zones: usize,
    /// Agents started per second, so that the leader is not hit by every registration at once.
    pub start_rate: usize,
    pub tuning: session::Tuning,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self { count: 1, racks: 10, zones: 3, start_rate: 1000, tuning: simulated_tuning() }
    }
}

/// Background loop timings for simulated agents: fake containers end only when killed, so
/// looking for exits every 3 s is enough (10,000 agents polling every 100 ms would keep a core
/// busy handing work to the blocking pool); a push to the outbox wakes its sender anyway.
pub fn simulated_tuning() -> session::Tuning {
    session::Tuning { poll_interval: Duration::from_secs(3), outbox_idle_wait: Duration::from_secs(10) }
}

/// The config of simulated agent `index`: its own name, hostname, work dir and attributes.
pub fn agent_config(base: &AgentConfig, options: &SimulateOptions, index: usize) -> AgentConfig {
    let name = format!("{}-{index:05}", base.name);
    let mut attributes = base.attributes.clone();
    attributes.insert("rack".into(), format!("r{}", index % options.racks.max(1)));
    attributes.insert("zone".into(), format!("z{}", index % options.zones.max(1)));
    AgentConfig {
        name: name.clone(),
        hostname: name.clone(),
        work_dir: base.work_dir.join(&name),
        attributes,
        // No agent API (nothing to serve from fake sandboxes), no joining (the certificate is
        // the base config's, obtained once).
        listen: None,
        api: String::new(),
        join_token: None,
        ..base.clone()
    }
}

/// Launches over all simulated agents, and when the last one was.
#[derive(Default)]
struct LaunchCounter {
    launched: AtomicU64,
    last_ms: AtomicU64,
}

/// [`FakeContainers`] that also count launches for the simulation's statistics.
pub struct CountingContainers {
    pub fake: FakeContainers,
    counter: Arc<LaunchCounter>,
}

impl Containers for CountingContainers {
    fn launch(&self, task: &Task, sandbox: &Path) -> Result<(), String> {
        self.fake.launch(task, sandbox)?;
        self.counter.last_ms.store(crate::clock::now_ms(), Ordering::Relaxed);
        self.counter.launched.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn kill(&self, task_id: &str, grace: Duration) -> Result<(), String> {
        self.fake.kill(task_id, grace)
    }

    fn exit(&self, task_id: &str) -> Result<Option<Exit>, String> {
        self.fake.exit(task_id)
    }

    fn destroy(&self, task_id: &str) {
        self.fake.destroy(task_id)
    }
}

/// What the simulated agents have done so far (counters only grow).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// When these figures were taken (ms since the epoch).
    pub at_ms: u64,
    pub agents: u64,
    /// Agents with an agent id (registered at least once).
    pub registered: u64,
    /// Tasks launched by the fake containers: each was committed through Raft and sent to
    /// its agent by the leader.
    pub launched: u64,
    pub last_launch_ms: u64,
    /// TASK_RUNNING updates the masters acknowledged (committed).
    pub running_acked: u64,
    pub last_running_ack_ms: u64,
}

/// The running simulated agents.
pub struct Simulation {
    pub agents: Vec<RunningAgent>,
    pub containers: Vec<Arc<CountingContainers>>,
    counter: Arc<LaunchCounter>,
}

impl Simulation {
    /// Agents that have an agent id (registered at least once).
    pub fn registered(&self) -> usize {
        self.agents.iter().filter(|a| a.session.agent_id().is_some()).count()
    }

    /// Tasks the fake containers were asked to launch, over all agents.
    pub fn launched(&self) -> usize {
        self.counter.launched.load(Ordering::Relaxed) as usize
    }

    pub fn stats(&self) -> SimStats {
        let sessions = self.agents.iter().map(|a| &a.session);
        SimStats {
            at_ms: crate::clock::now_ms(),
            agents: self.agents.len() as u64,
            registered: self.registered() as u64,
            launched: self.counter.launched.load(Ordering::Relaxed),
            last_launch_ms: self.counter.last_ms.load(Ordering::Relaxed),
            running_acked: sessions.clone().map(|s| s.running_acked.load(Ordering::Relaxed)).sum(),
            last_running_ack_ms: sessions.map(|s| s.last_running_ack_ms.load(Ordering::Relaxed)).max().unwrap_or(0),
        }
    }

    /// Writes [`Simulation::stats`] as JSON to `path` (through a temporary file and a rename,
    /// so readers never see half a file).
    pub fn write_stats(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&self.stats()).expect("stats serialise"))?;
        std::fs::rename(&tmp, path)
    }

    /// Stops every agent (their fake tasks are forgotten with the process).
    pub async fn shutdown(self) {
        let stops = self.agents.into_iter().map(|a| a.shutdown());
        futures_util::future::join_all(stops).await;
    }
}

/// Starts `options.count` simulated agents from `base` (masters, TLS files, work dir root,
/// resources, ports, attributes), `options.start_rate` per second.
pub async fn start(base: AgentConfig, options: SimulateOptions) -> Result<Simulation, AgentError> {
    crate::pki::install_crypto_provider();
    base.validate()?;
    std::fs::create_dir_all(&base.work_dir)
        .map_err(|e| AgentError::WorkDir { path: base.work_dir.display().to_string(), message: e.to_string() })?;
    // A certificate from a join token is obtained once, for all of them.
    super::join::ensure_credentials(&base).await?;
    let http = super::master_client(&base)?;
    let started = Instant::now();
    let rate = options.start_rate.max(1);
    let mut agents = Vec::with_capacity(options.count);
    let mut containers = Vec::with_capacity(options.count);
    let counter = Arc::new(LaunchCounter::default());
    for index in 0..options.count {
        // Pace the starts: agent `index` starts no earlier than index / rate seconds in.
        let due = Duration::from_secs_f64(index as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed())
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
        }
        let config = agent_config(&base, &options, index);
        let fake = Arc::new(CountingContainers { fake: FakeContainers::default(), counter: counter.clone() });
        let start_options =
            StartOptions { http: Some(http.clone()), no_health_checks: true, no_vips: true, tuning: options.tuning };
        agents.push(super::start_with(config, fake.clone(), start_options).await?);
        containers.push(fake);
    }
    Ok(Simulation { agents, containers, counter })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_agents_get_their_own_name_dir_rack_and_zone() {
        let base: AgentConfig = toml::from_str(
            r#"
            name = "sim"
            hostname = "h"
            address = "127.0.0.1"
            masters = ["https://m:1"]
            work_dir = "/dev/shm/sim"
            listen = "127.0.0.1:5051"
            [attributes]
            pool = "bench"
            [tls]
            ca = "ca"
            cert = "c"
            key = "k"
            "#,
        )
        .unwrap();
        let options = SimulateOptions { count: 30, racks: 10, zones: 3, ..Default::default() };
        let a = agent_config(&base, &options, 12);
        assert_eq!(a.name, "sim-00012");
        assert_eq!(a.hostname, "sim-00012");
        assert_eq!(a.work_dir, std::path::PathBuf::from("/dev/shm/sim/sim-00012"));
        assert_eq!(a.attributes["rack"], "r2");
        assert_eq!(a.attributes["zone"], "z0");
        assert_eq!(a.attributes["pool"], "bench");
        assert_eq!(a.listen, None, "simulated agents serve no API");
        assert_eq!(a.tls, base.tls, "they share the base certificate");
    }
}
