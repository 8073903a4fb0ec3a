//! The agent's API through the masters: sandbox files (Mesos's files API) with offsets, path
//! escapes refused, only masters' certificates admitted, and exec into a real container.

mod support;

use std::sync::Arc;
use std::time::Duration;

use medos::agent::RunningAgent;
use medos::agent::containers::RuntimeContainers;
use medos::agent::fake::FakeContainers;
use medos::agent::runtime::cgroup::{CgroupConfig, Cgroups};
use medos::agent::runtime::{InitProgram, LinuxRuntime, RuntimeConfig};
use medos::api::client::{Client, ClientError};
use medos::api::sandbox::{ExecOutput, ExecStart, FileChunk, FileInfo, WindowSize};
use medos::api::tasks::RunTask;
use medos::core::{AgentStatus, TaskState};
use support::{TestCluster, fast_tuning, wait_for};

const TIMEOUT: Duration = Duration::from_secs(30);

fn run(name: &str, cmd: &str) -> RunTask {
    serde_json::from_value(serde_json::json!({ "name": name, "cmd": cmd, "cpus": 0.1, "mem": 64 })).unwrap()
}

async fn wait_agent(cluster: &TestCluster) -> String {
    let master = cluster.any_master();
    wait_for("the agent to register", TIMEOUT, || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            state.agents.values().find(|a| a.status == AgentStatus::Active).map(|a| a.id.clone())
        }
    })
    .await
}

async fn wait_state(cluster: &TestCluster, task_id: &str, want: TaskState) {
    let master = cluster.any_master();
    wait_for(&format!("{task_id} to reach {want:?}"), TIMEOUT, || {
        let m = master.clone();
        async move { m.state.read().unwrap().tasks.get(task_id).is_some_and(|t| t.state == want).then_some(()) }
    })
    .await
}

/// Waits until every master has applied the task (reads work on followers without a barrier).
async fn wait_everywhere(cluster: &TestCluster, task_id: &str) {
    for node in cluster.nodes.values() {
        let m = node.running.as_ref().unwrap().master.clone();
        wait_for("the task on every master", TIMEOUT, || {
            let m = m.clone();
            async move { m.state.read().unwrap().tasks.contains_key(task_id).then_some(()) }
        })
        .await;
    }
}

