//! The container init: PID 1 of the task's pid namespace.
//!
//! Started by the shim after it unshared a pid namespace, so it is born as PID 1 there. In order:
//! it arms a parent-death SIGKILL (if the shim dies, the container goes with it rather than
//! running unsupervised), joins the network namespace named in the spec if any, `unshare`s
//! mount, UTS and IPC namespaces, sets the hostname, makes every mount a recursive slave, opens
//! the log FIFOs, sets up the root file system ([`super::rootfs`]), applies rlimits, drops to the
//! task's user (`setgroups`, `setgid`, `setuid`), waits for the shim's word that it moved this
//! process into the task's cgroups (the shim does that in parallel with all of the above, see
//! [`super::shim`]), and starts the command as its child in a process group of its own, so the
//! task and everything it starts are born in the task's cgroups.
//!
//! Why an init that stays, instead of `exec`ing the command as PID 1: the kernel drops every
//! signal sent to a namespace's PID 1 that has no handler for it, so `sleep 1000` or `sh -c …`
//! as PID 1 would never see the SIGTERM of a graceful kill and would always wait out the grace
//! period; and orphans inside the namespace need a reaper. Like Mesos's executor or `tini`, this
//! init reaps everything, while the agent signals the task's process group directly (it is not
//! PID 1, so default actions apply). When the task's main process ends, the init reports how
//! (code or signal) to the shim and exits; the kernel then SIGKILLs whatever else is left in the
//! namespace. The agent's SIGKILL goes to this init, which tears the whole namespace down.
//!
//! The code makes no assumption about being single-threaded: everything it does applies to the
//! calling thread (mount namespaces via an implied `CLONE_FS` copy, `pid`/`uts`/`ipc` per task
//! struct), so the same code runs inside the multi-threaded unit-test harness.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid};
use serde::{Deserialize, Serialize};

use super::error::{Result, RuntimeError};
use super::init::{log, parse_report, write_report};
use super::plan::LaunchPlan;
use super::rootfs;
use super::shim::SETUP_TIMEOUT;
use super::spec::{Network, Rlimit, RlimitResource};
use super::state::ContainerDir;
use super::status::Termination;
use super::user::Credentials;

/// What the init tells the shim over their socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InitReport {
    /// The task runs; `task_pid` is its pid inside the container, `init_tid` the id (inside the
    /// container) of the init's thread that holds the namespaces.
    Started {
        task_pid: u32,
        init_tid: u32,
    },
    Failed {
        message: String,
    },
    Exited {
        termination: Termination,
    },
}

/// What the shim tells the init over their socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ShimMessage {
    /// The init is in every task cgroup: it may start the task.
    CgroupsJoined,
}

/// Stage `init`. Its stdin is the socket to the shim; stdout is `/dev/null`; stderr `shim.log`.
pub(crate) fn run(dir: &Path) -> i32 {
    let control = match take_control_socket() {
        Ok(socket) => socket,
        Err(e) => {
            log(format_args!("container init: no control socket on stdin: {e}"));
            return 1;
        }
    };
    let send = |report: &InitReport| {
        if let Err(e) = write_report(&control, report) {
            log(format_args!("container init: cannot report {report:?} to the shim: {e}"));
        }
    };
    let task = match LaunchPlan::load(dir).and_then(|plan| setup(&plan, &ContainerDir::at(dir), &control)) {
        Ok(task) => task,
        Err(e) => {
            send(&InitReport::Failed { message: e.to_string() });
            return 1;
        }
    };
    send(&InitReport::Started { task_pid: task.as_raw() as u32, init_tid: nix::unistd::gettid().as_raw() as u32 });
    let termination = reap_until(task);
    send(&InitReport::Exited { termination });
    0
}

/// Takes the socket the shim passed as stdin and puts `/dev/null` in its place.
fn take_control_socket() -> std::io::Result<UnixStream> {
    let socket = std::io::stdin().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2_stdin(File::open("/dev/null")?)?;
    Ok(UnixStream::from(socket))
}

fn sys<T>(action: &str, result: nix::Result<T>) -> Result<T> {
    result.map_err(|e| RuntimeError::sys(action, e))
}

