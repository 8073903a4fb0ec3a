//! `exec`: running a process inside a running container (`medos task exec [-i] [-t]`).
//!
//! The agent writes an exec request into `STATE/containers/ID/exec/N/`, prepares the process's
//! stdio, and starts the `exec` stage ([`super::nsenter`]), which joins the container and starts
//! the process. Stdio is either three FIFOs in that directory (the agent holds their other ends
//! as non-blocking tokio pipes, so the caller proxies stdin/stdout/stderr) or, with a terminal,
//! a pseudo-terminal opened by the agent whose slave becomes the process's controlling terminal
//! and whose master is handed to the caller. FIFOs rather than inherited pipes keep the helper's
//! own stdout free for its reports.
//!
//! The caller gets an [`ExecProcess`]: the host pid, the stdio ends, and [`ExecProcess::wait`].

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::sys::stat::Mode;
use tokio::io::BufReader;
use tokio::net::unix::pipe;

use super::error::{Result, RuntimeError};
use super::init::next_report;
use super::launch::tail;
use super::linux::Inner;
use super::nsenter::{ExecReport, ExecRequest, ExecStdio};
use super::plan::merge_env;
use super::spec::{ContainerId, ExecSpec};
use super::state::write_json_atomic;
use super::status::{ExitStatus, Termination};
use super::user;
use super::{BoxFuture, Signal};

/// A process started inside a container.
pub struct ExecProcess {
    /// Its pid on the host.
    pub pid: Option<u32>,
    /// Its stdin (without a terminal). Drop it to send EOF.
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    /// The terminal's master side (with `tty`): read the process's output from it, write its
    /// input to it. Reads fail with `EIO` once the process and its children closed the terminal.
    pub pty: Option<File>,
    exit: Option<BoxFuture<'static, Result<ExitStatus>>>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess").field("pid", &self.pid).field("tty", &self.pty.is_some()).finish_non_exhaustive()
    }
}

impl ExecProcess {
    /// Assembles an exec process (for other runtime implementations, such as the fake).
    pub fn new(pid: Option<u32>, exit: BoxFuture<'static, Result<ExitStatus>>) -> Self {
        ExecProcess { pid, stdin: None, stdout: None, stderr: None, pty: None, exit: Some(exit) }
    }

    /// Waits for the process to end. A second call returns an error.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        match self.exit.take() {
            Some(exit) => exit.await,
            None => Err(RuntimeError::spec("exec", "was already waited for")),
        }
    }

    /// Sends a signal to the process (not to the rest of the container).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let Some(pid) = self.pid else { return Ok(()) };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .or_else(|e| if e == nix::errno::Errno::ESRCH { Ok(()) } else { Err(e) })
            .map_err(|e| RuntimeError::sys(format!("send {signal} to exec process {pid}"), e))
    }
}

pub(crate) async fn exec(inner: &Arc<Inner>, id: &ContainerId, spec: ExecSpec) -> Result<ExecProcess> {
    spec.validate()?;
    let handle = inner.handle(id)?;
    if handle.exit_status().is_some() {
        return Err(RuntimeError::NotRunning { id: id.clone() });
    }
    let plan = &handle.plan;
    let user = match &spec.user {
        Some(name) => Some(user::resolve(name, plan.rootfs.as_ref().map(|r| r.spec()).as_ref())?),
        None => plan.user.clone(),
    };
    let n = inner.exec_counter.fetch_add(1, Ordering::Relaxed);
    let dir = handle.dir.exec_dir(n);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;

    let (program, argv0, args) = spec.command.program();
    let mut process = ExecProcess { pid: None, stdin: None, stdout: None, stderr: None, pty: None, exit: None };
    let mut slave = None;
    let stdio = match spec.tty {
        Some(size) => {
            let winsize = nix::pty::Winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
            let pty = nix::pty::openpty(&winsize, None).map_err(|e| RuntimeError::sys("open a pseudo-terminal", e))?;
            let path =
                nix::unistd::ttyname(&pty.slave).map_err(|e| RuntimeError::sys("name the pseudo-terminal", e))?;
            process.pty = Some(File::from(pty.master));
            slave = Some(pty.slave);
            ExecStdio::Tty { path }
        }
        None => {
            let fifo = |name: &str| -> Result<PathBuf> {
                let path = dir.join(name);
                nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600))
                    .map_err(|e| RuntimeError::sys(format!("create FIFO {}", path.display()), e))?;
                Ok(path)
            };
            let (stdin, stdout, stderr) = (fifo("stdin")?, fifo("stdout")?, fifo("stderr")?);
            let io = |path: &PathBuf, e| RuntimeError::io("open", path, e);
            process.stdout = Some(pipe::OpenOptions::new().open_receiver(&stdout).map_err(|e| io(&stdout, e))?);
            process.stderr = Some(pipe::OpenOptions::new().open_receiver(&stderr).map_err(|e| io(&stderr, e))?);
            // Read-write, so the open does not wait for the helper to open the other end.
            process.stdin =
                Some(pipe::OpenOptions::new().read_write(true).open_sender(&stdin).map_err(|e| io(&stdin, e))?);
            ExecStdio::Fifos { stdin, stdout, stderr }
        }
    };
    let request = ExecRequest {
        program,
        argv0,
        args,
        env: merge_env(&plan.env, &spec.env),
        cwd: spec.cwd.clone().unwrap_or_else(|| plan.cwd.clone()),
        user,
        stdio,
    };
    let request_path = dir.join("request.json");
    write_json_atomic(&request_path, &request)?;

    let log_path = dir.join("helper.log");
    let log = File::create(&log_path).map_err(|e| RuntimeError::io("create", &log_path, e))?;
    let mut command =
        tokio::process::Command::from(plan.init.command("exec", &[handle.dir.path.as_path(), request_path.as_path()]));
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    let mut child = command.spawn().map_err(|e| RuntimeError::ExecFailed {
        id: id.clone(),
        message: format!("cannot start the exec helper: {e}"),
    })?;
    let Some(stdout) = child.stdout.take() else { unreachable!("stdout is piped") };
    let mut reports = BufReader::new(stdout);

    match next_report::<ExecReport>(&mut reports).await {
        Some(ExecReport::Started { pid }) => process.pid = Some(pid),
        Some(ExecReport::Failed { message }) => {
            let _ = child.wait().await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(RuntimeError::ExecFailed { id: id.clone(), message });
        }
        Some(ExecReport::Exited { .. }) | None => {
            let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            let message = format!("the exec helper ended ({status}) without starting the process: {}", tail(&log_path));
            let _ = std::fs::remove_dir_all(&dir);
            return Err(RuntimeError::ExecFailed { id: id.clone(), message });
        }
    }
    // The process holds its own ends now; only the master and our FIFO ends stay with us.
    drop(slave);
    for name in ["stdin", "stdout", "stderr"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let id = id.clone();
    process.exit = Some(Box::pin(async move {
        let report = loop {
            match next_report::<ExecReport>(&mut reports).await {
                Some(ExecReport::Exited { termination }) => break Some(termination),
                Some(_) => continue,
                None => break None,
            }
        };
        let helper = child.wait().await;
        let _ = std::fs::remove_dir_all(&dir);
        let termination = report.unwrap_or_else(|| Termination::Unknown {
            reason: format!(
                "the exec helper of container `{id}` ended ({}) without reporting the process's status",
                helper.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
            ),
        });
        Ok(ExitStatus::new(termination))
    }));
    Ok(process)
}
