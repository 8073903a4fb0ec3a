//! `medos agent`: run an agent on this host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::agent::AgentConfig;
use crate::agent::config::ResourceOverrides;
use crate::agent::containers::{ImageSource, RuntimeContainers};
use crate::agent::runtime::{LinuxRuntime, RuntimeConfig};
use crate::image::LayerCache;
use crate::pki::TlsFiles;

#[derive(Debug, Args, Default)]
pub struct AgentArgs {
    /// TOML config file; flags override its settings.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    /// A master URL (repeat); the agent finds the leader among them.
    #[arg(long = "master", value_name = "URL")]
    pub masters: Vec<String>,
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// IP address tasks on this agent are reached at.
    #[arg(long)]
    pub address: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// Host port range offered to tasks (repeat), e.g. 31000-32000.
    #[arg(long = "ports", value_name = "RANGE")]
    pub ports: Vec<String>,
    /// Run as a public agent (Mesos role slave_public).
    #[arg(long)]
    pub public: bool,
    /// KEY=VALUE agent attribute (repeat), for placement constraints.
    #[arg(long = "attribute", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
    #[arg(long)]
    pub cpus: Option<f64>,
    /// MiB.
    #[arg(long)]
    pub mem: Option<f64>,
    /// MiB.
    #[arg(long)]
    pub disk: Option<f64>,
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// A join token (`medos node join-token create`): obtains this agent's certificate from a
    /// master when the TLS files do not exist yet (then --tls-* may be left out; the files go
    /// to WORK_DIR/tls).
    #[arg(long, env = "MEDOS_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Run N simulated agents in this process instead of one real agent, for scale tests and
    /// benchmarks: each registers, streams events, heartbeats and reports status like a real
    /// agent, but its containers are fake (tasks run at once and until killed). They share
    /// the certificate; agent i is named NAME-i (NAME defaults to `sim`), works in
    /// WORK_DIR/NAME-i and has the attributes rack=r<i mod racks> and zone=z<i mod 3>.
    /// Resources default to 8 cpus, 32 GiB of memory and 100 GiB of disk each.
    #[arg(long, value_name = "N")]
    pub simulate: Option<usize>,
    /// With --simulate: how many distinct racks.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "simulate")]
    pub simulate_racks: usize,
    /// With --simulate: agents started per second.
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "simulate")]
    pub simulate_rate: usize,
    /// With --simulate: keep FILE up to date (every 100 ms) with the simulation's counters as
    /// JSON: agents registered, tasks launched, TASK_RUNNING updates acknowledged, and when the
    /// last launch and acknowledgement happened (ms since the epoch). For benchmarks.
    #[arg(long, value_name = "FILE", requires = "simulate")]
    pub simulate_stats: Option<PathBuf>,
}

fn system_hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

