//! The Marathon CLI (DC/OS's `dcos marathon …`): `medos app`, `medos group`,
//! `medos deployment`, `medos queue`, and the DC/OS spellings under `medos marathon …`.
//!
//! Every command talks to Marathon's REST API (`/v2/…`) through [`Client::marathon`] and works
//! on Marathon's JSON as it comes (`serde_json::Value`), so the CLI accepts whatever the
//! documented API answers. What the commands print is computed by pure functions (rows,
//! summaries, the "why is it waiting?" explanation), tested here on Marathon's documented
//! examples; each `execute` takes a [`Client`], so tests can drive the commands directly.

pub mod app;
pub mod deployment;
pub mod group;
pub mod queue;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value};

use super::config::Target;
use super::output;
use crate::api::client::{Client, ClientError, encode_key};

/// `medos marathon …`: the DC/OS CLI's spellings of the same commands.
#[derive(Debug, Subcommand)]
pub enum MarathonCommand {
    /// Apps: add, list, show, update, scale, restart, remove, kill, versions, rollback.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Groups of apps: add, list, show, update, scale, remove.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Deployments in progress: list, watch, rollback, stop.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// Tasks of Marathon apps.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Instances waiting to be launched, and why.
    Queue(queue::QueueArgs),
    /// Marathon's `/v2/info`: version, leader, framework id, configuration.
    About,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Tasks of all apps, or of one app.
    #[command(alias = "ls")]
    List {
        /// Only this app's tasks.
        app_id: Option<String>,
    },
    /// One task as Marathon shows it (JSON).
    Show { task_id: String },
}

/// `medos marathon …`.
pub async fn run(cmd: MarathonCommand, json: bool) -> Result<ExitCode> {
    let client = Target::resolve()?.client()?;
    execute(&client, cmd, json).await
}

