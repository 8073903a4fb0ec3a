//! The Mesos fetcher end to end: Marathon apps with `fetch` (and legacy `uris`) on an
//! in-process cluster, URIs served by a local HTTP server, and an agent with the recording
//! fake containers (the fetch happens before the container starts).

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use medos::agent::RunningAgent;
use medos::agent::fake::FakeContainers;
use medos::api::client::Client;
use medos::core::{AgentStatus, Task, TaskState};
use reqwest::Method;
use serde_json::{Value, json};
use support::{TestCluster, fast_tuning, wait_for};

struct Fixture {
    cluster: TestCluster,
    fake: Arc<FakeContainers>,
    agent: RunningAgent,
    sandboxes: PathBuf,
    client: Client,
}

async fn fixture() -> Fixture {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let fake = Arc::new(FakeContainers::default());
    let config = cluster.agent_config("agent-1");
    let sandboxes = config.work_dir.join("sandboxes");
    let agent = medos::agent::start(config, fake.clone()).await.unwrap();
    let master = cluster.any_master();
    wait_for("the agent to register", Duration::from_secs(20), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            state.agents.values().any(|a| a.status == AgentStatus::Active).then_some(())
        }
    })
    .await;
    let client = cluster.client(&cluster.wait_leader().await).await;
    Fixture { cluster, fake, agent, sandboxes, client }
}

impl Fixture {
    async fn create_app(&self, app: Value) {
        self.client.marathon(Method::POST, "/v2/apps", Some(&app)).await.unwrap_or_else(|e| panic!("{app}: {e}"));
    }

    /// The first task of `app_id` in `state`.
    async fn wait_task(&self, app_id: &str, want: TaskState) -> Task {
        let master = self.cluster.any_master();
        wait_for(&format!("a task of {app_id} in {want:?}"), Duration::from_secs(20), || {
            let m = master.clone();
            async move {
                let state = m.state.read().unwrap();
                state.tasks.values().find(|t| t.app_id.as_deref() == Some(app_id) && t.state == want).cloned()
            }
        })
        .await
    }

