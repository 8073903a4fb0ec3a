//! `medos agent --simulate`: many simulated agents in one process register with real masters
//! over the real agent protocol and run a Marathon app's tasks with constraints.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use medos::agent::simulate::{SimulateOptions, start};
use medos::core::{AgentStatus, TaskState};
use reqwest::Method;
use serde_json::json;
use support::{TestCluster, fast_tuning, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simulated_agents_register_and_run_a_constrained_app() {
    support::init_logging();
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let mut base = cluster.agent_config("sim");
    base.resources.cpus = Some(8.0);
    let options = SimulateOptions { count: 50, racks: 5, zones: 2, start_rate: 500, ..Default::default() };
    let sim = start(base, options).await.expect("simulated agents start");
    let master = cluster.any_master();
    wait_for("50 simulated agents to register", Duration::from_secs(30), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            (state.agents.values().filter(|a| a.status == AgentStatus::Active).count() == 50).then_some(())
        }
    })
    .await;
    {
        let state = master.state.read().unwrap();
        let hostnames: BTreeSet<&str> = state.agents.values().map(|a| a.hostname.as_str()).collect();
        assert_eq!(hostnames.len(), 50, "every simulated agent has its own hostname");
        assert!(hostnames.contains("sim-00000") && hostnames.contains("sim-00049"));
        let racks: BTreeSet<&str> = state.agents.values().map(|a| a.attributes["rack"].as_str()).collect();
        assert_eq!(racks.len(), 5);
        assert!(state.agents.values().all(|a| a.total.cpus == 8.0));
    }
    assert_eq!(sim.registered(), 50);

    // 100 instances, at most 2 per host: every agent gets exactly two.
    let client = cluster.client(&cluster.wait_leader().await).await;
    let app = json!({
        "id": "/bench/sim",
        "cmd": "sleep 1000",
        "cpus": 0.1,
        "mem": 32,
        "instances": 100,
        "constraints": [["hostname", "MAX_PER", "2"]],
    });
    client.marathon(Method::POST, "/v2/apps", Some(&app)).await.expect("app created");
    wait_for("100 tasks to run", Duration::from_secs(60), || async {
        let app = client.marathon(Method::GET, "/v2/apps/bench/sim", None).await.ok()?;
        (app["app"]["tasksRunning"] == json!(100)).then_some(())
    })
    .await;
    assert_eq!(sim.launched(), 100, "each task was launched once, by a fake container");
    let per_host = {
        let state = master.state.read().unwrap();
        let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
        for task in state.tasks.values().filter(|t| t.state == TaskState::TASK_RUNNING) {
            *per_host.entry(state.agents[&task.agent_id].hostname.clone()).or_default() += 1;
        }
        per_host
    };
    assert_eq!(per_host.len(), 50);
    assert!(per_host.values().all(|n| *n == 2), "{per_host:?}");
    // The agents' own counters (the benchmark's clock): each TASK_RUNNING acknowledged once.
    let stats = wait_for("the agents to hear every TASK_RUNNING acknowledged", Duration::from_secs(20), || async {
        let stats = sim.stats();
        (stats.running_acked >= 100).then_some(stats)
    })
    .await;
    assert_eq!((stats.agents, stats.registered, stats.launched, stats.running_acked), (50, 50, 100, 100));
    assert!(stats.last_running_ack_ms >= stats.last_launch_ms && stats.last_launch_ms > 0);
    sim.shutdown().await;
    cluster.shutdown().await;
}