pub async fn execute(client: &Client, cmd: MarathonCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        MarathonCommand::App(cmd) => app::execute(client, cmd, json).await,
        MarathonCommand::Group(cmd) => group::execute(client, cmd, json).await,
        MarathonCommand::Deployment(cmd) => deployment::execute(client, cmd, json).await,
        MarathonCommand::Queue(args) => queue::execute(client, args, json).await,
        MarathonCommand::Task(cmd) => task(client, cmd, json).await,
        MarathonCommand::About => {
            output::json(&call(client, Method::GET, "/v2/info", None, Noun::None).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn task(client: &Client, cmd: TaskCommand, json: bool) -> Result<ExitCode> {
    match cmd {
        TaskCommand::List { app_id } => {
            let path = match &app_id {
                Some(id) => format!("{}/tasks", app_path(id)),
                None => "/v2/tasks".to_string(),
            };
            let v = call(client, Method::GET, &path, None, Noun::App).await?;
            let tasks = array(&v["tasks"]);
            if json {
                output::json(&tasks);
            } else {
                output::table(&["app", "healthy", "started", "host", "id"], app::marathon_task_rows(&tasks));
            }
        }
        TaskCommand::Show { task_id } => {
            let v = call(client, Method::GET, "/v2/tasks", None, Noun::None).await?;
            let task = array(&v["tasks"]).into_iter().find(|t| t["id"].as_str() == Some(task_id.as_str()));
            match task {
                Some(t) => output::json(&t),
                None => bail!("Task '{task_id}' does not exist (`medos marathon task list` shows the tasks)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Calls and errors

/// What a 404 is about, for the hint that follows the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noun {
    App,
    Group,
    Deployment,
    None,
}

/// A Marathon call whose errors say what to do next.
pub async fn call(client: &Client, method: Method, path: &str, body: Option<&Value>, noun: Noun) -> Result<Value> {
    client.marathon(method, path, body).await.map_err(|e| with_hint(e, noun))
}

/// Adds what to do to an API error: look up ids, override a deployment, log in.
pub fn with_hint(e: ClientError, noun: Noun) -> anyhow::Error {
    let hint = match (e.status(), noun) {
        (Some(404), Noun::App) => Some("`medos app list` shows the apps"),
        (Some(404), Noun::Group) => Some("`medos group list` shows the groups"),
        (Some(404), Noun::Deployment) => Some("`medos deployment list` shows the deployments in progress"),
        (Some(409), _) if e.to_string().contains("locked") => {
            let id = locking_deployment(&e.to_string()).unwrap_or_else(|| "ID".into());
            return anyhow!(
                "{e}\n(wait for it with `medos deployment watch {id}`, undo it with `medos deployment rollback {id}`, \
                 or override it with --force)"
            );
        }
        (Some(401), _) => Some("log in again with `medos auth login`"),
        (Some(403), _) => Some("your user may not do this; log in as another with `medos auth login`"),
        _ => None,
    };
    match hint {
        Some(h) => anyhow!("{e}\n({h})"),
        None => anyhow!(e),
    }
}

/// The first deployment named in a "locked" error (the client lists them as `deployments: a, b`).
fn locking_deployment(message: &str) -> Option<String> {
    let line = message.lines().find_map(|l| l.trim().strip_prefix("deployments: "))?;
    line.split(',').next().map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

/// `/v2/apps/ID` for an app id (with or without the leading slash).
pub fn app_path(id: &str) -> String {
    format!("/v2/apps{}", encode_key(&normalize_id(id)))
}

/// `/v2/groups/ID`.
pub fn group_path(id: &str) -> String {
    let id = normalize_id(id);
    if id == "/" { "/v2/groups".to_string() } else { format!("/v2/groups{}", encode_key(&id)) }
}

/// Marathon ids are absolute paths: `foo` means `/foo`; a trailing slash is dropped.
pub fn normalize_id(id: &str) -> String {
    let trimmed = id.trim().trim_end_matches('/');
    if trimmed.starts_with('/') { trimmed.to_string() } else { format!("/{trimmed}") }
}

/// `?force=true` when forced.
pub fn force_query(force: bool) -> &'static str {
    if force { "?force=true" } else { "" }
}

/// The elements of a JSON array (none for anything else).
pub fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// A JSON number as people write it: `128`, `0.5`; strings as they are; `-` for nothing.
pub fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            (None, Some(f)) => format!("{f}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Cuts `text` to `max` characters, ending in `...` when cut (DC/OS's truncated columns).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

// ---------------------------------------------------------------------------------------------
// Definitions from files, stdin and URLs

/// Where a definition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(std::path::PathBuf),
    Url(String),
}

/// `FILE`, `-` (stdin), an http(s) URL, or nothing: stdin unless it is a terminal.
pub fn source_of(arg: Option<&str>, stdin_is_terminal: bool, what: &str) -> Result<Source> {
    match arg {
        None if stdin_is_terminal => bail!(
            "no {what} definition given: name a JSON file or an http(s) URL, or pipe the JSON into stdin \
             (e.g. `medos {what} add < {what}.json`)"
        ),
        None | Some("-") => Ok(Source::Stdin),
        Some(a) if a.starts_with("http://") || a.starts_with("https://") => Ok(Source::Url(a.to_string())),
        Some(a) => Ok(Source::File(a.into())),
    }
}

/// Largest definition read from a URL.
const MAX_DEFINITION: usize = 16 * 1024 * 1024;

/// Reads and parses a JSON definition.
pub async fn read_source(source: &Source) -> Result<Value> {
    let (text, from) = match source {
        Source::Stdin => {
            let text = tokio::task::spawn_blocking(|| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
            })
            .await
            .context("reading stdin")?
            .context("reading the definition from stdin")?;
            (text, "stdin".to_string())
        }
        Source::File(path) => {
            let text = tokio::fs::read_to_string(path).await.with_context(|| format!("reading {}", path.display()))?;
            (text, path.display().to_string())
        }
        Source::Url(url) => (fetch_url(url).await?, url.clone()),
    };
    parse_definition(&text, &from)
}

/// Parses a definition's text, naming where it came from in errors.
pub fn parse_definition(text: &str, from: &str) -> Result<Value> {
    if text.trim().is_empty() {
        bail!("{from} is empty; expected a JSON object");
    }
    let value: Value = serde_json::from_str(text).with_context(|| format!("{from} is not valid JSON"))?;
    if !value.is_object() {
        bail!("{from} holds JSON but not an object (a definition is one JSON object)");
    }
    Ok(value)
}

async fn fetch_url(url: &str) -> Result<String> {
    crate::pki::install_crypto_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .context("setting up HTTP")?;
    let resp =
        http.get(url).send().await.map_err(|e| anyhow!("fetching {url}: {}", crate::api::client::describe(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("fetching {url}: the server answered {status}");
    }
    let bytes = resp.bytes().await.map_err(|e| anyhow!("fetching {url}: {}", crate::api::client::describe(&e)))?;
    if bytes.len() > MAX_DEFINITION {
        bail!("{url} is larger than {} MiB; that is no app definition", MAX_DEFINITION / 1024 / 1024);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| anyhow!("{url} is not UTF-8 text"))
}

/// Fields Marathon adds to what it shows (`medos app show --json`) that are not part of a
/// definition: dropped so a shown app can be edited and sent back.
const READ_ONLY: &[&str] = &[
    "tasks",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "tasksStats",
    "deployments",
    "readinessCheckResults",
    "lastTaskFailure",
    "versionInfo",
];

/// A definition without Marathon's status fields (in nested groups' apps too). `version` is
/// kept only when it is alone (that body means "roll back to this version").
pub fn clean_definition(mut value: Value) -> Value {
    if let Some(o) = value.as_object_mut() {
        for key in READ_ONLY {
            o.remove(*key);
        }
        if o.len() > 1 {
            o.remove("version");
        }
        for nested in ["apps", "groups"] {
            if let Some(Value::Array(items)) = o.get_mut(nested) {
                for item in items.iter_mut() {
                    *item = clean_definition(item.take());
                }
            }
        }
    }
    value
}

// ---------------------------------------------------------------------------------------------
// `key=value` properties (`dcos marathon app update ID cpus=2 env='{"A":"1"}'`)

/// The JSON type of a top-level field of an app or group, as in Marathon's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    /// An object or a string (`unreachableStrategy: "disabled"`).
    ObjectOrString,
}

fn field_type(key: &str) -> Option<FieldType> {
    use FieldType::*;
    Some(match key {
        "id" | "cmd" | "user" | "executor" | "version" | "role" | "killSelection" => String,
        "cpus" | "mem" | "disk" | "backoffFactor" | "scaleBy" => Number,
        "instances" | "gpus" | "backoffSeconds" | "maxLaunchDelaySeconds" | "taskKillGracePeriodSeconds" => Integer,
        "requirePorts" | "tty" | "enforceRole" => Boolean,
        "args"
        | "constraints"
        | "uris"
        | "fetch"
        | "ports"
        | "portDefinitions"
        | "healthChecks"
        | "readinessChecks"
        | "dependencies"
        | "acceptedResourceRoles"
        | "storeUrls"
        | "networks"
        | "apps"
        | "groups" => Array,
        "env" | "labels" | "container" | "upgradeStrategy" | "ipAddress" | "residency" | "secrets" | "check"
        | "executorResources" | "resourceLimits" => Object,
        "unreachableStrategy" => ObjectOrString,
        _ => return None,
    })
}

/// Strips one pair of matching quotes, as DC/OS's CLI does (`cmd='sleep 10'` after a shell
/// that kept them).
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() > 1 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Parses one `key=value` into the JSON the field takes; `null` clears a field.
pub fn parse_property(item: &str) -> Result<(String, Value)> {
    let Some((key, raw)) = item.split_once('=') else {
        bail!("{item:?} is not a property: expected KEY=VALUE, e.g. cpus=0.5 or env='{{\"A\":\"1\"}}'");
    };
    let key = unquote(key.trim()).to_string();
    if key.is_empty() {
        bail!("{item:?}: the key before '=' is empty");
    }
    let value = unquote(raw);
    let Some(kind) = field_type(&key) else {
        // A field this CLI does not know: JSON if it parses as JSON, else a string; Marathon
        // validates it.
        return Ok((key, serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))));
    };
    if value == "null" {
        return Ok((key, Value::Null));
    }
    let parsed = match kind {
        FieldType::String => Value::String(value.to_string()),
        FieldType::Number => {
            let n: f64 = value.parse().map_err(|_| anyhow!("{key}={value}: {key} is a number"))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| anyhow!("{key}={value}: not a finite number"))?
        }
        FieldType::Integer => {
            let n: i64 = value.parse().map_err(|_| anyhow!("{key}={value}: {key} is a whole number"))?;
            Value::from(n)
        }
        FieldType::Boolean => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => bail!("{key}={value}: {key} is true or false"),
        },
        FieldType::Array => match serde_json::from_str::<Value>(value) {
            Ok(v @ Value::Array(_)) => v,
            _ => bail!("{key}={value}: {key} is a JSON array, e.g. {key}='[…]'"),
        },
        FieldType::Object => match serde_json::from_str::<Value>(value) {
            Ok(v @ Value::Object(_)) => v,
            _ => bail!("{key}={value}: {key} is a JSON object, e.g. {key}='{{…}}'"),
        },
        FieldType::ObjectOrString => match serde_json::from_str::<Value>(value) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::String(value.to_string()),
        },
    };
    Ok((key, parsed))
}

/// `key=value …` as one JSON object; a key given twice is an error (as in DC/OS).
pub fn parse_properties(items: &[String]) -> Result<Value> {
    let mut object = Map::new();
    for item in items {
        let (key, value) = parse_property(item)?;
        if object.contains_key(&key) {
            bail!("key {key:?} was given more than once");
        }
        object.insert(key, value);
    }
    Ok(Value::Object(object))
}

/// What `update ID [FILE|URL|-|key=value …]` sends: properties when every argument has a `=`
/// (and is no existing file), else one definition source.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateInput {
    Properties(Value),
    Source(Source),
}

pub fn update_input(args: &[String], stdin_is_terminal: bool, what: &str) -> Result<UpdateInput> {
    match args {
        [] if stdin_is_terminal => bail!(
            "nothing to update: give KEY=VALUE properties (e.g. instances=3 cpus=0.5), a JSON file or URL, \
             or pipe JSON into stdin"
        ),
        [] => Ok(UpdateInput::Source(Source::Stdin)),
        [one] if !one.contains('=') || one.starts_with("http://") || one.starts_with("https://") => {
            Ok(UpdateInput::Source(source_of(Some(one), stdin_is_terminal, what)?))
        }
        [one] if std::path::Path::new(one).is_file() => Ok(UpdateInput::Source(Source::File(one.into()))),
        many => Ok(UpdateInput::Properties(parse_properties(many)?)),
    }
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

// ---------------------------------------------------------------------------------------------
// Deployments: ids in answers, and waiting for them

/// `--wait` and `--timeout`, shared by every command that starts a deployment.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until the deployment has finished, printing its progress (exits non-zero if it
    /// has not finished within --timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits: seconds, or with a unit (90s, 10m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `90`, `90s`, `10m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = digits.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 10m, 1h)"))?;
    let factor = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "ms" => 0.001,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m or h)")),
    };
    if !(n * factor).is_finite() || n < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(n * factor))
}