fn status(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(e) => e.status().unwrap_or_else(|| panic!("not an API error: {e}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// GET `url` with a client presenting `tls`'s identity; returns the status.
async fn direct_status(tls: rustls::ClientConfig, url: &str) -> u16 {
    let http = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    http.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sandbox_files_are_read_and_browsed_through_any_master() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let mut config = cluster.agent_config("agent-1");
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    let agent = medos::agent::start(config.clone(), Arc::new(FakeContainers::default())).await.unwrap();
    assert!(agent.api.starts_with("https://127.0.0.1:") && !agent.api.ends_with(":0"), "{}", agent.api);
    let agent_id = wait_agent(&cluster).await;
    assert_eq!(cluster.any_master().state.read().unwrap().agents[&agent_id].api, agent.api, "the API is advertised");

    let leader = cluster.wait_leader().await;
    let follower = cluster.running().into_iter().find(|n| *n != leader).unwrap().to_string();
    let client = cluster.client(&follower).await;
    // Writes through the leader: a follower answers a forwarded write before it has applied it.
    let writer = cluster.client(&leader).await;
    let task = writer.run_task(&run("files", "sleep 1000")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    wait_everywhere(&cluster, &task.id).await;

    // The fake runtime writes nothing: the test plays the task.
    let sandbox = config.work_dir.join("sandboxes").join(&task.id);
    let text: String = (1..=20).map(|i| format!("line {i}\n")).collect::<String>() + "café\n";
    std::fs::write(sandbox.join("stdout"), &text).unwrap();
    std::fs::set_permissions(sandbox.join("stdout"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::create_dir(sandbox.join("dir")).unwrap();
    std::fs::write(sandbox.join("dir/inner.txt"), "inner").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sandbox.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/passwd", sandbox.join("climb")).unwrap();
    std::os::unix::fs::symlink("stdout", sandbox.join("alias")).unwrap();

    // Offsets, lengths and the size (offset -1), through a follower.
    let size = text.len() as u64;
    let id = &task.id[..12];
    assert_eq!(client.read_task_file(id, "stdout", -1, 0).await.unwrap(), FileChunk { data: "".into(), offset: size });
    assert_eq!(
        client.read_task_file(id, "stdout", 0, 6).await.unwrap(),
        FileChunk { data: "line 1".into(), offset: 0 }
    );
    assert_eq!(client.read_task_file(id, "stdout", 7, 6).await.unwrap().data, "line 2");
    let whole = client.read_task_file(id, "stdout", 0, 1 << 20).await.unwrap();
    assert_eq!(whole.data, text);
    // A character cut by the length is left for the next read, so offsets stay byte-exact.
    let cafe = text.find("café").unwrap() as i64;
    let cut = client.read_task_file(id, "stdout", cafe, 4).await.unwrap();
    assert_eq!(cut.data, "caf");
    let rest = client.read_task_file(id, "stdout", cafe + 3, 10).await.unwrap();
    assert_eq!(rest.data, "é\n");
    // Past the end: no data, and the offset says where the end is.
    assert_eq!(
        client.read_task_file(id, "stdout", size as i64 + 100, 10).await.unwrap(),
        FileChunk { data: "".into(), offset: size }
    );
    assert_eq!(client.read_task_file(id, "alias", 0, 6).await.unwrap().data, "line 1", "links inside are fine");
    assert_eq!(client.read_task_file(id, "dir/inner.txt", 0, 100).await.unwrap().data, "inner");

    let listing = client.browse_task_files(id, "").await.unwrap();
    let names: Vec<&str> = listing.iter().map(|f| f.path.rsplit('/').next().unwrap()).collect();
    assert_eq!(names, ["alias", "climb", "dir", "escape", "stdout"]);
    let stdout: &FileInfo = listing.iter().find(|f| f.path.ends_with("/stdout")).unwrap();
    assert_eq!(stdout.path, format!("/sandboxes/{}/stdout", task.id));
    assert_eq!((stdout.size, stdout.mode.as_str(), stdout.uid.as_str()), (size, "-rw-r--r--", "root"));
    assert!(listing.iter().find(|f| f.path.ends_with("/escape")).unwrap().mode.starts_with('l'));
    let inner = client.browse_task_files(id, "dir").await.unwrap();
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].size, 5);

    // Escapes are refused: `..`, absolute paths, links leading out.
    for (path, want) in [
        ("../agent-id", 400),
        ("dir/../../x", 400),
        ("/etc/passwd", 400),
        ("escape", 403),
        ("climb", 403),
        ("missing", 404),
        ("dir", 400),
    ] {
        assert_eq!(status(client.read_task_file(id, path, 0, 100).await), want, "read {path}");
    }
    assert_eq!(status(client.browse_task_files(id, "escape").await), 403);
    assert_eq!(status(client.browse_task_files(id, "stdout").await), 400);
    assert_eq!(status(client.read_task_file("no-such-task", "stdout", 0, 1).await), 404);
    assert_eq!(status(client.read_task_file(id, "stdout", -5, 1).await), 400);

    // Mesos's paths map onto the same code.
    let path = format!("/slave/{agent_id}/files/read.json?path=/sandboxes/{}/stdout&offset=0&length=4", task.id);
    let resp = client.send(reqwest::Method::GET, &path, None, false).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<FileChunk>().await.unwrap(), FileChunk { data: "line".into(), offset: 0 });
    let path = format!("/slave/{agent_id}/files/browse.json?path=/sandboxes/{}/dir", task.id);
    let resp = client.send(reqwest::Method::GET, &path, None, false).await.unwrap();
    assert_eq!(resp.json::<Vec<FileInfo>>().await.unwrap()[0].path, format!("/sandboxes/{}/dir/inner.txt", task.id));
    let path = format!("/slave/{agent_id}/files/read.json?path=/sandboxes/{}/escape", task.id);
    assert_eq!(client.send(reqwest::Method::GET, &path, None, false).await.unwrap().status(), 403);
    let path = format!("/slave/{agent_id}/files/read.json?path=/etc/passwd");
    assert_eq!(client.send(reqwest::Method::GET, &path, None, false).await.unwrap().status(), 400);
    // Without a token, nothing.
    let anonymous = Client::new(vec![cluster.url(&follower)], &cluster.ca_pem(), None).unwrap();
    assert_eq!(status(anonymous.read_task_file(id, "stdout", 0, 1).await), 401);

    // The agent itself admits only masters' certificates.
    let url = format!("{}/files/read?path=/sandboxes/{}/stdout&offset=0&length=4", agent.api, task.id);
    let intruder = cluster.agent_config("intruder").tls.mutual_client_config().unwrap();
    assert_eq!(direct_status(intruder, &url).await, 403, "an agent's certificate");
    let no_cert = medos::pki::tls::client_config_for_ca(&cluster.ca_pem()).unwrap();
    assert_eq!(direct_status(no_cert, &url).await, 403, "no certificate");
    let master_tls = cluster.nodes[&leader].config.tls.mutual_client_config().unwrap();
    assert_eq!(direct_status(master_tls, &url).await, 200, "a master's certificate");

    // The fake runtime cannot exec: the refusal reaches the client.
    let start = ExecStart { command: vec!["hostname".into()], tty: None, stdin: false };
    let err = client.exec(id, &start).await.unwrap().collect().await.unwrap_err();
    assert!(err.to_string().contains("cannot exec"), "{err}");

    // An agent without `listen` serves no API: the masters say so instead of failing obscurely.
    let quiet =
        medos::agent::start(cluster.agent_config("agent-2"), Arc::new(FakeContainers::default())).await.unwrap();
    assert_eq!(quiet.api, "");
    wait_for("two agents", TIMEOUT, || async { (client.agents().await.ok()?.len() == 2).then_some(()) }).await;
    writer.set_agent_mode("agent-1", "deactivate").await.unwrap();
    let elsewhere = writer.run_task(&run("quiet", "sleep 1000")).await.unwrap();
    let err = client.read_task_file(&elsewhere.id, "stdout", 0, 10).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(err.to_string().contains("listen"), "{err}");

    quiet.shutdown().await;
    agent.shutdown().await;
    cluster.shutdown().await;
}

/// Kills what the real runtime left behind, also when the test fails.
struct CgroupCleanup {
    config: CgroupConfig,
    state_dir: std::path::PathBuf,
}

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        let Ok(cgroups) = Cgroups::detect(&self.config) else { return };
        let containers = self.state_dir.join("containers");
        for entry in std::fs::read_dir(&containers).into_iter().flatten().flatten() {
            let Ok(id) = medos::agent::runtime::ContainerId::new(entry.file_name().to_string_lossy()) else { continue };
            let _ = cgroups.task(&id).kill_all(cgroups.fs(), Duration::from_secs(5));
            let _ = cgroups.task(&id).remove(cgroups.fs(), Duration::from_secs(5));
        }
        let _ = cgroups.remove_parent();
    }
}

async fn real_agent(cluster: &TestCluster, name: &str) -> (RunningAgent, CgroupCleanup) {
    assert!(nix::unistd::geteuid().is_root(), "exec into real containers needs root");
    let mut config = cluster.agent_config(name);
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut runtime_config = RuntimeConfig::new(config.work_dir.join("runtime"));
    std::fs::create_dir_all(&runtime_config.state_dir).unwrap();
    runtime_config.init = InitProgram::Subcommand { path: env!("CARGO_BIN_EXE_medos").into() };
    runtime_config.subreaper = true;
    runtime_config.cgroups =
        CgroupConfig { parent: format!("medos-test-agent-api-{}", std::process::id()), ..Default::default() };
    let cleanup = CgroupCleanup { config: runtime_config.cgroups.clone(), state_dir: runtime_config.state_dir.clone() };
    let runtime = LinuxRuntime::new(runtime_config).expect("the runtime needs root");
    let containers = RuntimeContainers::new(Arc::new(runtime), config.hostname.clone(), None).await.unwrap();
    (medos::agent::start(config, Arc::new(containers)).await.unwrap(), cleanup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_runs_inside_a_real_container() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let (agent, _cleanup) = real_agent(&cluster, "agent-x").await;
    wait_agent(&cluster).await;
    let client = cluster.client("m1").await;
    let task = client.run_task(&run("exectest", "echo started; exec sleep 300")).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_RUNNING).await;
    // The task's own output, through the files API.
    wait_for("the task's stdout", TIMEOUT, || async {
        client.read_task_file(&task.id, "stdout", 0, 100).await.ok().filter(|c| c.data == "started\n")
    })
    .await;

    let argv = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let exec = |command: Vec<String>| ExecStart { command, tty: None, stdin: false };

    // The task's hostname: the exec is in its UTS namespace.
    let out = client.exec(&task.id, &exec(argv(&["hostname"]))).await.unwrap().collect().await.unwrap();
    assert_eq!((String::from_utf8_lossy(&out.stdout).as_ref(), out.code), ("exectest\n", Some(0)), "{out:?}");

    // stdout, stderr and the exit code arrive apart.
    let out = client
        .exec(&task.id, &exec(argv(&["sh", "-c", "echo out; echo err >&2; exit 3"])))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!((out.stdout.as_slice(), out.stderr.as_slice(), out.code), (&b"out\n"[..], &b"err\n"[..], Some(3)));
    assert_eq!(out.exit_code(), 3);

    // Same pid namespace as the task: its `sleep` is visible, as pid 1's child.
    let out = client.exec(&task.id, &exec(argv(&["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]))).await.unwrap();
    let out = out.collect().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("__container-init"), "{out:?}");

    // stdin is passed through and closed on request.
    let mut session =
        client.exec(&task.id, &ExecStart { command: argv(&["cat"]), tty: None, stdin: true }).await.unwrap();
    session.stdin(b"hello ").await.unwrap();
    session.stdin(b"world\n").await.unwrap();
    session.close_stdin().await.unwrap();
    let out = session.collect().await.unwrap();
    assert_eq!((out.stdout.as_slice(), out.code), (&b"hello world\n"[..], Some(0)));

    // A terminal of the requested size, resized on request.
    let tty = Some(WindowSize { rows: 30, cols: 100 });
    let start = ExecStart { command: argv(&["sh", "-c", "tty; stty size; read x; stty size"]), tty, stdin: true };
    let mut session = client.exec(&task.id, &start).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("30 100") {
        match session.next().await.unwrap() {
            Some(ExecOutput::Stdout(b)) => seen.extend(b),
            Some(ExecOutput::Started { .. }) => {}
            other => panic!("unexpected {other:?} after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    session.resize(WindowSize { rows: 40, cols: 120 }).await.unwrap();
    session.stdin(b"go\r").await.unwrap();
    let out = session.collect().await.unwrap();
    let all = String::from_utf8_lossy(&seen).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(all.contains("/dev/pts/"), "{all:?}");
    assert!(all.contains("40 120"), "{all:?}");
    assert_eq!(out.code, Some(0));

    // `medos task exec -it TASK sh`, then `exit 5`: the shell's own code comes back (a job-control
    // shell whose session leader sat outside the task's pid namespace used to end with 2).
    let tty = Some(WindowSize { rows: 24, cols: 80 });
    let mut session = client.exec(&task.id, &ExecStart { command: argv(&["sh"]), tty, stdin: true }).await.unwrap();
    session.stdin(b"exit 5\r").await.unwrap();
    let out = session.collect().await.unwrap();
    assert_eq!((out.code, out.signal, out.exit_code()), (Some(5), None, 5), "{out:?}");
    // Death by a signal arrives as the signal; the CLI exits with 128 + N.
    let out = client.exec(&task.id, &exec(argv(&["sh", "-c", "kill -9 $$"]))).await.unwrap().collect().await.unwrap();
    assert_eq!((out.code, out.signal, out.exit_code()), (None, Some(9), 137), "{out:?}");

    // A program that does not exist is an error with a reason, not a hang.
    let err = client.exec(&task.id, &exec(argv(&["/no/such/program"]))).await.unwrap().collect().await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("/no/such/program"), "{err}");
    // A client that goes away kills its process.
    let mut session = client.exec(&task.id, &exec(argv(&["sleep", "1000"]))).await.unwrap();
    assert!(matches!(session.next().await.unwrap(), Some(ExecOutput::Started { .. })));
    session.close().await;
    let list = argv(&["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"]);
    wait_for("the abandoned exec to be killed", TIMEOUT, || async {
        let out = client.exec(&task.id, &exec(list.clone())).await.ok()?.collect().await.ok()?;
        let seen = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(seen.contains("sleep 300"), "the listing shows the task: {seen}");
        (!seen.contains("sleep 1000")).then_some(())
    })
    .await;

    client.kill_task(&task.id, Some(0.0)).await.unwrap();
    wait_state(&cluster, &task.id, TaskState::TASK_KILLED).await;
    let err = client.exec(&task.id, &exec(argv(&["hostname"]))).await.err().expect("an ended task refuses exec");
    assert_eq!(err.status(), Some(409), "{err}");
    // Its files stay readable after the end.
    assert_eq!(client.read_task_file(&task.id, "stdout", 0, 100).await.unwrap().data, "started\n");

    agent.shutdown().await;
    cluster.shutdown().await;
}
