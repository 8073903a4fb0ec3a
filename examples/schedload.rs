//! `schedload`: the driver behind `benches/scheduling.sh` (benchmark B4, with B10's figures).
//!
//! It talks to the masters' public API only (TLS, an admin token), like any client:
//!
//! - `wait-agents`: waits until the leader counts `--count` active agents; prints one JSON line
//!   with the time it took.
//! - `place`: adds `--apps` Marathon apps of `--instances` each (optionally with a constraint)
//!   at once through `POST /v2/apps` and times the placements until every task is placed and
//!   running. With `--sim-stats FILE` (the counters of `medos agent --simulate N
//!   --simulate-stats FILE`) the agents time them: a task is "placed" when its launch reached
//!   an agent (the leader sends a launch only after the launch batch is committed through
//!   Raft) and "running" when the masters acknowledged its TASK_RUNNING update (acknowledged
//!   only once committed), so nothing polls the masters while they work; the masters' counts
//!   (`/v2/apps`) are checked afterwards. Without it, it polls `/v2/apps?id=GROUP/`
//!   (`tasksStaged + tasksRunning`) every `--poll-ms`; those reads wait for a read barrier and
//!   stall when the leader does. (Not `/mesos/metrics/snapshot`: the master computes it per
//!   agent over all tasks, which at 10,000 agents and tasks stalls it; it is read only before
//!   and after a run.) Meanwhile it samples the CPU time and RSS of the processes given with
//!   `--watch NAME=PID`. Then it removes the apps and waits until their removal deployments
//!   are done. Prints one JSON line.
//! - `latency`: follows `/v2/events` (status_update_event) on the leader and adds `--apps`
//!   one-instance apps one after the other; for each, the time from sending the POST until the
//!   event saying its first task is TASK_RUNNING. Prints one JSON line with p50/p99/max.
//! - `report`: the Markdown table of `bench-results/scheduling.md` from those JSON lines.
//!
//! Example: `cargo run --release --example schedload -- place --endpoints https://127.0.0.1:7443 \
//!   --ca ca.crt --password-file admin-password --apps 10 --instances 1000 \
//!   --constraint '["hostname","MAX_PER","2"]' --watch master=1234`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Scheduling benchmark driver for medos (benches/scheduling.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Wait until the leader counts this many active agents.
    WaitAgents(WaitArgs),
    /// Add apps and measure Raft-committed placements per second.
    Place(PlaceArgs),
    /// App add -> first instance TASK_RUNNING latency.
    Latency(LatencyArgs),
    /// Print the leader's URL.
    Leader {
        #[command(flatten)]
        target: Target,
    },
    /// Markdown table from the JSON lines of the other subcommands.
    Report {
        #[arg(long)]
        results: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
struct Target {
    /// Comma-separated https URLs of all masters.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long)]
    ca: PathBuf,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long)]
    password_file: PathBuf,
}

#[derive(Debug, Args)]
struct WaitArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long)]
    count: u64,
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Label of the run (copied into the JSON line).
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
    /// The simulator's statistics file: then every simulated agent must have registered too
    /// (the masters' count alone also counts duplicate registrations).
    #[arg(long)]
    sim_stats: Option<PathBuf>,
    /// After registration, measure CPU and RSS over this many idle seconds (heartbeats only).
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
}

