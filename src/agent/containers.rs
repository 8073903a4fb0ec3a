//! The executor's [`Containers`] on top of the container runtime: turns a [`Task`] into a
//! container spec (command, environment, limits, sandbox) and maps exits back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::executor::{Containers, Exit};
use super::runtime::{
    CommandSpec, ContainerId, ContainerRuntime, ContainerSpec, ContainerState, Resources as Limits, Termination,
};
use crate::core::Task;

/// Where the sandbox appears inside an image's root filesystem (Mesos's path).
pub const SANDBOX_IN_IMAGE: &str = "/mnt/mesos/sandbox";
/// Processes a task may have (fork-bomb guard).
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

pub struct RuntimeContainers {
    runtime: Arc<dyn ContainerRuntime>,
    handle: tokio::runtime::Handle,
    ids: Mutex<HashMap<String, ContainerId>>,
    hostname: String,
}

/// The environment Mesos gives a command task, plus the task's own variables.
pub fn task_env(task: &Task, host: &str, sandbox_path: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("MESOS_TASK_ID".to_string(), task.id.clone()),
        ("MESOS_SANDBOX".to_string(), sandbox_path.to_string()),
        ("HOST".to_string(), host.to_string()),
        ("PATH".to_string(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
    ];
    for (i, port) in task.ports.iter().enumerate() {
        env.push((format!("PORT{i}"), port.to_string()));
    }
    if let Some(first) = task.ports.first() {
        env.push(("PORT".to_string(), first.to_string()));
    }
    if !task.ports.is_empty() {
        let all: Vec<String> = task.ports.iter().map(u16::to_string).collect();
        env.push(("PORTS".to_string(), all.join(",")));
    }
    for (k, v) in &task.spec.env {
        env.retain(|(existing, _)| existing != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

impl RuntimeContainers {
    /// Wraps a runtime, re-attaching to the containers it recovers from its state dir.
    pub async fn new(runtime: Arc<dyn ContainerRuntime>, hostname: String) -> Result<Self, String> {
        let recovered = runtime.recover().await.map_err(|e| e.to_string())?;
        let ids = recovered.into_iter().map(|c| (c.task_id.clone(), c.id.clone())).collect();
        Ok(Self { runtime, handle: tokio::runtime::Handle::current(), ids: Mutex::new(ids), hostname })
    }

    fn id(&self, task_id: &str) -> Result<ContainerId, String> {
        self.ids
            .lock()
            .expect("ids lock")
            .get(task_id)
            .cloned()
            .ok_or_else(|| format!("no container for task {task_id}"))
    }
}

impl Containers for RuntimeContainers {
    fn launch(&self, task: &Task, sandbox: &Path) -> Result<(), String> {
        if task.spec.image.is_some() {
            return Err("image tasks are not supported by this agent yet; run the command on the host".into());
        }
        let id = ContainerId::random();
        let command = CommandSpec {
            shell: task.spec.command.shell,
            value: task.spec.command.value.clone(),
            arguments: task.spec.command.arguments.clone(),
        };
        let mut spec = ContainerSpec::new(id.clone(), task.id.clone(), command, sandbox);
        spec.env = task_env(task, &self.hostname, &sandbox.display().to_string());
        spec.user = task.spec.user.clone();
        spec.hostname = Some(task.spec.name.clone());
        spec.resources = Limits {
            cpus: Some(task.spec.resources.cpus),
            memory_bytes: Some((task.spec.resources.mem * 1024.0 * 1024.0) as u64),
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
        };
        self.ids.lock().expect("ids lock").insert(task.id.clone(), id);
        let result = self.handle.block_on(self.runtime.launch(spec));
        result.map(|_| ()).map_err(|e| e.to_string())
    }

    fn kill(&self, task_id: &str, grace: Duration) -> Result<(), String> {
        let id = self.id(task_id)?;
        let runtime = self.runtime.clone();
        // The runtime's kill waits for the end; the executor learns it by polling `exit`.
        self.handle.spawn(async move {
            if let Err(e) = runtime.kill(&id, grace).await {
                tracing::warn!(container = %id.as_str(), error = %e, "kill failed");
            }
        });
        Ok(())
    }

    fn exit(&self, task_id: &str) -> Result<Option<Exit>, String> {
        let id = self.id(task_id)?;
        match self.runtime.state(&id).map_err(|e| e.to_string())? {
            ContainerState::Running => Ok(None),
            ContainerState::Exited(status) => {
                if let Termination::Unknown { reason } = &status.termination {
                    tracing::warn!(task = %task_id, %reason, "container ended with an unknown status");
                }
                Ok(Some(Exit { code: status.code(), signal: status.signal(), oom: status.oom_killed }))
            }
        }
    }

    fn destroy(&self, task_id: &str) {
        let Ok(id) = self.id(task_id) else { return };
        if let Err(e) = self.handle.block_on(self.runtime.destroy(&id)) {
            tracing::warn!(task = %task_id, error = %e, "destroying the container failed");
        }
        self.ids.lock().expect("ids lock").remove(task_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{CommandSpec as TaskCommand, Resources, TaskSpec, TaskState};

    #[test]
    fn tasks_get_mesos_environment_variables() {
        let mut env = std::collections::BTreeMap::new();
        env.insert("HOST".to_string(), "overridden".to_string());
        env.insert("APP".to_string(), "1".to_string());
        let task = Task {
            id: "web.1".into(),
            framework_id: "f".into(),
            agent_id: "a".into(),
            spec: TaskSpec {
                name: "web".into(),
                command: TaskCommand { shell: true, value: "true".into(), arguments: vec![] },
                image: None,
                resources: Resources { cpus: 0.1, mem: 32.0, disk: 0.0, ports: vec![] },
                port_count: 2,
                env,
                user: None,
                kill_grace_ms: 1000,
                labels: Default::default(),
            },
            state: TaskState::TASK_STAGING,
            reason: None,
            message: String::new(),
            ports: vec![31000, 31001],
            created_at_ms: 0,
            updated_at_ms: 0,
            exit_code: None,
            healthy: None,
            kill_grace_ms: None,
            statuses: vec![],
        };
        let env: std::collections::HashMap<_, _> = task_env(&task, "node1", "/sandbox").into_iter().collect();
        assert_eq!(env["MESOS_TASK_ID"], "web.1");
        assert_eq!(env["MESOS_SANDBOX"], "/sandbox");
        assert_eq!(env["PORT0"], "31000");
        assert_eq!(env["PORT1"], "31001");
        assert_eq!(env["PORT"], "31000");
        assert_eq!(env["PORTS"], "31000,31001");
        assert_eq!(env["HOST"], "overridden", "the task's own variables win");
        assert_eq!(env["APP"], "1");
    }
}