    async fn shutdown(self) {
        self.agent.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// Serves `files`, plus `/stall` (headers and one byte, then nothing).
async fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    use axum::routing::get;
    let mut router = axum::Router::new();
    for (path, body) in files {
        router = router.route(path, get(move || std::future::ready(body.clone())));
    }
    router = router.route(
        "/stall/app.tgz",
        get(|| async {
            let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x")) });
            let body =
                axum::body::Body::from_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
            axum::response::Response::builder().header("content-length", "1000").body(body).unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A gzipped tar of `(path, content)` files; paths are written raw, so `../x` is possible.
fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_cksum();
        builder.append(&header, *content).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetched_uris_are_in_the_sandbox_before_the_task_runs() {
    let f = fixture().await;
    let base = serve(vec![
        ("/files/settings.json", br#"{"debug": true}"#.to_vec()),
        ("/bin/start.sh", b"#!/bin/sh\nexec ./site/serve\n".to_vec()),
        ("/dist/site.tar.gz", tar_gz(&[("site/index.html", b"<h1>hi</h1>"), ("site/serve", b"#!/bin/sh\n")])),
        ("/dist/legacy.tgz", tar_gz(&[("legacy/README", b"from uris")])),
    ])
    .await;
    f.create_app(json!({
        "id": "/web",
        "cmd": "./start.sh",
        "cpus": 0.1,
        "mem": 32,
        "fetch": [
            {"uri": format!("{base}/files/settings.json")},
            {"uri": format!("{base}/bin/start.sh"), "executable": true},
            {"uri": format!("{base}/dist/site.tar.gz")},
            {"uri": format!("{base}/files/settings.json"), "destPath": "conf/prod/settings.json", "cache": true},
        ],
    }))
    .await;
    let task = f.wait_task("/web", TaskState::TASK_RUNNING).await;
    assert_eq!(task.spec.fetch.len(), 4, "the task carries the app's fetch list");
    assert!(f.fake.launched.lock().unwrap().contains(&task.id));
    let sandbox = f.sandboxes.join(&task.id);
    let read = |p: &str| std::fs::read(sandbox.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("settings.json"), br#"{"debug": true}"#);
    assert_eq!(read("conf/prod/settings.json"), br#"{"debug": true}"#);
    assert_eq!(read("site/index.html"), b"<h1>hi</h1>");
    assert_eq!(
        read("site.tar.gz").len(),
        tar_gz(&[("site/index.html", b"<h1>hi</h1>"), ("site/serve", b"#!/bin/sh\n")]).len()
    );
    let mode = std::fs::metadata(sandbox.join("start.sh")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "executable URIs are made executable");
    let statuses: Vec<TaskState> = task.statuses.iter().map(|s| s.state).collect();
    assert_eq!(statuses, [TaskState::TASK_STARTING, TaskState::TASK_RUNNING]);

    // Marathon's deprecated `uris` become fetch items (extracted by their extension).
    f.create_app(json!({"id": "/old", "cmd": "cat legacy/README", "cpus": 0.1, "mem": 32,
        "uris": [format!("{base}/dist/legacy.tgz")]}))
        .await;
    let task = f.wait_task("/old", TaskState::TASK_RUNNING).await;
    assert_eq!(std::fs::read(f.sandboxes.join(&task.id).join("legacy/README")).unwrap(), b"from uris");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_fetch_fails_the_task_with_the_uri_and_the_cause() {
    let f = fixture().await;
    let base = serve(vec![
        ("/ok.txt", b"fine".to_vec()),
        ("/evil.tar.gz", tar_gz(&[("fine.txt", b"ok"), ("../escaped.txt", b"gotcha")])),
    ])
    .await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/app.tgz", listener.local_addr().unwrap())
    };
    let cases = [
        ("/missing", format!("{base}/missing.tgz"), "the server answered HTTP 404 Not Found"),
        ("/refused", refused, "Connection refused"),
        ("/evil", format!("{base}/evil.tar.gz"), "entry \"../escaped.txt\" contains `..`"),
    ];
    // A scheme the fetcher refuses is refused with the app, before any task exists.
    let scheme = json!({"id": "/scheme", "cmd": "true", "cpus": 0.1, "mem": 32,
        "fetch": [{"uri": format!("{base}/ok.txt")}, {"uri": "file:///etc/shadow"}]});
    match f.client.marathon(Method::POST, "/v2/apps", Some(&scheme)).await {
        Err(medos::api::client::ClientError::Api { status: 422, body }) => {
            assert!(
                body.message.contains("/fetch(1)") && body.message.contains("only http and https"),
                "{}",
                body.message
            )
        }
        other => panic!("a file:// fetch URI must be refused: {other:?}"),
    }
    for (app, uri, _) in &cases {
        f.create_app(json!({"id": app, "cmd": "true", "cpus": 0.1, "mem": 32,
            "fetch": [{"uri": format!("{base}/ok.txt")}, {"uri": uri}]}))
            .await;
    }
    for (app, uri, cause) in &cases {
        let task = f.wait_task(app, TaskState::TASK_FAILED).await;
        assert_eq!(task.reason.as_deref(), Some("REASON_CONTAINER_LAUNCH_FAILED"), "{app}");
        let prefix = format!("Failed to fetch '{uri}': ");
        assert!(task.message.starts_with(&prefix) && task.message.contains(cause), "{app}: {}", task.message);
        assert!(!f.fake.launched.lock().unwrap().contains(&task.id), "{app}: no container after a failed fetch");
        // The URIs before the failing one were fetched; nothing left the sandbox.
        let sandbox = f.sandboxes.join(&task.id);
        assert_eq!(std::fs::read(sandbox.join("ok.txt")).unwrap(), b"fine", "{app}");
        assert!(!sandbox.join("../escaped.txt").exists() && !f.sandboxes.join("escaped.txt").exists());
    }
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_task_while_it_fetches_stops_the_fetch() {
    let f = fixture().await;
    let base = serve(vec![]).await;
    f.create_app(json!({"id": "/slow", "cmd": "true", "cpus": 0.1, "mem": 32,
        "fetch": [{"uri": format!("{base}/stall/app.tgz")}]}))
        .await;
    let task = f.wait_task("/slow", TaskState::TASK_STARTING).await;
    // The stalled fetch does not hold up the agent: other tasks still launch.
    f.create_app(json!({"id": "/quick", "cmd": "true", "cpus": 0.1, "mem": 32})).await;
    f.wait_task("/quick", TaskState::TASK_RUNNING).await;

    // The app's deployment waits for a task that never runs: deleting it needs `force`.
    f.client.marathon(Method::DELETE, "/v2/apps/slow?force=true", None).await.unwrap();
    let killed = f.wait_task("/slow", TaskState::TASK_KILLED).await;
    assert_eq!(killed.id, task.id);
    assert_eq!(killed.reason.as_deref(), Some("REASON_TASK_KILLED_DURING_LAUNCH"));
    assert!(!f.fake.launched.lock().unwrap().contains(&task.id));
    f.shutdown().await;
}
