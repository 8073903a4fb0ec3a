//! Runs the tasks the leader sends to this agent: checkpoints each task before starting it,
//! turns container events into Mesos status updates, and recovers after an agent restart.
//!
//! The container runtime sits behind [`Containers`]; tests use an in-memory fake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::fetch::{FetchSettings, Fetcher};
use super::outbox::Outbox;
use crate::api::agent_protocol::TaskReport;
use crate::atomic_file::write_atomic;
use crate::core::{Task, TaskState, TaskStatus};

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Killed by the kernel's OOM killer inside the task's memory limit.
    pub oom: bool,
}

/// What the executor needs from a container runtime.
pub trait Containers: Send + Sync + 'static {
    /// Starts the task's container; returns once its process runs.
    fn launch(&self, task: &Task, sandbox: &Path) -> Result<(), String>;
    /// Asks the container to stop: SIGTERM now, SIGKILL after `grace`.
    fn kill(&self, task_id: &str, grace: Duration) -> Result<(), String>;
    /// `Some` once the container has ended.
    fn exit(&self, task_id: &str) -> Result<Option<Exit>, String>;
    /// Releases what the container held (cgroups, mounts) after it ended.
    fn destroy(&self, task_id: &str);
    /// Starts a process inside the task's running container (`medos task exec`).
    fn exec<'a>(
        &'a self,
        task_id: &'a str,
        spec: super::runtime::ExecSpec,
    ) -> super::runtime::BoxFuture<'a, Result<super::runtime::ExecProcess, String>> {
        let _ = spec;
        Box::pin(async move { Err(format!("this agent's container runtime cannot exec into task {task_id}")) })
    }
    /// Runs `command` with `/bin/sh -c` inside the task's container (COMMAND health checks);
    /// returns its exit code.
    fn run_check(&self, task_id: &str, command: &str, timeout: Duration) -> Result<i32, String> {
        let _ = (command, timeout);
        Err(format!("command checks are not supported for task {task_id}"))
    }
}

/// A task as this agent checkpoints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    task: Task,
    state: TaskState,
    killing: bool,
}

pub struct Executor {
    dir: PathBuf,
    containers: Arc<dyn Containers>,
    outbox: Arc<Outbox>,
    tasks: Mutex<BTreeMap<String, Record>>,
    /// Tasks whose container is being started right now; `poll` leaves them alone.
    launching: Mutex<std::collections::BTreeSet<String>>,
    /// Tasks whose URIs are being fetched; a kill cancels the fetch.
    fetching: Mutex<BTreeMap<String, CancellationToken>>,
    fetch_settings: FetchSettings,
    /// Built on the first task with URIs.
    fetcher: OnceLock<Result<Fetcher, String>>,
}

fn uuid() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The terminal status for an exit.
pub fn exit_status(task_id: &str, exit: Exit, killed: bool) -> (TaskState, Option<String>, String) {
    if exit.oom {
        return (
            TaskState::TASK_FAILED,
            Some("REASON_CONTAINER_LIMITATION_MEMORY".into()),
            "Memory limit exceeded: the task was killed by the OOM killer".into(),
        );
    }
    if killed {
        return (TaskState::TASK_KILLED, None, format!("task {task_id} was killed"));
    }
    match (exit.code, exit.signal) {
        (Some(0), _) => (TaskState::TASK_FINISHED, None, "Command exited with status 0".into()),
        (Some(code), _) => (
            TaskState::TASK_FAILED,
            Some("REASON_COMMAND_EXECUTOR_FAILED".into()),
            format!("Command exited with status {code}"),
        ),
        (None, Some(sig)) => (
            TaskState::TASK_FAILED,
            Some("REASON_COMMAND_EXECUTOR_FAILED".into()),
            format!("Command terminated with signal {sig}"),
        ),
        (None, None) => (TaskState::TASK_FAILED, Some("REASON_EXECUTOR_TERMINATED".into()), "Command ended".into()),
    }
}

