//! The remote commands after genconf: `medos installer preflight|deploy|postflight|upgrade|
//! uninstall|status`, all working from one genconf directory (`config.yaml` through
//! [`genconf::load_config`], the generated `serve/`, `pki/ca.crt` and `secrets/`).
//!
//! - **deploy**: brings every host's copy of serve/ (`/opt/medos/serve`: the shared files and
//!   only that host's `nodes/<ip>/`) up to date, sending only files whose checksum differs,
//!   then runs `install.sh <role>`: masters first, in parallel; waits until every master sees
//!   one leader and every master as a voter (`/v1/cluster/status` on each); then the agents,
//!   waiting until the leader lists each as active. install.sh changes nothing when no file
//!   changed, so a rerun changes nothing; a failed deploy is rerun as is.
//! - **postflight**: masters in the Raft group, agents registered and active, the cluster DNS
//!   answering `leader.<domain>` on every master (a real UDP query), a smoke task finishing.
//! - **upgrade**: the new binary into serve/ (`--binary`), then one host at a time (masters,
//!   then agents): copy, install.sh (which restarts the unit), health check; stops at the
//!   first host that fails it.
//! - **uninstall**: stops and disables the units, kills what is left in medos's cgroups,
//!   removes every file medos put on the host, then checks that nothing is left.
//! - **status**: per host: unit state, version and binary checksum; the leader and the agents.
//!
//! Parsing remote output is pure (functions of strings, unit-tested).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::config::{ClusterConfig, NodeRole};
use super::genconf::{self, ClusterFile};
use super::preflight::{PortCheck, Requirements, Settings};
use super::ssh::{HostKeyChecking, Outcome, Runner, SshError, SshOptions, one_line, shell_quote, summary_table};
use crate::api::client::Client;

/// Where deploy keeps each host's copy of serve/ (install.sh runs from it).
pub const REMOTE_SERVE: &str = "/opt/medos/serve";
/// How long install.sh may take on one host (units wait up to 300 s for readiness).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(360);
/// Copying serve/ (the binary is the bulk of it).
const COPY_TIMEOUT: Duration = Duration::from_secs(300);
/// Short remote commands.
const SHORT_TIMEOUT: Duration = Duration::from_secs(60);
/// Until the masters agree on a leader after they were started.
pub const MASTERS_TIMEOUT: Duration = Duration::from_secs(120);
/// Until the agents are active after they were started.
pub const AGENTS_TIMEOUT: Duration = Duration::from_secs(120);

/// How ssh is invoked, beyond config.yaml's user, port and key.
#[derive(Debug, Clone, Default)]
pub struct SshOverrides {
    /// `ssh -F FILE`.
    pub config_file: Option<PathBuf>,
    /// `UserKnownHostsFile`.
    pub known_hosts: Option<PathBuf>,
    /// Only hosts already in known_hosts (StrictHostKeyChecking=yes).
    pub strict_host_keys: bool,
}

/// Everything the remote commands work from.
pub struct Context {
    pub dir: PathBuf,
    pub config: ClusterConfig,
    pub cluster: ClusterFile,
    pub ssh: SshOptions,
    pub runner: Runner,
}

/// One host with its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRole {
    pub host: String,
    pub role: NodeRole,
}

impl Context {
    /// Loads the genconf dir: config.yaml (validated), `serve/cluster.json` (genconf must have
    /// run for this config), and a runner logging to `genconf/logs/`.
    pub fn load(dir: &Path, overrides: &SshOverrides) -> Result<Context> {
        let parsed = genconf::load_config(dir)?;
        for w in &parsed.warnings {
            tracing::warn!("{w}");
        }
        let config = parsed.config;
        let serve = dir.join(genconf::SERVE_DIR);
        let cluster_path = serve.join("cluster.json");
        let text = std::fs::read_to_string(&cluster_path)
            .with_context(|| format!("cannot read {}: run `medos installer genconf` first", cluster_path.display()))?;
        let cluster: ClusterFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged: rerun `medos installer genconf`", cluster_path.display()))?;
        let planned: BTreeSet<(String, String)> =
            config.nodes().iter().map(|n| (n.ip.to_string(), n.role.install_arg().to_string())).collect();
        let generated: BTreeSet<(String, String)> =
            cluster.nodes.iter().map(|n| (n.ip.clone(), n.role.clone())).collect();
        if planned != generated {
            bail!(
                "config.yaml lists other hosts or roles than {} was generated for: rerun `medos installer genconf`",
                serve.display()
            );
        }
        let mut ssh = SshOptions::new(config.ssh.clone());
        ssh.config_file = overrides.config_file.clone();
        ssh.known_hosts = overrides.known_hosts.clone();
        if overrides.strict_host_keys {
            ssh.host_key_checking = HostKeyChecking::Yes;
        }
        let runner = Runner::new(ssh.clone(), &dir.join("logs"))?;
        Ok(Context { dir: dir.to_path_buf(), config, cluster, ssh, runner })
    }

    pub fn serve(&self) -> PathBuf {
        self.dir.join(genconf::SERVE_DIR)
    }

    /// Every host with its role: masters, agents, public agents.
    pub fn hosts(&self) -> Vec<HostRole> {
        self.config.nodes().into_iter().map(|n| HostRole { host: n.ip.to_string(), role: n.role }).collect()
    }

    fn masters(&self) -> Vec<HostRole> {
        self.hosts().into_iter().filter(|h| h.role == NodeRole::Master).collect()
    }

    fn agents(&self) -> Vec<HostRole> {
        self.hosts().into_iter().filter(|h| h.role != NodeRole::Master).collect()
    }

    fn master_name(&self, ip: &str) -> String {
        self.cluster.nodes.iter().find(|n| n.ip == ip).map(|n| n.name.clone()).unwrap_or_else(|| ip.to_string())
    }

    fn master_url(&self, ip: &str) -> String {
        let ip: IpAddr = ip.parse().expect("validated address");
        super::config::url(ip, self.config.ports.api)
    }

