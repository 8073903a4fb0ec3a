//! The per-container shim: the process that outlives the agent.
//!
//! Why a shim: the exit status of a process can only be collected by its parent. If the agent
//! were the parent, a task ending while the agent is down (upgraded, crashed, SIGKILLed) would
//! lose its exit status, and the agent's death would take the task's log pipes with it. So each
//! container gets a small, long-lived parent of its own (Mesos's executor and conmon play the
//! same part):
//!
//! 1. `spawn` (child of the agent) calls `setsid` and starts `shim`, then exits: the shim is
//!    orphaned at once, lives in its own session (no terminal signals from the agent's), and is
//!    never the agent's child, whether the agent is the original one or a restarted one.
//! 2. `shim` records its identity in `state.json`, creates the log FIFOs, `unshare`s a new pid
//!    namespace (which applies to its children only) and starts `init`, which becomes PID 1 in
//!    it. While the init sets up, the shim moves it into the task's cgroups and then tells it
//!    so (the init starts the task only after that word): on cgroup v1 the first migration in a
//!    while waits for an RCU grace period (5 to 15 ms on the test machines), which this way
//!    overlaps the init's start instead of adding to it. The shim itself stays outside the
//!    task's cgroups, so an OOM kill in the task cannot kill it.
//! 3. When `init` reports the task started, the shim records the task's host pid, reports
//!    `started` to the agent on its stdout (the agent keeps reading that pipe: EOF means the shim
//!    ended) and then relays the task's stdout/stderr into rotated files in the sandbox.
//! 4. When `init` exits (it exits right after the task's main process; the kernel then kills
//!    everything left in the pid namespace), the shim drains the pipes, reads the OOM counter of
//!    the memory cgroup, and writes `exit.json` atomically. Then it exits.
//!
//! A restarted agent reads `state.json` and `exit.json` and polls the shim's pid (see
//! [`super::recover`]); it needs nothing else from the shim.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::cgroup::HostFs;
use super::init::{log, parse_report, report_on_stdout, write_report};
use super::logs::RotatingLog;
use super::pid1::{InitReport, ShimMessage};
use super::plan::LaunchPlan;
use super::procfs::{ProcIdentity, find_child, find_child_among, find_thread};
use super::state::{ContainerDir, ShimState, write_json_atomic, write_json_durable};
use super::status::{ExitStatus, Termination};

/// What the shim tells the agent (once, on its stdout).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ShimReport {
    Started { state: ShimState },
    Failed { message: String },
}

/// How long the container init may take to set up before the shim gives up on it.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the shim keeps draining the log pipes after the init exited; only a process that
/// escaped the pid namespace with a pipe end could hold them open that long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Stage `spawn`: detach from the agent and start the shim.
pub(crate) fn spawn(dir: &Path) -> i32 {
    if let Err(e) = nix::unistd::setsid() {
        report_on_stdout(&ShimReport::Failed { message: format!("setsid failed: {e}") });
        return 1;
    }
    let plan = match LaunchPlan::load(dir) {
        Ok(plan) => plan,
        Err(e) => {
            report_on_stdout(&ShimReport::Failed { message: e.to_string() });
            return 1;
        }
    };
    // stdout (the report pipe to the agent) and stderr (shim.log) are inherited.
    match plan.init.command("shim", &[dir]).stdin(Stdio::null()).spawn() {
        Ok(_) => 0,
        Err(e) => {
            report_on_stdout(&ShimReport::Failed { message: format!("cannot start the shim: {e}") });
            1
        }
    }
}

/// Stage `shim`.
pub(crate) fn run(dir: &Path) -> i32 {
    let cdir = ContainerDir::at(dir);
    let mut state = match ProcIdentity::of(std::process::id()) {
        Ok(me) => ShimState { shim: me, init: None, init_thread: None, task: None },
        Err(e) => {
            report_on_stdout(&ShimReport::Failed { message: format!("cannot read the shim's own /proc entry: {e}") });
            return 1;
        }
    };
    let started = LaunchPlan::load(dir).map_err(|e| e.to_string()).and_then(|plan| {
        write_json_atomic(&cdir.state(), &state).map_err(|e| e.to_string())?;
        start(&plan, &cdir, &mut state).map(|running| (plan, running))
    });
    match started {
        Ok((plan, running)) => {
            report_on_stdout(&ShimReport::Started { state });
            let status = supervise(&plan, &cdir, running);
            if let Err(e) = write_json_durable(&cdir.exit(), &status) {
                log(format_args!("cannot record the exit status {status:?}: {e}"));
                return 1;
            }
            0
        }
        Err(message) => {
            log(format_args!("launch failed: {message}"));
            let mut status = ExitStatus::new(Termination::Unknown { reason: format!("launch failed: {message}") });
            status.kill_requested = cdir.kill_marker().exists();
            let _ = write_json_durable(&cdir.exit(), &status);
            report_on_stdout(&ShimReport::Failed { message });
            1
        }
    }
}

