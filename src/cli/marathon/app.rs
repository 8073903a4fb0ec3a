//! `medos app …` (DC/OS's `dcos marathon app …`) against Marathon's `/v2/apps`.

use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Noun, UpdateInput, WaitArgs, app_path, array, call, clean_definition, created, deployment_id_of, force_query,
    normalize_id, num, read_source, source_of, stdin_is_terminal, truncate, update_input,
};
use crate::api::client::{Client, encode_key};
use crate::cli::config::Target;
use crate::cli::output;

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app from its Marathon JSON: a file, `-` or stdin, or an http(s) URL.
    Add {
        /// FILE, URL or `-`; without it the definition is read from stdin.
        source: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Apps with their tasks, health, deployments and waiting instances (--json: Marathon's apps).
    #[command(alias = "ls")]
    List,
    /// One app: definition, tasks, deployment, last failure, and why instances wait.
    Show {
        id: String,
        /// Show this version of the definition: a version, or -1 for the one before the current.
        #[arg(long, allow_hyphen_values = true)]
        app_version: Option<String>,
    },
    /// Change an app: KEY=VALUE properties (cpus=0.5 env='{"A":"1"}'), or a JSON definition
    /// from a file, URL or stdin. Changed fields replace the app's; the rest stays.
    Update {
        id: String,
        /// KEY=VALUE …, or one FILE, URL or `-`; nothing reads JSON from stdin.
        properties: Vec<String>,
        /// Override deployments in progress on this app.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Set the number of instances.
    Scale {
        id: String,
        instances: u32,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Start a stopped app (DC/OS's `app start`): N instances, 1 by default.
    Start {
        id: String,
        instances: Option<u32>,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Scale an app to 0 instances (DC/OS's `app stop`).
    Stop {
        id: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Replace every task with a new one (a rolling restart by the app's upgrade strategy).
    Restart {
        id: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove an app and kill its tasks.
    #[command(alias = "rm")]
    Remove {
        id: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Kill an app's tasks (all, one, or those on --host); Marathon replaces them unless --scale.
    Kill {
        id: String,
        /// Only this task.
        task_id: Option<String>,
        /// Lower the instance count by the tasks killed instead of replacing them.
        #[arg(long)]
        scale: bool,
        /// Forget the task's reservation too (one task only).
        #[arg(long, requires = "task_id")]
        wipe: bool,
        /// Only the tasks on this agent (hostname).
        #[arg(long, conflicts_with = "task_id")]
        host: Option<String>,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The app's versions, newest first.
    Versions {
        id: String,
        /// At most this many.
        #[arg(long)]
        max_count: Option<usize>,
    },
    /// DC/OS's spelling: `app version list ID`.
    #[command(subcommand, hide = true)]
    Version(VersionCommand),
    /// Go back to an earlier version: VERSION, or -N for N before the current (default -1).
    Rollback {
        id: String,
        /// VERSION, or -N (default -1).
        #[arg(value_name = "VERSION", allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    List {
        id: String,
        #[arg(long)]
        max_count: Option<usize>,
    },
}

/// `medos app …`.
pub async fn run(cmd: AppCommand, json: bool) -> Result<ExitCode> {
    let client = Target::resolve()?.client()?;
    execute(&client, cmd, json).await
}

pub async fn execute(client: &Client, cmd: AppCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        AppCommand::Add { source, wait } => add(client, source.as_deref(), &wait, json).await,
        AppCommand::List => list(client, json).await,
        AppCommand::Show { id, app_version } => show(client, &id, app_version.as_deref(), json).await,
        AppCommand::Update { id, properties, force, wait } => {
            let id = normalize_id(&id);
            // PUT creates an app that does not exist; an update must not.
            call(client, Method::GET, &app_path(&id), None, Noun::App).await?;
            let body = match update_input(&properties, stdin_is_terminal(), "app")? {
                UpdateInput::Properties(p) => p,
                UpdateInput::Source(s) => clean_definition(read_source(&s).await?),
            };
            put(client, &id, &body, force, &wait, json).await
        }
        AppCommand::Scale { id, instances, force, wait } => {
            put(client, &id, &json!({ "instances": instances }), force, &wait, json).await
        }
        AppCommand::Start { id, instances, force, wait } => {
            let app = get_app(client, &id).await?;
            let id = normalize_id(&id);
            let current = app["instances"].as_u64().unwrap_or(0);
            if current > 0 {
                eprintln!("Application '{id}' already started: {current} instances.");
                return Ok(ExitCode::FAILURE);
            }
            let n = instances.unwrap_or(1);
            if n == 0 {
                bail!("the number of instances must be positive: 0");
            }
            put(client, &id, &json!({ "instances": n }), force, &wait, json).await
        }
        AppCommand::Stop { id, force, wait } => {
            let app = get_app(client, &id).await?;
            let id = normalize_id(&id);
            if app["instances"].as_u64().unwrap_or(0) == 0 {
                eprintln!("Application '{id}' already stopped: 0 instances.");
                return Ok(ExitCode::FAILURE);
            }
            put(client, &id, &json!({ "instances": 0 }), force, &wait, json).await
        }
        AppCommand::Restart { id, force, wait } => {
            let app = get_app(client, &id).await?;
            let id = normalize_id(&id);
            if app["instances"].as_u64().unwrap_or(0) == 0 {
                eprintln!(
                    "Unable to perform rolling restart of application '{id}' because it has no running tasks \
                     (start it with `medos app scale {id} N`)"
                );
                return Ok(ExitCode::FAILURE);
            }
            let path = format!("{}/restart{}", app_path(&id), force_query(force));
            let answer = call(client, Method::POST, &path, None, Noun::App).await?;
            created(client, &answer, deployment_id_of(&answer), &wait, json).await
        }
        AppCommand::Remove { id, force, wait } => {
            let path = format!("{}{}", app_path(&id), force_query(force));
            let answer = call(client, Method::DELETE, &path, None, Noun::App).await?;
            created(client, &answer, deployment_id_of(&answer), &wait, json).await
        }
        AppCommand::Kill { id, task_id, scale, wipe, host, force, wait } => {
            kill(client, &id, task_id.as_deref(), KillOptions { scale, wipe, host, force }, &wait, json).await
        }
        AppCommand::Versions { id, max_count } | AppCommand::Version(VersionCommand::List { id, max_count }) => {
            versions(client, &id, max_count, json).await
        }
        AppCommand::Rollback { id, to, force, wait } => {
            let id = normalize_id(&id);
            let (list, current) = version_list(client, &id).await?;
            let target = resolve_version(&id, &list, current.as_deref(), to.as_deref())?;
            if !json {
                eprintln!("rolling {id} back to version {target}");
            }
            put(client, &id, &json!({ "version": target }), force, &wait, json).await
        }
    }
}

async fn get_app(client: &Client, id: &str) -> Result<Value> {
    let v = call(client, Method::GET, &app_path(id), None, Noun::App).await?;
    Ok(v["app"].clone())
}

/// `PUT /v2/apps/ID` (a partial update) and what follows a deployment.
async fn put(client: &Client, id: &str, body: &Value, force: bool, wait: &WaitArgs, json: bool) -> Result<ExitCode> {
    let path = format!("{}{}", app_path(id), force_query(force));
    let answer = call(client, Method::PUT, &path, Some(body), Noun::App).await?;
    created(client, &answer, deployment_id_of(&answer), wait, json).await
}

async fn add(client: &Client, source: Option<&str>, wait: &WaitArgs, json: bool) -> Result<ExitCode> {
    let source = source_of(source, stdin_is_terminal(), "app")?;
    let definition = clean_definition(read_source(&source).await?);
    check_app_definition(&definition)?;
    let id = normalize_id(definition["id"].as_str().unwrap_or_default());
    let answer = match client.marathon(Method::POST, "/v2/apps", Some(&definition)).await {
        Ok(a) => a,
        Err(e) if e.status() == Some(409) && e.to_string().contains("already exists") => {
            return Err(anyhow!("{e}\n(change it with `medos app update {id} FILE`, or remove it first)"));
        }
        Err(e) => return Err(super::with_hint(e, Noun::None)),
    };
    let deployment = match deployment_id_of(&answer) {
        Some(d) => Some(d),
        None => {
            let all =
                client.marathon(Method::GET, "/v2/deployments", None).await.map(|v| array(&v)).unwrap_or_default();
            all.iter()
                .find(|d| array(&d["affectedApps"]).iter().any(|a| a.as_str() == Some(id.as_str())))
                .and_then(|d| d["id"].as_str().map(str::to_string))
        }
    };
    created(client, &answer, deployment, wait, json).await
}

/// What `app add` refuses before asking Marathon: groups and definitions without an id.
pub fn check_app_definition(definition: &Value) -> Result<()> {
    if (definition.get("apps").is_some() || definition.get("groups").is_some()) && definition.get("cmd").is_none() {
        bail!("this is a group definition (it has \"apps\" or \"groups\"); add it with `medos group add`");
    }
    match definition.get("id").and_then(Value::as_str) {
        Some(id) if !id.trim().trim_matches('/').is_empty() => Ok(()),
        _ => bail!("the app definition has no \"id\"; Marathon needs one, e.g. \"id\": \"/my-app\""),
    }
}

async fn list(client: &Client, json: bool) -> Result<ExitCode> {
    let v = call(client, Method::GET, "/v2/apps", None, Noun::None).await?;
    let apps = array(&v["apps"]);
    if json {
        output::json(&apps);
        return Ok(ExitCode::SUCCESS);
    }
    let deployments = call(client, Method::GET, "/v2/deployments", None, Noun::None).await.map(|v| array(&v))?;
    // The queue only adds the WAITING column: an error there should not hide the apps.
    let queue = client.marathon(Method::GET, "/v2/queue", None).await.map(|v| array(&v["queue"])).unwrap_or_default();
    if apps.is_empty() {
        eprintln!("No apps. Add one with `medos app add app.json`.");
        return Ok(ExitCode::SUCCESS);
    }
    output::table(
        &["id", "mem", "cpus", "tasks", "health", "deployment", "waiting", "container", "cmd"],
        app_rows(&apps, &deployments, &queue),
    );
    Ok(ExitCode::SUCCESS)
}

/// DC/OS's app table: `ID MEM CPUS TASKS HEALTH DEPLOYMENT WAITING CONTAINER CMD`, by id.
/// WAITING is how many instances wait for resources (`medos queue` tells why).
pub fn app_rows(apps: &[Value], deployments: &[Value], queue: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            let id = a["id"].as_str().unwrap_or("?");
            let tasks = format!("{}/{}", a["tasksRunning"].as_u64().unwrap_or(0), a["instances"].as_u64().unwrap_or(0));
            let health = if array(&a["healthChecks"]).is_empty() {
                "---".to_string()
            } else {
                format!("{}/{}", a["tasksHealthy"].as_u64().unwrap_or(0), a["tasksRunning"].as_u64().unwrap_or(0))
            };
            let waiting = queue
                .iter()
                .find(|e| e["app"]["id"].as_str() == Some(id))
                .and_then(|e| e["count"].as_u64())
                .filter(|n| *n > 0)
                .map_or("---".to_string(), |n| n.to_string());
            vec![
                id.to_string(),
                num(&a["mem"]),
                num(&a["cpus"]),
                tasks,
                health,
                deployment_cell(a, deployments),
                waiting,
                container_of(a),
                truncate(&command_of(a), 35),
            ]
        })
        .collect();
    rows.sort();
    rows
}

/// The current actions of the app's deployments: `scale`, or `(restart, scale)`.
fn deployment_cell(app: &Value, deployments: &[Value]) -> String {
    let id = app["id"].as_str();
    let mut actions = Vec::new();
    for d in array(&app["deployments"]) {
        let Some(deployment) = deployments.iter().find(|x| x["id"] == d["id"]) else { continue };
        for action in array(&deployment["currentActions"]) {
            if action["app"].as_str() == id {
                actions.push(super::action_word(action["action"].as_str().unwrap_or("?")).to_string());
            }
        }
    }
    match actions.len() {
        0 => "---".into(),
        1 => actions.remove(0),
        _ => format!("({})", actions.join(", ")),
    }
}

fn container_of(app: &Value) -> String {
    match app["container"]["type"].as_str() {
        Some(t) => t.to_string(),
        None => "mesos".into(),
    }
}

fn image_of(app: &Value) -> Option<&str> {
    app["container"]["docker"]["image"].as_str().or_else(|| app["container"]["image"]["id"].as_str())
}

fn command_of(app: &Value) -> String {
    match app["cmd"].as_str() {
        Some(cmd) => cmd.to_string(),
        None => {
            let args: Vec<String> = array(&app["args"])
                .iter()
                .map(|a| a.as_str().map(str::to_string).unwrap_or_else(|| a.to_string()))
                .collect();
            args.join(" ")
        }
    }
}

async fn show(client: &Client, id: &str, version: Option<&str>, json: bool) -> Result<ExitCode> {
    let id = normalize_id(id);
    if let Some(spec) = version {
        let (list, current) = version_list(client, &id).await?;
        let v = if spec.starts_with('-') {
            resolve_version(&id, &list, current.as_deref(), Some(spec))?
        } else {
            spec.to_string()
        };
        let path = format!("{}/versions/{}", app_path(&id), version_segment(&v));
        let app = call(client, Method::GET, &path, None, Noun::App).await?;
        if json {
            output::json(&app);
        } else {
            print!("{}", summary(&app, &[], None));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let app = get_app(client, &id).await?;
    if json {
        output::json(&app);
        return Ok(ExitCode::SUCCESS);
    }
    let deployments = if array(&app["deployments"]).is_empty() {
        Vec::new()
    } else {
        client.marathon(Method::GET, "/v2/deployments", None).await.map(|v| array(&v)).unwrap_or_default()
    };
    let queue = client.marathon(Method::GET, "/v2/queue", None).await.map(|v| array(&v["queue"])).unwrap_or_default();
    let entry = queue.iter().find(|e| e["app"]["id"].as_str() == Some(id.as_str()));
    print!("{}", summary(&app, &deployments, entry));
    let tasks = array(&app["tasks"]);
    if !tasks.is_empty() {
        println!();
        output::table(&["task", "host", "state", "healthy", "started", "ports"], task_rows(&tasks));
    }
    Ok(ExitCode::SUCCESS)
}

/// `medos app show`'s text (without the task table).
pub fn summary(app: &Value, deployments: &[Value], queue_entry: Option<&Value>) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push(("id", app["id"].as_str().unwrap_or("?").to_string()));
    if let Some(v) = app["version"].as_str() {
        let config = app["versionInfo"]["lastConfigChangeAt"].as_str().filter(|c| *c != v);
        lines.push((
            "version",
            match config {
                Some(c) => format!("{v} (configuration of {c})"),
                None => v.to_string(),
            },
        ));
    }
    let instances = app["instances"].as_u64().unwrap_or(0);
    if app.get("tasksRunning").is_some() {
        let mut text = format!(
            "{}/{instances} running, {} staged",
            app["tasksRunning"].as_u64().unwrap_or(0),
            app["tasksStaged"].as_u64().unwrap_or(0)
        );
        if !array(&app["healthChecks"]).is_empty() {
            text.push_str(&format!(
                ", {} healthy, {} unhealthy",
                app["tasksHealthy"].as_u64().unwrap_or(0),
                app["tasksUnhealthy"].as_u64().unwrap_or(0)
            ));
        }
        lines.push(("instances", text));
    } else {
        lines.push(("instances", instances.to_string()));
    }
    lines.push(("needs", format!("{} (each instance)", super::queue::needs(app))));
    let command = command_of(app);
    if !command.is_empty() {
        lines.push(("command", command));
    }
    lines.push((
        "container",
        match image_of(app) {
            Some(image) => format!("{}, image {image}", container_of(app)),
            None if app["container"].is_object() => container_of(app),
            None => "none (runs on the agent's host)".into(),
        },
    ));
    let checks = array(&app["healthChecks"]);
    if !checks.is_empty() {
        let kinds: Vec<String> = checks
            .iter()
            .map(|c| {
                let protocol = c["protocol"].as_str().unwrap_or("HTTP");
                match c["path"].as_str() {
                    Some(p) => format!("{protocol} {p}"),
                    None => protocol.to_string(),
                }
            })
            .collect();
        lines.push(("health checks", kinds.join(", ")));
    }
    let labels: Vec<String> = app["labels"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    if !labels.is_empty() {
        lines.push(("labels", labels.join(", ")));
    }
    for d in array(&app["deployments"]) {
        let id = d["id"].as_str().unwrap_or("?");
        let text = match deployments.iter().find(|x| x["id"].as_str() == Some(id)) {
            Some(dep) => {
                let actions: Vec<String> = array(&dep["currentActions"])
                    .iter()
                    .filter(|a| a["app"] == app["id"])
                    .map(|a| super::action_word(a["action"].as_str().unwrap_or("?")).to_string())
                    .collect();
                format!(
                    "{id}: {} (step {}/{})",
                    if actions.is_empty() { "waiting for other apps".into() } else { actions.join(", ") },
                    dep["currentStep"].as_u64().unwrap_or(0),
                    dep["totalSteps"].as_u64().unwrap_or(0)
                )
            }
            None => id.to_string(),
        };
        lines.push(("deployment", text));
    }
    let failure = &app["lastTaskFailure"];
    if failure.is_object() {
        let mut text = format!(
            "{} of task {} on {} at {}",
            failure["state"].as_str().unwrap_or("?"),
            failure["taskId"].as_str().unwrap_or("?"),
            failure["host"].as_str().filter(|h| !h.is_empty()).unwrap_or("?"),
            failure["timestamp"].as_str().unwrap_or("?")
        );
        if let Some(m) = failure["message"].as_str().filter(|m| !m.is_empty()) {
            text.push_str(&format!(": {m}"));
        }
        lines.push(("last failure", text));
    }
    let mut extra = Vec::new();
    if let Some(entry) = queue_entry {
        let why = super::queue::explain(entry);
        if why.waiting > 0 {
            lines.push(("waiting", why.summary()));
            for (host, reasons) in &why.agents {
                extra.push(format!("  {host}: {}", reasons.join(", ")));
            }
            if let Some(hint) = why.hint() {
                extra.push(format!("  ({hint})"));
            }
        }
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 3;
    let mut text = String::new();
    for (key, value) in &lines {
        text.push_str(&format!("{:width$}{value}\n", format!("{key}:")));
        if *key == "waiting" {
            for line in &extra {
                text.push_str(&format!("{:width$}{}\n", "", line.trim_start()));
            }
        }
    }
    text
}

/// The tasks of `app show`: `TASK HOST STATE HEALTHY STARTED PORTS`.
pub fn task_rows(tasks: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let ports: Vec<String> = array(&t["ports"]).iter().map(num).collect();
            vec![
                t["id"].as_str().unwrap_or("?").to_string(),
                t["host"].as_str().unwrap_or("?").to_string(),
                t["state"].as_str().unwrap_or("-").to_string(),
                healthy(t),
                t["startedAt"].as_str().unwrap_or("-").to_string(),
                if ports.is_empty() { "-".into() } else { ports.join(",") },
            ]
        })
        .collect();
    rows.sort();
    rows
}

/// `true` when every health check passes, `false` when one fails, `-` without checks.
fn healthy(task: &Value) -> String {
    let results = array(&task["healthCheckResults"]);
    if results.is_empty() {
        return "-".into();
    }
    results.iter().all(|r| r["alive"].as_bool() == Some(true)).to_string()
}

/// DC/OS's Marathon task table: `APP HEALTHY STARTED HOST ID`, by app.
pub fn marathon_task_rows(tasks: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t["appId"].as_str().unwrap_or("?").to_string(),
                healthy(t),
                t["startedAt"].as_str().unwrap_or("N/A").to_string(),
                t["host"].as_str().unwrap_or("?").to_string(),
                t["id"].as_str().unwrap_or("?").to_string(),
            ]
        })
        .collect();
    rows.sort();
    rows
}

struct KillOptions {
    scale: bool,
    wipe: bool,
    host: Option<String>,
    force: bool,
}

async fn kill(
    client: &Client,
    id: &str,
    task_id: Option<&str>,
    o: KillOptions,
    wait: &WaitArgs,
    json: bool,
) -> Result<ExitCode> {
    let mut query = Vec::new();
    if o.scale {
        query.push("scale=true".to_string());
    }
    if o.wipe {
        query.push("wipe=true".to_string());
    }
    if let Some(h) = &o.host {
        query.push(format!("host={}", encode_key(h)));
    }
    if o.force {
        query.push("force=true".to_string());
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    let path = match task_id {
        Some(t) => format!("{}/tasks/{}{query}", app_path(id), encode_key(t)),
        None => format!("{}/tasks{query}", app_path(id)),
    };
    let answer = call(client, Method::DELETE, &path, None, Noun::App).await?;
    if let Some(deployment) = deployment_id_of(&answer) {
        return created(client, &answer, Some(deployment), wait, json).await;
    }
    if json {
        output::json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let killed: Vec<Value> = match answer.get("task") {
        Some(t) => vec![t.clone()],
        None => array(&answer["tasks"]),
    };
    if killed.is_empty() {
        eprintln!("no tasks matched; nothing was killed");
    }
    for t in &killed {
        println!("Killed task {}", t["id"].as_str().unwrap_or("?"));
    }
    if !killed.is_empty() && !o.scale {
        eprintln!("Marathon replaces them (use --scale to lower the instance count instead)");
    }
    Ok(ExitCode::SUCCESS)
}

/// A version as a path segment: times (`2015-09-25T15:13:48.343Z`) go as they are (`:` is
/// allowed in a path), anything else encoded.
fn version_segment(version: &str) -> String {
    if version.chars().all(|c| c.is_ascii_alphanumeric() || ":.-".contains(c)) {
        version.to_string()
    } else {
        encode_key(version).replace('/', "%2F")
    }
}

/// The app's versions, newest first, and its current version.
async fn version_list(client: &Client, id: &str) -> Result<(Vec<String>, Option<String>)> {
    let v = call(client, Method::GET, &format!("{}/versions", app_path(id)), None, Noun::App).await?;
    let mut list: Vec<String> = array(&v["versions"]).iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
    // ISO 8601 times in UTC sort as text.
    list.sort_by(|a, b| b.cmp(a));
    let current = get_app(client, id).await?["version"].as_str().map(str::to_string);
    Ok((list, current))
}

async fn versions(client: &Client, id: &str, max_count: Option<usize>, json: bool) -> Result<ExitCode> {
    let id = normalize_id(id);
    let (mut list, current) = version_list(client, &id).await?;
    if let Some(m) = max_count {
        list.truncate(m);
    }
    if json {
        output::json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    for v in &list {
        if Some(v) == current.as_ref() {
            println!("{v} (current)");
        } else {
            println!("{v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The version `rollback`/`show --app-version` mean: an absolute version as given, or `-N`
/// for N versions before the current (the default `-1`: the one before).
pub fn resolve_version(id: &str, versions: &[String], current: Option<&str>, spec: Option<&str>) -> Result<String> {
    let spec = spec.unwrap_or("-1");
    let Ok(n) = spec.parse::<i64>() else { return Ok(spec.to_string()) };
    if n >= 0 {
        bail!("relative versions are negative: -1 is the version before the current one (got {spec})");
    }
    let base = current.and_then(|c| versions.iter().position(|v| v == c)).unwrap_or(0);
    let index = base + n.unsigned_abs() as usize;
    versions.get(index).cloned().ok_or_else(|| {
        anyhow!(
            "app '{id}' has {} version{} before the current one, not {}; `medos app versions {id}` lists them",
            versions.len().saturating_sub(base + 1),
            if versions.len().saturating_sub(base + 1) == 1 { "" } else { "s" },
            n.unsigned_abs()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{app_list_example, deployments_example};
    use super::*;

    #[test]
    fn app_rows_follow_dcos_columns() {
        let apps = array(&app_list_example()["apps"]);
        // The app's deployment is the example's; it scales /myapp.
        let mut deployments = deployments_example();
        deployments[0]["id"] = json!("9538079c-3898-4e32-aa31-799bf9097f74");
        deployments[0]["currentActions"][0]["app"] = json!("/myapp");
        let queue = vec![json!({"app": {"id": "/myapp"}, "count": 3})];
        let rows = app_rows(&apps, deployments.as_array().unwrap(), &queue);
        assert_eq!(rows, vec![vec!["/myapp", "5", "0.1", "0/3", "---", "scale", "3", "mesos", "env && sleep 60"]]);
        // Without the deployment or the queue entry.
        let rows = app_rows(&apps, &[], &[]);
        assert_eq!(rows[0][5..7], ["---".to_string(), "---".to_string()]);
    }

    #[test]
    fn app_rows_show_health_docker_args_and_long_commands() {
        let apps = vec![
            json!({"id": "/b", "mem": 128.0, "cpus": 1, "instances": 2, "tasksRunning": 2, "tasksHealthy": 1,
                   "healthChecks": [{"protocol": "HTTP"}], "container": {"type": "DOCKER", "docker": {"image": "nginx"}},
                   "cmd": null, "args": ["nginx", "-g", "daemon off;"], "deployments": []}),
            json!({"id": "/a", "mem": 32, "cpus": 0.25, "instances": 1, "tasksRunning": 1, "healthChecks": [],
                   "cmd": "while true; do echo hello world from a long command; sleep 1; done", "deployments": []}),
        ];
        let rows = app_rows(&apps, &[], &[]);
        assert_eq!(rows[0][0], "/a", "sorted by id");
        assert_eq!(rows[0][8], "while true; do echo hello world ...");
        assert_eq!(rows[0][8].chars().count(), 35);
        assert_eq!(rows[1][1..5], ["128".to_string(), "1".into(), "2/2".into(), "1/2".into()]);
        assert_eq!(rows[1][7..], ["DOCKER".to_string(), "nginx -g daemon off;".into()]);
    }

    #[test]
    fn show_tells_what_runs_and_why_instances_wait() {
        let mut app = app_list_example()["apps"][0].clone();
        app["deployments"] = json!([{"id": "97c136bf-5a28-4821-9d94-480d9fbb01c8"}]);
        app["id"] = json!("/foo");
        app["lastTaskFailure"] = json!({
            "appId": "/foo", "host": "agent-1", "message": "Command exited with status 1", "state": "TASK_FAILED",
            "taskId": "foo.1", "timestamp": "2015-09-25T15:14:00.000Z", "version": "2015-09-25T15:13:48.343Z"
        });
        let entry = json!({
            "app": {"id": "/foo", "mem": 5, "cpus": 0.1, "constraints": [["hostname", "UNIQUE", ""]]},
            "count": 3,
            "lastUnusedOffers": [
                {"offer": {"hostname": "agent-1"}, "reason": ["UnfulfilledConstraint"]},
                {"offer": {"hostname": "agent-2"}, "reason": ["InsufficientMemory"]}
            ]
        });
        let text = summary(&app, deployments_example().as_array().unwrap(), Some(&entry));
        let expect = [
            "id:            /foo\n",
            "version:       2015-09-25T15:13:48.343Z\n",
            "instances:     0/3 running, 0 staged\n",
            "needs:         0.1 cpus, 5 MiB mem, 2 ports, constraint hostname:UNIQUE (each instance)\n",
            "command:       env && sleep 60\n",
            "container:     none (runs on the agent's host)\n",
            "deployment:    97c136bf-5a28-4821-9d94-480d9fbb01c8: scale (step 1/1)\n",
            "last failure:  TASK_FAILED of task foo.1 on agent-1 at 2015-09-25T15:14:00.000Z: Command exited with status 1\n",
            "waiting:       3 instances waiting: 2 of 2 agents declined: constraint hostname:UNIQUE (1), insufficient mem (1)\n",
            "               agent-1: constraint hostname:UNIQUE\n",
            "               agent-2: insufficient mem\n",
        ];
        for line in expect {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn task_tables() {
        let tasks = vec![
            json!({
                "id": "myapp.b", "appId": "/myapp", "host": "agent-1", "state": "TASK_RUNNING", "ports": [31000, 31001],
                "startedAt": "2015-09-25T15:14:00.000Z", "healthCheckResults": [{"alive": true}, {"alive": false}]
            }),
            json!({"id": "myapp.a", "appId": "/myapp", "host": "agent-2", "state": "TASK_STAGING", "ports": []}),
        ];
        let rows = task_rows(&tasks);
        assert_eq!(rows[0], ["myapp.a", "agent-2", "TASK_STAGING", "-", "-", "-"]);
        assert_eq!(rows[1], ["myapp.b", "agent-1", "TASK_RUNNING", "false", "2015-09-25T15:14:00.000Z", "31000,31001"]);
        let rows = marathon_task_rows(&tasks);
        assert_eq!(rows[0], ["/myapp", "-", "N/A", "agent-2", "myapp.a"]);
    }

    #[test]
    fn rollback_targets() {
        let versions: Vec<String> = ["v3", "v2", "v1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(resolve_version("/a", &versions, Some("v3"), None).unwrap(), "v2");
        assert_eq!(resolve_version("/a", &versions, Some("v3"), Some("-2")).unwrap(), "v1");
        assert_eq!(resolve_version("/a", &versions, Some("v2"), Some("-1")).unwrap(), "v1");
        assert_eq!(
            resolve_version("/a", &versions, None, Some("2015-01-01T00:00:00.000Z")).unwrap(),
            "2015-01-01T00:00:00.000Z"
        );
        let e = resolve_version("/a", &versions, Some("v3"), Some("-3")).unwrap_err().to_string();
        assert!(e.contains("has 2 versions before the current one, not 3"), "{e}");
        assert!(resolve_version("/a", &versions, Some("v3"), Some("1")).is_err());
        let e = resolve_version("/a", &versions[..1], Some("v3"), None).unwrap_err().to_string();
        assert!(e.contains("has 0 versions"), "{e}");
    }

    #[test]
    fn add_refuses_groups_and_missing_ids() {
        assert!(check_app_definition(&json!({"id": "/a", "cmd": "x"})).is_ok());
        let e = check_app_definition(&json!({"id": "/g", "apps": []})).unwrap_err().to_string();
        assert!(e.contains("medos group add"));
        let e = check_app_definition(&json!({"cmd": "x"})).unwrap_err().to_string();
        assert!(e.contains("no \"id\""));
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AppCommand,
    }

    #[test]
    fn command_lines_parse() {
        use clap::Parser;
        let Cli { cmd: AppCommand::Update { id, properties, force, wait } } = Cli::try_parse_from([
            "t",
            "update",
            "/a",
            "cpus=1",
            "env={\"A\":\"1\"}",
            "--force",
            "--wait",
            "--timeout",
            "30s",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (id.as_str(), properties.len(), force, wait.wait, wait.timeout.as_secs()),
            ("/a", 2, true, true, 30)
        );
        let Cli { cmd: AppCommand::Rollback { to, .. } } = Cli::try_parse_from(["t", "rollback", "a", "-2"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(to.as_deref(), Some("-2"));
        let Cli { cmd: AppCommand::Kill { host, scale, task_id, .. } } =
            Cli::try_parse_from(["t", "kill", "a", "--scale", "--host", "agent-1"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((host.as_deref(), scale, task_id), (Some("agent-1"), true, None));
        assert!(Cli::try_parse_from(["t", "kill", "a", "--wipe"]).is_err(), "--wipe needs a task");
        let Cli { cmd: AppCommand::Version(VersionCommand::List { id, .. }) } =
            Cli::try_parse_from(["t", "version", "list", "a"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(id, "a");
        let Cli { cmd: AppCommand::Add { source, wait } } = Cli::try_parse_from(["t", "add"]).unwrap() else {
            panic!()
        };
        assert_eq!((source, wait.wait, wait.timeout.as_secs()), (None, false, 600));
    }
}
