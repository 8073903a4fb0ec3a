//! What the agent asks the runtime to run: [`ContainerSpec`] for a task, [`ExecSpec`] for a
//! process inside a running task.
//!
//! The shapes follow Mesos: [`CommandSpec`] is a `CommandInfo` (`shell: true` runs
//! `/bin/sh -c VALUE`; otherwise `VALUE` is the executable and `arguments` is the whole argv,
//! `arguments[0]` included, as with `execlp(value, arguments[0], arguments[1], …)`). Resources are
//! the task's `cpus`, `mem` (here in bytes) and a pids limit. Specs are plain serde data so that
//! the agent can checkpoint them with its own state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Result, RuntimeError};

/// Identifies a container on this agent; also the name of its state directory and cgroup.
///
/// 1 to 128 characters from `A-Z a-z 0-9 . _ -`, not starting with `.` (so it is always one
/// safe path component).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks and wraps an id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.len() > 128 || id.starts_with('.') || !id.chars().all(valid_char) {
            return Err(RuntimeError::spec(
                "id",
                format!(
                    "{id:?} is not a container id: use 1-128 characters from A-Z a-z 0-9 . _ -, not starting with '.'"
                ),
            ));
        }
        Ok(ContainerId(id))
    }

    /// A fresh random id (32 hex digits), as Mesos uses UUIDs.
    pub fn random() -> Self {
        ContainerId(hex::encode(rand::random::<[u8; 16]>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContainerId {
    type Error = RuntimeError;
    fn try_from(value: String) -> Result<Self> {
        ContainerId::new(value)
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Mesos `CommandInfo`: what to execute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// `true`: run `/bin/sh -c VALUE`. `false`: execute `value` directly.
    pub shell: bool,
    /// The shell command line, or the executable (a path, or a name looked up in `PATH`).
    pub value: String,
    /// With `shell: false`, the full argv including `argv[0]`; empty means `[value]`.
    /// Ignored with `shell: true`.
    #[serde(default)]
    pub arguments: Vec<String>,
}

impl CommandSpec {
    /// `/bin/sh -c LINE`.
    pub fn shell(line: impl Into<String>) -> Self {
        CommandSpec { shell: true, value: line.into(), arguments: Vec::new() }
    }

    /// Executes `argv[0]` with `argv` as its arguments (`argv[0]` included).
    pub fn argv<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        let arguments: Vec<String> = argv.into_iter().map(Into::into).collect();
        CommandSpec { shell: false, value: arguments.first().cloned().unwrap_or_default(), arguments }
    }

    /// The program to execute, `argv[0]` and the remaining arguments.
    pub(crate) fn program(&self) -> (String, String, Vec<String>) {
        if self.shell {
            ("/bin/sh".into(), "sh".into(), vec!["-c".into(), self.value.clone()])
        } else {
            match self.arguments.split_first() {
                Some((argv0, rest)) => (self.value.clone(), argv0.clone(), rest.to_vec()),
                None => (self.value.clone(), self.value.clone(), Vec::new()),
            }
        }
    }

    pub(crate) fn validate(&self, field: &'static str) -> Result<()> {
        if self.value.is_empty() {
            return Err(RuntimeError::spec(field, "is empty: give a shell command line or an executable"));
        }
        if self.value.contains('\0') || self.arguments.iter().any(|a| a.contains('\0')) {
            return Err(RuntimeError::spec(field, "contains a NUL byte"));
        }
        Ok(())
    }
}

/// Resource limits, enforced with cgroups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU share: `cpu.shares = 1024 * cpus` (v1) or the matching `cpu.weight` (v2), and a CFS
    /// quota of `cpus` CPUs per 100 ms period.
    pub cpus: Option<f64>,
    /// Memory limit in bytes (swap included where the kernel accounts it); exceeding it OOM-kills.
    pub memory_bytes: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids_limit: Option<u64>,
}

/// An image root filesystem: already unpacked read-only layers plus a writable layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootfsSpec {
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// The task's writable layer (overlayfs upperdir); created if missing. Writes land here.
    pub upper_dir: PathBuf,
    /// overlayfs workdir: an empty directory on the same file system as `upper_dir`.
    pub work_dir: PathBuf,
}

/// How stdout and stderr files in the sandbox are bounded.
///
/// The shim keeps `NAME`, `NAME.1` … `NAME.{max_files-1}` (newest first), each at most
/// `max_file_bytes`, so one stream never takes more than `max_file_bytes * max_files` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPolicy {
    pub max_file_bytes: u64,
    pub max_files: u32,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy { max_file_bytes: 10 << 20, max_files: 5 }
    }
}