/// A started container as the shim holds it.
struct Running {
    init: Child,
    /// The same reader that saw `started`: it may already hold the next lines.
    control: BufReader<UnixStream>,
    stdout: File,
    stderr: File,
}

fn start(plan: &LaunchPlan, cdir: &ContainerDir, state: &mut ShimState) -> Result<Running, String> {
    let stdout = make_fifo(&cdir.stdout_fifo())?;
    let stderr = make_fifo(&cdir.stderr_fifo())?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("cannot create a pid namespace: {e}"))?;
    let (control, init_end) = UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    let mut init = plan
        .init
        .command("init", &[cdir.path.as_path()])
        .stdin(Stdio::from(OwnedFd::from(init_end)))
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the container init: {e}"))?;
    let init_id = ProcIdentity::of(init.id()).map_err(|e| format!("the container init vanished: {e}"))?;
    state.init = Some(init_id);
    write_json_atomic(&cdir.state(), state).map_err(|e| e.to_string())?;

    control.set_read_timeout(Some(SETUP_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(control.try_clone().map_err(|e| e.to_string())?);
    // Move the init into the task's cgroups while it sets up (it waits for our word before it
    // starts the task). Done here rather than by the init itself so that the migration, which
    // on cgroup v1 waits for an RCU grace period, overlaps the init's start and setup.
    let joined = plan.cgroup.join(&HostFs, &init.id().to_string());
    if let Err(e) = joined.map_err(|e| e.to_string()).and_then(|()| {
        write_report(&control, &ShimMessage::CgroupsJoined).map_err(|e| format!("cannot reach the container init: {e}"))
    }) {
        // The init may have failed and exited first; then its report says why.
        let _ = init.kill();
        let _ = init.wait();
        return Err(match next_init_report(&mut reader) {
            Ok(Some(InitReport::Failed { message })) => message,
            _ => format!("cannot move the container init into the task's cgroups: {e}"),
        });
    }
    let report = match next_init_report(&mut reader) {
        Ok(report) => report,
        Err(e) => {
            let _ = init.kill();
            let _ = init.wait();
            return Err(format!("no word from the container init within {SETUP_TIMEOUT:?}: {e}"));
        }
    };
    match report {
        Some(InitReport::Started { task_pid, init_tid }) => {
            state.init_thread = find_thread(init.id(), init_tid);
            // The task's host pid: a child of the init whose innermost pid is `task_pid`, looked
            // for among the members of the task's cgroup (all of /proc only if that cannot be
            // read). A task that is not there has already ended (exited processes leave their
            // cgroup); signals then have nothing to reach anyway.
            state.task = match plan.cgroup.procs(&HostFs) {
                Ok(members) => {
                    find_child_among(members.into_iter().filter_map(|p| u32::try_from(p).ok()), init.id(), task_pid)
                }
                Err(e) => {
                    log(format_args!("cannot list the task's cgroup ({e}); looking for the task in /proc"));
                    find_child(init.id(), task_pid)
                }
            };
            write_json_atomic(&cdir.state(), state).map_err(|e| e.to_string())?;
            for fifo in [cdir.stdout_fifo(), cdir.stderr_fifo()] {
                let _ = std::fs::remove_file(fifo);
            }
            control.set_read_timeout(None).map_err(|e| e.to_string())?;
            Ok(Running { init, control: reader, stdout, stderr })
        }
        Some(InitReport::Failed { message }) => {
            let _ = init.wait();
            Err(message)
        }
        Some(InitReport::Exited { .. }) | None => {
            let status = init.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            Err(format!("the container init ended during setup ({status}); see {}", cdir.shim_log().display()))
        }
    }
}

/// Reads lines until the init's next report; `None` at EOF.
fn next_init_report(reader: &mut BufReader<UnixStream>) -> std::io::Result<Option<InitReport>> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(_) => {
                if let Some(report) = parse_report::<InitReport>(&line) {
                    return Ok(Some(report));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Creates a FIFO and opens its read end without blocking (the writer comes later).
fn make_fifo(path: &Path) -> Result<File, String> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("cannot create the log pipe {}: {e}", path.display()))?;
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open the log pipe {}: {e}", path.display()))
}

/// Relays logs until the init exits and the pipes are drained; returns the exit status.
fn supervise(plan: &LaunchPlan, cdir: &ContainerDir, running: Running) -> ExitStatus {
    let Running { mut init, control, stdout, stderr } = running;
    let mut streams = [
        Stream { file: Some(stdout), log: open_log(plan, "stdout") },
        Stream { file: Some(stderr), log: open_log(plan, "stderr") },
    ];
    let mut control = Some(control);
    let mut reported: Option<Termination> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        let buffered = control.as_ref().is_some_and(|c| !c.buffer().is_empty());
        let timeout = match (buffered, drain_deadline) {
            (true, _) => PollTimeout::ZERO,
            (false, None) => PollTimeout::NONE,
            (false, Some(_)) => PollTimeout::from(100u16),
        };
        {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
            if let Some(c) = &control {
                fds.push(PollFd::new(c.get_ref().as_fd(), PollFlags::POLLIN));
            }
            for s in &streams {
                if let Some(f) = &s.file {
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                }
            }
            if fds.is_empty() {
                break;
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    log(format_args!("poll failed: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // Reads are non-blocking for the FIFOs; the control socket is read only when it has data.
        if let Some(c) = &mut control
            && (!c.buffer().is_empty() || readable(c.get_ref()))
        {
            let mut line = String::new();
            match c.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    control = None;
                    drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                }
                Ok(_) => {
                    if let Some(InitReport::Exited { termination }) = parse_report(&line) {
                        reported = Some(termination);
                    }
                }
            }
        }
        for s in &mut streams {
            s.pump(&mut buf);
        }
        if let Some(deadline) = drain_deadline {
            if streams.iter().all(|s| s.file.is_none()) {
                break;
            }
            if Instant::now() >= deadline {
                log(format_args!("log pipes still open {DRAIN_TIMEOUT:?} after the init exited; closing them"));
                break;
            }
        }
    }

    let init_status = init.wait();
    let termination = match (reported, init_status) {
        (Some(t), _) => t,
        (None, Ok(s)) => match s.signal() {
            Some(signal) => Termination::Signaled { signal },
            None => Termination::Unknown {
                reason: format!(
                    "the container init exited ({s}) without reporting the task's status; see {}",
                    cdir.shim_log().display()
                ),
            },
        },
        (None, Err(e)) => Termination::Unknown { reason: format!("cannot wait for the container init: {e}") },
    };
    let mut status = ExitStatus::new(termination);
    status.oom_killed = plan.cgroup.oom_killed(&HostFs);
    status.kill_requested = cdir.kill_marker().exists();
    status
}

/// Whether a socket has data or hung up, without blocking.
fn readable(socket: &UnixStream) -> bool {
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

fn open_log(plan: &LaunchPlan, name: &'static str) -> Option<RotatingLog> {
    match RotatingLog::open(&plan.sandbox, name, plan.logs) {
        Ok(log) => Some(log),
        Err(e) => {
            log(format_args!("cannot open {name} in {}: {e}; discarding the task's {name}", plan.sandbox.display()));
            None
        }
    }
}

/// One output stream: the FIFO from the task and its file in the sandbox.
struct Stream {
    file: Option<File>,
    log: Option<RotatingLog>,
}

impl Stream {
    /// Moves what is available into the log. A FIFO read of 0 bytes means every writer is gone
    /// for good: the init opened the write ends before it reported `started`, and the FIFO's
    /// name is unlinked since, so no new writer can come.
    fn pump(&mut self, buf: &mut [u8]) {
        let Some(file) = &mut self.file else { return };
        loop {
            match file.read(buf) {
                Ok(0) => {
                    self.file = None;
                    return;
                }
                Ok(n) => {
                    if let Some(l) = &mut self.log
                        && let Err(e) = l.write(&buf[..n])
                    {
                        log(format_args!("cannot write the task's log: {e}; discarding it from now on"));
                        self.log = None;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log(format_args!("cannot read the task's output: {e}"));
                    self.file = None;
                    return;
                }
            }
        }
    }
}
