//! [`LinuxRuntime`]: the real [`ContainerRuntime`], and the state it shares between verbs.
//!
//! The runtime object holds only a cache of what is on disk (one `Handle` per container, with
//! a `watch` channel that carries the exit status once known) plus the background watchers.
//! Dropping it (or the agent dying) stops the watchers and nothing else: the containers run on,
//! and a new runtime over the same state directory [`recover`](ContainerRuntime::recover)s them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::cgroup::{CgroupConfig, CgroupVersion, Cgroups};
use super::error::{Result, RuntimeError};
use super::init::InitProgram;
use super::plan::LaunchPlan;
use super::state::{ContainerDir, ShimState, containers_dir};
use super::status::{Container, ContainerState, ExitStatus};
use super::{BoxFuture, ContainerId, ContainerRuntime, ContainerSpec, ExecProcess, ExecSpec, Signal};

/// How the runtime is set up.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The runtime state directory (checkpoints); keep it across agent restarts.
    pub state_dir: PathBuf,
    pub cgroups: CgroupConfig,
    /// How to start the runtime's helper processes (the medos binary itself).
    pub init: InitProgram,
    /// Make the agent a child subreaper so that exited shims (orphans) are reaped by it. Needed
    /// where PID 1 does not reap orphans (some container and VM inits); off under systemd.
    pub subreaper: bool,
    /// How long a launch may take from spawning the shim to the command running.
    pub launch_timeout: Duration,
}

impl RuntimeConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            state_dir: state_dir.into(),
            cgroups: CgroupConfig::default(),
            init: InitProgram::current_binary(),
            subreaper: false,
            launch_timeout: Duration::from_secs(60),
        }
    }
}

/// The Linux container runtime.
pub struct LinuxRuntime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: RuntimeConfig,
    pub cgroups: Cgroups,
    pub containers: Mutex<HashMap<ContainerId, Arc<Handle>>>,
    pub watchers: Mutex<Vec<AbortHandle>>,
    pub exec_counter: AtomicU64,
}

/// One known container.
pub(crate) struct Handle {
    pub id: ContainerId,
    pub dir: ContainerDir,
    pub plan: LaunchPlan,
    pub procs: Option<ShimState>,
    pub exit: watch::Sender<Option<ExitStatus>>,
}

impl Handle {
    pub fn new(dir: ContainerDir, plan: LaunchPlan, procs: Option<ShimState>, exit: Option<ExitStatus>) -> Arc<Self> {
        Arc::new(Handle { id: plan.id.clone(), dir, plan, procs, exit: watch::Sender::new(exit) })
    }

    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit.borrow().clone()
    }

    pub fn snapshot(&self) -> Container {
        let exit = self.exit_status();
        let running = exit.is_none();
        Container {
            id: self.id.clone(),
            task_id: self.plan.task_id.clone(),
            init_pid: self.procs.and_then(|p| p.init).filter(|_| running).map(|i| i.pid),
            task_pid: self.procs.and_then(|p| p.task).filter(|_| running).map(|t| t.pid),
            state: match exit {
                Some(status) => ContainerState::Exited(status),
                None => ContainerState::Running,
            },
        }
    }

    /// Resolves with the exit status once it is known.
    pub async fn wait(&self) -> ExitStatus {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(status) = rx.borrow_and_update().clone() {
                return status;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen; avoid a busy loop anyway.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl LinuxRuntime {
    /// Detects cgroups and prepares the state directory. Call [`recover`](ContainerRuntime::recover)
    /// next to pick up containers of an earlier agent.
    pub fn new(mut config: RuntimeConfig) -> Result<Self> {
        let cgroups = Cgroups::detect(&config.cgroups)?;
        let dir = containers_dir(&config.state_dir);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create the state directory", &dir, e))?;
        // Helper processes run in `/`; every path handed to them must be absolute.
        config.state_dir = config
            .state_dir
            .canonicalize()
            .map_err(|e| RuntimeError::io("resolve the state directory", &config.state_dir, e))?;
        if config.subreaper {
            nix::sys::prctl::set_child_subreaper(true).map_err(|e| RuntimeError::sys("become a child subreaper", e))?;
        }
        tracing::debug!(state_dir = %config.state_dir.display(), cgroups = ?cgroups.version(), "container runtime ready");
        Ok(LinuxRuntime {
            inner: Arc::new(Inner {
                config,
                cgroups,
                containers: Mutex::new(HashMap::new()),
                watchers: Mutex::new(Vec::new()),
                exec_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The cgroup version detected at start-up.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.inner.cgroups.version()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}

impl Inner {
    pub fn handle(&self, id: &ContainerId) -> Result<Arc<Handle>> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownContainer { id: id.clone() })
    }
}

impl Drop for LinuxRuntime {
    fn drop(&mut self) {
        for watcher in self.inner.watchers.lock().unwrap().drain(..) {
            watcher.abort();
        }
    }
}

impl ContainerRuntime for LinuxRuntime {
    fn launch(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Container>> {
        Box::pin(super::launch::launch(&self.inner, spec))
    }

    fn recover(&self) -> BoxFuture<'_, Result<Vec<Container>>> {
        Box::pin(super::recover::recover(&self.inner))
    }

    fn list(&self) -> Vec<Container> {
        let mut list: Vec<Container> = self.inner.containers.lock().unwrap().values().map(|h| h.snapshot()).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn state(&self, id: &ContainerId) -> Result<ContainerState> {
        Ok(self.inner.handle(id)?.snapshot().state)
    }

    fn wait<'a>(&'a self, id: &'a ContainerId) -> BoxFuture<'a, Result<ExitStatus>> {
        Box::pin(async move { Ok(self.inner.handle(id)?.wait().await) })
    }

    fn signal(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        super::kill::signal(&self.inner, id, signal)
    }

    fn kill<'a>(&'a self, id: &'a ContainerId, grace: Duration) -> BoxFuture<'a, Result<ExitStatus>> {
        Box::pin(super::kill::kill(&self.inner, id, grace))
    }

    fn destroy<'a>(&'a self, id: &'a ContainerId) -> BoxFuture<'a, Result<()>> {
        Box::pin(super::destroy::destroy(&self.inner, id))
    }

    fn exec<'a>(&'a self, id: &'a ContainerId, spec: ExecSpec) -> BoxFuture<'a, Result<ExecProcess>> {
        Box::pin(super::exec::exec(&self.inner, id, spec))
    }
}
