//! Issue 3's "Done when", as one process end-to-end test: on `medos dev --masters 3 --agents 2`,
//! a busybox-image task and a host-command task run isolated with limits, their logs stream,
//! exec works, an OOM is reported as such, and both survive a `kill -9` of their agent and of
//! the leader.
//!
//! Everything goes through the real binary and its CLI: `medos image load` of a `docker save`
//! archive built here from Debian's static busybox, `medos task run --image …`, `medos task log
//! [--follow]`, `medos task exec`, `medos task show --json`, `medos task kill`. What the tasks
//! see of themselves they print on stderr (read back with `medos task log ID stderr`); their
//! stdout is a tick every 200 ms, which shows from the outside (the sandbox file on the agent)
//! that they keep running while their agent or the leader is dead, and which a `--follow` that
//! spans both kills must print without a gap or a repeat.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use medos::core::{Task, TaskState};
use medos::image::testing::{ArchiveFormat, ImageSpec, busybox_image};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::support::{CONDITION_TIMEOUT, ContainerInfo, DevCluster, MEDOS, ProcId, eventually, shared_slot};

const IMAGE: &str = "busybox:done-when";
/// Memory limits (MiB) of the two long tasks and of the task that must hit its limit.
const IMAGE_MEM: u64 = 64;
const HOST_MEM: u64 = 32;
const OOM_MEM: u64 = 16;

/// A tick on stdout every 200 ms, forever (busybox and dash alike).
const TICKS: &str = "i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done";

/// What the image task reports about itself on stderr (busybox has only a few applets linked,
/// so the rest run as `busybox APPLET`). `$HOST_PATH` is a directory of the host.
const IMAGE_FACTS: &str = r#"{
echo "pid=$$"; echo "ppid=$PPID"; echo "host=$(hostname)"; echo "sandbox=$MESOS_SANDBOX"; echo "cwd=$(pwd)"
echo "init=$(busybox tr '\0' ' ' < /proc/1/cmdline)"
echo "busybox=$(test -x /bin/busybox && echo yes)"
echo "release=$(cat /etc/medos-release)"
echo "root=$(ls / | busybox tr '\n' ' ')"
for f in /etc/os-release /usr /etc/motd "$HOST_PATH"; do test -e "$f" && echo "visible=$f"; done
echo "cgroup_memory=$(busybox grep -E '^[0-9]+:memory:' /proc/self/cgroup)"
for ns in pid mnt uts ipc; do echo "ns_$ns=$(busybox readlink /proc/self/ns/$ns)"; done
echo "procs=$(ls /proc | busybox grep '^[0-9]' | busybox tr '\n' ' ')"
echo facts-end
} >&2; "#;

/// What the host-command task reports about itself on stderr.
const HOST_FACTS: &str = r#"{
echo "pid=$$"; echo "ppid=$PPID"; echo "host=$(hostname)"
echo "init=$(tr '\0' ' ' < /proc/1/cmdline)"
echo "os_release=$(test -e /etc/os-release && echo visible)"
echo "cgroup_memory=$(grep -E '^[0-9]+:memory:' /proc/self/cgroup)"
for ns in pid mnt uts ipc; do echo "ns_$ns=$(readlink /proc/self/ns/$ns)"; done
echo "procs=$(ls /proc | grep '^[0-9]' | tr '\n' ' ')"
echo facts-end
} >&2; "#;

/// A task that exits 0 once the file `go` appears in its sandbox.
const TRIGGER_TASK: &str = "echo waiting; while [ ! -e $MESOS_SANDBOX/go ]; do sleep 0.1; done; echo done";

/// `medos task run ARGS` through every master; returns the task id (the first stdout line).
async fn run_task(c: &DevCluster, args: &[&str]) -> String {
    let mut full = vec!["task", "run"];
    full.extend_from_slice(args);
    let out = c.cli(&full).await.success(&format!("medos {full:?}"));
    let text = out.stdout_text();
    let id = text.lines().next().unwrap_or_default().trim().to_string();
    assert!(!id.is_empty(), "medos task run printed no task id: {text:?}");
    id
}

/// `medos task show --json ID`, parsed.
async fn show(c: &DevCluster, id: &str) -> Task {
    let out = c.cli(&["task", "show", "--json", id]).await.success("medos task show --json");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("medos task show printed no task ({e}): {}", out.stdout_text()))
}

