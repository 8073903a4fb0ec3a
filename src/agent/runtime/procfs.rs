//! Processes named safely across agent restarts: a pid plus its start time.
//!
//! A bare pid written to a checkpoint can be reused by an unrelated process once the original
//! dies, so every pid the runtime records is paired with the `starttime` field of
//! `/proc/PID/stat` (clock ticks since boot); a process "is" the recorded one only if both match.
//! A zombie counts as dead: on hosts whose PID 1 does not reap orphans (the project's test
//! machines) an exited shim stays a zombie forever.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process identified by pid and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcIdentity {
    pub pid: u32,
    pub start_ticks: u64,
}

/// The fields of `/proc/PID/stat` the runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub state: char,
    pub ppid: u32,
    pub start_ticks: u64,
}

impl ProcIdentity {
    /// The identity of a live process.
    pub fn of(pid: u32) -> io::Result<Self> {
        let stat = read_stat(pid)?;
        Ok(ProcIdentity { pid, start_ticks: stat.start_ticks })
    }

    /// Whether the recorded process still runs (not exited, not a zombie, pid not reused).
    pub fn is_alive(&self) -> bool {
        matches!(read_stat(self.pid), Ok(s) if s.start_ticks == self.start_ticks && !matches!(s.state, 'Z' | 'X' | 'x'))
    }

    /// Sends `signal` if the process is still the recorded one.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        if !self.is_alive() {
            return Err(nix::errno::Errno::ESRCH);
        }
        nix::sys::signal::kill(Pid::from_raw(self.pid as i32), signal)
    }

    /// Sends `signal` to the process group this process leads.
    pub fn signal_group(&self, signal: Signal) -> nix::Result<()> {
        if !self.is_alive() {
            return Err(nix::errno::Errno::ESRCH);
        }
        nix::sys::signal::killpg(Pid::from_raw(self.pid as i32), signal)
    }

    /// A pidfd of the recorded process, opened before its identity is checked (so it cannot
    /// belong to a process that reused the pid). `Ok(None)`: it has exited; `Err`: the kernel
    /// has no pidfds (before 5.3).
    pub fn pidfd(&self) -> io::Result<Option<OwnedFd>> {
        let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) else { return Ok(None) };
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK) {
            Ok(fd) => Ok(self.is_alive().then_some(fd)),
            Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reaps the process if it is an exited child of ours (the agent may be a child subreaper
    /// that adopted the shim).
    pub fn reap_if_our_zombie(&self) {
        if let Ok(stat) = read_stat(self.pid)
            && stat.start_ticks == self.start_ticks
            && stat.state == 'Z'
            && stat.ppid == std::process::id()
        {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(self.pid as i32), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        }
    }
}

pub(crate) fn read_stat(pid: u32) -> io::Result<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unparsable /proc/{pid}/stat")))
}

/// Parses `/proc/PID/stat`; the command name may contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        // Field 22 of the file; field 3 (state) is index 0 here.
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// The pids, in every nested pid namespace (outermost first), of `pid` (`NSpid` in status).
pub(crate) fn ns_pids(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line["NSpid:".len()..].split_whitespace().map(|p| p.parse().ok()).collect()
}

/// Finds the child of `parent` whose pid inside its own pid namespace is `inner_pid`, by scanning
/// `/proc` (kernels without `CONFIG_PROC_CHILDREN` have no `children` file).
pub(crate) fn find_child(parent: u32, inner_pid: u32) -> Option<ProcIdentity> {
    let entries = std::fs::read_dir(Path::new("/proc")).ok()?;
    let pids = entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()));
    find_child_among(pids, parent, inner_pid)
}

/// Like [`find_child`], among the given host pids only (say, the members of a cgroup).
pub(crate) fn find_child_among(
    pids: impl IntoIterator<Item = u32>,
    parent: u32,
    inner_pid: u32,
) -> Option<ProcIdentity> {
    pids.into_iter().find_map(|pid| {
        let stat = read_stat(pid).ok()?;
        (stat.ppid == parent && ns_pids(pid).and_then(|p| p.last().copied()) == Some(inner_pid))
            .then_some(ProcIdentity { pid, start_ticks: stat.start_ticks })
    })
}

/// The host tid of the thread of process `pid` whose tid inside its pid namespace is
/// `inner_tid`.
pub(crate) fn find_thread(pid: u32, inner_tid: u32) -> Option<u32> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())).find(|tid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|t| t.parse::<u32>().ok())
            == Some(inner_tid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_stat(line), Some(Stat { state: 'S', ppid: 17, start_ticks: 987654 }));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn identity_tells_a_live_process_from_a_dead_or_reused_pid() {
        let me = ProcIdentity::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert!(!ProcIdentity { start_ticks: me.start_ticks + 1, ..me }.is_alive(), "reused pid");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcIdentity::of(child.id()).unwrap();
        // Wait until it is a zombie (exited, not yet reaped): that counts as dead.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while read_stat(child.id()).map(|s| s.state != 'Z').unwrap_or(false) {
            assert!(std::time::Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!id.is_alive());
        child.wait().unwrap();
        assert!(!id.is_alive());
        assert_eq!(ns_pids(std::process::id()).unwrap().last(), Some(&std::process::id()));
    }
}