/// The task's network namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Network {
    /// The host's network stack (Mesos's default for command tasks).
    #[default]
    Host,
    /// Join an existing network namespace, e.g. `/run/netns/NAME` prepared by a CNI-like step.
    /// This is how a private network per task plugs in later.
    Join { path: PathBuf },
}

/// A resource limit set with `setrlimit` before the command starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// The rlimits a task may set. Raising a hard limit needs `CAP_SYS_RESOURCE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RlimitResource {
    Nofile,
    Nproc,
    Core,
    Stack,
}

/// Everything needed to launch one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: ContainerId,
    /// The Mesos task id (`MESOS_TASK_ID` unless `env` sets it).
    pub task_id: String,
    pub command: CommandSpec,
    /// Environment of the command; the runtime adds `MESOS_SANDBOX`, and `PATH` if missing.
    pub env: Vec<(String, String)>,
    /// User name (or `uid[:gid]`) to run as, looked up in the image's `/etc/passwd` with a
    /// rootfs, else on the host. `None`: the agent's user.
    pub user: Option<String>,
    pub resources: Resources,
    /// Hostname inside the task's UTS namespace; `None` keeps the host's name.
    pub hostname: Option<String>,
    /// The sandbox directory on the host. The task's working directory; with a rootfs it is
    /// bind-mounted at `/mnt/mesos/sandbox`. `stdout`/`stderr` are written here.
    pub sandbox: PathBuf,
    pub logs: LogPolicy,
    /// `None`: a Mesos command task on the host file system.
    pub rootfs: Option<RootfsSpec>,
    /// Bind-mounted read-only at `/etc/resolv.conf` in a rootfs, and over the host's
    /// `/etc/resolv.conf` for a task on the host file system when it is another file (the
    /// agent gives the cluster DNS here).
    pub resolv_conf: PathBuf,
    /// Bind-mounted read-only at `/etc/hosts` in a rootfs.
    pub hosts_file: PathBuf,
    pub network: Network,
    pub rlimits: Vec<Rlimit>,
}

impl ContainerSpec {
    /// A spec with defaults: no limits, host network, host file system, the host's
    /// `/etc/resolv.conf` and `/etc/hosts`, default log policy.
    pub fn new(id: ContainerId, task_id: impl Into<String>, command: CommandSpec, sandbox: impl Into<PathBuf>) -> Self {
        ContainerSpec {
            id,
            task_id: task_id.into(),
            command,
            env: Vec::new(),
            user: None,
            resources: Resources::default(),
            hostname: None,
            sandbox: sandbox.into(),
            logs: LogPolicy::default(),
            rootfs: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            hosts_file: PathBuf::from("/etc/hosts"),
            network: Network::Host,
            rlimits: Vec::new(),
        }
    }