fn setup(plan: &LaunchPlan, cdir: &ContainerDir, control: &UnixStream) -> Result<Pid> {
    sys("arm the parent-death signal", nix::sys::prctl::set_pdeathsig(Signal::SIGKILL))?;
    if let Network::Join { path } = &plan.network {
        let netns = File::open(path).map_err(|e| RuntimeError::io("open network namespace", path, e))?;
        sys(&format!("join the network namespace {}", path.display()), setns(netns, CloneFlags::CLONE_NEWNET))?;
    }
    sys(
        "create mount, UTS and IPC namespaces",
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC),
    )?;
    if let Some(hostname) = &plan.hostname {
        sys(&format!("set the hostname to {hostname:?}"), nix::unistd::sethostname(hostname))?;
    }
    // Nothing mounted from here on may leak to the host; host unmounts still reach us.
    sys(
        "make mounts private",
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>),
    )?;

    let open_write =
        |path: &Path| OpenOptions::new().write(true).open(path).map_err(|e| RuntimeError::io("open log pipe", path, e));
    let stdout = open_write(&cdir.stdout_fifo())?;
    let stderr = open_write(&cdir.stderr_fifo())?;
    let stdin = File::open("/dev/null").map_err(|e| RuntimeError::io("open", "/dev/null", e))?;

    match &plan.rootfs {
        Some(rootfs_plan) => rootfs::enter(plan, rootfs_plan)?,
        None => {
            rootfs::mount_host_proc()?;
            if let Some(resolv_conf) = &plan.host_resolv_conf {
                rootfs::bind_over_host_file(resolv_conf, Path::new(super::plan::HOST_RESOLV_CONF))?;
            }
        }
    }
    apply_rlimits(&plan.rlimits)?;
    if let Some(user) = &plan.user {
        drop_privileges(user)?;
        // A credential change clears the parent-death signal; arm it again, then make sure the
        // shim did not die in between.
        sys("arm the parent-death signal", nix::sys::prctl::set_pdeathsig(Signal::SIGKILL))?;
    }
    // The shim moves this process into the task's cgroups while the above runs (the first
    // cgroup v1 migration waits for an RCU grace period, several milliseconds); the task must be
    // born inside them.
    wait_for_cgroups(control)?;
    if peer_gone(control) {
        return Err(RuntimeError::sys("reach the shim", nix::errno::Errno::EPIPE));
    }

    let mut command = command_in(&plan.program, &plan.argv0, &plan.args, &plan.env, &plan.cwd);
    command.stdin(Stdio::from(stdin)).stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr)).process_group(0);
    let child = command.spawn().map_err(|e| {
        RuntimeError::spec("command", format!("cannot be executed: `{}` in {}: {e}", plan.program, plan.cwd.display()))
    })?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Sets the task's rlimits on the calling process (inherited by what it executes).
pub(crate) fn apply_rlimits(rlimits: &[Rlimit]) -> Result<()> {
    for limit in rlimits {
        let resource = match limit.resource {
            RlimitResource::Nofile => Resource::RLIMIT_NOFILE,
            RlimitResource::Nproc => Resource::RLIMIT_NPROC,
            RlimitResource::Core => Resource::RLIMIT_CORE,
            RlimitResource::Stack => Resource::RLIMIT_STACK,
        };
        sys(
            &format!("set rlimit {:?} (raising a hard limit needs CAP_SYS_RESOURCE)", limit.resource),
            setrlimit(resource, limit.soft, limit.hard),
        )?;
    }
    Ok(())
}

/// Waits until the shim says this process is in the task's cgroups.
fn wait_for_cgroups(control: &UnixStream) -> Result<()> {
    let io = |e: std::io::Error| RuntimeError::Io {
        action: "hear from the shim over",
        path: "the control socket".into(),
        source: e,
    };
    control.set_read_timeout(Some(SETUP_TIMEOUT)).map_err(io)?;
    let mut reader = BufReader::new(control);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(RuntimeError::sys("hear from the shim (it went away)", nix::errno::Errno::EPIPE)),
            Ok(_) => {
                if let Some(ShimMessage::CgroupsJoined) = parse_report(&line) {
                    return control.set_read_timeout(None).map_err(io);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
}

/// The command with exactly the given argv, environment and working directory.
pub(crate) fn command_in(program: &str, argv0: &str, args: &[String], env: &[(String, String)], cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.arg0(argv0).args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v))).current_dir(cwd);
    command
}

/// `setgroups`, `setgid`, `setuid`, in that order (each needs the privilege the next drops).
pub(crate) fn drop_privileges(user: &Credentials) -> Result<()> {
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    sys(&format!("set the supplementary groups of `{}`", user.name), nix::unistd::setgroups(&groups))?;
    sys(&format!("set gid {} for `{}`", user.gid, user.name), nix::unistd::setgid(Gid::from_raw(user.gid)))?;
    sys(&format!("set uid {} for `{}`", user.uid, user.name), nix::unistd::setuid(Uid::from_raw(user.uid)))
}

/// Whether the other end of the socket is closed (the shim died).
fn peer_gone(socket: &UnixStream) -> bool {
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Reaps every child (orphans included) until the task itself ends.
fn reap_until(task: Pid) -> Termination {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == task => return Termination::Exited { code },
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == task => {
                return Termination::Signaled { signal: signal as i32 };
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Termination::Unknown { reason: format!("the container init cannot wait for the task: {e}") };
            }
        }
    }
}
