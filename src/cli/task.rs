//! `medos task run|list|show|kill` (DC/OS's `dcos task`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::config::Target;
use super::output;
use crate::api::client::{Client, ClientError};
use crate::api::sandbox::{ExecOutput, ExecStart, WindowSize};
use crate::api::tasks::RunTask;
use crate::core::{Task, TaskState};

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Launch a one-off task; prints its id as the first line.
    Run(RunArgs),
    /// Tasks and their states.
    #[command(alias = "ls")]
    List {
        /// Include tasks that have ended.
        #[arg(long)]
        completed: bool,
    },
    /// One task in detail (a unique prefix of the id is enough).
    Show { id: String },
    /// Kill a task: SIGTERM, then SIGKILL after the grace period.
    Kill {
        id: String,
        /// Seconds between SIGTERM and SIGKILL (default: the task's own).
        #[arg(long)]
        grace: Option<f64>,
    },
    /// Print the end of a task's stdout (or stderr, or another sandbox file); --follow streams it.
    Log(LogArgs),
    /// Run a command inside a running task (its namespaces and cgroups), like `docker exec`.
    Exec(ExecArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, default_value = "task")]
    pub name: String,
    /// Run inside this image (loaded with `medos image load`) instead of on the host.
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long, default_value_t = 0.1)]
    pub cpus: f64,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 32.0)]
    pub mem: f64,
    #[arg(long, default_value_t = 0.0)]
    pub disk: f64,
    /// Number of host ports to assign (PORT0, PORT1, … in the environment).
    #[arg(long, default_value_t = 0)]
    pub ports: u16,
    /// KEY=VALUE (repeat).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// Wait for the task to end and exit with its exit code.
    #[arg(long)]
    pub wait: bool,
    /// The command: one argument runs with /bin/sh -c; several run directly, without a shell.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

impl RunArgs {
    fn request(&self) -> Result<RunTask> {
        let mut env = BTreeMap::new();
        for pair in &self.env {
            let Some((k, v)) = pair.split_once('=') else { bail!("--env {pair:?}: expected KEY=VALUE") };
            env.insert(k.to_string(), v.to_string());
        }
        let (cmd, args) = match self.command.as_slice() {
            [one] => (Some(one.clone()), None),
            many => (None, Some(many.to_vec())),
        };
        Ok(RunTask {
            name: Some(self.name.clone()),
            cmd,
            args,
            image: self.image.clone(),
            cpus: self.cpus,
            mem: self.mem,
            disk: self.disk,
            ports: self.ports,
            env,
            user: self.user.clone(),
            kill_grace_seconds: None,
            health_checks: Vec::new(),
        })
    }
}

/// The exit code `--wait` ends with: the task's own, or shell-style 128+signal for kills.
pub fn exit_code_of(task: &Task) -> i32 {
    match (task.state, task.exit_code) {
        (TaskState::TASK_FINISHED, _) => 0,
        (_, Some(code)) => code,
        (TaskState::TASK_KILLED, None) => 143,
        _ => 1,
    }
}

fn host_of(task: &Task) -> String {
    task.agent_id.clone()
}

