//! What the runtime reports about a container: its state and, once it ended, its exit status.
//!
//! The exit status is written by the container's shim into the runtime state directory
//! (`exit.json`), so it outlives the agent: a restarted agent reads the same bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::spec::ContainerId;

/// How the task's main process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Termination {
    /// It called `exit(code)`.
    Exited { code: i32 },
    /// A signal killed it (9 for SIGKILL, also after an OOM kill or a kill's grace period).
    Signaled { signal: i32 },
    /// The runtime could not learn it, e.g. the shim itself was killed; `reason` says why.
    Unknown { reason: String },
}

/// The end of a container's task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub termination: Termination,
    /// The kernel's OOM killer fired in the container's memory cgroup.
    pub oom_killed: bool,
    /// A kill was requested through the runtime before the task ended (Mesos: `TASK_KILLED`).
    pub kill_requested: bool,
    /// When the shim recorded the end, in milliseconds since the Unix epoch.
    pub finished_at_unix_ms: u64,
}

impl ExitStatus {
    pub(crate) fn new(termination: Termination) -> Self {
        ExitStatus { termination, oom_killed: false, kill_requested: false, finished_at_unix_ms: unix_ms_now() }
    }

    /// The exit code, if the process exited by itself.
    pub fn code(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited { code } => Some(code),
            _ => None,
        }
    }

    /// The killing signal, if a signal ended the process.
    pub fn signal(&self) -> Option<i32> {
        match self.termination {
            Termination::Signaled { signal } => Some(signal),
            _ => None,
        }
    }

    /// Exit code 0 and no OOM kill.
    pub fn success(&self) -> bool {
        self.code() == Some(0) && !self.oom_killed
    }

    /// A shell-style code: the exit code, or 128 + signal, or 255 when unknown.
    pub fn shell_code(&self) -> i32 {
        match self.termination {
            Termination::Exited { code } => code,
            Termination::Signaled { signal } => 128 + signal,
            Termination::Unknown { .. } => 255,
        }
    }
}

/// Whether a container still runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    Exited(ExitStatus),
}

/// A container as the runtime knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub task_id: String,
    /// Host pid of the container's init (PID 1 in its pid namespace), while known.
    pub init_pid: Option<u32>,
    /// Host pid of the task's main process, while known.
    pub task_pid: Option<u32>,
    pub state: ContainerState,
}

pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}
