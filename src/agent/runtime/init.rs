//! `medos __container-init STAGE DIR …`: the hidden entry point of every process the runtime
//! starts, and how the runtime starts it.
//!
//! The runtime needs single-purpose processes that begin with no threads (namespaces and
//! credentials are per thread or need a lone thread) and without `unsafe` (`fork` is unsafe in
//! Rust), so instead of forking it re-executes its own binary (`/proc/self/exe`, which still
//! works after the file on disk was replaced by an upgrade) with a stage name:
//!
//! | stage | parent | does |
//! |---|---|---|
//! | `spawn DIR` | agent | `setsid`, starts `shim`, exits at once: the shim is orphaned and is never the agent's child |
//! | `shim DIR` | `spawn` | creates the pid namespace, starts `init`, relays logs, records the exit ([`super::shim`]) |
//! | `init DIR` | shim | PID 1 of the container: namespaces, mounts, user, starts and reaps the task ([`super::pid1`]) |
//! | `exec DIR REQUEST` | agent | joins a running container's cgroups and namespaces but the mount namespace, starts `exec-enter`, reports its end ([`super::nsenter`]) |
//! | `exec-enter DIR REQUEST` | `exec` | born in the container's pid namespace: opens stdio, joins the mount namespace, becomes the command (`exec`) |
//!
//! Stages talk to their parent with JSON lines prefixed by `REPORT_PREFIX` on a pipe or
//! socket; anything else on that channel is ignored. In unit tests the binary is the test
//! harness, not `medos`: `InitProgram::TestHarness` re-executes it with a filter that runs
//! only the test that calls `dispatch`, passing the stage in an environment variable.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The subcommand `main` routes here before any async runtime starts.
pub const SUBCOMMAND: &str = "__container-init";

/// Marks protocol lines between stages.
pub(crate) const REPORT_PREFIX: &str = "medos-runtime-report ";

/// Entry point of the hidden `__container-init` subcommand; runs before any async runtime.
pub fn run(args: &[String]) -> std::process::ExitCode {
    std::process::ExitCode::from(dispatch(args).clamp(0, 255) as u8)
}

/// The stage arguments if `argv` is `PROGRAM __container-init ARGS…` (all UTF-8), so `main` can
/// dispatch a stage without parsing the whole command line.
pub fn stage_args(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Vec<String>> {
    let mut argv = argv.into_iter().skip(1);
    if argv.next()? != SUBCOMMAND {
        return None;
    }
    argv.map(|a| a.into_string().ok()).collect()
}

/// Runs one stage and returns its exit code.
pub(crate) fn dispatch(args: &[String]) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["spawn", dir] => super::shim::spawn(Path::new(dir)),
        ["shim", dir] => super::shim::run(Path::new(dir)),
        ["init", dir] => super::pid1::run(Path::new(dir)),
        ["exec", dir, request] => super::nsenter::run(Path::new(dir), Path::new(request)),
        ["exec-enter", dir, request] => super::nsenter::enter(Path::new(dir), Path::new(request)),
        _ => {
            eprintln!(
                "error: `medos {SUBCOMMAND}` is internal to the agent's container runtime (got {args:?}); do not run it by hand"
            );
            2
        }
    }
}

/// How to start a runtime stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InitProgram {
    /// `PATH __container-init STAGE …`: the medos binary.
    Subcommand { path: PathBuf },
    /// The unit-test harness: `PATH TEST --exact …` with the stage in `TEST_STAGE_ENV`.
    #[cfg(test)]
    TestHarness { path: PathBuf, test: String },
}

/// The environment variable carrying the stage arguments in test-harness mode.
#[cfg(test)]
pub(crate) const TEST_STAGE_ENV: &str = "MEDOS_TEST_CONTAINER_INIT";

impl InitProgram {
    /// This very binary, which must be `medos` (its `main` routes [`SUBCOMMAND`] here).
    pub fn current_binary() -> Self {
        InitProgram::Subcommand { path: PathBuf::from("/proc/self/exe") }
    }

    /// A command that runs `stage` with `args`.
    pub(crate) fn command(&self, stage: &str, args: &[&Path]) -> std::process::Command {
        let mut cmd = self.base_command(stage, args);
        // Do not pin the agent's working directory (it could be unmounted later).
        cmd.current_dir("/");
        cmd
    }

    fn base_command(&self, stage: &str, args: &[&Path]) -> std::process::Command {
        match self {
            InitProgram::Subcommand { path } => {
                let mut cmd = std::process::Command::new(path);
                cmd.arg(SUBCOMMAND).arg(stage).args(args);
                cmd
            }
            #[cfg(test)]
            InitProgram::TestHarness { path, test } => {
                let mut cmd = std::process::Command::new(path);
                cmd.args([test.as_str(), "--exact", "--nocapture", "--test-threads=1", "-q", "--color=never"]);
                let mut stage_args = vec![stage.to_string()];
                stage_args.extend(args.iter().map(|p| p.to_string_lossy().into_owned()));
                cmd.env(TEST_STAGE_ENV, serde_json::to_string(&stage_args).unwrap_or_default());
                cmd
            }
        }
    }
}

/// Writes one report line to `out`.
pub(crate) fn write_report<T: Serialize>(mut out: impl Write, report: &T) -> std::io::Result<()> {
    let json = serde_json::to_string(report).map_err(std::io::Error::other)?;
    out.write_all(format!("{REPORT_PREFIX}{json}\n").as_bytes())?;
    out.flush()
}

/// Parses a report line; `None` for anything else (a test harness banner, say).
pub(crate) fn parse_report<T: for<'de> Deserialize<'de>>(line: &str) -> Option<T> {
    serde_json::from_str(line.trim_end().strip_prefix(REPORT_PREFIX)?).ok()
}

/// Reads lines until a report of type `T` (skipping anything else); `None` at EOF.
pub(crate) async fn next_report<T: for<'de> Deserialize<'de>>(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> Option<T> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {
                if let Some(report) = parse_report(&line) {
                    return Some(report);
                }
            }
        }
    }
}

/// Reports to the parent on stdout.
pub(crate) fn report_on_stdout<T: Serialize>(report: &T) {
    if let Err(e) = write_report(std::io::stdout().lock(), report) {
        eprintln!("medos-runtime[{}]: cannot report to the parent: {e}", std::process::id());
    }
}

/// A diagnostic line in the stage's stderr (the container's `shim.log`).
pub(crate) fn log(message: std::fmt::Arguments<'_>) {
    eprintln!("medos-runtime[{}]: {message}", std::process::id());
}