    fn ca_pem(&self) -> Result<Vec<u8>> {
        let path = self.dir.join(genconf::PKI_DIR).join(crate::pki::ca::CA_CERT_FILE);
        std::fs::read(&path).with_context(|| format!("reading the cluster CA {}", path.display()))
    }

    /// A client for the given master URLs, without a token.
    pub fn client_for(&self, urls: Vec<String>) -> Result<Client> {
        Ok(Client::new(urls, &self.ca_pem()?, None)?)
    }

    /// A token of the first administrator (genconf's password), from any master.
    pub async fn admin_token(&self) -> Result<String> {
        let client = self.client_for(self.config.master_urls())?;
        let path = self.dir.join(genconf::SECRETS_DIR).join("admin-password");
        let password = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        client
            .login(&self.config.admin_user, password.trim())
            .await
            .with_context(|| format!("logging in as {:?}", self.config.admin_user))
    }

    /// A client for every master, logged in as the first administrator.
    pub async fn admin_client(&self) -> Result<Client> {
        let mut client = self.client_for(self.config.master_urls())?;
        client.set_token(Some(self.admin_token().await?));
        Ok(client)
    }

    /// A client for one master, with `token`.
    fn master_client(&self, ip: &str, token: &str) -> Result<Client> {
        let mut client = self.client_for(vec![self.master_url(ip)])?;
        client.set_token(Some(token.to_string()));
        Ok(client)
    }

    /// preflight's settings from the config: the ports and data dirs the generated master
    /// and agent configs use.
    pub fn preflight_settings(&self) -> Settings {
        let c = &self.config;
        let master = Requirements {
            ports: vec![
                PortCheck::tcp(c.ports.api, "master API and Raft"),
                PortCheck::tcp(c.ports.dns, "cluster DNS"),
                PortCheck::udp(c.ports.dns, "cluster DNS"),
            ],
            data_dir: c.data_dirs.master.clone(),
            min_disk_bytes: 1 << 30,
            min_memory_bytes: 512 << 20,
        };
        let agent = Requirements {
            ports: vec![PortCheck::tcp(c.ports.agent, "agent API")],
            data_dir: c.data_dirs.agent.clone(),
            min_disk_bytes: 1 << 30,
            min_memory_bytes: 512 << 20,
        };
        let mut settings = Settings::new(&c.hosts(), master, agent);
        settings.ssh = self.ssh.clone();
        settings
    }
}

// ---- copying serve/ ----

/// `SHA256SUMS` as `path → sha256` (pure).
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (sum, name) = l.split_once("  ")?;
            (sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (name.to_string(), sum.to_string()))
        })
        .collect()
}

/// The files of serve/ one host needs: everything but other hosts' `nodes/` (pure).
pub fn host_files(sums: &BTreeMap<String, String>, ip: &str) -> BTreeMap<String, String> {
    let own = format!("nodes/{ip}/");
    sums.iter()
        .filter(|(name, _)| !name.starts_with("nodes/") || name.starts_with(&own))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect()
}

/// The files whose remote checksum (`sha256sum` output) differs from `wanted` (pure).
pub fn changed_files(wanted: &BTreeMap<String, String>, remote_sha256sum: &str) -> Vec<String> {
    let remote = parse_sums(remote_sha256sum);
    wanted.iter().filter(|(name, sum)| remote.get(*name) != Some(*sum)).map(|(n, _)| n.clone()).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// serve/ as read once for all hosts.
struct Serve {
    dir: PathBuf,
    sums: BTreeMap<String, String>,
    /// SHA256SUMS itself (not listed in itself).
    sums_text: Vec<u8>,
    binary: Vec<u8>,
}

impl Serve {
    fn read(dir: &Path) -> Result<Serve> {
        let sums_path = dir.join("SHA256SUMS");
        let sums_text = std::fs::read(&sums_path)
            .with_context(|| format!("reading {}: run `medos installer genconf`", sums_path.display()))?;
        let sums = parse_sums(&String::from_utf8_lossy(&sums_text));
        let binary = std::fs::read(dir.join("medos")).with_context(|| format!("reading {}/medos", dir.display()))?;
        if sums.get("medos") != Some(&sha256_hex(&binary)) {
            bail!(
                "{}/medos does not match SHA256SUMS: rerun `medos installer genconf` (or `upgrade --binary`)",
                dir.display()
            );
        }
        Ok(Serve { dir: dir.to_path_buf(), sums, sums_text, binary })
    }

    fn wanted(&self, ip: &str) -> BTreeMap<String, String> {
        let mut files = host_files(&self.sums, ip);
        files.insert("SHA256SUMS".into(), sha256_hex(&self.sums_text));
        files
    }
}

/// Brings `host`'s `/opt/medos/serve` up to date; answers how many files were sent.
async fn sync_host(runner: &Runner, serve: &Serve, host: &str) -> Result<usize, SshError> {
    let wanted = serve.wanted(host);
    let names: Vec<String> = wanted.keys().map(|n| shell_quote(n)).collect();
    let probe = format!(
        "mkdir -p {d} && cd {d} && {{ sha256sum -- {} 2>/dev/null || true; }}",
        names.join(" "),
        d = REMOTE_SERVE
    );
    let out = runner.run(host, "compare serve/", &probe, None, SHORT_TIMEOUT).await?;
    let changed = changed_files(&wanted, &out.stdout);
    if changed.is_empty() {
        return Ok(0);
    }
    let mut rest = Vec::new();
    for name in &changed {
        if name == "medos" {
            runner.copy(host, &serve.binary, &format!("{REMOTE_SERVE}/medos"), 0o755, COPY_TIMEOUT).await?;
        } else {
            rest.push(name.clone());
        }
    }
    if !rest.is_empty() {
        let mut tar = tar::Builder::new(Vec::new());
        for name in &rest {
            let path = serve.dir.join(name);
            let data = if name == "SHA256SUMS" {
                serve.sums_text.clone()
            } else {
                std::fs::read(&path).map_err(|e| SshError::Local(format!("reading {}: {e}", path.display())))?
            };
            let mode = if name == "SHA256SUMS" {
                0o644
            } else {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644)
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, data.as_slice())
                .map_err(|e| SshError::Local(format!("packing {name}: {e}")))?;
        }
        let data = tar.into_inner().map_err(|e| SshError::Local(format!("packing serve/: {e}")))?;
        let command = format!("set -e; umask 077; cd {REMOTE_SERVE}; tar -x --no-same-owner -p -f -");
        runner.run(host, "copy serve/", &command, Some(&data), COPY_TIMEOUT).await?;
    }
    Ok(changed.len())
}