    /// Checks what can be checked without touching the system.
    pub fn validate(&self) -> Result<()> {
        self.command.validate("command")?;
        validate_env(&self.env, "env")?;
        if let Some(cpus) = self.resources.cpus
            && (!cpus.is_finite() || cpus <= 0.0 || cpus > 4096.0)
        {
            return Err(RuntimeError::spec("resources.cpus", format!("is {cpus}: give a number of CPUs above 0")));
        }
        if let Some(mem) = self.resources.memory_bytes
            && mem < (4 << 20)
        {
            return Err(RuntimeError::spec(
                "resources.memory_bytes",
                format!("is {mem} bytes: give at least 4 MiB (4194304)"),
            ));
        }
        if self.resources.pids_limit == Some(0) {
            return Err(RuntimeError::spec("resources.pids_limit", "is 0: a task needs at least one process"));
        }
        if let Some(name) = &self.hostname
            && (name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        {
            return Err(RuntimeError::spec(
                "hostname",
                format!("{name:?} is not a hostname: use 1-64 characters from A-Z a-z 0-9 - ."),
            ));
        }
        if self.task_id.contains('\0') {
            return Err(RuntimeError::spec("task_id", "contains a NUL byte"));
        }
        absolute_dir(&self.sandbox, "sandbox")?;
        if self.logs.max_file_bytes == 0 || self.logs.max_files == 0 {
            return Err(RuntimeError::spec("logs", "needs max_file_bytes and max_files above 0"));
        }
        if let Some(rootfs) = &self.rootfs {
            if rootfs.layers.is_empty() {
                return Err(RuntimeError::spec("rootfs.layers", "is empty: give at least one unpacked layer"));
            }
            for layer in &rootfs.layers {
                absolute_dir(layer, "rootfs.layers")?;
                overlay_safe(layer, "rootfs.layers")?;
            }
            for (path, field) in [(&rootfs.upper_dir, "rootfs.upper_dir"), (&rootfs.work_dir, "rootfs.work_dir")] {
                if !path.is_absolute() {
                    return Err(RuntimeError::spec(field, format!("{} is not an absolute path", path.display())));
                }
                overlay_safe(path, field)?;
            }
            for (path, field) in [(&self.resolv_conf, "resolv_conf"), (&self.hosts_file, "hosts_file")] {
                if !path.is_file() {
                    return Err(RuntimeError::spec(field, format!("{} is not a file", path.display())));
                }
            }
        }
        if let Network::Join { path } = &self.network
            && !path.exists()
        {
            return Err(RuntimeError::spec(
                "network.path",
                format!("{} does not exist: create the network namespace first", path.display()),
            ));
        }
        Ok(())
    }
}

/// A window size for an exec with a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// A process to run inside a running container (`medos task exec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub command: CommandSpec,
    /// Added to (and overriding) the container's environment.
    pub env: Vec<(String, String)>,
    /// `None`: the container's user.
    pub user: Option<String>,
    /// Working directory inside the container; `None`: the container's.
    pub cwd: Option<PathBuf>,
    /// `Some`: give the process a pseudo-terminal of this size (`-t`); its master is returned.
    pub tty: Option<TtySize>,
}

impl ExecSpec {
    pub fn new(command: CommandSpec) -> Self {
        ExecSpec { command, env: Vec::new(), user: None, cwd: None, tty: None }
    }

    pub fn validate(&self) -> Result<()> {
        self.command.validate("exec.command")?;
        validate_env(&self.env, "exec.env")
    }
}

fn validate_env(env: &[(String, String)], field: &'static str) -> Result<()> {
    for (key, value) in env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(RuntimeError::spec(
                field,
                format!("has a bad variable {key:?}: names are non-empty without '=' or NUL, values without NUL"),
            ));
        }
    }
    Ok(())
}

fn absolute_dir(path: &Path, field: &'static str) -> Result<()> {
    if !path.is_absolute() {
        return Err(RuntimeError::spec(field, format!("{} is not an absolute path", path.display())));
    }
    if !path.is_dir() {
        return Err(RuntimeError::spec(field, format!("{} is not a directory: create it first", path.display())));
    }
    Ok(())
}

