//! cgroup v2: one unified hierarchy (`/sys/fs/cgroup` with `cgroup.controllers`).
//!
//! v2 differences that shape this code: a controller is usable in a cgroup only if every
//! ancestor lists it in `cgroup.subtree_control`, so `Unified::create` enables cpu, memory and
//! pids level by level from the root down to the parent; a cgroup with enabled children may not
//! hold processes, so the task's own cgroup is a leaf and the parent holds none; CPU weight is
//! `cpu.weight` (1..10000, default 100) instead of shares; the OOM count is `oom_kill` in
//! `memory.events`; and `cgroup.kill` (Linux 5.14+) kills every process at once.
//!
//! The tests below run all of it against a fake cgroupfs: a temporary directory whose `mkdir`
//! creates the control files of the controllers the parent enables, whose `rmdir` refuses while
//! processes remain, and whose `cgroup.subtree_control` refuses controllers the cgroup lacks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{
    CFS_PERIOD_US, CgroupFs, CgroupVersion, ControllerDir, TaskCgroup, cfs_quota_us, cgroup_err, cpu_shares,
    keyed_value, write_file,
};
use crate::agent::runtime::error::{Result, RuntimeError};
use crate::agent::runtime::spec::{ContainerId, Resources};

/// The unified hierarchy and the controllers its root offers.
#[derive(Clone, Debug)]
pub struct Unified {
    root: PathBuf,
    available: BTreeSet<String>,
}

impl Unified {
    pub fn detect(root: &Path, fs: &dyn CgroupFs) -> Result<Self> {
        let file = root.join("cgroup.controllers");
        let text = fs.read(&file).map_err(|e| cgroup_err(&file, "read", e))?;
        Ok(Unified { root: root.to_path_buf(), available: text.split_whitespace().map(str::to_string).collect() })
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn task(&self, parent: &Path, id: &ContainerId) -> TaskCgroup {
        TaskCgroup {
            version: CgroupVersion::V2,
            dirs: vec![ControllerDir { controller: "unified".into(), path: self.root.join(parent).join(id.as_str()) }],
        }
    }

    pub(super) fn create(
        &self,
        fs: &dyn CgroupFs,
        parent: &Path,
        id: &ContainerId,
        resources: &Resources,
    ) -> Result<TaskCgroup> {
        // Required controllers fail the launch when missing; memory and pids are also wanted
        // without limits (OOM detection, process listing) but optional then.
        let required: Vec<&'static str> = [
            ("cpu", resources.cpus.is_some()),
            ("memory", resources.memory_bytes.is_some()),
            ("pids", resources.pids_limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(c, wanted)| wanted.then_some(c))
        .collect();
        let mut wanted: Vec<&'static str> = required.clone();
        for optional in ["memory", "pids"] {
            if !wanted.contains(&optional) && self.available.contains(optional) {
                wanted.push(optional);
            }
        }

        // Enable the controllers in every level from the root down to the parent.
        let mut level = self.root.clone();
        let mut levels = vec![level.clone()];
        for component in parent.components() {
            level.push(component);
            levels.push(level.clone());
        }
        for (depth, dir) in levels.iter().enumerate() {
            if depth > 0 {
                match fs.mkdir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(cgroup_err(dir, "create", e)),
                }
            }
            let offered = fs.read(&dir.join("cgroup.controllers")).unwrap_or_default();
            let offered: BTreeSet<&str> = offered.split_whitespace().collect();
            let mut enabled = Vec::new();
            for controller in &wanted {
                if offered.contains(controller) {
                    enabled.push(*controller);
                } else if required.contains(controller) {
                    return Err(RuntimeError::MissingController { controller, path: dir.clone() });
                }
            }
            wanted = enabled;
            for controller in &wanted {
                write_file(fs, dir, "cgroup.subtree_control", &format!("+{controller}"))?;
            }
        }

        let task = self.task(parent, id);
        let dir = &task.dirs[0].path;
        fs.mkdir(dir).map_err(|e| cgroup_err(dir, "create", e))?;
        if let Err(e) = write_limits(fs, dir, resources) {
            let _ = task.remove(fs, std::time::Duration::from_millis(500));
            return Err(e);
        }
        Ok(task)
    }
}

