//! The launch plan: everything the shim and the container init need, resolved by the agent.
//!
//! The agent turns a [`ContainerSpec`] into a `LaunchPlan` (user looked up, cgroups created,
//! argv and environment final) and writes it as `config.json` before it starts the shim. The
//! shim, the container init and later exec helpers are other processes (and possibly other
//! versions of the binary after an upgrade), so this file is their whole contract: it carries a
//! format `version`, and nothing in it depends on the agent's memory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroup::TaskCgroup;
use super::error::{Result, RuntimeError};
use super::init::InitProgram;
use super::spec::{ContainerId, ContainerSpec, LogPolicy, Network, Rlimit, RootfsSpec};
use super::state::{ContainerDir, read_json};
use super::user::Credentials;

/// Where the sandbox appears inside an image rootfs (Mesos's path).
pub const SANDBOX_IN_IMAGE: &str = "/mnt/mesos/sandbox";

/// `PATH` for tasks that do not set one (Mesos's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The plan format written by this version.
pub(crate) const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct LaunchPlan {
    pub version: u32,
    pub id: ContainerId,
    pub task_id: String,
    /// How the shim re-executes itself for the next stage.
    pub init: InitProgram,
    pub program: String,
    pub argv0: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory as the task sees it.
    pub cwd: PathBuf,
    pub user: Option<Credentials>,
    pub hostname: Option<String>,
    /// The sandbox on the host.
    pub sandbox: PathBuf,
    pub logs: LogPolicy,
    pub rootfs: Option<RootfsPlan>,
    /// A task on the host file system: bound read-only over its `/etc/resolv.conf` (the
    /// cluster DNS), when it is not the host's own.
    #[serde(default)]
    pub host_resolv_conf: Option<PathBuf>,
    pub network: Network,
    pub rlimits: Vec<Rlimit>,
    pub cgroup: TaskCgroup,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RootfsPlan {
    pub layers: Vec<PathBuf>,
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    pub mountpoint: PathBuf,
    pub resolv_conf: PathBuf,
    pub hosts_file: PathBuf,
}

impl RootfsPlan {
    pub fn spec(&self) -> RootfsSpec {
        RootfsSpec { layers: self.layers.clone(), upper_dir: self.upper_dir.clone(), work_dir: self.work_dir.clone() }
    }
}

/// The host's resolver configuration (a host task keeps it unless the agent gives another).
pub(crate) const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

impl LaunchPlan {
    pub fn build(
        spec: &ContainerSpec,
        dir: &ContainerDir,
        init: InitProgram,
        user: Option<Credentials>,
        cgroup: TaskCgroup,
    ) -> Self {
        let (program, argv0, args) = spec.command.program();
        let cwd = match spec.rootfs {
            Some(_) => PathBuf::from(SANDBOX_IN_IMAGE),
            None => spec.sandbox.clone(),
        };
        let mut env = merge_env(&[], &spec.env);
        set_default(&mut env, "MESOS_TASK_ID", &spec.task_id);
        set_default(&mut env, "PATH", DEFAULT_PATH);
        env = merge_env(&env, &[("MESOS_SANDBOX".into(), cwd.to_string_lossy().into_owned())]);
        LaunchPlan {
            version: PLAN_VERSION,
            id: spec.id.clone(),
            task_id: spec.task_id.clone(),
            init,
            program,
            argv0,
            args,
            env,
            cwd,
            user,
            hostname: spec.hostname.clone(),
            sandbox: spec.sandbox.clone(),
            logs: spec.logs,
            rootfs: spec.rootfs.as_ref().map(|r| RootfsPlan {
                layers: r.layers.clone(),
                upper_dir: r.upper_dir.clone(),
                work_dir: r.work_dir.clone(),
                mountpoint: dir.rootfs(),
                resolv_conf: spec.resolv_conf.clone(),
                hosts_file: spec.hosts_file.clone(),
            }),
            host_resolv_conf: (spec.rootfs.is_none() && spec.resolv_conf != Path::new(HOST_RESOLV_CONF))
                .then(|| spec.resolv_conf.clone()),
            network: spec.network.clone(),
            rlimits: spec.rlimits.clone(),
            cgroup,
        }
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = ContainerDir::at(dir).plan();
        let plan: LaunchPlan = read_json(&path)?.ok_or_else(|| RuntimeError::CorruptState {
            path: path.clone(),
            reason: "the launch plan is missing".into(),
        })?;
        if plan.version != PLAN_VERSION {
            return Err(RuntimeError::CorruptState {
                path,
                reason: format!(
                    "plan version {} is not {PLAN_VERSION}; it was written by another medos version",
                    plan.version
                ),
            });
        }
        Ok(plan)
    }
}

/// `base` with `overrides` applied: one entry per name, overridden values in place, new names
/// appended in order.
pub(crate) fn merge_env(base: &[(String, String)], overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(base.len() + overrides.len());
    for (key, value) in base.iter().chain(overrides) {
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => out.push((key.clone(), value.clone())),
        }
    }
    out
}

