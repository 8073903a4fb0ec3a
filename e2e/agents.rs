//! Agents and real containers on `medos dev --agents M`: isolation, limits, exit codes, kill
//! grace periods, tasks surviving `kill -9` of their agent and of the leader, and drain.
//!
//! The agents run as root with the real runtime (namespaces, cgroups, a shim per container
//! that outlives the agent). Tasks are host commands (`/bin/sh -c`). Task processes are
//! watched from the outside through the agent's work dir: the sandbox files the task writes
//! (`DIR/agent-N/work/sandboxes/<task id>/`) and the runtime's `state.json` (the task's pid
//! and start time) and `exit.json` (written by the shim when the task ends).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use medos::api::client::Client;
use medos::core::{AgentStatus, Task, TaskState};

use crate::support::{CONDITION_TIMEOUT, DevCluster, ProcId, eventually, shared_slot};

/// Runs `medos task run ARGS` through `url` and returns the task id (the first stdout line).
async fn run_task(c: &DevCluster, url: &str, args: &[&str]) -> String {
    let mut full = vec!["task", "run"];
    full.extend_from_slice(args);
    let out = c.cli_via(url, &full).await.success(&format!("medos {full:?} via {url}"));
    let text = out.stdout_text();
    let id = text.lines().next().unwrap_or_default().trim().to_string();
    assert!(!id.is_empty(), "medos task run printed no task id: {text:?}");
    id
}

/// `medos task show ID` as the CLI prints it, parsed.
async fn show(c: &DevCluster, id: &str) -> Task {
    let out = c.cli(&["task", "show", id]).await.success("medos task show");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("medos task show printed no task ({e}): {}", out.stdout_text()))
}

/// Polls the task until `done` holds for it; fails at once if it ended otherwise (terminal
/// states never change).
async fn wait_task(client: &Client, id: &str, what: &str, done: impl Fn(&Task) -> bool) -> Task {
    eventually(&format!("task {id} {what}"), CONDITION_TIMEOUT, || async {
        let task = client.task(id).await.map_err(|e| e.to_string())?;
        if done(&task) {
            return Ok(task);
        }
        assert!(!task.state.is_terminal(), "task {id} ended before it {what}: {task:?}");
        Err(format!("{} ({})", task.state.as_str(), task.message))
    })
    .await
}

async fn wait_state(client: &Client, id: &str, state: TaskState) -> Task {
    wait_task(client, id, &format!("reaches {}", state.as_str()), |t| t.state == state).await
}

fn states(task: &Task) -> Vec<TaskState> {
    task.statuses.iter().map(|s| s.state).collect()
}

/// Waits until `path` exists and contains `needle`.
async fn wait_file_contains(path: &Path, needle: &str) -> String {
    eventually(&format!("{} contains {needle:?}", path.display()), CONDITION_TIMEOUT, || async {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        if text.contains(needle) { Ok(text) } else { Err(format!("it holds {text:?}")) }
    })
    .await
}

