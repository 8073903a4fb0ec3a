//! The built-in Marathon against in-process masters and agents with the recording fake
//! container runtime: deployments, scaling, constraints, rolling restarts, relaunches,
//! conflicts, validation errors, the queue, and a leader failover in the middle of a deployment.

mod support;

use std::sync::Arc;
use std::time::Duration;

use medos::agent::fake::FakeContainers;
use medos::agent::{Exit, RunningAgent};
use medos::api::client::{Client, ClientError};
use medos::core::{AgentStatus, TaskState};
use reqwest::Method;
use serde_json::{Value, json};
use support::{TestCluster, fast_tuning, wait_for};

struct Fixture {
    cluster: TestCluster,
    fakes: Vec<Arc<FakeContainers>>,
    agents: Vec<RunningAgent>,
}

async fn fixture(masters: usize, agents: usize) -> Fixture {
    let cluster = TestCluster::start(masters, fast_tuning()).await;
    let mut fakes = Vec::new();
    let mut running = Vec::new();
    for i in 1..=agents {
        let fake = Arc::new(FakeContainers::default());
        let config = cluster.agent_config(&format!("agent-{i}"));
        running.push(medos::agent::start(config, fake.clone()).await.unwrap());
        fakes.push(fake);
    }
    let master = cluster.any_master();
    wait_for("agents to register", Duration::from_secs(20), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            (state.agents.values().filter(|a| a.status == AgentStatus::Active).count() == agents).then_some(())
        }
    })
    .await;
    Fixture { cluster, fakes, agents: running }
}