/// Polls `medos task show --json` until the task is in `want`; fails at once if it ended
/// otherwise (terminal states never change).
async fn wait_state(c: &DevCluster, id: &str, want: TaskState) -> Task {
    eventually(&format!("task {id} reaches {}", want.as_str()), CONDITION_TIMEOUT, || async {
        let task = show(c, id).await;
        if task.state == want {
            return Ok(task);
        }
        assert!(!task.state.is_terminal(), "task {id} ended before it reached {}: {task:?}", want.as_str());
        Err(format!("{} ({})", task.state.as_str(), task.message))
    })
    .await
}

fn states(task: &Task) -> Vec<TaskState> {
    task.statuses.iter().map(|s| s.state).collect()
}

/// `KEY=VALUE` lines (several lines with one key: joined with a space).
fn key_values(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::<String, String>::new();
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        map.entry(k.to_string()).and_modify(|old| *old = format!("{old} {v}")).or_insert_with(|| v.to_string());
    }
    map
}

/// The facts a task printed on stderr, read with `medos task log ID stderr` once complete.
async fn facts(c: &DevCluster, id: &str) -> BTreeMap<String, String> {
    let text = eventually(&format!("task {id} reported its facts"), CONDITION_TIMEOUT, || async {
        let out = c.cli(&["task", "log", "--lines", "100", id, "stderr"]).await;
        let text = out.stdout_text();
        if out.status.success() && text.contains("facts-end") { Ok(text) } else { Err(format!("{text}{}", out.stderr)) }
    })
    .await;
    key_values(&text)
}

/// The highest complete `tick N` line in a task's stdout file on its agent.
fn last_tick(stdout: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stdout).ok()?;
    let complete = &text[..text.rfind('\n')? + 1];
    complete.lines().rev().find_map(|l| l.strip_prefix("tick ")?.parse().ok())
}

/// Waits until the task's stdout file shows a tick above `above` (it runs and its log is kept).
async fn wait_tick_above(stdout: &Path, above: u64) -> u64 {
    eventually(&format!("a tick above {above} in {}", stdout.display()), CONDITION_TIMEOUT, || async {
        match last_tick(stdout) {
            Some(n) if n > above => Ok(n),
            other => Err(format!("last tick {other:?}")),
        }
    })
    .await
}

/// The task's one container on the agent the masters placed it on, and its process.
fn container(c: &DevCluster, task: &Task) -> (ContainerInfo, ProcId) {
    let container = c.agent_by_id(&task.agent_id).container_of(&task.id);
    let process =
        container.task_process().unwrap_or_else(|| panic!("no task pid in {}/state.json", container.dir.display()));
    (container, process)
}

/// The container's memory cgroup on the host (v1 `memory`, or the v2 unified dir) from its
/// launch plan, and the limit set there.
fn memory_cgroup(container: &ContainerInfo) -> (PathBuf, u64) {
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(container.dir.join("config.json")).expect("the launch plan"))
            .expect("the launch plan is JSON");
    let dirs = plan["cgroup"]["dirs"].as_array().cloned().unwrap_or_default();
    let dir = |name: &str| dirs.iter().find(|d| d["controller"] == name).and_then(|d| d["path"].as_str());
    let (path, file) = match (dir("memory"), dir("unified")) {
        (Some(p), _) => (PathBuf::from(p), "memory.limit_in_bytes"),
        (None, Some(p)) => (PathBuf::from(p), "memory.max"),
        _ => panic!("no memory cgroup in the launch plan: {}", plan["cgroup"]),
    };
    let limit = std::fs::read_to_string(path.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", path.display()));
    let limit = limit.trim().parse().unwrap_or_else(|_| panic!("{}/{file} holds {limit:?}", path.display()));
    (path, limit)
}

/// Checks the limit and membership of the task's memory cgroup from the host, and that the
/// task itself is in that cgroup (`cgroup_memory`, its `/proc/self/cgroup` line).
fn assert_memory_limit(container: &ContainerInfo, process: ProcId, mib: u64, seen: &BTreeMap<String, String>) {
    let (path, limit) = memory_cgroup(container);
    assert_eq!(limit, mib << 20, "the memory limit of {}", path.display());
    let procs = std::fs::read_to_string(path.join("cgroup.procs")).expect("cgroup.procs");
    assert!(
        procs.lines().any(|l| l.trim() == process.pid.to_string()),
        "the task's process {} is in {}: {procs:?}",
        process.pid,
        path.display()
    );
    let line = &seen["cgroup_memory"];
    let inside = line.splitn(3, ':').nth(2).unwrap_or_else(|| panic!("a cgroup line: {line:?}"));
    assert!(
        inside.len() > 1 && path.ends_with(inside.trim_start_matches('/')),
        "the task sees itself in its own memory cgroup {inside:?} (host: {})",
        path.display()
    );
}