#[derive(Debug, Args)]
struct PlaceArgs {
    #[command(flatten)]
    target: Target,
    /// Label of the run (copied into the JSON line).
    #[arg(long)]
    label: String,
    #[arg(long, default_value_t = 1)]
    apps: u32,
    #[arg(long)]
    instances: u32,
    /// A Marathon constraint as JSON, e.g. '["rack","GROUP_BY"]'.
    #[arg(long)]
    constraint: Option<String>,
    #[arg(long, default_value_t = 0.01)]
    cpus: f64,
    #[arg(long, default_value_t = 32.0)]
    mem: f64,
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Processes to sample: NAME=PID (repeat).
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
    /// Leave the apps in place afterwards.
    #[arg(long)]
    keep: bool,
    /// The statistics file of `medos agent --simulate N --simulate-stats FILE`: placements
    /// and RUNNING updates are then timed by the agents (a launch reaches an agent only after
    /// it is committed; a RUNNING update is acknowledged only once committed), so nothing
    /// polls the masters while they work.
    #[arg(long)]
    sim_stats: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LatencyArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long)]
    label: String,
    #[arg(long, default_value_t = 50)]
    apps: u32,
    /// Pause between apps.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
    /// Seconds to wait for an app's first TASK_RUNNING.
    #[arg(long, default_value_t = 10.0)]
    app_timeout: f64,
    /// Stop adding apps after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    budget: f64,
    #[arg(long = "watch", value_name = "NAME=PID")]
    watch: Vec<String>,
}

/// One result line.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    kind: String,
    label: String,
    #[serde(default)]
    agents: u64,
    #[serde(default)]
    tasks: u64,
    #[serde(default)]
    apps: u32,
    #[serde(default)]
    constraint: Option<String>,
    /// POSTs sent -> all answered (s).
    #[serde(default)]
    post_secs: f64,
    /// First POST -> staging+starting+running reaches the total (s).
    #[serde(default)]
    placed_secs: Option<f64>,
    #[serde(default)]
    running_secs: Option<f64>,
    #[serde(default)]
    placements_per_sec: Option<f64>,
    #[serde(default)]
    running_per_sec: Option<f64>,
    /// Time for half of the tasks to be placed (s): shows whether the rate holds.
    #[serde(default)]
    half_placed_secs: Option<f64>,
    #[serde(default)]
    raft_entries: u64,
    /// Removing the apps -> their tasks gone (s).
    #[serde(default)]
    cleanup_secs: Option<f64>,
    #[serde(default)]
    latencies_ms: Vec<f64>,
    #[serde(default)]
    p50_ms: Option<f64>,
    #[serde(default)]
    p99_ms: Option<f64>,
    #[serde(default)]
    max_ms: Option<f64>,
    #[serde(default)]
    seconds: f64,
    /// Per watched process: CPU % of one core over the measured interval, peak and end RSS (MB).
    #[serde(default)]
    procs: BTreeMap<String, ProcFigures>,
    /// The same over an idle interval after registration (heartbeats and pings only).
    #[serde(default)]
    idle: BTreeMap<String, ProcFigures>,
    #[serde(default)]
    note: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ProcFigures {
    cpu_percent: f64,
    rss_peak_mb: f64,
    rss_end_mb: f64,
}

// ---------------------------------------------------------------- process sampling

struct Watched {
    name: String,
    pid: u32,
    cpu_start: f64,
    rss_peak: f64,
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100.0, |t| t as f64)
}

/// CPU seconds (user + system) of a process.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the state field.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn rss_mb(pid: u32) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0.0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn watch(specs: &[String]) -> Result<Vec<Watched>> {
    specs
        .iter()
        .map(|s| {
            let (name, pid) = s.split_once('=').context("--watch expects NAME=PID")?;
            let pid: u32 = pid.parse().with_context(|| format!("--watch {s}: PID"))?;
            Ok(Watched { name: name.into(), pid, cpu_start: cpu_secs(pid), rss_peak: rss_mb(pid) })
        })
        .collect()
}

fn sample(watched: &mut [Watched]) {
    for w in watched {
        w.rss_peak = w.rss_peak.max(rss_mb(w.pid));
    }
}

fn figures(watched: &[Watched], elapsed: f64) -> BTreeMap<String, ProcFigures> {
    watched
        .iter()
        .map(|w| {
            let cpu = (cpu_secs(w.pid) - w.cpu_start) / elapsed.max(1e-9) * 100.0;
            let end = rss_mb(w.pid);
            (w.name.clone(), ProcFigures { cpu_percent: cpu, rss_peak_mb: w.rss_peak.max(end), rss_end_mb: end })
        })
        .collect()
}

// ---------------------------------------------------------------- the cluster

