//! [`RecordingRuntime`]: a fake [`ContainerRuntime`] for the agent's tests.
//!
//! It records every call, keeps containers in memory, and lets the test decide how they end:
//! a launched container runs until the test calls [`RecordingRuntime::exit`], or until it is
//! killed. SIGTERM ends it at once (`Signaled(15)`) unless the test made it ignore SIGTERM, in
//! which case a kill waits out the grace period (on tokio's clock) and ends it with SIGKILL. Several runtime objects can share one simulated host
//! ([`RecordingRuntime::restart`]) to test agent restarts: containers survive, and `recover`
//! returns them. Execs answer with scripted output and status.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::error::{Result, RuntimeError};
use super::exec::ExecProcess;
use super::spec::{ContainerId, ContainerSpec, ExecSpec};
use super::status::{Container, ContainerState, ExitStatus, Termination};
use super::{BoxFuture, ContainerRuntime, Signal};

/// One call made to the fake, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeCall {
    Launch(Box<ContainerSpec>),
    Recover,
    Signal { id: ContainerId, signal: Signal },
    Kill { id: ContainerId, grace: Duration },
    Destroy { id: ContainerId },
    Exec { id: ContainerId, spec: ExecSpec },
}

/// The fake container runtime.
#[derive(Clone, Default)]
pub struct RecordingRuntime {
    host: Arc<Mutex<Host>>,
    calls: Arc<Mutex<Vec<RuntimeCall>>>,
}

/// What survives a simulated agent restart.
#[derive(Default)]
struct Host {
    containers: BTreeMap<ContainerId, FakeContainer>,
    ignore_sigterm: HashSet<ContainerId>,
    launch_failures: Vec<String>,
    exec_result: Option<(Vec<u8>, Termination)>,
    next_pid: u32,
}

struct FakeContainer {
    task_id: String,
    pid: u32,
    exit: watch::Sender<Option<ExitStatus>>,
    kill_requested: bool,
}

impl FakeContainer {
    fn snapshot(&self, id: &ContainerId) -> Container {
        let exit = self.exit.borrow().clone();
        Container {
            id: id.clone(),
            task_id: self.task_id.clone(),
            init_pid: exit.is_none().then_some(self.pid),
            task_pid: exit.is_none().then_some(self.pid + 1),
            state: exit.map(ContainerState::Exited).unwrap_or(ContainerState::Running),
        }
    }

    fn finish(&self, termination: Termination) {
        if self.exit.borrow().is_none() {
            let mut status = ExitStatus::new(termination);
            status.kill_requested = self.kill_requested;
            self.exit.send_replace(Some(status));
        }
    }
}

impl RecordingRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new runtime object on the same simulated host, with an empty call log: the agent
    /// restarted. Containers keep running; the new object knows them only after `recover`.
    pub fn restart(&self) -> Self {
        RecordingRuntime { host: self.host.clone(), calls: Arc::default() }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<RuntimeCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Ends a running container's task the way `termination` says.
    pub fn exit(&self, id: &ContainerId, termination: Termination) {
        if let Some(c) = self.host.lock().unwrap().containers.get(id) {
            c.finish(termination);
        }
    }

    /// Ends a running container as the OOM killer would.
    pub fn oom_kill(&self, id: &ContainerId) {
        if let Some(c) = self.host.lock().unwrap().containers.get(id)
            && c.exit.borrow().is_none()
        {
            let mut status = ExitStatus::new(Termination::Signaled { signal: Signal::SIGKILL as i32 });
            status.oom_killed = true;
            c.exit.send_replace(Some(status));
        }
    }

    /// The container will ignore SIGTERM; a kill then needs its grace period and SIGKILL.
    pub fn ignore_sigterm(&self, id: &ContainerId) {
        self.host.lock().unwrap().ignore_sigterm.insert(id.clone());
    }

    /// The next launch fails with this message.
    pub fn fail_next_launch(&self, message: impl Into<String>) {
        self.host.lock().unwrap().launch_failures.push(message.into());
    }

    /// Execs print `stdout` and end with `termination` (default: no output, exit 0).
    pub fn set_exec_result(&self, stdout: impl Into<Vec<u8>>, termination: Termination) {
        self.host.lock().unwrap().exec_result = Some((stdout.into(), termination));
    }

    fn record(&self, call: RuntimeCall) {
        self.calls.lock().unwrap().push(call);
    }

    fn exit_channel(&self, id: &ContainerId) -> Result<watch::Receiver<Option<ExitStatus>>> {
        let host = self.host.lock().unwrap();
        let c = host.containers.get(id).ok_or_else(|| RuntimeError::UnknownContainer { id: id.clone() })?;
        Ok(c.exit.subscribe())
    }

    fn deliver(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        let mut host = self.host.lock().unwrap();
        let ignores_term = host.ignore_sigterm.contains(id);
        let c = host.containers.get_mut(id).ok_or_else(|| RuntimeError::UnknownContainer { id: id.clone() })?;
        if c.exit.borrow().is_some() {
            return Err(RuntimeError::NotRunning { id: id.clone() });
        }
        if !(signal == Signal::SIGTERM && ignores_term) {
            c.finish(Termination::Signaled { signal: signal as i32 });
        }
        Ok(())
    }
}

