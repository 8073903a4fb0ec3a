//! A running master: opens storage, starts the Raft node and the HTTPS API, bootstraps the
//! cluster, and offers `propose` / `read_barrier` with transparent forwarding to the leader.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::MasterConfig;
use super::engine::{Engine, SledEngine};
use super::network::{Faults, Network};
use super::store::{LogStore, StateMachineStore};
use super::types::{MasterNode, NodeId, Raft};
use crate::core::{Command, MasterInfo, Response, State, User};
use crate::pki::PkiError;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("data dir {path}: {message}")]
    DataDir { path: String, message: String },
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("raft: {0}")]
    Raft(String),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error("invalid setting `ca_key`: {0}")]
    CaKey(String),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsServerError),
}

/// Why a proposal or a linearizable read did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader was elected within {0:?}; check that a majority of masters is running and can reach each other")]
    NoLeader(Duration),
    /// The request may or may not have been applied (the leader was lost mid-way).
    #[error("the leader was lost while handling the request; it may or may not have been applied: {0}")]
    Unknown(String),
    #[error("this master is shutting down")]
    Stopped,
    #[error("{0}")]
    Other(String),
}

/// What a master stores about itself in its data dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub id: NodeId,
    pub name: String,
    pub ca_fingerprint: String,
}

/// Answer of `GET /internal/v1/identity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityAnswer {
    pub id: NodeId,
    pub name: String,
    pub api: String,
    pub cluster_id: Option<String>,
}

/// Answer of `POST /internal/v1/propose`: the result and the log index it was applied at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposed {
    pub response: Response,
    pub index: u64,
}

/// Answer of `POST /internal/v1/read_index`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadIndex {
    pub index: u64,
}

/// A master and everything the API needs from it.
pub struct Master {
    pub id: NodeId,
    pub name: String,
    pub advertise: String,
    pub raft: Raft,
    pub state: Arc<RwLock<State>>,
    /// Mutual-TLS client for master-to-master calls.
    pub peers: reqwest::Client,
    pub config: MasterConfig,
    pub log_store: LogStore,
    pub ca_pem: String,
    pub started: Instant,
    /// How long a write or linearizable read may wait for a leader and a quorum.
    pub request_timeout: Duration,
    /// The last applied log index; changes whenever the state does.
    pub applied: watch::Receiver<u64>,
    /// Every applied command, for event streams.
    pub events: tokio::sync::broadcast::Sender<Arc<super::store::AppliedCommand>>,
    /// Agents connected to this master while it leads.
    pub agents: super::agents::AgentHub,
    /// Image blobs (every master holds every blob of every image).
    pub blobs: Arc<crate::image::BlobStore>,
    /// The built-in Marathon's leader memory (backoff delays, offer statistics).
    pub marathon: super::marathon::Scheduler,
    /// The leader's allocator: offers, DRF order, decline filters.
    pub allocator: super::allocator::Allocator,
    /// The cluster CA with its key, when `ca_key` is set: signs certificates for agents that
    /// join with a token.
    pub ca_signer: Option<Arc<crate::pki::Ca>>,
    /// Where this master's DNS server listens (UDP and TCP), once bound; unset without DNS.
    pub dns_addr: std::sync::OnceLock<SocketAddr>,
    /// URL package repositories this master fetched, cached for a short time.
    pub package_repos: crate::packages::remote::RemoteRepos,
    bootstrap_admin: Option<User>,
    /// The token-signing secret of `bootstrap.token_secret_file`, for a new cluster.
    bootstrap_token_secret: Option<String>,
}

pub struct RunningMaster {
    pub master: Arc<Master>,
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The cluster DNS server (`None` when `dns.enabled` is false).
    dns: Option<crate::dns::DnsServer>,
}

impl RunningMaster {
    /// Where the cluster DNS server listens (UDP and TCP), if it runs.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().map(|d| d.addr())
    }

    /// Stops the API, DNS and the Raft node and flushes storage.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(dns) = self.dns {
            dns.stop().await;
        }
        let _ = self.master.raft.shutdown().await;
        for t in self.tasks {
            t.abort();
        }
    }

    /// Simulates a crash: stops everything without a graceful Raft shutdown.
    pub fn crash(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            t.abort();
        }
        let raft = self.master.raft.clone();
        // The Raft core task must stop too, or it would keep the sled database open.
        tokio::spawn(async move {
            let _ = raft.shutdown().await;
        });
    }
}

