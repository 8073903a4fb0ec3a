//! Running the real binary: a `medos dev` cluster as a guard that owns every process it
//! starts, the CLI as a subprocess, and polling with deadlines.
//!
//! Cleanup is the guard's job, also when a test panics: `Drop` SIGKILLs the `medos dev`
//! process group (the masters and agents it spawned are in it), every master and agent the
//! test restarted or added itself, and every node still listed in `cluster.json` (after
//! checking `/proc/PID/cmdline` names this cluster's config, so a reused pid is never hit).
//! Then it SIGKILLs every container process left behind: the agents' shims run in their own
//! sessions and outlive the agents by design, so they are found by their command line
//! (`__container-init` and a path inside this cluster's dir; the task processes die with their
//! container init, PID 1 of their pid namespace), and removes the containers' cgroups. On a
//! panic it prints the tail of every master and agent log first. `MEDOS_E2E_KEEP=1` keeps the
//! temp dir for a post-mortem.

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
    /// The master's cluster DNS server (`127.0.0.1:PORT`), as `medos dev` lists it.
    pub dns: Option<String>,
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
            dns: n.dns.clone(),
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

/// One agent of the cluster (`medos dev --agents M`, restarted with `medos agent --config`).
pub struct AgentHandle {
    pub name: String,
    pub config: PathBuf,
    /// The agent's work dir: `agent-id`, `sandboxes/<task id>/`, `runtime/containers/<id>/`.
    pub work_dir: PathBuf,
    pub log: PathBuf,
    proc_: Proc,
}

impl AgentHandle {
    fn from_entry(n: &NodeEntry) -> Self {
        Self {
            name: n.name.clone(),
            config: n.config.clone(),
            work_dir: n.data_dir.clone(),
            log: n.log.clone(),
            proc_: Proc::Dev(n.pid),
        }
    }

    pub fn is_running(&self) -> bool {
        !matches!(self.proc_, Proc::Stopped)
    }

    /// The pid of the running agent process.
    pub fn pid(&self) -> Option<u32> {
        match &self.proc_ {
            Proc::Dev(pid) => Some(*pid),
            Proc::Own(child) => Some(child.id()),
            Proc::Stopped => None,
        }
    }

    /// The id the masters gave this agent (it keeps it in `WORK_DIR/agent-id`).
    pub fn id(&self) -> Option<String> {
        std::fs::read_to_string(self.work_dir.join("agent-id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The task's sandbox on this agent (its `MESOS_SANDBOX`, with the `stdout`/`stderr` files).
    pub fn sandbox(&self, task_id: &str) -> PathBuf {
        self.work_dir.join("sandboxes").join(task_id)
    }

    /// The runtime's state dirs of the task's containers on this agent (one per launch).
    pub fn containers_of(&self, task_id: &str) -> Vec<ContainerInfo> {
        let Ok(entries) = std::fs::read_dir(self.work_dir.join("runtime/containers")) else { return Vec::new() };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(plan) = read_json_file(&dir.join("config.json")) else { continue };
            if plan["task_id"].as_str() == Some(task_id) {
                found.push(ContainerInfo { dir });
            }
        }
        found
    }

    /// Status updates the agent has queued and no master has acknowledged yet (its durable
    /// outbox, `WORK_DIR/outbox/<seq>.json`), oldest first, as (task id, state).
    pub fn pending_updates(&self) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(self.work_dir.join("outbox")) else { return Vec::new() };
        let mut files: Vec<(u64, PathBuf)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|(_, p)| read_json_file(p))
            .map(|u| (u["task_id"].as_str().unwrap_or_default().into(), u["state"].as_str().unwrap_or_default().into()))
            .collect()
    }

    /// The task's one container on this agent; panics if there is none or more than one.
    pub fn container_of(&self, task_id: &str) -> ContainerInfo {
        let mut all = self.containers_of(task_id);
        assert_eq!(all.len(), 1, "task {task_id} has {} container(s) on {}", all.len(), self.name);
        all.remove(0)
    }
}

/// A container's state dir in an agent's runtime (`config.json`, `state.json`, `exit.json`).
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub dir: PathBuf,
}

/// A process identity as the runtime records it: a pid and its start time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcId {
    /// True while that very process runs (not a zombie, pid not reused).
    pub fn is_alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|(state, start)| start == self.start_ticks && !matches!(state, 'Z' | 'X'))
    }
}

/// State and start time (field 22) from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

