//! `medos dev`: a whole cluster on one machine, as separate OS processes on loopback.
//!
//! The first run creates `DIR/` with a CA, one certificate, config and data dir per master,
//! and an admin password; later runs on the same DIR reuse all of it, so the state survives.
//! `DIR/cluster.json` lists every process (name, role, pid, api, data_dir, config, log) so
//! tests and people can find, kill and restart them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::api::client::Client;
use crate::cli::DevArgs;
use crate::cli::config::{ClusterConfig, Clusters};
use crate::master::MasterConfig;
use crate::master::config::{BootstrapConfig, DnsConfig, InitialMaster, RaftTuning};
use crate::pki::{self, Ca, Role, TlsFiles};

const ADMIN_USER: &str = "admin";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    masters: Vec<MasterSlot>,
    #[serde(default)]
    agents: Vec<AgentSlot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AgentSlot {
    name: String,
    /// Host ports this agent offers, e.g. `31000-31999` (each agent its own range).
    ports: String,
    /// The loopback port of the agent's API (sandbox files, exec); 0 in layouts written
    /// before agents had one, and then chosen on the next run.
    #[serde(default)]
    port: u16,
}

/// The attributes of dev agent `i` (1-based): its own rack (`r1`, `r2`, …) and one of two zones
/// (`z1` for odd, `z2` for even agents), so that Marathon constraints such as
/// `["rack", "UNIQUE"]`, `["zone", "GROUP_BY"]` or `["rack", "LIKE", "r[12]"]` can be tried on
/// one machine. Each agent's hostname is its name (`agent-1`, `agent-2`, …), so
/// `["hostname", "UNIQUE"]` spreads over the agents as well.
pub fn agent_attributes(i: usize) -> std::collections::BTreeMap<String, String> {
    [("rack".to_string(), format!("r{i}")), ("zone".to_string(), format!("z{}", (i + 1) % 2 + 1))].into()
}

fn agent_slot(i: usize, port: u16) -> AgentSlot {
    let begin = 31000 + 1000 * (i - 1);
    AgentSlot { name: format!("agent-{i}"), ports: format!("{begin}-{}", begin + 999), port }
}

/// Slots for `agents` agents, keeping the API ports earlier runs chose.
fn agent_slots(previous: &[AgentSlot], agents: u8) -> Result<Vec<AgentSlot>> {
    (1..=usize::from(agents))
        .map(|i| {
            let port = match previous.iter().find(|s| s.name == format!("agent-{i}")) {
                Some(slot) if slot.port != 0 => slot.port,
                _ => free_port()?,
            };
            Ok(agent_slot(i, port))
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MasterSlot {
    name: String,
    port: u16,
    /// The master's cluster DNS port (UDP and TCP); 0 in layouts written before masters
    /// served DNS (a port is chosen then).
    #[serde(default)]
    dns_port: u16,
    /// The loopback address of its DNS server: 127.0.0.1 with a free port as a user; as root
    /// an address of its own in 127.0.0.0/8 on port 53, which tasks' resolv.conf can name
    /// (a `nameserver` line has no port). Absent in older layouts: 127.0.0.1.
    #[serde(default)]
    dns_ip: Option<Ipv4Addr>,
}

impl MasterSlot {
    fn dns_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.dns_ip.unwrap_or(Ipv4Addr::LOCALHOST)), self.dns_port)
    }

    /// Chooses (again, when the slot does not suit how dev runs now) where the DNS listens.
    fn place_dns(&mut self, root: bool) -> Result<()> {
        let suits = self.dns_port != 0 && (self.dns_port == 53) == root;
        if !suits {
            let addr = if root { free_dns_addr_on_53()? } else { free_dns_addr()? };
            self.dns_ip = Some(match addr.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
            });
            self.dns_port = addr.port();
        }
        Ok(())
    }
}

/// One process of the dev cluster, as written to `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeEntry {
    pub name: String,
    pub role: String,
    pub pid: u32,
    pub api: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// A master's cluster DNS server, `IP:PORT` on loopback (UDP and TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterFile {
    pub nodes: Vec<NodeEntry>,
}