struct Cluster {
    http: reqwest::Client,
    auth: String,
    endpoints: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Metrics {
    elected: bool,
    agents: u64,
    staging: u64,
    starting: u64,
    running: u64,
    killing: u64,
    last_log_index: u64,
}

impl Metrics {
    fn placed(&self) -> u64 {
        self.staging + self.starting + self.running
    }

    fn live(&self) -> u64 {
        self.placed() + self.killing
    }
}

impl Cluster {
    async fn connect(t: &Target) -> Result<Self> {
        medos::pki::install_crypto_provider();
        let ca_pem = std::fs::read(&t.ca).with_context(|| format!("reading {}", t.ca.display()))?;
        let tls = medos::pki::tls::client_config_for_ca(&ca_pem)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        let password = std::fs::read_to_string(&t.password_file)
            .with_context(|| format!("reading {}", t.password_file.display()))?;
        let body = json!({"uid": t.user, "password": password.trim()});
        let mut last = String::new();
        for ep in &t.endpoints {
            match http.post(format!("{ep}/acs/api/v1/auth/login")).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await?;
                    let token = v["token"].as_str().context("login answer without a token")?;
                    return Ok(Self { http, auth: format!("token={token}"), endpoints: t.endpoints.clone() });
                }
                Ok(r) => last = format!("{ep}: {}", r.status()),
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        bail!("cannot log in: {last}")
    }

