//! Marathon on a real cluster: `medos dev --masters 3 --agents 3` with real containers, driven
//! through the binary's CLI (`medos app add/list/show/scale/restart/remove`, `medos marathon app
//! add`, `medos queue`) and read back through Marathon's `/v2` API.
//!
//! One cluster, one story (a cluster of six processes is the expensive part):
//! 1. `medos dev` gives every agent its own hostname and attributes (`rack`, `zone`);
//! 2. two app definitions from Marathon's documentation deploy byte for byte unchanged;
//! 3. three instances with `["hostname", "UNIQUE"]` land on three agents; a fourth waits and
//!    `medos queue` says why ("constraint hostname:UNIQUE"), as it does for an app that asks
//!    for more cpus than any agent has; scaling down ends the wait; constraints on the dev
//!    agents' `zone` and `rack` attributes pin instances;
//! 4. a rolling restart of an app with a MESOS_HTTP health check never has fewer healthy
//!    instances than `minimumHealthCapacity` allows nor more tasks than
//!    `maximumOverCapacity` allows, and ends with every task on the new version;
//! 5. `kill -9` of the leader in the middle of a scale-up: the deployment completes with
//!    exactly the instances asked for, and no task is killed; in the middle of a rolling
//!    restart: the capacity bounds hold and each instance of the new version starts once;
//! 6. `kill -9` of an agent: once the masters mark it unreachable, instances of apps with
//!    `inactiveAfterSeconds: 5` are replaced elsewhere after those 5 s (not before), the others
//!    at once; when the agent comes back the surplus goes and every app has its instance count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use medos::api::client::Client;
use medos::core::{AgentStatus, Task, TaskState};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{CONDITION_TIMEOUT, DevCluster, eventually, shared_slot};

/// Marathon's first example app, byte for byte as `docs/docs/application-basics.md` gives it
/// ("basic-0", trailing space included).
const DOCS_BASIC_0: &str = r#"{
    "id": "basic-0", 
    "cmd": "while [ true ] ; do echo 'Hello Marathon' ; sleep 5 ; done",
    "cpus": 0.1,
    "mem": 10.0,
    "instances": 1
}
"#;

/// `docs/docs/rest-api/public/api/v2/examples/app-check-http-example.json`, byte for byte: a
/// Python web server on `$PORT0` with a Mesos `check` (kept, not run by medos).
const DOCS_HTTP_EXAMPLE: &str = r#"{
  "id": "http-index-test",
  "cmd": "python3 -m http.server $PORT0",
  "cpus": 1,
  "mem": 128,
  "disk": 0,
  "instances": 1,
  "portDefinitions": [
    {
        "port": 0,
        "protocol": "tcp",
        "name": "http"
    }],
  "requirePorts" : false,
  "env": {},
  "labels": {},
  "check": {
     "http" : {
        "portIndex": 0,
        "path": "/"
      },
      "intervalSeconds": 60,
      "timeoutSeconds": 20
   }
}
"#;

/// One instance per agent; replaced 5 s after its agent is marked unreachable.
const SPREAD: &str = r#"{
  "id": "/spread",
  "cmd": "sleep 100000",
  "cpus": 0.1,
  "mem": 16,
  "instances": 3,
  "constraints": [["hostname", "UNIQUE"]],
  "unreachableStrategy": {"inactiveAfterSeconds": 5, "expungeAfterSeconds": 600}
}"#;
const SPREAD_INACTIVE_AFTER_MS: u64 = 5_000;

/// An app asking for more cpus than any agent has (`CPUS` is set above the largest agent).
const BIG_TEMPLATE: &str = r#"{"id": "/big", "cmd": "sleep 100000", "cpus": CPUS, "mem": 16, "instances": 1}"#;

/// Two instances in zone `z1` (agents 1 and 3 of `medos dev`), on different racks.
const ZONED: &str = r#"{
  "id": "/zoned",
  "cmd": "sleep 100000",
  "cpus": 0.1,
  "mem": 16,
  "instances": 2,
  "constraints": [["zone", "LIKE", "z1"], ["rack", "UNIQUE"]]
}"#;

