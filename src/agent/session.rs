//! The agent's connection to the masters: find the leader, register (reporting every known
//! task), then keep an event stream, heartbeats and the status outbox going; on any failure
//! start over with backoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::executor::Executor;
use super::outbox::Outbox;
use crate::api::agent_protocol::{
    AgentEvent, HeartbeatRequest, NotLeader, PATH_EVENTS, PATH_HEARTBEAT, PATH_REGISTER, PATH_STATUS, RegisterRequest,
    RegisterResponse, StatusRequest, StatusResponse,
};
use crate::core::AgentRegistration;

/// Timings of the agent's own background loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// How often the executor checks its containers for exits.
    pub poll_interval: Duration,
    /// How long the status sender sleeps with an empty outbox before looking again (a push
    /// wakes it at once; this is only the safety net).
    pub outbox_idle_wait: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { poll_interval: Duration::from_millis(100), outbox_idle_wait: Duration::from_millis(500) }
    }
}

pub struct Session {
    pub masters: Vec<String>,
    pub http: reqwest::Client,
    pub registration: AgentRegistration,
    pub executor: Arc<Executor>,
    pub outbox: Arc<Outbox>,
    pub id_file: std::path::PathBuf,
    pub tuning: Tuning,
    /// TASK_RUNNING updates the masters acknowledged (committed), and when the last one was
    /// (ms since the epoch): statistics for the simulator and tests.
    pub running_acked: AtomicU64,
    pub last_running_ack_ms: AtomicU64,
    leader: RwLock<Option<String>>,
    agent_id: RwLock<Option<String>>,
    /// Where the tasks' `resolv.conf` is written (`None`: tasks keep the host's).
    resolv_conf: Option<std::path::PathBuf>,
    /// The VIP load balancer (`None`: this agent serves no VIPs).
    vips: Option<Arc<super::vips::VipProxy>>,
    /// The current registration (agent id, leader), `None` between registrations.
    registered: tokio::sync::watch::Sender<Option<Registered>>,
}

/// A successful registration with the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub agent_id: String,
    pub leader: String,
}

#[derive(Debug)]
enum CallError {
    NotLeader(Option<String>),
    Refused(u16, String),
    Network(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotLeader(l) => write!(f, "not the leader (leader: {l:?})"),
            CallError::Refused(s, b) => write!(f, "refused with {s}: {b}"),
            CallError::Network(e) => write!(f, "{e}"),
        }
    }
}

impl Session {
    pub fn new(
        masters: Vec<String>,
        http: reqwest::Client,
        registration: AgentRegistration,
        executor: Arc<Executor>,
        outbox: Arc<Outbox>,
        id_file: std::path::PathBuf,
    ) -> Self {
        let agent_id = std::fs::read_to_string(&id_file).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Self {
            masters,
            http,
            registration,
            executor,
            outbox,
            id_file,
            tuning: Tuning::default(),
            running_acked: AtomicU64::new(0),
            last_running_ack_ms: AtomicU64::new(0),
            leader: RwLock::new(None),
            agent_id: RwLock::new(agent_id),
            resolv_conf: None,
            vips: None,
            registered: tokio::sync::watch::channel(None).0,
        }
    }

    /// Follows the agent's registration: `Some` while it is registered with a leader.
    pub fn registrations(&self) -> tokio::sync::watch::Receiver<Option<Registered>> {
        self.registered.subscribe()
    }

    /// The same session, writing the tasks' `resolv.conf` (the cluster DNS) at `path`.
    pub fn with_resolv_conf(mut self, path: std::path::PathBuf) -> Self {
        self.resolv_conf = Some(path);
        self
    }

    /// The same session, serving the VIPs the leader sends through `proxy`.
    pub fn with_vips(mut self, proxy: Arc<super::vips::VipProxy>) -> Self {
        self.vips = Some(proxy);
        self
    }

    fn update_dns(&self, dns: Option<&crate::api::agent_protocol::ClusterDns>) {
        if let Some(path) = &self.resolv_conf
            && let Err(e) = super::dns::update(path, dns)
        {
            tracing::warn!(error = %e, "cannot write the tasks' resolv.conf; new tasks use the host's");
        }
    }

