//! The exec helper: runs one process inside a running container, in two stages.
//!
//! Joining a pid namespace with `setns` only changes where the caller's *children* are born, so
//! the process that ends up inside the container's pid namespace must be a child of a process
//! that joined it. Hence two stages (both re-executions of this binary, see [`super::init`]):
//!
//! 1. `exec DIR REQUEST` (the helper, a child of the agent) checks that the container's init
//!    still runs (pid and start time), opens the init's namespace files
//!    (`/proc/PID/task/TID/ns/…`) and checks the init again (so a reused pid is never joined),
//!    joins the container's cgroups, then `setns`es into its ipc, uts, net, cgroup and pid
//!    namespaces and starts `exec-enter`, which is therefore born inside all of them. It waits
//!    for it (it becomes the requested process) and reports to the agent as JSON lines on its
//!    stdout: `started` with the host pid once the command was executed, then `exited` with the
//!    exact exit code or signal. Its own exit code is the shell-style code too.
//! 2. `exec-enter DIR REQUEST` (inside the pid namespace, still in the host's mount namespace)
//!    keeps its stdout, a pipe to the helper, as a close-on-exec descriptor; opens the exec's
//!    stdio (the agent's FIFOs, or the terminal: it calls `setsid` and opens the terminal, which
//!    makes it the controlling terminal of a session that lives inside the container, so a
//!    job-control shell can set and restore the terminal's foreground process group); opens the
//!    init's mount namespace and checks the init once more; gives up sharing its file-system
//!    attributes and `setns`es into the mount namespace; applies the task's rlimits, drops to the
//!    exec's user and `exec`s the command in place. A successful `exec` closes the pipe (EOF: the
//!    helper reports `started`); a failure is written to the pipe as a `failed` report first.
//!
//! The process thus sees the task's processes (`ps`), gets a pid of its own in the container
//! (not 1), the task's hostname, IPC objects, network, cgroups and file system, and leads its
//! own session. The helper's stderr is a log file in the exec's directory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};

use super::cgroup::HostFs;
use super::error::{Result, RuntimeError};
use super::init::{log, parse_report, report_on_stdout, write_report};
use super::pid1::{apply_rlimits, command_in, drop_privileges};
use super::plan::LaunchPlan;
use super::procfs::ProcIdentity;
use super::state::{ContainerDir, ShimState, read_json};
use super::status::Termination;
use super::user::Credentials;

/// What the agent asks the helper to run (`exec/N/request.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExecRequest {
    pub program: String,
    pub argv0: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub user: Option<Credentials>,
    pub stdio: ExecStdio,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExecStdio {
    /// FIFOs created by the agent, which holds their other ends.
    Fifos { stdin: PathBuf, stdout: PathBuf, stderr: PathBuf },
    /// The slave side of a pseudo-terminal whose master the agent holds.
    Tty { path: PathBuf },
}

/// What the helper tells the agent (and `exec-enter` tells the helper: only `failed`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExecReport {
    /// The process runs; `pid` is its host pid.
    Started {
        pid: u32,
    },
    Failed {
        message: String,
    },
    Exited {
        termination: Termination,
    },
}

/// Namespaces the helper joins itself; `exec-enter` is born inside them. The mount namespace is
/// joined by `exec-enter` after it opened its stdio on the host's file system.
const JOINED_BY_HELPER: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("pid", CloneFlags::CLONE_NEWPID),
];

