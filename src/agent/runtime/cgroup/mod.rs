//! cgroups for tasks: cpu, memory and pids limits, OOM detection, killing and removal, for cgroup
//! v1 and v2 both.
//!
//! **Detection** (once, at start-up, from the configured root, `/sys/fs/cgroup` by default): if
//! the root itself is a cgroup2 mount (it has `cgroup.controllers`) the host is pure **v2**;
//! otherwise each v1 controller is looked up as a directory under the root (`cpu`, `memory`,
//! `pids`, or a co-mounted `cpu,cpuacct`). A "hybrid" host (v1 controllers plus an empty cgroup2
//! at `unified/`, like the project's test machines) is therefore v1.
//!
//! **Layout**: v1: `ROOT/<controller>/<parent>/<container-id>` in every available controller
//! hierarchy; v2: `ROOT/<parent>/<container-id>` with the controllers enabled down the chain in
//! each ancestor's `cgroup.subtree_control`. `<parent>` is configurable (default `medos`, like
//! Mesos's `mesos`); keep it outside the agent's own cgroup, since v2 forbids processes in a
//! cgroup whose controllers are delegated to children.
//!
//! **Who joins**: the container init moves itself in (writes `0` to `cgroup.procs`) before it
//! creates namespaces, so everything it and the task do is charged to the task. The shim stays
//! outside, so an OOM kill in the task's cgroup can never take out the process that records the
//! exit status.
//!
//! | | v1 | v2 |
//! |---|---|---|
//! | cpu weight | `cpu.shares` = 1024 × cpus | `cpu.weight` (shares mapped to 1..10000) |
//! | cpu cap | `cpu.cfs_quota_us` / `cpu.cfs_period_us` | `cpu.max` = `QUOTA PERIOD` |
//! | memory | `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes`) | `memory.max` (+ `memory.swap.max` = 0) |
//! | OOM seen in | `memory.oom_control` `oom_kill N` | `memory.events` `oom_kill N` |
//! | pids | `pids.max` | `pids.max` |
//! | kill all | SIGKILL every pid in `cgroup.procs` | `cgroup.kill`, else the same |
//!
//! All file access goes through [`CgroupFs`], so the v2 paths are unit-tested against a fake
//! cgroupfs (a temporary directory whose `mkdir`/`rmdir`/writes behave like the kernel's), while v1
//! runs for real on the test machines.

pub mod v1;
pub mod v2;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{Result, RuntimeError};
use super::spec::{ContainerId, Resources};