/// The number a heartbeat task last wrote (it renames a complete file into place).
fn heartbeat(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits until the heartbeat file shows a number above `above` (the task is alive and running).
async fn wait_heartbeat_above(path: &Path, above: u64) -> u64 {
    eventually(&format!("heartbeat in {} above {above}", path.display()), CONDITION_TIMEOUT, || async {
        match heartbeat(path) {
            Some(n) if n > above => Ok(n),
            other => Err(format!("heartbeat {other:?}")),
        }
    })
    .await
}

/// A task that counts in `$MESOS_SANDBOX/hb` every 100 ms and notes each start in `starts`.
const HEARTBEAT_TASK: &str = "echo started >> $MESOS_SANDBOX/starts; i=0; \
     while :; do i=$((i+1)); echo $i > $MESOS_SANDBOX/hb.new; mv $MESOS_SANDBOX/hb.new $MESOS_SANDBOX/hb; sleep 0.1; done";

/// A task that exits 0 once the file `go` appears in its sandbox.
const TRIGGER_TASK: &str = "echo waiting; while [ ! -e $MESOS_SANDBOX/go ]; do sleep 0.1; done; echo done";

/// `KEY=VALUE` lines of a task's stdout.
fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The task's own process, as its container's shim recorded it.
fn task_process(c: &DevCluster, task: &Task) -> ProcId {
    let agent = c.agent_by_id(&task.agent_id);
    let container = agent.container_of(&task.id);
    container.task_process().unwrap_or_else(|| panic!("no task pid in {}/state.json", container.dir.display()))
}

/// 3 masters, 2 agents: `node list`, isolation (pid/mount/uts/ipc namespaces, own /proc,
/// hostname = task name), the Mesos environment, sandbox log files, `--user`, exit codes
/// through `--wait`, the OOM killer as REASON_CONTAINER_LIMITATION_MEMORY, and kills with a
/// grace period (a TERM handler gets its time; a task ignoring TERM is SIGKILLed after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_isolated_with_limits_exit_codes_and_kill_grace() {
    let _slot = shared_slot().await;
    let c = DevCluster::start_with_agents(3, 2).await;
    let client = c.client();

    // The CLI sees 3 masters (one leader) and both agents ACTIVE under their own ids.
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    let masters = nodes["masters"].as_array().expect("masters array");
    assert_eq!(masters.len(), 3, "masters: {masters:?}");
    assert_eq!(masters.iter().filter(|m| m["role"] == "leader").count(), 1, "one leader: {masters:?}");
    let agents = nodes["agents"].as_array().expect("agents array");
    assert_eq!(agents.len(), 2, "agents: {agents:?}");
    for a in agents {
        let hostname = a["hostname"].as_str().expect("hostname");
        assert_eq!(a["status"], "ACTIVE", "{a}");
        assert_eq!(a["mode"], "NORMAL", "{a}");
        assert_eq!(a["id"].as_str(), c.agent(hostname).id().as_deref(), "{hostname}'s id is the one in its work dir");
    }
    // Launch through the leader (launching through followers is checked after a failover in
    // `no_status_update_is_lost_across_a_leader_kill9`).
    let leader = c.master(&c.leader().await).api.clone();

    // Isolation and environment; the script prints what it sees and fails if `$$` is not small.
    let script = r#"echo "pid=$$"; echo "host=$(hostname)"; echo "task=$MESOS_TASK_ID"; echo "sandbox=$MESOS_SANDBOX"
echo "cwd=$(pwd)"; echo "port0=$PORT0"; echo "greeting=$GREETING"
for ns in pid mnt uts ipc; do echo "ns_$ns=$(readlink /proc/self/ns/$ns)"; done
echo "procs=$(ls /proc | grep '^[0-9]' | tr '\n' ' ')"
echo "to stderr" >&2
test $$ -lt 10"#;
    let out = c
        .cli_via(
            &leader,
            &["task", "run", "--name", "isolated", "--ports", "1", "--env", "GREETING=hello", "--wait", "--", script],
        )
        .await
        .success("the isolation task");
    let id = out.stdout_text().lines().next().unwrap_or_default().to_string();
    let task = show(&c, &id).await;
    assert_eq!(task.state, TaskState::TASK_FINISHED, "{task:?}");
    assert_eq!((task.exit_code, task.message.as_str()), (Some(0), "Command exited with status 0"));
    assert_eq!(states(&task), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_FINISHED]);
    let agent = c.agent_by_id(&task.agent_id);
    let sandbox = agent.sandbox(&id);
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).expect("the task's stdout file");
    let seen = key_values(&stdout);
    let pid: u32 = seen["pid"].parse().expect("pid");
    assert!(pid < 10, "the task has its own pid namespace: $$ = {pid}\n{stdout}");
    assert_eq!(seen["host"], "isolated", "the task's hostname is its name (own uts namespace)");
    assert_eq!(seen["task"], id, "MESOS_TASK_ID");
    assert_eq!(Path::new(&seen["sandbox"]), sandbox, "MESOS_SANDBOX is the sandbox on the agent");
    assert_eq!(seen["cwd"], seen["sandbox"], "the task starts in its sandbox");
    assert_eq!(task.ports.len(), 1, "one port assigned: {task:?}");
    assert_eq!(seen["port0"], task.ports[0].to_string(), "PORT0 is the assigned port");
    assert_eq!(seen["greeting"], "hello", "--env reaches the task");
    for ns in ["pid", "mnt", "uts", "ipc"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("own namespace link");
        assert_ne!(Path::new(&seen[&format!("ns_{ns}")]), host, "the task has its own {ns} namespace\n{stdout}");
    }
    let procs: Vec<u32> = seen["procs"].split_whitespace().map(|p| p.parse().expect("a pid")).collect();
    assert!(
        !procs.is_empty() && procs.len() < 10 && procs.iter().all(|p| *p < 100),
        "the task's /proc shows its own processes only: {procs:?}"
    );
    let stderr = std::fs::read_to_string(sandbox.join("stderr")).expect("the task's stderr file");
    assert_eq!(stderr, "to stderr\n");

    // --user: the task runs as that user.
    let out = c.cli_via(&leader, &["task", "run", "--user", "nobody", "--wait", "--", "id -un"]).await;
    let id = out.stdout_text().lines().next().unwrap_or_default().to_string();
    assert!(out.status.success(), "the --user task failed: {:?}\n{}", show(&c, &id).await, out.stderr);
    let agent = c.agent_by_id(&show(&c, &id).await.agent_id);
    assert_eq!(std::fs::read_to_string(agent.sandbox(&id).join("stdout")).expect("stdout"), "nobody\n");

    // Exit codes: `--wait` exits with the task's code; the task is TASK_FAILED with its message.
    let out = c.cli_via(&leader, &["task", "run", "--wait", "--", "exit 3"]).await;
    assert_eq!(out.status.code(), Some(3), "--wait exits with the task's code; stderr: {}", out.stderr);
    let task = show(&c, out.stdout_text().trim()).await;
    assert_eq!(task.state, TaskState::TASK_FAILED, "{task:?}");
    assert_eq!(task.exit_code, Some(3));
    assert_eq!(task.message, "Command exited with status 3");
    assert_eq!(task.reason.as_deref(), Some("REASON_COMMAND_EXECUTOR_FAILED"));

    // OOM: 16 MiB cannot hold 200 MiB of one line; the kernel kills it and the reason says so.
    let out =
        c.cli_via(&leader, &["task", "run", "--mem", "16", "--wait", "--", "head -c 200M /dev/zero | tail"]).await;
    assert!(!out.status.success(), "the OOM task must not succeed");
    let task = show(&c, out.stdout_text().trim()).await;
    assert_eq!(task.state, TaskState::TASK_FAILED, "{task:?}");
    assert_eq!(task.reason.as_deref(), Some("REASON_CONTAINER_LIMITATION_MEMORY"), "{task:?}");

    // Kill with a grace period: a task that handles TERM exits cleanly long before a 30 s grace.
    let id = run_task(
        &c,
        &leader,
        &["--name", "graceful", "--", "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done"],
    )
    .await;
    let task = wait_state(&client, &id, TaskState::TASK_RUNNING).await;
    let sandbox = c.agent_by_id(&task.agent_id).sandbox(&id);
    wait_file_contains(&sandbox.join("stdout"), "ready").await;
    let asked = Instant::now();
    c.cli(&["task", "kill", &id, "--grace", "30"]).await.success("medos task kill --grace 30");
    let task = wait_state(&client, &id, TaskState::TASK_KILLED).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(20), "a task handling TERM ends at once, not after the grace: {took:?}");
    assert_eq!(task.exit_code, Some(0), "it exited by itself: {task:?}");
    assert!(states(&task).contains(&TaskState::TASK_KILLING), "{:?}", states(&task));
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).expect("stdout");
    assert!(stdout.contains("got TERM"), "the TERM handler ran: {stdout:?}");

    // A task that ignores TERM is SIGKILLed once the grace period has passed, not before.
    let id =
        run_task(&c, &leader, &["--name", "stubborn", "--", "trap '' TERM; echo ready; while :; do sleep 0.1; done"])
            .await;
    let task = wait_state(&client, &id, TaskState::TASK_RUNNING).await;
    wait_file_contains(&c.agent_by_id(&task.agent_id).sandbox(&id).join("stdout"), "ready").await;
    let asked = Instant::now();
    c.cli(&["task", "kill", &id, "--grace", "2"]).await.success("medos task kill --grace 2");
    let task = wait_state(&client, &id, TaskState::TASK_KILLED).await;
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(1900), "SIGKILL came before the 2 s grace ended: {took:?}");
    assert!(took < Duration::from_secs(15), "SIGKILL came long after the grace: {took:?}");
    assert_eq!(task.exit_code, None, "killed by a signal: {task:?}");

    // Every task has ended, so no shim or container init is left.
    eventually("no container process left", CONDITION_TIMEOUT, || async {
        let left = c.container_processes();
        if left.is_empty() { Ok(()) } else { Err(format!("container processes {left:?}")) }
    })
    .await;
}