/// Stage `exec` (the helper).
pub(crate) fn run(dir: &Path, request: &Path) -> i32 {
    let started = load(dir, request).and_then(|(plan, state, _)| enter_and_spawn(dir, request, &plan, &state));
    let (mut child, failure) = match started {
        Ok(started) => started,
        Err(e) => {
            report_on_stdout(&ExecReport::Failed { message: e.to_string() });
            return 126;
        }
    };
    if let Some(message) = failure {
        // `exec-enter` exits right after reporting; do not leave it a zombie.
        let _ = child.wait();
        report_on_stdout(&ExecReport::Failed { message });
        return 126;
    }
    report_on_stdout(&ExecReport::Started { pid: child.id() });
    let termination = match child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited { code },
            (None, Some(signal)) => Termination::Signaled { signal },
            (None, None) => Termination::Unknown { reason: format!("unexpected wait status {status}") },
        },
        Err(e) => Termination::Unknown { reason: format!("cannot wait for the process: {e}") },
    };
    let code = match &termination {
        Termination::Exited { code } => *code,
        Termination::Signaled { signal } => 128 + signal,
        Termination::Unknown { .. } => 255,
    };
    report_on_stdout(&ExecReport::Exited { termination });
    code
}

/// The request, the container's plan and its recorded processes; fails if the init is gone.
fn load(dir: &Path, request: &Path) -> Result<(LaunchPlan, ShimState, ExecRequest)> {
    let request = read_json::<ExecRequest>(request)?
        .ok_or_else(|| RuntimeError::CorruptState { path: request.to_path_buf(), reason: "missing".into() })?;
    let plan = LaunchPlan::load(dir)?;
    let state: ShimState =
        read_json(&ContainerDir::at(dir).state())?.ok_or_else(|| RuntimeError::NotRunning { id: plan.id.clone() })?;
    if !state.init.is_some_and(|i| i.is_alive()) {
        return Err(RuntimeError::NotRunning { id: plan.id.clone() });
    }
    Ok((plan, state, request))
}

/// `/proc/PID/task/TID/ns/NAME` of the container's init (the thread that created them).
fn namespace_path(state: &ShimState, init: &ProcIdentity, name: &str) -> PathBuf {
    match state.init_thread {
        Some(tid) => PathBuf::from(format!("/proc/{}/task/{tid}/ns/{name}", init.pid)),
        None => PathBuf::from(format!("/proc/{}/ns/{name}", init.pid)),
    }
}

/// Opens the init's namespace files, then checks that the init is still the recorded process:
/// a file opened before that check cannot belong to a process that reused the pid.
fn open_namespaces(plan: &LaunchPlan, state: &ShimState, names: &[&str]) -> Result<Vec<File>> {
    let init = state.init.ok_or_else(|| RuntimeError::NotRunning { id: plan.id.clone() })?;
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = namespace_path(state, &init, name);
        files.push(File::open(&path).map_err(|e| RuntimeError::io("open namespace", &path, e))?);
    }
    if !init.is_alive() {
        return Err(RuntimeError::NotRunning { id: plan.id.clone() });
    }
    Ok(files)
}

/// Joins everything but the mount namespace and starts `exec-enter`. Returns the child and, if
/// it could not execute the command, its report of why.
fn enter_and_spawn(
    dir: &Path,
    request: &Path,
    plan: &LaunchPlan,
    state: &ShimState,
) -> Result<(Child, Option<String>)> {
    let names: Vec<&str> = JOINED_BY_HELPER.iter().map(|(name, _)| *name).collect();
    let namespaces = open_namespaces(plan, state, &names)?;
    // Joined before the fork, so `exec-enter` is born in the cgroups (no migration of the process).
    plan.cgroup.join(&HostFs, "0")?;
    for ((name, flag), file) in JOINED_BY_HELPER.iter().zip(namespaces) {
        setns(file, *flag).map_err(|e| RuntimeError::sys(format!("join the container's {name} namespace"), e))?;
    }
    let mut child =
        plan.init.command("exec-enter", &[dir, request]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().map_err(
            |e| RuntimeError::ExecFailed {
                id: plan.id.clone(),
                message: format!("cannot start the exec-enter stage: {e}"),
            },
        )?;
    // EOF without a report: the command was executed (the pipe is close-on-exec) or
    // `exec-enter` died; either way the process's end is what `wait` reports.
    let mut failure = None;
    if let Some(pipe) = child.stdout.take() {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(1..)) {
            if let Some(ExecReport::Failed { message }) = parse_report(&line) {
                failure = Some(message);
                break;
            }
            line.clear();
        }
    }
    Ok((child, failure))
}

