//! The exec helper (stage `exec`): runs one process inside a running container.
//!
//! Started by the agent for each exec. It opens its stdio (the exec's FIFOs, or the terminal
//! named in the request, which it makes its controlling terminal by calling `setsid` and then
//! opening it), joins the container's cgroups, opens the namespace files of the container's init
//! (`/proc/PID/ns/{ipc,uts,net,pid,mnt}`; the init's start time is checked again afterwards so
//! a reused pid cannot be joined), gives up sharing its file-system attributes (`setns` into a
//! mount namespace requires that), `setns`es into each, mount last, drops to the exec's user and
//! starts the command. Joining a pid namespace only affects children, so the command, not the
//! helper, is inside it; the helper waits for it and reports its end. Reports go to the agent as
//! JSON lines on the helper's stdout; its stderr is a log file in the exec's directory.

use std::fs::{File, OpenOptions};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};

use super::cgroup::HostFs;
use super::error::{Result, RuntimeError};
use super::init::report_on_stdout;
use super::pid1::{command_in, drop_privileges};
use super::plan::LaunchPlan;
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

/// What the helper tells the agent.
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

/// Stage `exec`.
pub(crate) fn run(dir: &Path, request: &Path) -> i32 {
    let child = read_json::<ExecRequest>(request)
        .and_then(|r| {
            r.ok_or_else(|| RuntimeError::CorruptState { path: request.to_path_buf(), reason: "missing".into() })
        })
        .and_then(|request| enter_and_spawn(dir, &request));
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            report_on_stdout(&ExecReport::Failed { message: e.to_string() });
            return 126;
        }
    };
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

fn enter_and_spawn(dir: &Path, request: &ExecRequest) -> Result<std::process::Child> {
    let cdir = ContainerDir::at(dir);
    let plan = LaunchPlan::load(dir)?;
    let state: ShimState = read_json(&cdir.state())?.ok_or_else(|| RuntimeError::NotRunning { id: plan.id.clone() })?;
    let init = state.init.filter(|i| i.is_alive()).ok_or_else(|| RuntimeError::NotRunning { id: plan.id.clone() })?;

    let (stdin, stdout, stderr) = open_stdio(&request.stdio)?;
    plan.cgroup.join(&HostFs, "0")?;
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut namespaces = Vec::with_capacity(kinds.len());
    for (name, flag) in kinds {
        let path = match state.init_thread {
            Some(tid) => PathBuf::from(format!("/proc/{}/task/{tid}/ns/{name}", init.pid)),
            None => PathBuf::from(format!("/proc/{}/ns/{name}", init.pid)),
        };
        let file = File::open(&path).map_err(|e| RuntimeError::io("open namespace", &path, e))?;
        namespaces.push((name, flag, file));
    }
    if !init.is_alive() {
        return Err(RuntimeError::NotRunning { id: plan.id.clone() });
    }
    unshare(CloneFlags::CLONE_FS).map_err(|e| RuntimeError::sys("unshare file-system attributes", e))?;
    for (name, flag, file) in namespaces {
        setns(file, flag).map_err(|e| RuntimeError::sys(format!("join the container's {name} namespace"), e))?;
    }
    if let Some(user) = &request.user {
        drop_privileges(user)?;
    }
    let mut command = command_in(&request.program, &request.argv0, &request.args, &request.env, &request.cwd);
    command.stdin(stdin).stdout(stdout).stderr(stderr);
    command.spawn().map_err(|e| RuntimeError::ExecFailed {
        id: plan.id.clone(),
        message: format!("cannot execute `{}` in {}: {e}", request.program, request.cwd.display()),
    })
}

fn open_stdio(stdio: &ExecStdio) -> Result<(Stdio, Stdio, Stdio)> {
    let open = |path: &Path, write: bool| {
        OpenOptions::new().read(!write).write(write).open(path).map_err(|e| RuntimeError::io("open", path, e))
    };
    match stdio {
        ExecStdio::Fifos { stdin, stdout, stderr } => {
            Ok((open(stdin, false)?.into(), open(stdout, true)?.into(), open(stderr, true)?.into()))
        }
        ExecStdio::Tty { path } => {
            // A session leader without a terminal acquires the first terminal it opens.
            nix::unistd::setsid().map_err(|e| RuntimeError::sys("start a session for the terminal", e))?;
            let tty =
                OpenOptions::new().read(true).write(true).open(path).map_err(|e| RuntimeError::io("open", path, e))?;
            let clone = |f: &File| f.try_clone().map_err(|e| RuntimeError::io("duplicate", path, e));
            Ok((clone(&tty)?.into(), clone(&tty)?.into(), tty.into()))
        }
    }
}