/// What install.sh did on one host.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// False when install.sh said "nothing changed".
    pub changed: bool,
    /// Its last line (the unit's status).
    pub status: String,
}

async fn install_host(runner: &Runner, host: &str, role: NodeRole) -> Result<Installed, SshError> {
    let command = format!("bash {REMOTE_SERVE}/install.sh {}", role.install_arg());
    let out = runner.run(host, &format!("install.sh {}", role.install_arg()), &command, None, INSTALL_TIMEOUT).await?;
    let changed = !out.stderr.contains("install.sh: nothing changed");
    let status = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
    Ok(Installed { changed, status })
}

// ---- cluster health through the API ----

/// Why the masters are not (yet) one healthy Raft group; empty when they are.
async fn masters_problems(ctx: &Context, masters: &[HostRole], token: &str) -> Vec<String> {
    let names: Vec<String> = ctx.masters().iter().map(|m| ctx.master_name(&m.host)).collect();
    let mut problems = Vec::new();
    let mut leaders = BTreeSet::new();
    for m in masters {
        let client = match ctx.master_client(&m.host, token) {
            Ok(c) => c,
            Err(e) => return vec![format!("{e:#}")],
        };
        match client.cluster_status().await {
            Ok(status) => {
                match &status.leader {
                    Some(l) => {
                        leaders.insert(l.clone());
                    }
                    None => problems.push(format!("{}: no leader yet (term {})", m.host, status.term)),
                }
                let voters: BTreeSet<&str> =
                    status.members.iter().filter(|v| v.voter).map(|v| v.name.as_str()).collect();
                let missing: Vec<&str> = names.iter().map(String::as_str).filter(|n| !voters.contains(n)).collect();
                if !missing.is_empty() {
                    problems.push(format!("{}: not yet in the Raft group: {}", m.host, missing.join(", ")));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", m.host)),
        }
    }
    if leaders.len() > 1 {
        problems.push(format!(
            "the masters name different leaders: {}",
            leaders.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    problems
}

/// Waits until every master in `masters` sees one leader and all of them as voters.
pub async fn wait_masters(ctx: &Context, masters: &[HostRole], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut token: Option<String> = None;
    loop {
        let problems = match &token {
            Some(t) => masters_problems(ctx, masters, t).await,
            // Logging in works once the masters have a leader and the cluster is initialised.
            None => match ctx.admin_token().await {
                Ok(t) => {
                    token = Some(t);
                    continue;
                }
                Err(e) => vec![format!("cannot log in yet: {e:#}")],
            },
        };
        if problems.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the masters did not form a healthy Raft group within {}s:\n  {}\nsee `journalctl -u medos-master` on them and genconf/logs/",
                timeout.as_secs(),
                problems.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Why the listed agents are not all registered and active; empty when they are.
async fn agents_problems(client: &Client, agents: &[HostRole]) -> Vec<String> {
    let views = match client.agents().await {
        Ok(v) => v,
        Err(e) => return vec![format!("listing the agents: {e}")],
    };
    let mut problems = Vec::new();
    for a in agents {
        match views.iter().find(|v| v.agent.address == a.host) {
            None => problems.push(format!("{}: not registered", a.host)),
            Some(v) if v.agent.status != crate::core::AgentStatus::Active => {
                problems.push(format!("{}: {:?}", a.host, v.agent.status))
            }
            Some(v) if v.agent.public != (a.role == NodeRole::PublicAgent) => {
                problems.push(format!("{}: registered with public={}", a.host, v.agent.public))
            }
            Some(_) => {}
        }
    }
    problems
}

/// Waits until every agent in `agents` is registered and active.
pub async fn wait_agents(client: &Client, agents: &[HostRole], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let problems = agents_problems(client, agents).await;
        if problems.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "agents not active within {}s:\n  {}\nsee `journalctl -u medos-agent` on them and genconf/logs/",
                timeout.as_secs(),
                problems.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---- deploy ----

/// One host's result in deploy.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedHost {
    pub host: String,
    pub role: String,
    pub files_sent: usize,
    pub changed: bool,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub hosts: Vec<DeployedHost>,
    pub elapsed_ms: u64,
}

fn stage_failed<T>(stage: &str, outcomes: &[Outcome<T>]) -> Option<String> {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {}", o.host, brief(&e.to_string()))))
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "{stage} failed on {} of {} hosts:\n  {}\nfix it and rerun `medos installer deploy` (what succeeded is kept; full logs in genconf/logs/)",
            failed.len(),
            outcomes.len(),
            failed.join("\n  ")
        )
    })
}

/// An error on one line: its first line and, for long output, the last lines (where the
/// reason usually is).
fn brief(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() <= 5 {
        return one_line(text, 600);
    }
    let last = lines[lines.len() - 4..].join(" | ");
    format!("{} | … | {}", one_line(lines[0], 200), one_line(&last, 600))
}

fn print_table<T>(out: &mut dyn std::io::Write, outcomes: &[Outcome<T>]) {
    let _ = writeln!(out, "{}", summary_table(outcomes));
}

/// `medos installer deploy`; see the module docs. Progress and tables go to `out`.
pub async fn deploy(ctx: &Context, out: &mut dyn std::io::Write) -> Result<DeployReport> {
    let start = Instant::now();
    let serve = Serve::read(&ctx.serve())?;
    let hosts = ctx.hosts();
    let all: Vec<String> = hosts.iter().map(|h| h.host.clone()).collect();
    tracing::info!(hosts = all.len(), "deploy: copying serve/");
    let copied = ctx.runner.on_hosts(&all, "copy", |host| sync_host(&ctx.runner, &serve, host)).await;
    print_table(out, &copied);
    if let Some(e) = stage_failed("copying serve/", &copied) {
        bail!(e);
    }
    let sent: BTreeMap<String, usize> =
        copied.iter().map(|o| (o.host.clone(), *o.result.as_ref().expect("checked"))).collect();
    let mut report = Vec::new();

    let masters = ctx.masters();
    let names: Vec<String> = masters.iter().map(|m| m.host.clone()).collect();
    tracing::info!(masters = names.len(), "deploy: installing the masters");
    let installed =
        ctx.runner.on_hosts(&names, "install master", |h| install_host(&ctx.runner, h, NodeRole::Master)).await;
    print_table(out, &installed);
    if let Some(e) = stage_failed("installing the masters", &installed) {
        bail!(e);
    }
    collect(&mut report, &installed, NodeRole::Master, &sent);
    let _ = writeln!(out, "waiting for the masters to elect a leader…");
    wait_masters(ctx, &masters, MASTERS_TIMEOUT).await?;
    let _ = writeln!(out, "the masters are one Raft group with a leader");

    let agents = ctx.agents();
    if !agents.is_empty() {
        let client = ctx.admin_client().await?;
        let names: Vec<String> = agents.iter().map(|a| a.host.clone()).collect();
        tracing::info!(agents = names.len(), "deploy: installing the agents");
        let installed = ctx
            .runner
            .on_hosts(&names, "install agent", |h| {
                let role = agents.iter().find(|a| a.host == h).map(|a| a.role).unwrap_or(NodeRole::Agent);
                install_host(&ctx.runner, h, role)
            })
            .await;
        print_table(out, &installed);
        if let Some(e) = stage_failed("installing the agents", &installed) {
            bail!(e);
        }
        for o in &installed {
            let role = agents.iter().find(|a| a.host == o.host).map(|a| a.role).unwrap_or(NodeRole::Agent);
            collect(&mut report, std::slice::from_ref(o), role, &sent);
        }
        let _ = writeln!(out, "waiting for the agents to register…");
        wait_agents(&client, &agents, AGENTS_TIMEOUT).await?;
    }
    preload_images(ctx, out).await?;
    let changed = report.iter().filter(|h| h.changed).count();
    let _ = writeln!(
        out,
        "deployed {} hosts in {:.1}s: {changed} changed, {} unchanged",
        report.len(),
        start.elapsed().as_secs_f64(),
        report.len() - changed
    );
    Ok(DeployReport { hosts: report, elapsed_ms: start.elapsed().as_millis() as u64 })
}

fn collect(
    report: &mut Vec<DeployedHost>,
    outcomes: &[Outcome<Installed>],
    role: NodeRole,
    sent: &BTreeMap<String, usize>,
) {
    for o in outcomes {
        if let Ok(i) = &o.result {
            report.push(DeployedHost {
                host: o.host.clone(),
                role: role.install_arg().into(),
                files_sent: sent.get(&o.host).copied().unwrap_or(0),
                changed: i.changed,
                status: i.status.trim_start_matches("install.sh: ").to_string(),
            });
        }
    }
}

/// Loads `preload_images` (shipped in `serve/preload/`) into the cluster's image store and adds
/// the `preload_packages` bundles (their images, then the package to the `local` repository)
/// once it runs. A rerun uploads nothing the cluster already holds.
async fn preload_images(ctx: &Context, out: &mut dyn std::io::Write) -> Result<()> {
    if ctx.cluster.preload_images.is_empty() && ctx.cluster.preload_packages.is_empty() {
        return Ok(());
    }
    let client = ctx.admin_client().await?;
    let serve = ctx.serve();
    for rel in &ctx.cluster.preload_images {
        let archive = serve.join(rel);
        let staging = crate::cli::scratch_dir("preload");
        let loaded = crate::cli::image::load_archive(&client, &archive, None, &staging, true).await;
        let _ = std::fs::remove_dir_all(&staging);
        let loaded = loaded.with_context(|| {
            format!("preloading {} (preload_images): fix it and rerun `medos installer deploy`", archive.display())
        })?;
        for image in loaded {
            let _ = writeln!(out, "preloaded image {} ({})", image.names.join(", "), image.manifest);
        }
    }
    for rel in &ctx.cluster.preload_packages {
        let bundle = serve.join(rel);
        let work = crate::cli::scratch_dir("preload");
        let added = crate::cli::package_bundle::add_bundle(&client, &bundle, &work, true).await;
        let _ = std::fs::remove_dir_all(&work);
        let (opened, _) = added.with_context(|| {
            format!("preloading {} (preload_packages): fix it and rerun `medos installer deploy`", bundle.display())
        })?;
        let _ = writeln!(out, "preloaded package {} {}", opened.package.name, opened.package.version);
    }
    Ok(())
}

// ---- postflight ----

/// One postflight check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub target: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PostflightReport {
    pub findings: Vec<Finding>,
}

impl PostflightReport {
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    pub fn render(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(["CHECK", "TARGET", "RESULT", "DETAIL"]);
        for f in &self.findings {
            t.add_row([
                f.check.clone(),
                f.target.clone(),
                if f.ok { "ok" } else { "FAILED" }.into(),
                one_line(&f.detail, 160),
            ]);
        }
        t.to_string().lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end()).collect::<Vec<_>>().join("\n")
    }
}

/// Asks `server` over UDP for `name`'s A records (2 s); the addresses answered.
pub async fn dns_query_a(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    let id: u16 = rand::random();
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(&fqdn).context("a DNS name")?, RecordType::A));
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.send_to(&m.to_vec()?, server).await.with_context(|| format!("sending a DNS query to {server}"))?;
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (n, from) = tokio::time::timeout(left, socket.recv_from(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("no DNS answer from {server} within 2s"))??;
        let Ok(answer) = Message::from_vec(&buf[..n]) else { continue };
        if from != server || answer.metadata.id != id {
            continue;
        }
        if answer.metadata.response_code != hickory_proto::op::ResponseCode::NoError {
            bail!("{server} answered {} for {fqdn}", answer.metadata.response_code);
        }
        return Ok(answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect());
    }
}

