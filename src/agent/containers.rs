//! The executor's [`Containers`] on top of the container runtime: turns a [`Task`] into a
//! container spec (command, environment, limits, sandbox) and maps exits back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::PathBuf;

use super::executor::{Containers, Exit};
use super::runtime::RootfsSpec;
use super::runtime::{
    CommandSpec, ContainerId, ContainerRuntime, ContainerSpec, ContainerState, Resources as Limits, Termination,
};
use crate::core::ImageRecord;
use crate::core::Task;
use crate::image::{Compression, Digest, LayerCache};

/// Where the sandbox appears inside an image's root filesystem (Mesos's path).
pub const SANDBOX_IN_IMAGE: &str = "/mnt/mesos/sandbox";
/// Processes a task may have (fork-bomb guard).
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

pub struct RuntimeContainers {
    runtime: Arc<dyn ContainerRuntime>,
    handle: tokio::runtime::Handle,
    ids: Mutex<HashMap<String, ContainerId>>,
    hostname: String,
    images: Option<ImageSource>,
    /// Layers each live image task uses (for garbage-collecting the layer cache).
    layers_in_use: Mutex<HashMap<String, Vec<Digest>>>,
    /// The tasks' `resolv.conf` (the cluster DNS), used while it exists (see `agent::dns`).
    resolv_conf: Option<PathBuf>,
}

/// Where image layers come from: the masters' blob stores, over mutual TLS.
pub struct ImageSource {
    pub http: reqwest::Client,
    pub masters: Vec<String>,
    /// Unpacked layers, shared by every task on this agent.
    pub layers: LayerCache,
    /// Per-task writable layers and downloads live under here.
    pub work_dir: PathBuf,
}

