//! Running the real binary: a `medos dev` cluster as a guard that owns every process it
//! starts, the CLI as a subprocess, and polling with deadlines.
//!
//! Cleanup is the guard's job, also when a test panics: `Drop` SIGKILLs the `medos dev`
//! process group (the masters it spawned are in it), every master the test restarted or added
//! itself, and every master still listed in `cluster.json` (after checking `/proc/PID/cmdline`
//! names this cluster's config, so a reused pid is never hit). On a panic it prints the tail
//! of every master log first. `MEDOS_E2E_KEEP=1` keeps the temp dir for a post-mortem.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use medos::api::client::Client;
use medos::api::cluster::ClusterStatus;
use medos::dev::{ClusterFile, NodeEntry};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The binary under test.
pub const MEDOS: &str = env!("CARGO_BIN_EXE_medos");

/// How long a cluster may take to come up on a loaded 2-core machine with a debug build.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long any single condition may take before a test gives up.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(60);

static CLUSTER_SLOTS: RwLock<()> = RwLock::const_new(());

/// Taken by every test that runs a cluster; tests that measure time take [`exclusive_slot`]
/// instead so that no other cluster competes for the 2 cores while they measure.
pub async fn shared_slot() -> RwLockReadGuard<'static, ()> {
    CLUSTER_SLOTS.read().await
}

pub async fn exclusive_slot() -> RwLockWriteGuard<'static, ()> {
    CLUSTER_SLOTS.write().await
}

/// Polls `attempt` every 100 ms until it returns `Ok`, panicking with the last error after
/// `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match attempt().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if start.elapsed() > timeout {
            panic!("{what}: not reached within {timeout:?}; last attempt: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on 127.0.0.1 (free when this returns; a race with other binders is
/// possible but unlikely).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl CliOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics unless the command exited 0.
    pub fn success(self, what: &str) -> Self {
        assert!(
            self.status.success(),
            "{what}: exited {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout_text(),
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout_text(), self.stderr))
    }
}

