//! In-process cluster harness: real masters (Raft, sled, TLS, HTTP) in one process on
//! 127.0.0.1 with ephemeral ports, and injectable network faults.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medos::api::client::Client;
use medos::master::config::{BootstrapConfig, DnsConfig, InitialMaster, MasterConfig, RaftTuning};
use medos::master::network::Faults;
use medos::master::{RunningMaster, start};
use medos::pki::{Ca, Role, TlsFiles};
use tokio::net::TcpListener;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct-horse";

/// Timings tightened for tests; still comfortably above one fsync on a busy 2-core host.
pub fn fast_tuning() -> RaftTuning {
    RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 500,
        election_max_ms: 1000,
        snapshot_every: 10_000,
        keep_after_snapshot: 1_000,
        request_timeout_ms: 3_000,
    }
}

pub struct Node {
    pub config: MasterConfig,
    pub running: Option<RunningMaster>,
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub faults: Arc<Faults>,
    pub nodes: BTreeMap<String, Node>,
    pub tuning: RaftTuning,
    /// Whether masters get the CA key (`ca_key`) and so sign certificates for joining agents.
    pub ca_key: bool,
    /// The DNS settings every master gets (`None`: no DNS server).
    pub dns: Option<DnsConfig>,
    ca: Ca,
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs to the test's output when `MEDOS_LOG` is set (e.g. `MEDOS_LOG=medos=debug`).
pub fn init_logging() {
    if let Ok(filter) = std::env::var("MEDOS_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

impl TestCluster {
    /// Starts `n` masters that bootstrap together.
    pub async fn start(n: usize, tuning: RaftTuning) -> Self {
        Self::start_with_ca_key(n, tuning, true).await
    }

    /// Starts `n` masters that bootstrap together, with or without the CA key.
    pub async fn start_with_ca_key(n: usize, tuning: RaftTuning, ca_key: bool) -> Self {
        Self::start_with_options(n, tuning, ca_key, None).await
    }

    /// Starts `n` masters that bootstrap together, each with a DNS server configured by `dns`
    /// (give `listen` port 0 for a free port per master).
    pub async fn start_with_dns(n: usize, tuning: RaftTuning, dns: DnsConfig) -> Self {
        Self::start_with_options(n, tuning, true, Some(dns)).await
    }

    async fn start_with_options(n: usize, tuning: RaftTuning, ca_key: bool, dns: Option<DnsConfig>) -> Self {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(&dir.path().join("pki"), "test").unwrap();
        std::fs::write(dir.path().join("password"), PASSWORD).unwrap();
        let mut cluster =
            TestCluster { dir, faults: Arc::new(Faults::default()), nodes: BTreeMap::new(), tuning, ca_key, dns, ca };
        let mut listeners = Vec::new();
        for i in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.push((format!("m{i}"), listener));
        }
        let initial: Vec<InitialMaster> = listeners
            .iter()
            .map(|(name, l)| InitialMaster { name: name.clone(), api: format!("https://{}", l.local_addr().unwrap()) })
            .collect();
        for (name, listener) in listeners {
            let config = cluster.config_for(&name, listener.local_addr().unwrap().port(), initial.clone());
            let running = start(config.clone(), Some(listener), Some(cluster.faults.clone())).await.unwrap();
            cluster.nodes.insert(name, Node { config, running: Some(running) });
        }
        cluster.wait_leader().await;
        cluster
    }

    fn config_for(&self, name: &str, port: u16, initial: Vec<InitialMaster>) -> MasterConfig {
        let pki = self.dir.path().join("pki");
        let issued = self.ca.issue(Role::Master, name, &["127.0.0.1".into()], &pki).unwrap();
        MasterConfig {
            name: name.into(),
            data_dir: self.dir.path().join(name),
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            advertise: format!("https://127.0.0.1:{port}"),
            initial_masters: initial,
            tls: TlsFiles { ca: pki.join("ca.crt"), cert: issued.cert, key: issued.key },
            ca_key: self.ca_key.then(|| pki.join("ca.key")),
            bootstrap: BootstrapConfig {
                admin_user: Some(ADMIN.into()),
                admin_password_file: Some(self.dir.path().join("password")),
                ..Default::default()
            },
            raft: self.tuning.clone(),
            agents: medos::master::config::AgentTimeouts { heartbeat_interval_ms: 200, unreachable_after_ms: 1_500 },
            dns: self.dns.clone().unwrap_or_else(DnsConfig::disabled),
        }
    }

    /// Starts a new, empty master that is not part of the group (for `add_master`).
    pub async fn spawn_joiner(&mut self, name: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = self.config_for(name, listener.local_addr().unwrap().port(), Vec::new());
        config.bootstrap = BootstrapConfig::default();
        let running = start(config.clone(), Some(listener), Some(self.faults.clone())).await.unwrap();
        let api = config.advertise.clone();
        self.nodes.insert(name.into(), Node { config, running: Some(running) });
        api
    }

    /// A server certificate for 127.0.0.1 from the cluster's test CA: `(cert_pem, key_pem)`.
    pub fn issue_server_pem(&self, name: &str) -> (String, String) {
        self.ca.issue_pem(Role::Master, name, &["127.0.0.1".into()]).unwrap()
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("pki/ca.crt")).unwrap()
    }

    pub fn url(&self, name: &str) -> String {
        self.nodes[name].config.advertise.clone()
    }

    pub fn id(&self, name: &str) -> u64 {
        self.nodes[name].running.as_ref().expect("node is running").master.id
    }

    pub fn running(&self) -> Vec<&str> {
        self.nodes.iter().filter(|(_, n)| n.running.is_some()).map(|(k, _)| k.as_str()).collect()
    }

    /// A logged-in client that talks only to `name`.
    pub async fn client(&self, name: &str) -> Client {
        let anon = Client::new(vec![self.url(name)], &self.ca_pem(), None).unwrap();
        let token =
            wait_for("login", Duration::from_secs(20), || async { anon.login(ADMIN, PASSWORD).await.ok() }).await;
        Client::new(vec![self.url(name)], &self.ca_pem(), Some(token)).unwrap()
    }

    /// The leader every running, non-isolated master agrees on.
    pub async fn wait_leader(&self) -> String {
        self.wait_leader_among(&self.running()).await
    }

    pub async fn wait_leader_among(&self, names: &[&str]) -> String {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        wait_for("an agreed leader", Duration::from_secs(20), || {
            let names = names.clone();
            async move {
                let mut leaders = names.iter().map(|n| {
                    let m = &self.nodes[n].running.as_ref().unwrap().master;
                    m.leader().map(|(_, node)| node.name)
                });
                let first = leaders.next()??;
                let initialised = names
                    .iter()
                    .all(|n| self.nodes[n].running.as_ref().unwrap().master.state.read().unwrap().identity.is_some());
                (leaders.all(|l| l.as_deref() == Some(first.as_str())) && initialised && names.contains(&first))
                    .then_some(first)
            }
        })
        .await
    }

    pub fn crash(&mut self, name: &str) {
        let running = self.nodes.get_mut(name).unwrap().running.take().expect("node is running");
        running.crash();
    }

    pub async fn stop(&mut self, name: &str) {
        let running = self.nodes.get_mut(name).unwrap().running.take().expect("node is running");
        running.shutdown().await;
    }

    /// Restarts a stopped master on its old port and data dir.
    pub async fn restart(&mut self, name: &str) {
        let config = self.nodes[name].config.clone();
        // The old Raft core releases the sled lock asynchronously after a crash.
        let running = wait_for("the data dir to be released", Duration::from_secs(20), || {
            let config = config.clone();
            let faults = self.faults.clone();
            async move {
                let listener = TcpListener::bind(config.listen).await.ok()?;
                start(config, Some(listener), Some(faults)).await.ok()
            }
        })
        .await;
        self.nodes.get_mut(name).unwrap().running = Some(running);
    }

    /// Config for an in-process agent named `name` with a certificate from the test CA.
    pub fn agent_config(&self, name: &str) -> medos::agent::AgentConfig {
        let pki = self.dir.path().join("pki");
        let issued = self.ca.issue(Role::Agent, name, &["127.0.0.1".into()], &pki).unwrap();
        medos::agent::AgentConfig {
            name: name.into(),
            hostname: name.into(),
            address: "127.0.0.1".into(),
            masters: self.nodes.values().map(|n| n.config.advertise.clone()).collect(),
            work_dir: self.dir.path().join(name),
            tls: TlsFiles { ca: pki.join("ca.crt"), cert: issued.cert, key: issued.key },
            ports: vec!["31000-31009".into()],
            resources: medos::agent::config::ResourceOverrides {
                cpus: Some(4.0),
                mem: Some(4096.0),
                disk: Some(10_000.0),
            },
            attributes: Default::default(),
            public: false,
            api: String::new(),
            listen: None,
            join_token: None,
        }
    }

    /// Waits until a running master's state has exactly `n` active agents.
    pub async fn wait_active_agents(&self, n: usize, timeout: Duration) {
        let master = self.any_master();
        wait_for(&format!("{n} active agent(s)"), timeout, || {
            let m = master.clone();
            async move {
                let state = m.state.read().unwrap();
                (state.agents.values().filter(|a| a.status == medos::core::AgentStatus::Active).count() == n)
                    .then_some(())
            }
        })
        .await;
    }

    /// Any running master.
    pub fn any_master(&self) -> std::sync::Arc<medos::master::Master> {
        self.nodes.values().find_map(|n| n.running.as_ref()).expect("a running master").master.clone()
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.nodes[name].config.data_dir.clone()
    }

    pub async fn shutdown(mut self) {
        let names: Vec<String> = self.running().iter().map(|s| s.to_string()).collect();
        for name in names {
            self.stop(&name).await;
        }
    }
}
