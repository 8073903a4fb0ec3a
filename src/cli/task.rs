//! `medos task run|list|show|kill` (DC/OS's `dcos task`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::config::Target;
use super::output;
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
}