fn set_default(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    if !env.iter().any(|(k, _)| k == key) {
        env.push((key.to_string(), value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::runtime::cgroup::CgroupVersion;
    use crate::agent::runtime::spec::CommandSpec;

    fn plan_for(spec: &ContainerSpec) -> LaunchPlan {
        let dir = ContainerDir::at("/state/containers/c");
        let cgroup = TaskCgroup { version: CgroupVersion::V2, dirs: vec![] };
        LaunchPlan::build(spec, &dir, InitProgram::current_binary(), None, cgroup)
    }

    fn env_of(plan: &LaunchPlan) -> Vec<String> {
        plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn host_tasks_run_in_the_host_sandbox_path() {
        let mut spec = ContainerSpec::new(ContainerId::new("c").unwrap(), "web.1", CommandSpec::shell("x"), "/sb");
        spec.env = vec![("A".into(), "1".into()), ("MESOS_SANDBOX".into(), "/wrong".into()), ("A".into(), "2".into())];
        let plan = plan_for(&spec);
        assert_eq!(plan.cwd, PathBuf::from("/sb"));
        assert_eq!(env_of(&plan), ["A=2", "MESOS_SANDBOX=/sb", "MESOS_TASK_ID=web.1", &format!("PATH={DEFAULT_PATH}")]);
        assert_eq!((plan.program.as_str(), plan.argv0.as_str()), ("/bin/sh", "sh"));
    }

    #[test]
    fn image_tasks_see_the_sandbox_at_the_mesos_path() {
        let mut spec = ContainerSpec::new(ContainerId::new("c").unwrap(), "t", CommandSpec::argv(["ls"]), "/sb");
        spec.env = vec![("PATH".into(), "/bin".into()), ("MESOS_TASK_ID".into(), "custom".into())];
        spec.rootfs = Some(RootfsSpec { layers: vec!["/l".into()], upper_dir: "/u".into(), work_dir: "/w".into() });
        let plan = plan_for(&spec);
        assert_eq!(plan.cwd, PathBuf::from(SANDBOX_IN_IMAGE));
        assert_eq!(env_of(&plan), ["PATH=/bin", "MESOS_TASK_ID=custom", "MESOS_SANDBOX=/mnt/mesos/sandbox"]);
        assert_eq!(plan.rootfs.unwrap().mountpoint, PathBuf::from("/state/containers/c/rootfs"));
    }

    #[test]
    fn host_tasks_get_another_resolv_conf_bound_over_the_hosts() {
        let mut spec = ContainerSpec::new(ContainerId::new("c").unwrap(), "t", CommandSpec::shell("x"), "/sb");
        assert_eq!(plan_for(&spec).host_resolv_conf, None, "the host's own stays as it is");
        spec.resolv_conf = "/work/resolv.conf".into();
        assert_eq!(plan_for(&spec).host_resolv_conf, Some(PathBuf::from("/work/resolv.conf")));
        spec.rootfs = Some(RootfsSpec { layers: vec!["/l".into()], upper_dir: "/u".into(), work_dir: "/w".into() });
        let plan = plan_for(&spec);
        assert_eq!(plan.host_resolv_conf, None, "an image task binds it inside its root instead");
        assert_eq!(plan.rootfs.unwrap().resolv_conf, PathBuf::from("/work/resolv.conf"));
    }
}