/// A web server with a MESOS_HTTP health check, rolled with at least half of its instances
/// healthy and at most one extra task.
const WEB: &str = r#"{
  "id": "/web",
  "cmd": "exec python3 -m http.server $PORT0",
  "cpus": 0.2,
  "mem": 64,
  "instances": 4,
  "portDefinitions": [{"port": 0, "name": "http"}],
  "healthChecks": [{
    "protocol": "MESOS_HTTP", "portIndex": 0, "path": "/",
    "gracePeriodSeconds": 20, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3,
    "delaySeconds": 0
  }],
  "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}
}"#;
const WEB_INSTANCES: usize = 4;
const WEB_MIN_HEALTHY: usize = 2; // ceil(0.5 × 4)
const WEB_MAX_TASKS: usize = 5; // floor((1 + 0.25) × 4)

/// Healthy only 2 s after it starts, so a deployment of it lasts long enough to kill the
/// leader in its middle.
const SLOW: &str = r#"{
  "id": "/slow",
  "cmd": "sleep 2; exec python3 -m http.server $PORT0",
  "cpus": 0.1,
  "mem": 32,
  "instances": 2,
  "healthChecks": [{
    "protocol": "MESOS_HTTP", "portIndex": 0, "path": "/",
    "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3,
    "delaySeconds": 0
  }]
}"#;
const SLOW_INSTANCES: usize = 6;

/// `GET /v2/apps{id}`'s app.
async fn app(client: &Client, id: &str) -> Result<Value, String> {
    let v = client.marathon(Method::GET, &format!("/v2/apps{id}"), None).await.map_err(|e| e.to_string())?;
    Ok(v["app"].clone())
}

fn tasks(app: &Value) -> Vec<Value> {
    app["tasks"].as_array().cloned().unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn running(task: &Value) -> bool {
    task["state"] == "TASK_RUNNING"
}

/// TASK_RUNNING and its (first) health check passes.
fn healthy(task: &Value) -> bool {
    running(task) && task["healthCheckResults"][0]["alive"] == Value::Bool(true)
}

fn hosts(tasks: &[Value]) -> Vec<String> {
    let mut hosts: Vec<String> = tasks.iter().map(|t| str_of(t, "host").to_string()).collect();
    hosts.sort();
    hosts
}

fn ids(tasks: &[Value]) -> BTreeSet<String> {
    tasks.iter().map(|t| str_of(t, "id").to_string()).collect()
}

/// One line per task for failure messages: `id host state version healthy`.
fn describe(app: &Value) -> String {
    let lines: Vec<String> = tasks(app)
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {} healthy={}",
                str_of(t, "id"),
                str_of(t, "host"),
                str_of(t, "state"),
                str_of(t, "version"),
                t["healthCheckResults"][0]["alive"]
            )
        })
        .collect();
    format!("deployments {} tasks [{}]", app["deployments"], lines.join("; "))
}

/// No deployment, exactly `n` tasks, all running (and healthy when `checked`).
fn stable(app: &Value, n: usize, checked: bool) -> Result<(), String> {
    let tasks = tasks(app);
    let deployments = app["deployments"].as_array().map(Vec::len).unwrap_or(1);
    let ok =
        deployments == 0 && tasks.len() == n && tasks.iter().all(|t| if checked { healthy(t) } else { running(t) });
    if ok { Ok(()) } else { Err(describe(app)) }
}

/// Waits until `check` accepts the app; returns it.
async fn wait_app(
    client: &Client,
    id: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> Result<(), String>,
) -> Value {
    eventually(&format!("{id}: {what}"), timeout, || async {
        let app = app(client, id).await?;
        check(&app).map(|()| app)
    })
    .await
}

async fn wait_stable(client: &Client, id: &str, n: usize, checked: bool) -> Value {
    wait_app(client, id, &format!("{n} tasks running, no deployment"), CONDITION_TIMEOUT, |a| stable(a, n, checked))
        .await
}

/// `GET /` on 127.0.0.1:`port` answers 200 (tasks share the host's network).
async fn http_ok(port: u64) -> Result<(), String> {
    let mut stream =
        tokio::net::TcpStream::connect(("127.0.0.1", port as u16)).await.map_err(|e| format!("connect {port}: {e}"))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| format!("port {port}: no answer within 5 s"))?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    if text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("port {port} answered {:?}", text.lines().next()))
    }
}

/// Every task of the app serves HTTP on its first port.
async fn wait_serving(app: &Value) {
    for task in tasks(app) {
        let port = task["ports"][0].as_u64().unwrap_or_else(|| panic!("task without a port: {task}"));
        eventually(&format!("task {} serves HTTP on {port}", str_of(&task, "id")), CONDITION_TIMEOUT, || http_ok(port))
            .await;
    }
}

