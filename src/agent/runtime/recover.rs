//! Recovery: finding the containers of an earlier agent after a restart.
//!
//! Each directory under `STATE/containers/` is one container. What its files say decides:
//!
//! | files | meaning | result |
//! |---|---|---|
//! | no (or an empty) `config.json` | the agent died while claiming the directory, or the host crashed before the unsynced plan reached the disk | removed (nothing runs) |
//! | `exit.json` | the task ended (perhaps while no agent ran) | `Exited` with the shim's status |
//! | `state.json`, shim alive | running | `Running`, watched again |
//! | `state.json`, shim dead, no `exit.json` | the shim was killed | `Exited(Unknown)`, recorded, leftovers killed |
//! | no (or an empty) `state.json` | the launch never got to start the shim, or the host crashed | `Exited(Unknown)`, recorded |
//!
//! `config.json` and `state.json` are written atomically but not synced (see [`super::state`]):
//! an empty one can only be left by a host crash, which also ended every process it described.
//!
//! A directory that cannot be read is skipped with a warning rather than failing the whole
//! recovery: one corrupt container must not keep an agent from re-attaching to the others.

use std::sync::Arc;

use super::error::{Result, RuntimeError};
use super::linux::{Handle, Inner};
use super::plan::LaunchPlan;
use super::spec::ContainerId;
use super::state::{ContainerDir, ShimState, containers_dir, is_empty_file, read_json};
use super::status::{Container, ExitStatus};
use super::watch;

pub(crate) async fn recover(inner: &Arc<Inner>) -> Result<Vec<Container>> {
    let root = containers_dir(&inner.config.state_dir);
    let entries = std::fs::read_dir(&root).map_err(|e| RuntimeError::io("read", &root, e))?;
    let mut recovered = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RuntimeError::io("read", &root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(id) = ContainerId::new(&name) else {
            tracing::warn!(entry = %entry.path().display(), "not a container directory; skipped");
            continue;
        };
        if let Some(handle) = inner.containers.lock().unwrap().get(&id) {
            recovered.push(handle.snapshot());
            continue;
        }
        match recover_one(inner, &id).await {
            Ok(Some(container)) => recovered.push(container),
            Ok(None) => {}
            Err(e) => tracing::warn!(container = %id, error = %e, "cannot recover container; skipped"),
        }
    }
    recovered.sort_by(|a, b| a.id.cmp(&b.id));
    tracing::debug!(count = recovered.len(), "recovered containers");
    Ok(recovered)
}

async fn recover_one(inner: &Arc<Inner>, id: &ContainerId) -> Result<Option<Container>> {
    let dir = ContainerDir::new(&inner.config.state_dir, id);
    if !dir.plan().exists() || is_empty_file(&dir.plan()) {
        // Claimed but never planned: no cgroup with limits, no process. Remove the claim, and a
        // cgroup in case the agent died right after creating it.
        let cgroup = inner.cgroups.task(id);
        let cgroups = inner.cgroups.clone();
        let _ =
            tokio::task::spawn_blocking(move || cgroup.remove(cgroups.fs(), std::time::Duration::from_secs(5))).await;
        std::fs::remove_dir_all(&dir.path).map_err(|e| RuntimeError::io("remove", &dir.path, e))?;
        return Ok(None);
    }
    let plan = LaunchPlan::load(&dir.path)?;
    let procs: Option<ShimState> = if is_empty_file(&dir.state()) { None } else { read_json(&dir.state())? };
    let exit: Option<ExitStatus> = read_json(&dir.exit())?;
    let running = exit.is_none() && procs.is_some_and(|p| p.shim.is_alive());
    let handle = Handle::new(dir, plan, procs, exit);
    if running {
        watch::spawn(inner, handle.clone(), None);
    } else if handle.exit_status().is_none() {
        // Either the shim died without a record, or it never started: re-check, then record.
        let status = match read_json::<ExitStatus>(&handle.dir.exit())? {
            Some(status) => status,
            None => watch::record_lost(&handle).await,
        };
        handle.exit.send_replace(Some(status));
    }
    inner.containers.lock().unwrap().insert(id.clone(), handle.clone());
    let container = handle.snapshot();
    tracing::debug!(container = %id, state = ?container.state, "recovered");
    Ok(Some(container))
}
