//! Agents against in-process masters, with the recording fake container runtime: the task
//! protocol, status updates, unreachable agents, reconciliation, drain and failover.

mod support;

use std::sync::Arc;
use std::time::Duration;

use medos::agent::fake::FakeContainers;
use medos::agent::{Exit, RunningAgent};
use medos::api::tasks::RunTask;
use medos::core::{AgentStatus, TaskState};
use support::{TestCluster, fast_tuning, wait_for};

fn run(cmd: &str) -> RunTask {
    serde_json::from_value(serde_json::json!({ "name": "job", "cmd": cmd, "cpus": 0.5, "mem": 64, "ports": 1 }))
        .unwrap()
}

async fn start_agent(cluster: &TestCluster, name: &str, fake: Arc<FakeContainers>) -> RunningAgent {
    medos::agent::start(cluster.agent_config(name), fake).await.unwrap()
}

async fn wait_agents(cluster: &TestCluster, n: usize) {
    let master = cluster.any_master();
    wait_for("agents to register", Duration::from_secs(20), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            (state.agents.values().filter(|a| a.status == AgentStatus::Active).count() == n).then_some(())
        }
    })
    .await;
}

async fn wait_state(cluster: &TestCluster, task_id: &str, want: TaskState) -> medos::core::Task {
    let master = cluster.any_master();
    let id = task_id.to_string();
    wait_for(&format!("{task_id} to reach {want:?}"), Duration::from_secs(20), || {
        let m = master.clone();
        let id = id.clone();
        async move {
            let state = m.state.read().unwrap();
            state.tasks.get(&id).filter(|t| t.state == want).cloned()
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_runs_to_completion_with_ordered_status_updates() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let client = cluster.client(&cluster.wait_leader().await).await;

    let task = client.run_task(&run("echo hi")).await.unwrap();
    assert_eq!(task.state, TaskState::TASK_STAGING);
    assert_eq!(task.ports, vec![31000]);
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    assert_eq!(*fake.launched.lock().unwrap(), vec![task.id.clone()]);

    fake.finish(&task.id, Exit { code: Some(0), signal: None, oom: false });
    let done = wait_state(&cluster, &task.id, TaskState::TASK_FINISHED).await;
    assert_eq!(done.exit_code, Some(0));
    let states: Vec<TaskState> = done.statuses.iter().map(|s| s.state).collect();
    assert_eq!(states, [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_FINISHED]);

    // An OOM is reported with Mesos's reason.
    let task = client.run_task(&run("eat memory")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    fake.finish(&task.id, Exit { code: None, signal: Some(9), oom: true });
    let failed = wait_state(&cluster, &task.id, TaskState::TASK_FAILED).await;
    assert_eq!(failed.reason.as_deref(), Some("REASON_CONTAINER_LIMITATION_MEMORY"));

    // A launch failure is reported, not hidden.
    *fake.fail_launch_containing.lock().unwrap() = Some("broken".into());
    let task = client.run_task(&run("broken command")).await.unwrap();
    let failed = wait_state(&cluster, &task.id, TaskState::TASK_FAILED).await;
    assert_eq!(failed.reason.as_deref(), Some("REASON_CONTAINER_LAUNCH_FAILED"));
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_task_reports_task_killed() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let client = cluster.client("m1").await;
    let task = client.run_task(&run("sleep 1000")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    // A unique prefix of the id is enough.
    client.kill_task(&task.id[..12], Some(1.0)).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_KILLED).await;
    assert_eq!(*fake.killed.lock().unwrap(), vec![task.id.clone()]);
    let err = client.kill_task(&task.id, None).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_agent_becomes_unreachable_and_its_tasks_return_with_it() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let client = cluster.client("m1").await;
    let task = client.run_task(&run("sleep 1000")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    let agent_id = agent.session.agent_id().unwrap();

    agent.crash();
    let unreachable = wait_state(&cluster, &task.id, TaskState::TASK_UNREACHABLE).await;
    assert_eq!(unreachable.reason.as_deref(), Some("REASON_SLAVE_REMOVED"));
    assert_eq!(client.agent(&agent_id).await.unwrap().agent.status, AgentStatus::Unreachable);

    // The restarted agent keeps its id, finds its task still running, and says so.
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    assert_eq!(agent.session.agent_id().as_deref(), Some(agent_id.as_str()));
    assert_eq!(client.agents().await.unwrap().len(), 1, "no duplicate agent");
    assert_eq!(fake.launched.lock().unwrap().len(), 1, "the task is never launched twice");
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_marks_forgotten_tasks_lost_and_kills_unknown_ones() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let client = cluster.client("m1").await;
    let task = client.run_task(&run("sleep 1000")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    agent.shutdown().await;

    // The agent comes back having lost its checkpoint of the task, but running a task the
    // masters never heard of.
    let work = cluster.agent_config("agent-1").work_dir;
    std::fs::remove_file(work.join("tasks").join(format!("{}.json", task.id))).unwrap();
    let mut stray = task.clone();
    stray.id = "stray.1".into();
    let record = serde_json::json!({ "task": stray, "state": "TASK_RUNNING", "killing": false });
    std::fs::write(work.join("tasks/stray.1.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    let fake2 = Arc::new(FakeContainers::default());
    use medos::agent::Containers;
    fake2.launch(&stray, &work).unwrap();
    let agent = start_agent(&cluster, "agent-1", fake2.clone()).await;

    let lost = wait_state(&cluster, &task.id, TaskState::TASK_LOST).await;
    assert_eq!(lost.reason.as_deref(), Some("REASON_RECONCILIATION"));
    wait_for("the stray task to be killed", Duration::from_secs(20), || async {
        fake2.killed.lock().unwrap().contains(&"stray.1".to_string()).then_some(())
    })
    .await;
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_updates_survive_a_leader_crash() {
    let mut cluster = TestCluster::start(3, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let task = client.run_task(&run("sleep 1000")).await.unwrap();
        wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
        ids.push(task.id);
    }
    cluster.crash(&leader);
    // Exits while there is no leader are queued by the agent and delivered to the next one.
    for id in &ids {
        fake.finish(id, Exit { code: Some(0), signal: None, oom: false });
    }
    cluster.wait_leader().await;
    for id in &ids {
        wait_state(&cluster, id, TaskState::TASK_FINISHED).await;
    }
    // The new leader still knows the agent and uses it.
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let task = client.run_task(&run("after failover")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_an_agent_kills_its_tasks_and_stops_placement() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let client = cluster.client("m1").await;
    let task = client.run_task(&run("sleep 1000")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    client.set_agent_mode("agent-1", "drain").await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_KILLED).await;
    let err = client.run_task(&run("more work")).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("draining"), "{err}");
    client.set_agent_mode("agent-1", "reactivate").await.unwrap();
    client.run_task(&run("more work")).await.unwrap();
    let bad = client.set_agent_mode("agent-1", "explode").await.unwrap_err();
    assert_eq!(bad.status(), Some(400));
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_checks_report_healthy_and_then_unhealthy() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let agent = start_agent(&cluster, "agent-1", fake.clone()).await;
    wait_agents(&cluster, 1).await;
    let client = cluster.client("m1").await;
    // The "task" serves on a port the test controls.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let request: RunTask = serde_json::from_value(serde_json::json!({
        "name": "web", "cmd": "serve", "ports": 1,
        "healthChecks": [{
            "protocol": "MESOS_TCP", "port": port,
            "gracePeriodSeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 1, "delaySeconds": 0,
            "maxConsecutiveFailures": 2
        }]
    }))
    .unwrap();
    let task = client.run_task(&request).await.unwrap();
    let master = cluster.any_master();
    let id = task.id.clone();
    let health = |want: bool| {
        let m = master.clone();
        let id = id.clone();
        async move {
            let state = m.state.read().unwrap();
            state.tasks.get(&id).filter(|t| t.state == TaskState::TASK_RUNNING && t.healthy == Some(want)).cloned()
        }
    };
    wait_for("the task to be healthy", Duration::from_secs(20), || health(true)).await;
    drop(listener);
    let unhealthy = wait_for("the task to be unhealthy", Duration::from_secs(20), || health(false)).await;
    assert!(unhealthy.message.contains("in a row"), "{}", unhealthy.message);
    assert_eq!(unhealthy.reason.as_deref(), Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"));

    // Bad health check definitions are refused with the field named.
    let bad: RunTask = serde_json::from_value(serde_json::json!({
        "cmd": "x", "healthChecks": [{ "protocol": "MESOS_HTTP", "portIndex": 3 }]
    }))
    .unwrap();
    let err = client.run_task(&bad).await.unwrap_err();
    assert!(err.to_string().contains("healthChecks[0].portIndex"), "{err}");
    agent.shutdown().await;
    cluster.shutdown().await;
}