/// Stage `exec-enter`: becomes the requested process inside the container. Returns only on
/// failure (after reporting it to the helper): 127 if the command does not exist, else 126.
pub(crate) fn enter(dir: &Path, request: &Path) -> i32 {
    let report = match std::io::stdout().as_fd().try_clone_to_owned() {
        // A duplicate is close-on-exec: it closes when the command is executed.
        Ok(fd) => File::from(fd),
        Err(e) => {
            log(format_args!("exec: cannot keep the report pipe: {e}"));
            return 126;
        }
    };
    let (message, code) = match load(dir, request) {
        Ok((plan, state, request)) => become_process(&plan, &state, &request),
        Err(e) => (e.to_string(), 126),
    };
    if let Err(e) = write_report(&report, &ExecReport::Failed { message: message.clone() }) {
        log(format_args!("exec: cannot report {message:?} to the helper: {e}"));
    }
    code
}

/// Opens stdio, joins the mount namespace, applies the task's rlimits, drops privileges and
/// executes the command in place. Returns only on failure: why, and the exit code.
fn become_process(plan: &LaunchPlan, state: &ShimState, request: &ExecRequest) -> (String, i32) {
    let prepared = (|| -> Result<std::process::Command> {
        let (stdin, stdout, stderr) = open_stdio(&request.stdio)?;
        let mount_ns = open_namespaces(plan, state, &["mnt"])?
            .pop()
            .ok_or_else(|| RuntimeError::sys("open the mount namespace", nix::errno::Errno::ENOENT))?;
        unshare(CloneFlags::CLONE_FS).map_err(|e| RuntimeError::sys("unshare file-system attributes", e))?;
        setns(mount_ns, CloneFlags::CLONE_NEWNS)
            .map_err(|e| RuntimeError::sys("join the container's mnt namespace", e))?;
        apply_rlimits(&plan.rlimits)?;
        if let Some(user) = &request.user {
            drop_privileges(user)?;
        }
        let mut command = command_in(&request.program, &request.argv0, &request.args, &request.env, &request.cwd);
        command.stdin(stdin).stdout(stdout).stderr(stderr);
        Ok(command)
    })();
    let mut command = match prepared {
        Ok(command) => command,
        Err(e) => return (e.to_string(), 126),
    };
    let e = command.exec();
    let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    (format!("cannot execute `{}` in {}: {e}", request.program, request.cwd.display()), code)
}

/// Opens the exec's stdio. With a terminal, the caller first becomes a session leader, so
/// opening the terminal makes it the session's controlling terminal. Without one it leads a
/// session too, detached from any terminal of the agent's.
fn open_stdio(stdio: &ExecStdio) -> Result<(Stdio, Stdio, Stdio)> {
    nix::unistd::setsid().map_err(|e| RuntimeError::sys("start a session", e))?;
    let open = |path: &Path, write: bool| {
        OpenOptions::new().read(!write).write(write).open(path).map_err(|e| RuntimeError::io("open", path, e))
    };
    match stdio {
        ExecStdio::Fifos { stdin, stdout, stderr } => {
            Ok((open(stdin, false)?.into(), open(stdout, true)?.into(), open(stderr, true)?.into()))
        }
        ExecStdio::Tty { path } => {
            let tty =
                OpenOptions::new().read(true).write(true).open(path).map_err(|e| RuntimeError::io("open", path, e))?;
            let clone = |f: &File| f.try_clone().map_err(|e| RuntimeError::io("duplicate", path, e));
            Ok((clone(&tty)?.into(), clone(&tty)?.into(), tty.into()))
        }
    }
}