/// 1 master, 1 agent: `kill -9` of the agent leaves its tasks running (a heartbeat keeps
/// counting, the same process stays alive); a task that ends while the agent is down is
/// reported TASK_FINISHED by the restarted agent, and a kill asked for meanwhile is carried
/// out by it; the running task is re-attached, not launched again (one container, one start,
/// no second TASK_STARTING) and can be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_agent_kill9_and_are_reattached() {
    let _slot = shared_slot().await;
    let mut c = DevCluster::start_with_agents(1, 1).await;
    let client = c.client();
    let url = c.urls()[0].clone();

    let hb_id = run_task(&c, &url, &["--name", "heartbeat", "--", HEARTBEAT_TASK]).await;
    let exit_id = run_task(&c, &url, &["--name", "exits-meanwhile", "--", TRIGGER_TASK]).await;
    let kill_id = run_task(&c, &url, &["--name", "killed-meanwhile", "--", "sleep 1000"]).await;
    let hb = wait_state(&client, &hb_id, TaskState::TASK_RUNNING).await;
    wait_state(&client, &exit_id, TaskState::TASK_RUNNING).await;
    let to_kill = wait_state(&client, &kill_id, TaskState::TASK_RUNNING).await;
    let to_kill_process = task_process(&c, &to_kill);
    let agent = c.agent_by_id(&hb.agent_id);
    let name = agent.name.clone();
    let hb_file = agent.sandbox(&hb_id).join("hb");
    let go_file = agent.sandbox(&exit_id).join("go");
    let exit_container = agent.container_of(&exit_id);
    wait_heartbeat_above(&hb_file, 0).await;
    let hb_process = task_process(&c, &hb);
    assert!(hb_process.is_alive(), "the heartbeat task's process {hb_process:?} runs");

    c.kill9_agent(&name);
    // With the agent dead, its tasks go on: the heartbeat keeps counting in the same process.
    let before = heartbeat(&hb_file).expect("a heartbeat");
    let after = wait_heartbeat_above(&hb_file, before + 5).await;
    assert!(hb_process.is_alive(), "the heartbeat task's process survives the agent's kill -9");
    // A task ends while nobody can report it: the shim records its exit.
    std::fs::write(&go_file, b"").expect("creating the trigger file");
    let exit = eventually("the shim records the exit while the agent is down", CONDITION_TIMEOUT, || async {
        exit_container.exit().ok_or_else(|| "no exit.json yet".to_string())
    })
    .await;
    assert!(c.agent(&name).pid().is_none(), "the agent is still down");
    assert_eq!(client.task(&exit_id).await.expect("task").state, TaskState::TASK_RUNNING, "exit: {exit}");
    // A kill asked for while the agent is down waits for it.
    c.cli(&["task", "kill", &kill_id, "--grace", "1"]).await.success("medos task kill");
    assert!(to_kill_process.is_alive(), "nobody could kill the task yet");

    c.restart_agent(&name);
    // The restarted agent reports the exit it missed …
    let exited = wait_state(&client, &exit_id, TaskState::TASK_FINISHED).await;
    assert_eq!((exited.exit_code, exited.message.as_str()), (Some(0), "Command exited with status 0"));
    assert_eq!(states(&exited), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_FINISHED]);
    // … carries out the kill asked for meanwhile …
    let killed = wait_state(&client, &kill_id, TaskState::TASK_KILLED).await;
    assert!(!to_kill_process.is_alive(), "a TASK_KILLED task's process is gone: {killed:?}");
    // … and re-attaches to the running task instead of launching it again.
    wait_heartbeat_above(&hb_file, after).await;
    let hb = show(&c, &hb_id).await;
    assert_eq!(hb.state, TaskState::TASK_RUNNING, "{hb:?}");
    assert_eq!(states(&hb), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING], "no second launch");
    assert!(hb_process.is_alive(), "the same process still runs");
    assert_eq!(task_process(&c, &hb), hb_process, "the container still records the same process");
    let agent = c.agent(&name);
    assert_eq!(agent.containers_of(&hb_id).len(), 1, "one container for the task");
    let starts = std::fs::read_to_string(agent.sandbox(&hb_id).join("starts")).expect("starts file");
    assert_eq!(starts, "started\n", "the task's command ran once");
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    assert_eq!(nodes["agents"][0]["status"], "ACTIVE", "{nodes}");
    assert_eq!(nodes["agents"][0]["id"].as_str(), Some(hb.agent_id.as_str()), "the same agent id after the restart");

    // The restarted agent can kill the task it re-attached to.
    c.cli(&["task", "kill", &hb_id, "--grace", "1"]).await.success("medos task kill");
    let killed = wait_state(&client, &hb_id, TaskState::TASK_KILLED).await;
    assert_eq!(states(&killed).iter().filter(|s| **s == TaskState::TASK_STARTING).count(), 1, "{killed:?}");
    eventually("the heartbeat process is gone", CONDITION_TIMEOUT, || async {
        if hb_process.is_alive() { Err("still alive".to_string()) } else { Ok(()) }
    })
    .await;
}