/// The cgroup file system seen through the few operations the runtime needs.
pub trait CgroupFs: Send + Sync + fmt::Debug {
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` in one `write(2)` to an existing file (cgroup files are never created).
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Creates one directory (a cgroup); `AlreadyExists` if it is there.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes one empty cgroup; `EBUSY` while it has processes or children.
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// Names of the entries of a directory.
    fn list(&self, path: &Path) -> io::Result<Vec<String>>;
}

/// The real cgroup file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostFs;

impl CgroupFs for HostFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(value.as_bytes())
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(path)?.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect()
    }
}

/// cgroup v1 (one hierarchy per controller) or v2 (one unified hierarchy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Where the cgroups live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupConfig {
    /// The cgroup file system root, `/sys/fs/cgroup` on every usual host.
    pub root: PathBuf,
    /// The parent of all task cgroups, relative to the hierarchy root (default `medos`).
    pub parent: String,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig { root: PathBuf::from("/sys/fs/cgroup"), parent: "medos".into() }
    }
}

/// The detected hierarchy: creates task cgroups.
#[derive(Clone, Debug)]
pub struct Cgroups {
    hierarchy: Hierarchy,
    parent: PathBuf,
    fs: Arc<dyn CgroupFs>,
}

#[derive(Clone, Debug)]
enum Hierarchy {
    V1(v1::Controllers),
    V2(v2::Unified),
}

impl Cgroups {
    /// Detects the host's cgroup version under `config.root`.
    pub fn detect(config: &CgroupConfig) -> Result<Self> {
        Self::detect_with(config, Arc::new(HostFs))
    }

    /// Detects the version under `config.root` through `fs` (a fake in tests).
    pub fn detect_with(config: &CgroupConfig, fs: Arc<dyn CgroupFs>) -> Result<Self> {
        let parent = PathBuf::from(&config.parent);
        let safe =
            !config.parent.is_empty() && parent.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(RuntimeError::spec(
                "cgroups.parent",
                format!("{:?} must be a relative path without '..', like \"medos\"", config.parent),
            ));
        }
        let hierarchy = if fs.exists(&config.root.join("cgroup.controllers")) {
            Hierarchy::V2(v2::Unified::detect(&config.root, fs.as_ref())?)
        } else {
            match v1::Controllers::detect(&config.root, fs.as_ref()) {
                Some(controllers) => Hierarchy::V1(controllers),
                None => return Err(RuntimeError::NoCgroups { root: config.root.clone() }),
            }
        };
        let cgroups = Cgroups { hierarchy, parent, fs };
        tracing::debug!(version = ?cgroups.version(), root = %config.root.display(), "detected cgroups");
        Ok(cgroups)
    }

    pub fn version(&self) -> CgroupVersion {
        match self.hierarchy {
            Hierarchy::V1(_) => CgroupVersion::V1,
            Hierarchy::V2(_) => CgroupVersion::V2,
        }
    }

    pub fn fs(&self) -> &dyn CgroupFs {
        self.fs.as_ref()
    }

    /// Creates the task's cgroups and writes its limits. On error nothing is left behind.
    pub fn create(&self, id: &ContainerId, resources: &Resources) -> Result<TaskCgroup> {
        let fs = self.fs.as_ref();
        match &self.hierarchy {
            Hierarchy::V1(c) => c.create(fs, &self.parent, id, resources),
            Hierarchy::V2(u) => u.create(fs, &self.parent, id, resources),
        }
    }

    /// The cgroup a task with this id has (or would have), without touching anything.
    pub fn task(&self, id: &ContainerId) -> TaskCgroup {
        match &self.hierarchy {
            Hierarchy::V1(c) => c.task(&self.parent, id),
            Hierarchy::V2(u) => u.task(&self.parent, id),
        }
    }

    /// Removes the parent cgroup(s) if they are empty (uninstall, tests).
    pub fn remove_parent(&self) -> Result<()> {
        let roots: Vec<PathBuf> = match &self.hierarchy {
            Hierarchy::V1(c) => c.dirs().map(|(_, dir)| dir.to_path_buf()).collect(),
            Hierarchy::V2(u) => vec![u.root().to_path_buf()],
        };
        for root in roots {
            // Deepest first: `a/b/c`, then `a/b`, then `a`.
            let mut rel = self.parent.clone();
            loop {
                match self.fs.rmdir(&root.join(&rel)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(cgroup_err(&root.join(&rel), "remove", e)),
                }
                if !rel.pop() || rel.as_os_str().is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// One controller directory of a task (v2: the single unified directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerDir {
    /// `cpu`, `cpuacct`, `memory`, `pids` (v1), or `unified` (v2).
    pub controller: String,
    pub path: PathBuf,
}

/// A task's cgroups, as recorded in its launch plan so that the shim, the init and a restarted
/// agent all use the same paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCgroup {
    pub version: CgroupVersion,
    pub dirs: Vec<ControllerDir>,
}

impl TaskCgroup {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.iter().find(|d| d.controller == controller || d.controller == "unified").map(|d| d.path.as_path())
    }

    /// Moves process `pid` (`"0"`: the writer itself) into every controller.
    pub fn join(&self, fs: &dyn CgroupFs, pid: &str) -> Result<()> {
        for d in &self.dirs {
            let file = d.path.join("cgroup.procs");
            fs.write(&file, pid).map_err(|e| cgroup_err(&file, "join", e))?;
        }
        Ok(())
    }

    /// Pids in the task's cgroup (from the memory or pids controller on v1).
    pub fn procs(&self, fs: &dyn CgroupFs) -> Result<Vec<i32>> {
        let Some(dir) = ["memory", "pids", "cpu"].iter().find_map(|c| self.dir(c)) else { return Ok(Vec::new()) };
        let file = dir.join("cgroup.procs");
        match fs.read(&file) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(cgroup_err(&file, "read", e)),
        }
    }

    /// Whether the kernel's OOM killer fired in this cgroup.
    pub fn oom_killed(&self, fs: &dyn CgroupFs) -> bool {
        let Some(dir) = self.dir("memory") else { return false };
        match self.version {
            CgroupVersion::V1 => v1::oom_killed(fs, dir),
            CgroupVersion::V2 => v2::oom_killed(fs, dir),
        }
    }

    /// SIGKILLs every process in the cgroup, until it is empty or `timeout` passes.
    pub fn kill_all(&self, fs: &dyn CgroupFs, timeout: Duration) -> Result<()> {
        if self.version == CgroupVersion::V2
            && let Some(dir) = self.dir("unified")
        {
            let file = dir.join("cgroup.kill");
            if fs.exists(&file) {
                fs.write(&file, "1").map_err(|e| cgroup_err(&file, "kill", e))?;
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.procs(fs)?;
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                // ESRCH: it is already gone.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            if Instant::now() >= deadline {
                let path = self.dirs.first().map(|d| d.path.clone()).unwrap_or_default();
                return Err(RuntimeError::Cgroup {
                    path,
                    reason: "processes survive SIGKILL; look for processes stuck in uninterruptible sleep (state D)"
                        .into(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes the task's cgroups, retrying while processes drain and killing what remains
    /// halfway through `timeout`. Blocks; call it off the async threads.
    pub fn remove(&self, fs: &dyn CgroupFs, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut killed = false;
        let mut pause = Duration::from_millis(2);
        for d in &self.dirs {
            loop {
                match fs.rmdir(&d.path) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                        let elapsed = start.elapsed();
                        if elapsed >= timeout {
                            return Err(cgroup_err(&d.path, "remove", e));
                        }
                        if !killed && elapsed >= timeout / 2 {
                            killed = true;
                            let _ = self.kill_all(fs, timeout / 4);
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                    Err(e) => return Err(cgroup_err(&d.path, "remove", e)),
                }
            }
        }
        Ok(())
    }
}

/// v1 `cpu.shares` for a number of CPUs (Mesos: 1024 per CPU, at least 2).
pub fn cpu_shares(cpus: f64) -> u64 {
    ((cpus * 1024.0) as u64).max(2)
}

/// The CFS period in microseconds (the kernel's default, as Mesos uses).
pub const CFS_PERIOD_US: u64 = 100_000;

/// The CFS quota in microseconds per [`CFS_PERIOD_US`] for a number of CPUs (at least 1 ms).
pub fn cfs_quota_us(cpus: f64) -> u64 {
    ((cpus * CFS_PERIOD_US as f64) as u64).max(1_000)
}

/// Creates `base/rel` one component at a time (cgroupfs has no `mkdir -p`).
fn mkdir_all(fs: &dyn CgroupFs, base: &Path, rel: &Path) -> Result<()> {
    let mut path = base.to_path_buf();
    for component in rel.components() {
        path.push(component);
        match fs.mkdir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(cgroup_err(&path, "create", e)),
        }
    }
    Ok(())
}

fn write_file(fs: &dyn CgroupFs, dir: &Path, name: &str, value: &str) -> Result<()> {
    let path = dir.join(name);
    fs.write(&path, value)
        .map_err(|e| RuntimeError::Cgroup { path: path.clone(), reason: format!("cannot write {value:?}: {e}") })
}

fn cgroup_err(path: &Path, action: &str, e: io::Error) -> RuntimeError {
    let hint = match e.raw_os_error() {
        Some(nix::libc::EBUSY) => "; processes are still in it",
        Some(nix::libc::EACCES) | Some(nix::libc::EPERM) | Some(nix::libc::EROFS) => {
            "; the agent must run as root with the cgroup file system writable"
        }
        _ => "",
    };
    RuntimeError::Cgroup { path: path.to_path_buf(), reason: format!("cannot {action}: {e}{hint}") }
}

/// Reads `KEY VALUE` lines (memory.events, memory.oom_control) and returns `KEY`'s value.
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == key).then(|| parts.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_conversions_follow_mesos() {
        for (cpus, shares, quota) in [(1.0, 1024, 100_000), (0.5, 512, 50_000), (0.001, 2, 1_000), (2.5, 2560, 250_000)]
        {
            assert_eq!(cpu_shares(cpus), shares, "shares for {cpus}");
            assert_eq!(cfs_quota_us(cpus), quota, "quota for {cpus}");
        }
    }

    #[test]
    fn keyed_values_are_found_by_exact_key() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(2));
        assert_eq!(keyed_value(text, "oom"), Some(3));
        assert_eq!(keyed_value(text, "missing"), None);
    }

    #[test]
    fn detection_tells_v1_v2_hybrid_and_nothing_apart() {
        let check = |files: &[&str], expect: Option<CgroupVersion>| {
            let root = tempfile::tempdir().unwrap();
            for f in files {
                let path = root.path().join(f);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, if f.ends_with("cgroup.controllers") { "cpu memory pids" } else { "" }).unwrap();
            }
            let config = CgroupConfig { root: root.path().to_path_buf(), parent: "medos".into() };
            let got = Cgroups::detect(&config);
            match expect {
                Some(version) => assert_eq!(got.unwrap().version(), version, "{files:?}"),
                None => assert!(got.unwrap_err().to_string().contains("no cgroup hierarchy"), "{files:?}"),
            }
        };
        check(&["cgroup.controllers", "cgroup.subtree_control", "cgroup.procs"], Some(CgroupVersion::V2));
        check(&["memory/cgroup.procs", "pids/cgroup.procs", "cpu,cpuacct/cgroup.procs"], Some(CgroupVersion::V1));
        // The test machines' hybrid: v1 controllers plus an empty cgroup2 under `unified/`.
        check(&["memory/cgroup.procs", "unified/cgroup.controllers", "unified/cgroup.procs"], Some(CgroupVersion::V1));
        check(&["something/else"], None);
    }

    #[test]
    fn parent_must_stay_inside_the_hierarchy() {
        for parent in ["", "../x", "/abs", "a/../../b"] {
            let config = CgroupConfig { root: "/nonexistent".into(), parent: parent.into() };
            let err = Cgroups::detect(&config).unwrap_err().to_string();
            assert!(err.contains("cgroups.parent"), "{parent}: {err}");
        }
    }
}