    async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value> {
        let mut req = self.http.request(method.clone(), url).header(AUTHORIZATION, &self.auth);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.timeout(Duration::from_secs(30)).send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!("{method} {url}: {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(400)]));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn metrics_of(&self, ep: &str) -> Result<Metrics> {
        let v = self.call(Method::GET, &format!("{ep}/mesos/metrics/snapshot"), None).await?;
        let n = |k: &str| v[k].as_f64().unwrap_or(0.0) as u64;
        Ok(Metrics {
            elected: n("master/elected") == 1,
            agents: n("master/slaves_active"),
            staging: n("master/tasks_staging"),
            starting: n("master/tasks_starting"),
            running: n("master/tasks_running"),
            killing: n("master/tasks_killing"),
            last_log_index: n("medos/raft/last_log_index"),
        })
    }

    /// The leader's URL (its metrics say `master/elected`).
    async fn leader(&self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for ep in &self.endpoints {
                if self.metrics_of(ep).await.is_ok_and(|m| m.elected) {
                    return Ok(ep.clone());
                }
            }
            if Instant::now() > deadline {
                bail!("no leader among {:?}", self.endpoints);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Tasks staged (STAGING or STARTING) and running of the apps under `group`, from
    /// `/v2/apps?id=` (the apps' counts; cheap, unlike the Mesos metrics, which the master
    /// computes per agent over all tasks).
    async fn app_counts(&self, leader: &str, group: &str) -> Result<(u64, u64)> {
        let v = self.call(Method::GET, &format!("{leader}/v2/apps?id={group}/"), None).await?;
        let apps = v["apps"].as_array().context("/v2/apps without apps")?;
        let sum = |k: &str| apps.iter().map(|a| a[k].as_u64().unwrap_or(0)).sum::<u64>();
        Ok((sum("tasksStaged"), sum("tasksRunning")))
    }

    /// Removes apps and waits until their removal deployments are done (every task ended).
    async fn remove_apps(&self, leader: &str, ids: &[String], timeout: Duration) -> Result<f64> {
        let start = Instant::now();
        let mut deployments = Vec::new();
        for id in ids {
            let v = self.call(Method::DELETE, &format!("{leader}/v2/apps{id}?force=true"), None).await?;
            if let Some(d) = v["deploymentId"].as_str() {
                deployments.push(d.to_string());
            }
        }
        loop {
            let v = self.call(Method::GET, &format!("{leader}/v2/deployments"), None).await?;
            let open: Vec<&str> = v.as_array().into_iter().flatten().filter_map(|d| d["id"].as_str()).collect();
            let left = deployments.iter().filter(|d| open.contains(&d.as_str())).count();
            if left == 0 {
                return Ok(start.elapsed().as_secs_f64());
            }
            if start.elapsed() > timeout {
                bail!("{left} removal deployments still running {timeout:?} after removing the apps");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A fresh Marathon group for a run's apps: `/bench/<label as a path segment>-<random>`.
fn group_id(label: &str) -> String {
    let segment: String =
        label.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let segment = segment.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
    format!("/bench/{segment}-{}", hex::encode(rand::random::<[u8; 3]>()))
}

fn app_json(id: &str, instances: u32, cpus: f64, mem: f64, constraint: Option<&Value>) -> Value {
    let mut app = json!({
        "id": id,
        "cmd": "sleep 100000",
        "cpus": cpus,
        "mem": mem,
        "disk": 0,
        "instances": instances,
    });
    if let Some(c) = constraint {
        app["constraints"] = json!([c]);
    }
    app
}

// ---------------------------------------------------------------- subcommands

async fn wait_agents(args: WaitArgs) -> Result<Record> {
    let count = args.count;
    let cluster = Cluster::connect(&args.target).await?;
    let mut watched = watch(&args.watch)?;
    let start = Instant::now();
    let mut last_print = Instant::now();
    let mut peak = 0;
    let mut notes = Vec::new();
    let (active, seconds) = loop {
        sample(&mut watched);
        let leader = cluster.leader().await?;
        let m = cluster.metrics_of(&leader).await?;
        peak = peak.max(m.agents);
        let simulated = match &args.sim_stats {
            Some(path) => read_sim_stats(path).map(|s| s.registered).unwrap_or(0),
            None => count,
        };
        // Exactly `count`: duplicate registrations of one agent count as extra agents until
        // the leader marks them unreachable.
        if m.agents == count && simulated >= count {
            break (m.agents, start.elapsed().as_secs_f64());
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("schedload: {} agents active on the leader, {simulated} of {count} registered", m.agents);
            last_print = Instant::now();
        }
        if start.elapsed().as_secs_f64() > args.timeout {
            notes.push(format!(
                "not settled after {} s: {} agents active on the leader, {simulated} of {count} registered",
                args.timeout, m.agents
            ));
            break (m.agents, start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if peak > count {
        notes.push(format!("up to {peak} agents were active on the leader for {count} simulated ones"));
    }
    let procs = figures(&watched, seconds);
    // Idle: only heartbeats and pings.
    let mut idle = BTreeMap::new();
    if args.idle_secs > 0.0 {
        let mut idle_watch = watch(&args.watch)?;
        let idle_start = Instant::now();
        while idle_start.elapsed().as_secs_f64() < args.idle_secs {
            tokio::time::sleep(Duration::from_millis(500)).await;
            sample(&mut idle_watch);
        }
        idle = figures(&idle_watch, idle_start.elapsed().as_secs_f64());
    }
    Ok(Record {
        kind: "agents".into(),
        label: args.label,
        agents: active,
        seconds,
        procs,
        idle,
        note: notes.join("; "),
        ..Default::default()
    })
}

async fn place(args: PlaceArgs) -> Result<Record> {
    let cluster = Cluster::connect(&args.target).await?;
    let leader = cluster.leader().await?;
    let constraint: Option<Value> = match &args.constraint {
        Some(text) => {
            Some(serde_json::from_str(text).context("--constraint must be JSON such as [\"rack\",\"GROUP_BY\"]")?)
        }
        None => None,
    };
    let before = cluster.metrics_of(&leader).await?;
    if before.live() != 0 {
        bail!("{} tasks are live before the run; start from an empty cluster", before.live());
    }
    let total = u64::from(args.apps) * u64::from(args.instances);
    let group = group_id(&args.label);
    let ids: Vec<String> = (0..args.apps).map(|i| format!("{group}/app-{i:03}")).collect();
    let sim_base = args.sim_stats.as_ref().map(read_sim_stats).transpose()?;
    let mut watched = watch(&args.watch)?;
    let start_ms = unix_ms();
    let start = Instant::now();
    let posts = ids.iter().map(|id| {
        let body = app_json(id, args.instances, args.cpus, args.mem, constraint.as_ref());
        let cluster = &cluster;
        let leader = &leader;
        async move { cluster.call(Method::POST, &format!("{leader}/v2/apps"), Some(&body)).await }
    });
    for result in futures_util::future::join_all(posts).await {
        result?;
    }
    let post_secs = start.elapsed().as_secs_f64();
    let (mut placed_at, mut running_at, mut half_at) = (None, None, None);
    let secs_since_start = |ms: u64| ms.saturating_sub(start_ms) as f64 / 1000.0;
    let mut last_print = Instant::now();
    let mut errors = 0u32;
    let (placed, running) = loop {
        // (placed, running, when the last placement and the last RUNNING were seen, ms)
        let observed = match &sim_base {
            Some(base) => read_sim_stats(args.sim_stats.as_ref().expect("sim stats")).map(|now| {
                (
                    now.launched.saturating_sub(base.launched),
                    now.running_acked.saturating_sub(base.running_acked),
                    now.last_launch_ms,
                    now.last_running_ack_ms,
                )
            }),
            None => cluster.app_counts(&leader, &group).await.map(|(staged, running)| {
                let now = unix_ms();
                (staged + running, running, now, now)
            }),
        };
        let (placed, running, placed_ms, running_ms) = match observed {
            Ok(o) => o,
            Err(e) => {
                // A stalled master answers 503 after its request timeout; keep measuring.
                errors += 1;
                eprintln!("schedload {}: polling failed: {e:#}", args.label);
                if start.elapsed().as_secs_f64() > args.timeout {
                    break (0, 0);
                }
                tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
                continue;
            }
        };
        sample(&mut watched);
        if half_at.is_none() && placed * 2 >= total {
            half_at = Some(secs_since_start(placed_ms));
        }
        if placed_at.is_none() && placed >= total {
            placed_at = Some(secs_since_start(placed_ms));
        }
        if running_at.is_none() && running >= total {
            running_at = Some(secs_since_start(running_ms));
        }
        if running_at.is_some() {
            break (placed, running);
        }
        let t = start.elapsed().as_secs_f64();
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("schedload {}: {t:.1} s: {placed} placed ({running} running) of {total}", args.label);
            last_print = Instant::now();
        }
        if t > args.timeout {
            break (placed, running);
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    };
    let measured = start.elapsed().as_secs_f64();
    let procs = figures(&watched, measured);
    let mut notes = Vec::new();
    if running_at.is_none() {
        notes.push(format!("timed out after {} s with {placed} placed and {running} running of {total}", args.timeout));
    }
    if errors > 0 {
        notes.push(format!("{errors} polls failed"));
    }
    if sim_base.is_some() && running_at.is_some() {
        // The agents' view, checked against the masters' (which may lag while they are busy).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match cluster.app_counts(&leader, &group).await {
                Ok((_, running)) if running == total => break,
                Ok((staged, running)) if Instant::now() > deadline => {
                    notes.push(format!("the masters count {staged} staged and {running} running of {total}"));
                    break;
                }
                Err(e) if Instant::now() > deadline => {
                    notes.push(format!("cannot check the masters' counts: {e}"));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    let after = cluster.metrics_of(&leader).await?;
    let raft_entries = after.last_log_index.saturating_sub(before.last_log_index);
    let cleanup_secs = if args.keep {
        None
    } else if running_at.is_none() {
        // Removing would mean killing thousands of tasks through the same stalled path.
        notes.push("apps left in place (the cluster is restarted for the next run)".into());
        None
    } else {
        match cluster.remove_apps(&leader, &ids, Duration::from_secs_f64(args.timeout)).await {
            Ok(s) => Some(s),
            Err(e) => {
                notes.push(format!("cleanup: {e}"));
                None
            }
        }
    };
    Ok(Record {
        kind: "place".into(),
        label: args.label,
        agents: before.agents,
        tasks: total,
        apps: args.apps,
        constraint: args.constraint,
        post_secs,
        placed_secs: placed_at,
        running_secs: running_at,
        placements_per_sec: placed_at.map(|t| total as f64 / t),
        running_per_sec: running_at.map(|t| total as f64 / t),
        half_placed_secs: half_at,
        raft_entries,
        cleanup_secs,
        seconds: measured,
        procs,
        note: notes.join("; "),
        ..Default::default()
    })
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The simulator's counters (`medos agent --simulate N --simulate-stats FILE`).
#[derive(Debug, Default, Clone, Deserialize)]
struct SimStats {
    registered: u64,
    launched: u64,
    last_launch_ms: u64,
    running_acked: u64,
    last_running_ack_ms: u64,
}

fn read_sim_stats(path: &PathBuf) -> Result<SimStats> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

async fn latency(args: LatencyArgs) -> Result<Record> {
    let cluster = Cluster::connect(&args.target).await?;
    let leader = cluster.leader().await?;
    let before = cluster.metrics_of(&leader).await?;
    // Follow the leader's status updates: appId -> when its first TASK_RUNNING arrived.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let resp = cluster
        .http
        .get(format!("{leader}/v2/events?event_type=status_update_event"))
        .header(AUTHORIZATION, &cluster.auth)
        .header("Accept", "text/event-stream")
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("/v2/events: {}", resp.status());
    }
    let reader = tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            let now = Instant::now();
            buffer.extend_from_slice(&chunk);
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                let Some(data) = line.strip_prefix(b"data:") else { continue };
                let Ok(v) = serde_json::from_slice::<Value>(data) else { continue };
                if v["taskStatus"] == "TASK_RUNNING"
                    && let Some(app) = v["appId"].as_str()
                {
                    let _ = tx.send((app.to_string(), now));
                }
            }
        }
    });
    let mut watched = watch(&args.watch)?;
    let began = Instant::now();
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    let mut timed_out = 0;
    let group = group_id(&args.label);
    for i in 0..args.apps {
        let id = format!("{group}/lat-{i:03}");
        let body = app_json(&id, 1, 0.01, 16.0, None);
        while rx.try_recv().is_ok() {}
        let start = Instant::now();
        cluster.call(Method::POST, &format!("{leader}/v2/apps"), Some(&body)).await?;
        ids.push(id.clone());
        let deadline = start + Duration::from_secs_f64(args.app_timeout);
        loop {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((app, at))) if app == id => {
                    latencies.push(at.duration_since(start).as_secs_f64() * 1000.0);
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) => bail!("the event stream ended"),
                Err(_) => {
                    // Counted at the timeout, so that percentiles do not hide it.
                    latencies.push(args.app_timeout * 1000.0);
                    timed_out += 1;
                    break;
                }
            }
        }
        sample(&mut watched);
        if began.elapsed().as_secs_f64() > args.budget {
            break;
        }
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let seconds = began.elapsed().as_secs_f64();
    let procs = figures(&watched, seconds);
    reader.abort();
    let mut notes = Vec::new();
    if timed_out > 0 {
        notes.push(format!(
            "{timed_out} of {} apps had no TASK_RUNNING within {} s (counted as {} s)",
            latencies.len(),
            args.app_timeout,
            args.app_timeout
        ));
    }
    if latencies.len() < args.apps as usize {
        notes.push(format!("stopped after {} of {} apps ({} s budget)", latencies.len(), args.apps, args.budget));
    }
    let cleanup_secs = cluster.remove_apps(&leader, &ids, Duration::from_secs(120)).await.ok();
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Record {
        kind: "latency".into(),
        label: args.label,
        agents: before.agents,
        tasks: latencies.len() as u64,
        apps: args.apps,
        p50_ms: percentile(&sorted, 50.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted.last().copied(),
        latencies_ms: latencies,
        cleanup_secs,
        seconds,
        procs,
        note: notes.join("; "),
        ..Default::default()
    })
}

// ---------------------------------------------------------------- report

const NOMAD_C1M: f64 = 3750.0;
const GOAL_RATE: f64 = 5000.0;
const GOAL_P99_MS: f64 = 1000.0;

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn procs_text(procs: &BTreeMap<String, ProcFigures>) -> String {
    procs
        .iter()
        .map(|(name, p)| {
            format!("{name} {:.0}% CPU, RSS {:.0} MB (peak {:.0})", p.cpu_percent, p.rss_end_mb, p.rss_peak_mb)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn report(path: &PathBuf) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let records: Vec<Record> =
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
    let mut out = String::new();
    out.push_str("### Placement throughput (B4)\n\n");
    out.push_str(
        "| cluster | tasks | apps × instances | constraint | placed (s) | **placements/s** | vs Nomad C1M 3,750/s | \
         goal ≥ 5,000/s | all RUNNING (s) | RUNNING/s | Raft entries | removal (s) |\n",
    );
    out.push_str("| --- | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for r in records.iter().filter(|r| r.kind == "place") {
        let rate = r.placements_per_sec;
        out.push_str(&format!(
            "| {} | {} | {} × {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} |\n",
            r.label,
            r.tasks,
            r.apps,
            r.tasks / u64::from(r.apps.max(1)),
            r.constraint.as_deref().map_or("none".to_string(), |c| format!("`{c}`")),
            fmt_opt(r.placed_secs, 2),
            fmt_opt(rate, 0),
            rate.map_or("-".into(), |v| format!("{:.2}x", v / NOMAD_C1M)),
            match rate {
                Some(v) if v >= GOAL_RATE => "met".to_string(),
                Some(_) => "NOT met".to_string(),
                None => "NOT met (timed out)".to_string(),
            },
            fmt_opt(r.running_secs, 2),
            fmt_opt(r.running_per_sec, 0),
            r.raft_entries,
            fmt_opt(r.cleanup_secs, 1),
        ));
    }
    out.push_str("\n### App add → first instance TASK_RUNNING (B4)\n\n");
    out.push_str("| cluster | apps | p50 (ms) | p99 (ms) | max (ms) | goal p99 ≤ 1 s |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | --- |\n");
    for r in records.iter().filter(|r| r.kind == "latency") {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.label,
            r.latencies_ms.len(),
            fmt_opt(r.p50_ms, 1),
            fmt_opt(r.p99_ms, 1),
            fmt_opt(r.max_ms, 1),
            match r.p99_ms {
                Some(v) if v <= GOAL_P99_MS && r.note.is_empty() => "met",
                _ => "NOT met",
            }
        ));
    }
    out.push_str("\n### Registration, CPU and memory (B10 figures)\n\n");
    out.push_str("| cluster | phase | seconds | processes (CPU % of one core over the phase; RSS) |\n");
    out.push_str("| --- | --- | ---: | --- |\n");
    for r in &records {
        let phase = match r.kind.as_str() {
            "agents" => format!("{} agents register", r.agents),
            "place" => format!(
                "place {} tasks{}",
                r.tasks,
                r.constraint.as_deref().map_or(String::new(), |c| format!(" `{c}`"))
            ),
            "latency" => format!("{} one-instance apps, one at a time", r.apps),
            other => other.to_string(),
        };
        out.push_str(&format!("| {} | {phase} | {:.1} | {} |\n", r.label, r.seconds, procs_text(&r.procs)));
        if !r.idle.is_empty() {
            out.push_str(&format!(
                "| {} | idle with {} agents (heartbeats, pings) | - | {} |\n",
                r.label,
                r.agents,
                procs_text(&r.idle)
            ));
        }
    }
    let notes: Vec<String> = records
        .iter()
        .filter(|r| !r.note.is_empty())
        .map(|r| format!("- {} ({}): {}", r.label, r.kind, r.note))
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let record = match cli.cmd {
        Cmd::WaitAgents(args) => wait_agents(args).await?,
        Cmd::Place(args) => place(args).await?,
        Cmd::Latency(args) => latency(args).await?,
        Cmd::Leader { target } => {
            println!("{}", Cluster::connect(&target).await?.leader().await?);
            return Ok(());
        }
        Cmd::Report { results } => {
            print!("{}", report(&results)?);
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}
