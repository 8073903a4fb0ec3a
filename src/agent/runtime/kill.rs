//! Signalling and killing tasks.
//!
//! Signals other than SIGKILL go to the task's process group (the task leads one; inside the
//! container it is not PID 1, so SIGTERM's default action applies even to a task without a
//! handler, and its children get it too, like Mesos's kill of the process tree). SIGKILL goes to
//! the container's init: when PID 1 of a pid namespace dies, the kernel kills everything in the
//! namespace, and the shim records the init's death by SIGKILL. A kill with grace is SIGTERM,
//! then SIGKILL when the grace period ends; both steps then sweep the cgroup too.
//!
//! Every pid is checked against its recorded start time before it is signalled, so a pid reused
//! after the task ended is never hit.

use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::error::{Result, RuntimeError};
use super::linux::Inner;
use super::spec::ContainerId;
use super::status::ExitStatus;

/// How long a SIGKILLed container may take to be recorded as ended.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn signal(inner: &Arc<Inner>, id: &ContainerId, signal: Signal) -> Result<()> {
    let handle = inner.handle(id)?;
    if handle.exit_status().is_some() {
        return Err(RuntimeError::NotRunning { id: id.clone() });
    }
    let Some(procs) = handle.procs else { return Err(RuntimeError::NotRunning { id: id.clone() }) };
    let sent = if signal == Signal::SIGKILL {
        procs.init.map(|init| init.signal(signal))
    } else {
        procs.task.map(|task| task.signal_group(signal))
    };
    match sent {
        Some(Ok(())) => {
            tracing::debug!(container = %id, ?signal, "signal sent");
            Ok(())
        }
        // Already gone: its exit is on its way to the watcher.
        Some(Err(Errno::ESRCH)) | None => Ok(()),
        Some(Err(e)) => Err(RuntimeError::sys(format!("send {signal} to container `{id}`"), e)),
    }
}

pub(crate) async fn kill(inner: &Arc<Inner>, id: &ContainerId, grace: Duration) -> Result<ExitStatus> {
    let handle = inner.handle(id)?;
    if let Some(status) = handle.exit_status() {
        return Ok(status);
    }
    let marker = handle.dir.kill_marker();
    std::fs::write(&marker, b"").map_err(|e| RuntimeError::io("mark the kill request in", &marker, e))?;
    if !grace.is_zero() {
        signal(inner, id, Signal::SIGTERM).or_else(ignore_not_running)?;
        if let Ok(status) = tokio::time::timeout(grace, handle.wait()).await {
            return Ok(status);
        }
        tracing::info!(container = %id, grace_ms = grace.as_millis() as u64, "grace period over, sending SIGKILL");
    }
    signal(inner, id, Signal::SIGKILL).or_else(ignore_not_running)?;
    let cgroup = handle.plan.cgroup.clone();
    let cgroups = inner.cgroups.clone();
    let sweep = tokio::task::spawn_blocking(move || cgroup.kill_all(cgroups.fs(), Duration::from_secs(5)));
    let status = tokio::time::timeout(KILL_TIMEOUT, handle.wait()).await.map_err(|_| RuntimeError::Timeout {
        id: id.clone(),
        what: "the killed container to end",
        seconds: KILL_TIMEOUT.as_secs_f64(),
    })?;
    if let Ok(Err(e)) = sweep.await {
        tracing::warn!(container = %id, error = %e, "processes survive in the container's cgroup");
    }
    Ok(status)
}

fn ignore_not_running(e: RuntimeError) -> Result<()> {
    match e {
        RuntimeError::NotRunning { .. } => Ok(()),
        other => Err(other),
    }
}
