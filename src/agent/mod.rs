//! The agent: registers this host's resources with the leader and runs the tasks it is sent.
//!
//! `session` talks to the masters, `executor` turns launches and kills into container
//! operations and status updates, `outbox` keeps updates until the masters acknowledge them,
//! `runtime` is the container runtime (namespaces, cgroups, images).

pub mod config;
pub mod containers;
pub mod dns;
pub mod executor;
pub mod fake;
pub mod fetch;
pub mod health;
pub mod http;
pub mod join;
pub mod outbox;
pub mod resources;
pub mod runtime;
pub mod session;
pub mod simulate;
pub mod vips;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::AgentRegistration;
pub use config::AgentConfig;
pub use executor::{Containers, Exit};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] config::AgentConfigError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("joining the cluster with the join token failed: {0}")]
    Join(String),
    #[error("work dir {path}: {message}")]
    WorkDir { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

pub struct RunningAgent {
    pub session: Arc<session::Session>,
    pub executor: Arc<executor::Executor>,
    /// The agent API's advertised URL (empty without `listen`).
    pub api: String,
    api_server: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    health: tokio::task::AbortHandle,
}

impl RunningAgent {
    /// Stops talking to the masters. Tasks keep running (they are not the agent's children
    /// in the real runtime); a restarted agent re-attaches to them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    /// Simulates `kill -9` of the agent (in-process tests).
    pub fn crash(self) {
        self.task.abort();
        if let Some(api) = &self.api_server {
            api.abort();
        }
        self.health.abort();
    }
}

/// How an agent is started besides its config (defaults: what `medos agent` does).
#[derive(Clone, Default)]
pub struct StartOptions {
    /// A client (with this agent's certificate) to use instead of building one; many
    /// simulated agents share one, with its TLS config and connection pool.
    pub http: Option<reqwest::Client>,
    /// Do not run the health checker (simulated agents have no processes to check).
    pub no_health_checks: bool,
    /// Do not serve VIPs (simulated agents: one process stands for many hosts).
    pub no_vips: bool,
    pub tuning: session::Tuning,
}

/// Starts an agent with the given container runtime.
pub async fn start(config: AgentConfig, containers: Arc<dyn Containers>) -> Result<RunningAgent, AgentError> {
    start_with(config, containers, StartOptions::default()).await
}

/// Builds the mutual-TLS client agents talk to the masters with.
pub fn master_client(config: &AgentConfig) -> Result<reqwest::Client, AgentError> {
    let client_tls = config.tls.mutual_client_config()?;
    reqwest::Client::builder()
        .use_preconfigured_tls(client_tls)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| AgentError::Other(format!("building the HTTP client: {e}")))
}

/// Starts an agent with the given container runtime and options.
pub async fn start_with(
    config: AgentConfig,
    containers: Arc<dyn Containers>,
    options: StartOptions,
) -> Result<RunningAgent, AgentError> {
    crate::pki::install_crypto_provider();
    config.validate()?;
    let work_err = |message: String| AgentError::WorkDir { path: config.work_dir.display().to_string(), message };
    std::fs::create_dir_all(&config.work_dir).map_err(|e| work_err(e.to_string()))?;
    let total = resources::detect(&config).map_err(AgentError::Other)?;
    join::ensure_credentials(&config).await?;
    let http = match options.http {
        Some(http) => http,
        None => master_client(&config)?,
    };
    let outbox = Arc::new(outbox::Outbox::open(&config.work_dir.join("outbox")).map_err(work_err)?);
    let executor =
        Arc::new(executor::Executor::open(&config.work_dir, containers.clone(), outbox.clone()).map_err(work_err)?);
    let api_server = http::ApiServer::bind(&config).await?;
    let api = api_server.as_ref().map(|s| s.url.clone()).unwrap_or_else(|| config.api.clone());
    let registration = AgentRegistration {
        agent_id: String::new(),
        hostname: config.hostname.clone(),
        address: config.address.clone(),
        api: api.clone(),
        total,
        attributes: config.attributes.clone(),
        // A public join token makes a public agent (the token is kept in the config).
        public: config.public
            || config.join_token.as_deref().and_then(|t| crate::pki::join::JoinToken::parse(t).ok()).map(|t| t.kind)
                == Some(crate::pki::join::JoinKind::Public),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut session = session::Session::new(
        config.masters.clone(),
        http,
        registration,
        executor.clone(),
        outbox,
        config.work_dir.join("agent-id"),
    )
    .with_tuning(options.tuning)
    .with_resolv_conf(config.work_dir.join(dns::RESOLV_CONF));
    if !options.no_vips {
        session = session.with_vips(Arc::new(vips::VipProxy::default()));
    }
    let session = Arc::new(session);
    let (shutdown, rx) = watch::channel(false);
    let api_server = api_server.map(|server| {
        let sandboxes = config.work_dir.join("sandboxes");
        server.spawn(http::AgentApi { sandboxes, executor: executor.clone(), containers }, rx.clone())
    });
    let health = if options.no_health_checks {
        tokio::spawn(std::future::pending())
    } else {
        tokio::spawn(health::run(executor.clone()))
    };
    let health_abort = health.abort_handle();
    let session_task = session.clone();
    let task = tokio::spawn(async move {
        session_task.run(rx).await;
        health.abort();
    });
    Ok(RunningAgent { session, executor, api, api_server, shutdown, task, health: health_abort })
}
