//! Mesos's read endpoints (`/mesos/master/state`, `state-summary`, `slaves`, `frameworks`,
//! `tasks`, `metrics/snapshot`, `redirect`) against in-process masters and fake agents:
//! the JSON shapes tools read and the numbers as tasks run, end, and agents go away.

mod support;

use std::sync::Arc;
use std::time::Duration;

use medos::agent::fake::FakeContainers;
use medos::agent::{Exit, RunningAgent};
use medos::api::client::Client;
use medos::api::tasks::RunTask;
use medos::core::{AgentStatus, TaskState};
use reqwest::Method;
use serde_json::{Value, json};
use support::{ADMIN, PASSWORD, TestCluster, fast_tuning, wait_for};

const WAIT: Duration = Duration::from_secs(20);

fn run(name: &str) -> RunTask {
    serde_json::from_value(json!({ "name": name, "cmd": "sleep 1000", "cpus": 0.5, "mem": 64, "ports": 1 })).unwrap()
}

async fn start_agent(cluster: &TestCluster, name: &str, fake: Arc<FakeContainers>) -> RunningAgent {
    medos::agent::start(cluster.agent_config(name), fake).await.unwrap()
}

async fn get(client: &Client, path: &str) -> Value {
    let resp = client.send(Method::GET, path, None, false).await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

async fn status_of(client: &Client, path: &str) -> u16 {
    client.send(Method::GET, path, None, false).await.unwrap().status().as_u16()
}

/// Polls `path` until `check` accepts the JSON.
async fn wait_json(client: &Client, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, WAIT, || async {
        let v = get(client, path).await;
        check(&v).then_some(v)
    })
    .await
}

async fn wait_task(cluster: &TestCluster, task_id: &str, want: TaskState) {
    let master = cluster.any_master();
    wait_for(&format!("{task_id} to reach {want:?}"), WAIT, || {
        let m = master.clone();
        async move { m.state.read().unwrap().tasks.get(task_id).is_some_and(|t| t.state == want).then_some(()) }
    })
    .await;
}

fn framework<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no framework {name}"))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
}

/// A client that does not follow redirects, with a token.
async fn raw_client(cluster: &TestCluster, name: &str) -> (reqwest::Client, String) {
    let anon = Client::new(vec![cluster.url(name)], &cluster.ca_pem(), None).unwrap();
    let token = anon.login(ADMIN, PASSWORD).await.unwrap();
    let tls = medos::pki::tls::client_config_for_ca(&cluster.ca_pem()).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (http, token)
}