async fn wait_exit(mut rx: watch::Receiver<Option<ExitStatus>>) -> ExitStatus {
    loop {
        if let Some(status) = rx.borrow_and_update().clone() {
            return status;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl ContainerRuntime for RecordingRuntime {
    fn launch(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Container>> {
        Box::pin(async move {
            self.record(RuntimeCall::Launch(Box::new(spec.clone())));
            let mut host = self.host.lock().unwrap();
            if !host.launch_failures.is_empty() {
                let message = host.launch_failures.remove(0);
                return Err(RuntimeError::LaunchFailed { id: spec.id.clone(), message });
            }
            if host.containers.contains_key(&spec.id) {
                return Err(RuntimeError::AlreadyExists { id: spec.id.clone(), dir: Default::default() });
            }
            host.next_pid += 2;
            let container = FakeContainer {
                task_id: spec.task_id.clone(),
                pid: 1000 + host.next_pid,
                exit: watch::Sender::new(None),
                kill_requested: false,
            };
            let snapshot = container.snapshot(&spec.id);
            host.containers.insert(spec.id.clone(), container);
            Ok(snapshot)
        })
    }

    fn recover(&self) -> BoxFuture<'_, Result<Vec<Container>>> {
        Box::pin(async move {
            self.record(RuntimeCall::Recover);
            Ok(self.list())
        })
    }

    fn list(&self) -> Vec<Container> {
        self.host.lock().unwrap().containers.iter().map(|(id, c)| c.snapshot(id)).collect()
    }

    fn state(&self, id: &ContainerId) -> Result<ContainerState> {
        let host = self.host.lock().unwrap();
        let c = host.containers.get(id).ok_or_else(|| RuntimeError::UnknownContainer { id: id.clone() })?;
        Ok(c.snapshot(id).state)
    }

    fn wait<'a>(&'a self, id: &'a ContainerId) -> BoxFuture<'a, Result<ExitStatus>> {
        Box::pin(async move { Ok(wait_exit(self.exit_channel(id)?).await) })
    }

    fn signal(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        self.record(RuntimeCall::Signal { id: id.clone(), signal });
        self.deliver(id, signal)
    }

    fn kill<'a>(&'a self, id: &'a ContainerId, grace: Duration) -> BoxFuture<'a, Result<ExitStatus>> {
        Box::pin(async move {
            self.record(RuntimeCall::Kill { id: id.clone(), grace });
            let rx = self.exit_channel(id)?;
            if let Some(c) = self.host.lock().unwrap().containers.get_mut(id)
                && c.exit.borrow().is_none()
            {
                c.kill_requested = true;
            }
            if !grace.is_zero() {
                let _ = self.deliver(id, Signal::SIGTERM);
                if let Ok(status) = tokio::time::timeout(grace, wait_exit(rx.clone())).await {
                    return Ok(status);
                }
            }
            let _ = self.deliver(id, Signal::SIGKILL);
            Ok(wait_exit(rx).await)
        })
    }

    fn destroy<'a>(&'a self, id: &'a ContainerId) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.record(RuntimeCall::Destroy { id: id.clone() });
            let mut host = self.host.lock().unwrap();
            let c = host.containers.remove(id).ok_or_else(|| RuntimeError::UnknownContainer { id: id.clone() })?;
            c.finish(Termination::Signaled { signal: Signal::SIGKILL as i32 });
            Ok(())
        })
    }

    fn exec<'a>(&'a self, id: &'a ContainerId, spec: ExecSpec) -> BoxFuture<'a, Result<ExecProcess>> {
        Box::pin(async move {
            self.record(RuntimeCall::Exec { id: id.clone(), spec });
            let (output, termination) = {
                let host = self.host.lock().unwrap();
                let c = host.containers.get(id).ok_or_else(|| RuntimeError::UnknownContainer { id: id.clone() })?;
                if c.exit.borrow().is_some() {
                    return Err(RuntimeError::NotRunning { id: id.clone() });
                }
                host.exec_result.clone().unwrap_or((Vec::new(), Termination::Exited { code: 0 }))
            };
            let io = |e| RuntimeError::io("create a pipe for", "the fake exec", e);
            let (stdin, _stdin_rx) = tokio::net::unix::pipe::pipe().map_err(io)?;
            let (mut stdout_tx, stdout) = tokio::net::unix::pipe::pipe().map_err(io)?;
            let (_stderr_tx, stderr) = tokio::net::unix::pipe::pipe().map_err(io)?;
            let mut process = ExecProcess::new(
                Some(4242),
                Box::pin(async move {
                    let _ = stdout_tx.write_all(&output).await;
                    drop(stdout_tx);
                    drop(_stdin_rx);
                    drop(_stderr_tx);
                    Ok(ExitStatus::new(termination))
                }),
            );
            process.stdin = Some(stdin);
            process.stdout = Some(stdout);
            process.stderr = Some(stderr);
            Ok(process)
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::agent::runtime::spec::CommandSpec;

    fn spec(id: &str) -> ContainerSpec {
        ContainerSpec::new(ContainerId::new(id).unwrap(), format!("task-{id}"), CommandSpec::shell("sleep 1"), "/tmp")
    }

    #[tokio::test]
    async fn fake_records_calls_and_models_kill_grace() {
        let rt = RecordingRuntime::new();
        let (a, b) = (ContainerId::new("a").unwrap(), ContainerId::new("b").unwrap());
        rt.launch(spec("a")).await.unwrap();
        rt.launch(spec("b")).await.unwrap();
        rt.ignore_sigterm(&b);

        let grace = Duration::from_millis(200);
        let started = tokio::time::Instant::now();
        let status = rt.kill(&a, Duration::from_secs(30)).await.unwrap();
        assert_eq!(status.signal(), Some(15));
        assert!(status.kill_requested);
        assert!(started.elapsed() < Duration::from_secs(30), "SIGTERM ended it at once");

        let started = tokio::time::Instant::now();
        let status = rt.kill(&b, grace).await.unwrap();
        assert_eq!(status.signal(), Some(9));
        assert!(started.elapsed() >= grace, "SIGKILL only after the grace period");

        assert_eq!(
            &rt.calls()[2..],
            [
                RuntimeCall::Kill { id: a.clone(), grace: Duration::from_secs(30) },
                RuntimeCall::Kill { id: b.clone(), grace },
            ]
        );
        assert!(matches!(rt.signal(&a, Signal::SIGTERM), Err(RuntimeError::NotRunning { .. })));
    }

    #[tokio::test]
    async fn fake_containers_survive_a_restart_and_report_exits() {
        let rt = RecordingRuntime::new();
        let id = ContainerId::new("c").unwrap();
        rt.launch(spec("c")).await.unwrap();
        rt.fail_next_launch("no such image");
        let err = rt.launch(spec("d")).await.unwrap_err().to_string();
        assert!(err.contains("no such image"), "{err}");

        let restarted = rt.restart();
        assert!(restarted.calls().is_empty());
        rt.exit(&id, Termination::Exited { code: 3 });
        let recovered = restarted.recover().await.unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(restarted.wait(&id).await.unwrap().code(), Some(3));
        restarted.destroy(&id).await.unwrap();
        assert!(matches!(restarted.state(&id), Err(RuntimeError::UnknownContainer { .. })));
    }

    #[tokio::test]
    async fn fake_exec_replays_scripted_output() {
        let rt = RecordingRuntime::new();
        let id = ContainerId::new("e").unwrap();
        rt.launch(spec("e")).await.unwrap();
        rt.set_exec_result("hello\n", Termination::Exited { code: 4 });
        let mut process = rt.exec(&id, ExecSpec::new(CommandSpec::shell("echo hello"))).await.unwrap();
        let mut stdout = process.stdout.take().unwrap();
        let status = process.wait().await.unwrap();
        let mut out = String::new();
        stdout.read_to_string(&mut out).await.unwrap();
        assert_eq!((out.as_str(), status.code()), ("hello\n", Some(4)));
        rt.oom_kill(&id);
        assert!(rt.wait(&id).await.unwrap().oom_killed);
    }
}