fn data_dir_err(config: &MasterConfig, message: impl Into<String>) -> MasterError {
    MasterError::DataDir { path: config.data_dir.display().to_string(), message: message.into() }
}

/// Opens the data dir and checks it belongs to this master and this cluster CA.
/// The identity file, checked before the database is opened so that a refused start never
/// touches the database (opening sled runs its recovery, which rewrites files).
const IDENTITY_FILE: &str = "identity.json";

fn open_data_dir(config: &MasterConfig, ca_fingerprint: &str) -> Result<(Arc<dyn Engine>, NodeIdentity), MasterError> {
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        return Err(data_dir_err(config, "exists but is not a directory"));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| data_dir_err(config, format!("cannot create it: {e}")))?;
    let identity_path = config.data_dir.join(IDENTITY_FILE);
    let db_dir = config.data_dir.join("raft.sled");
    let identity = match std::fs::read(&identity_path) {
        Ok(bytes) => {
            let identity: NodeIdentity = serde_json::from_slice(&bytes)
                .map_err(|e| data_dir_err(config, format!("{IDENTITY_FILE} is corrupt: {e}")))?;
            if identity.name != config.name {
                return Err(data_dir_err(
                    config,
                    format!(
                        "it belongs to master {:?}, not {:?}; use that master's name or another data dir",
                        identity.name, config.name
                    ),
                ));
            }
            if identity.ca_fingerprint != ca_fingerprint {
                return Err(data_dir_err(
                    config,
                    format!(
                        "it was created under another cluster CA (fingerprint {}), but tls.ca has fingerprint {}; \
                         point tls.ca at that cluster's CA or use an empty data dir",
                        identity.ca_fingerprint, ca_fingerprint
                    ),
                ));
            }
            Some(identity)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if db_dir.exists() {
                return Err(data_dir_err(
                    config,
                    format!(
                        "it has a database but no {IDENTITY_FILE}; it is corrupt or foreign: use an empty data dir"
                    ),
                ));
            }
            None
        }
        Err(e) => return Err(data_dir_err(config, format!("cannot read {IDENTITY_FILE}: {e}"))),
    };
    // A small page cache: the state machine lives in memory already; sled holds the log.
    let engine = SledEngine::open(&db_dir, 16 << 20).map_err(|e| {
        data_dir_err(
            config,
            format!("cannot open the database ({e}); if it is corrupt, move it aside and re-add this master with `medos master add`"),
        )
    })?;
    let engine: Arc<dyn Engine> = Arc::new(engine);
    let identity = match identity {
        Some(identity) => identity,
        None => {
            let identity = NodeIdentity {
                // Below 2^53 so JSON clients that use doubles (JavaScript) read ids exactly.
                id: (rand::random::<u64>() & ((1 << 53) - 1)).max(1),
                name: config.name.clone(),
                ca_fingerprint: ca_fingerprint.to_string(),
            };
            crate::atomic_file::write_atomic(
                &identity_path,
                &serde_json::to_vec_pretty(&identity).expect("identity serialises"),
            )
            .map_err(|e| data_dir_err(config, e))?;
            identity
        }
    };
    Ok((engine, identity))
}

fn raft_config(config: &MasterConfig) -> Result<openraft::Config, MasterError> {
    let tuning = &config.raft;
    let raft = openraft::Config {
        cluster_name: "medos".into(),
        heartbeat_interval: tuning.heartbeat_ms,
        election_timeout_min: tuning.election_min_ms,
        election_timeout_max: tuning.election_max_ms,
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(tuning.snapshot_every),
        max_in_snapshot_log_to_keep: tuning.keep_after_snapshot,
        max_payload_entries: 1000,
        // Purge in batches, but never in batches larger than a snapshot interval.
        purge_batch_size: (tuning.snapshot_every / 4).clamp(1, 256),
        ..Default::default()
    };
    raft.validate().map_err(|e| MasterError::Raft(e.to_string()))
}

