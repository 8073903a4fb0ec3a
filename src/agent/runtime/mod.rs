//! The container runtime: runs tasks in Linux namespaces and cgroups, keeps them running across
//! agent restarts, and reports how they end. medos's counterpart of Mesos's Universal Container
//! Runtime, written on `nix` without `unsafe`.
//!
//! # Bird's-eye view
//!
//! The agent talks to a [`ContainerRuntime`]: [`LinuxRuntime`] for real, [`RecordingRuntime`]
//! (a recording fake) in the agent's tests. For each task the Linux runtime starts this process
//! tree, re-executing its own binary for every stage ([`init`] explains why and how):
//!
//! ```text
//! agent ──spawn──▶ shim (own session; outlives the agent; outside the task's cgroups)
//!                   └─▶ init = PID 1 of a new pid namespace; own mount/uts/ipc namespaces;
//!                        │   moved into the task's cgroups by the shim; rootfs; dropped to
//!                        │   the task's user
//!                        └─▶ task command (own process group; stdout/stderr → FIFOs → shim
//!                             → rotated files in the sandbox)
//! agent ──exec───▶ exec helper (joins the cgroups and the ipc/uts/net/cgroup/pid namespaces)
//!                   └─▶ exec-enter, born in the task's pid namespace: own session and terminal,
//!                        joins the mount namespace, becomes the command (`exec`)
//! ```
//!
//! Everything a restarted agent needs is on disk in the runtime state directory
//! ([`state`] shows the layout): the launch plan, the pids (with start times) of shim, init and
//! task, and, once the task ended, its exit status written by the shim. **Recovery**
//! ([`recover`]) reads those files: a container with `exit.json` has ended (even if it ended
//! while no agent ran); one whose shim still runs is re-attached and watched; one whose shim
//! died without writing a status is reported as ended with an unknown status and its leftovers
//! are killed. Exits are observed through a pidfd of the shim (polling its `/proc` entry on
//! kernels without pidfds); see [`watch`].
//!
//! **Start-up cost.** A launch re-executes the binary three times (`spawn`, `shim`, `init`,
//! 1 to 2 ms each; `main` routes these stages before parsing the command line) and waits for
//! no timer: stages talk over pipes and sockets, the cgroup migration of the init overlaps its
//! setup ([`shim`]), only `exit.json` is fsynced ([`state`]), and exits are seen through
//! pidfds. `benches/containers.sh` compares launch + wait + destroy with runc and crun.
//!
//! **Architecture invariants**: the agent never is the parent of a shim, so its death never
//! kills or orphans-unreaped a task; the shim writes `exit.json` exactly once, atomically, and
//! nothing else writes it except the agent when the shim is provably dead without one; no mount
//! made for a container is visible on the host; every pid stored on disk is paired with its
//! start time.
//!
//! # Code map
//! - [`spec`], [`status`], [`error`]: the data the agent sends and receives.
//! - [`LinuxRuntime`] ([`linux`]) with one file per verb: [`launch`], [`kill`], [`exec`],
//!   [`recover`], [`destroy`], and [`watch`] for observing exits.
//! - The other processes: [`init`] (entry and stage protocol), [`shim`], [`pid1`] (the
//!   container init), [`rootfs`], [`nsenter`] (the exec helper), [`logs`].
//! - [`cgroup`] with [`cgroup::v1`] and [`cgroup::v2`]; [`user`], [`procfs`], [`plan`], [`state`].
//! - [`fake`]: the recording fake.
//!
//! The agent's systemd unit needs `KillMode=process` (as Mesos's does) so that restarting the
//! agent does not kill the shims that share its unit's cgroup, and, on cgroup v2, `Delegate=yes`.

pub mod cgroup;
pub mod destroy;
pub mod error;
pub mod exec;
pub mod fake;
pub mod init;
pub mod kill;
pub mod launch;
pub mod linux;
pub mod logs;
pub mod nsenter;
pub mod pid1;
pub mod plan;
pub mod procfs;
pub mod recover;
pub mod rootfs;
pub mod shim;
pub mod spec;
pub mod state;
pub mod status;
pub mod user;
pub mod watch;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use cgroup::{CgroupConfig, CgroupVersion};
pub use error::RuntimeError;
pub use exec::ExecProcess;
pub use fake::{RecordingRuntime, RuntimeCall};
pub use init::InitProgram;
pub use linux::{LinuxRuntime, RuntimeConfig};
pub use nix::sys::signal::Signal;
pub use spec::{
    CommandSpec, ContainerId, ContainerSpec, ExecSpec, LogPolicy, Network, Resources, Rlimit, RlimitResource,
    RootfsSpec, TtySize,
};
pub use status::{Container, ContainerState, ExitStatus, Termination};

/// A boxed, sendable future (keeps [`ContainerRuntime`] usable as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the agent needs from a container runtime.
pub trait ContainerRuntime: Send + Sync {
    /// Starts a task. Returns once it runs (its command was executed) or failed to start.
    fn launch(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Container, RuntimeError>>;

    /// After an agent restart: re-attaches to every container in the state directory, running
    /// or ended (ended ones keep their exit status until [`destroy`](Self::destroy)). Call it
    /// once at start-up, before the first launch: a directory whose launch is still in progress
    /// would look abandoned and be removed.
    fn recover(&self) -> BoxFuture<'_, Result<Vec<Container>, RuntimeError>>;

    /// The containers this runtime knows.
    fn list(&self) -> Vec<Container>;

    /// One container's current state.
    fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError>;

    /// Resolves when the task has ended.
    fn wait<'a>(&'a self, id: &'a ContainerId) -> BoxFuture<'a, Result<ExitStatus, RuntimeError>>;

    /// Sends a signal to the task's process group (SIGKILL: to the whole container).
    fn signal(&self, id: &ContainerId, signal: Signal) -> Result<(), RuntimeError>;

    /// SIGTERM, then SIGKILL once `grace` has passed; resolves with the exit status.
    fn kill<'a>(&'a self, id: &'a ContainerId, grace: Duration) -> BoxFuture<'a, Result<ExitStatus, RuntimeError>>;

    /// Kills the container if needed, removes its cgroups, mounts and state. Forgets it.
    fn destroy<'a>(&'a self, id: &'a ContainerId) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Runs a process inside a running container's namespaces and cgroups.
    fn exec<'a>(&'a self, id: &'a ContainerId, spec: ExecSpec) -> BoxFuture<'a, Result<ExecProcess, RuntimeError>>;
}