/// `medos installer postflight`; see the module docs.
pub async fn postflight(ctx: &Context, smoke_timeout: Duration) -> Result<PostflightReport> {
    let mut findings = Vec::new();
    let masters = ctx.masters();
    let mut leader_ip = None;
    let token = match ctx.admin_token().await {
        Ok(t) => t,
        Err(e) => {
            bail!("{e:#}: the masters have no leader, or the admin password changed; see `medos installer status`")
        }
    };
    for m in &masters {
        let problems = masters_problems(ctx, std::slice::from_ref(m), &token).await;
        let detail = if problems.is_empty() {
            let status = ctx.master_client(&m.host, &token)?.cluster_status().await?;
            let leader = status.leader.clone().unwrap_or_default();
            if let Some(n) = ctx.cluster.nodes.iter().find(|n| n.name == leader) {
                leader_ip = Some(n.ip.clone());
            }
            format!(
                "leader {leader}, {} voters, version {}",
                status.members.iter().filter(|v| v.voter).count(),
                status.version
            )
        } else {
            problems.join("; ")
        };
        findings.push(Finding { check: "raft".into(), target: m.host.clone(), ok: problems.is_empty(), detail });
    }
    let client = match ctx.admin_client().await {
        Ok(c) => Some(c),
        Err(e) => {
            findings.push(Finding {
                check: "login".into(),
                target: "cluster".into(),
                ok: false,
                detail: format!("{e:#}"),
            });
            None
        }
    };
    if let Some(client) = &client {
        let agents = ctx.agents();
        let problems = agents_problems(client, &agents).await;
        for a in &agents {
            let mine: Vec<&String> = problems.iter().filter(|p| p.starts_with(&format!("{}:", a.host))).collect();
            let general: Vec<&String> = problems.iter().filter(|p| p.starts_with("listing")).collect();
            let bad: Vec<&String> = mine.into_iter().chain(general).collect();
            findings.push(Finding {
                check: "agent".into(),
                target: a.host.clone(),
                ok: bad.is_empty(),
                detail: if bad.is_empty() {
                    "registered, active".into()
                } else {
                    bad.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
                },
            });
        }
    }
    let leader_name = format!("leader.{}", ctx.config.dns_domain);
    for m in &masters {
        let ip: IpAddr = m.host.parse()?;
        let server = SocketAddr::new(ip, ctx.config.ports.dns);
        let (ok, detail) = match dns_query_a(server, &leader_name).await {
            Ok(ips) if ips.is_empty() => (false, format!("{leader_name}: no A record")),
            Ok(ips) => {
                let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                match &leader_ip {
                    Some(l) if !ips.contains(l) => {
                        (false, format!("{leader_name} is {}, not the leader {l}", ips.join(", ")))
                    }
                    _ => (true, format!("{leader_name} → {}", ips.join(", "))),
                }
            }
            Err(e) => (false, format!("{e:#}; is port {}/udp open to this machine?", ctx.config.ports.dns)),
        };
        findings.push(Finding { check: "dns".into(), target: server.to_string(), ok, detail });
    }
    if let Some(client) = &client
        && !ctx.agents().is_empty()
    {
        let (ok, detail) = match smoke_task(client, smoke_timeout).await {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        findings.push(Finding { check: "smoke task".into(), target: "cluster".into(), ok, detail });
    }
    Ok(PostflightReport { findings })
}

/// Runs `echo` as a task and waits for TASK_FINISHED.
async fn smoke_task(client: &Client, timeout: Duration) -> Result<String> {
    let request: crate::api::tasks::RunTask = serde_json::from_value(serde_json::json!({
        "name": "medos-postflight",
        "cmd": "echo medos postflight",
        "cpus": 0.1,
        "mem": 32,
    }))?;
    let task = client.run_task(&request).await.context("starting the smoke task")?;
    let deadline = Instant::now() + timeout;
    loop {
        let t = client.task(&task.id).await?;
        if t.state == crate::core::TaskState::TASK_FINISHED {
            return Ok(format!("{} finished on agent {}", t.id, t.agent_id));
        }
        if t.state.is_terminal() {
            bail!("{} ended {:?} on agent {}: {}", t.id, t.state, t.agent_id, t.message);
        }
        if Instant::now() > deadline {
            bail!("{} is still {:?} after {}s", t.id, t.state, timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---- status ----

/// What `status` reads on a host (pure parse of [`STATUS_SCRIPT`]'s `key=value` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostState {
    pub active: String,
    pub enabled: String,
    pub version: String,
    pub binary_sha256: String,
    /// systemd's id of the unit's current run (changes on every restart).
    pub invocation: String,
}

/// Prints `key=value` lines about `$UNIT`.
const STATUS_SCRIPT: &str = r#"u=$UNIT
echo "active=$(systemctl is-active "$u" 2>/dev/null)"
echo "enabled=$(systemctl is-enabled "$u" 2>/dev/null)"
echo "invocation=$(systemctl show -p InvocationID --value "$u" 2>/dev/null)"
if [ -x /opt/medos/bin/medos ]; then
  echo "version=$(/opt/medos/bin/medos --version 2>/dev/null)"
  echo "sha256=$(sha256sum /opt/medos/bin/medos | cut -d' ' -f1)"
fi
true
"#;

pub fn parse_host_state(text: &str) -> HostState {
    let mut s = HostState::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().to_string();
        match k {
            "active" => s.active = v,
            "enabled" => s.enabled = v,
            "version" => s.version = v,
            "sha256" => s.binary_sha256 = v,
            "invocation" => s.invocation = v,
            _ => {}
        }
    }
    s
}

async fn host_state(runner: &Runner, host: &str, role: NodeRole) -> Result<HostState, SshError> {
    let command = format!("UNIT={} sh -s", role.unit());
    let out = runner.run(host, "status", &command, Some(STATUS_SCRIPT.as_bytes()), SHORT_TIMEOUT).await?;
    Ok(parse_host_state(&out.stdout))
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusHost {
    pub host: String,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub hosts: Vec<StatusHost>,
    pub leader: Option<String>,
    pub cluster_error: Option<String>,
    /// `(address, status)` of every agent the leader knows.
    pub agents: Vec<(String, String)>,
}

impl StatusReport {
    pub fn render(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(["HOST", "ROLE", "UNIT", "ENABLED", "VERSION", "BINARY"]);
        for h in &self.hosts {
            match (&h.state, &h.error) {
                (Some(s), _) => t.add_row([
                    h.host.clone(),
                    h.role.clone(),
                    s.active.clone(),
                    s.enabled.clone(),
                    s.version.clone(),
                    s.binary_sha256.chars().take(12).collect(),
                ]),
                (None, e) => t.add_row([
                    h.host.clone(),
                    h.role.clone(),
                    "?".into(),
                    "?".into(),
                    one_line(e.as_deref().unwrap_or_default(), 100),
                    String::new(),
                ]),
            };
        }
        let mut out: Vec<String> =
            t.to_string().lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_string()).collect();
        match (&self.leader, &self.cluster_error) {
            (_, Some(e)) => out.push(format!("cluster: {}", one_line(e, 300))),
            (Some(l), None) => out.push(format!("leader: {l}")),
            (None, None) => out.push("leader: none".into()),
        }
        for (addr, status) in &self.agents {
            out.push(format!("agent {addr}: {status}"));
        }
        out.join("\n")
    }
}

/// `medos installer status`.
pub async fn status(ctx: &Context) -> Result<StatusReport> {
    let hosts = ctx.hosts();
    let names: Vec<String> = hosts.iter().map(|h| h.host.clone()).collect();
    let outcomes = ctx
        .runner
        .on_hosts(&names, "status", |h| {
            let role = hosts.iter().find(|x| x.host == h).map(|x| x.role).unwrap_or(NodeRole::Agent);
            host_state(&ctx.runner, h, role)
        })
        .await;
    let mut report = StatusReport { hosts: Vec::new(), leader: None, cluster_error: None, agents: Vec::new() };
    for (o, h) in outcomes.into_iter().zip(&hosts) {
        let (state, error) = match o.result {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        };
        report.hosts.push(StatusHost { host: o.host, role: h.role.install_arg().into(), state, error });
    }
    let cluster = async {
        let client = ctx.admin_client().await?;
        let status = client.cluster_status().await?;
        let agents = client.agents().await?;
        anyhow::Ok((status, agents))
    };
    match cluster.await {
        Ok((status, agents)) => {
            report.leader = status.leader;
            report.agents = agents
                .iter()
                .map(|a| (a.agent.address.clone(), format!("{:?}", a.agent.status).to_lowercase()))
                .collect();
        }
        Err(e) => report.cluster_error = Some(format!("{e:#}")),
    }
    Ok(report)
}

// ---- upgrade ----

/// One host's upgrade.
#[derive(Debug, Clone, Serialize)]
pub struct Upgraded {
    pub host: String,
    pub role: String,
    /// False when the host already ran this binary and nothing changed.
    pub restarted: bool,
    pub elapsed_ms: u64,
}

/// Puts `binary` into serve/ as `medos` and rewrites SHA256SUMS (so a later deploy keeps it).
pub fn replace_binary(serve: &Path, binary: &Path) -> Result<()> {
    let tmp = serve.join("medos.new");
    std::fs::copy(binary, &tmp).with_context(|| format!("copying {} into {}", binary.display(), serve.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, serve.join("medos"))?;
    genconf::write_checksums(serve)?;
    Ok(())
}

/// `medos installer upgrade`: one host at a time, masters first; stops at the first host
/// whose health check fails.
pub async fn upgrade(ctx: &Context, binary: Option<&Path>, out: &mut dyn std::io::Write) -> Result<Vec<Upgraded>> {
    if let Some(b) = binary {
        replace_binary(&ctx.serve(), b)?;
        let _ = writeln!(out, "serve/medos is now {}", b.display());
    }
    let serve = Serve::read(&ctx.serve())?;
    let masters = ctx.masters();
    wait_masters(ctx, &masters, Duration::from_secs(15)).await.context(
        "the cluster is not healthy, so no upgrade was started; fix it (see `medos installer status`) and rerun",
    )?;
    let mut done = Vec::new();
    let hosts = ctx.hosts();
    let total = hosts.len();
    for (i, h) in hosts.iter().enumerate() {
        let start = Instant::now();
        let before = host_state(&ctx.runner, &h.host, h.role).await.ok();
        let serve = &serve;
        let result = ctx
            .runner
            .on_hosts(std::slice::from_ref(&h.host), "upgrade", |host| async move {
                sync_host(&ctx.runner, serve, host).await?;
                install_host(&ctx.runner, host, h.role).await
            })
            .await
            .remove(0)
            .result;
        let fail = |what: String| {
            anyhow::anyhow!(
                "upgrade stopped at {} ({} of {total}): {what}\nthe hosts before it run the new binary, the others the old one; fix {} and rerun `medos installer upgrade`",
                h.host,
                i + 1,
                h.host
            )
        };
        let installed = result.map_err(|e| fail(e.to_string()))?;
        // The health check: the unit runs the new binary, and the cluster has its quorum.
        let after = host_state(&ctx.runner, &h.host, h.role).await.map_err(|e| fail(e.to_string()))?;
        let want = serve.sums.get("medos").cloned().unwrap_or_default();
        if after.active != "active" {
            return Err(fail(format!("{} is {}", h.role.unit(), after.active)));
        }
        if after.binary_sha256 != want {
            return Err(fail(format!("the installed binary is {}, not {}", after.binary_sha256, want)));
        }
        let restarted = before.as_ref().is_none_or(|b| b.invocation != after.invocation);
        if installed.changed && !restarted {
            return Err(fail(format!("{} was not restarted", h.role.unit())));
        }
        wait_masters(ctx, &masters, MASTERS_TIMEOUT).await.map_err(|e| fail(format!("{e:#}")))?;
        if h.role != NodeRole::Master {
            let client = ctx.admin_client().await.map_err(|e| fail(format!("{e:#}")))?;
            wait_agents(&client, std::slice::from_ref(h), AGENTS_TIMEOUT).await.map_err(|e| fail(format!("{e:#}")))?;
        }
        let elapsed = start.elapsed();
        let _ = writeln!(
            out,
            "{} ({}): {} in {:.1}s; the cluster has its leader and quorum",
            h.host,
            h.role.install_arg(),
            if restarted { "upgraded and restarted" } else { "already up to date" },
            elapsed.as_secs_f64()
        );
        tracing::info!(host = %h.host, restarted, "upgraded");
        done.push(Upgraded {
            host: h.host.clone(),
            role: h.role.install_arg().into(),
            restarted,
            elapsed_ms: elapsed.as_millis() as u64,
        });
    }
    Ok(done)
}

// ---- uninstall ----

/// The uninstall script for one host (run with `sh -s`; `DATA_DIRS` in the environment).
pub fn uninstall_script(data_dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = data_dirs.iter().map(|d| shell_quote(&d.display().to_string())).collect();
    format!(
        r#"set -u
units="medos-master.service medos-agent.service medos-agent-public.service"
set -- {dirs}
for u in $units; do systemctl stop "$u" 2>/dev/null || true; done
# What is left: tasks and their shims (agents stop with KillMode=process) in the units'
# cgroups and in the cgroups the agent made for tasks (<hierarchy>/medos).
groups=$(find /sys/fs/cgroup -maxdepth 4 -type d \( -name medos -o -name 'medos-*.service' \) 2>/dev/null)
if [ -n "$groups" ]; then
  for _ in $(seq 1 50); do
    # shellcheck disable=SC2086 # one word per cgroup directory
    pids=$(find $groups -name cgroup.procs -exec cat {{}} + 2>/dev/null)
    [ -z "$pids" ] && break
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    sleep 0.1
  done
fi
for g in $groups; do find "$g" -depth -type d -exec rmdir {{}} \; 2>/dev/null; done
for u in $units; do systemctl disable "$u" 2>/dev/null || true; done
# Mounts left under the data dirs (image tasks' roots), deepest first.
for d in "$@"; do
  awk -v d="$d" '$5 == d || index($5, d "/") == 1 {{print $5}}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
done
rm -rf /opt/medos /etc/medos "$@"
rm -f /etc/systemd/system/medos-master.service /etc/systemd/system/medos-agent.service /etc/systemd/system/medos-agent-public.service
if [ "$(readlink /usr/local/bin/medos 2>/dev/null)" = /opt/medos/bin/medos ]; then rm -f /usr/local/bin/medos; fi
for d in "$@"; do rmdir "$(dirname "$d")" 2>/dev/null || true; done
systemctl daemon-reload 2>/dev/null || true
for u in $units; do systemctl reset-failed "$u" 2>/dev/null || true; done
echo uninstalled
"#,
        dirs = dirs.join(" ")
    )
}

/// Lists what medos left on a host, one `kind what` line each (nothing: clean).
pub fn leftovers_script(data_dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = data_dirs.iter().map(|d| shell_quote(&d.display().to_string())).collect();
    format!(
        r#"for p in /opt/medos /etc/medos /usr/local/bin/medos /etc/systemd/system/medos-master.service /etc/systemd/system/medos-agent.service /etc/systemd/system/medos-agent-public.service {dirs}; do
  if [ -e "$p" ] || [ -L "$p" ]; then echo "file $p"; fi
done
for u in medos-master.service medos-agent.service medos-agent-public.service; do
  s=$(systemctl is-active "$u" 2>/dev/null); case "$s" in active|activating|deactivating|reloading) echo "unit $u $s";; esac
  if systemctl is-enabled --quiet "$u" 2>/dev/null; then echo "unit $u enabled"; fi
done
for e in /proc/[0-9]*/exe; do
  x=$(readlink "$e" 2>/dev/null) || continue
  case "$x" in /opt/medos/*) p=${{e#/proc/}}; echo "process ${{p%/exe}} $x";; esac
done
find /sys/fs/cgroup -maxdepth 4 -type d \( -name medos -o -name 'medos-*.service' \) 2>/dev/null | sed 's/^/cgroup /'
true
"#,
        dirs = dirs.join(" ")
    )
}

/// `(kind, what)` per line of [`leftovers_script`]'s output (pure).
pub fn parse_leftovers(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct UninstalledHost {
    pub host: String,
    pub clean: bool,
    pub leftovers: Vec<String>,
}

/// What medos may leave on `host` after uninstall (empty: clean).
pub async fn leftovers(ctx: &Context, host: &str) -> Result<Vec<String>, SshError> {
    let dirs = [ctx.config.data_dirs.master.clone(), ctx.config.data_dirs.agent.clone()];
    let out =
        ctx.runner.run(host, "check clean", "sh -s", Some(leftovers_script(&dirs).as_bytes()), SHORT_TIMEOUT).await?;
    Ok(parse_leftovers(&out.stdout))
}

/// `medos installer uninstall`: every host in parallel.
pub async fn uninstall(ctx: &Context, out: &mut dyn std::io::Write) -> Result<Vec<UninstalledHost>> {
    let dirs = [ctx.config.data_dirs.master.clone(), ctx.config.data_dirs.agent.clone()];
    let script = uninstall_script(&dirs);
    let names: Vec<String> = ctx.hosts().into_iter().map(|h| h.host).collect();
    let outcomes = ctx
        .runner
        .on_hosts(&names, "uninstall", |h| {
            let script = &script;
            async move {
                ctx.runner.run(h, "uninstall", "sh -s", Some(script.as_bytes()), SHORT_TIMEOUT).await?;
                leftovers(ctx, h).await
            }
        })
        .await;
    print_table(out, &outcomes);
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(left) => {
                for l in &left {
                    problems.push(format!("{}: still there: {l}", o.host));
                }
                report.push(UninstalledHost { host: o.host, clean: left.is_empty(), leftovers: left });
            }
            Err(e) => problems.push(format!("{}: {}", o.host, one_line(&e.to_string(), 400))),
        }
    }
    if !problems.is_empty() {
        bail!(
            "uninstall did not leave every host clean:\n  {}\nrerun `medos installer uninstall` (full logs in genconf/logs/)",
            problems.join("\n  ")
        );
    }
    let _ = writeln!(out, "{} hosts are clean: no medos units, files, processes or cgroups left", report.len());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMS: &str = "1111111111111111111111111111111111111111111111111111111111111111  medos\n\
        2222222222222222222222222222222222222222222222222222222222222222  install.sh\n\
        3333333333333333333333333333333333333333333333333333333333333333  nodes/10.0.0.1/role\n\
        4444444444444444444444444444444444444444444444444444444444444444  nodes/10.0.0.11/role\n\
        5555555555555555555555555555555555555555555555555555555555555555  nodes/10.0.0.1/root/etc/medos/master.toml\n";

    #[test]
    fn a_host_gets_the_shared_files_and_only_its_own_node_dir() {
        let sums = parse_sums(SUMS);
        assert_eq!(sums.len(), 5);
        let files: Vec<String> = host_files(&sums, "10.0.0.1").into_keys().collect();
        assert_eq!(files, ["install.sh", "medos", "nodes/10.0.0.1/role", "nodes/10.0.0.1/root/etc/medos/master.toml"]);
        // 10.0.0.11 shares a prefix with 10.0.0.1 but not the directory.
        let files: Vec<String> = host_files(&sums, "10.0.0.11").into_keys().collect();
        assert_eq!(files, ["install.sh", "medos", "nodes/10.0.0.11/role"]);
    }

    #[test]
    fn only_files_with_another_checksum_are_sent() {
        let wanted = host_files(&parse_sums(SUMS), "10.0.0.11");
        assert_eq!(changed_files(&wanted, ""), ["install.sh", "medos", "nodes/10.0.0.11/role"]);
        let remote = "1111111111111111111111111111111111111111111111111111111111111111  medos\n\
                      9999999999999999999999999999999999999999999999999999999999999999  install.sh\n\
                      4444444444444444444444444444444444444444444444444444444444444444  nodes/10.0.0.11/role\n";
        assert_eq!(changed_files(&wanted, remote), ["install.sh"]);
        let all_same = "1111111111111111111111111111111111111111111111111111111111111111  medos\n\
                        2222222222222222222222222222222222222222222222222222222222222222  install.sh\n\
                        4444444444444444444444444444444444444444444444444444444444444444  nodes/10.0.0.11/role\n";
        assert!(changed_files(&wanted, all_same).is_empty());
        // sha256sum's complaints about missing files are not checksums.
        assert_eq!(parse_sums("sha256sum: medos: No such file or directory\n").len(), 0);
    }

    #[test]
    fn host_state_is_read_from_key_value_lines() {
        let s = parse_host_state(
            "active=active\nenabled=enabled\ninvocation=abc\nversion=medos 0.1.0\nsha256=deadbeef\nnoise\n",
        );
        assert_eq!(
            s,
            HostState {
                active: "active".into(),
                enabled: "enabled".into(),
                version: "medos 0.1.0".into(),
                binary_sha256: "deadbeef".into(),
                invocation: "abc".into(),
            }
        );
        let gone = parse_host_state("active=inactive\nenabled=\ninvocation=\n");
        assert_eq!(gone.active, "inactive");
        assert!(gone.version.is_empty() && gone.binary_sha256.is_empty());
    }

    #[test]
    fn uninstall_removes_what_install_put_there() {
        let dirs = [PathBuf::from("/var/lib/medos/master"), PathBuf::from("/data/medos agent")];
        let s = uninstall_script(&dirs);
        for want in [
            "rm -rf /opt/medos /etc/medos \"$@\"",
            "set -- /var/lib/medos/master '/data/medos agent'",
            "systemctl disable \"$u\"",
            "kill -9",
            "/etc/systemd/system/medos-agent-public.service",
        ] {
            assert!(s.contains(want), "{want:?} missing:\n{s}");
        }
        let check = leftovers_script(&dirs);
        assert!(check.contains("/etc/medos") && check.contains("'/data/medos agent'"), "{check}");
        assert_eq!(
            parse_leftovers("\nfile /etc/medos\n  \ncgroup /sys/fs/cgroup/memory/medos\n"),
            ["file /etc/medos", "cgroup /sys/fs/cgroup/memory/medos"]
        );
    }
}

#[cfg(test)]
mod script_tests {
    use super::*;

    #[test]
    fn remote_scripts_are_shellcheck_clean() {
        let have = std::process::Command::new("sh")
            .args(["-c", "command -v shellcheck"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            eprintln!("shellcheck missing: skipping (CI installs it)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dirs = [PathBuf::from("/var/lib/medos/master"), PathBuf::from("/var/lib/medos/agent")];
        let scripts = [
            ("status.sh", format!("UNIT=medos-master.service\n{STATUS_SCRIPT}")),
            ("uninstall.sh", uninstall_script(&dirs)),
            ("leftovers.sh", leftovers_script(&dirs)),
        ];
        for (name, text) in &scripts {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{text}")).unwrap();
            let out = std::process::Command::new("shellcheck").arg("-s").arg("sh").arg(&path).output().unwrap();
            assert!(out.status.success(), "{name}:\n{}\n{text}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