fn read_admin(config: &MasterConfig) -> Result<Option<User>, MasterError> {
    let (Some(uid), Some(file)) = (&config.bootstrap.admin_user, &config.bootstrap.admin_password_file) else {
        return Ok(None);
    };
    crate::core::users::validate_uid(uid).map_err(|e| MasterError::Bootstrap(format!("bootstrap.admin_user: {e}")))?;
    let password = std::fs::read_to_string(file).map_err(|e| {
        MasterError::Bootstrap(format!("cannot read bootstrap.admin_password_file {}: {e}", file.display()))
    })?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(MasterError::Bootstrap(format!("{} is empty; write the admin password into it", file.display())));
    }
    let hash = crate::auth::hash_password(password).map_err(|e| MasterError::Bootstrap(e.to_string()))?;
    Ok(Some(User { uid: uid.clone(), password_hash: hash, description: "bootstrap administrator".into() }))
}

fn read_token_secret(config: &MasterConfig) -> Result<Option<String>, MasterError> {
    let Some(file) = &config.bootstrap.token_secret_file else { return Ok(None) };
    let text = std::fs::read_to_string(file).map_err(|e| {
        MasterError::Bootstrap(format!("cannot read bootstrap.token_secret_file {}: {e}", file.display()))
    })?;
    let secret = text.trim().to_string();
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(&secret) {
        Ok(bytes) if bytes.len() >= 32 => Ok(Some(secret)),
        _ => Err(MasterError::Bootstrap(format!(
            "bootstrap.token_secret_file {} must hold at least 32 bytes in base64 (as `medos installer genconf` writes)",
            file.display()
        ))),
    }
}