impl Executor {
    /// Opens the executor, recovering checkpointed tasks from `dir`.
    pub fn open(dir: &Path, containers: Arc<dyn Containers>, outbox: Arc<Outbox>) -> Result<Self, String> {
        let tasks_dir = dir.join("tasks");
        std::fs::create_dir_all(&tasks_dir).map_err(|e| format!("creating {}: {e}", tasks_dir.display()))?;
        let mut tasks = BTreeMap::new();
        for entry in std::fs::read_dir(&tasks_dir).map_err(|e| format!("reading {}: {e}", tasks_dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => {
                    tasks.insert(record.task.id.clone(), record);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable task checkpoint"),
            }
        }
        tracing::info!(tasks = tasks.len(), "executor recovered its checkpoints");
        Ok(Self {
            dir: dir.to_path_buf(),
            containers,
            outbox,
            tasks: Mutex::new(tasks),
            launching: Mutex::new(Default::default()),
            fetching: Mutex::new(BTreeMap::new()),
            fetch_settings: FetchSettings::default(),
            fetcher: OnceLock::new(),
        })
    }

    /// Replaces the fetcher's default limits.
    pub fn with_fetch_settings(mut self, settings: FetchSettings) -> Self {
        self.fetch_settings = settings;
        self.fetcher = OnceLock::new();
        self
    }

    pub fn sandbox(&self, task_id: &str) -> PathBuf {
        self.dir.join("sandboxes").join(task_id)
    }

    fn checkpoint(&self, record: &Record) -> Result<(), String> {
        let path = self.dir.join("tasks").join(format!("{}.json", record.task.id));
        write_atomic(&path, &serde_json::to_vec(record).expect("record serialises"))
    }

    fn send(&self, task_id: &str, state: TaskState, reason: Option<String>, message: String, exit_code: Option<i32>) {
        let status = TaskStatus {
            task_id: task_id.to_string(),
            uuid: uuid(),
            state,
            reason,
            message,
            timestamp_ms: crate::clock::now_ms(),
            exit_code,
            healthy: None,
            source: "SOURCE_EXECUTOR".into(),
        };
        if let Err(e) = self.outbox.push(&status) {
            tracing::error!(task = %task_id, error = %e, "cannot queue a status update");
        }
    }

    /// Tasks this agent knows, for reconciliation at registration.
    pub fn reports(&self) -> Vec<TaskReport> {
        let tasks = self.tasks.lock().expect("executor lock");
        tasks.values().map(|r| TaskReport { task_id: r.task.id.clone(), state: r.state }).collect()
    }

    /// Launches a task the leader sent (ignored if this agent already has it). A task with
    /// `fetch` URIs returns at once: its URIs are fetched, and its container started, on a
    /// blocking thread of its own, so the agent goes on handling events (a kill cancels it).
    pub fn launch(self: &Arc<Self>, task: Task) {
        let id = task.id.clone();
        {
            let mut tasks = self.tasks.lock().expect("executor lock");
            if tasks.contains_key(&id) {
                return;
            }
            let record = Record { task: task.clone(), state: TaskState::TASK_STARTING, killing: false };
            if let Err(e) = self.checkpoint(&record) {
                tracing::error!(task = %id, error = %e, "cannot checkpoint the task; refusing it");
                drop(tasks);
                self.send(
                    &id,
                    TaskState::TASK_FAILED,
                    Some("REASON_AGENT_ERROR".into()),
                    format!("checkpoint failed: {e}"),
                    None,
                );
                return;
            }
            tasks.insert(id.clone(), record);
            self.launching.lock().expect("executor lock").insert(id.clone());
        }
        self.send(&id, TaskState::TASK_STARTING, None, String::new(), None);
        if task.spec.fetch.is_empty() {
            self.start(&task, None);
            return;
        }
        let cancel = CancellationToken::new();
        self.fetching.lock().expect("executor lock").insert(id.clone(), cancel.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let this = self.clone();
                drop(handle.clone().spawn_blocking(move || this.start(&task, Some((handle, cancel)))));
            }
            Err(_) => self.start(&task, None),
        }
    }