fn default_dir() -> Result<PathBuf> {
    Ok(dirs::data_local_dir().context("cannot find your data directory; pass --dir")?.join("medos").join("dev"))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Whether `addr` is free for both UDP and TCP (a DNS server needs both).
fn dns_addr_free(addr: SocketAddr) -> bool {
    std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok()
}

/// A port on 127.0.0.1 free for both UDP and TCP.
fn free_dns_addr() -> Result<SocketAddr> {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port on 127.0.0.1")?;
        let addr = udp.local_addr()?;
        drop(udp);
        if dns_addr_free(addr) {
            return Ok(addr);
        }
    }
    bail!("found no port on 127.0.0.1 free for both UDP and TCP (for the masters' DNS)")
}

/// Port 53 on a random address of 127.0.0.0/8 (outside 127.0.0.x, where host resolvers such
/// as systemd-resolved listen), free for UDP and TCP. Needs root.
fn free_dns_addr_on_53() -> Result<SocketAddr> {
    for _ in 0..50 {
        let [a, b, c]: [u8; 3] = rand::random();
        let ip = Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254));
        let addr = SocketAddr::new(IpAddr::V4(ip), 53);
        if dns_addr_free(addr) {
            return Ok(addr);
        }
    }
    bail!("found no loopback address with port 53 free for both UDP and TCP (for the masters' DNS)")
}

fn load_or_create_layout(dir: &Path, masters: u8, agents: u8) -> Result<Layout> {
    let root = nix::unistd::geteuid().is_root();
    let path = dir.join("dev.toml");
    let write = |layout: &Layout| {
        pki::ca::write_file(&path, &toml::to_string_pretty(layout).expect("layout serialises"), false)
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let layout: Layout = toml::from_str(&text)
            .with_context(|| format!("{} is invalid; remove {} to start over", path.display(), dir.display()))?;
        if layout.masters.len() != usize::from(masters) {
            bail!(
                "{} holds a cluster of {} master(s); rerun with --masters {} or use another --dir",
                dir.display(),
                layout.masters.len(),
                layout.masters.len()
            );
        }
        // Agents hold no cluster state: their number may change between runs.
        let mut layout = layout;
        for slot in &mut layout.masters {
            slot.place_dns(root)?;
        }
        layout.agents = agent_slots(&layout.agents, agents)?;
        write(&layout)?;
        return Ok(layout);
    }
    let mut slots = Vec::new();
    for i in 1..=masters {
        let mut slot = MasterSlot { name: format!("master-{i}"), port: free_port()?, dns_port: 0, dns_ip: None };
        slot.place_dns(root)?;
        slots.push(slot);
    }
    let layout = Layout { masters: slots, agents: agent_slots(&[], agents)? };
    write(&layout)?;
    Ok(layout)
}

fn admin_password(dir: &Path) -> Result<(PathBuf, String)> {
    let path = dir.join("admin-password");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok((path, text.trim().to_string()));
    }
    let password: String = hex::encode(rand::random::<[u8; 12]>());
    pki::ca::write_file(&path, &format!("{password}\n"), true)?;
    Ok((path, password))
}

struct Prepared {
    configs: Vec<(MasterConfig, PathBuf)>,
    agents: Vec<(crate::agent::AgentConfig, PathBuf)>,
    ca_pem: Vec<u8>,
    password: String,
    password_file: PathBuf,
}

