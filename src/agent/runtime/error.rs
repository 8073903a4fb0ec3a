//! The runtime's one error type.
//!
//! Every message is lower-case, names the offending field, path or container, and says what to do.
//! Errors that happen inside the shim or the container init (other processes) travel back to the
//! agent as their `Display` text and come out as [`RuntimeError::LaunchFailed`] or
//! [`RuntimeError::ExecFailed`].

use std::path::PathBuf;

use super::spec::ContainerId;

/// Everything that can go wrong in the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A field of a container or exec spec is unusable.
    #[error("invalid container spec: `{field}` {reason}")]
    InvalidSpec { field: &'static str, reason: String },

    /// The user named in a spec has no passwd entry.
    #[error("unknown user `{user}`: no entry in {}; add the user to the image (or the host) or run the task as another user", passwd.display())]
    UnknownUser { user: String, passwd: PathBuf },

    /// No container with this id is known to this runtime.
    #[error("unknown container `{id}`: it was never launched here or was already destroyed")]
    UnknownContainer { id: ContainerId },

    /// A container with this id already has a state directory.
    #[error("container `{id}` already exists in {}; destroy it first or pick a new container id", dir.display())]
    AlreadyExists { id: ContainerId, dir: PathBuf },

    /// The operation needs a running container.
    #[error("container `{id}` is not running any more; read its exit status with wait() instead")]
    NotRunning { id: ContainerId },

    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A system call failed.
    #[error("cannot {action}: {source}")]
    Sys {
        action: String,
        #[source]
        source: nix::Error,
    },

    /// No usable cgroup hierarchy was found.
    #[error("no cgroup hierarchy found under {}: mount cgroup2 there (or the v1 controllers cpu, memory, pids in subdirectories), or configure the cgroup root", root.display())]
    NoCgroups { root: PathBuf },

    /// A limit was asked for but its controller is not available.
    #[error("the `{controller}` cgroup controller is not available under {}; enable it (cgroup v2: list it in the parent's cgroup.subtree_control; v1: mount it) or drop the {controller} limit from the spec", path.display())]
    MissingController { controller: &'static str, path: PathBuf },

    /// A cgroup could not be written, read or removed.
    #[error("cgroup {}: {reason}", path.display())]
    Cgroup { path: PathBuf, reason: String },

    /// The container did not start; the message comes from the shim or the container init.
    #[error("container `{id}` failed to start: {message}")]
    LaunchFailed { id: ContainerId, message: String },

    /// A process could not be started inside a container.
    #[error("exec in container `{id}` failed: {message}")]
    ExecFailed { id: ContainerId, message: String },

    /// A runtime state file is unreadable.
    #[error("corrupt runtime state {}: {reason}; if the container is gone, remove its directory", path.display())]
    CorruptState { path: PathBuf, reason: String },

    /// Something did not happen in time.
    #[error("container `{id}`: timed out after {seconds:.1}s waiting for {what}")]
    Timeout { id: ContainerId, what: &'static str, seconds: f64 },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RuntimeError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { action, path: path.into(), source }
    }

    pub(crate) fn sys(action: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys { action: action.into(), source }
    }

    pub(crate) fn spec(field: &'static str, reason: impl Into<String>) -> Self {
        RuntimeError::InvalidSpec { field, reason: reason.into() }
    }
}