/// The task's namespaces differ from the test's (pid, mount, uts, ipc) and its `/proc` shows
/// only a handful of small pids.
fn assert_own_namespaces(seen: &BTreeMap<String, String>) {
    for ns in ["pid", "mnt", "uts", "ipc"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).expect("own namespace link");
        let task = &seen[&format!("ns_{ns}")];
        assert!(task.starts_with(&format!("{ns}:[")), "a namespace link: {task:?}");
        assert_ne!(Path::new(task), host, "the task has its own {ns} namespace");
    }
    let procs: Vec<u32> = seen["procs"].split_whitespace().map(|p| p.parse().expect("a pid")).collect();
    assert!(
        procs.contains(&1) && procs.len() < 10 && procs.iter().all(|p| *p < 100),
        "the task's /proc shows its own pid namespace only: {procs:?}"
    );
    let pid: u32 = seen["pid"].parse().expect("pid");
    assert!(pid > 1 && pid < 10, "the task's shell is a small pid, not PID 1: {pid}");
    assert_eq!(seen["ppid"], "1", "the task's parent is the container's init");
    assert!(seen["init"].contains("__container-init"), "PID 1 is medos's container init: {:?}", seen["init"]);
}

/// How often the masters' logs say that agent `agent_id` registered (`masters`: only these).
fn registrations(c: &DevCluster, masters: &[&str], agent_id: &str) -> usize {
    let needle = format!("agent={agent_id} ");
    c.masters
        .iter()
        .filter(|m| masters.is_empty() || masters.contains(&m.name.as_str()))
        .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
        .map(|log| log.lines().filter(|l| l.contains("agent registered") && l.contains(&needle)).count())
        .sum()
}

/// Waits until the masters' logs (`masters`: only these) say the agent registered again.
async fn wait_registered(c: &DevCluster, masters: &[&str], agent_id: &str, before: usize) {
    eventually(&format!("agent {agent_id} registers with {masters:?}"), CONDITION_TIMEOUT, || async {
        let n = registrations(c, masters, agent_id);
        if n > before { Ok(()) } else { Err(format!("{n} registrations")) }
    })
    .await
}

/// `medos task log --follow --lines 0 ID` running in the background; its stdout lines are
/// collected as they come. Killed when dropped.
struct Follower {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: PathBuf,
    last: Option<u64>,
}

impl Follower {
    fn start(c: &DevCluster, id: &str) -> Self {
        let stderr = c.dir.join(format!("follow-{id}.stderr"));
        let mut child = tokio::process::Command::new(MEDOS)
            .args(["task", "log", "--follow", "--lines", "0", id])
            .env("MEDOS_CONFIG_DIR", &c.cli_config)
            .env_remove("MEDOS_URL")
            .env_remove("MEDOS_TOKEN")
            .env_remove("MEDOS_CA_FILE")
            .env_remove("MEDOS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("the follower's stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawning medos task log --follow");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines, stderr, last: None }
    }

    /// Reads ticks until one above `above` arrives. Every tick must follow the one before
    /// (nothing lost, nothing twice); the first line may be the rest of a line cut at the
    /// start offset.
    async fn wait_tick_above(&mut self, above: u64, what: &str) -> u64 {
        let deadline = tokio::time::Instant::now() + CONDITION_TIMEOUT;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    let status = self.child.wait().await;
                    let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                    panic!("{what}: `medos task log --follow` ended ({status:?}) at tick {:?}:\n{stderr}", self.last)
                }
                Err(_) => panic!("{what}: no tick above {above} followed within {CONDITION_TIMEOUT:?}"),
            };
            let tick = line.strip_prefix("tick ").and_then(|n| n.parse::<u64>().ok());
            match (self.last, tick) {
                (None, None) => continue,
                (None, Some(n)) => self.last = Some(n),
                (Some(last), Some(n)) if n == last + 1 => self.last = Some(n),
                (last, _) => panic!("{what}: the followed log skips or repeats: {line:?} after tick {last:?}"),
            }
            if tick.is_some_and(|n| n > above) {
                return tick.unwrap_or_default();
            }
        }
    }
}