fn write_limits(fs: &dyn CgroupFs, dir: &Path, resources: &Resources) -> Result<()> {
    if let Some(cpus) = resources.cpus {
        write_file(fs, dir, "cpu.weight", &cpu_weight(cpu_shares(cpus)).to_string())?;
        write_file(fs, dir, "cpu.max", &format!("{} {CFS_PERIOD_US}", cfs_quota_us(cpus)))?;
    }
    if let Some(bytes) = resources.memory_bytes {
        write_file(fs, dir, "memory.max", &bytes.to_string())?;
        // v1's memsw limit counts swap inside the limit; v2 counts swap apart, so forbid it.
        if fs.exists(&dir.join("memory.swap.max")) {
            write_file(fs, dir, "memory.swap.max", "0")?;
        }
    }
    if let Some(max) = resources.pids_limit {
        write_file(fs, dir, "pids.max", &max.to_string())?;
    }
    Ok(())
}

/// Maps v1 shares (2..262144) onto v2 weight (1..10000) so that the defaults meet
/// (1024 → 100), as crun and current runc do.
pub fn cpu_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144) as f64;
    let l = shares.log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    // The small bias keeps float noise (100.00000000000001) from rounding up.
    ((10f64.powf(exponent) - 1e-6).ceil() as u64).clamp(1, 10_000)
}

