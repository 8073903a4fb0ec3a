//! Launching a task.
//!
//! In the agent: validate the spec, claim the container's state directory (creating it is the
//! lock against a second launch of the same id), resolve the user, prepare the sandbox and the
//! overlay directories, create the cgroups with their limits, write the launch plan, then start
//! the `spawn` stage with a pipe on its stdout and wait for the shim's one report. Everything
//! that can fail before the command runs (a bad user, a missing controller, an overlay that does
//! not mount, a command that cannot be executed) fails the launch with a clear error and leaves
//! nothing behind; after that, failures are exit statuses.

use std::fs::File;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;

use super::cgroup::{Cgroups, TaskCgroup};
use super::error::{Result, RuntimeError};
use super::init::next_report;
use super::linux::{Handle, Inner};
use super::plan::LaunchPlan;
use super::shim::ShimReport;
use super::spec::ContainerSpec;
use super::state::{ContainerDir, ShimState, read_json, write_json_atomic};
use super::status::Container;
use super::{user, watch};

pub(crate) async fn launch(inner: &Arc<Inner>, spec: ContainerSpec) -> Result<Container> {
    spec.validate()?;
    let dir = ContainerDir::new(&inner.config.state_dir, &spec.id);
    if inner.containers.lock().unwrap().contains_key(&spec.id) {
        return Err(RuntimeError::AlreadyExists { id: spec.id.clone(), dir: dir.path.clone() });
    }
    match std::fs::create_dir(&dir.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists { id: spec.id.clone(), dir: dir.path.clone() });
        }
        Err(e) => return Err(RuntimeError::io("create the container directory", &dir.path, e)),
    }
    let mut cleanup = Cleanup { dir: Some(dir.clone()), cgroup: None, cgroups: inner.cgroups.clone() };

    let user = spec.user.as_deref().map(|u| user::resolve(u, spec.rootfs.as_ref())).transpose()?;
    prepare_directories(&spec, &dir, user.as_ref())?;
    let cgroups = inner.cgroups.clone();
    let (id, resources) = (spec.id.clone(), spec.resources.clone());
    let cgroup = tokio::task::spawn_blocking(move || cgroups.create(&id, &resources))
        .await
        .map_err(|e| RuntimeError::Cgroup { path: Default::default(), reason: e.to_string() })??;
    cleanup.cgroup = Some(cgroup.clone());
    let plan = LaunchPlan::build(&spec, &dir, inner.config.init.clone(), user, cgroup);
    write_json_atomic(&dir.plan(), &plan)?;

    let shim_log = File::create(dir.shim_log()).map_err(|e| RuntimeError::io("create", dir.shim_log(), e))?;
    let mut command = tokio::process::Command::from(plan.init.command("spawn", &[dir.path.as_path()]));
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(shim_log);
    let mut spawner = command.spawn().map_err(|e| RuntimeError::LaunchFailed {
        id: spec.id.clone(),
        message: format!("cannot start the shim ({:?}): {e}", plan.init),
    })?;
    let Some(stdout) = spawner.stdout.take() else { unreachable!("stdout is piped") };
    let mut reader = BufReader::new(stdout);
    let report = tokio::time::timeout(inner.config.launch_timeout, next_report::<ShimReport>(&mut reader)).await;
    // `spawn` exits as soon as the shim started; reap it.
    let _ = spawner.wait().await;

    if matches!(report, Ok(Some(ShimReport::Failed { .. }) | None))
        && let Ok(Some(state)) = read_json::<ShimState>(&dir.state())
    {
        // A failed shim exits at once; reap it if this agent adopted it.
        watch::reap_adopted(&state).await;
    }
    let state = match report {
        Ok(Some(ShimReport::Started { state })) => state,
        Ok(Some(ShimReport::Failed { message })) => {
            return Err(RuntimeError::LaunchFailed { id: spec.id.clone(), message });
        }
        Ok(None) => {
            return Err(RuntimeError::LaunchFailed {
                id: spec.id.clone(),
                message: format!("the shim exited without a report; its log says: {}", tail(&dir.shim_log())),
            });
        }
        Err(_) => {
            // Stop whatever started; the cleanup below removes the rest.
            if let Ok(Some(state)) = read_json::<ShimState>(&dir.state()) {
                for p in [state.init, Some(state.shim)].into_iter().flatten() {
                    let _ = p.signal(nix::sys::signal::Signal::SIGKILL);
                }
                watch::reap_adopted(&state).await;
            }
            return Err(RuntimeError::Timeout {
                id: spec.id.clone(),
                what: "the container to start",
                seconds: inner.config.launch_timeout.as_secs_f64(),
            });
        }
    };
    cleanup.disarm();

    let handle = Handle::new(dir, plan, Some(state), None);
    let container = handle.snapshot();
    inner.containers.lock().unwrap().insert(spec.id.clone(), handle.clone());
    watch::spawn(inner, handle, Some(reader));
    tracing::debug!(container = %spec.id, task = %spec.task_id, pid = ?container.task_pid, "container started");
    Ok(container)
}

/// The sandbox belongs to the task's user (Mesos chowns it too); overlay dirs must exist.
fn prepare_directories(spec: &ContainerSpec, dir: &ContainerDir, user: Option<&user::Credentials>) -> Result<()> {
    if let Some(user) = user {
        nix::unistd::chown(
            &spec.sandbox,
            Some(nix::unistd::Uid::from_raw(user.uid)),
            Some(nix::unistd::Gid::from_raw(user.gid)),
        )
        .map_err(|e| RuntimeError::sys(format!("give the sandbox {} to `{}`", spec.sandbox.display(), user.name), e))?;
    }
    if let Some(rootfs) = &spec.rootfs {
        for path in [&rootfs.upper_dir, &rootfs.work_dir, &dir.rootfs()] {
            std::fs::create_dir_all(path).map_err(|e| RuntimeError::io("create directory", path, e))?;
        }
    }
    Ok(())
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(1000);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    let tail = text[start..].trim();
    if tail.is_empty() { "(empty)".into() } else { tail.to_string() }
}

/// Undoes a failed launch: removes the cgroups and the state directory.
struct Cleanup {
    dir: Option<ContainerDir>,
    cgroup: Option<TaskCgroup>,
    cgroups: Cgroups,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cgroup) = self.cgroup.take()
            && let Err(e) = cgroup.remove(self.cgroups.fs(), Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "cannot remove the cgroup of a failed launch");
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = std::fs::remove_dir_all(&dir.path)
        {
            tracing::warn!(dir = %dir.path.display(), error = %e, "cannot remove the state of a failed launch");
        }
    }
}
