//! `kvload`: the load generator behind `benches/kv.sh` (benchmarks B1, B2 and B7).
//!
//! It drives either a medos cluster (`/v1/kv`) or an etcd 3.4 cluster (its v3 JSON gateway,
//! `/v3/kv/put` and `/v3/kv/range`) with exactly the same HTTP stack: one reqwest client over
//! rustls (ring), HTTP/1.1, trusting only the given CA, one connection per concurrent client.
//!
//! Subcommands:
//! - `load`: C concurrent clients doing durable writes (`--op put`) or linearizable reads
//!   (`--op get`) of fixed-size values for a fixed time (bounded by `--max-ops` too); prints
//!   one JSON line with ops/s and p50/p99/max latency.
//! - `failover`: C clients write unique keys continuously; someone (the benchmark script)
//!   kills the leader with SIGKILL and writes the kill time (ns since the epoch) into
//!   `--kill-time-file`. Reports the time from the kill until the first write sent after it
//!   is acknowledged, then reads back every acknowledged write (linearizably) and counts
//!   the lost ones. Prints one JSON line.
//! - `leader`: prints the leader's URL (or, with `--dev-json`, the PID of the medos leader).
//! - `report`: turns the JSON lines of a run into the Markdown table of `bench-results/kv.md`.
//!
//! Example: `cargo run --release --example kvload -- load --target etcd \
//!   --endpoints https://127.0.0.1:2379 --ca ca.crt --op put --clients 64 --duration 8`

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "KV load generator for medos and etcd (benches/kv.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Throughput and latency of writes or linearizable reads.
    Load(LoadArgs),
    /// Continuous writes while the leader is killed; recovery time and lost writes.
    Failover(FailoverArgs),
    /// Print the current leader's URL (or the medos leader's PID with --dev-json).
    Leader {
        #[command(flatten)]
        target: TargetArgs,
        /// The JSON line printed by `medos dev --json`; prints the leader's PID.
        #[arg(long)]
        dev_json: Option<PathBuf>,
    },
    /// Print the Markdown results table from the JSON lines of `load` and `failover`.
    Report {
        #[arg(long)]
        results: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Medos,
    Etcd,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Medos => "medos",
            Kind::Etcd => "etcd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Put,
    Get,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Spread {
    /// Every client talks to the leader (the fastest path on both systems).
    Leader,
    /// Clients are spread round-robin over all endpoints (followers forward).
    All,
}

#[derive(Debug, Clone, Args)]
struct TargetArgs {
    #[arg(long, value_enum)]
    target: Kind,
    /// Comma-separated https URLs of all members.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// CA certificate (PEM) the servers' certificates are issued by.
    #[arg(long)]
    ca: PathBuf,
    /// medos user to log in as.
    #[arg(long, default_value = "admin")]
    user: String,
    /// File holding the medos user's password (required for medos).
    #[arg(long)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum)]
    op: Op,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Seconds of load before measuring (connections, TLS handshakes, caches).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Stop after this many measured operations even if time remains.
    #[arg(long, default_value_t = 2_000_000)]
    max_ops: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Number of distinct keys; keys are picked uniformly at random.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Write every key once before a read run.
    #[arg(long)]
    prefill: bool,
    #[arg(long, value_enum, default_value_t = Spread::Leader)]
    to: Spread,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of writing in total (the kill happens somewhere inside).
    #[arg(long, default_value_t = 12.0)]
    duration: f64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Per-request timeout in seconds; a timed-out write counts as failed, not acknowledged.
    #[arg(long, default_value_t = 2.0)]
    request_timeout: f64,
    /// File the killer writes `NANOS NAME` into after the kill: the kill time in nanoseconds
    /// since the epoch (`date +%s%N` taken just before `kill -9`) and the killed member's name.
    #[arg(long)]
    kill_time_file: PathBuf,
    /// Upper bound in seconds for reading back every acknowledged write.
    #[arg(long, default_value_t = 60.0)]
    verify_timeout: f64,
}

/// The same HTTP client stack for both systems.
struct Kv {
    kind: Kind,
    http: reqwest::Client,
    /// `Authorization` header value for medos.
    auth: Option<String>,
}

#[derive(Deserialize)]
struct MedosItem {
    value: String,
}

#[derive(Deserialize)]
struct EtcdRange {
    #[serde(default)]
    kvs: Vec<EtcdKv>,
}

#[derive(Deserialize)]
struct EtcdKv {
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct EtcdStatus {
    header: EtcdHeader,
    leader: String,
}

#[derive(Deserialize)]
struct EtcdHeader {
    member_id: String,
}

use medos::api::client::describe;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl Kv {
    async fn connect(t: &TargetArgs, timeout: Duration) -> Result<Self> {
        medos::pki::install_crypto_provider();
        let ca_pem = std::fs::read(&t.ca).with_context(|| format!("reading {}", t.ca.display()))?;
        let tls = medos::pki::tls::client_config_for_ca(&ca_pem)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .build()?;
        let mut kv = Self { kind: t.target, http, auth: None };
        if t.target == Kind::Medos {
            let file = t.password_file.as_ref().context("--password-file is required for medos")?;
            let password = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let body = json!({"uid": t.user, "password": password.trim()});
            let mut last = String::new();
            for ep in &t.endpoints {
                match kv.http.post(format!("{ep}/acs/api/v1/auth/login")).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await?;
                        let token = v["token"].as_str().context("login answer without token")?;
                        kv.auth = Some(format!("token={token}"));
                        break;
                    }
                    Ok(r) => last = format!("{ep}: {}", r.status()),
                    Err(e) => last = format!("{ep}: {}", describe(&e)),
                }
            }
            if kv.auth.is_none() {
                bail!("cannot log in to medos: {last}");
            }
        }
        Ok(kv)
    }

    async fn finish(resp: reqwest::Response) -> Result<bytes::Bytes, String> {
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| describe(&e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("{status}: {text}"));
        }
        Ok(body)
    }

    /// One durable write; Ok only when the server acknowledged it.
    async fn put(&self, ep: &str, key: &str, value: &[u8]) -> Result<(), String> {
        let req = match self.kind {
            Kind::Medos => {
                let mut r = self.http.put(format!("{ep}/v1/kv/{}", medos::api::client::encode_key(key)));
                if let Some(a) = &self.auth {
                    r = r.header(AUTHORIZATION, a);
                }
                r.body(value.to_vec())
            }
            Kind::Etcd => {
                let body = json!({"key": B64.encode(key), "value": B64.encode(value)});
                self.http
                    .post(format!("{ep}/v3/kv/put"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&body).expect("json"))
            }
        };
        let resp = req.send().await.map_err(|e| describe(&e))?;
        Self::finish(resp).await.map(|_| ())
    }

    /// One linearizable read; Ok(None) when the key does not exist.
    async fn get(&self, ep: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let value = match self.kind {
            Kind::Medos => {
                let mut r = self.http.get(format!("{ep}/v1/kv/{}", medos::api::client::encode_key(key)));
                if let Some(a) = &self.auth {
                    r = r.header(AUTHORIZATION, a);
                }
                let resp = r.send().await.map_err(|e| describe(&e))?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let body = Self::finish(resp).await?;
                let item: MedosItem = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                item.value
            }
            Kind::Etcd => {
                let body = json!({"key": B64.encode(key)});
                let resp = self
                    .http
                    .post(format!("{ep}/v3/kv/range"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&body).expect("json"))
                    .send()
                    .await
                    .map_err(|e| describe(&e))?;
                let body = Self::finish(resp).await?;
                let range: EtcdRange = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                match range.kvs.into_iter().next() {
                    Some(kv) => kv.value,
                    None => return Ok(None),
                }
            }
        };
        B64.decode(value).map(Some).map_err(|e| e.to_string())
    }

    /// The URL of the current leader among `endpoints`.
    async fn leader(&self, endpoints: &[String]) -> Result<String> {
        let mut last = String::from("no endpoint answered");
        match self.kind {
            Kind::Medos => {
                for ep in endpoints {
                    let mut r = self.http.get(format!("{ep}/v1/cluster/status"));
                    if let Some(a) = &self.auth {
                        r = r.header(AUTHORIZATION, a);
                    }
                    let status = match r.send().await {
                        Ok(resp) => match Self::finish(resp).await {
                            Ok(b) => serde_json::from_slice::<medos::api::cluster::ClusterStatus>(&b)?,
                            Err(e) => {
                                last = e;
                                continue;
                            }
                        },
                        Err(e) => {
                            last = describe(&e);
                            continue;
                        }
                    };
                    if let Some(name) = status.leader
                        && let Some(m) = status.members.iter().find(|m| m.name == name)
                    {
                        let api = m.api.trim_end_matches('/').to_string();
                        return Ok(endpoints.iter().find(|e| e.trim_end_matches('/') == api).cloned().unwrap_or(api));
                    }
                    last = format!("{ep} knows no leader");
                }
            }
            Kind::Etcd => {
                let mut ids = Vec::new();
                let mut leader = None;
                for ep in endpoints {
                    let sent = self
                        .http
                        .post(format!("{ep}/v3/maintenance/status"))
                        .header(CONTENT_TYPE, "application/json")
                        .body("{}")
                        .send()
                        .await;
                    match sent {
                        Ok(resp) => match Self::finish(resp).await {
                            Ok(b) => {
                                let s: EtcdStatus = serde_json::from_slice(&b)?;
                                if s.leader != "0" {
                                    leader = Some(s.leader.clone());
                                }
                                ids.push((s.header.member_id, ep.clone()));
                            }
                            Err(e) => last = e,
                        },
                        Err(e) => last = describe(&e),
                    }
                }
                if let Some(l) = leader
                    && let Some((_, ep)) = ids.iter().find(|(id, _)| *id == l)
                {
                    return Ok(ep.clone());
                }
            }
        }
        bail!("cannot find the leader: {last}")
    }
}