fn prepare(dir: &Path, masters: u8, agents: u8, resolvers: &[String]) -> Result<Prepared> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let layout = load_or_create_layout(dir, masters, agents)?;
    let pki_dir = dir.join("pki");
    let ca = if pki_dir.join(pki::ca::CA_KEY_FILE).exists() { Ca::load(&pki_dir)? } else { Ca::init(&pki_dir, "dev")? };
    let (password_file, password) = admin_password(dir)?;
    let initial: Vec<InitialMaster> = layout
        .masters
        .iter()
        .map(|m| InitialMaster { name: m.name.clone(), api: format!("https://127.0.0.1:{}", m.port) })
        .collect();
    let mut configs = Vec::new();
    for slot in &layout.masters {
        let node_dir = dir.join(&slot.name);
        let cert = pki_dir.join(format!("{}.crt", slot.name));
        if !cert.exists() {
            ca.issue(Role::Master, &slot.name, &["127.0.0.1".into(), "localhost".into()], &pki_dir)?;
        }
        let config = MasterConfig {
            name: slot.name.clone(),
            data_dir: node_dir.join("data"),
            listen: format!("127.0.0.1:{}", slot.port).parse().expect("loopback address"),
            advertise: format!("https://127.0.0.1:{}", slot.port),
            initial_masters: initial.clone(),
            tls: TlsFiles { ca: pki_dir.join("ca.crt"), cert, key: pki_dir.join(format!("{}.key", slot.name)) },
            // Every dev master can sign certificates for agents that join with a token.
            ca_key: Some(pki_dir.join(pki::ca::CA_KEY_FILE)),
            bootstrap: BootstrapConfig {
                admin_user: Some(ADMIN_USER.into()),
                admin_password_file: Some(password_file.clone()),
                ..Default::default()
            },
            raft: RaftTuning::default(),
            agents: Default::default(),
            // An unprivileged loopback port per master (written to cluster.json).
            dns: DnsConfig { listen: slot.dns_addr(), resolvers: resolvers.to_vec(), ..DnsConfig::default() },
        };
        let path = node_dir.join("master.toml");
        pki::ca::write_file(&path, &config.to_toml(), false)?;
        configs.push((config, path));
    }
    let mut agent_configs = Vec::new();
    for (index, slot) in layout.agents.iter().enumerate() {
        let node_dir = dir.join(&slot.name);
        let cert = pki_dir.join(format!("{}.crt", slot.name));
        if !cert.exists() {
            ca.issue(Role::Agent, &slot.name, &["127.0.0.1".into(), "localhost".into()], &pki_dir)?;
        }
        let config = crate::agent::AgentConfig {
            name: slot.name.clone(),
            hostname: slot.name.clone(),
            address: "127.0.0.1".into(),
            masters: initial.iter().map(|m| m.api.clone()).collect(),
            work_dir: node_dir.join("work"),
            tls: TlsFiles { ca: pki_dir.join("ca.crt"), cert, key: pki_dir.join(format!("{}.key", slot.name)) },
            ports: vec![slot.ports.clone()],
            resources: Default::default(),
            attributes: agent_attributes(index + 1),
            public: false,
            api: format!("https://127.0.0.1:{}", slot.port),
            listen: Some(format!("127.0.0.1:{}", slot.port).parse().expect("loopback address")),
            join_token: None,
        };
        let path = node_dir.join("agent.toml");
        pki::ca::write_file(&path, &config.to_toml(), false)?;
        agent_configs.push((config, path));
    }
    Ok(Prepared { configs, agents: agent_configs, ca_pem: ca.cert_pem.into_bytes(), password, password_file })
}