/// Starts a master. `listener` lets tests bind port 0; otherwise `config.listen` is bound.
pub async fn start(
    config: MasterConfig,
    listener: Option<TcpListener>,
    faults: Option<Arc<Faults>>,
) -> Result<RunningMaster, MasterError> {
    crate::pki::install_crypto_provider();
    let server_tls = Arc::new(config.tls.server_config()?);
    let client_tls = config.tls.mutual_client_config()?;
    let ca_fingerprint = config.tls.ca_fingerprint()?;
    let ca_pem = std::fs::read_to_string(&config.tls.ca)
        .map_err(|source| PkiError::Read { path: config.tls.ca.clone(), source })?;
    let bootstrap_admin = read_admin(&config)?;
    let bootstrap_token_secret = read_token_secret(&config)?;
    let ca_signer = match &config.ca_key {
        Some(key) => Some(Arc::new(
            crate::pki::Ca::load_files(&config.tls.ca, key).map_err(|e| MasterError::CaKey(e.to_string()))?,
        )),
        None => None,
    };
    let (engine, identity) = open_data_dir(&config, &ca_fingerprint)?;
    let blobs = crate::image::BlobStore::new(config.data_dir.join("blobs"))
        .map_err(|e| data_dir_err(&config, format!("blob store: {e}")))?;
    if let Err(e) = blobs.remove_temp_files() {
        tracing::warn!(error = %e, "could not clear unfinished blob uploads");
    }

    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|source| MasterError::Listen { addr: config.listen, source })?,
    };
    let addr = listener.local_addr().map_err(|source| MasterError::Listen { addr: config.listen, source })?;

    let peers = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls)
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| MasterError::Raft(format!("building the peer client: {e}")))?;

    let log_store = LogStore::new(engine.clone());
    if log_store.step_down_after_restart(identity.id).await.map_err(|e| data_dir_err(&config, e.to_string()))? {
        tracing::info!("this master led the cluster before it stopped; it rejoins as a follower");
    }
    let sm = StateMachineStore::open(engine.clone()).map_err(|e| data_dir_err(&config, e.to_string()))?;
    let state = sm.state();
    let applied = sm.subscribe();
    let events = sm.events();
    let cluster_state = state.clone();
    let network = Network {
        self_id: identity.id,
        http: peers.clone(),
        cluster_id: Arc::new(move || cluster_state.read().ok().and_then(|s| s.cluster_id().map(String::from))),
        faults: faults.clone(),
    };
    let raft = Raft::new(identity.id, Arc::new(raft_config(&config)?), network, log_store.clone(), sm)
        .await
        .map_err(|e| MasterError::Raft(e.to_string()))?;

    let request_timeout = Duration::from_millis(config.raft.request_timeout_ms);
    let package_repos = crate::packages::remote::RemoteRepos::new(ca_pem.as_bytes());
    let master = Arc::new(Master {
        id: identity.id,
        name: config.name.clone(),
        advertise: config.advertise.clone(),
        raft,
        state,
        peers,
        config,
        log_store,
        ca_pem,
        started: Instant::now(),
        request_timeout,
        applied,
        events,
        agents: Default::default(),
        blobs: Arc::new(blobs),
        marathon: Default::default(),
        allocator: Default::default(),
        ca_signer,
        dns_addr: std::sync::OnceLock::new(),
        package_repos,
        bootstrap_admin,
        bootstrap_token_secret,
    });
    tracing::info!(name = %master.name, id = master.id, %addr, "master starting");

    let dns = if master.config.dns.enabled {
        let metrics = master.raft.metrics();
        let leader: crate::dns::LeaderFn = Arc::new(move || metrics.borrow().current_leader);
        match crate::dns::DnsServer::start(&master.config.dns, master.state.clone(), master.applied.clone(), leader)
            .await
        {
            Ok(dns) => {
                let _ = master.dns_addr.set(dns.addr());
                Some(dns)
            }
            Err(e) => {
                let _ = master.raft.shutdown().await;
                return Err(e.into());
            }
        }
    } else {
        None
    };

    let (shutdown, shutdown_rx) = watch::channel(false);
    let app = crate::api::router(master.clone(), faults);
    let server = tokio::spawn(crate::api::server::serve(listener, server_tls, app, shutdown_rx));
    let bootstrap = tokio::spawn(bootstrap_loop(master.clone()));
    let duties = tokio::spawn(leader_duties(master.clone()));
    let agent_duties = tokio::spawn(super::agents::agent_duties(master.clone()));
    let blob_sync = tokio::spawn(super::blob_sync::run(master.clone()));
    let marathon = tokio::spawn(super::marathon::marathon_duties(master.clone()));
    let dns_addr = dns.as_ref().and_then(|d| advertised_dns(d.addr(), &master.config.advertise));
    let publish_dns = tokio::spawn(publish_dns(master.clone(), dns_addr));
    let publish_vip_range = tokio::spawn(publish_vip_range(master.clone()));
    Ok(RunningMaster {
        master,
        addr,
        shutdown,
        tasks: vec![server, bootstrap, duties, agent_duties, blob_sync, marathon, publish_dns, publish_vip_range],
        dns,
    })
}

/// Where agents and tasks reach this master's DNS server: the address it listens on, or, when
/// that is a wildcard, the address of its advertised API URL (which must then be an IP).
fn advertised_dns(listen: std::net::SocketAddr, advertise: &str) -> Option<String> {
    if !listen.ip().is_unspecified() {
        return Some(listen.to_string());
    }
    let host =
        advertise.parse::<axum::http::Uri>().ok()?.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Some(std::net::SocketAddr::new(ip, listen.port()).to_string()),
        Err(_) => {
            tracing::warn!(%advertise, "cluster DNS listens on every address but the advertised API URL names no IP; agents will not point tasks at this master's DNS (set [dns] listen to this host's address)");
            None
        }
    }
}

