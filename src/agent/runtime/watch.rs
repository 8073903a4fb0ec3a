//! Observing container exits from the agent's side.
//!
//! The shim is not the agent's child (and after a restart could not be), so the agent cannot
//! `waitpid` it. Instead one watcher task per running container checks, with backoff from 5 ms
//! to 250 ms: is `exit.json` there (the shim's record, the only source of a real status)? Is the
//! shim still alive (pid and start time match, not a zombie)? A container launched by this
//! agent also has the shim's report pipe: the shim never writes to it after `started`, so its
//! EOF wakes the watcher the moment the shim exits, without waiting for the next poll.
//!
//! If the shim is gone and no `exit.json` exists, the shim was killed (or crashed): the watcher
//! records an `Unknown` status itself (so that a later recovery reports the same) and kills
//! whatever is left in the container's cgroup; the init has a parent-death SIGKILL, so normally
//! nothing is.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;

use super::cgroup::HostFs;
use super::linux::{Handle, Inner};
use super::state::{ShimState, read_json, write_json_atomic};
use super::status::{ExitStatus, Termination};

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Starts watching a running container; `pipe` is the shim's report pipe if this agent launched it.
pub(crate) fn spawn(inner: &Arc<Inner>, handle: Arc<Handle>, pipe: Option<tokio::io::BufReader<ChildStdout>>) {
    let task = tokio::spawn(watch(handle, pipe));
    let mut watchers = inner.watchers.lock().unwrap();
    watchers.retain(|w| !w.is_finished());
    watchers.push(task.abort_handle());
}

async fn watch(handle: Arc<Handle>, mut pipe: Option<tokio::io::BufReader<ChildStdout>>) {
    let Some(procs) = handle.procs else { return };
    let mut pause = FIRST_PAUSE;
    let status = loop {
        if let Some(status) = read_exit(&handle) {
            break status;
        }
        if !procs.shim.is_alive() {
            // The shim may have written the file just before it died.
            match read_exit(&handle) {
                Some(status) => break status,
                None => break record_lost(&handle).await,
            }
        }
        match &mut pipe {
            Some(reader) => {
                let mut sink = [0u8; 256];
                tokio::select! {
                    read = reader.read(&mut sink) => {
                        if matches!(read, Ok(0) | Err(_)) {
                            pipe = None;
                            pause = FIRST_PAUSE;
                            continue;
                        }
                    }
                    () = tokio::time::sleep(pause) => {}
                }
            }
            None => tokio::time::sleep(pause).await,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    };
    tracing::debug!(container = %handle.id, ?status, "container exited");
    handle.exit.send_replace(Some(status));

    reap_adopted(&procs).await;
}

/// Where the agent is a child subreaper it adopts the shim (and, if the shim died first, the
/// init): reap them once they are gone, so no zombie outlives the container.
pub(crate) async fn reap_adopted(procs: &ShimState) {
    let all = [Some(procs.shim), procs.init];
    for _ in 0..250 {
        if all.iter().flatten().all(|p| !p.is_alive()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in all.iter().flatten() {
        p.reap_if_our_zombie();
    }
}

fn read_exit(handle: &Handle) -> Option<ExitStatus> {
    match read_json::<ExitStatus>(&handle.dir.exit()) {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(container = %handle.id, error = %e, "unreadable exit status");
            None
        }
    }
}

/// The shim died without a record: write one, and clean up what may be left.
pub(crate) async fn record_lost(handle: &Arc<Handle>) -> ExitStatus {
    let reason = match handle.procs {
        Some(procs) => format!(
            "the shim (pid {}) ended without recording the task's exit status; it was probably killed; see {}",
            procs.shim.pid,
            handle.dir.shim_log().display()
        ),
        None => "the launch did not complete: the agent stopped before the shim started".to_string(),
    };
    let mut status = ExitStatus::new(Termination::Unknown { reason });
    status.kill_requested = handle.dir.kill_marker().exists();
    let h = handle.clone();
    let status = tokio::task::spawn_blocking(move || {
        status.oom_killed = h.plan.cgroup.oom_killed(&HostFs);
        if let Err(e) = h.plan.cgroup.kill_all(&HostFs, Duration::from_secs(5)) {
            tracing::warn!(container = %h.id, error = %e, "cannot kill what is left of the container");
        }
        if let Err(e) = write_json_atomic(&h.dir.exit(), &status) {
            tracing::warn!(container = %h.id, error = %e, "cannot record the lost exit status");
        }
        status
    })
    .await;
    match status {
        Ok(status) => status,
        Err(e) => ExitStatus::new(Termination::Unknown { reason: format!("the shim is gone and cleanup failed: {e}") }),
    }
}