/// 3 masters, 2 agents: tasks keep running through `kill -9` of the leader, and then of the
/// other two masters as well. Exits that happen during the election, while no master runs at
/// all, and after the masters are back are all reported as TASK_FINISHED, exactly once each
/// (an agent keeps an update nobody acknowledged and retries it until one does); every master
/// agrees; new tasks launch through every master, leader or follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_status_update_is_lost_across_a_leader_kill9() {
    let _slot = shared_slot().await;
    let mut c = DevCluster::start_with_agents(3, 2).await;
    let client = c.client();
    let first_leader = c.leader().await;
    let leader_url = c.master(&first_leader).api.clone();

    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(run_task(&c, &leader_url, &["--name", &format!("trigger-{i}"), "--", TRIGGER_TASK]).await);
    }
    let mut go_files = Vec::new();
    let mut processes = Vec::new();
    let mut agents = Vec::new();
    for id in &ids {
        let task = wait_state(&client, id, TaskState::TASK_RUNNING).await;
        let agent = c.agent_by_id(&task.agent_id);
        wait_file_contains(&agent.sandbox(id).join("stdout"), "waiting").await;
        go_files.push(agent.sandbox(id).join("go"));
        processes.push(task_process(&c, &task));
        agents.push(task.agent_id.clone());
    }
    let trigger = |i: usize| std::fs::write(&go_files[i], b"").expect("creating a trigger file");

    // Two tasks end right away, while the masters elect a new leader.
    c.kill9(&first_leader);
    trigger(0);
    trigger(1);
    let second_leader = c.leader().await;
    assert_ne!(second_leader, first_leader);
    for p in &processes[2..] {
        assert!(p.is_alive(), "a task's process {p:?} survives the leader's kill -9");
    }
    // Then every master dies. A task ends now; its agent sees the exit at once, and every
    // delivery attempt fails at once: it must keep the update until a master takes it.
    let names = c.names();
    let names: Vec<&str> = names.iter().map(String::as_str).filter(|n| *n != first_leader).collect();
    c.kill9_all(&names);
    trigger(2);
    let agent = c.agent_by_id(&agents[2]);
    let finished = (ids[2].clone(), "TASK_FINISHED".to_string());
    eventually("the agent holds the undeliverable TASK_FINISHED", CONDITION_TIMEOUT, || async {
        let pending = agent.pending_updates();
        if pending.contains(&finished) { Ok(()) } else { Err(format!("pending updates: {pending:?}")) }
    })
    .await;
    assert!(!processes[2].is_alive(), "the task's process has ended");
    assert!(processes[3].is_alive(), "a task's process survives the loss of every master");
    for name in c.names() {
        c.restart(&name);
    }
    c.wait_all_caught_up().await;
    // The last one ends once the masters are back.
    trigger(3);

    for id in &ids {
        let task = wait_state(&client, id, TaskState::TASK_FINISHED).await;
        assert_eq!(task.exit_code, Some(0), "{task:?}");
        assert_eq!(
            states(&task),
            [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_FINISHED],
            "every update once, in order"
        );
        for name in c.names() {
            let seen = c.client_for(&name).task(id).await.unwrap_or_else(|e| panic!("{name}: task {id}: {e}"));
            assert_eq!((seen.state, seen.statuses.len()), (TaskState::TASK_FINISHED, 3), "{name} agrees on {id}");
        }
    }
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    let agents = nodes["agents"].as_array().expect("agents");
    assert!(agents.iter().all(|a| a["status"] == "ACTIVE"), "agents stay ACTIVE under the new leader: {agents:?}");

    // New tasks launch through every master, leader or follower (the CLI uses whichever
    // master answers first). Several times each: a follower may lag behind the leader.
    let leader = c.leader().await;
    for name in c.names() {
        let url = c.master(&name).api.clone();
        for _ in 0..3 {
            let out = c.cli_via(&url, &["task", "run", "--wait", "--", "echo new"]).await;
            assert!(
                out.status.success(),
                "launching through {name} ({}): exit {}\nstdout: {}\nstderr: {}",
                if name == leader { "leader" } else { "follower" },
                out.status,
                out.stdout_text(),
                out.stderr
            );
        }
    }
}

