//! cgroup v1: one hierarchy per controller (`/sys/fs/cgroup/memory`, `…/cpu`, …).
//!
//! The task gets a directory `<parent>/<id>` in each of the cpu, cpuacct, memory and pids
//! hierarchies that are mounted (cpuacct only for accounting). A controller that is missing is
//! an error only when the spec asks for its limit. v1 differences that matter here:
//! processes may sit in any cgroup (no "no internal processes" rule), there is no `cgroup.kill`,
//! and the OOM count is the `oom_kill` line of `memory.oom_control` (kernel 4.13+); older kernels
//! only give `memory.failcnt`, a weaker hint (the limit was hit at least once).

use std::path::{Path, PathBuf};

use super::{
    CFS_PERIOD_US, CgroupFs, CgroupVersion, ControllerDir, TaskCgroup, cfs_quota_us, cpu_shares, keyed_value,
    mkdir_all, write_file,
};
use crate::agent::runtime::error::{Result, RuntimeError};
use crate::agent::runtime::spec::{ContainerId, Resources};

/// The controllers the runtime uses, in the order their directories are created.
const CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];

/// The mounted v1 hierarchies: controller name and its mount directory.
#[derive(Clone, Debug)]
pub struct Controllers {
    root: PathBuf,
    dirs: Vec<(&'static str, PathBuf)>,
}

impl Controllers {
    /// Finds each controller's hierarchy under `root`: `root/NAME`, or a co-mounted directory
    /// such as `root/cpu,cpuacct`. `None` if none is mounted.
    pub fn detect(root: &Path, fs: &dyn CgroupFs) -> Option<Self> {
        let entries = fs.list(root).ok()?;
        let mut dirs = Vec::new();
        for controller in CONTROLLERS {
            let direct = root.join(controller);
            let found = if fs.exists(&direct.join("cgroup.procs")) {
                Some(direct)
            } else {
                entries
                    .iter()
                    .filter(|name| name.split(',').any(|part| part == controller))
                    .map(|name| root.join(name))
                    .find(|dir| fs.exists(&dir.join("cgroup.procs")))
            };
            if let Some(dir) = found {
                dirs.push((controller, dir));
            }
        }
        (!dirs.is_empty()).then(|| Controllers { root: root.to_path_buf(), dirs })
    }

    pub(super) fn dirs(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.dirs.iter().map(|(c, d)| (*c, d.as_path()))
    }

    fn mount(&self, controller: &str) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| *c == controller).map(|(_, d)| d.as_path())
    }

    pub(super) fn task(&self, parent: &Path, id: &ContainerId) -> TaskCgroup {
        TaskCgroup {
            version: CgroupVersion::V1,
            dirs: self
                .dirs
                .iter()
                .map(|(c, d)| ControllerDir { controller: c.to_string(), path: d.join(parent).join(id.as_str()) })
                .collect(),
        }
    }

    pub(super) fn create(
        &self,
        fs: &dyn CgroupFs,
        parent: &Path,
        id: &ContainerId,
        resources: &Resources,
    ) -> Result<TaskCgroup> {
        for (controller, wanted) in [
            ("cpu", resources.cpus.is_some()),
            ("memory", resources.memory_bytes.is_some()),
            ("pids", resources.pids_limit.is_some()),
        ] {
            if wanted && self.mount(controller).is_none() {
                return Err(RuntimeError::MissingController { controller, path: self.root.clone() });
            }
        }
        let task = self.task(parent, id);
        let result = (|| {
            for (mount, d) in self.dirs.iter().zip(&task.dirs) {
                mkdir_all(fs, &mount.1, &parent.join(id.as_str()))?;
                debug_assert!(fs.exists(&d.path));
            }
            write_limits(fs, &task, resources)
        })();
        if let Err(e) = result {
            let _ = task.remove(fs, std::time::Duration::from_millis(500));
            return Err(e);
        }
        Ok(task)
    }
}