async fn call(client: &Client, method: Method, path: &str, body: Option<Value>) -> Value {
    client.marathon(method.clone(), path, body.as_ref()).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn api_error(result: Result<Value, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, body }) => (status, body.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Waits until the app has `n` TASK_RUNNING tasks and no deployment; returns the app JSON.
async fn wait_stable(client: &Client, id: &str, n: u64) -> Value {
    wait_for(&format!("{id} to run {n} tasks with no deployment"), Duration::from_secs(30), || async {
        let app = client.marathon(Method::GET, &format!("/v2/apps{id}"), None).await.ok()?;
        let app = app["app"].clone();
        let done = app["tasksRunning"] == json!(n)
            && app["deployments"].as_array().is_some_and(|d| d.is_empty())
            && app["tasks"].as_array().is_some_and(|t| t.len() as u64 == n);
        done.then_some(app)
    })
    .await
}

fn hosts(app: &Value) -> Vec<String> {
    let mut hosts: Vec<String> =
        app["tasks"].as_array().unwrap().iter().map(|t| t["host"].as_str().unwrap().to_string()).collect();
    hosts.sort();
    hosts
}

fn task_ids(app: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        app["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apps_deploy_scale_restart_and_go_away() {
    let f = fixture(3, 3).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;

    // Marathon's own example shape, with a UNIQUE hostname constraint.
    let created = call(
        &client,
        Method::POST,
        "/v2/apps",
        Some(json!({
            "id": "/prod/web",
            "cmd": "python3 -m http.server $PORT0",
            "cpus": 0.25,
            "mem": 64,
            "instances": 3,
            "constraints": [["hostname", "UNIQUE"]],
            "portDefinitions": [{"port": 0, "name": "http"}],
            "labels": {"team": "web"},
        })),
    )
    .await;
    assert_eq!(created["id"], "/prod/web");
    assert_eq!(created["backoffFactor"], json!(1.15), "Marathon's defaults are filled in");
    let app = wait_stable(&client, "/prod/web", 3).await;
    assert_eq!(hosts(&app), ["agent-1", "agent-2", "agent-3"], "UNIQUE puts one instance per agent");
    let task = &app["tasks"][0];
    assert_eq!(task["appId"], "/prod/web");
    assert_eq!(task["ports"].as_array().unwrap().len(), 1);
    assert_eq!(task["version"], app["version"]);

    // The same answer under /marathon/v2, and in the list with a label selector.
    let listed = call(&client, Method::GET, "/marathon/v2/apps?label=team==web", None).await;
    assert_eq!(listed["apps"].as_array().unwrap().len(), 1);
    let none = call(&client, Method::GET, "/v2/apps?label=team==db", None).await;
    assert!(none["apps"].as_array().unwrap().is_empty());

    // Scaling beyond what UNIQUE allows leaves instances waiting, and the queue says why.
    call(&client, Method::PUT, "/v2/apps/prod/web", Some(json!({"instances": 4}))).await;
    let queue = wait_for("the queue to explain the waiting instance", Duration::from_secs(20), || async {
        let q = client.marathon(Method::GET, "/v2/queue", None).await.ok()?;
        let entry = q["queue"].as_array()?.first()?.clone();
        let reasons = entry["processedOffersSummary"]["rejectSummaryLastOffers"].to_string();
        reasons.contains("UnfulfilledConstraint").then_some(entry)
    })
    .await;
    assert_eq!(queue["count"], json!(1));
    assert_eq!(queue["app"]["id"], "/prod/web");

    // A second change while that deployment waits conflicts; with force it replaces it.
    let (status, message) =
        api_error(client.marathon(Method::PUT, "/v2/apps/prod/web", Some(&json!({"instances": 2}))).await);
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("locked by one or more deployments"), "{message}");
    call(&client, Method::PUT, "/v2/apps/prod/web?force=true", Some(json!({"instances": 2}))).await;
    let app = wait_stable(&client, "/prod/web", 2).await;
    assert_eq!(hosts(&app).len(), 2);
    let before = task_ids(&app);

    // A config change rolls every instance to the new version.
    let v = call(&client, Method::PUT, "/v2/apps/prod/web", Some(json!({"cmd": "sleep 1000"}))).await;
    let new_version = v["version"].as_str().unwrap().to_string();
    let app = wait_stable(&client, "/prod/web", 2).await;
    assert_eq!(app["version"], json!(new_version));
    assert!(task_ids(&app).iter().all(|id| !before.contains(id)), "every task was replaced");
    assert!(app["tasks"].as_array().unwrap().iter().all(|t| t["version"] == json!(new_version)));
    let versions = call(&client, Method::GET, "/v2/apps/prod/web/versions", None).await;
    assert!(versions["versions"].as_array().unwrap().len() >= 3);

    // A task that fails is relaunched.
    let victim = task_ids(&app)[0].clone();
    for fake in &f.fakes {
        fake.finish(&victim, Exit { code: Some(3), signal: None, oom: false });
    }
    let app = wait_for("the failed task to be replaced", Duration::from_secs(30), || async {
        let app = client.marathon(Method::GET, "/v2/apps/prod/web", None).await.ok()?["app"].clone();
        let ids = task_ids(&app);
        (app["tasksRunning"] == json!(2) && !ids.contains(&victim)).then_some(app)
    })
    .await;
    assert_eq!(app["lastTaskFailure"]["taskId"], json!(victim));

    // Restart replaces the tasks with the same definition.
    let before = task_ids(&app);
    call(&client, Method::POST, "/v2/apps/prod/web/restart", None).await;
    let app = wait_for("the restart to replace every task", Duration::from_secs(30), || async {
        let app = client.marathon(Method::GET, "/v2/apps/prod/web", None).await.ok()?["app"].clone();
        let ids = task_ids(&app);
        let done = app["tasksRunning"] == json!(2)
            && app["deployments"].as_array().is_some_and(|d| d.is_empty())
            && ids.len() == 2
            && ids.iter().all(|id| !before.contains(id));
        done.then_some(app)
    })
    .await;
    assert_eq!(app["cmd"], "sleep 1000");

    // Killing a task with scale=true lowers the instance count instead of replacing it.
    let victim = task_ids(&app)[0].clone();
    call(&client, Method::DELETE, &format!("/v2/apps/prod/web/tasks/{victim}?scale=true"), None).await;
    let app = wait_stable(&client, "/prod/web", 1).await;
    assert_eq!(app["instances"], json!(1));

    // Removing the app kills its tasks.
    call(&client, Method::DELETE, "/v2/apps/prod/web", None).await;
    let (status, _) = api_error(client.marathon(Method::GET, "/v2/apps/prod/web", None).await);
    assert_eq!(status, 404);
    let master = f.cluster.any_master();
    wait_for("every task of the removed app to end", Duration::from_secs(20), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            let alive = state.tasks.values().filter(|t| t.app_id.is_some() && !t.state.is_terminal()).count();
            (alive == 0 && state.marathon.deployments.is_empty()).then_some(())
        }
    })
    .await;
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_apps_get_marathons_422_and_nothing_changes() {
    let f = fixture(1, 1).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;
    let cases = [
        (json!({"id": "/a", "cmd": "x", "cpus": -1}), "/cpus"),
        (json!({"id": "/a", "cmd": "x", "instances": -2}), "/instances"),
        (json!({"id": "/a", "cmd": "x", "constraints": [["hostname", "SOMETIMES"]]}), "/constraints"),
        (json!({"id": "/a", "cmd": "x", "constraints": [["hostname", "LIKE", "[unclosed"]]}), "/constraints"),
        (json!({"id": "/Bad_Id", "cmd": "x"}), "/id"),
    ];
    for (body, path) in cases {
        let result = client.marathon(Method::POST, "/v2/apps", Some(&body)).await;
        let (status, message) = api_error(result);
        assert_eq!(status, 422, "{body}: {message}");
        assert!(message.contains(path), "{body}: the error names {path}: {message}");
    }
    let (status, _) = api_error(client.marathon(Method::POST, "/v2/apps", Some(&json!("not an object"))).await);
    assert!(status == 422 || status == 400);
    let apps = call(&client, Method::GET, "/v2/apps", None).await;
    assert!(apps["apps"].as_array().unwrap().is_empty(), "nothing was created: {apps}");
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_survives_a_leader_failover_without_duplicates() {
    let mut f = fixture(3, 2).await;
    let leader = f.cluster.wait_leader().await;
    let follower = f.cluster.running().into_iter().find(|n| *n != leader).unwrap().to_string();
    let client = f.cluster.client(&follower).await;
    call(
        &client,
        Method::POST,
        "/v2/apps",
        Some(json!({"id": "/svc", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 4})),
    )
    .await;
    // Crash the leader right away: the deployment is in the replicated state and the next
    // leader carries it out.
    f.cluster.crash(&leader);
    let app = wait_stable(&client, "/svc", 4).await;
    let ids = task_ids(&app);
    let master = f.cluster.any_master();
    let state = master.state.read().unwrap().clone();
    let alive: Vec<_> =
        state.tasks.values().filter(|t| t.app_id.as_deref() == Some("/svc") && !t.state.is_terminal()).collect();
    assert_eq!(alive.len(), 4, "no duplicate instances: {:?}", alive.iter().map(|t| &t.id).collect::<Vec<_>>());
    assert!(
        state.tasks.values().filter(|t| t.app_id.as_deref() == Some("/svc")).all(|t| t.state != TaskState::TASK_KILLED)
    );
    assert_eq!(ids.len(), 4);
    f.cluster.shutdown().await;
}

/// Reads server-sent events until `until` has been seen (or the deadline passes).
async fn read_events(resp: &mut reqwest::Response, until: &str, deadline: Duration) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let end = tokio::time::Instant::now() + deadline;
    while !events.iter().any(|(t, _): &(String, Value)| t == until) {
        let chunk = tokio::time::timeout_at(end, resp.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("no {until} event in time; saw {:?}", events.iter().map(|e| &e.0).collect::<Vec<_>>())
            })
            .expect("event stream")
            .expect("event stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end_of_event) = buffer.find("\n\n") {
            let raw: String = buffer.drain(..end_of_event + 2).collect();
            let mut event_type = String::new();
            let mut data = String::new();
            for line in raw.lines() {
                if let Some(t) = line.strip_prefix("event:") {
                    event_type = t.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim());
                }
            }
            if !event_type.is_empty() {
                events.push((event_type, serde_json::from_str(&data).expect("event data is JSON")));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_stream_tells_the_story_of_a_deployment() {
    let f = fixture(1, 1).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;
    let mut resp = client.send(Method::GET, "/v2/events", None, false).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let attached = read_events(&mut resp, "event_stream_attached", Duration::from_secs(10)).await;
    assert_eq!(attached[0].1["eventType"], "event_stream_attached");

    call(&client, Method::POST, "/v2/apps", Some(json!({"id": "/ev", "cmd": "sleep 100", "cpus": 0.1, "mem": 16})))
        .await;
    let events = read_events(&mut resp, "deployment_success", Duration::from_secs(20)).await;
    let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    let position =
        |kind: &str| kinds.iter().position(|k| *k == kind).unwrap_or_else(|| panic!("no {kind} in {kinds:?}"));
    assert!(position("api_post_event") < position("deployment_info"));
    assert!(position("deployment_info") < position("deployment_success"));
    let running = events
        .iter()
        .find(|(t, e)| t == "status_update_event" && e["taskStatus"] == "TASK_RUNNING")
        .unwrap_or_else(|| panic!("no TASK_RUNNING update in {kinds:?}"));
    assert_eq!(running.1["appId"], "/ev");
    assert!(position("status_update_event") < position("deployment_success"));
    for (_, event) in &events {
        assert!(event["timestamp"].is_string(), "every event has a timestamp: {event}");
    }

    // Only the asked-for types with ?event_type=.
    let mut filtered =
        client.send(Method::GET, "/v2/events?event_type=app_terminated_event", None, false).await.unwrap();
    call(&client, Method::DELETE, "/v2/apps/ev", None).await;
    let events = read_events(&mut filtered, "app_terminated_event", Duration::from_secs(20)).await;
    assert!(events.iter().all(|(t, _)| t == "app_terminated_event"), "{events:?}");
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_instances_are_replaced_after_inactive_after_seconds_and_the_surplus_goes_when_they_return() {
    let mut f = fixture(1, 2).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;
    call(
        &client,
        Method::POST,
        "/v2/apps",
        Some(json!({
            "id": "/sticky", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 1,
            "unreachableStrategy": {"inactiveAfterSeconds": 1, "expungeAfterSeconds": 3600},
        })),
    )
    .await;
    let app = wait_stable(&client, "/sticky", 1).await;
    let first = app["tasks"][0]["id"].as_str().unwrap().to_string();
    let host = app["tasks"][0]["host"].as_str().unwrap().to_string();
    let index = if host == "agent-1" { 0 } else { 1 };
    let lost = f.agents.remove(index);
    let lost_fake = f.fakes[index].clone();
    lost.crash();

    // The agent goes unreachable, then after inactiveAfterSeconds a replacement starts elsewhere.
    let replaced = wait_for("a replacement on the other agent", Duration::from_secs(30), || async {
        let app = client.marathon(Method::GET, "/v2/apps/sticky", None).await.ok()?["app"].clone();
        let tasks = app["tasks"].as_array()?.clone();
        let running_elsewhere =
            tasks.iter().any(|t| t["state"] == "TASK_RUNNING" && t["host"] != json!(host) && t["id"] != json!(first));
        let old_unreachable = tasks.iter().any(|t| t["id"] == json!(first) && t["state"] == "TASK_UNREACHABLE");
        (running_elsewhere && old_unreachable).then_some(app)
    })
    .await;
    assert_eq!(replaced["instances"], json!(1));

    // The agent returns with its task still running: one of the two goes (the youngest by
    // default), leaving exactly one instance.
    let config = f.cluster.agent_config(&host);
    let back = medos::agent::start(config, lost_fake).await.unwrap();
    let app = wait_stable(&client, "/sticky", 1).await;
    assert_eq!(app["tasks"].as_array().unwrap().len(), 1);
    back.shutdown().await;
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_answer_the_queue_cycles_are_422_and_apps_replace_empty_groups() {
    let f = fixture(3, 1).await;
    let leader = f.cluster.wait_leader().await;
    let follower = f.cluster.running().into_iter().find(|n| *n != leader).unwrap().to_string();
    let client = f.cluster.client(&follower).await;

    // The queue lives in the leader's memory; a follower asks the leader.
    call(&client, Method::POST, "/v2/apps", Some(json!({"id": "/huge", "cmd": "sleep 1", "cpus": 64, "mem": 16})))
        .await;
    let entry = wait_for("the follower to show the waiting app", Duration::from_secs(20), || async {
        let q = client.marathon(Method::GET, "/v2/queue", None).await.ok()?;
        q["queue"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(entry["app"]["id"], "/huge");
    assert!(entry["processedOffersSummary"]["rejectSummaryLastOffers"].to_string().contains("InsufficientCpus"));

    // Dependencies on missing apps and cycles are Marathon's 422.
    let missing = json!({"id": "/needy", "cmd": "sleep 1", "cpus": 0.1, "mem": 16, "dependencies": ["/nothing"]});
    let (status, message) = api_error(client.marathon(Method::POST, "/v2/apps", Some(&missing)).await);
    assert_eq!(status, 422, "{message}");
    call(&client, Method::POST, "/v2/apps", Some(json!({"id": "/x", "cmd": "sleep 1", "cpus": 0.1, "mem": 16}))).await;
    let y = json!({"id": "/y", "cmd": "sleep 1", "cpus": 0.1, "mem": 16, "dependencies": ["/x"]});
    call(&client, Method::POST, "/v2/apps", Some(y)).await;
    let (status, message) =
        api_error(client.marathon(Method::PUT, "/v2/apps/x?force=true", Some(&json!({"dependencies": ["/y"]}))).await);
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("cyclic"), "{message}");

    // An empty group gives way to an app of the same id.
    call(&client, Method::POST, "/v2/groups", Some(json!({"id": "/slot"}))).await;
    call(&client, Method::POST, "/v2/apps", Some(json!({"id": "/slot", "cmd": "sleep 1", "cpus": 0.1, "mem": 16})))
        .await;
    let app = call(&client, Method::GET, "/v2/apps/slot", None).await;
    assert_eq!(app["app"]["id"], "/slot");
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_apps_change_in_one_deployment_with_put_on_v2_apps() {
    let f = fixture(1, 2).await;
    let client = f.cluster.client(&f.cluster.wait_leader().await).await;
    call(&client, Method::POST, "/v2/apps", Some(json!({"id": "/one", "cmd": "sleep 100", "cpus": 0.1, "mem": 16})))
        .await;
    wait_stable(&client, "/one", 1).await;
    // One existing app scaled (a partial update), one created.
    let body = json!([
        {"id": "/one", "instances": 2},
        {"id": "/two", "cmd": "sleep 100", "cpus": 0.1, "mem": 16, "instances": 1},
    ]);
    let answer = call(&client, Method::PUT, "/v2/apps", Some(body)).await;
    assert!(answer["deploymentId"].is_string(), "{answer}");
    let one = wait_stable(&client, "/one", 2).await;
    assert_eq!(one["cmd"], "sleep 100", "a partial update keeps what the body leaves out");
    wait_stable(&client, "/two", 1).await;

    // One bad item refuses the whole request, naming the item.
    let bad = json!([{"id": "/one", "instances": 3}, {"id": "/two", "cpus": -1}]);
    let (status, message) = api_error(client.marathon(Method::PATCH, "/v2/apps", Some(&bad)).await);
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("/(1)/cpus"), "{message}");
    let one = call(&client, Method::GET, "/v2/apps/one", None).await;
    assert_eq!(one["app"]["instances"], json!(2), "nothing was applied");
    f.cluster.shutdown().await;
}