/// Runs `medos ARGS` with `MEDOS_CONFIG_DIR=config_dir`, none of the `MEDOS_URL`,
/// `MEDOS_TOKEN`, `MEDOS_CA_FILE` overrides unless given in `envs`, and a 60 s limit.
/// Panics if the process panicked: a panic is never an acceptable way to fail.
pub async fn cli(config_dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> CliOutput {
    let mut cmd = tokio::process::Command::new(MEDOS);
    cmd.args(args)
        .env("MEDOS_CONFIG_DIR", config_dir)
        .env_remove("MEDOS_URL")
        .env_remove("MEDOS_TOKEN")
        .env_remove("MEDOS_CA_FILE")
        .env_remove("MEDOS_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("medos {args:?} did not finish within 60 s"))
        .unwrap_or_else(|e| panic!("running medos {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "medos {args:?} panicked:\n{stderr}");
    CliOutput { status: out.status, stdout: out.stdout, stderr }
}

/// How a master process is held.
enum Proc {
    /// Spawned by `medos dev` (its child, in its process group).
    Dev(u32),
    /// Spawned by the test (restarted or added).
    Own(Child),
    Stopped,
}

/// One master of the cluster.
pub struct MasterHandle {
    pub name: String,
    pub api: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    proc_: Proc,
}

impl MasterHandle {
    fn from_entry(n: &NodeEntry) -> Self {
        Self {
            name: n.name.clone(),
            api: n.api.clone(),
            config: n.config.clone(),
            data_dir: n.data_dir.clone(),
            log: n.log.clone(),
            proc_: Proc::Dev(n.pid),
        }
    }

    pub fn is_running(&self) -> bool {
        !matches!(self.proc_, Proc::Stopped)
    }

    fn pid(&self) -> Option<u32> {
        match &self.proc_ {
            Proc::Dev(pid) => Some(*pid),
            Proc::Own(child) => Some(child.id()),
            Proc::Stopped => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct DevReady {
    cluster_id: String,
    api: Vec<String>,
    nodes: Vec<NodeEntry>,
}

/// True once `pid` has exited (gone, or a zombie waiting for its parent).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Blocks (briefly) until `pid` has exited; SIGKILL is synchronous enough that this takes
/// milliseconds.
fn wait_dead(pid: u32, timeout: Duration) {
    let start = Instant::now();
    while !is_dead(pid) {
        assert!(start.elapsed() < timeout, "process {pid} still alive {timeout:?} after the signal");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILLs `pid` only if it is still a master run with `config` (never a reused pid).
fn kill_if_ours(pid: u32, config: &Path) {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return };
    let config = config.as_os_str().as_encoded_bytes();
    if cmdline.windows(config.len()).any(|w| w == config) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A `medos dev` cluster in its own temp dir, with its own CLI config dir.
pub struct DevCluster {
    pub dir: PathBuf,
    /// `MEDOS_CONFIG_DIR` for CLI calls against this cluster (`medos dev` attaches it there).
    pub cli_config: PathBuf,
    pub cluster_id: String,
    pub ca_pem: Vec<u8>,
    pub admin_password: String,
    pub token: String,
    pub masters: Vec<MasterHandle>,
    initial_masters: u8,
    dev: Option<Child>,
    dev_log: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl DevCluster {
    /// Runs `medos --json dev --masters N --dir TMP/cluster` and waits for its readiness line.
    pub async fn start(masters: u8) -> Self {
        let tmp = tempfile::Builder::new().prefix("medos-e2e-").tempdir().expect("creating a temp dir");
        let dir = tmp.path().join("cluster");
        let cli_config = tmp.path().join("cli");
        std::fs::create_dir_all(&cli_config).expect("creating the CLI config dir");
        let mut cluster = Self {
            dev_log: tmp.path().join("dev.log"),
            dir,
            cli_config,
            cluster_id: String::new(),
            ca_pem: Vec::new(),
            admin_password: String::new(),
            token: String::new(),
            masters: Vec::new(),
            initial_masters: masters,
            dev: None,
            tmp: Some(tmp),
        };
        cluster.run_dev().await;
        cluster.ca_pem = std::fs::read(cluster.dir.join("pki/ca.crt")).expect("reading the dev CA");
        cluster.admin_password = std::fs::read_to_string(cluster.dir.join("admin-password"))
            .expect("reading the admin password")
            .trim()
            .to_string();
        let anon = Client::new(cluster.urls(), &cluster.ca_pem, None).expect("client");
        cluster.token = anon.login("admin", &cluster.admin_password).await.expect("logging in as admin");
        cluster
    }

    /// Spawns `medos dev` on `self.dir` (new or existing) and waits for its JSON line.
    async fn run_dev(&mut self) {
        assert!(self.dev.is_none(), "medos dev is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.dev_log).expect("dev log");
        let mut child = Command::new(MEDOS)
            .args(["--json", "dev", "--masters", &self.initial_masters.to_string(), "--dir"])
            .arg(&self.dir)
            .env("MEDOS_CONFIG_DIR", &self.cli_config)
            .env_remove("MEDOS_URL")
            .env_remove("MEDOS_TOKEN")
            .env_remove("MEDOS_CA_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            // Its own process group: the masters it spawns inherit it, so one killpg stops all.
            .process_group(0)
            .spawn()
            .expect("spawning medos dev");
        let stdout = child.stdout.take().expect("piped stdout");
        self.dev = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let ready: DevReady = loop {
            match rx.try_recv() {
                Ok(line) => match serde_json::from_str(&line) {
                    Ok(ready) => break ready,
                    Err(_) => continue,
                },
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("medos dev closed its stdout before it was ready:\n{}", tail(&self.dev_log, 40))
                }
            }
            if let Some(status) = self.dev.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("medos dev exited ({status}) before it was ready:\n{}", tail(&self.dev_log, 40));
            }
            assert!(start.elapsed() < START_TIMEOUT, "medos dev not ready within {START_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(ready.api.len(), usize::from(self.initial_masters), "readiness line lists every master");
        if self.cluster_id.is_empty() {
            self.cluster_id = ready.cluster_id.clone();
        } else {
            assert_eq!(ready.cluster_id, self.cluster_id, "rerunning medos dev on the same dir keeps the cluster id");
        }
        // Masters only: agents (when `medos dev` runs them) are not this guard's to restart.
        for node in ready.nodes.iter().filter(|n| n.role == "master") {
            match self.masters.iter_mut().find(|m| m.name == node.name) {
                Some(m) => {
                    assert!(!m.is_running(), "{} restarted while still running", node.name);
                    *m = MasterHandle::from_entry(node);
                }
                None => self.masters.push(MasterHandle::from_entry(node)),
            }
        }
    }

    /// Stops `medos dev` with SIGTERM (it stops its masters) and waits for everything to exit.
    pub async fn stop_dev(&mut self) -> ExitStatus {
        let mut dev = self.dev.take().expect("medos dev is running");
        kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).expect("signalling medos dev");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = dev.try_wait().expect("waiting for medos dev") {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "medos dev did not stop within 30 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for m in &mut self.masters {
            if let Proc::Dev(pid) = m.proc_ {
                assert!(is_dead(pid), "{} (pid {pid}) still runs after medos dev stopped", m.name);
                m.proc_ = Proc::Stopped;
            }
        }
        status
    }

    /// Reruns `medos dev` on the same dir (after [`Self::stop_dev`]).
    pub async fn restart_dev(&mut self) {
        self.run_dev().await;
    }

    pub fn urls(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.api.clone()).collect()
    }

    pub fn master(&self, name: &str) -> &MasterHandle {
        self.masters.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no master {name}"))
    }

    fn master_mut(&mut self, name: &str) -> &mut MasterHandle {
        self.masters.iter_mut().find(|m| m.name == name).unwrap_or_else(|| panic!("no master {name}"))
    }

    pub fn names(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.name.clone()).collect()
    }

    /// An admin client for every master URL (as the CLI uses it).
    pub fn client(&self) -> Client {
        self.client_for_urls(self.urls())
    }

    pub fn client_for_urls(&self, urls: Vec<String>) -> Client {
        Client::new(urls, &self.ca_pem, Some(self.token.clone())).expect("client")
    }

    /// An admin client that talks to one master only.
    pub fn client_for(&self, name: &str) -> Client {
        self.client_for_urls(vec![self.master(name).api.clone()])
    }

    /// Runs the CLI against this cluster (the config `medos dev` attached).
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        cli(&self.cli_config, &[], args).await
    }

    /// SIGKILLs a master and waits until it is gone; returns the instant just before the kill.
    pub fn kill9(&mut self, name: &str) -> Instant {
        self.kill9_all(&[name])
    }

    /// SIGKILLs several masters back to back (no waiting in between), then waits for them.
    pub fn kill9_all(&mut self, names: &[&str]) -> Instant {
        let at = Instant::now();
        let mut pids = Vec::new();
        for name in names {
            let m = self.master_mut(name);
            match &mut m.proc_ {
                Proc::Dev(pid) => {
                    kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).expect("SIGKILL");
                    pids.push(*pid);
                }
                Proc::Own(child) => {
                    child.kill().expect("SIGKILL");
                    pids.push(child.id());
                }
                Proc::Stopped => panic!("{name} is not running"),
            }
        }
        for name in names {
            let m = self.master_mut(name);
            match std::mem::replace(&mut m.proc_, Proc::Stopped) {
                Proc::Own(mut child) => {
                    child.wait().expect("reaping a killed master");
                }
                Proc::Dev(pid) => wait_dead(pid, Duration::from_secs(10)),
                Proc::Stopped => {}
            }
        }
        at
    }

    /// Stops a master gracefully (SIGTERM) and waits for it to exit.
    pub async fn stop_master(&mut self, name: &str) {
        let m = self.master_mut(name);
        let pid = m.pid().unwrap_or_else(|| panic!("{name} is not running"));
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
        let start = Instant::now();
        loop {
            let done = match &mut m.proc_ {
                Proc::Own(child) => child.try_wait().expect("waiting").is_some(),
                Proc::Dev(pid) => is_dead(*pid),
                Proc::Stopped => true,
            };
            if done {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{name} did not stop within 20 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        m.proc_ = Proc::Stopped;
    }

    fn spawn_master(config: &Path, log: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("opening the master log");
        Command::new(MEDOS)
            .arg("master")
            .arg("--config")
            .arg(config)
            .env_remove("MEDOS_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawning medos master")
    }

    /// Starts a stopped master again with `medos master --config <its config>`.
    pub fn restart(&mut self, name: &str) {
        let m = self.master_mut(name);
        assert!(!m.is_running(), "{name} is still running");
        m.proc_ = Proc::Own(Self::spawn_master(&m.config, &m.log));
    }

    /// Waits until `name` answers `/v1/health` with 200 (it is in a group with a leader).
    pub async fn wait_healthy(&self, name: &str) {
        let m = self.master(name);
        let client = Client::new(vec![m.api.clone()], &self.ca_pem, None).expect("client");
        eventually(&format!("{name} healthy"), CONDITION_TIMEOUT, || async {
            let resp = client.send(reqwest::Method::GET, "/v1/health", None, false).await.map_err(|e| e.to_string())?;
            if resp.status().is_success() { Ok(()) } else { Err(format!("health {}", resp.status())) }
        })
        .await
    }

    /// `/v1/cluster/status` as one master sees it.
    pub async fn status_of(&self, name: &str) -> Result<ClusterStatus, String> {
        self.client_for(name).cluster_status().await.map_err(|e| e.to_string())
    }

    /// The leader's name, once a running master confirms it is the leader.
    pub async fn leader(&self) -> String {
        eventually("a leader", CONDITION_TIMEOUT, || async {
            for m in self.masters.iter().filter(|m| m.is_running()) {
                if let Ok(s) = self.status_of(&m.name).await
                    && s.leader.as_deref() == Some(m.name.as_str())
                {
                    return Ok(m.name.clone());
                }
            }
            Err("no running master says it is the leader".to_string())
        })
        .await
    }

    /// Waits until `name` has applied everything the leader had in its log when this began.
    pub async fn wait_caught_up(&self, name: &str) {
        let leader = self.leader().await;
        let target = self.status_of(&leader).await.expect("leader status").last_log_index.unwrap_or(0);
        eventually(&format!("{name} caught up to index {target}"), CONDITION_TIMEOUT, || async {
            let s = self.status_of(name).await?;
            match s.last_applied {
                Some(applied) if applied >= target => Ok(()),
                other => Err(format!("applied {other:?}")),
            }
        })
        .await
    }

    /// Waits until every running master is healthy and caught up.
    pub async fn wait_all_caught_up(&self) {
        for m in self.masters.iter().filter(|m| m.is_running()) {
            self.wait_healthy(&m.name).await;
        }
        for m in self.masters.iter().filter(|m| m.is_running()) {
            self.wait_caught_up(&m.name).await;
        }
    }

    /// Issues a certificate, writes a config without `initial_masters` or `[bootstrap]` and
    /// starts a new, empty master that can be added with `medos master add`.
    pub async fn start_new_master(&mut self, name: &str) -> String {
        let pki = self.dir.join("pki");
        let pki_str = pki.to_str().expect("utf-8 path");
        self.cli(&[
            "ca",
            "issue",
            "--role",
            "master",
            "--name",
            name,
            "--host",
            "127.0.0.1",
            "--ca-dir",
            pki_str,
            "--out",
            pki_str,
        ])
        .await
        .success("medos ca issue");
        let port = free_port();
        let node_dir = self.dir.join(name);
        let config = node_dir.join("master.toml");
        let mut tls = toml::Table::new();
        tls.insert("ca".into(), pki.join("ca.crt").display().to_string().into());
        tls.insert("cert".into(), pki.join(format!("{name}.crt")).display().to_string().into());
        tls.insert("key".into(), pki.join(format!("{name}.key")).display().to_string().into());
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert("data_dir".into(), node_dir.join("data").display().to_string().into());
        table.insert("listen".into(), format!("127.0.0.1:{port}").into());
        table.insert("advertise".into(), format!("https://127.0.0.1:{port}").into());
        table.insert("tls".into(), toml::Value::Table(tls));
        std::fs::create_dir_all(&node_dir).expect("creating the node dir");
        std::fs::write(&config, toml::to_string(&table).expect("toml")).expect("writing the config");
        let log = node_dir.join("master.log");
        let child = Self::spawn_master(&config, &log);
        let api = format!("https://127.0.0.1:{port}");
        self.masters.push(MasterHandle {
            name: name.to_string(),
            api: api.clone(),
            config,
            data_dir: node_dir.join("data"),
            log,
            proc_: Proc::Own(child),
        });
        let client = Client::new(vec![api.clone()], &self.ca_pem, None).expect("client");
        eventually(&format!("{name} serving"), CONDITION_TIMEOUT, || async {
            let resp = client.send(reqwest::Method::GET, "/ping", None, false).await.map_err(|e| e.to_string())?;
            if resp.status().is_success() { Ok(()) } else { Err(format!("ping {}", resp.status())) }
        })
        .await;
        api
    }

    /// Forgets a master the test stopped and removed (so `urls()` no longer lists it).
    pub fn forget(&mut self, name: &str) {
        let m = self.master(name);
        assert!(!m.is_running(), "{name} still runs");
        self.masters.retain(|m| m.name != name);
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if let Some(mut dev) = self.dev.take() {
            let _ = killpg(Pid::from_raw(dev.id() as i32), Signal::SIGKILL);
            let _ = dev.kill();
            let _ = dev.wait();
        }
        for m in &mut self.masters {
            match std::mem::replace(&mut m.proc_, Proc::Stopped) {
                Proc::Own(mut child) => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Proc::Dev(pid) => kill_if_ours(pid, &m.config),
                Proc::Stopped => {}
            }
        }
        if let Ok(text) = std::fs::read_to_string(self.dir.join("cluster.json"))
            && let Ok(file) = serde_json::from_str::<ClusterFile>(&text)
        {
            for node in &file.nodes {
                kill_if_ours(node.pid, &node.config);
            }
        }
        if std::thread::panicking() {
            eprintln!("---- medos dev log ({}) ----\n{}", self.dev_log.display(), tail(&self.dev_log, 20));
            for m in &self.masters {
                eprintln!("---- {} log ({}) ----\n{}", m.name, m.log.display(), tail(&m.log, 30));
            }
        }
        if std::env::var_os("MEDOS_E2E_KEEP").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("keeping {}", tmp.keep().display());
        }
    }
}