impl ImageSource {
    /// Downloads blob `digest` from a master into a temporary file.
    async fn download(&self, digest: &Digest) -> Result<PathBuf, String> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let dir = self.work_dir.join("downloads");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let path = dir.join(format!("{}.{}", digest.hex(), hex::encode(rand::random::<[u8; 4]>())));
        let mut last = String::from("no master configured");
        for master in &self.masters {
            let resp = match self.http.get(format!("{master}/internal/agent/v1/blobs/{digest}")).send().await {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => {
                    last = format!("{master} answered {}", r.status());
                    continue;
                }
                Err(e) => {
                    last = format!("{master}: {e}");
                    continue;
                }
            };
            let mut file =
                tokio::fs::File::create(&path).await.map_err(|e| format!("creating {}: {e}", path.display()))?;
            let mut stream = resp.bytes_stream();
            let mut ok = true;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        file.write_all(&bytes).await.map_err(|e| format!("writing {}: {e}", path.display()))?
                    }
                    Err(e) => {
                        last = format!("{master}: {e}");
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                file.flush().await.map_err(|e| e.to_string())?;
                return Ok(path);
            }
        }
        let _ = tokio::fs::remove_file(&path).await;
        Err(format!("cannot download layer {digest}: {last}"))
    }

    /// The unpacked directory of every layer, fetching and unpacking (verified) what is missing.
    fn layer_dirs(
        &self,
        handle: &tokio::runtime::Handle,
        image: &ImageRecord,
    ) -> Result<(Vec<PathBuf>, Vec<Digest>), String> {
        let mut dirs = Vec::new();
        let mut digests = Vec::new();
        for layer in &image.layers {
            let digest = Digest::parse(&layer.digest, "layer digest").map_err(|e| e.to_string())?;
            let diff_id = Digest::parse(&layer.diff_id, "diff_id").map_err(|e| e.to_string())?;
            let compression = if layer.compression == "gzip" { Compression::Gzip } else { Compression::None };
            if !self.layers.contains(&digest) {
                let file = handle.block_on(self.download(&digest))?;
                let reader = std::fs::File::open(&file).map_err(|e| format!("opening {}: {e}", file.display()))?;
                let result = self.layers.unpack_from(&digest, compression, Some(&diff_id), reader);
                let _ = std::fs::remove_file(&file);
                result.map_err(|e| format!("layer {digest}: {e}"))?;
            }
            dirs.push(self.layers.path(&digest));
            digests.push(digest);
        }
        Ok((dirs, digests))
    }
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
    pub async fn new(
        runtime: Arc<dyn ContainerRuntime>,
        hostname: String,
        images: Option<ImageSource>,
    ) -> Result<Self, String> {
        let recovered = runtime.recover().await.map_err(|e| e.to_string())?;
        let ids = recovered.into_iter().map(|c| (c.task_id.clone(), c.id.clone())).collect();
        Ok(Self {
            runtime,
            handle: tokio::runtime::Handle::current(),
            ids: Mutex::new(ids),
            hostname,
            images,
            layers_in_use: Mutex::new(HashMap::new()),
            resolv_conf: None,
        })
    }

    /// Gives tasks the `resolv.conf` at `path` whenever it exists (the agent writes it once
    /// it knows the cluster DNS), instead of the host's.
    pub fn with_resolv_conf(mut self, path: PathBuf) -> Self {
        self.resolv_conf = Some(path);
        self
    }

    fn rootfs_dir(&self, id: &ContainerId) -> Option<PathBuf> {
        self.images.as_ref().map(|i| i.work_dir.join("rootfs").join(id.as_str()))
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
        let id = ContainerId::random();
        self.layers_in_use.lock().expect("layers lock").insert(task.id.clone(), Vec::new());
        let mut rootfs = None;
        let mut image_env = Vec::new();
        if let Some(image) = &task.image {
            let source =
                self.images.as_ref().ok_or("this agent cannot run image tasks (no image source configured)")?;
            let (layers, digests) = source.layer_dirs(&self.handle, image)?;
            let base = self.rootfs_dir(&id).expect("images configured");
            rootfs = Some(RootfsSpec { layers, upper_dir: base.join("upper"), work_dir: base.join("work") });
            self.layers_in_use.lock().expect("layers lock").insert(task.id.clone(), digests);
            image_env = image
                .env
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        let command = CommandSpec {
            shell: task.spec.command.shell,
            value: task.spec.command.value.clone(),
            arguments: task.spec.command.arguments.clone(),
        };
        let mut spec = ContainerSpec::new(id.clone(), task.id.clone(), command, sandbox);
        let sandbox_seen = if rootfs.is_some() { SANDBOX_IN_IMAGE.to_string() } else { sandbox.display().to_string() };
        let mut env = image_env;
        for (k, v) in task_env(task, &self.hostname, &sandbox_seen) {
            // The image's PATH suits its filesystem better than the host's default.
            if k == "PATH" && env.iter().any(|(e, _)| e == "PATH") && !task.spec.env.contains_key("PATH") {
                continue;
            }
            env.retain(|(e, _)| *e != k);
            env.push((k, v));
        }
        spec.env = env;
        spec.rootfs = rootfs;
        spec.user = task
            .spec
            .user
            .clone()
            .or_else(|| task.image.as_ref().and_then(|i| i.user.clone()).filter(|u| !u.is_empty()));
        spec.hostname = Some(task.spec.name.clone());
        if let Some(path) = self.resolv_conf.as_ref().filter(|p| p.exists()) {
            spec.resolv_conf = path.clone();
        }
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

    fn run_check(&self, task_id: &str, command: &str, timeout: Duration) -> Result<i32, String> {
        let id = self.id(task_id)?;
        let spec = super::runtime::ExecSpec::new(CommandSpec::shell(command));
        self.handle.block_on(async {
            let mut process = self.runtime.exec(&id, spec).await.map_err(|e| e.to_string())?;
            match tokio::time::timeout(timeout, process.wait()).await {
                Ok(status) => status.map(|s| s.shell_code()).map_err(|e| e.to_string()),
                Err(_) => {
                    let _ = process.signal(super::runtime::Signal::SIGKILL);
                    Err(format!("the check command did not finish within {timeout:?}"))
                }
            }
        })
    }

    fn destroy(&self, task_id: &str) {
        let Ok(id) = self.id(task_id) else { return };
        if let Err(e) = self.handle.block_on(self.runtime.destroy(&id)) {
            tracing::warn!(task = %task_id, error = %e, "destroying the container failed");
        }
        self.ids.lock().expect("ids lock").remove(task_id);
        if let Some(dir) = self.rootfs_dir(&id)
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(task = %task_id, error = %e, "removing the task's writable layer failed");
        }
        let (in_use, complete) = {
            let mut layers = self.layers_in_use.lock().expect("layers lock");
            layers.remove(task_id);
            // Containers recovered after an agent restart have unknown layers: no GC until they end.
            let complete = self.ids.lock().expect("ids lock").keys().all(|t| layers.contains_key(t));
            (layers.values().flatten().copied().collect::<std::collections::HashSet<Digest>>(), complete)
        };
        if complete
            && let Some(source) = &self.images
            && let Err(e) = source.layers.gc(&in_use)
        {
            tracing::warn!(error = %e, "layer garbage collection failed");
        }
    }

    fn exec<'a>(
        &'a self,
        task_id: &'a str,
        spec: super::runtime::ExecSpec,
    ) -> super::runtime::BoxFuture<'a, Result<super::runtime::ExecProcess, String>> {
        Box::pin(async move {
            let id = self.id(task_id)?;
            self.runtime.exec(&id, spec).await.map_err(|e| e.to_string())
        })
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
                health_checks: vec![],
                fetch: vec![],
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
            image: None,
            app_id: None,
            app_version: None,
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