async fn redirect_location(cluster: &TestCluster, name: &str) -> String {
    let (http, token) = raw_client(cluster, name).await;
    let resp = http
        .get(format!("{}/mesos/master/redirect", cluster.url(name)))
        .header("Authorization", format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    resp.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mesos_endpoints_follow_agents_frameworks_and_tasks() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent1 = start_agent(&cluster, "agent-1", fake.clone()).await;
    let agent2 = start_agent(&cluster, "agent-2", fake.clone()).await;
    let client = cluster.client("m1").await;
    let master = cluster.any_master();
    let cluster_id = master.state.read().unwrap().cluster_id().unwrap().to_string();
    let port = cluster.url("m1").rsplit(':').next().unwrap().to_string();
    let marathon_id = format!("{cluster_id}-0000");
    let tasks_id = format!("{cluster_id}-0001");

    // Before any task: two agents, all resources free.
    let metrics =
        wait_json(&client, "/mesos/metrics/snapshot", "two agents", |m| m["master/slaves_active"] == 2.0).await;
    assert_eq!(metrics["master/elected"], 1.0);
    assert_eq!(metrics["master/slaves_connected"], 2.0);
    assert_eq!(metrics["master/slaves_unreachable"], 0.0);
    assert_eq!(metrics["master/frameworks_active"], 2.0);
    assert_eq!(metrics["master/cpus_total"], 8.0);
    assert_eq!(metrics["master/mem_total"], 8192.0);
    assert_eq!(metrics["master/disk_total"], 20000.0);
    assert_eq!(metrics["master/gpus_total"], 0.0);
    assert_eq!(metrics["master/cpus_used"], 0.0);
    assert_eq!(metrics["master/tasks_running"], 0.0);
    assert_eq!(metrics["registrar/log/recovered"], 1.0);
    assert_eq!(metrics["registrar/log/ensemble_size"], 1.0);
    assert!(metrics["master/uptime_secs"].as_f64().unwrap() > 0.0);
    assert!(metrics["medos/raft/last_applied"].as_f64().unwrap() > 0.0);
    assert!(metrics.as_object().unwrap().values().all(Value::is_number), "{metrics}");
    assert_eq!(get(&client, "/mesos/master/metrics/snapshot").await["master/cpus_total"], 8.0);

    // A running task.
    let first = client.run_task(&run("first")).await.unwrap();
    wait_task(&cluster, &first.id, TaskState::TASK_RUNNING).await;

    let state = get(&client, "/mesos/master/state").await;
    assert_eq!(state["version"], medos::api::mesos::MESOS_VERSION);
    assert_eq!(state["id"], master.id.to_string());
    assert_eq!(state["pid"], format!("master@127.0.0.1:{port}"));
    assert_eq!(state["hostname"], "127.0.0.1");
    assert_eq!(state["cluster"], cluster_id);
    assert_eq!(state["leader"], state["pid"]);
    assert_eq!(state["leader_info"]["hostname"], "127.0.0.1");
    assert_eq!(state["leader_info"]["port"].to_string(), port);
    assert_eq!(state["activated_slaves"], 2.0);
    assert_eq!(state["deactivated_slaves"], 0.0);
    assert_eq!(state["unreachable_slaves"], 0.0);
    assert!(state["start_time"].as_f64().unwrap() > 1.6e9);
    assert_eq!(state["flags"]["port"], port);
    for empty in ["recovered_slaves", "completed_frameworks", "orphan_tasks", "unregistered_frameworks"] {
        assert_eq!(state[empty], json!([]), "{empty}");
    }
    let slaves = state["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), 2);
    for slave in slaves {
        assert_eq!(
            slave["resources"],
            json!({"cpus": 4.0, "gpus": 0.0, "mem": 4096.0, "disk": 10000.0, "ports": "[31000-31009]"})
        );
        assert_eq!(slave["unreserved_resources"], slave["resources"]);
        assert_eq!(slave["reserved_resources"], json!({}));
        assert_eq!(slave["offered_resources"]["cpus"], 0.0);
        assert_eq!(slave["active"], true);
        assert!(slave["pid"].as_str().unwrap().starts_with("slave(1)@127.0.0.1:"), "{slave}");
        assert!(["agent-1", "agent-2"].contains(&slave["hostname"].as_str().unwrap()));
        assert!(slave["registered_time"].as_f64().unwrap() > 1.6e9);
        let used = &slave["used_resources"];
        if slave["id"] == first.agent_id {
            assert_eq!(used, &json!({"cpus": 0.5, "gpus": 0.0, "mem": 64.0, "disk": 0.0, "ports": "[31000-31000]"}));
        } else {
            assert_eq!(used, &json!({"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}));
        }
    }
    let marathon = framework(&state["frameworks"], "marathon");
    assert_eq!(marathon["id"], marathon_id);
    assert!(marathon["webui_url"].as_str().unwrap().ends_with("/marathon"));
    assert_eq!(marathon["tasks"], json!([]));
    assert_eq!(marathon["role"], "*");
    let medos_tasks = framework(&state["frameworks"], "medos-tasks");
    assert_eq!(medos_tasks["id"], tasks_id);
    assert_eq!(medos_tasks["active"], true);
    assert_eq!(medos_tasks["used_resources"]["cpus"], 0.5);
    assert_eq!(medos_tasks["offers"], json!([]));
    let task = &medos_tasks["tasks"][0];
    assert_eq!(task["id"], first.id);
    assert_eq!(task["name"], "first");
    assert_eq!(task["framework_id"], tasks_id);
    assert_eq!(task["slave_id"], first.agent_id);
    assert_eq!(task["agent_id"], first.agent_id);
    assert_eq!(task["executor_id"], "");
    assert_eq!(task["state"], "TASK_RUNNING");
    assert_eq!(task["role"], "*");
    assert_eq!(task["resources"]["ports"], "[31000-31000]");
    assert_eq!(task["discovery"]["ports"]["ports"][0], json!({"number": 31000, "protocol": "tcp"}));
    let last = task["statuses"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["state"], "TASK_RUNNING");
    assert!(last["timestamp"].as_f64().unwrap() > 1.6e9);
    assert_eq!(
        last["container_status"]["network_infos"][0]["ip_addresses"][0],
        json!({"protocol": "IPv4", "ip_address": "127.0.0.1"})
    );
    for alias in ["/mesos/state", "/mesos/state.json", "/mesos/master/state.json"] {
        assert_eq!(get(&client, alias).await["slaves"].as_array().unwrap().len(), 2, "{alias}");
    }

    let summary = get(&client, "/mesos/state-summary").await;
    assert_eq!(summary["hostname"], "127.0.0.1");
    assert_eq!(summary["cluster"], cluster_id);
    let running: Vec<u64> =
        summary["slaves"].as_array().unwrap().iter().map(|s| s["TASK_RUNNING"].as_u64().unwrap()).collect();
    assert_eq!(running.iter().sum::<u64>(), 1, "{summary}");
    let busy = summary["slaves"].as_array().unwrap().iter().find(|s| s["id"] == first.agent_id).unwrap();
    assert_eq!(busy["framework_ids"], json!([tasks_id]));
    assert_eq!(busy["TASK_FINISHED"], 0);
    let fw = framework(&summary["frameworks"], "medos-tasks");
    assert_eq!(fw["TASK_RUNNING"], 1);
    assert_eq!(fw["slave_ids"], json!([first.agent_id]));
    assert!(fw.get("tasks").is_none(), "the summary has no task lists");
    assert_eq!(framework(&summary["frameworks"], "marathon")["TASK_RUNNING"], 0);

    let listed = get(&client, "/mesos/master/slaves").await;
    assert_eq!(listed["slaves"].as_array().unwrap().len(), 2);
    assert_eq!(listed["recovered_slaves"], json!([]));
    let one = get(&client, &format!("/mesos/master/slaves?slave_id={}", first.agent_id)).await;
    assert_eq!(ids(&one["slaves"]), vec![first.agent_id.clone()]);

    let fws = get(&client, "/mesos/master/frameworks").await;
    assert_eq!(fws["frameworks"].as_array().unwrap().len(), 2);
    assert_eq!(fws["completed_frameworks"], json!([]));
    assert_eq!(fws["unregistered_frameworks"], json!([]));
    let only = get(&client, &format!("/mesos/master/frameworks?framework_id={marathon_id}")).await;
    assert_eq!(ids(&only["frameworks"]), vec![marathon_id.clone()]);

    let metrics = get(&client, "/mesos/metrics/snapshot").await;
    assert_eq!(metrics["master/tasks_running"], 1.0);
    assert_eq!(metrics["master/cpus_used"], 0.5);
    assert_eq!(metrics["master/mem_used"], 64.0);
    assert_eq!(metrics["master/cpus_percent"], 0.5 / 8.0);

    // A second task lands on the other agent (most free CPU); the first one finishes.
    let second = client.run_task(&run("second")).await.unwrap();
    assert_ne!(second.agent_id, first.agent_id);
    wait_task(&cluster, &second.id, TaskState::TASK_RUNNING).await;
    fake.finish(&first.id, Exit { code: Some(0), signal: None, oom: false });
    wait_task(&cluster, &first.id, TaskState::TASK_FINISHED).await;

    let metrics = get(&client, "/mesos/metrics/snapshot").await;
    assert_eq!(metrics["master/tasks_finished"], 1.0);
    assert_eq!(metrics["master/tasks_running"], 1.0);
    assert_eq!(metrics["master/cpus_used"], 0.5);

    let state = get(&client, "/mesos/master/state").await;
    let medos_tasks = framework(&state["frameworks"], "medos-tasks");
    assert_eq!(ids(&medos_tasks["tasks"]), vec![second.id.clone()]);
    assert_eq!(ids(&medos_tasks["completed_tasks"]), vec![first.id.clone()]);
    assert_eq!(medos_tasks["completed_tasks"][0]["state"], "TASK_FINISHED");
    let idle = state["slaves"].as_array().unwrap().iter().find(|s| s["id"] == first.agent_id).unwrap();
    assert_eq!(idle["used_resources"]["cpus"], 0.0);

    // /master/tasks: newest launch first by default, paged, filtered.
    let all = get(&client, "/mesos/master/tasks").await;
    assert_eq!(ids(&all["tasks"]), vec![second.id.clone(), first.id.clone()]);
    let asc = get(&client, "/mesos/master/tasks?order=asc").await;
    assert_eq!(ids(&asc["tasks"]), vec![first.id.clone(), second.id.clone()]);
    let page = get(&client, "/mesos/master/tasks?limit=1&offset=1").await;
    assert_eq!(ids(&page["tasks"]), vec![first.id.clone()]);
    let by_id = get(&client, &format!("/mesos/tasks?task_id={}", second.id)).await;
    assert_eq!(ids(&by_id["tasks"]), vec![second.id.clone()]);
    assert_eq!(get(&client, &format!("/mesos/master/tasks?framework_id={marathon_id}")).await["tasks"], json!([]));
    assert_eq!(
        get(&client, &format!("/mesos/master/tasks.json?framework_id={tasks_id}")).await["tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(status_of(&client, "/mesos/master/tasks?limit=many").await, 400);

    // The agent running the second task goes silent: it leaves `slaves`, its task is unreachable.
    let (silent, other) = if agent1.session.agent_id().as_deref() == Some(second.agent_id.as_str()) {
        (agent1, agent2)
    } else {
        (agent2, agent1)
    };
    silent.crash();
    wait_for("the agent to become unreachable", WAIT, || async {
        let state = master.state.read().unwrap();
        (state.agents[&second.agent_id].status == AgentStatus::Unreachable).then_some(())
    })
    .await;
    wait_task(&cluster, &second.id, TaskState::TASK_UNREACHABLE).await;
    let state = get(&client, "/mesos/master/state").await;
    assert_eq!(state["unreachable_slaves"], 1.0);
    assert!(!ids(&state["slaves"]).contains(&second.agent_id), "{}", state["slaves"]);
    let medos_tasks = framework(&state["frameworks"], "medos-tasks");
    assert_eq!(ids(&medos_tasks["unreachable_tasks"]), vec![second.id.clone()]);
    assert_eq!(medos_tasks["tasks"], json!([]));
    let metrics = get(&client, "/mesos/metrics/snapshot").await;
    assert_eq!(metrics["master/slaves_unreachable"], 1.0);
    assert_eq!(metrics["master/tasks_unreachable"], 1.0);
    assert_eq!(metrics["master/tasks_running"], 0.0);

    // Redirect names the leader (this master), protocol-relative, at its Mesos endpoints.
    assert_eq!(redirect_location(&cluster, "m1").await, format!("//127.0.0.1:{port}/mesos"));
    // A token is required.
    let anon = Client::new(vec![cluster.url("m1")], &cluster.ca_pem(), None).unwrap();
    assert_eq!(status_of(&anon, "/mesos/master/state").await, 401);
    other.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_answer_and_redirect_to_the_leader() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.running().into_iter().find(|n| *n != leader).unwrap().to_string();
    let leader_port = cluster.url(&leader).rsplit(':').next().unwrap().to_string();

    assert_eq!(redirect_location(&cluster, &follower).await, format!("//127.0.0.1:{leader_port}/mesos"));

    let client = cluster.client(&follower).await;
    let state = get(&client, "/mesos/master/state").await;
    assert_eq!(state["leader"], format!("master@127.0.0.1:{leader_port}"));
    assert_eq!(state["leader_info"]["id"], cluster.id(&leader).to_string());
    assert_ne!(state["pid"], state["leader"]);
    assert_eq!(state["flags"]["quorum"], "2");
    let metrics = get(&client, "/mesos/metrics/snapshot").await;
    assert_eq!(metrics["master/elected"], 0.0);
    assert_eq!(metrics["registrar/log/ensemble_size"], 3.0);
    let leader_client = cluster.client(&leader).await;
    assert_eq!(get(&leader_client, "/mesos/metrics/snapshot").await["master/elected"], 1.0);
    cluster.shutdown().await;
}