/// xorshift64*: cheap per-client randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

#[derive(Debug, Serialize, Deserialize)]
struct LoadResult {
    target: Kind,
    op: Op,
    clients: usize,
    endpoints: usize,
    ok: u64,
    errors: u64,
    secs: f64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    #[serde(default)]
    first_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FailoverResult {
    target: Kind,
    clients: usize,
    killed: String,
    acked: u64,
    acked_after_kill: u64,
    failed: u64,
    /// Kill -> first acknowledgement of a write sent after the kill.
    recovery_ms: Option<f64>,
    /// Longest time without any acknowledgement around the kill.
    max_gap_ms: f64,
    verified: u64,
    lost: u64,
    unverified: u64,
    #[serde(default)]
    first_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Record {
    Load(LoadResult),
    Failover(FailoverResult),
}

fn value_of(size: usize, seed: &str) -> Vec<u8> {
    let mut v = seed.as_bytes().to_vec();
    v.truncate(size);
    let mut i = 0u8;
    while v.len() < size {
        v.push(b'a' + i % 26);
        i = i.wrapping_add(1);
    }
    v
}

async fn prefill(kv: &Arc<Kv>, ep: &str, keys: u64, value: &[u8]) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (kv, next, ep, value) = (kv.clone(), next.clone(), ep.to_string(), value.to_vec());
        tasks.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= keys {
                    return Ok(());
                }
                let key = format!("bench/{k:08}");
                let mut tries = 0;
                while let Err(e) = kv.put(&ep, &key, &value).await {
                    tries += 1;
                    if tries > 5 {
                        return Err(anyhow::anyhow!("prefill of {key} failed: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

struct ClientStats {
    lat_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    last_done: Instant,
}

async fn run_load(a: LoadArgs) -> Result<LoadResult> {
    if a.clients == 0 || a.keys == 0 {
        bail!("--clients and --keys must be at least 1");
    }
    let kv = Arc::new(Kv::connect(&a.target, Duration::from_secs(30)).await?);
    let endpoints = match a.to {
        Spread::Leader => vec![kv.leader(&a.target.endpoints).await?],
        Spread::All => a.target.endpoints.clone(),
    };
    let value = value_of(a.value_size, "");
    if a.prefill {
        prefill(&kv, &endpoints[0], a.keys, &value).await?;
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    let measured = Arc::new(AtomicU64::new(0));
    let value: Arc<[u8]> = value.into();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.clients {
        let (kv, measured, value) = (kv.clone(), measured.clone(), value.clone());
        let ep = endpoints[i % endpoints.len()].clone();
        let (op, keys, max_ops) = (a.op, a.keys, a.max_ops);
        tasks.spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) << 17));
            let mut stats =
                ClientStats { lat_us: Vec::with_capacity(4096), errors: 0, first_error: None, last_done: start };
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let counted = t0 >= measure_from;
                if counted && measured.fetch_add(1, Ordering::Relaxed) >= max_ops {
                    break;
                }
                let key = format!("bench/{:08}", rng.next() % keys);
                let r = match op {
                    Op::Put => kv.put(&ep, &key, &value).await,
                    Op::Get => match kv.get(&ep, &key).await {
                        Ok(Some(_)) => Ok(()),
                        Ok(None) => Err(format!("key {key} not found")),
                        Err(e) => Err(e),
                    },
                };
                let done = Instant::now();
                if counted {
                    stats.last_done = done;
                    match &r {
                        Ok(()) => {
                            stats.lat_us.push(done.duration_since(t0).as_micros().min(u128::from(u32::MAX)) as u32)
                        }
                        Err(e) => {
                            stats.errors += 1;
                            stats.first_error.get_or_insert_with(|| e.clone());
                        }
                    }
                }
                if r.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            stats
        });
    }
    let mut lat = Vec::new();
    let (mut errors, mut first_error, mut last_done) = (0, None, measure_from);
    while let Some(r) = tasks.join_next().await {
        let s = r?;
        lat.extend_from_slice(&s.lat_us);
        errors += s.errors;
        if first_error.is_none() {
            first_error = s.first_error;
        }
        last_done = last_done.max(s.last_done);
    }
    lat.sort_unstable();
    let secs = last_done.duration_since(measure_from).as_secs_f64().max(1e-3);
    let ok = lat.len() as u64;
    Ok(LoadResult {
        target: a.target.target,
        op: a.op,
        clients: a.clients,
        endpoints: endpoints.len(),
        ok,
        errors,
        secs,
        ops_per_sec: ok as f64 / secs,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        max_ms: lat.last().map(|&m| f64::from(m) / 1000.0).unwrap_or(0.0),
        first_error,
    })
}

struct Ack {
    key: String,
    sent_us: u64,
    done_us: u64,
}

/// Reads `NANOS [NAME]` (kill time since the epoch, name of the killed member).
async fn read_kill_time(path: &PathBuf, wait: Duration) -> Result<(u64, String)> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some((ns, name)) = text.trim().split_once(' ').or(Some((text.trim(), "")))
            && let Ok(ns) = ns.parse::<u64>()
        {
            return Ok((ns / 1000, name.trim().to_string()));
        }
        if Instant::now() >= deadline {
            bail!("no kill time in {} (was the leader killed?)", path.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leader URL the failover writers share. After a failed write one writer at a time asks
/// the members who leads now (as a leader-aware client does), so the measured recovery is the
/// cluster's, not a client timeout's.
struct LeaderCell {
    url: std::sync::Mutex<String>,
    refresh: tokio::sync::Mutex<()>,
}

impl LeaderCell {
    fn get(&self) -> String {
        self.url.lock().expect("leader cell").clone()
    }

    async fn refresh(&self, kv: &Kv, eps: &[String], failed: &str) {
        let _one_at_a_time = self.refresh.lock().await;
        if self.get() != failed {
            return; // another writer already found a new leader
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(url) = kv.leader(eps).await {
            *self.url.lock().expect("leader cell") = url;
        }
    }
}

async fn run_failover(a: FailoverArgs) -> Result<FailoverResult> {
    let eps = a.target.endpoints.clone();
    let kv = Arc::new(Kv::connect(&a.target, Duration::from_secs_f64(a.request_timeout)).await?);
    let leader = kv.leader(&eps).await?;
    let run_id = format!("{:08x}", Rng(now_us() | 1).next() as u32);
    let end = Instant::now() + Duration::from_secs_f64(a.duration);
    let cell = Arc::new(LeaderCell { url: std::sync::Mutex::new(leader), refresh: tokio::sync::Mutex::new(()) });
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..a.clients {
        let (kv, eps, run_id, cell) = (kv.clone(), eps.clone(), run_id.clone(), cell.clone());
        let value_size = a.value_size;
        tasks.spawn(async move {
            let mut acks = Vec::new();
            let (mut failed, mut first_error) = (0u64, None::<String>);
            let mut seq = 0u64;
            while Instant::now() < end {
                let key = format!("failover/{run_id}/{c:03}/{seq:07}");
                seq += 1;
                let value = value_of(value_size, &key);
                let ep = cell.get();
                let sent_us = now_us();
                match kv.put(&ep, &key, &value).await {
                    Ok(()) => acks.push(Ack { key, sent_us, done_us: now_us() }),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                        cell.refresh(&kv, &eps, &ep).await;
                    }
                }
            }
            (acks, failed, first_error)
        });
    }
    let mut acks = Vec::new();
    let (mut failed, mut first_error) = (0, None);
    while let Some(r) = tasks.join_next().await {
        let (a, f, e) = r?;
        acks.extend(a);
        failed += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    let (kill_us, killed) = read_kill_time(&a.kill_time_file, Duration::from_secs(5)).await?;
    let recovery_ms =
        acks.iter().filter(|x| x.sent_us >= kill_us).map(|x| x.done_us - kill_us).min().map(|us| us as f64 / 1000.0);
    let acked_after_kill = acks.iter().filter(|x| x.sent_us >= kill_us).count() as u64;
    let mut done: Vec<u64> = acks.iter().map(|x| x.done_us).collect();
    done.push(kill_us);
    done.sort_unstable();
    let max_gap_ms = done.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1000.0;

    // Read every acknowledged write back, linearizably, from whichever member answers.
    let verify_kv = Arc::new(Kv::connect(&a.target, Duration::from_secs(5)).await?);
    let deadline = Instant::now() + Duration::from_secs_f64(a.verify_timeout);
    let keys: Arc<Vec<String>> = Arc::new(acks.into_iter().map(|x| x.key).collect());
    let next = Arc::new(AtomicU64::new(0));
    let value_size = a.value_size;
    let mut readers = tokio::task::JoinSet::new();
    for r in 0..32usize {
        let (kv, keys, next, eps) = (verify_kv.clone(), keys.clone(), next.clone(), eps.clone());
        readers.spawn(async move {
            let mut idx = r % eps.len();
            let (mut verified, mut lost, mut unverified) = (0u64, 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(key) = keys.get(i) else { break };
                let expected = value_of(value_size, key);
                loop {
                    if Instant::now() >= deadline {
                        unverified += 1;
                        break;
                    }
                    match kv.get(&eps[idx], key).await {
                        Ok(Some(v)) if v == expected => {
                            verified += 1;
                            break;
                        }
                        Ok(_) => {
                            lost += 1;
                            break;
                        }
                        Err(_) => {
                            idx = (idx + 1) % eps.len();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            (verified, lost, unverified)
        });
    }
    let (mut verified, mut lost, mut unverified) = (0, 0, 0);
    while let Some(r) = readers.join_next().await {
        let (v, l, u) = r?;
        verified += v;
        lost += l;
        unverified += u;
    }
    Ok(FailoverResult {
        target: a.target.target,
        clients: a.clients,
        killed,
        acked: keys.len() as u64,
        acked_after_kill,
        failed,
        recovery_ms,
        max_gap_ms,
        verified,
        lost,
        unverified,
        first_error,
    })
}

async fn print_leader(t: TargetArgs, dev_json: Option<PathBuf>) -> Result<()> {
    let kv = Kv::connect(&t, Duration::from_secs(5)).await?;
    let leader = kv.leader(&t.endpoints).await?;
    match dev_json {
        None => println!("{leader}"),
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let dev: serde_json::Value = serde_json::from_str(text.trim()).context("parsing the dev JSON")?;
            let node = dev["nodes"]
                .as_array()
                .and_then(|nodes| {
                    nodes.iter().find(|n| n["api"].as_str().map(|a| a.trim_end_matches('/')) == Some(leader.as_str()))
                })
                .with_context(|| format!("no node with api {leader} in {}", path.display()))?;
            println!("{} {}", node["pid"], node["name"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

// ---- report ----

fn ratio(medos: f64, etcd: f64) -> String {
    if etcd == 0.0 { if medos == 0.0 { "-".into() } else { "inf".into() } } else { format!("{:.2}x", medos / etcd) }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Several rounds of the same run: the median of each figure, errors summed.
fn combine(runs: &[&LoadResult]) -> Option<LoadResult> {
    let first = runs.first()?;
    let pick = |f: fn(&LoadResult) -> f64| median(runs.iter().map(|r| f(r)).collect());
    Some(LoadResult {
        target: first.target,
        op: first.op,
        clients: first.clients,
        endpoints: first.endpoints,
        ok: runs.iter().map(|r| r.ok).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
        secs: runs.iter().map(|r| r.secs).sum(),
        ops_per_sec: pick(|r| r.ops_per_sec),
        p50_ms: pick(|r| r.p50_ms),
        p99_ms: pick(|r| r.p99_ms),
        max_ms: pick(|r| r.max_ms),
        first_error: runs.iter().find_map(|r| r.first_error.clone()),
    })
}

fn report(path: &PathBuf) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut loads = Vec::new();
    let mut failovers = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Record>(line).with_context(|| format!("bad result line: {line}"))? {
            Record::Load(l) => loads.push(l),
            Record::Failover(f) => failovers.push(f),
        }
    }
    println!("| test | figure | medos | etcd 3.4 | medos/etcd | goal |");
    println!("| --- | --- | ---: | ---: | ---: | --- |");
    let mut notes = Vec::new();
    for op in [Op::Put, Op::Get] {
        let clients: BTreeSet<usize> = loads.iter().filter(|l| l.op == op).map(|l| l.clients).collect();
        for c in clients {
            let runs = |k: Kind| -> Vec<&LoadResult> {
                loads.iter().filter(|l| l.op == op && l.clients == c && l.target == k).collect()
            };
            let (mr, er) = (runs(Kind::Medos), runs(Kind::Etcd));
            let (Some(m), Some(e)) = (combine(&mr), combine(&er)) else { continue };
            if mr.len() > 1 || er.len() > 1 {
                let list =
                    |rs: &[&LoadResult]| rs.iter().map(|r| fmt_num(r.ops_per_sec)).collect::<Vec<_>>().join(", ");
                notes.push(format!(
                    "{op:?} with {c} client(s), ops/s per round: medos {}; etcd {}",
                    list(&mr),
                    list(&er)
                ));
            }
            let who = if c == 1 { "1 client".to_string() } else { format!("{c} clients") };
            let (test, unit) = match op {
                Op::Put => (format!("B1 durable writes, {who}"), "writes/s"),
                Op::Get => (format!("B2 linearizable reads, {who}"), "reads/s"),
            };
            let tput_goal = match op {
                Op::Put if c >= 64 => format!(">= 1.0x: {}", verdict(m.ops_per_sec >= e.ops_per_sec)),
                Op::Get => format!(">= 1.0x: {}", verdict(m.ops_per_sec >= e.ops_per_sec)),
                _ => String::new(),
            };
            let p99_goal = if op == Op::Put && c >= 64 {
                format!("<= etcd: {}", verdict(m.p99_ms <= e.p99_ms))
            } else {
                String::new()
            };
            println!(
                "| {test} | {unit} | {} | {} | {} | {tput_goal} |",
                fmt_num(m.ops_per_sec),
                fmt_num(e.ops_per_sec),
                ratio(m.ops_per_sec, e.ops_per_sec)
            );
            println!(
                "| {test} | p50 latency (ms) | {} | {} | {} | |",
                fmt_num(m.p50_ms),
                fmt_num(e.p50_ms),
                ratio(m.p50_ms, e.p50_ms)
            );
            println!(
                "| {test} | p99 latency (ms) | {} | {} | {} | {p99_goal} |",
                fmt_num(m.p99_ms),
                fmt_num(e.p99_ms),
                ratio(m.p99_ms, e.p99_ms)
            );
            for l in [&m, &e] {
                if l.errors > 0 {
                    notes.push(format!(
                        "{} {:?} with {} client(s): {} errors (first: {})",
                        l.target.name(),
                        l.op,
                        l.clients,
                        l.errors,
                        l.first_error.as_deref().unwrap_or("?")
                    ));
                }
            }
        }
    }
    let find = |k: Kind| failovers.iter().find(|f| f.target == k);
    if let (Some(m), Some(e)) = (find(Kind::Medos), find(Kind::Etcd)) {
        let test = format!("B7 failover, kill -9 leader, {} writers", m.clients);
        let rec = |f: &FailoverResult| f.recovery_ms.map(fmt_num).unwrap_or_else(|| "never".into());
        let rec_ratio = match (m.recovery_ms, e.recovery_ms) {
            (Some(a), Some(b)) => ratio(a, b),
            _ => "-".into(),
        };
        let rec_goal = format!("<= 3000 ms: {}", verdict(m.recovery_ms.is_some_and(|r| r <= 3000.0)));
        println!("| {test} | kill -> first write acked (ms) | {} | {} | {rec_ratio} | {rec_goal} |", rec(m), rec(e));
        println!(
            "| {test} | longest gap between acks (ms) | {} | {} | {} | |",
            fmt_num(m.max_gap_ms),
            fmt_num(e.max_gap_ms),
            ratio(m.max_gap_ms, e.max_gap_ms)
        );
        println!(
            "| {test} | acknowledged writes lost | {} | {} | {} | 0: {} |",
            m.lost,
            e.lost,
            ratio(m.lost as f64, e.lost as f64),
            verdict(m.lost == 0 && m.unverified == 0)
        );
        println!(
            "| {test} | writes acked (all verified) | {} | {} | {} | |",
            m.acked,
            e.acked,
            ratio(m.acked as f64, e.acked as f64)
        );
        for f in [m, e] {
            notes.push(format!(
                "{} failover: killed {}, {} writes acked ({} sent after the kill), {} failed or timed out (first: {}), {} verified, {} lost, {} could not be read back",
                f.target.name(),
                if f.killed.is_empty() { "the leader" } else { &f.killed },
                f.acked,
                f.acked_after_kill,
                f.failed,
                f.first_error.as_deref().unwrap_or("none"),
                f.verified,
                f.lost,
                f.unverified
            ));
        }
    }
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("- {}", n.replace('|', "\\|").replace('\n', " "));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Load(a) => {
            let r = run_load(a).await?;
            eprintln!(
                "{} {:?} x{}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                r.target.name(),
                r.op,
                r.clients,
                r.ops_per_sec,
                r.p50_ms,
                r.p99_ms,
                r.errors
            );
            println!("{}", serde_json::to_string(&Record::Load(r))?);
        }
        Cmd::Failover(a) => {
            let r = run_failover(a).await?;
            eprintln!(
                "{} failover: recovery {:?} ms, {} acked, {} lost, {} unverified",
                r.target.name(),
                r.recovery_ms,
                r.acked,
                r.lost,
                r.unverified
            );
            println!("{}", serde_json::to_string(&Record::Failover(r))?);
        }
        Cmd::Leader { target, dev_json } => print_leader(target, dev_json).await?,
        Cmd::Report { results } => report(&results)?,
    }
    Ok(())
}