/// overlayfs separates its options with `,` and lower layers with `:`.
fn overlay_safe(path: &Path, field: &'static str) -> Result<()> {
    let text = path.to_string_lossy();
    if text.contains([',', ':', '\\']) {
        return Err(RuntimeError::spec(
            field,
            format!("{} contains ',', ':' or '\\', which overlayfs options cannot carry", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_program_follows_mesos_command_info() {
        let check = |cmd: CommandSpec, expect: (&str, &str, &[&str])| {
            let (program, argv0, args) = cmd.program();
            assert_eq!((program.as_str(), argv0.as_str()), (expect.0, expect.1), "{cmd:?}");
            assert_eq!(args, expect.2.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{cmd:?}");
        };
        check(CommandSpec::shell("echo hi"), ("/bin/sh", "sh", &["-c", "echo hi"]));
        check(CommandSpec::argv(["sleep", "10"]), ("sleep", "sleep", &["10"]));
        check(
            CommandSpec { shell: false, value: "/bin/busybox".into(), arguments: vec!["ls".into(), "/".into()] },
            ("/bin/busybox", "ls", &["/"]),
        );
        check(
            CommandSpec { shell: false, value: "/bin/true".into(), arguments: vec![] },
            ("/bin/true", "/bin/true", &[]),
        );
    }

    #[test]
    fn container_ids_are_single_safe_path_components() {
        for good in ["a", "task-1.abc_DEF", &"x".repeat(128)] {
            assert!(ContainerId::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "ü", &"x".repeat(129)] {
            let err = ContainerId::new(bad).unwrap_err().to_string();
            assert!(err.contains("`id`"), "{bad}: {err}");
        }
        assert_eq!(ContainerId::random().as_str().len(), 32);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let dir = tempfile::tempdir().unwrap();
        let base = ContainerSpec::new(ContainerId::new("c").unwrap(), "t", CommandSpec::shell("true"), dir.path());
        base.validate().unwrap();
        type Mutation = Box<dyn Fn(&mut ContainerSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("`command`", Box::new(|s| s.command = CommandSpec::shell(""))),
            ("`resources.cpus`", Box::new(|s| s.resources.cpus = Some(0.0))),
            ("`resources.cpus`", Box::new(|s| s.resources.cpus = Some(f64::NAN))),
            ("`resources.memory_bytes`", Box::new(|s| s.resources.memory_bytes = Some(1000))),
            ("`resources.pids_limit`", Box::new(|s| s.resources.pids_limit = Some(0))),
            ("`hostname`", Box::new(|s| s.hostname = Some("bad host".into()))),
            ("`env`", Box::new(|s| s.env = vec![("A=B".into(), "c".into())])),
            ("`sandbox`", Box::new(|s| s.sandbox = "relative".into())),
            ("`sandbox`", Box::new(|s| s.sandbox = "/nonexistent/medos".into())),
            ("`logs`", Box::new(|s| s.logs.max_files = 0)),
            (
                "`rootfs.layers`",
                Box::new(|s| {
                    s.rootfs = Some(RootfsSpec { layers: vec![], upper_dir: "/u".into(), work_dir: "/w".into() })
                }),
            ),
            (
                "`rootfs.upper_dir`",
                Box::new(|s| {
                    s.rootfs =
                        Some(RootfsSpec { layers: vec!["/".into()], upper_dir: "/a:b".into(), work_dir: "/w".into() })
                }),
            ),
            ("`network.path`", Box::new(|s| s.network = Network::Join { path: "/nonexistent/netns".into() })),
        ];
        for (field, mutate) in cases {
            let mut spec = base.clone();
            mutate(&mut spec);
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(field), "expected {field} in: {err}");
        }
    }

    #[test]
    fn specs_round_trip_through_json() {
        let mut spec = ContainerSpec::new(ContainerId::random(), "t", CommandSpec::argv(["a", "b"]), "/tmp");
        spec.network = Network::Join { path: "/run/netns/x".into() };
        spec.rlimits = vec![Rlimit { resource: RlimitResource::Nofile, soft: 1024, hard: 4096 }];
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ContainerSpec>(&json).unwrap(), spec);
        assert!(serde_json::from_str::<ContainerId>("\"../x\"").is_err());
    }
}