/// 3 masters, 2 agents; see the module comment. Placement prefers the agent with the most free
/// CPU (ties: the lowest id), so a 0.5-CPU task between the two long 0.1-CPU ones puts those on
/// the same agent, and it is the one that exits during the leader's failover on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_and_host_tasks_run_isolated_stream_logs_exec_and_survive_agent_and_leader_kill9() {
    let _slot = shared_slot().await;
    let mut c = DevCluster::start_with_agents(3, 2).await;

    // The image: a `docker save` archive of busybox, loaded through the CLI.
    let archive = c.dir.join("busybox.tar");
    busybox_image(&archive, &ImageSpec::new(IMAGE, ArchiveFormat::DockerSave)).expect("building the busybox image");
    c.cli(&["image", "load", archive.to_str().expect("utf-8 path")]).await.success("medos image load");

    // An OOM inside the image: busybox `tail` keeps a line without end in memory.
    let oom_mem = OOM_MEM.to_string();
    let out = c.cli(&["task", "run", "--image", IMAGE, "--mem", &oom_mem, "--wait", "--", "tail /dev/zero"]).await;
    assert!(!out.status.success(), "the OOM task must fail: {}", out.stderr);
    let oom = show(&c, out.stdout_text().trim()).await;
    assert_eq!(oom.state, TaskState::TASK_FAILED, "{oom:?}");
    assert_eq!(oom.reason.as_deref(), Some("REASON_CONTAINER_LIMITATION_MEMORY"), "{oom:?}");
    assert_eq!(states(&oom), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_FAILED]);

    // The two long tasks on one agent, the trigger task on the other.
    let host_path = format!("HOST_PATH={}", c.dir.display());
    let image_mem = IMAGE_MEM.to_string();
    let boxed_cmd = format!("{IMAGE_FACTS}{TICKS}");
    let boxed_id = run_task(
        &c,
        &["--name", "boxed", "--image", IMAGE, "--mem", &image_mem, "--env", &host_path, "--", &boxed_cmd],
    )
    .await;
    let boxed = wait_state(&c, &boxed_id, TaskState::TASK_RUNNING).await;
    let trigger_id = run_task(&c, &["--name", "exits-in-failover", "--cpus", "0.5", "--", TRIGGER_TASK]).await;
    let host_mem = HOST_MEM.to_string();
    let hosted_cmd = format!("{HOST_FACTS}{TICKS}");
    let hosted_id = run_task(&c, &["--name", "hosted", "--mem", &host_mem, "--", &hosted_cmd]).await;
    let hosted = wait_state(&c, &hosted_id, TaskState::TASK_RUNNING).await;
    let trigger = wait_state(&c, &trigger_id, TaskState::TASK_RUNNING).await;
    assert_eq!(boxed.agent_id, hosted.agent_id, "both long tasks on one agent: {boxed:?}\n{hosted:?}");
    assert_ne!(trigger.agent_id, boxed.agent_id, "the trigger task on the other agent: {trigger:?}");
    assert_eq!(boxed.image.as_ref().map(|i| i.names.clone()), Some(vec![IMAGE.to_string()]), "{boxed:?}");
    assert!(hosted.image.is_none(), "{hosted:?}");

    // The image task: its own root filesystem, hostname, pid 1 init, namespaces, memory limit.
    let seen = facts(&c, &boxed_id).await;
    let (boxed_container, boxed_process) = container(&c, &boxed);
    assert_own_namespaces(&seen);
    assert_eq!(seen["host"], "boxed", "the task's hostname is its name");
    assert_eq!(seen["busybox"], "yes", "/bin/busybox is there: {seen:?}");
    assert_eq!(seen["release"], "medos test image", "the image's upper layer: {seen:?}");
    assert!(!seen.contains_key("visible"), "host files (or a whited-out one) are visible: {:?}", seen.get("visible"));
    let root: Vec<&str> = seen["root"].split_whitespace().collect();
    for dir in ["bin", "etc", "proc", "dev", "tmp", "mnt"] {
        assert!(root.contains(&dir), "the image's root has /{dir}: {root:?}");
    }
    for dir in ["usr", "boot", "lib"] {
        assert!(!root.contains(&dir), "the host's /{dir} is not in the image's root: {root:?}");
    }
    assert_eq!((seen["sandbox"].as_str(), seen["cwd"].as_str()), ("/mnt/mesos/sandbox", "/mnt/mesos/sandbox"));
    assert_memory_limit(&boxed_container, boxed_process, IMAGE_MEM, &seen);

    // The host-command task: the host's files, but its own namespaces, hostname and limit.
    let seen = facts(&c, &hosted_id).await;
    let (hosted_container, hosted_process) = container(&c, &hosted);
    assert_own_namespaces(&seen);
    assert_eq!(seen["host"], "hosted", "the task's hostname is its name");
    assert_eq!(seen["os_release"], "visible", "a host-command task sees the host's files");
    assert_memory_limit(&hosted_container, hosted_process, HOST_MEM, &seen);

    // Logs stream: a follower started now prints ticks the task writes later, while it runs.
    let agent = c.agent_by_id(&boxed.agent_id);
    let agent_name = agent.name.clone();
    let boxed_stdout = agent.sandbox(&boxed_id).join("stdout");
    let hosted_stdout = agent.sandbox(&hosted_id).join("stdout");
    let trigger_go = c.agent_by_id(&trigger.agent_id).sandbox(&trigger_id).join("go");
    let mut follower = Follower::start(&c, &boxed_id);
    let now = wait_tick_above(&boxed_stdout, 0).await;
    let streamed = follower.wait_tick_above(now + 3, "following the image task").await;
    assert_eq!(show(&c, &boxed_id).await.state, TaskState::TASK_RUNNING, "streamed while running");

    // Exec in the image task: its filesystem, hostname, pid namespace; exit codes come back.
    let exec = |args: &'static [&'static str]| {
        let mut full = vec!["task", "exec", boxed_id.as_str(), "--"];
        full.extend_from_slice(args);
        full
    };
    let out = c.cli(&exec(&["cat", "/etc/medos-release"])).await.success("exec cat");
    assert_eq!(out.stdout_text(), "medos test image\n");
    let out = c.cli(&exec(&["hostname"])).await.success("exec hostname");
    assert_eq!(out.stdout_text(), "boxed\n");
    let out = c.cli(&exec(&["sh", "-c", "busybox tr '\\0' ' ' < /proc/1/cmdline"])).await.success("exec cmdline");
    assert!(out.stdout_text().contains("__container-init"), "exec sees the task's PID 1: {out:?}");
    let out = c.cli(&exec(&["sh", "-c", "test -e /etc/os-release || test -e /usr; echo seen=$?; exit 7"])).await;
    assert_eq!(out.status.code(), Some(7), "exec's exit code: {out:?}");
    assert_eq!(out.stdout_text(), "seen=1\n", "exec does not see the host's files");

    // kill -9 of the agent: both tasks go on in the same processes, their logs too.
    let registered = registrations(&c, &[], &boxed.agent_id);
    c.kill9_agent(&agent_name);
    let boxed_at = wait_tick_above(&boxed_stdout, last_tick(&boxed_stdout).unwrap_or(0) + 5).await;
    let hosted_at = wait_tick_above(&hosted_stdout, last_tick(&hosted_stdout).unwrap_or(0) + 5).await;
    assert!(boxed_process.is_alive() && hosted_process.is_alive(), "the tasks survive their agent's kill -9");
    assert!(c.agent(&agent_name).pid().is_none(), "the agent is still down");
    for id in [&boxed_id, &hosted_id] {
        assert_eq!(show(&c, id).await.state, TaskState::TASK_RUNNING, "task {id} while its agent is down");
    }

    // The restarted agent re-registers and re-attaches: still RUNNING, never launched again,
    // the same processes and containers; exec and the log reach the task through it.
    c.restart_agent(&agent_name);
    wait_registered(&c, &[], &boxed.agent_id, registered).await;
    for (id, process) in [(&boxed_id, boxed_process), (&hosted_id, hosted_process)] {
        let task = show(&c, id).await;
        assert_eq!(task.state, TaskState::TASK_RUNNING, "{task:?}");
        assert_eq!(states(&task), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING], "no second launch");
        assert_eq!(c.agent(&agent_name).containers_of(id).len(), 1, "one container for task {id}");
        assert_eq!(container(&c, &task).1, process, "the same process runs task {id}");
        assert!(process.is_alive(), "task {id}'s process runs");
    }
    let out = eventually("exec through the restarted agent", CONDITION_TIMEOUT, || async {
        let out = c.cli(&exec(&["hostname"])).await;
        if out.status.success() { Ok(out) } else { Err(out.stderr) }
    })
    .await;
    assert_eq!(out.stdout_text(), "boxed\n");
    wait_tick_above(&boxed_stdout, boxed_at).await;
    wait_tick_above(&hosted_stdout, hosted_at).await;
    let streamed = follower.wait_tick_above(streamed.max(boxed_at) + 3, "following across the agent's kill -9").await;

    // kill -9 of the leader; the trigger task exits while the masters elect a new one. Its
    // TASK_FINISHED must arrive once, the long tasks stay RUNNING, the follower goes on.
    let first_leader = c.leader().await;
    let names = c.names();
    let before: Vec<[usize; 2]> = names
        .iter()
        .map(|n| [&boxed.agent_id, &trigger.agent_id].map(|id| registrations(&c, &[n.as_str()], id)))
        .collect();
    let trigger_container = c.agent_by_id(&trigger.agent_id).container_of(&trigger_id);
    c.kill9(&first_leader);
    std::fs::write(&trigger_go, b"").expect("creating the trigger file");
    // The task ends within ~100 ms, well inside the election (500 ms or more without a leader).
    // The agent is up: it may see the exit and destroy the container (its state dir with
    // `exit.json`) at once, so a removed container dir also means the task ended.
    eventually("the trigger task ends during the failover", CONDITION_TIMEOUT, || async {
        match trigger_container.exit() {
            Some(exit) => Ok(exit),
            None if !trigger_container.dir.exists() => Ok(serde_json::Value::Null),
            None => Err("no exit.json yet and the container is still there".to_string()),
        }
    })
    .await;
    let new_leader = c.leader().await;
    assert_ne!(new_leader, first_leader, "a new leader");
    // Both agents register with the new leader, which reconciles their tasks.
    let at = names.iter().position(|n| *n == new_leader).expect("the new leader's index");
    wait_registered(&c, &[new_leader.as_str()], &boxed.agent_id, before[at][0]).await;
    wait_registered(&c, &[new_leader.as_str()], &trigger.agent_id, before[at][1]).await;
    let finished = wait_state(&c, &trigger_id, TaskState::TASK_FINISHED).await;
    assert_eq!(finished.exit_code, Some(0), "{finished:?}");
    assert_eq!(states(&finished), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING, TaskState::TASK_FINISHED]);
    for name in c.names().iter().filter(|n| **n != first_leader) {
        c.wait_caught_up(name).await;
        for id in [&boxed_id, &hosted_id] {
            let task = c.client_for(name).task(id).await.unwrap_or_else(|e| panic!("{name}: task {id}: {e}"));
            assert_eq!(task.state, TaskState::TASK_RUNNING, "{name} after the failover: {task:?}");
            assert_eq!(states(&task), [TaskState::TASK_STARTING, TaskState::TASK_RUNNING], "{name}: {task:?}");
        }
        let seen = c.client_for(name).task(&trigger_id).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((seen.state, seen.statuses.len()), (TaskState::TASK_FINISHED, 3), "{name} agrees: {seen:?}");
    }
    assert!(boxed_process.is_alive() && hosted_process.is_alive(), "the tasks survive the leader's kill -9");
    let nodes = c.cli(&["node", "list", "--json"]).await.success("medos node list --json").json();
    let agents = nodes["agents"].as_array().expect("agents");
    assert!(agents.iter().all(|a| a["status"] == "ACTIVE"), "agents ACTIVE under the new leader: {agents:?}");
    follower.wait_tick_above(streamed + 3, "following across the leader's kill -9").await;
    let out = c.cli(&exec(&["hostname"])).await.success("exec after the failover");
    assert_eq!(out.stdout_text(), "boxed\n");

    // The re-attached tasks can be killed through the new leader and report TASK_KILLED.
    for id in [&boxed_id, &hosted_id] {
        c.cli(&["task", "kill", id, "--grace", "1"]).await.success("medos task kill");
    }
    for (id, process) in [(&boxed_id, boxed_process), (&hosted_id, hosted_process)] {
        let killed = wait_state(&c, id, TaskState::TASK_KILLED).await;
        let seen = states(&killed);
        assert_eq!(seen.iter().filter(|s| **s == TaskState::TASK_STARTING).count(), 1, "launched once: {seen:?}");
        assert!(seen.contains(&TaskState::TASK_KILLING), "{seen:?}");
        eventually(&format!("task {id}'s process is gone"), CONDITION_TIMEOUT, || async {
            if process.is_alive() { Err("still alive".to_string()) } else { Ok(()) }
        })
        .await;
    }
    drop(follower);
    eventually("no container process left", CONDITION_TIMEOUT, || async {
        let left = c.container_processes();
        if left.is_empty() { Ok(()) } else { Err(format!("container processes {left:?}")) }
    })
    .await;
}
