//! `medos deployment list|watch|rollback|stop` (DC/OS's `dcos marathon deployment …`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::{Noun, WaitArgs, WaitEnd, action_word, array, call, created, deployment_id_of, normalize_id, wait_for};
use crate::api::client::{Client, encode_key};
use crate::cli::config::Target;
use crate::cli::output;

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Deployments in progress (of one app, if given).
    #[command(alias = "ls")]
    List { app_id: Option<String> },
    /// Follow a deployment until it has finished, printing its progress and why instances wait.
    Watch {
        deployment_id: String,
        /// Stop after this many looks (it is not an error).
        #[arg(long)]
        max_count: Option<u64>,
        /// Seconds between looks.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Fail if it has not finished within this long (90s, 10m, 1h); default: no limit.
        #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Undo a deployment: a new deployment brings its apps back to before it.
    Rollback {
        deployment_id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Stop a deployment where it is; its apps stay as they are now.
    Stop { deployment_id: String },
}

/// `medos deployment …`.
pub async fn run(cmd: DeploymentCommand, json: bool) -> Result<ExitCode> {
    let client = Target::resolve()?.client()?;
    execute(&client, cmd, json).await
}

pub async fn execute(client: &Client, cmd: DeploymentCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        DeploymentCommand::List { app_id } => {
            let mut deployments = array(&call(client, Method::GET, "/v2/deployments", None, Noun::None).await?);
            if let Some(id) = &app_id {
                let id = normalize_id(id);
                deployments.retain(|d| array(&d["affectedApps"]).iter().any(|a| a.as_str() == Some(id.as_str())));
            }
            if json {
                output::json(&deployments);
            } else if deployments.is_empty() {
                match app_id {
                    Some(id) => eprintln!("There are no deployments for '{}'", normalize_id(&id)),
                    None => eprintln!("There are no deployments"),
                }
            } else {
                output::table(&["app", "action", "progress", "id"], rows(&deployments));
            }
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::Watch { deployment_id, max_count, interval, timeout } => {
            let interval = Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
            if json {
                return watch_json(client, &deployment_id, max_count, interval).await;
            }
            if wait_for(client, &deployment_id, timeout, interval, max_count).await? == WaitEnd::NotFound {
                eprintln!(
                    "deployment {deployment_id} is not in progress: it has finished, or the id is wrong \
                     (`medos deployment list` shows those in progress)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::Rollback { deployment_id, wait } => {
            let path = format!("/v2/deployments/{}", encode_key(&deployment_id));
            let answer = call(client, Method::DELETE, &path, None, Noun::Deployment).await?;
            created(client, &answer, deployment_id_of(&answer), &wait, json).await
        }
        DeploymentCommand::Stop { deployment_id } => {
            let path = format!("/v2/deployments/{}?force=true", encode_key(&deployment_id));
            call(client, Method::DELETE, &path, None, Noun::Deployment).await?;
            if !json {
                eprintln!("Stopped deployment {deployment_id}; its apps stay as they are now");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// DC/OS's `deployment watch --json`: the deployment's JSON at every look until it is gone.
async fn watch_json(client: &Client, id: &str, max_count: Option<u64>, interval: Duration) -> Result<ExitCode> {
    let mut count = 0;
    while max_count.is_none_or(|m| count < m) {
        let deployments = array(&call(client, Method::GET, "/v2/deployments", None, Noun::None).await?);
        let Some(d) = deployments.into_iter().find(|d| d["id"].as_str() == Some(id)) else { break };
        output::json(&d);
        count += 1;
        tokio::time::sleep(interval).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// DC/OS's deployment table: `APP ACTION PROGRESS ID` (progress: steps done / steps).
pub fn rows(deployments: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let apps: Vec<&str> =
                d["affectedApps"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let actions = array(&d["currentActions"]);
            let several = {
                let mut ids: Vec<&str> =
                    actions.iter().filter_map(|a| a["app"].as_str().or_else(|| a["pod"].as_str())).collect();
                ids.dedup();
                ids.len() > 1
            };
            let action: Vec<String> = actions
                .iter()
                .map(|a| {
                    let word = action_word(a["action"].as_str().unwrap_or("?"));
                    match a["app"].as_str().or_else(|| a["pod"].as_str()) {
                        Some(target) if several => format!("{word} {target}"),
                        _ => word.to_string(),
                    }
                })
                .collect();
            let step = d["currentStep"].as_u64().unwrap_or(1).saturating_sub(1);
            vec![
                if apps.is_empty() { "-".into() } else { apps.join("\n") },
                if action.is_empty() { "-".into() } else { action.join("\n") },
                format!("{step}/{}", d["totalSteps"].as_u64().unwrap_or(0)),
                d["id"].as_str().unwrap_or("?").to_string(),
            ]
        })
        .collect();
    rows.sort();
    rows
}

#[cfg(test)]
mod tests {
    use super::super::tests::deployments_example;
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_rows_follow_dcos_columns() {
        let rows = rows(deployments_example().as_array().unwrap());
        assert_eq!(rows, vec![vec!["/foo", "scale", "0/1", "97c136bf-5a28-4821-9d94-480d9fbb01c8"]]);
        let two = json!([{
            "id": "d2", "affectedApps": ["/a", "/b"], "currentStep": 2, "totalSteps": 3,
            "currentActions": [{"action": "RestartApplication", "app": "/a"}, {"action": "StartApplication", "app": "/b"}]
        }]);
        let rows = super::rows(two.as_array().unwrap());
        assert_eq!(rows[0], ["/a\n/b", "restart /a\nstart /b", "1/3", "d2"]);
    }
}