    /// Creates the sandbox, fetches the task's URIs (with a runtime `handle` and the token a
    /// kill cancels), then starts the container and reports the outcome.
    fn start(&self, task: &Task, fetch: Option<(tokio::runtime::Handle, CancellationToken)>) {
        let id = &task.id;
        let _launched = scopeguard(|| {
            self.launching.lock().expect("executor lock").remove(id);
        });
        let sandbox = self.sandbox(id);
        if let Err(e) = std::fs::create_dir_all(&sandbox) {
            self.fetching.lock().expect("executor lock").remove(id);
            let message = format!("creating the sandbox {}: {e}", sandbox.display());
            return self.fail(id, "REASON_CONTAINER_LAUNCH_FAILED", message);
        }
        if !task.spec.fetch.is_empty() {
            let fetched = match &fetch {
                Some((handle, cancel)) => self.fetch(handle, task, &sandbox, cancel),
                None => Err("the agent has no async runtime to fetch URIs with".to_string()),
            };
            self.fetching.lock().expect("executor lock").remove(id);
            if self.is_killing(id) {
                tracing::info!(task = %id, "killed while fetching; not starting it");
                self.set_state(id, TaskState::TASK_KILLED);
                let message = format!("task {id} was killed before it started");
                return self.send(
                    id,
                    TaskState::TASK_KILLED,
                    Some("REASON_TASK_KILLED_DURING_LAUNCH".into()),
                    message,
                    None,
                );
            }
            if let Err(message) = fetched {
                return self.fail(id, "REASON_CONTAINER_LAUNCH_FAILED", message);
            }
        }
        tracing::debug!(task = %id, "checkpointed; starting the container");
        match self.containers.launch(task, &sandbox) {
            Ok(()) => {
                tracing::debug!(task = %id, "container started");
                if self.mark_running(id) {
                    self.send(id, TaskState::TASK_RUNNING, None, String::new(), None);
                } else {
                    // A kill came while the container was starting and could not reach it.
                    let grace = Duration::from_millis(task.kill_grace_ms.unwrap_or(task.spec.kill_grace_ms));
                    if let Err(e) = self.containers.kill(id, grace) {
                        tracing::warn!(task = %id, error = %e, "kill failed");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "launch failed");
                self.fail(id, "REASON_CONTAINER_LAUNCH_FAILED", e);
            }
        }
    }

    /// Fetches the task's URIs into its sandbox; the error is the task's failure message.
    fn fetch(
        &self,
        handle: &tokio::runtime::Handle,
        task: &Task,
        sandbox: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let fetcher = self.fetcher.get_or_init(|| Fetcher::new(self.fetch_settings.clone())).as_ref()?;
        let owner = super::fetch::owner_of(task)
            .map_err(|e| format!("cannot give the fetched files to the task's user: {e}"))?;
        tracing::info!(task = %task.id, uris = task.spec.fetch.len(), "fetching URIs into the sandbox");
        fetcher.fetch_all(handle, &task.id, &task.spec.fetch, sandbox, owner, cancel).map_err(|e| e.to_string())
    }

    fn fail(&self, id: &str, reason: &str, message: String) {
        self.set_state(id, TaskState::TASK_FAILED);
        self.send(id, TaskState::TASK_FAILED, Some(reason.into()), message, None);
    }

    fn is_killing(&self, id: &str) -> bool {
        self.tasks.lock().expect("executor lock").get(id).is_some_and(|r| r.killing)
    }

    /// Records TASK_RUNNING unless the task is being killed; returns whether it did.
    fn mark_running(&self, id: &str) -> bool {
        let mut tasks = self.tasks.lock().expect("executor lock");
        let Some(record) = tasks.get_mut(id) else { return false };
        if record.killing {
            return false;
        }
        record.state = TaskState::TASK_RUNNING;
        if let Err(e) = self.checkpoint(record) {
            tracing::error!(task = %id, error = %e, "cannot checkpoint the task state");
        }
        true
    }

    fn set_state(&self, id: &str, state: TaskState) {
        let mut tasks = self.tasks.lock().expect("executor lock");
        if let Some(record) = tasks.get_mut(id) {
            record.state = state;
            if let Err(e) = self.checkpoint(record) {
                tracing::error!(task = %id, error = %e, "cannot checkpoint the task state");
            }
        }
    }

    /// Kills a task; a task this agent does not run is ignored.
    pub fn kill(&self, task_id: &str, grace: Duration) {
        let running = {
            let mut tasks = self.tasks.lock().expect("executor lock");
            match tasks.get_mut(task_id) {
                Some(r) if !r.state.is_terminal() && !r.killing => {
                    r.killing = true;
                    r.state = TaskState::TASK_KILLING;
                    let _ = self.checkpoint(r);
                    true
                }
                _ => false,
            }
        };
        if !running {
            return;
        }
        self.send(task_id, TaskState::TASK_KILLING, None, String::new(), None);
        if let Some(cancel) = self.fetching.lock().expect("executor lock").get(task_id) {
            // No container yet: stopping the fetch is the kill.
            cancel.cancel();
            return;
        }
        if let Err(e) = self.containers.kill(task_id, grace) {
            tracing::warn!(task = %task_id, error = %e, "kill failed");
        }
    }

    /// Checks running containers for exits and reports them. Returns how many ended.
    pub fn poll(&self) -> usize {
        let running: Vec<(String, bool)> = {
            let tasks = self.tasks.lock().expect("executor lock");
            let launching = self.launching.lock().expect("executor lock");
            tasks
                .values()
                .filter(|r| !r.state.is_terminal() && !launching.contains(&r.task.id))
                .map(|r| (r.task.id.clone(), r.killing))
                .collect()
        };
        let mut ended = 0;
        for (id, killing) in running {
            match self.containers.exit(&id) {
                Ok(Some(exit)) => {
                    let (state, reason, message) = exit_status(&id, exit, killing);
                    self.set_state(&id, state);
                    self.send(&id, state, reason, message, exit.code);
                    self.containers.destroy(&id);
                    ended += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    // The container vanished (e.g. the host rebooted): the task is gone.
                    self.set_state(&id, TaskState::TASK_GONE);
                    self.send(&id, TaskState::TASK_GONE, Some("REASON_CONTAINER_LAUNCH_FAILED".into()), e, None);
                    ended += 1;
                }
            }
        }
        ended
    }

    /// Forgets ended tasks whose last update was acknowledged (keeps the last `keep`).
    pub fn prune(&self, keep: usize) {
        let mut tasks = self.tasks.lock().expect("executor lock");
        let ended: Vec<String> = tasks.values().filter(|r| r.state.is_terminal()).map(|r| r.task.id.clone()).collect();
        if ended.len() <= keep || !self.outbox.is_empty() {
            return;
        }
        for id in ended.iter().take(ended.len() - keep) {
            tasks.remove(id);
            let _ = std::fs::remove_file(self.dir.join("tasks").join(format!("{id}.json")));
        }
    }

    /// Running tasks that are not being killed (for health checks).
    pub fn running(&self) -> Vec<Task> {
        let tasks = self.tasks.lock().expect("executor lock");
        tasks.values().filter(|r| r.state == TaskState::TASK_RUNNING && !r.killing).map(|r| r.task.clone()).collect()
    }

    /// Reports a change of a running task's health.
    pub fn report_health(&self, task_id: &str, healthy: bool, message: String) {
        if self.state_of(task_id) != Some(TaskState::TASK_RUNNING) {
            return;
        }
        let status = TaskStatus {
            task_id: task_id.to_string(),
            uuid: uuid(),
            state: TaskState::TASK_RUNNING,
            reason: Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED".into()),
            message,
            timestamp_ms: crate::clock::now_ms(),
            exit_code: None,
            healthy: Some(healthy),
            source: "SOURCE_EXECUTOR".into(),
        };
        if let Err(e) = self.outbox.push(&status) {
            tracing::error!(task = %task_id, error = %e, "cannot queue a health update");
        }
    }

    pub fn containers(&self) -> Arc<dyn Containers> {
        self.containers.clone()
    }

    pub fn state_of(&self, task_id: &str) -> Option<TaskState> {
        self.tasks.lock().expect("executor lock").get(task_id).map(|r| r.state)
    }
}

/// Runs `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_map_to_mesos_states_and_reasons() {
        let exit = |code, signal, oom| Exit { code, signal, oom };
        let cases = [
            (exit(Some(0), None, false), false, TaskState::TASK_FINISHED, None),
            (exit(Some(3), None, false), false, TaskState::TASK_FAILED, Some("REASON_COMMAND_EXECUTOR_FAILED")),
            (exit(None, Some(9), true), false, TaskState::TASK_FAILED, Some("REASON_CONTAINER_LIMITATION_MEMORY")),
            (exit(None, Some(15), false), true, TaskState::TASK_KILLED, None),
            (exit(None, Some(9), false), false, TaskState::TASK_FAILED, Some("REASON_COMMAND_EXECUTOR_FAILED")),
        ];
        for (e, killed, state, reason) in cases {
            let (s, r, _) = exit_status("t", e, killed);
            assert_eq!((s, r.as_deref()), (state, reason), "{e:?} killed={killed}");
        }
    }
}