/// 1 master, 2 agents: draining an agent kills its tasks (TASK_KILLED, processes gone) and
/// leaves the other agent's alone; new tasks go to the other agent until it is reactivated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_kills_the_agents_tasks_and_places_new_ones_elsewhere() {
    let _slot = shared_slot().await;
    let c = DevCluster::start_with_agents(1, 2).await;
    let client = c.client();
    let url = c.urls()[0].clone();

    // Placement prefers the agent with the most free CPU, so two tasks land on both agents.
    let mut tasks = Vec::new();
    for i in 0..2 {
        let id = run_task(&c, &url, &["--name", &format!("sleeper-{i}"), "--", "sleep 1000"]).await;
        tasks.push(wait_state(&client, &id, TaskState::TASK_RUNNING).await);
    }
    assert_ne!(tasks[0].agent_id, tasks[1].agent_id, "the two tasks went to different agents: {tasks:?}");
    let (drained, kept) = (&tasks[0], &tasks[1]);
    let drained_agent = c.agent_by_id(&drained.agent_id).name.clone();
    let kept_agent = c.agent_by_id(&kept.agent_id).name.clone();
    let drained_process = task_process(&c, drained);
    let kept_process = task_process(&c, kept);

    c.cli(&["node", "drain", &drained_agent]).await.success("medos node drain");
    let killed = wait_state(&client, &drained.id, TaskState::TASK_KILLED).await;
    assert!(states(&killed).contains(&TaskState::TASK_KILLING), "{killed:?}");
    eventually("the drained task's process is gone", CONDITION_TIMEOUT, || async {
        if drained_process.is_alive() { Err("still alive".to_string()) } else { Ok(()) }
    })
    .await;
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    let view = |name: &str| {
        nodes["agents"].as_array().expect("agents").iter().find(|a| a["hostname"] == name).cloned().expect("agent")
    };
    assert_eq!(view(&drained_agent)["mode"], "DRAINING", "{nodes}");
    assert_eq!(view(&drained_agent)["active_tasks"], 0, "{nodes}");
    assert_eq!(view(&kept_agent)["mode"], "NORMAL", "{nodes}");

    // New tasks avoid the draining agent, even though it has the most free resources.
    for i in 0..3 {
        let id = run_task(&c, &url, &["--name", &format!("after-drain-{i}"), "--", "sleep 1000"]).await;
        let task = wait_state(&client, &id, TaskState::TASK_RUNNING).await;
        assert_eq!(c.agent_by_id(&task.agent_id).name, kept_agent, "placed on the draining agent: {task:?}");
    }
    let kept_now = show(&c, &kept.id).await;
    assert_eq!(kept_now.state, TaskState::TASK_RUNNING, "the other agent's task is untouched: {kept_now:?}");
    assert!(kept_process.is_alive(), "the other agent's task process still runs");

    // Reactivated, the emptier agent takes the next task again.
    c.cli(&["node", "reactivate", &drained_agent]).await.success("medos node reactivate");
    let id = run_task(&c, &url, &["--name", "after-reactivate", "--", "sleep 1000"]).await;
    let task = wait_state(&client, &id, TaskState::TASK_RUNNING).await;
    assert_eq!(c.agent_by_id(&task.agent_id).name, drained_agent, "{task:?}");

    // The guard leaves no container behind: the tasks still running die with it.
    let mut running = Vec::new();
    for task in client.tasks(false).await.expect("tasks") {
        running.push(task_process(&c, &task));
    }
    assert_eq!(running.len(), 5, "tasks still running: {running:?}");
    let dir = c.dir.clone();
    drop(c);
    assert!(running.iter().all(|p| !p.is_alive()), "task processes survive the guard: {running:?}");
    if std::env::var_os("MEDOS_E2E_KEEP").is_none() {
        assert!(!dir.exists(), "the guard removes the cluster dir");
    }
}