fn write_limits(fs: &dyn CgroupFs, task: &TaskCgroup, resources: &Resources) -> Result<()> {
    if let (Some(cpus), Some(dir)) = (resources.cpus, task.dir("cpu")) {
        write_file(fs, dir, "cpu.shares", &cpu_shares(cpus).to_string())?;
        write_file(fs, dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        write_file(fs, dir, "cpu.cfs_quota_us", &cfs_quota_us(cpus).to_string())?;
    }
    if let (Some(bytes), Some(dir)) = (resources.memory_bytes, task.dir("memory")) {
        write_file(fs, dir, "memory.limit_in_bytes", &bytes.to_string())?;
        // With swap accounting on, cap memory+swap too, or the task swaps instead of OOMing.
        // memsw must be set after the memory limit (the kernel keeps memsw >= memory).
        if fs.exists(&dir.join("memory.memsw.limit_in_bytes")) {
            write_file(fs, dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
        }
    }
    if let (Some(max), Some(dir)) = (resources.pids_limit, task.dir("pids")) {
        write_file(fs, dir, "pids.max", &max.to_string())?;
    }
    Ok(())
}

/// `oom_kill N` in `memory.oom_control`; on kernels without that line, `memory.failcnt > 0`.
pub(super) fn oom_killed(fs: &dyn CgroupFs, dir: &Path) -> bool {
    if let Ok(text) = fs.read(&dir.join("memory.oom_control"))
        && let Some(kills) = keyed_value(&text, "oom_kill")
    {
        return kills > 0;
    }
    fs.read(&dir.join("memory.failcnt")).ok().and_then(|t| t.trim().parse::<u64>().ok()).is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::runtime::cgroup::{CgroupConfig, Cgroups, HostFs};

    /// The real v1 hierarchies of the test machine: a cgroup is created with limits, a process
    /// joins, and removal waits for it, then kills it, and succeeds.
    #[test]
    fn v1_limits_are_written_and_the_cgroup_removed_for_real() {
        let config = CgroupConfig { parent: format!("medos-test-v1-{}", std::process::id()), ..Default::default() };
        let cgroups = Cgroups::detect(&config).expect("cgroups on the test machine");
        if cgroups.version() != CgroupVersion::V1 {
            // Pure v2 hosts run the v2 code for real through the runtime tests instead.
            return;
        }
        struct Cleanup(Cgroups, TaskCgroup);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = self.1.remove(&HostFs, Duration::from_secs(5));
                let _ = self.0.remove_parent();
            }
        }
        let id = ContainerId::new("limits").unwrap();
        let resources = Resources { cpus: Some(0.5), memory_bytes: Some(64 << 20), pids_limit: Some(42) };
        let task = cgroups.create(&id, &resources).unwrap();
        let guard = Cleanup(cgroups.clone(), task.clone());
        let read = |controller: &str, file: &str| {
            let dir = task.dir(controller).unwrap();
            std::fs::read_to_string(dir.join(file)).unwrap().trim().to_string()
        };
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("pids", "pids.max"), "42");
        assert!(!task.oom_killed(&HostFs));

        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        task.join(&HostFs, &child.id().to_string()).unwrap();
        assert_eq!(task.procs(&HostFs).unwrap(), vec![child.id() as i32]);
        // rmdir is refused while the sleeper lives; remove() kills it halfway and succeeds.
        task.remove(&HostFs, Duration::from_secs(2)).unwrap();
        assert!(child.wait().unwrap().code().is_none(), "the sleeper was killed");
        for d in &task.dirs {
            assert!(!d.path.exists(), "{} is gone", d.path.display());
        }
        drop(guard);
    }

    #[test]
    fn v1_oom_falls_back_to_failcnt_on_old_kernels() {
        let dir = tempfile::tempdir().unwrap();
        let fs = HostFs;
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        assert!(oom_killed(&fs, dir.path()));
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\n").unwrap();
        std::fs::write(dir.path().join("memory.failcnt"), "0\n").unwrap();
        assert!(!oom_killed(&fs, dir.path()));
        std::fs::write(dir.path().join("memory.failcnt"), "3\n").unwrap();
        assert!(oom_killed(&fs, dir.path()));
    }
}