fn spawn_node(role: &str, config_path: &Path, log_path: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("finding the medos executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let child = Command::new(exe)
        .arg(role)
        .arg("--config")
        .arg(config_path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false)
        .spawn()
        .with_context(|| format!("starting the {role} with {}", config_path.display()))?;
    Ok(child)
}

/// Waits until the cluster has an identity and a leader, then logs in as the admin.
async fn wait_ready(
    urls: &[String],
    ca_pem: &[u8],
    password: &str,
    expected_members: usize,
    expected_agents: usize,
    deadline: Duration,
) -> Result<(String, String)> {
    let start = Instant::now();
    let client = Client::new(urls.to_vec(), ca_pem, None)?;
    let mut last_error = String::from("no answer yet");
    while start.elapsed() < deadline {
        match client.metadata().await {
            Ok(meta) => {
                let cluster_id = meta["CLUSTER_ID"].as_str().unwrap_or_default().to_string();
                match client.login(ADMIN_USER, password).await {
                    Ok(token) => {
                        let authed = Client::new(urls.to_vec(), ca_pem, Some(token.clone()))?;
                        let agents = match authed.agents().await {
                            Ok(list) => {
                                list.iter().filter(|a| a.agent.status == crate::core::AgentStatus::Active).count()
                            }
                            Err(_) => 0,
                        };
                        match authed.cluster_status().await {
                            Ok(s)
                                if s.leader.is_some()
                                    && s.members.len() >= expected_members
                                    && agents >= expected_agents =>
                            {
                                return Ok((cluster_id, token));
                            }
                            Ok(s) if s.leader.is_some() && s.members.len() >= expected_members => {
                                last_error = format!(
                                    "{agents} of {expected_agents} agents registered (see the agent-*/agent.log files)"
                                )
                            }
                            Ok(s) => {
                                last_error = format!("{} of {expected_members} masters in the group", s.members.len())
                            }
                            Err(e) => last_error = e.to_string(),
                        }
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the dev cluster did not become ready within {deadline:?}: {last_error}")
}

async fn stop_all(children: &mut [(String, Child)]) {
    {
        for (_, child) in children.iter() {
            if let Some(pid) = child.id() {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            }
        }
        for (name, child) in children.iter_mut() {
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    eprintln!("{name} did not stop within 10 s; killing it");
                    let _ = child.kill().await;
                }
            }
        }
    }
}

/// The host's own DNS servers (`nameserver` lines of /etc/resolv.conf), which the dev
/// masters forward names outside the cluster domain to; none if the file cannot be read.
fn host_resolvers() -> Vec<String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    parse_nameservers(&text)
}

fn parse_nameservers(resolv_conf: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|line| line.split_whitespace().collect::<Vec<_>>().get(..2).map(<[&str]>::to_vec))
        .filter(|words| words[0] == "nameserver" && crate::master::config::parse_upstream(words[1]).is_ok())
        .map(|words| words[1].to_string())
        .collect()
}

pub async fn run(args: DevArgs, json: bool) -> Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => default_dir()?,
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let root = nix::unistd::geteuid().is_root();
    let agents = match args.agents {
        Some(n) if n > 0 && !root => {
            bail!("agents run containers and need root; run `sudo medos dev`, or pass --agents 0")
        }
        Some(n) => n,
        None if root => 1,
        None => {
            eprintln!("note: not running as root, so no agent is started (agents need namespaces and cgroups)");
            0
        }
    };
    let resolvers = if args.dns_resolvers.is_empty() { host_resolvers() } else { args.dns_resolvers };
    for r in &resolvers {
        crate::master::config::parse_upstream(r).map_err(|e| anyhow::anyhow!("--dns-resolver: {e}"))?;
    }
    let prepared = prepare(&dir, args.masters, agents, &resolvers)?;
    let mut children = Vec::new();
    let mut nodes = Vec::new();
    for (config, path) in &prepared.configs {
        let log = path.with_file_name("master.log");
        let child = spawn_node("master", path, &log)?;
        nodes.push(NodeEntry {
            name: config.name.clone(),
            role: "master".into(),
            pid: child.id().unwrap_or(0),
            api: config.advertise.clone(),
            data_dir: config.data_dir.clone(),
            config: path.clone(),
            log,
            dns: config.dns.enabled.then(|| config.dns.listen.to_string()),
        });
        children.push((config.name.clone(), child));
    }
    for (config, path) in &prepared.agents {
        let log = path.with_file_name("agent.log");
        let child = spawn_node("agent", path, &log)?;
        nodes.push(NodeEntry {
            name: config.name.clone(),
            role: "agent".into(),
            pid: child.id().unwrap_or(0),
            api: config.api.clone(),
            data_dir: config.work_dir.clone(),
            config: path.clone(),
            log,
            dns: None,
        });
        children.push((config.name.clone(), child));
    }
    let cluster_file = ClusterFile { nodes: nodes.clone() };
    pki::ca::write_file(&dir.join("cluster.json"), &serde_json::to_string_pretty(&cluster_file)?, false)?;

    let urls: Vec<String> = nodes.iter().filter(|n| n.role == "master").map(|n| n.api.clone()).collect();
    let ready = tokio::select! {
        r = wait_ready(&urls, &prepared.ca_pem, &prepared.password, urls.len(), prepared.agents.len(), Duration::from_secs(60)) => r,
        _ = crate::process::wait_for_shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    let (cluster_id, token) = match ready {
        Ok(pair) => pair,
        Err(e) => {
            stop_all(&mut children).await;
            return Err(e.context(format!("see the logs in {}/master-*/master.log", dir.display())));
        }
    };

    if !args.no_attach {
        let clusters = Clusters::open()?;
        for stale in
            clusters.list()?.into_iter().filter(|e| e.config.name == "dev" && e.config.cluster_id != cluster_id)
        {
            clusters.remove(&stale.config.cluster_id)?;
        }
        let ca_der = pki::tls::certs_from_pem(&prepared.ca_pem, &dir.join("pki/ca.crt"))?;
        clusters.add(
            ClusterConfig {
                name: "dev".into(),
                cluster_id: cluster_id.clone(),
                urls: urls.clone(),
                ca_fingerprint: pki::fingerprint(&ca_der[0]),
                username: Some(ADMIN_USER.into()),
                token: Some(token),
            },
            &prepared.ca_pem,
        )?;
    }

    if json {
        println!("{}", serde_json::json!({"cluster_id": cluster_id, "dir": dir, "api": urls, "nodes": nodes}));
    } else {
        println!("medos dev cluster {cluster_id} is up ({} master(s), {} agent(s))", urls.len(), prepared.agents.len());
        println!("  API:        {}", urls.join(", "));
        let dns: Vec<&str> = nodes.iter().filter_map(|n| n.dns.as_deref()).collect();
        if let Some(first) = dns.first() {
            let (host, port) = first.rsplit_once(':').unwrap_or((first, "53"));
            println!("  DNS:        {}  (try: dig @{host} -p {port} leader.mesos)", dns.join(", "));
        }
        println!("  admin:      {ADMIN_USER} / password in {}", prepared.password_file.display());
        println!("  state:      {}  (rerun with the same --dir to keep it)", dir.display());
        if !args.no_attach {
            println!("The CLI is logged in. Try:");
            println!("  medos cluster status");
            println!("  medos kv put hello world && medos kv get hello");
            if !prepared.agents.is_empty() {
                println!("  medos node list");
                println!("  medos task run --wait -- 'echo hello from $MESOS_TASK_ID'");
            }
        }
        println!("Press Ctrl-C to stop the cluster.");
    }

    // Keep running until a signal; a master that exits (e.g. killed by a test) is reported.
    // Each process is watched by a task that owns it, so it is only ever signalled while it
    // is still our (unreaped) child: a pid that was reused is never hit.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut exits = tokio::task::JoinSet::new();
    for (name, mut child) in children {
        let mut stop = stop_rx.clone();
        exits.spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = stop.changed() => {
                    if let Some(pid) = child.id() {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
                    }
                    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            eprintln!("{name} did not stop within 10 s; killing it");
                            let _ = child.kill().await;
                            child.wait().await
                        }
                    }
                }
            };
            (name, status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
        });
    }
    let mut stopping = false;
    // Runs until a signal, even if every process was killed from outside, then until all stopped.
    while !(stopping && exits.is_empty()) {
        tokio::select! {
            _ = crate::process::wait_for_shutdown_signal(), if !stopping => {
                eprintln!("stopping the dev cluster…");
                stopping = true;
                let _ = stop_tx.send(true);
            }
            Some(Ok((name, status))) = exits.join_next(), if !exits.is_empty() => if !stopping {
                let role = if name.starts_with("agent") { "agent" } else { "master" };
                eprintln!("{name} exited ({status}); restart it with `medos {role} --config {}/{name}/{role}.toml`", dir.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_come_from_resolv_conf_lines() {
        let text = "# generated\nsearch example.org\nnameserver 10.0.0.2\nnameserver  ::1\n\
                    nameserver fe80::1%eth0\nnameserver\noptions ndots:2\nnameserver 127.0.0.53 # stub\n";
        assert_eq!(parse_nameservers(text), ["10.0.0.2", "::1", "127.0.0.53"]);
        assert!(parse_nameservers("").is_empty());
    }

    #[test]
    fn agents_get_their_own_hostname_rack_and_zone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let prepared = prepare(dir.path(), 1, 3, &[]).expect("preparing a dev cluster");
        let seen: Vec<String> = prepared
            .agents
            .iter()
            .map(|(config, _)| {
                let attributes: Vec<String> = config.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} hostname={} {}", config.name, config.hostname, attributes.join(" "))
            })
            .collect();
        assert_eq!(
            seen,
            [
                "agent-1 hostname=agent-1 rack=r1 zone=z1",
                "agent-2 hostname=agent-2 rack=r2 zone=z2",
                "agent-3 hostname=agent-3 rack=r3 zone=z1",
            ]
        );
        // The config files say the same, and a rerun keeps them.
        let (config, path) = &prepared.agents[2];
        assert_eq!(&crate::agent::AgentConfig::load(path).expect("agent.toml"), config);
        let again = prepare(dir.path(), 1, 3, &[]).expect("preparing again");
        assert_eq!(
            again.agents.iter().map(|(c, _)| c).collect::<Vec<_>>(),
            prepared.agents.iter().map(|(c, _)| c).collect::<Vec<_>>()
        );
    }
}
