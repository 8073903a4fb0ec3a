//! `medos group …` (DC/OS's `dcos marathon group …`) against Marathon's `/v2/groups`.

use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Noun, UpdateInput, WaitArgs, array, call, clean_definition, created, deployment_id_of, force_query, group_path,
    normalize_id, read_source, source_of, stdin_is_terminal, update_input,
};
use crate::api::client::Client;
use crate::cli::config::Target;
use crate::cli::output;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group (its apps and subgroups) from Marathon JSON: a file, `-` or stdin, or a URL.
    Add {
        /// FILE, URL or `-`; without it the definition is read from stdin.
        source: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Groups with how many apps each holds (subgroups included).
    #[command(alias = "ls")]
    List,
    /// One group: its subgroups, dependencies and apps.
    Show { id: String },
    /// Change a group: KEY=VALUE properties, or a JSON definition from a file, URL or stdin.
    Update {
        id: String,
        /// KEY=VALUE …, or one FILE, URL or `-`; nothing reads JSON from stdin.
        properties: Vec<String>,
        /// Override deployments in progress on the group's apps.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Multiply the instances of every app in the group by FACTOR (e.g. 2, or 0.5).
    Scale {
        id: String,
        factor: f64,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove a group with all its apps and subgroups.
    #[command(alias = "rm")]
    Remove {
        id: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `medos group …`.
pub async fn run(cmd: GroupCommand, json: bool) -> Result<ExitCode> {
    let client = Target::resolve()?.client()?;
    execute(&client, cmd, json).await
}

pub async fn execute(client: &Client, cmd: GroupCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        GroupCommand::Add { source, wait } => {
            let source = source_of(source.as_deref(), stdin_is_terminal(), "group")?;
            let definition = clean_definition(read_source(&source).await?);
            check_group_definition(&definition)?;
            let id = normalize_id(definition["id"].as_str().unwrap_or_default());
            let answer = match client.marathon(Method::POST, "/v2/groups", Some(&definition)).await {
                Ok(a) => a,
                Err(e) if e.status() == Some(409) && e.to_string().contains("already exists") => {
                    return Err(anyhow!("{e}\n(change it with `medos group update {id} FILE`, or remove it first)"));
                }
                Err(e) => return Err(super::with_hint(e, Noun::None)),
            };
            created(client, &answer, deployment_id_of(&answer), &wait, json).await
        }
        GroupCommand::List => {
            let root = call(client, Method::GET, "/v2/groups", None, Noun::None).await?;
            if json {
                output::json(&array(&root["groups"]));
                return Ok(ExitCode::SUCCESS);
            }
            let rows = group_rows(&root);
            if rows.is_empty() {
                eprintln!("No groups. Apps with ids like /prod/web are in group /prod; `medos group add` creates one.");
                return Ok(ExitCode::SUCCESS);
            }
            output::table(&["id", "apps"], rows);
            Ok(ExitCode::SUCCESS)
        }
        GroupCommand::Show { id } => {
            let group = call(client, Method::GET, &group_path(&id), None, Noun::Group).await?;
            if json {
                output::json(&group);
                return Ok(ExitCode::SUCCESS);
            }
            print!("{}", summary(&group));
            let mut apps = Vec::new();
            collect_apps(&group, &mut apps);
            if !apps.is_empty() {
                // The app list carries task counts and deployments; a group's apps may not.
                let listed =
                    client.marathon(Method::GET, "/v2/apps", None).await.map(|v| array(&v["apps"])).unwrap_or_default();
                let apps: Vec<Value> = apps
                    .into_iter()
                    .map(|a| listed.iter().find(|l| l["id"] == a["id"]).cloned().unwrap_or(a))
                    .collect();
                let deployments =
                    client.marathon(Method::GET, "/v2/deployments", None).await.map(|v| array(&v)).unwrap_or_default();
                let queue = client
                    .marathon(Method::GET, "/v2/queue", None)
                    .await
                    .map(|v| array(&v["queue"]))
                    .unwrap_or_default();
                println!();
                output::table(
                    &["id", "mem", "cpus", "tasks", "health", "deployment", "waiting", "container", "cmd"],
                    super::app::app_rows(&apps, &deployments, &queue),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        GroupCommand::Update { id, properties, force, wait } => {
            let id = normalize_id(&id);
            // PUT creates a group that does not exist; an update must not.
            call(client, Method::GET, &group_path(&id), None, Noun::Group).await?;
            let body = match update_input(&properties, stdin_is_terminal(), "group")? {
                UpdateInput::Properties(p) => p,
                UpdateInput::Source(s) => clean_definition(read_source(&s).await?),
            };
            put(client, &id, &body, force, &wait, json).await
        }
        GroupCommand::Scale { id, factor, force, wait } => {
            if !factor.is_finite() || factor < 0.0 {
                bail!("the scale factor must be a number of 0 or more (got {factor})");
            }
            put(client, &id, &json!({ "scaleBy": factor }), force, &wait, json).await
        }
        GroupCommand::Remove { id, force, wait } => {
            if normalize_id(&id) == "/" {
                bail!("refusing to remove the root group (every app); remove groups or apps one by one");
            }
            let path = format!("{}{}", group_path(&id), force_query(force));
            let answer = call(client, Method::DELETE, &path, None, Noun::Group).await?;
            created(client, &answer, deployment_id_of(&answer), &wait, json).await
        }
    }
}

async fn put(client: &Client, id: &str, body: &Value, force: bool, wait: &WaitArgs, json: bool) -> Result<ExitCode> {
    let path = format!("{}{}", group_path(id), force_query(force));
    let answer = call(client, Method::PUT, &path, Some(body), Noun::Group).await?;
    created(client, &answer, deployment_id_of(&answer), wait, json).await
}

/// What `group add` refuses before asking Marathon.
pub fn check_group_definition(definition: &Value) -> Result<()> {
    if definition.get("cmd").is_some() || definition.get("args").is_some() || definition.get("container").is_some() {
        bail!("this is an app definition (it has \"cmd\", \"args\" or \"container\"); add it with `medos app add`");
    }
    match definition.get("id").and_then(Value::as_str) {
        Some(id) if !id.trim().trim_matches('/').is_empty() => Ok(()),
        _ => bail!("the group definition has no \"id\"; Marathon needs one, e.g. \"id\": \"/prod\""),
    }
}

/// Every group below the root with how many apps it holds, subgroups included (DC/OS's
/// `ID APPS`), by id.
pub fn group_rows(root: &Value) -> Vec<Vec<String>> {
    fn walk(group: &Value, rows: &mut Vec<Vec<String>>) -> usize {
        let mut count = array(&group["apps"]).len();
        for child in array(&group["groups"]) {
            count += walk(&child, rows);
        }
        rows.push(vec![group["id"].as_str().unwrap_or("?").to_string(), count.to_string()]);
        count
    }
    let mut rows = Vec::new();
    for child in array(&root["groups"]) {
        walk(&child, &mut rows);
    }
    rows.sort();
    rows
}

/// Every app of a group and its subgroups.
pub fn collect_apps(group: &Value, out: &mut Vec<Value>) {
    out.extend(array(&group["apps"]));
    for child in array(&group["groups"]) {
        collect_apps(&child, out);
    }
}

/// `medos group show`'s text (the app table follows it).
pub fn summary(group: &Value) -> String {
    let mut text = format!("id:            {}\n", group["id"].as_str().unwrap_or("?"));
    if let Some(v) = group["version"].as_str() {
        text.push_str(&format!("version:       {v}\n"));
    }
    let deps: Vec<&str> = group["dependencies"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !deps.is_empty() {
        text.push_str(&format!("depends on:    {}\n", deps.join(", ")));
    }
    let groups: Vec<&str> = group["groups"].as_array().into_iter().flatten().filter_map(|g| g["id"].as_str()).collect();
    if !groups.is_empty() {
        text.push_str(&format!("groups:        {}\n", groups.join(", ")));
    }
    let mut apps = Vec::new();
    collect_apps(group, &mut apps);
    text.push_str(&format!("apps:          {}\n", apps.len()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Marathon's `GET /v2/groups` (root group), as in `examples/group.json`.
    fn root() -> Value {
        json!({
            "id": "/", "apps": [{"id": "/loose"}], "version": "2015-09-25T15:13:48.343Z",
            "groups": [
                {"id": "/product", "apps": [], "dependencies": [], "groups": [
                    {"id": "/product/database", "apps": [{"id": "/product/database/mongo"}, {"id": "/product/database/mysql"}], "groups": []},
                    {"id": "/product/service", "dependencies": ["/product/database"], "groups": [],
                     "apps": [{"id": "/product/service/rails-app"}, {"id": "/product/service/play-app"}]}
                ]},
                {"id": "/infra", "apps": [{"id": "/infra/dns"}], "groups": []}
            ]
        })
    }

    #[test]
    fn groups_count_their_apps_with_subgroups() {
        assert_eq!(
            group_rows(&root()),
            vec![
                vec!["/infra".to_string(), "1".into()],
                vec!["/product".into(), "4".into()],
                vec!["/product/database".into(), "2".into()],
                vec!["/product/service".into(), "2".into()],
            ]
        );
    }

    #[test]
    fn summary_names_subgroups_dependencies_and_apps() {
        let product = &root()["groups"][0];
        let text = summary(product);
        assert!(text.contains("id:            /product\n"));
        assert!(text.contains("groups:        /product/database, /product/service\n"));
        assert!(text.contains("apps:          4\n"));
        let service = &product["groups"][1];
        assert!(summary(service).contains("depends on:    /product/database\n"));
    }

    #[test]
    fn add_refuses_apps_and_missing_ids() {
        assert!(check_group_definition(&json!({"id": "/g", "apps": []})).is_ok());
        assert!(
            check_group_definition(&json!({"id": "/a", "cmd": "x"})).unwrap_err().to_string().contains("medos app add")
        );
        assert!(check_group_definition(&json!({"apps": []})).unwrap_err().to_string().contains("no \"id\""));
    }
}