/// Writes `text` to a file in the cluster's dir and returns its path (for `medos app add FILE`).
fn definition_file(c: &DevCluster, name: &str, text: &str) -> String {
    let path = c.dir.join(name);
    std::fs::write(&path, text).expect("writing an app definition");
    path.display().to_string()
}

/// Every task the masters know (also finished ones) of a Marathon app.
async fn all_tasks_of(client: &Client, app_id: &str) -> Vec<Task> {
    let all = client.tasks(true).await.expect("listing tasks");
    all.into_iter().filter(|t| t.app_id.as_deref() == Some(app_id)).collect()
}

/// Whether anyone ever asked to kill the task, or it ended.
fn touched(task: &Task) -> bool {
    task.state.is_terminal()
        || task.kill_grace_ms.is_some()
        || task.statuses.iter().any(|s| matches!(s.state, TaskState::TASK_KILLING | TaskState::TASK_KILLED))
}

/// What an observer saw of an app while it rolled.
#[derive(Debug, Default)]
struct Rolled {
    samples: usize,
    min_healthy: usize,
    max_tasks: usize,
    /// Samples in which old and new versions ran side by side.
    mixed: usize,
}

/// Polls `/v2/apps{id}` until no task runs `old_version` any more and the app is stable with
/// `n` healthy tasks (or `stop` is set), recording the fewest healthy and the most tasks seen.
async fn observe_roll(client: Client, id: String, old_version: String, n: usize, stop: Arc<AtomicBool>) -> Rolled {
    let mut seen = Rolled { min_healthy: usize::MAX, ..Default::default() };
    while !stop.load(Ordering::Relaxed) {
        if let Ok(app) = app(&client, &id).await {
            let tasks = tasks(&app);
            seen.samples += 1;
            seen.min_healthy = seen.min_healthy.min(tasks.iter().filter(|t| healthy(t)).count());
            seen.max_tasks = seen.max_tasks.max(tasks.len());
            let old = tasks.iter().filter(|t| t["version"] == old_version.as_str()).count();
            if old > 0 && old < tasks.len() {
                seen.mixed += 1;
            }
            if old == 0 && app["version"] != old_version.as_str() && stable(&app, n, true).is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// `agents.unreachable_after_ms` from a dev master's config (how long the masters wait for a
/// silent agent before marking it unreachable).
fn unreachable_after(c: &DevCluster) -> Duration {
    let text = std::fs::read_to_string(&c.masters[0].config).expect("reading a master config");
    let config: toml::Table = toml::from_str(&text).expect("the master config is TOML");
    let ms = config.get("agents").and_then(|a| a.get("unreachable_after_ms")).and_then(|v| v.as_integer());
    Duration::from_millis(ms.map(|ms| ms as u64).unwrap_or(20_000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marathon_apps_deploy_spread_roll_and_survive_kill9() {
    let _slot = shared_slot().await;
    let started = Instant::now();
    let mut c = DevCluster::start_with_agents(3, 3).await;
    let client = c.client();
    let mut phases: Vec<(&str, Duration)> = vec![("cluster up", started.elapsed())];
    let mut phase_start = Instant::now();
    let mut phase = |name: &'static str, phases: &mut Vec<(&str, Duration)>| {
        phases.push((name, phase_start.elapsed()));
        phase_start = Instant::now();
    };

    // 1. Each agent its own hostname, rack and zone.
    let nodes = c.cli(&["--json", "node", "list"]).await.success("medos node list").json();
    let mut agents: Vec<(String, String, String)> = nodes["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            let attr = |k: &str| a["attributes"][k].as_str().unwrap_or_default().to_string();
            (str_of(a, "hostname").to_string(), attr("rack"), attr("zone"))
        })
        .collect();
    agents.sort();
    let expected: Vec<(String, String, String)> =
        [("agent-1", "r1", "z1"), ("agent-2", "r2", "z2"), ("agent-3", "r3", "z1")]
            .iter()
            .map(|(h, r, z)| (h.to_string(), r.to_string(), z.to_string()))
            .collect();
    assert_eq!(agents, expected, "hostname, rack and zone of each agent: {nodes}");
    let max_agent_cpus = nodes["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["total"]["cpus"].as_f64())
        .fold(0.0, f64::max);

    // 2. Marathon's documented examples, unchanged: through `medos app add FILE` …
    let file = definition_file(&c, "basic-0.json", DOCS_BASIC_0);
    let out = c.cli(&["app", "add", &file, "--wait", "--timeout", "50s"]).await.success("medos app add basic-0.json");
    assert!(out.stdout_text().starts_with("Created deployment "), "{}", out.stdout_text());
    let shown = c.cli(&["--json", "app", "show", "basic-0"]).await.success("medos app show basic-0").json();
    assert_eq!(shown["id"], "/basic-0");
    assert_eq!(shown["cmd"], "while [ true ] ; do echo 'Hello Marathon' ; sleep 5 ; done");
    assert_eq!(
        (shown["cpus"].as_f64(), shown["mem"].as_f64(), shown["instances"].as_u64()),
        (Some(0.1), Some(10.0), Some(1))
    );
    stable(&shown, 1, false).unwrap_or_else(|e| panic!("basic-0 runs one task: {e}"));
    let task = &tasks(&shown)[0];
    let stdout = c.agent(str_of(task, "host")).sandbox(str_of(task, "id")).join("stdout");
    eventually("basic-0 says hello", CONDITION_TIMEOUT, || async {
        let text = std::fs::read_to_string(&stdout).map_err(|e| e.to_string())?;
        if text.contains("Hello Marathon") { Ok(()) } else { Err(format!("stdout {text:?}")) }
    })
    .await;
    let list = c.cli(&["app", "list"]).await.success("medos app list").stdout_text();
    assert!(list.lines().any(|l| l.starts_with("/basic-0 ") && l.contains("1/1")), "{list}");

    // … and DC/OS's spelling `medos marathon app add FILE`.
    let file = definition_file(&c, "app-check-http-example.json", DOCS_HTTP_EXAMPLE);
    c.cli(&["marathon", "app", "add", &file, "--wait", "--timeout", "50s"]).await.success("medos marathon app add");
    let http = wait_stable(&client, "/http-index-test", 1, false).await;
    assert_eq!(http["check"]["http"]["portIndex"], 0, "the Mesos check is kept as given: {http}");
    wait_serving(&http).await;
    c.cli(&["app", "remove", "http-index-test", "--wait", "--timeout", "50s"]).await.success("medos app remove");
    let gone = c.cli(&["app", "show", "http-index-test"]).await;
    assert!(!gone.status.success() && gone.stderr.contains("does not exist"), "removed: {}", gone.stderr);
    phase("docs examples", &mut phases);

    // 3. UNIQUE hostnames: three instances on three agents.
    let file = definition_file(&c, "spread.json", SPREAD);
    c.cli(&["app", "add", &file, "--wait", "--timeout", "50s"]).await.success("medos app add spread.json");
    let spread = wait_stable(&client, "/spread", 3, false).await;
    assert_eq!(hosts(&tasks(&spread)), ["agent-1", "agent-2", "agent-3"], "{}", describe(&spread));

    // A fourth instance cannot be placed, and `medos queue` says why.
    c.cli(&["app", "scale", "spread", "4"]).await.success("medos app scale spread 4");
    let big = BIG_TEMPLATE.replace("CPUS", &format!("{}", max_agent_cpus.ceil() + 1.0));
    let file = definition_file(&c, "big.json", &big);
    c.cli(&["app", "add", &file]).await.success("medos app add big.json");
    let table = eventually("medos queue explains both waiting apps", CONDITION_TIMEOUT, || async {
        let text = c.cli(&["queue"]).await.success("medos queue").stdout_text();
        let row = |app: &str| text.lines().find(|l| l.starts_with(app)).map(str::to_string);
        match (row("/spread "), row("/big ")) {
            (Some(s), Some(b))
                if s.contains("3 of 3 agents")
                    && s.contains("constraint hostname:UNIQUE")
                    && b.contains("insufficient cpus") =>
            {
                Ok(text)
            }
            _ => Err(text),
        }
    })
    .await;
    let detail = c.cli(&["queue", "/spread"]).await.success("medos queue /spread").stdout_text();
    assert!(detail.starts_with("/spread: 1 instance waiting"), "{detail}");
    for agent in ["agent-1", "agent-2", "agent-3"] {
        assert!(detail.contains(&format!("  {agent}: constraint hostname:UNIQUE")), "{detail}");
    }
    let detail = c.cli(&["queue", "big"]).await.success("medos queue big").stdout_text();
    assert!(detail.contains("insufficient cpus") && detail.contains("agent-2: insufficient cpus"), "{detail}");
    let queue = c.cli(&["--json", "queue"]).await.success("medos --json queue").json();
    assert_eq!(queue.as_array().map(Vec::len), Some(2), "{queue}\n{table}");
    // The three placed instances keep running meanwhile.
    let spread = app(&client, "/spread").await.expect("spread");
    assert_eq!(spread["tasksRunning"], 3, "{}", describe(&spread));

    // Scaling down (over the waiting deployment) ends the wait; removing /big ends its.
    c.cli(&["app", "scale", "spread", "2", "--force", "--wait", "--timeout", "50s"])
        .await
        .success("medos app scale spread 2");
    c.cli(&["app", "remove", "big", "--force", "--wait", "--timeout", "50s"]).await.success("medos app remove big");
    let spread = wait_stable(&client, "/spread", 2, false).await;
    let spread_hosts = hosts(&tasks(&spread));
    assert_ne!(spread_hosts[0], spread_hosts[1], "still one instance per agent: {}", describe(&spread));
    eventually("the queue is empty", CONDITION_TIMEOUT, || async {
        let q = c.cli(&["--json", "queue"]).await.success("medos --json queue").json();
        if q.as_array().is_some_and(Vec::is_empty) { Ok(()) } else { Err(q.to_string()) }
    })
    .await;
    // The dev agents' attributes work in constraints: zone z1 is agent-1 and agent-3.
    let file = definition_file(&c, "zoned.json", ZONED);
    c.cli(&["app", "add", &file, "--wait", "--timeout", "50s"]).await.success("medos app add zoned.json");
    let zoned = wait_stable(&client, "/zoned", 2, false).await;
    assert_eq!(hosts(&tasks(&zoned)), ["agent-1", "agent-3"], "{}", describe(&zoned));
    c.cli(&["app", "remove", "zoned", "--wait", "--timeout", "50s"]).await.success("medos app remove zoned");
    phase("UNIQUE, queue, scale", &mut phases);

    // 4. A rolling restart keeps capacity and ends on the new version.
    let file = definition_file(&c, "web.json", WEB);
    c.cli(&["app", "add", &file, "--wait", "--timeout", "50s"]).await.success("medos app add web.json");
    let web = wait_stable(&client, "/web", WEB_INSTANCES, true).await;
    wait_serving(&web).await;
    let old_version = str_of(&web, "version").to_string();
    let old_ids = ids(&tasks(&web));
    let stop = Arc::new(AtomicBool::new(false));
    let observer =
        tokio::spawn(observe_roll(c.client(), "/web".into(), old_version.clone(), WEB_INSTANCES, stop.clone()));
    let out = c.cli(&["app", "restart", "web", "--wait", "--timeout", "50s"]).await.success("medos app restart web");
    assert!(out.stdout_text().starts_with("Created deployment "), "{}", out.stdout_text());
    let seen = match tokio::time::timeout(CONDITION_TIMEOUT, observer).await {
        Ok(seen) => seen.expect("the observer"),
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "the restart did not end with {WEB_INSTANCES} healthy new tasks: {}",
                describe(&app(&client, "/web").await.unwrap_or_default())
            )
        }
    };
    eprintln!("rolling restart of /web: {seen:?}");
    assert!(seen.samples >= 5 && seen.mixed > 0, "the observer saw the roll: {seen:?}");
    assert!(seen.min_healthy >= WEB_MIN_HEALTHY, "fewer healthy than minimumHealthCapacity allows: {seen:?}");
    assert!(seen.max_tasks <= WEB_MAX_TASKS, "more tasks than maximumOverCapacity allows: {seen:?}");
    let web = wait_stable(&client, "/web", WEB_INSTANCES, true).await;
    let new_version = str_of(&web, "version");
    assert_ne!(new_version, old_version, "a restart makes a new version");
    assert!(
        tasks(&web).iter().all(|t| t["version"] == new_version),
        "every task on the new version: {}",
        describe(&web)
    );
    assert!(ids(&tasks(&web)).is_disjoint(&old_ids), "every task replaced: {}", describe(&web));
    wait_serving(&web).await;
    phase("rolling restart", &mut phases);

    // 5. kill -9 of the leader in the middle of a deployment.
    let file = definition_file(&c, "slow.json", SLOW);
    c.cli(&["app", "add", &file, "--wait", "--timeout", "50s"]).await.success("medos app add slow.json");
    wait_stable(&client, "/slow", 2, true).await;
    let before: Vec<Task> =
        client.tasks(false).await.expect("tasks").into_iter().filter(|t| t.app_id.is_some()).collect();
    assert!(before.iter().all(|t| !touched(t)), "no task is being killed before the failover: {before:?}");
    let out = c.cli(&["app", "scale", "slow", &SLOW_INSTANCES.to_string()]).await.success("medos app scale slow");
    assert!(out.stdout_text().starts_with("Created deployment "), "{}", out.stdout_text());
    wait_app(&client, "/slow", "new tasks launched, deployment running", CONDITION_TIMEOUT, |a| {
        let n = tasks(a).len();
        let deploying = a["deployments"].as_array().is_some_and(|d| !d.is_empty());
        if n > 2 && deploying { Ok(()) } else { Err(describe(a)) }
    })
    .await;
    let leader = c.leader().await;
    c.kill9(&leader);
    let failover_start = Instant::now();
    let slow = wait_stable(&client, "/slow", SLOW_INSTANCES, true).await;
    eprintln!("the deployment finished {:?} after the leader's kill", failover_start.elapsed());
    let deployments = c.cli(&["--json", "deployment", "list"]).await.success("medos deployment list").json();
    assert_eq!(deployments, serde_json::json!([]), "no deployment left");
    let slow_all = all_tasks_of(&client, "/slow").await;
    assert_eq!(slow_all.len(), SLOW_INSTANCES, "no duplicate launched across the failover: {slow_all:#?}");
    assert!(slow_all.iter().all(|t| !touched(t)), "no /slow task killed: {slow_all:#?}");
    assert_eq!(ids(&tasks(&slow)), slow_all.iter().map(|t| t.id.clone()).collect(), "{}", describe(&slow));
    for t in &before {
        let now = client.task(&t.id).await.expect("a task from before the failover");
        assert!(!touched(&now) && now.state == TaskState::TASK_RUNNING, "the failover killed a task: {now:?}");
    }
    c.restart(&leader);
    c.wait_healthy(&leader).await;

    // … and in the middle of a rolling restart: the bounds hold across the failover and the
    // new version runs exactly once per instance.
    let web = wait_stable(&client, "/web", WEB_INSTANCES, true).await;
    let old_version = str_of(&web, "version").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let observer =
        tokio::spawn(observe_roll(c.client(), "/web".into(), old_version.clone(), WEB_INSTANCES, stop.clone()));
    c.cli(&["app", "restart", "web"]).await.success("medos app restart web");
    wait_app(&client, "/web", "rolling, old and new tasks side by side", CONDITION_TIMEOUT, |a| {
        let old = tasks(a).iter().filter(|t| t["version"] == old_version.as_str()).count();
        if old > 0 && old < tasks(a).len() { Ok(()) } else { Err(describe(a)) }
    })
    .await;
    let leader = c.leader().await;
    c.kill9(&leader);
    let seen = match tokio::time::timeout(CONDITION_TIMEOUT, observer).await {
        Ok(seen) => seen.expect("the observer"),
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            let web = app(&client, "/web").await.unwrap_or_default();
            panic!("the restart did not end after the leader's kill: {}", describe(&web))
        }
    };
    eprintln!("rolling restart of /web across a leader kill: {seen:?}");
    assert!(seen.min_healthy >= WEB_MIN_HEALTHY, "fewer healthy than minimumHealthCapacity allows: {seen:?}");
    assert!(seen.max_tasks <= WEB_MAX_TASKS, "more tasks than maximumOverCapacity allows: {seen:?}");
    let web = wait_stable(&client, "/web", WEB_INSTANCES, true).await;
    let new_version = str_of(&web, "version");
    let launched: Vec<Task> = all_tasks_of(&client, "/web")
        .await
        .into_iter()
        .filter(|t| t.app_version.as_deref() == Some(new_version))
        .collect();
    assert_eq!(launched.len(), WEB_INSTANCES, "the new version launched once per instance: {launched:#?}");
    assert!(launched.iter().all(|t| !touched(t)), "no new task killed: {launched:#?}");
    c.restart(&leader);
    c.wait_healthy(&leader).await;
    phase("leader kill -9 mid-deployment", &mut phases);

    // 6. kill -9 of an agent that runs a /spread instance.
    let spread = wait_stable(&client, "/spread", 2, false).await;
    let spread_tasks = tasks(&spread);
    let victim = str_of(&spread_tasks[0], "host").to_string();
    let survivor = str_of(&spread_tasks[1], "host").to_string();
    let free =
        ["agent-1", "agent-2", "agent-3"].into_iter().find(|a| *a != victim && *a != survivor).expect("a free agent");
    let lost = str_of(&spread_tasks[0], "id").to_string();
    let victim_id = c.agent(&victim).id().expect("the victim's id");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    counts.insert("/basic-0", 1);
    counts.insert("/spread", 2);
    counts.insert("/web", WEB_INSTANCES);
    counts.insert("/slow", SLOW_INSTANCES);
    c.kill9_agent(&victim);
    let timeout = unreachable_after(&c);
    let unreachable =
        eventually(&format!("{victim}'s /spread task is TASK_UNREACHABLE"), timeout + CONDITION_TIMEOUT, || async {
            let t = client.task(&lost).await.map_err(|e| e.to_string())?;
            if t.state == TaskState::TASK_UNREACHABLE { Ok(t) } else { Err(format!("{:?}", t.state)) }
        })
        .await;
    let unreachable_at = unreachable
        .statuses
        .iter()
        .rev()
        .find(|s| s.state == TaskState::TASK_UNREACHABLE)
        .map(|s| s.timestamp_ms)
        .unwrap_or(unreachable.updated_at_ms);
    let mut expected_hosts = vec![survivor.clone(), free.to_string()];
    expected_hosts.sort();
    let spread =
        wait_app(&client, "/spread", &format!("an instance replaces the one on {victim}"), CONDITION_TIMEOUT, |a| {
            let running: Vec<Value> = tasks(a).into_iter().filter(running).collect();
            if hosts(&running) == expected_hosts { Ok(()) } else { Err(describe(a)) }
        })
        .await;
    let replacement = tasks(&spread).into_iter().find(|t| str_of(t, "host") == free).expect("the replacement");
    let replacement = client.task(str_of(&replacement, "id")).await.expect("the replacement task");
    let waited = replacement.created_at_ms.saturating_sub(unreachable_at);
    eprintln!("/spread's instance on {victim} was replaced {waited} ms after it became unreachable");
    assert!(
        replacement.created_at_ms >= unreachable_at + SPREAD_INACTIVE_AFTER_MS,
        "replaced {waited} ms after TASK_UNREACHABLE, before inactiveAfterSeconds"
    );
    assert!(waited < SPREAD_INACTIVE_AFTER_MS + 15_000, "replaced only {waited} ms after TASK_UNREACHABLE");
    // Every app has its instances running on the agents that are left.
    for (id, n) in &counts {
        wait_app(&client, id, &format!("{n} instances running off {victim}"), CONDITION_TIMEOUT, |a| {
            let running = tasks(a).iter().filter(|t| running(t) && t["slaveId"] != victim_id.as_str()).count();
            if running == *n { Ok(()) } else { Err(describe(a)) }
        })
        .await;
    }
    phase("agent kill -9", &mut phases);

    // The agent comes back with its tasks: the surplus goes, every app has its count again.
    c.restart_agent(&victim);
    eventually(&format!("{victim} is back with its /spread task"), CONDITION_TIMEOUT, || async {
        let agent = client.agent(&victim_id).await.map_err(|e| e.to_string())?;
        let task = client.task(&lost).await.map_err(|e| e.to_string())?;
        if agent.agent.status == AgentStatus::Active && task.state != TaskState::TASK_UNREACHABLE {
            Ok(())
        } else {
            Err(format!("agent {:?}, task {:?}", agent.agent.status, task.state))
        }
    })
    .await;
    for (id, n) in &counts {
        let checked = matches!(*id, "/web" | "/slow");
        let a = wait_stable(&client, id, *n, checked).await;
        if *id == "/spread" {
            let (kept, killed) =
                if ids(&tasks(&a)).contains(&lost) { (victim.as_str(), free) } else { (free, victim.as_str()) };
            eprintln!(
                "/spread: of the instance back on {victim} and its replacement on {free}, the one on {killed} was killed and the one on {kept} kept"
            );
            let h = hosts(&tasks(&a));
            assert_ne!(h[0], h[1], "UNIQUE after the agent's return: {}", describe(&a));
        }
    }
    phase("agent back", &mut phases);
    eprintln!("marathon e2e phases: {phases:?}, total {:?}", started.elapsed());
}
