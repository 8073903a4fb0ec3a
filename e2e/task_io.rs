//! Task I/O through the CLI on `medos dev` (one master, one agent): `medos task log` (the last
//! lines, other files, `--follow` until the task ends) and `medos task exec` (output, exit
//! code, stdin, a terminal). The masters proxy both to the agent's API over mutual TLS.

use medos::core::TaskState;

use crate::support::{CONDITION_TIMEOUT, DevCluster, eventually, shared_slot};

/// `medos task run ARGS`, returning the task id (the first line).
async fn run_task(cluster: &DevCluster, args: &[&str]) -> String {
    let mut full = vec!["task", "run"];
    full.extend_from_slice(args);
    let out = cluster.cli(&full).await.success(&format!("medos {full:?}"));
    let id = out.stdout_text().lines().next().unwrap_or_default().trim().to_string();
    assert!(!id.is_empty(), "medos task run printed no id: {:?}", out.stdout_text());
    id
}

async fn wait_state(cluster: &DevCluster, id: &str, want: TaskState) {
    let client = cluster.client();
    eventually(&format!("task {id} reaches {}", want.as_str()), CONDITION_TIMEOUT, || async {
        let task = client.task(id).await.map_err(|e| e.to_string())?;
        if task.state == want { Ok(()) } else { Err(format!("{} ({})", task.state.as_str(), task.message)) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_log_and_exec_through_the_cli() {
    let _slot = shared_slot().await;
    let cluster = DevCluster::start_with_agents(1, 1).await;

    // A task that writes and ends: the last 10 lines by default, --lines, stderr, a prefix id.
    let talker = run_task(
        &cluster,
        &["--name", "talker", "--wait", "--", "for i in $(seq 1 15); do echo line $i; done; echo oops >&2"],
    )
    .await;
    let log = cluster.cli(&["task", "log", &talker]).await.success("medos task log");
    assert_eq!(log.stdout_text(), (6..=15).map(|i| format!("line {i}\n")).collect::<String>());
    let two = cluster.cli(&["task", "log", "--lines", "2", &talker[..16]]).await.success("medos task log --lines 2");
    assert_eq!(two.stdout_text(), "line 14\nline 15\n");
    let err = cluster.cli(&["task", "log", &talker, "stderr"]).await.success("medos task log stderr");
    assert_eq!(err.stdout_text(), "oops\n");
    let missing = cluster.cli(&["task", "log", &talker, "no-such-file"]).await;
    assert!(!missing.status.success() && missing.stderr.contains("no-such-file"), "{missing:?}");
    let escape = cluster.cli(&["task", "log", &talker, "../../agent-id"]).await;
    assert!(!escape.status.success() && escape.stderr.contains(".."), "{escape:?}");

    // --follow starts before the task wrote anything, streams it, and ends with the task.
    let ticker =
        run_task(&cluster, &["--name", "ticker", "--", "sleep 1; for i in 1 2 3 4; do echo tick $i; sleep 0.3; done"])
            .await;
    let follow = cluster.cli(&["task", "log", "--follow", "--lines", "100", &ticker]).await.success("log --follow");
    assert_eq!(follow.stdout_text(), "tick 1\ntick 2\ntick 3\ntick 4\n");
    wait_state(&cluster, &ticker, TaskState::TASK_FINISHED).await;

    // exec: the task's hostname (its UTS namespace), stderr and the exit code, stdin, a TTY.
    let sleeper = run_task(&cluster, &["--name", "sleeper", "--", "sleep 120"]).await;
    wait_state(&cluster, &sleeper, TaskState::TASK_RUNNING).await;
    let host = cluster.cli(&["task", "exec", &sleeper, "--", "hostname"]).await.success("medos task exec hostname");
    assert_eq!(host.stdout_text(), "sleeper\n");
    let failing = cluster.cli(&["task", "exec", &sleeper, "--", "sh", "-c", "echo to-err >&2; exit 7"]).await;
    assert_eq!(failing.status.code(), Some(7), "{failing:?}");
    assert!(failing.stderr.contains("to-err"), "{failing:?}");
    // -i with an empty stdin: `cat` sees EOF at once instead of hanging.
    let cat = cluster.cli(&["task", "exec", "-i", &sleeper, "cat"]).await.success("medos task exec -i cat");
    assert!(cat.stdout.is_empty(), "{cat:?}");
    let tty = cluster.cli(&["task", "exec", "-t", &sleeper, "tty"]).await.success("medos task exec -t tty");
    assert!(tty.stdout_text().contains("/dev/pts/"), "{tty:?}");
    let absent = cluster.cli(&["task", "exec", &sleeper, "--", "/no/such/program"]).await;
    assert!(!absent.status.success() && absent.stderr.contains("/no/such/program"), "{absent:?}");

    cluster.cli(&["task", "kill", &sleeper, "--grace", "0"]).await.success("medos task kill");
    wait_state(&cluster, &sleeper, TaskState::TASK_KILLED).await;
    let ended = cluster.cli(&["task", "exec", &sleeper, "--", "hostname"]).await;
    assert!(!ended.status.success() && ended.stderr.contains("ended"), "{ended:?}");
}