/// Records this master's DNS address in the replicated state (agents point tasks at every
/// master's DNS), and again whenever the state forgets or changes it (a master removed and
/// added again, a new address after a restart).
async fn publish_dns(master: Arc<Master>, addr: Option<String>) {
    let mut applied = master.applied.clone();
    loop {
        let recorded = {
            let state = master.state.read().expect("state lock");
            let member = state.masters.iter().any(|m| m.name == master.name);
            (state.cluster_id().is_some() && member).then(|| state.master_dns.get(&master.name).cloned())
        };
        if let Some(recorded) = recorded
            && recorded != addr
        {
            let command = Command::MasterDns { name: master.name.clone(), addr: addr.clone() };
            if let Err(e) = master.propose(command).await {
                tracing::debug!(error = %e, "recording this master's DNS address failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}

/// The leader records its configured VIP range in the replicated state when the state holds
/// another (or none): VIPs are allocated from the range every master applies the same way.
async fn publish_vip_range(master: Arc<Master>) {
    let Ok(range) = crate::core::vips::Range::parse(&master.config.dns.vip_range) else { return };
    let range = range.to_string();
    loop {
        let stale = master.is_leader() && {
            let state = master.state.read().expect("state lock");
            state.cluster_id().is_some() && state.vips.range.as_deref() != Some(range.as_str())
        };
        if stale {
            if let Err(e) = master.propose(Command::VipRange { range: range.clone() }).await {
                tracing::debug!(error = %e, "recording the VIP range failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tracing::info!(%range, "VIP range recorded");
        }
        // Only this loop changes the range, so a look every 2 s is enough (a new leader records
        // its range within 2 s), and it stays off the path of every applied entry.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// On a fresh cluster, the initial master with the smallest name gathers every initial
/// master's id and initialises Raft with all of them.
async fn bootstrap_loop(master: Arc<Master>) {
    let initial = &master.config.initial_masters;
    let Some(first) = initial.iter().map(|m| &m.name).min() else { return };
    if *first != master.name {
        return;
    }
    loop {
        match master.raft.is_initialized().await {
            Ok(true) | Err(_) => return,
            Ok(false) => {}
        }
        let mut members = BTreeMap::new();
        let mut missing = Vec::new();
        for m in initial {
            if m.name == master.name {
                members.insert(master.id, MasterNode { name: master.name.clone(), api: master.advertise.clone() });
                continue;
            }
            match master.fetch_identity(&m.api).await {
                Ok(id) if id.name == m.name => {
                    members.insert(id.id, MasterNode { name: id.name, api: m.api.clone() });
                }
                Ok(id) => missing.push(format!("{} answers as {:?}", m.api, id.name)),
                Err(e) => missing.push(format!("{}: {e}", m.name)),
            }
        }
        if missing.is_empty() {
            match master.raft.initialize(members).await {
                Ok(()) => tracing::info!("initialised the Raft group with {} masters", initial.len()),
                Err(e) => tracing::info!(error = %e, "raft already initialised"),
            }
            return;
        }
        tracing::info!(waiting_for = ?missing, "waiting for the initial masters");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Work only the leader does: for now, giving a new cluster its identity.
async fn leader_duties(master: Arc<Master>) {
    let mut metrics = master.raft.metrics();
    loop {
        let is_leader = metrics.borrow().state == ServerState::Leader;
        let uninitialised = master.state.read().expect("state lock").identity.is_none();
        if is_leader && uninitialised {
            let command = Command::InitCluster {
                cluster_id: new_cluster_id(),
                created_at_ms: crate::clock::now_ms(),
                token_secret: master.bootstrap_token_secret.clone().unwrap_or_else(crate::auth::new_token_secret),
                admin: master.bootstrap_admin.clone(),
            };
            match master.raft.client_write(command).await {
                Ok(r) => tracing::info!(result = ?r.data, "cluster identity set"),
                Err(e) => tracing::warn!(error = %e, "could not set the cluster identity yet"),
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn new_cluster_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

enum Forwarded<T> {
    Done(T),
    /// The leader did not receive the request or refused it before proposing: safe to retry.
    Retry(String),
}

impl Master {
    pub fn leader(&self) -> Option<(NodeId, MasterNode)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// The members as this master currently sees them.
    pub fn members(&self) -> Vec<MasterInfo> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, n)| MasterInfo { id: *id, name: n.name.clone(), api: n.api.clone(), voter: voters.contains(id) })
            .collect()
    }

    pub fn identity(&self) -> IdentityAnswer {
        IdentityAnswer {
            id: self.id,
            name: self.name.clone(),
            api: self.advertise.clone(),
            cluster_id: self.state.read().expect("state lock").cluster_id().map(String::from),
        }
    }

    pub async fn fetch_identity(&self, api: &str) -> Result<IdentityAnswer, String> {
        let resp = self
            .peers
            .get(format!("{api}/internal/v1/identity"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("bad identity answer: {e}"))
    }

    /// Waits up to `max` for the leader to differ from `previous` (or to exist).
    async fn await_leader_change(&self, previous: Option<NodeId>, deadline: Instant) -> Result<(), ProposeError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(ProposeError::NoLeader(self.request_timeout));
        }
        let step = (deadline - now).min(Duration::from_millis(300));
        let _ = self
            .raft
            .wait(Some(step))
            .metrics(|m| m.current_leader.is_some() && m.current_leader != previous, "leader change")
            .await;
        Ok(())
    }

    /// Proposes `command` through Raft and returns its response once applied. Any master
    /// accepts: followers forward to the leader. Retries only when the command was certainly
    /// not proposed, so a command is never applied twice because of a retry.
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let leader = self.leader();
            match leader {
                Some((id, _)) if id == self.id => return self.write_as_leader(command).await.map(|p| p.response),
                Some((id, node)) => match self.forward::<_, Proposed>(&node, "/internal/v1/propose", &command).await? {
                    Forwarded::Done(p) => {
                        // Answer only once this master has applied the write too, so that a
                        // read right after it on this master sees it.
                        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
                        self.raft
                            .wait(Some(remaining))
                            .applied_index_at_least(Some(p.index), "forwarded write")
                            .await
                            .map_err(|_| {
                                ProposeError::Unknown("the write was committed but this master lags".into())
                            })?;
                        return Ok(p.response);
                    }
                    Forwarded::Retry(why) => {
                        tracing::debug!(%why, "retrying a forwarded write");
                        self.await_leader_change(Some(id), deadline).await?;
                    }
                },
                None => self.await_leader_change(None, deadline).await?,
            }
        }
    }

    /// Returns once this master's state reflects every write acknowledged before the call
    /// (read-index: the leader confirms its leadership with a quorum and names its commit
    /// index; this master waits until it has applied that far).
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            match self.leader() {
                Some((id, _)) if id == self.id => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(remaining, self.raft.ensure_linearizable()).await {
                        Err(_) => return Err(ProposeError::NoLeader(self.request_timeout)),
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(RaftError::Fatal(_))) => return Err(ProposeError::Stopped),
                        Ok(Err(RaftError::APIError(_))) => self.await_leader_change(Some(id), deadline).await?,
                    }
                }
                Some((id, node)) => match self.forward::<_, ReadIndex>(&node, "/internal/v1/read_index", &()).await? {
                    Forwarded::Done(ReadIndex { index }) => {
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        return self
                            .raft
                            .wait(Some(remaining))
                            .applied_index_at_least(Some(index), "read index")
                            .await
                            .map(|_| ())
                            .map_err(|_| ProposeError::NoLeader(self.request_timeout));
                    }
                    Forwarded::Retry(_) => self.await_leader_change(Some(id), deadline).await?,
                },
                None => self.await_leader_change(None, deadline).await?,
            }
        }
    }

    /// The leader's half of a follower's linearizable read.
    pub async fn leader_read_index(&self) -> Result<ReadIndex, ProposeError> {
        match tokio::time::timeout(self.request_timeout, self.raft.get_read_log_id()).await {
            Err(_) => Err(ProposeError::NoLeader(self.request_timeout)),
            Ok(Ok((read, applied))) => {
                let index = read.map_or(0, |l| l.index).max(applied.map_or(0, |l| l.index));
                Ok(ReadIndex { index })
            }
            Ok(Err(RaftError::Fatal(_))) => Err(ProposeError::Stopped),
            Ok(Err(RaftError::APIError(e))) => Err(ProposeError::Other(e.to_string())),
        }
    }

    async fn forward<Req: Serialize, Resp: for<'de> Deserialize<'de>>(
        &self,
        leader: &MasterNode,
        path: &str,
        body: &Req,
    ) -> Result<Forwarded<Resp>, ProposeError> {
        let sent =
            self.peers.post(format!("{}{path}", leader.api)).timeout(self.request_timeout).json(body).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Ok(Forwarded::Retry(format!("leader {leader} unreachable: {e}"))),
            Err(e) => return Err(ProposeError::Unknown(format!("forwarding to {leader}: {e}"))),
        };
        match resp.status().as_u16() {
            200 => resp.json().await.map(Forwarded::Done).map_err(|e| ProposeError::Unknown(e.to_string())),
            // 421 Misdirected Request: that master is no longer the leader and proposed nothing.
            421 => Ok(Forwarded::Retry(format!("{leader} is no longer the leader"))),
            503 => Err(ProposeError::Unknown(resp.text().await.unwrap_or_default())),
            status => Err(ProposeError::Other(format!(
                "{leader} answered {status}: {}",
                resp.text().await.unwrap_or_default()
            ))),
        }
    }

    /// Proposes a command received from another master: no second forwarding hop.
    pub async fn propose_local(&self, command: Command) -> Result<Option<Proposed>, ProposeError> {
        if !self.is_leader() {
            return Ok(None);
        }
        self.write_as_leader(command).await.map(Some)
    }

    /// `client_write` on this (leader) node, bounded by the request timeout. A leader cut
    /// off from its quorum cannot commit, so the caller gets an error instead of waiting.
    async fn write_as_leader(&self, command: Command) -> Result<Proposed, ProposeError> {
        match tokio::time::timeout(self.request_timeout, self.raft.client_write(command)).await {
            Err(_) => Err(ProposeError::Unknown(format!(
                "not committed within {:?}: this master may be cut off from a majority",
                self.request_timeout
            ))),
            Ok(Ok(r)) => Ok(Proposed { response: r.data, index: r.log_id.index }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ProposeError::Unknown("leadership changed during the write".into()))
            }
            Ok(Err(RaftError::APIError(e))) => Err(ProposeError::Other(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => Err(ProposeError::Stopped),
        }
    }

    /// Adds the master serving at `api` as a learner, waits for it to catch up, then makes
    /// it a voter. Must run on the leader.
    pub async fn add_master(&self, api: &str) -> Result<MasterInfo, String> {
        let api = api.trim_end_matches('/');
        let who = self.fetch_identity(api).await.map_err(|e| format!("cannot reach the new master at {api}: {e}"))?;
        let ours = self.state.read().expect("state lock").cluster_id().map(String::from);
        if let (Some(theirs), Some(ours)) = (&who.cluster_id, &ours)
            && theirs != ours
        {
            return Err(format!("{api} belongs to cluster {theirs}, not {ours}; give it an empty data dir"));
        }
        let members = self.members();
        if let Some(existing) = members.iter().find(|m| m.name == who.name) {
            if existing.id == who.id && existing.voter {
                return Ok(existing.clone());
            }
            if existing.id != who.id {
                return Err(format!("a master named {:?} is already a member; remove it first", who.name));
            }
        }
        let node = MasterNode { name: who.name.clone(), api: api.to_string() };
        let add = tokio::time::timeout(Duration::from_secs(120), self.raft.add_learner(who.id, node, true)).await;
        add.map_err(|_| "the new master did not catch up within 120 s".to_string())?.map_err(|e| e.to_string())?;
        let ids = std::iter::once(who.id).collect();
        self.raft.change_membership(ChangeMembers::AddVoterIds(ids), false).await.map_err(|e| e.to_string())?;
        Ok(MasterInfo { id: who.id, name: who.name, api: api.to_string(), voter: true })
    }

    /// Removes the master named `name` from the group. Must run on the leader.
    pub async fn remove_master(&self, name: &str) -> Result<MasterInfo, String> {
        let members = self.members();
        let target = members
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| format!("no master named {name:?}; see `medos cluster status`"))?;
        let ids: std::collections::BTreeSet<NodeId> = std::iter::once(target.id).collect();
        if target.voter {
            if members.iter().filter(|m| m.voter).count() == 1 {
                return Err("cannot remove the last voting master".into());
            }
            self.raft.change_membership(ChangeMembers::RemoveVoters(ids), false).await.map_err(|e| e.to_string())?;
        } else {
            self.raft.change_membership(ChangeMembers::RemoveNodes(ids), false).await.map_err(|e| e.to_string())?;
        }
        Ok(target)
    }
}