/// `oom_kill N` in `memory.events`.
pub(super) fn oom_killed(fs: &dyn CgroupFs, dir: &Path) -> bool {
    fs.read(&dir.join("memory.events")).ok().and_then(|t| keyed_value(&t, "oom_kill")).is_some_and(|n| n > 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::agent::runtime::cgroup::{CgroupConfig, Cgroups};

    /// A cgroup2 file system in a temporary directory that behaves like the kernel where the
    /// runtime depends on it, and records every mutation.
    #[derive(Debug)]
    pub(crate) struct FakeCgroupFs {
        pub log: Mutex<Vec<String>>,
    }

    impl FakeCgroupFs {
        /// Makes `root` a cgroup2 root offering `controllers`.
        pub(crate) fn new(root: &Path, controllers: &str) -> Arc<Self> {
            for (name, content) in [
                ("cgroup.controllers", controllers),
                ("cgroup.subtree_control", ""),
                ("cgroup.procs", "1\n"),
                ("cgroup.kill", ""),
            ] {
                std::fs::write(root.join(name), content).unwrap();
            }
            Arc::new(FakeCgroupFs { log: Mutex::new(Vec::new()) })
        }

        fn record(&self, entry: String) {
            self.log.lock().unwrap().push(entry);
        }

        pub(crate) fn logged(&self, needle: &str) -> bool {
            self.log.lock().unwrap().iter().any(|e| e.contains(needle))
        }
    }

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    impl CgroupFs for FakeCgroupFs {
        fn read(&self, path: &Path) -> io::Result<String> {
            std::fs::read_to_string(path)
        }

        fn write(&self, path: &Path, value: &str) -> io::Result<()> {
            if !path.is_file() {
                return Err(errno(nix::libc::ENOENT));
            }
            self.record(format!("write {} {value}", path.display()));
            let dir = path.parent().unwrap();
            match path.file_name().unwrap().to_str().unwrap() {
                "cgroup.subtree_control" => {
                    let offered = std::fs::read_to_string(dir.join("cgroup.controllers"))?;
                    let mut enabled: BTreeSet<String> =
                        std::fs::read_to_string(path)?.split_whitespace().map(str::to_string).collect();
                    for token in value.split_whitespace() {
                        let (op, name) = token.split_at(1);
                        if !offered.split_whitespace().any(|c| c == name) {
                            return Err(errno(nix::libc::ENOENT));
                        }
                        match op {
                            "+" => enabled.insert(name.to_string()),
                            "-" => enabled.remove(name),
                            _ => return Err(errno(nix::libc::EINVAL)),
                        };
                    }
                    std::fs::write(path, enabled.into_iter().collect::<Vec<_>>().join(" "))
                }
                "cgroup.kill" => std::fs::write(dir.join("cgroup.procs"), ""),
                "cgroup.procs" => {
                    let mut procs = std::fs::read_to_string(path)?;
                    procs.push_str(value.trim());
                    procs.push('\n');
                    std::fs::write(path, procs)
                }
                _ => std::fs::write(path, value),
            }
        }

        fn mkdir(&self, path: &Path) -> io::Result<()> {
            let parent = path.parent().unwrap();
            if !parent.join("cgroup.procs").is_file() {
                return Err(errno(nix::libc::ENOENT));
            }
            std::fs::create_dir(path)?;
            self.record(format!("mkdir {}", path.display()));
            let delegated = std::fs::read_to_string(parent.join("cgroup.subtree_control"))?;
            let mut files = vec![
                ("cgroup.controllers", delegated.clone()),
                ("cgroup.subtree_control", String::new()),
                ("cgroup.procs", String::new()),
                ("cgroup.kill", String::new()),
            ];
            for controller in delegated.split_whitespace() {
                match controller {
                    "cpu" => files.extend([("cpu.weight", "100".into()), ("cpu.max", "max 100000".into())]),
                    "memory" => files.extend([
                        ("memory.max", "max".into()),
                        ("memory.swap.max", "max".into()),
                        ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".into()),
                    ]),
                    "pids" => files.extend([("pids.max", "max".into())]),
                    _ => {}
                }
            }
            for (name, content) in files {
                std::fs::write(path.join(name), content)?;
            }
            Ok(())
        }

        fn rmdir(&self, path: &Path) -> io::Result<()> {
            if !path.is_dir() {
                return Err(errno(nix::libc::ENOENT));
            }
            let busy_children = std::fs::read_dir(path)?.any(|e| e.map(|e| e.path().is_dir()).unwrap_or(false));
            let busy_procs = !std::fs::read_to_string(path.join("cgroup.procs"))?.trim().is_empty();
            if busy_children || busy_procs {
                return Err(errno(nix::libc::EBUSY));
            }
            self.record(format!("rmdir {}", path.display()));
            std::fs::remove_dir_all(path)
        }

        fn exists(&self, path: &Path) -> bool {
            path.exists()
        }

        fn list(&self, path: &Path) -> io::Result<Vec<String>> {
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect()
        }
    }

    fn fake(controllers: &str, parent: &str) -> (tempfile::TempDir, Arc<FakeCgroupFs>, Cgroups) {
        let root = tempfile::tempdir().unwrap();
        let fs = FakeCgroupFs::new(root.path(), controllers);
        let config = CgroupConfig { root: root.path().to_path_buf(), parent: parent.into() };
        let cgroups = Cgroups::detect_with(&config, fs.clone()).unwrap();
        assert_eq!(cgroups.version(), CgroupVersion::V2);
        (root, fs, cgroups)
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap().trim().to_string()
    }

    #[test]
    fn v2_create_enables_controllers_down_the_chain_and_writes_limits() {
        let (root, _fs, cgroups) = fake("cpuset cpu io memory hugetlb pids", "medos/agents");
        let id = ContainerId::new("task-1").unwrap();
        let resources = Resources { cpus: Some(1.5), memory_bytes: Some(32 << 20), pids_limit: Some(64) };
        let task = cgroups.create(&id, &resources).unwrap();
        let dir = root.path().join("medos/agents/task-1");
        assert_eq!(task.dirs, vec![ControllerDir { controller: "unified".into(), path: dir.clone() }]);
        for level in ["", "medos", "medos/agents"] {
            assert_eq!(read(&root.path().join(level).join("cgroup.subtree_control")), "cpu memory pids", "{level}");
        }
        assert_eq!(read(&dir.join("cpu.weight")), cpu_weight(1536).to_string());
        assert_eq!(read(&dir.join("cpu.max")), "150000 100000");
        assert_eq!(read(&dir.join("memory.max")), (32u64 << 20).to_string());
        assert_eq!(read(&dir.join("memory.swap.max")), "0");
        assert_eq!(read(&dir.join("pids.max")), "64");
        assert!(!task.oom_killed(cgroups.fs()));
    }

    #[test]
    fn v2_missing_controller_is_a_clear_error_and_leaves_nothing() {
        let (root, _fs, cgroups) = fake("memory pids", "medos");
        let id = ContainerId::new("t").unwrap();
        let err = cgroups.create(&id, &Resources { cpus: Some(1.0), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("`cpu` cgroup controller") && err.contains("subtree_control"), "{err}");
        assert!(!root.path().join("medos/t").exists());
        // Without a cpu limit the same host is fine, and memory is still enabled for OOM checks.
        let task = cgroups.create(&id, &Resources::default()).unwrap();
        assert!(task.dirs[0].path.join("memory.events").exists());
        assert!(!task.dirs[0].path.join("cpu.max").exists());
    }

    #[test]
    fn v2_oom_kill_is_read_from_memory_events() {
        let (_root, fs, cgroups) = fake("cpu memory pids", "medos");
        let task = cgroups.create(&ContainerId::new("oom").unwrap(), &Resources::default()).unwrap();
        assert!(!task.oom_killed(fs.as_ref()));
        let events = task.dirs[0].path.join("memory.events");
        std::fs::write(&events, "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert!(task.oom_killed(fs.as_ref()));
    }

    #[test]
    fn v2_remove_retries_while_processes_drain() {
        let (_root, fs, cgroups) = fake("cpu memory pids", "medos");
        let task = cgroups.create(&ContainerId::new("drain").unwrap(), &Resources::default()).unwrap();
        let procs = task.dirs[0].path.join("cgroup.procs");
        std::fs::write(&procs, "4242\n").unwrap();
        // The "process" exits by itself 50 ms later; removal must wait for it, not kill it.
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(&procs, "").unwrap();
        });
        task.remove(fs.as_ref(), Duration::from_secs(10)).unwrap();
        drain.join().unwrap();
        assert!(!task.dirs[0].path.exists());
        assert!(!fs.logged("cgroup.kill"), "no kill was needed");
        cgroups.remove_parent().unwrap();
        assert!(!_root.path().join("medos").exists());
    }

    #[test]
    fn v2_remove_kills_stragglers_with_cgroup_kill() {
        let (_root, fs, cgroups) = fake("cpu memory pids", "medos");
        let task = cgroups.create(&ContainerId::new("stuck").unwrap(), &Resources::default()).unwrap();
        std::fs::write(task.dirs[0].path.join("cgroup.procs"), "4242\n").unwrap();
        task.remove(fs.as_ref(), Duration::from_millis(400)).unwrap();
        assert!(fs.logged("cgroup.kill 1"), "{:?}", fs.log.lock().unwrap());
        assert!(!task.dirs[0].path.exists());
    }

    #[test]
    fn v2_join_writes_the_pid_to_cgroup_procs() {
        let (_root, fs, cgroups) = fake("memory pids", "medos");
        let task = cgroups.create(&ContainerId::new("join").unwrap(), &Resources::default()).unwrap();
        task.join(fs.as_ref(), "0").unwrap();
        assert!(fs.logged("join/cgroup.procs 0"));
    }

    #[test]
    fn cpu_weight_meets_the_defaults() {
        for (shares, weight) in [(2, 1), (1024, 100), (262_144, 10_000), (512, 59), (2048, 174), (1, 1)] {
            assert_eq!(cpu_weight(shares), weight, "shares {shares}");
        }
    }
}