/// 1 master, 1 agent down for longer than the masters wait (`unreachable_after_ms`, 20 s by
/// default): the agent becomes UNREACHABLE (not earlier) and its task TASK_UNREACHABLE while
/// it keeps running; nothing is placed there; the restarted agent is ACTIVE again under the
/// same id and the task TASK_RUNNING again, the same process, never launched twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_down_past_the_timeout_is_unreachable_then_recovers_its_tasks() {
    let _slot = shared_slot().await;
    let mut c = DevCluster::start_with_agents(1, 1).await;
    let client = c.client();
    let url = c.urls()[0].clone();

    let id = run_task(&c, &url, &["--name", "heartbeat", "--", HEARTBEAT_TASK]).await;
    let task = wait_state(&client, &id, TaskState::TASK_RUNNING).await;
    let agent = c.agent_by_id(&task.agent_id);
    let (name, hb_file) = (agent.name.clone(), agent.sandbox(&id).join("hb"));
    let process = task_process(&c, &task);
    wait_heartbeat_above(&hb_file, 0).await;

    let killed_at = c.kill9_agent(&name);
    eventually("the agent is UNREACHABLE", CONDITION_TIMEOUT, || async {
        let agents = client.agents().await.map_err(|e| e.to_string())?;
        match agents.iter().find(|a| a.agent.id == task.agent_id) {
            Some(a) if a.agent.status == AgentStatus::Unreachable => Ok(()),
            other => Err(format!("{:?}", other.map(|a| a.agent.status))),
        }
    })
    .await;
    let after = killed_at.elapsed();
    // The last heartbeat came at most one interval (2 s) before the kill.
    assert!(after >= Duration::from_secs(15), "marked UNREACHABLE {after:?} after the kill, before the timeout");
    let unreachable = wait_state(&client, &id, TaskState::TASK_UNREACHABLE).await;
    assert!(unreachable.reason.is_some(), "{unreachable:?}");
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    assert_eq!(nodes["agents"][0]["status"], "UNREACHABLE", "{nodes}");
    // The task itself knows nothing of it.
    let before = heartbeat(&hb_file).expect("a heartbeat");
    wait_heartbeat_above(&hb_file, before + 2).await;
    assert!(process.is_alive(), "the task runs on while its agent is unreachable");
    // Nothing can be placed on an unreachable agent.
    let out = c.cli(&["task", "run", "--", "true"]).await;
    assert!(!out.status.success(), "a task was placed on an unreachable agent: {}", out.stdout_text());
    assert!(out.stderr.contains("unreachable"), "the refusal names the reason: {}", out.stderr);

    c.restart_agent(&name);
    let back = wait_state(&client, &id, TaskState::TASK_RUNNING).await;
    assert_eq!(
        states(&back),
        [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_UNREACHABLE, TaskState::TASK_RUNNING],
        "back to running, never launched again"
    );
    assert_eq!(back.agent_id, task.agent_id, "the same agent id");
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    assert_eq!(nodes["agents"][0]["status"], "ACTIVE", "{nodes}");
    assert!(process.is_alive(), "the same process runs");
    assert_eq!(task_process(&c, &back), process);
    let starts = std::fs::read_to_string(c.agent(&name).sandbox(&id).join("starts")).expect("starts file");
    assert_eq!(starts, "started\n", "the task's command ran once");

    c.cli(&["task", "kill", &id]).await.success("medos task kill");
    wait_state(&client, &id, TaskState::TASK_KILLED).await;
    assert!(!process.is_alive(), "the killed task's process is gone");
}