fn read_json_file(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

impl ContainerInfo {
    /// The task's main process as the shim recorded it in `state.json`.
    pub fn task_process(&self) -> Option<ProcId> {
        let state = read_json_file(&self.dir.join("state.json"))?;
        Some(ProcId {
            pid: u32::try_from(state["task"]["pid"].as_u64()?).ok()?,
            start_ticks: state["task"]["start_ticks"].as_u64()?,
        })
    }

    /// The exit status the shim wrote when the task ended (`None` while it runs).
    pub fn exit(&self) -> Option<serde_json::Value> {
        read_json_file(&self.dir.join("exit.json"))
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

/// Pids whose command line is `… __container-init STAGE DIR …` with DIR inside `root`
/// (shims and container inits run in their own sessions, so only their command line ties them
/// to a test; the task processes are in the container init's pid namespace and die with it).
fn container_processes_under(root: &Path) -> Vec<u32> {
    let mut needles: Vec<Vec<u8>> = vec![root.as_os_str().as_encoded_bytes().to_vec()];
    if let Ok(canonical) = root.canonicalize() {
        needles.push(canonical.as_os_str().as_encoded_bytes().to_vec());
    }
    for needle in &mut needles {
        needle.push(b'/');
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_stage = args.iter().any(|a| *a == b"__container-init");
        let in_root = args.iter().any(|a| needles.iter().any(|n| a.starts_with(n)));
        if is_stage && in_root && !is_dead(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs every container process of the agents under `root` (a container init's death
/// kills its whole pid namespace), waits for them, then removes the containers' cgroups.
fn kill_containers(root: &Path) {
    let start = Instant::now();
    let mut quiet_scans = 0;
    // Two empty scans in a row: a `spawn` stage caught mid-way may still start its shim.
    while quiet_scans < 2 {
        let pids = container_processes_under(root);
        if pids.is_empty() {
            quiet_scans += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        quiet_scans = 0;
        for pid in &pids {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        if start.elapsed() > Duration::from_secs(10) {
            eprintln!("container processes {pids:?} under {} survive SIGKILL", root.display());
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each container's plan names its cgroups; they can go once their processes are gone.
    let Ok(agents) = std::fs::read_dir(root) else { return };
    for agent in agents.flatten() {
        let Ok(containers) = std::fs::read_dir(agent.path().join("work/runtime/containers")) else { continue };
        for container in containers.flatten() {
            let id = container.file_name();
            let Some(plan) = read_json_file(&container.path().join("config.json")) else { continue };
            let mut paths = Vec::new();
            collect_strings(&plan["cgroup"], &mut paths);
            for path in paths.iter().map(PathBuf::from) {
                // Only a task cgroup named after this container, under the cgroup root.
                if path.starts_with("/sys/fs/cgroup") && path.file_name() == Some(id.as_os_str()) {
                    remove_cgroup(&path);
                }
            }
        }
    }
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// `rmdir`s a cgroup, retrying while the kernel still counts dying processes in it.
fn remove_cgroup(path: &Path) {
    let start = Instant::now();
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if start.elapsed() > Duration::from_secs(5) => {
                eprintln!("cannot remove the cgroup {}: {e}", path.display());
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
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
    pub agents: Vec<AgentHandle>,
    initial_masters: u8,
    /// `--agents M`, when the test asked for a number (otherwise `medos dev`'s default).
    initial_agents: Option<u8>,
    /// More arguments for every run of `medos dev` (e.g. `--dns-resolver`).
    dev_args: Vec<String>,
    dev: Option<Child>,
    dev_log: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl DevCluster {
    /// Runs `medos --json dev --masters N --dir TMP/cluster` and waits for its readiness line.
    pub async fn start(masters: u8) -> Self {
        Self::start_with(masters, None).await
    }

    /// Runs `medos --json dev --masters N --agents M --dir TMP/cluster`; ready once every
    /// agent is ACTIVE (`medos dev` waits for that).
    pub async fn start_with_agents(masters: u8, agents: u8) -> Self {
        Self::start_with(masters, Some(agents)).await
    }

    /// [`Self::start_with_agents`] with more `medos dev` arguments (kept for restarts).
    pub async fn start_with_dev_args(masters: u8, agents: u8, dev_args: &[String]) -> Self {
        Self::start_with_args(masters, Some(agents), dev_args.to_vec()).await
    }

    async fn start_with(masters: u8, agents: Option<u8>) -> Self {
        Self::start_with_args(masters, agents, Vec::new()).await
    }

    async fn start_with_args(masters: u8, agents: Option<u8>, dev_args: Vec<String>) -> Self {
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
            agents: Vec::new(),
            initial_masters: masters,
            initial_agents: agents,
            dev_args,
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
        let mut command = Command::new(MEDOS);
        command.args(["--json", "dev", "--masters", &self.initial_masters.to_string()]);
        // Masters-only tests start no agent (`medos dev` would start one by default).
        command.args(["--agents", &self.initial_agents.unwrap_or(0).to_string()]);
        command.args(&self.dev_args);
        let mut child = command
            .arg("--dir")
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
        for node in ready.nodes.iter().filter(|n| n.role == "master") {
            match self.masters.iter_mut().find(|m| m.name == node.name) {
                Some(m) => {
                    assert!(!m.is_running(), "{} restarted while still running", node.name);
                    *m = MasterHandle::from_entry(node);
                }
                None => self.masters.push(MasterHandle::from_entry(node)),
            }
        }
        for node in ready.nodes.iter().filter(|n| n.role == "agent") {
            match self.agents.iter_mut().find(|a| a.name == node.name) {
                Some(a) => {
                    assert!(!a.is_running(), "{} restarted while still running", node.name);
                    *a = AgentHandle::from_entry(node);
                }
                None => self.agents.push(AgentHandle::from_entry(node)),
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
        for a in &mut self.agents {
            if let Proc::Dev(pid) = a.proc_ {
                assert!(is_dead(pid), "{} (pid {pid}) still runs after medos dev stopped", a.name);
                a.proc_ = Proc::Stopped;
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

    /// Runs the CLI against one master only (`MEDOS_URL`), with the attached config's token.
    pub async fn cli_via(&self, url: &str, args: &[&str]) -> CliOutput {
        cli(&self.cli_config, &[("MEDOS_URL", url)], args).await
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
        // Cluster DNS on a free loopback port (the default, 0.0.0.0:53, needs privileges).
        let mut dns = toml::Table::new();
        dns.insert("listen".into(), "127.0.0.1:0".into());
        table.insert("dns".into(), toml::Value::Table(dns));
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
            dns: None,
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

    pub fn agent(&self, name: &str) -> &AgentHandle {
        self.agents.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no agent {name}"))
    }

    fn agent_mut(&mut self, name: &str) -> &mut AgentHandle {
        self.agents.iter_mut().find(|a| a.name == name).unwrap_or_else(|| panic!("no agent {name}"))
    }

    /// The agent the masters know by `id` (as in a task's `agent_id`).
    pub fn agent_by_id(&self, id: &str) -> &AgentHandle {
        self.agents.iter().find(|a| a.id().as_deref() == Some(id)).unwrap_or_else(|| {
            let known: Vec<(String, Option<String>)> = self.agents.iter().map(|a| (a.name.clone(), a.id())).collect();
            panic!("no agent has id {id}; agents: {known:?}")
        })
    }

    /// SIGKILLs an agent and waits until it is gone (its containers keep running); returns
    /// the instant just before the kill.
    pub fn kill9_agent(&mut self, name: &str) -> Instant {
        let a = self.agent_mut(name);
        let at = Instant::now();
        match std::mem::replace(&mut a.proc_, Proc::Stopped) {
            Proc::Dev(pid) => {
                kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL");
                wait_dead(pid, Duration::from_secs(10));
            }
            Proc::Own(mut child) => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaping a killed agent");
            }
            Proc::Stopped => panic!("{name} is not running"),
        }
        at
    }

    /// Starts a stopped agent again with `medos agent --config <its config>` (same work dir,
    /// so it recovers its checkpoints and containers and re-registers with the same id).
    pub fn restart_agent(&mut self, name: &str) {
        let a = self.agent_mut(name);
        assert!(!a.is_running(), "{name} is still running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&a.log).expect("opening the agent log");
        let child = Command::new(MEDOS)
            .arg("agent")
            .arg("--config")
            .arg(&a.config)
            .env_remove("MEDOS_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawning medos agent");
        a.proc_ = Proc::Own(child);
    }

    /// Pids of the container processes (shims, container inits, exec helpers) of this
    /// cluster's agents: `medos __container-init STAGE DIR` with DIR inside this cluster's dir.
    pub fn container_processes(&self) -> Vec<u32> {
        container_processes_under(&self.dir)
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
        let mut signalled = Vec::new();
        for a in &mut self.agents {
            match std::mem::replace(&mut a.proc_, Proc::Stopped) {
                Proc::Own(mut child) => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Proc::Dev(pid) => {
                    kill_if_ours(pid, &a.config);
                    signalled.push(pid);
                }
                Proc::Stopped => {}
            }
        }
        if let Ok(text) = std::fs::read_to_string(self.dir.join("cluster.json"))
            && let Ok(file) = serde_json::from_str::<ClusterFile>(&text)
        {
            for node in &file.nodes {
                kill_if_ours(node.pid, &node.config);
                signalled.push(node.pid);
            }
        }
        // Once the agents are gone nothing starts new containers; then the leftovers can go.
        let start = Instant::now();
        while signalled.iter().any(|pid| !is_dead(*pid)) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        kill_containers(&self.dir);
        if std::thread::panicking() {
            eprintln!("---- medos dev log ({}) ----\n{}", self.dev_log.display(), tail(&self.dev_log, 20));
            for m in &self.masters {
                eprintln!("---- {} log ({}) ----\n{}", m.name, m.log.display(), tail(&m.log, 30));
            }
            for a in &self.agents {
                eprintln!("---- {} log ({}) ----\n{}", a.name, a.log.display(), tail(&a.log, 30));
            }
        }
        if std::env::var_os("MEDOS_E2E_KEEP").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("keeping {}", tmp.keep().display());
        }
    }
}