impl AgentArgs {
    pub fn config(self) -> Result<AgentConfig> {
        let mut config = match &self.config {
            Some(path) => AgentConfig::load(path)?,
            None => {
                let tls_flags = self.tls_ca.is_some() && self.tls_cert.is_some() && self.tls_key.is_some();
                if !tls_flags && self.join_token.is_none() {
                    bail!(
                        "give --config FILE, or --master and --work-dir with either --join-token TOKEN or \
                         --tls-ca, --tls-cert and --tls-key"
                    );
                }
                let hostname = system_hostname();
                AgentConfig {
                    name: hostname.clone(),
                    hostname,
                    address: "127.0.0.1".into(),
                    masters: Vec::new(),
                    work_dir: PathBuf::from("/var/lib/medos/agent"),
                    // Replaced below by the --tls-* flags, or by the work dir's defaults.
                    tls: crate::agent::config::default_tls(Path::new("/var/lib/medos/agent")),
                    ports: vec!["31000-32000".into()],
                    resources: ResourceOverrides::default(),
                    attributes: BTreeMap::new(),
                    public: false,
                    api: String::new(),
                    listen: None,
                    join_token: None,
                }
            }
        };
        if let Some(v) = self.name {
            config.name = v;
        }
        if !self.masters.is_empty() {
            config.masters = self.masters;
        }
        let file_has_tls = self.config.is_some();
        if let Some(v) = self.work_dir {
            config.work_dir = v;
        }
        if !file_has_tls {
            config.tls = crate::agent::config::default_tls(&config.work_dir);
        }
        if self.join_token.is_some() {
            config.join_token = self.join_token;
        }
        if let Some(v) = self.address {
            config.address = v;
        }
        if let Some(v) = self.hostname {
            config.hostname = v;
        }
        if !self.ports.is_empty() {
            config.ports = self.ports;
        }
        config.public |= self.public;
        for pair in self.attributes {
            let Some((k, v)) = pair.split_once('=') else { bail!("--attribute {pair:?}: expected KEY=VALUE") };
            config.attributes.insert(k.into(), v.into());
        }
        config.resources.cpus = self.cpus.or(config.resources.cpus);
        config.resources.mem = self.mem.or(config.resources.mem);
        config.resources.disk = self.disk.or(config.resources.disk);
        if let (Some(ca), Some(cert), Some(key)) = (self.tls_ca, self.tls_cert, self.tls_key) {
            config.tls = TlsFiles { ca, cert, key };
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs an agent until SIGINT/SIGTERM. Its tasks keep running after it stops.
pub async fn serve(args: AgentArgs) -> Result<()> {
    if let Some(count) = args.simulate {
        return simulate(args, count).await;
    }
    let config = args.config()?;
    // A new agent with a join token obtains its certificate before anything uses it.
    crate::agent::join::ensure_credentials(&config).await?;
    let runtime = LinuxRuntime::new(RuntimeConfig::new(config.work_dir.join("runtime")))
        .context("starting the container runtime (the agent must run as root)")?;
    let images = ImageSource {
        http: reqwest::Client::builder()
            .use_preconfigured_tls(config.tls.mutual_client_config()?)
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .context("building the image download client")?,
        masters: config.masters.clone(),
        layers: LayerCache::new(config.work_dir.join("layers"))?,
        work_dir: config.work_dir.clone(),
    };
    let containers = RuntimeContainers::new(Arc::new(runtime), config.hostname.clone(), Some(images))
        .await
        .map_err(|e| anyhow::anyhow!("recovering containers: {e}"))?
        .with_resolv_conf(config.work_dir.join(crate::agent::dns::RESOLV_CONF));
    let agent = crate::agent::start(config.clone(), Arc::new(containers)).await?;
    eprintln!("medos agent {} working for {}", config.name, config.masters.join(", "));
    // Under systemd (Type=notify): ready once registered with the leader.
    let notifier = Arc::new(crate::systemd::Notifier::from_env());
    let watchdog = crate::systemd::spawn_watchdog(notifier.clone());
    let status = notifier.enabled().then(|| {
        let registrations = agent.session.registrations();
        tokio::spawn(report_registration(registrations, notifier.clone(), config.masters.len()))
    });
    crate::process::wait_for_shutdown_signal().await;
    tracing::info!("shutting down; tasks keep running");
    notifier.stopping();
    for task in [watchdog, status].into_iter().flatten() {
        task.abort();
    }
    agent.shutdown().await;
    Ok(())
}

/// `READY=1` at the first registration; afterwards the status line follows it.
async fn report_registration(
    mut registrations: tokio::sync::watch::Receiver<Option<crate::agent::session::Registered>>,
    notifier: Arc<crate::systemd::Notifier>,
    masters: usize,
) {
    notifier.status(&format!("registering with the leader ({masters} masters configured)"));
    let mut ready = false;
    loop {
        let current = registrations.borrow_and_update().clone();
        match current {
            Some(r) => {
                let line = format!("registered as {} with the leader {}", r.agent_id, r.leader);
                if ready {
                    notifier.status(&line);
                } else {
                    notifier.ready(&line);
                    ready = true;
                }
            }
            None if ready => notifier.status("lost the leader; registering again (tasks keep running)"),
            None => {}
        }
        if registrations.changed().await.is_err() {
            return;
        }
    }
}

/// `medos agent --simulate N`: N simulated agents until SIGINT/SIGTERM.
async fn simulate(mut args: AgentArgs, count: usize) -> Result<()> {
    use crate::agent::simulate::{SimulateOptions, start};
    if count == 0 {
        bail!("--simulate needs at least one agent");
    }
    args.name = args.name.or_else(|| Some("sim".into()));
    args.cpus = args.cpus.or(Some(8.0));
    args.mem = args.mem.or(Some(32.0 * 1024.0));
    args.disk = args.disk.or(Some(100.0 * 1024.0));
    let racks = args.simulate_racks;
    let rate = args.simulate_rate;
    let stats_file = args.simulate_stats.clone();
    let base = args.config()?;
    raise_open_files_limit();
    let options = SimulateOptions { count, racks, start_rate: rate, ..Default::default() };
    let began = std::time::Instant::now();
    let starting = tokio::spawn(start(base.clone(), options));
    let mut last = String::new();
    let mut report = |sim: Option<&crate::agent::simulate::Simulation>, started: bool| {
        let line = match sim {
            Some(sim) => format!(
                "{} of {count} simulated agents registered, {} tasks launched",
                sim.registered(),
                sim.launched()
            ),
            None if started => format!("{count} simulated agents started"),
            None => format!("starting {count} simulated agents ({rate} per second)"),
        };
        if line != last {
            eprintln!("[{:>6.1} s] {line}", began.elapsed().as_secs_f64());
            last = line;
        }
    };
    report(None, false);
    let sim = tokio::select! {
        sim = starting => sim.context("the simulator panicked")??,
        _ = crate::process::wait_for_shutdown_signal() => return Ok(()),
    };
    report(None, true);
    eprintln!("medos agent: {count} simulated agents working for {}", base.masters.join(", "));
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut last_report = std::time::Instant::now();
    let stop = crate::process::wait_for_shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(path) = &stats_file
                    && let Err(e) = sim.write_stats(path)
                {
                    tracing::warn!(error = %e, path = %path.display(), "cannot write the simulation's statistics");
                }
                if last_report.elapsed() >= std::time::Duration::from_secs(2) {
                    report(Some(&sim), true);
                    last_report = std::time::Instant::now();
                }
            }
            _ = &mut stop => break,
        }
    }
    tracing::info!("stopping the simulated agents");
    sim.shutdown().await;
    Ok(())
}

/// Each simulated agent keeps a connection open: use as many descriptors as allowed.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit");
    }
}