/// The deployment id in an answer: `deploymentId` (updates, removals, restarts) or the first
/// of `deployments` (an app just created).
pub fn deployment_id_of(answer: &Value) -> Option<String> {
    answer["deploymentId"]
        .as_str()
        .or_else(|| answer["deployments"].get(0).and_then(|d| d["id"].as_str()))
        .map(str::to_string)
}

/// Prints "Created deployment ID" (or the answer with --json), then waits if asked.
pub async fn created(
    client: &Client,
    answer: &Value,
    deployment: Option<String>,
    wait: &WaitArgs,
    json: bool,
) -> Result<ExitCode> {
    if json {
        output::json(answer);
    } else if let Some(id) = &deployment {
        println!("Created deployment {id}");
    }
    match (&deployment, wait.wait) {
        (Some(id), true) => {
            if wait_for(client, id, Some(wait.timeout), Duration::from_secs(1), None).await? == WaitEnd::NotFound {
                eprintln!("deployment {id} finished");
            }
            Ok(ExitCode::SUCCESS)
        }
        (None, true) => {
            eprintln!("nothing to wait for: the answer named no deployment");
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// The deployment is gone from `/v2/deployments`: finished (or replaced by a rollback).
    Finished,
    /// It was not there at the first look (finished already, or a wrong id); nothing printed.
    NotFound,
    /// `max_polls` reached.
    Polled,
}

/// Polls `/v2/deployments` until deployment `id` is gone, printing progress (on stderr) when it
/// changes; fails after `timeout`. `max_polls` ends the wait early without an error.
pub async fn wait_for(
    client: &Client,
    id: &str,
    timeout: Option<Duration>,
    interval: Duration,
    max_polls: Option<u64>,
) -> Result<WaitEnd> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let past = |at: Instant| deadline.is_some_and(|d| at >= d);
    let mut last = String::new();
    let mut polls = 0u64;
    loop {
        let deployments = match client.marathon(Method::GET, "/v2/deployments", None).await {
            Ok(v) => array(&v),
            // A master restarting or a new leader: keep waiting until the deadline.
            Err(e) if transient(&e) => {
                if past(Instant::now()) {
                    return Err(with_hint(e, Noun::None));
                }
                tokio::time::sleep(interval).await;
                continue;
            }
            Err(e) => return Err(with_hint(e, Noun::Deployment)),
        };
        let Some(deployment) = deployments.iter().find(|d| d["id"].as_str() == Some(id)) else {
            if polls == 0 {
                return Ok(WaitEnd::NotFound);
            }
            eprintln!("deployment {id} finished");
            return Ok(WaitEnd::Finished);
        };
        polls += 1;
        let apps = client.marathon(Method::GET, "/v2/apps", None).await.map(|v| array(&v["apps"])).unwrap_or_default();
        let queue =
            client.marathon(Method::GET, "/v2/queue", None).await.map(|v| array(&v["queue"])).unwrap_or_default();
        let lines = progress_lines(deployment, &apps, &queue);
        let text = lines.join("\n");
        if text != last {
            for line in &lines {
                eprintln!("{line}");
            }
            last = text;
        }
        if max_polls.is_some_and(|m| polls >= m) {
            return Ok(WaitEnd::Polled);
        }
        if past(Instant::now() + interval) {
            let mut message = format!(
                "deployment {id} has not finished within {}s; it goes on in the background",
                timeout.unwrap_or_default().as_secs()
            );
            for line in &lines {
                message.push_str(&format!("\n  {}", line.trim_start()));
            }
            message.push_str(&format!(
                "\n(`medos deployment watch {id}` follows it, `medos queue` tells why instances wait, \
                 `medos deployment rollback {id}` undoes it)"
            ));
            bail!(message);
        }
        tokio::time::sleep(interval).await;
    }
}

fn transient(e: &ClientError) -> bool {
    matches!(e, ClientError::Unreachable { .. } | ClientError::Request { .. }) || e.status() == Some(503)
}

/// DC/OS's words for deployment actions.
pub fn action_word(action: &str) -> &str {
    match action {
        "ResolveArtifacts" => "artifacts",
        "ScaleApplication" | "ScalePod" => "scale",
        "StartApplication" | "StartPod" => "start",
        "StopApplication" | "StopPod" => "stop",
        "RestartApplication" | "RestartPod" => "restart",
        "KillAllOldTasksOf" => "kill-tasks",
        other => other,
    }
}

/// What a deployment is doing now, one line, then one line per waiting app with the reason:
/// `deployment ID: step 1/2: scale /foo (1/3 running)`.
pub fn progress_lines(deployment: &Value, apps: &[Value], queue: &[Value]) -> Vec<String> {
    let id = deployment["id"].as_str().unwrap_or("?");
    let step = deployment["currentStep"].as_u64().unwrap_or(0);
    let total = deployment["totalSteps"].as_u64().unwrap_or(0);
    let actions: Vec<String> = array(&deployment["currentActions"])
        .iter()
        .map(|a| {
            let app_id = a["app"].as_str().or_else(|| a["pod"].as_str()).unwrap_or("?");
            let word = action_word(a["action"].as_str().unwrap_or("?"));
            match apps.iter().find(|app| app["id"].as_str() == Some(app_id)) {
                Some(app) if word != "stop" => format!("{word} {app_id} ({})", app_progress(app)),
                _ => format!("{word} {app_id}"),
            }
        })
        .collect();
    let doing = if actions.is_empty() { "finishing".to_string() } else { actions.join(", ") };
    let mut lines = vec![format!("deployment {id}: step {step}/{total}: {doing}")];
    for a in array(&deployment["currentActions"]) {
        let Some(app_id) = a["app"].as_str() else { continue };
        if let Some(entry) = queue.iter().find(|e| e["app"]["id"].as_str() == Some(app_id)) {
            let why = queue::explain(entry);
            if why.waiting > 0 {
                lines.push(format!("  {app_id}: {}", why.summary()));
            }
        }
    }
    lines
}

/// `2/3 running` (`, 1 healthy` with health checks).
pub fn app_progress(app: &Value) -> String {
    let running = app["tasksRunning"].as_u64().unwrap_or(0);
    let instances = app["instances"].as_u64().unwrap_or(0);
    let mut text = format!("{running}/{instances} running");
    if !array(&app["healthChecks"]).is_empty() {
        text.push_str(&format!(", {} healthy", app["tasksHealthy"].as_u64().unwrap_or(0)));
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Marathon's documented examples (`docs/docs/rest-api/public/api/v2/examples/`), trimmed
    /// to the fields the CLI reads.
    pub fn app_list_example() -> Value {
        json!({"apps": [{
            "id": "/myapp", "cmd": "env && sleep 60", "args": null, "user": null,
            "env": {"LD_LIBRARY_PATH": "/usr/local/lib/myLib"},
            "instances": 3, "cpus": 0.1, "mem": 5, "disk": 0, "executor": "",
            "constraints": [["hostname", "UNIQUE", ""]],
            "uris": ["https://raw.github.com/mesosphere/marathon/master/README.md"],
            "ports": [10013, 10015], "requirePorts": false, "backoffSeconds": 1, "backoffFactor": 1.15,
            "maxLaunchDelaySeconds": 3600, "container": null, "healthChecks": [], "dependencies": [],
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
            "labels": {}, "acceptedResourceRoles": null,
            "version": "2015-09-25T15:13:48.343Z",
            "versionInfo": {"lastScalingAt": "2015-09-25T15:13:48.343Z", "lastConfigChangeAt": "2015-09-25T15:13:48.343Z"},
            "tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0, "tasksUnhealthy": 0,
            "deployments": [{"id": "9538079c-3898-4e32-aa31-799bf9097f74"}]
        }]})
    }

    pub fn deployments_example() -> Value {
        json!([{
            "id": "97c136bf-5a28-4821-9d94-480d9fbb01c8", "version": "2015-09-30T09:09:17.614Z",
            "affectedApps": ["/foo"], "affectedPods": ["/bla"],
            "steps": [{"actions": [{"action": "ScaleApplication", "app": "/foo"}]},
                      {"actions": [{"action": "ScalePod", "pod": "/bla"}]}],
            "currentActions": [{"action": "ScaleApplication", "app": "/foo", "readinessCheckResults": []}],
            "currentStep": 1, "totalSteps": 1
        }])
    }

    #[test]
    fn ids_are_absolute_and_encoded() {
        assert_eq!(normalize_id("foo"), "/foo");
        assert_eq!(normalize_id("/a/b/"), "/a/b");
        assert_eq!(normalize_id("/"), "/");
        assert_eq!(app_path("prod/web"), "/v2/apps/prod/web");
        assert_eq!(app_path("/a b"), "/v2/apps/a%20b");
        assert_eq!(group_path("/"), "/v2/groups");
        assert_eq!(group_path("prod"), "/v2/groups/prod");
    }

    #[test]
    fn locked_errors_name_the_deployment_to_watch() {
        let body = crate::api::error::ErrorBody {
            code: "HTTP_409".into(),
            title: "409 Conflict".into(),
            description: String::new(),
            message: "App is locked by one or more deployments.\n  deployments: d-1, d-2".into(),
            current_revision: None,
        };
        let e = with_hint(ClientError::Api { status: 409, body }, Noun::App).to_string();
        assert!(e.contains("`medos deployment watch d-1`") && e.contains("--force"), "{e}");
        let body = crate::api::error::ErrorBody {
            code: "HTTP_404".into(),
            title: "404 Not Found".into(),
            description: String::new(),
            message: "App '/x' does not exist".into(),
            current_revision: None,
        };
        let e = with_hint(ClientError::Api { status: 404, body }, Noun::App).to_string();
        assert_eq!(e, "404: App '/x' does not exist\n(`medos app list` shows the apps)");
    }

    #[test]
    fn numbers_print_like_people_write_them() {
        assert_eq!(num(&json!(128)), "128");
        assert_eq!(num(&json!(128.0)), "128");
        assert_eq!(num(&json!(0.1)), "0.1");
        assert_eq!(num(&Value::Null), "-");
        assert_eq!(truncate("abcdefgh", 5), "ab...");
        assert_eq!(truncate("abc", 5), "abc");
    }

    #[test]
    fn sources_are_files_urls_or_stdin() {
        assert_eq!(source_of(Some("app.json"), true, "app").unwrap(), Source::File("app.json".into()));
        assert_eq!(source_of(Some("-"), true, "app").unwrap(), Source::Stdin);
        assert_eq!(source_of(None, false, "app").unwrap(), Source::Stdin);
        assert_eq!(
            source_of(Some("https://example.com/app.json"), true, "app").unwrap(),
            Source::Url("https://example.com/app.json".into())
        );
        assert_eq!(source_of(Some("http://x/a"), false, "app").unwrap(), Source::Url("http://x/a".into()));
        let e = source_of(None, true, "app").unwrap_err().to_string();
        assert!(e.contains("medos app add < app.json"), "{e}");
    }

    #[test]
    fn definitions_must_be_json_objects() {
        assert_eq!(parse_definition(r#"{"id": "/a"}"#, "f").unwrap()["id"], "/a");
        assert!(parse_definition("", "f").unwrap_err().to_string().contains("f is empty"));
        assert!(parse_definition("[1]", "f").unwrap_err().to_string().contains("not an object"));
        assert!(parse_definition("{", "app.json").unwrap_err().to_string().contains("app.json is not valid JSON"));
    }

    #[test]
    fn shown_apps_can_be_sent_back() {
        let shown = app_list_example()["apps"][0].clone();
        let clean = clean_definition(shown);
        for gone in ["tasksRunning", "deployments", "versionInfo", "version"] {
            assert!(clean.get(gone).is_none(), "{gone}");
        }
        assert_eq!(clean["cmd"], "env && sleep 60");
        // `{"version": V}` alone is a rollback and stays.
        assert_eq!(clean_definition(json!({"version": "v1"})), json!({"version": "v1"}));
        let group = clean_definition(json!({"id": "/g", "apps": [{"id": "a", "tasksRunning": 1}]}));
        assert_eq!(group["apps"][0], json!({"id": "a"}));
    }

    #[test]
    fn properties_take_the_fields_types() {
        let props: Vec<String> = [
            "cpus=0.5",
            "mem=512",
            "instances=3",
            "cmd=sleep 100",
            "requirePorts=true",
            r#"env={"A":"1"}"#,
            r#"constraints=[["hostname","UNIQUE"]]"#,
            "user=null",
            "'labels'='{\"x\":\"y\"}'",
            "unreachableStrategy=disabled",
            "custom=7",
            "other=some text",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let v = parse_properties(&props).unwrap();
        assert_eq!(
            v,
            json!({
                "cpus": 0.5, "mem": 512.0, "instances": 3, "cmd": "sleep 100", "requirePorts": true,
                "env": {"A": "1"}, "constraints": [["hostname", "UNIQUE"]], "user": null,
                "labels": {"x": "y"}, "unreachableStrategy": "disabled", "custom": 7, "other": "some text"
            })
        );
        let err = |s: &str| parse_property(s).unwrap_err().to_string();
        assert!(err("cpus=lots").contains("cpus is a number"));
        assert!(err("instances=1.5").contains("whole number"));
        assert!(err("requirePorts=yes").contains("true or false"));
        assert!(err("env=A=1").contains("JSON object"));
        assert!(err("constraints=hostname:UNIQUE").contains("JSON array"));
        assert!(err("cpus").contains("KEY=VALUE"));
        assert!(err("=1").contains("empty"));
        let twice = parse_properties(&["cpus=1".into(), "cpus=2".into()]).unwrap_err().to_string();
        assert!(twice.contains("more than once"), "{twice}");
        // A value may itself hold '='.
        assert_eq!(parse_property("cmd=A=1 env").unwrap().1, json!("A=1 env"));
    }

    #[test]
    fn update_takes_properties_or_one_source() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            update_input(&args(&["instances=2"]), true, "app").unwrap(),
            UpdateInput::Properties(json!({"instances": 2}))
        );
        assert_eq!(
            update_input(&args(&["app.json"]), true, "app").unwrap(),
            UpdateInput::Source(Source::File("app.json".into()))
        );
        assert_eq!(update_input(&args(&["-"]), true, "app").unwrap(), UpdateInput::Source(Source::Stdin));
        assert_eq!(update_input(&[], false, "app").unwrap(), UpdateInput::Source(Source::Stdin));
        assert!(update_input(&[], true, "app").unwrap_err().to_string().contains("nothing to update"));
        assert_eq!(
            update_input(&args(&["https://h/app.json?x=1"]), true, "app").unwrap(),
            UpdateInput::Source(Source::Url("https://h/app.json?x=1".into()))
        );
        // An existing file whose name has '=' is still a file.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a=b.json");
        std::fs::write(&odd, "{}").unwrap();
        let odd = odd.display().to_string();
        assert_eq!(
            update_input(std::slice::from_ref(&odd), true, "app").unwrap(),
            UpdateInput::Source(Source::File(odd.into()))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn deployment_ids_come_from_either_answer() {
        assert_eq!(deployment_id_of(&json!({"deploymentId": "d1", "version": "v"})).as_deref(), Some("d1"));
        assert_eq!(
            deployment_id_of(&app_list_example()["apps"][0]).as_deref(),
            Some("9538079c-3898-4e32-aa31-799bf9097f74")
        );
        assert_eq!(deployment_id_of(&json!({"tasks": []})), None);
    }

    #[test]
    fn progress_names_the_step_the_apps_and_why_they_wait() {
        let deployment = &deployments_example()[0];
        let apps = vec![json!({"id": "/foo", "instances": 3, "tasksRunning": 1, "healthChecks": []})];
        let queue = vec![json!({
            "app": {"id": "/foo", "instances": 3, "mem": 512, "cpus": 1},
            "count": 2,
            "delay": {"timeLeftSeconds": 0, "overdue": true},
            "lastUnusedOffers": [
                {"offer": {"hostname": "a1"}, "reason": ["InsufficientMemory"]},
                {"offer": {"hostname": "a2"}, "reason": ["InsufficientMemory"]}
            ]
        })];
        let lines = progress_lines(deployment, &apps, &queue);
        assert_eq!(lines[0], "deployment 97c136bf-5a28-4821-9d94-480d9fbb01c8: step 1/1: scale /foo (1/3 running)");
        assert_eq!(lines[1], "  /foo: 2 instances waiting: 2 of 2 agents declined: insufficient mem (2)");
        assert_eq!(lines.len(), 2);
    }
}

#[cfg(test)]
mod command_line_tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::{Cli, Command};

    #[test]
    fn the_commands_and_their_dcos_spellings_parse() {
        let mut cli = Cli::command();
        cli.build();
        for name in ["app", "group", "deployment", "queue", "marathon"] {
            cli.find_subcommand(name).expect(name).clone().debug_assert();
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let c = parse(&["medos", "marathon", "app", "add", "app.json"]);
        assert!(matches!(
            c.command,
            Command::Marathon(super::MarathonCommand::App(super::app::AppCommand::Add { .. }))
        ));
        let c = parse(&["medos", "app", "list", "--json"]);
        assert!(c.json && matches!(c.command, Command::App(super::app::AppCommand::List)));
        assert!(matches!(parse(&["medos", "queue"]).command, Command::Queue(_)));
        assert!(matches!(
            parse(&["medos", "marathon", "task", "list", "/a"]).command,
            Command::Marathon(super::MarathonCommand::Task(super::TaskCommand::List { .. }))
        ));
        assert!(matches!(
            parse(&["medos", "marathon", "deployment", "watch", "d1", "--max-count", "3"]).command,
            Command::Marathon(super::MarathonCommand::Deployment(super::deployment::DeploymentCommand::Watch { .. }))
        ));
        assert!(matches!(
            parse(&["medos", "group", "scale", "/g", "0.5", "--wait"]).command,
            Command::Group(super::group::GroupCommand::Scale { .. })
        ));
        assert!(Cli::try_parse_from(["medos", "app", "scale", "a", "-1"]).is_err(), "instances are not negative");
    }
}