    /// The same session with other loop timings.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    pub fn agent_id(&self) -> Option<String> {
        self.agent_id.read().expect("session lock").clone()
    }

    /// Candidate URLs: the last known leader first, then every configured master.
    fn candidates(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.leader.read().expect("session lock").iter().cloned().collect();
        for m in &self.masters {
            if !urls.contains(m) {
                urls.push(m.clone());
            }
        }
        urls
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
    ) -> Result<Option<T>, CallError> {
        let resp = self
            .http
            .post(format!("{base}{path}"))
            .timeout(Duration::from_secs(15))
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        let status = resp.status();
        if status == StatusCode::MISDIRECTED_REQUEST {
            let leader = resp.json::<NotLeader>().await.ok().and_then(|n| n.leader_api);
            return Err(CallError::NotLeader(leader));
        }
        if !status.is_success() {
            return Err(CallError::Refused(status.as_u16(), resp.text().await.unwrap_or_default()));
        }
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        resp.json().await.map(Some).map_err(|e| CallError::Network(e.to_string()))
    }

    /// Registers with the leader, following redirects from followers.
    async fn register(&self) -> Result<(String, RegisterResponse), String> {
        let mut registration = self.registration.clone();
        registration.agent_id = match self.agent_id() {
            Some(id) => id,
            None => {
                // Chosen and stored before the first attempt, so every retry (after a timeout
                // whose registration the leader did commit) is the same registration.
                let id = crate::api::agent_protocol::new_agent_id();
                crate::atomic_file::write_atomic(&self.id_file, id.as_bytes())
                    .map_err(|e| format!("cannot store the agent id in {}: {e}", self.id_file.display()))?;
                *self.agent_id.write().expect("session lock") = Some(id.clone());
                id
            }
        };
        let request = RegisterRequest { registration, tasks: self.executor.reports() };
        let mut last = String::from("no master configured");
        let mut tried = Vec::new();
        let mut queue = self.candidates();
        while let Some(url) = queue.first().cloned() {
            queue.remove(0);
            if tried.contains(&url) {
                continue;
            }
            tried.push(url.clone());
            match self.post::<_, RegisterResponse>(&url, PATH_REGISTER, &request).await {
                Ok(Some(resp)) => return Ok((url, resp)),
                Ok(None) => last = format!("{url}: empty answer"),
                Err(CallError::NotLeader(Some(leader))) => queue.insert(0, leader),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(last)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let sender = tokio::spawn(self.clone().send_statuses());
        let poller = tokio::spawn(self.clone().poll_containers());
        let mut backoff = Duration::from_millis(200);
        loop {
            let attempt = async {
                let (url, resp) = self.register().await?;
                *self.leader.write().expect("session lock") = Some(url.clone());
                if self.agent_id().as_deref() != Some(resp.agent_id.as_str()) {
                    crate::atomic_file::write_atomic(&self.id_file, resp.agent_id.as_bytes())?;
                    *self.agent_id.write().expect("session lock") = Some(resp.agent_id.clone());
                }
                tracing::info!(agent_id = %resp.agent_id, leader = %resp.leader, "registered");
                self.registered
                    .send_replace(Some(Registered { agent_id: resp.agent_id.clone(), leader: resp.leader.clone() }));
                self.update_dns(resp.dns.as_ref());
                let interval = Duration::from_millis(resp.heartbeat_interval_ms.max(50));
                tokio::select! {
                    e = self.events(&url, &resp.agent_id, interval) => Err::<(), String>(e),
                    e = self.heartbeats(&url, &resp.agent_id, interval) => Err(e),
                }
            };
            tokio::select! {
                result = attempt => {
                    self.registered.send_replace(None);
                    if let Err(e) = result {
                        tracing::info!(error = %e, "connection to the masters lost; registering again");
                    }
                }
                _ = shutdown.changed() => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
        sender.abort();
        poller.abort();
    }

    async fn heartbeats(&self, url: &str, agent_id: &str, interval: Duration) -> String {
        let body = HeartbeatRequest { agent_id: agent_id.to_string() };
        let mut failures = 0;
        loop {
            tokio::time::sleep(interval).await;
            match self.post::<_, serde_json::Value>(url, PATH_HEARTBEAT, &body).await {
                Ok(_) => failures = 0,
                Err(CallError::Network(e)) => {
                    failures += 1;
                    if failures >= 3 {
                        return format!("heartbeats to {url} failing: {e}");
                    }
                }
                Err(e) => return format!("heartbeat refused: {e}"),
            }
        }
    }

    async fn events(&self, url: &str, agent_id: &str, interval: Duration) -> String {
        let resp = match self.http.get(format!("{url}{PATH_EVENTS}?agent_id={agent_id}")).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => return format!("event stream refused: {}", r.status()),
            Err(e) => return format!("event stream: {e}"),
        };
        let mut resp = resp;
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            // Three missed pings mean the stream is dead even if TCP has not noticed.
            let chunk = match tokio::time::timeout(interval * 3 + Duration::from_secs(1), resp.chunk()).await {
                Err(_) => return "no ping from the leader".into(),
                Ok(Err(e)) => return format!("event stream broke: {e}"),
                Ok(Ok(None)) => return "the leader closed the event stream".into(),
                Ok(Ok(Some(chunk))) => chunk,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                match serde_json::from_slice::<AgentEvent>(&line) {
                    Ok(event) => self.handle(event).await,
                    Err(e) => tracing::warn!(error = %e, "ignoring an unreadable event"),
                }
            }
        }
    }

    async fn handle(&self, event: AgentEvent) {
        let executor = self.executor.clone();
        match event {
            AgentEvent::Ping => {}
            AgentEvent::ClusterDns { dns } => self.update_dns(dns.as_ref()),
            AgentEvent::Vips { routes } => {
                if let Some(proxy) = &self.vips {
                    proxy.update(&routes);
                }
            }
            AgentEvent::Launch { task } => {
                tracing::info!(task = %task.id, "launching");
                let _ = tokio::task::spawn_blocking(move || executor.launch(*task)).await;
            }
            AgentEvent::Kill { task_id, grace_ms } => {
                tracing::info!(task = %task_id, grace_ms, "killing");
                let _ =
                    tokio::task::spawn_blocking(move || executor.kill(&task_id, Duration::from_millis(grace_ms))).await;
            }
        }
    }

    /// Sends queued status updates in order, each until a master acknowledges it.
    async fn send_statuses(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let next = match self.outbox.peek() {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the status outbox");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some((path, status)) = next else {
                tokio::select! {
                    _ = self.outbox.wait() => {}
                    _ = tokio::time::sleep(self.tuning.outbox_idle_wait) => {}
                }
                continue;
            };
            let Some(agent_id) = self.agent_id() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let body = StatusRequest { agent_id, status };
            let mut delivered = false;
            for url in self.candidates() {
                match self.post::<_, StatusResponse>(&url, PATH_STATUS, &body).await {
                    Ok(_) => {
                        delivered = true;
                        break;
                    }
                    Err(e) => tracing::debug!(%url, error = %e, "status update not delivered yet"),
                }
            }
            if delivered {
                tracing::debug!(task = %body.status.task_id, state = ?body.status.state, "status update acknowledged");
                if let Err(e) = self.outbox.ack(&path) {
                    tracing::error!(error = %e, "cannot remove an acknowledged status update");
                }
                if body.status.state == crate::core::TaskState::TASK_RUNNING && body.status.healthy.is_none() {
                    self.last_running_ack_ms.store(crate::clock::now_ms(), Ordering::Relaxed);
                    self.running_acked.fetch_add(1, Ordering::Relaxed);
                }
                backoff = Duration::from_millis(100);
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }

    async fn poll_containers(self: Arc<Self>) {
        loop {
            let executor = self.executor.clone();
            let _ = tokio::task::spawn_blocking(move || {
                executor.poll();
                executor.prune(100);
            })
            .await;
            tokio::time::sleep(self.tuning.poll_interval).await;
        }
    }
}