pub async fn run(cmd: TaskCommand, json: bool) -> Result<std::process::ExitCode> {
    let client = Target::resolve()?.client()?;
    match cmd {
        TaskCommand::Run(args) => {
            let task = client.run_task(&args.request()?).await?;
            println!("{}", task.id);
            if !args.wait {
                if json {
                    output::json(&task);
                }
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let mut last = task.state;
            let task = loop {
                let task = client.task(&task.id).await?;
                if task.state != last {
                    eprintln!("{}", task.state.as_str());
                    last = task.state;
                }
                if task.state.is_terminal() {
                    break task;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            if json {
                output::json(&task);
            } else if !task.message.is_empty() && task.state != TaskState::TASK_FINISHED {
                eprintln!("{}", task.message);
            }
            let code = exit_code_of(&task).clamp(0, 255) as u8;
            return Ok(std::process::ExitCode::from(code));
        }
        TaskCommand::List { completed } => {
            let tasks = client.tasks(completed).await?;
            if json {
                output::json(&tasks);
            } else {
                let rows = tasks
                    .iter()
                    .map(|t| vec![t.spec.name.clone(), host_of(t), t.state.as_str().into(), t.id.clone()])
                    .collect();
                output::table(&["name", "agent", "state", "id"], rows);
            }
        }
        TaskCommand::Show { id } => {
            let task = client.task(&id).await?;
            output::json(&task);
        }
        TaskCommand::Log(args) => return log(&client, args).await,
        TaskCommand::Exec(args) => return exec(&client, args).await,
        TaskCommand::Kill { id, grace } => {
            let task = client.kill_task(&id, grace).await?;
            if json {
                output::json(&task);
            } else {
                eprintln!("killing {}", task.id);
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The task (a unique prefix of its id is enough).
    pub id: String,
    /// The file in the task's sandbox: stdout, stderr, or another path relative to the sandbox.
    #[arg(default_value = "stdout")]
    pub file: String,
    /// Keep printing what the task writes; ends once the task has ended and all is printed.
    #[arg(long, short)]
    pub follow: bool,
    /// How many lines from the end to print first.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub lines: usize,
}

/// Bytes asked for in one read.
const LOG_CHUNK: u64 = 64 * 1024;
/// How long `--follow` rides out an unreachable agent or master.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(30);

/// The offset where the last `lines` lines of the file begin.
async fn tail_offset(client: &Client, id: &str, file: &str, lines: usize) -> Result<u64, ClientError> {
    let size = client.read_task_file(id, file, -1, 0).await?.offset;
    if lines == 0 {
        return Ok(size);
    }
    let (mut end, mut newlines) = (size, 0);
    while end > 0 {
        let start = end.saturating_sub(LOG_CHUNK);
        let chunk = client.read_task_file(id, file, start as i64, end - start).await?;
        // The data may stop short of `end` (a character cut at the end is left out), never past it.
        let bytes = chunk.data.as_bytes();
        if chunk.offset != start || bytes.is_empty() {
            // The file shrank meanwhile (rotated): print it from its start.
            return Ok(0);
        }
        for (i, b) in bytes.iter().enumerate().rev() {
            let pos = start + i as u64;
            // A final newline ends the last line rather than starting another.
            if *b == b'\n' && pos + 1 != size {
                newlines += 1;
                if newlines == lines {
                    return Ok(pos + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

fn print_bytes(out: &mut impl std::io::Write, data: &[u8]) -> Result<()> {
    out.write_all(data).and_then(|()| out.flush()).context("writing to stdout")
}

/// Whether an error may pass while following (an agent or master restarting).
fn transient(e: &ClientError) -> bool {
    matches!(e, ClientError::Unreachable { .. } | ClientError::Request { .. }) || e.status() == Some(503)
}

/// `medos task log TASK [FILE] [--follow] [--lines N]`.
async fn log(client: &Client, args: LogArgs) -> Result<std::process::ExitCode> {
    let task = client.task(&args.id).await?;
    let (id, file) = (task.id.clone(), args.file.as_str());
    let mut offset = loop {
        match tail_offset(client, &id, file, args.lines).await {
            Ok(offset) => break offset,
            // Not written yet: a follower waits for it while the task may still write it.
            Err(e) if args.follow && e.status() == Some(404) && !client.task(&id).await?.state.is_terminal() => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) if e.status() == Some(404) => {
                bail!("{e}\ntask {id} has no {file} (it is {}); `medos task show {id}` tells why", task.state.as_str())
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut stdout = std::io::stdout();
    let (mut ended, mut trouble_since) = (false, None::<std::time::Instant>);
    loop {
        let chunk = match client.read_task_file(&id, file, offset as i64, LOG_CHUNK).await {
            Ok(chunk) => {
                trouble_since = None;
                chunk
            }
            Err(e) if args.follow && transient(&e) => {
                let since = *trouble_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > FOLLOW_PATIENCE {
                    return Err(anyhow::Error::new(e).context(format!("following {file} of task {id}")));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if chunk.offset < offset {
            // Rotated or truncated: the file starts anew.
            offset = 0;
            continue;
        }
        if !chunk.data.is_empty() {
            print_bytes(&mut stdout, chunk.data.as_bytes())?;
            offset = chunk.offset + chunk.data.len() as u64;
            continue;
        }
        // Drained. Without --follow that is the end; with it, the end comes once the task has
        // ended and one more read after that found nothing new.
        if !args.follow || ended {
            return Ok(std::process::ExitCode::SUCCESS);
        }
        match client.task(&id).await {
            Ok(t) if t.state.is_terminal() => ended = true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) if transient(&e) => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Send this terminal's stdin to the process.
    #[arg(short, long)]
    pub interactive: bool,
    /// Run the process on a terminal (with -i on a terminal: raw mode, and the size follows).
    #[arg(short, long)]
    pub tty: bool,
    /// The task (a unique prefix of its id is enough).
    pub id: String,
    /// The command and its arguments, run directly (no shell): `-- sh -c '…'` for one.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// This terminal's size, if stdout or stdin is one.
fn window_size() -> Option<WindowSize> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some(WindowSize { rows: ws.ws_row, cols: ws.ws_col })
}

/// Puts the terminal on stdin in raw mode until dropped (keys go to the remote terminal).
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Result<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("switching the terminal to raw mode")?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// The exit code of an exec: the process's, or 128 + its signal.
fn exec_exit_code(code: Option<i32>, signal: Option<i32>) -> u8 {
    match (code, signal) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        (None, None) => 1,
    }
}

/// `medos task exec [-i] [-t] TASK -- CMD…`: exits with the process's exit code.
async fn exec(client: &Client, args: ExecArgs) -> Result<std::process::ExitCode> {
    use std::io::{IsTerminal, Read};
    let raw = args.tty && args.interactive && std::io::stdin().is_terminal();
    let tty = args.tty.then(|| window_size().unwrap_or(WindowSize { rows: 24, cols: 80 }));
    let start = ExecStart { command: args.command.clone(), tty, stdin: args.interactive };
    let mut session = client.exec(&args.id, &start).await?;
    // Restored when this function returns, error or not (before main prints the error).
    let _terminal = if raw { Some(RawTerminal::enter()?) } else { None };
    // Stdin is read on a thread of its own: a blocked read never keeps the CLI from exiting.
    let (input_tx, mut input) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    if args.interactive {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if input_tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    } else {
        drop(input_tx);
    }
    let mut stdin_open = args.interactive;
    let mut winch =
        if raw { Some(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?) } else { None };
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        tokio::select! {
            output = session.next() => match output? {
                Some(ExecOutput::Stdout(b)) => print_bytes(&mut stdout, &b)?,
                Some(ExecOutput::Stderr(b)) => print_bytes(&mut stderr, &b)?,
                Some(ExecOutput::Started { .. }) => {}
                Some(ExecOutput::Exit { code, signal }) => {
                    session.close().await;
                    return Ok(std::process::ExitCode::from(exec_exit_code(code, signal)));
                }
                None => bail!("the exec session ended without reporting how the process ended"),
            },
            data = input.recv(), if stdin_open => match data {
                Some(data) => session.stdin(&data).await?,
                None => {
                    stdin_open = false;
                    session.close_stdin().await?;
                }
            },
            Some(()) = async {
                match winch.as_mut() {
                    Some(w) => w.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(size) = window_size() {
                    session.resize(size).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn one_argument_is_a_shell_command_several_are_argv() {
        let one = T::try_parse_from(["t", "--", "echo $HOME"]).unwrap().run.request().unwrap();
        assert_eq!((one.cmd.as_deref(), one.args), (Some("echo $HOME"), None));
        let many = T::try_parse_from(["t", "--env", "A=1", "--", "ls", "-l"]).unwrap().run.request().unwrap();
        assert_eq!(many.args.unwrap(), ["ls", "-l"]);
        assert_eq!(many.env["A"], "1");
        let bad = T::try_parse_from(["t", "--env", "nope", "--", "x"]).unwrap().run.request().unwrap_err();
        assert!(bad.to_string().contains("KEY=VALUE"));
    }

    #[derive(Parser)]
    struct Io {
        #[command(subcommand)]
        cmd: TaskCommand,
    }

    #[test]
    fn log_and_exec_parse_like_their_docker_counterparts() {
        let Io { cmd: TaskCommand::Log(log) } = Io::try_parse_from(["t", "log", "abc"]).unwrap() else { panic!() };
        assert_eq!((log.id.as_str(), log.file.as_str(), log.follow, log.lines), ("abc", "stdout", false, 10));
        let parsed = Io::try_parse_from(["t", "log", "-f", "-n", "3", "abc", "stderr"]).unwrap();
        let Io { cmd: TaskCommand::Log(log) } = parsed else { panic!() };
        assert_eq!((log.file.as_str(), log.follow, log.lines), ("stderr", true, 3));

        let parsed = Io::try_parse_from(["t", "exec", "-it", "abc", "--", "sh", "-c", "ls -l"]).unwrap();
        let Io { cmd: TaskCommand::Exec(exec) } = parsed else { panic!() };
        assert!(exec.interactive && exec.tty);
        assert_eq!(exec.id, "abc");
        assert_eq!(exec.command, ["sh", "-c", "ls -l"]);
        // Without `--`, everything after the task is the command, flags included.
        let Io { cmd: TaskCommand::Exec(exec) } = Io::try_parse_from(["t", "exec", "abc", "ls", "-l"]).unwrap() else {
            panic!()
        };
        assert_eq!(exec.command, ["ls", "-l"]);
        assert!(!exec.interactive && !exec.tty);
        assert!(Io::try_parse_from(["t", "exec", "abc"]).is_err(), "a command is required");
    }

    #[test]
    fn exec_exit_codes_follow_the_shell() {
        assert_eq!(exec_exit_code(Some(0), None), 0);
        assert_eq!(exec_exit_code(Some(7), None), 7);
        assert_eq!(exec_exit_code(None, Some(9)), 137);
        assert_eq!(exec_exit_code(Some(300), None), 255);
        assert_eq!(exec_exit_code(None, None), 1);
    }
}
