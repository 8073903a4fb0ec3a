//! Observing container exits from the agent's side.
//!
//! The shim is not the agent's child (and after a restart could not be), so the agent cannot
//! `waitpid` it. Instead one watcher task per running container holds a pidfd of the shim
//! (opened, then checked against the recorded start time, so it cannot name a process that
//! reused the pid) and wakes the moment the shim exits; the shim writes `exit.json` (the only
//! source of a real status) before it exits. On kernels without pidfds (before 5.3) the watcher
//! polls instead, with backoff from 5 ms to 250 ms: is `exit.json` there? Is the shim still
//! alive (pid and start time match, not a zombie)? A container launched by this agent then also
//! has the shim's report pipe, whose EOF wakes the watcher when the shim exits.
//!
//! If the shim is gone and no `exit.json` exists, the shim was killed (or crashed): the watcher
//! records an `Unknown` status itself (so that a later recovery reports the same) and kills
//! whatever is left in the container's cgroup; the init has a parent-death SIGKILL, so normally
//! nothing is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::io::unix::AsyncFd;
use tokio::process::ChildStdout;

use super::cgroup::HostFs;
use super::linux::{Handle, Inner};
use super::procfs::ProcIdentity;
use super::state::{ShimState, read_json, write_json_durable};
use super::status::{ExitStatus, Termination};

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// How long [`reap_adopted`] waits for a container's shim and init to exit.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts watching a running container; `pipe` is the shim's report pipe if this agent launched it.
pub(crate) fn spawn(inner: &Arc<Inner>, handle: Arc<Handle>, pipe: Option<tokio::io::BufReader<ChildStdout>>) {
    let task = tokio::spawn(watch(handle, pipe));
    let mut watchers = inner.watchers.lock().unwrap();
    watchers.retain(|w| !w.is_finished());
    watchers.push(task.abort_handle());
}

async fn watch(handle: Arc<Handle>, pipe: Option<tokio::io::BufReader<ChildStdout>>) {
    let Some(procs) = handle.procs else { return };
    let status = match exit_watcher(&procs.shim) {
        Some(Exit::Gone) => None,
        Some(Exit::Pidfd(fd)) => {
            let _ = fd.readable().await;
            None
        }
        None => Some(poll_for_exit(&handle, &procs, pipe).await),
    };
    // The shim has exited (it writes the status first), or the poll found the status.
    let status = match status.or_else(|| read_exit(&handle)) {
        Some(status) => status,
        None => record_lost(&handle).await,
    };
    tracing::debug!(container = %handle.id, ?status, "container exited");
    handle.exit.send_replace(Some(status));

    reap_adopted(&procs).await;
}

/// How to learn that a process exited.
enum Exit {
    /// It already has.
    Gone,
    /// Readable once it has.
    Pidfd(AsyncFd<std::os::fd::OwnedFd>),
}

/// A pidfd-based watcher for `process`; `None` where pidfds cannot be used (then poll).
fn exit_watcher(process: &ProcIdentity) -> Option<Exit> {
    match process.pidfd() {
        Ok(None) => Some(Exit::Gone),
        Ok(Some(fd)) => match register(fd) {
            Ok(fd) => Some(Exit::Pidfd(fd)),
            Err(e) => {
                tracing::debug!(pid = process.pid, error = %e, "cannot poll a pidfd; polling /proc instead");
                None
            }
        },
        Err(e) => {
            tracing::debug!(pid = process.pid, error = %e, "no pidfds on this kernel; polling /proc instead");
            None
        }
    }
}

/// Registers a pidfd with tokio's reactor (readable once the process exited).
///
/// `AsyncFd::with_interest` is deprecated because it cannot hold a `T` to keep returning the
/// same open descriptor; an `OwnedFd` moved into the `AsyncFd` does, for its whole lifetime,
/// which is exactly the condition of the `unsafe` replacement, so this use is sound.
#[allow(deprecated)]
fn register(fd: std::os::fd::OwnedFd) -> std::io::Result<AsyncFd<std::os::fd::OwnedFd>> {
    AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)
}

/// Resolves once `process` has exited, or after `timeout`; false on timeout.
pub(crate) async fn exited(process: &ProcIdentity, timeout: Duration) -> bool {
    match exit_watcher(process) {
        Some(Exit::Gone) => true,
        Some(Exit::Pidfd(fd)) => tokio::time::timeout(timeout, fd.readable()).await.is_ok(),
        None => {
            let deadline = Instant::now() + timeout;
            let mut pause = Duration::from_millis(1);
            while process.is_alive() {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            true
        }
    }
}

/// Without pidfds: polls for `exit.json` and the shim's death, woken early by the pipe's EOF.
async fn poll_for_exit(
    handle: &Arc<Handle>,
    procs: &ShimState,
    mut pipe: Option<tokio::io::BufReader<ChildStdout>>,
) -> ExitStatus {
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(status) = read_exit(handle) {
            return status;
        }
        if !procs.shim.is_alive() {
            // The shim may have written the file just before it died.
            return match read_exit(handle) {
                Some(status) => status,
                None => record_lost(handle).await,
            };
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
    }
}

/// Where the agent is a child subreaper it adopts the shim (and, if the shim died first, the
/// init): reap them once they are gone, so no zombie outlives the container.
pub(crate) async fn reap_adopted(procs: &ShimState) {
    let deadline = Instant::now() + REAP_TIMEOUT;
    for p in [Some(procs.shim), procs.init].iter().flatten() {
        if !exited(p, deadline.saturating_duration_since(Instant::now())).await {
            tracing::warn!(pid = p.pid, "a container process still runs {REAP_TIMEOUT:?} after its container ended");
        }
    }
    for p in [Some(procs.shim), procs.init].iter().flatten() {
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
        if let Err(e) = write_json_durable(&h.dir.exit(), &status) {
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
