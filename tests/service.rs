//! `/service/<name>/…` on a master: requests, server-sent events and WebSockets reach the
//! instances of the app labelled `DCOS_SERVICE_NAME`, round robin; Marathon answers at
//! `/service/marathon/v2`. The instances are real HTTP servers of the test, bound to the host
//! ports the agent offers (the agent's containers are the recording fake).

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use medos::agent::fake::FakeContainers;
use medos::core::{AgentStatus, TaskState};
use reqwest::Method;
use serde_json::json;
use support::{TestCluster, fast_tuning, wait_for};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One instance: answers with its name, the path and query it saw and the forwarding headers;
/// `/events` sends one event, then a second when `release` is notified; `/ws` echoes.
async fn instance(name: &'static str, release: Arc<tokio::sync::Notify>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route(
            "/events",
            get(move || {
                let release = release.clone();
                async move {
                    let events = futures_util::stream::once(async {
                        Ok::<_, std::convert::Infallible>(Event::default().data("first"))
                    })
                    .chain(futures_util::stream::once(async move {
                        release.notified().await;
                        Ok(Event::default().data("second"))
                    }));
                    Sse::new(events)
                }
            }),
        )
        .route(
            "/size",
            axum::routing::post(|req: axum::extract::Request| async move {
                use http_body_util::BodyExt;
                let body = req.into_body().collect().await.map(|c| c.to_bytes().len()).unwrap_or(0);
                body.to_string()
            }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(Message::Text(text))) = socket.recv().await {
                        if socket.send(Message::Text(format!("echo {text}").into())).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        )
        .fallback(move |uri: axum::http::Uri, headers: HeaderMap| async move {
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            axum::Json(json!({
                "instance": name,
                "uri": uri.to_string(),
                "prefix": h("x-forwarded-prefix"),
                "proto": h("x-forwarded-proto"),
            }))
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_events_and_websockets_reach_the_labelled_apps_instances() {
    let release = Arc::new(tokio::sync::Notify::new());
    let p1 = instance("one", release.clone()).await;
    let p2 = instance("two", release.clone()).await;

    let cluster = TestCluster::start(1, fast_tuning()).await;
    // The agent offers exactly the two ports the test's servers listen on.
    let mut config = cluster.agent_config("agent-1");
    config.ports = vec![format!("{p1}-{p1}"), format!("{p2}-{p2}")];
    let _agent = medos::agent::start(config, Arc::new(FakeContainers::default())).await.unwrap();
    let master = cluster.any_master();
    wait_for("the agent to register", TIMEOUT, || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            state.agents.values().any(|a| a.status == AgentStatus::Active).then_some(())
        }
    })
    .await;

    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let app = json!({"id": "/tools/web", "cmd": "serve", "cpus": 0.1, "mem": 32, "instances": 2,
        "labels": {"DCOS_SERVICE_NAME": "tools/web"}, "portDefinitions": [{"port": 0}]});
    client.marathon(Method::POST, "/v2/apps", Some(&app)).await.unwrap();
    wait_for("both instances to run", TIMEOUT, || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            (state.tasks.values().filter(|t| t.state == TaskState::TASK_RUNNING).count() == 2).then_some(())
        }
    })
    .await;

    // Plain requests: path and query as the instance sees them, round robin over both.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let resp = client.send(Method::GET, "/service/tools/web/hello/there?x=1", None, false).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["uri"], "/hello/there?x=1", "{body}");
        assert_eq!(body["prefix"], "/service/tools/web");
        assert_eq!(body["proto"], "https");
        seen.insert(body["instance"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["one", "two"], "requests go to both instances");

    // Request bodies stream through without the API's 1 MiB cap.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let resp = client.send(Method::POST, "/service/tools/web/size", Some(big.clone().into()), false).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), big.len().to_string());

    // Without the trailing slash: a redirect into the prefix, as Admin Router answers.
    let token = login_token(&cluster, &leader).await;
    let no_redirects = reqwest::Client::builder()
        .use_preconfigured_tls(medos::pki::tls::client_config_for_ca(&cluster.ca_pem()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(format!("{}/service/tools/web?a=b", cluster.url(&leader)))
        .header("Authorization", format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], "/service/tools/web/?a=b");

    // Unknown services name the label to set; no token, no proxy.
    let err = client.send(Method::GET, "/service/nothing/", None, false).await.unwrap();
    assert_eq!(err.status(), 404);
    assert!(err.text().await.unwrap().contains("DCOS_SERVICE_NAME"));
    let anonymous = no_redirects.get(format!("{}/service/tools/web/", cluster.url(&leader))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Server-sent events stream through: the first event arrives before the second is sent.
    let resp = client.send(Method::GET, "/service/tools/web/events", None, false).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("data: first") {
        let chunk =
            tokio::time::timeout(TIMEOUT, body.next()).await.expect("the first event in time").unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("second"), "the second event is only sent once released: {text}");
    release.notify_waiters();
    while !text.contains("data: second") {
        release.notify_waiters();
        let chunk =
            tokio::time::timeout(TIMEOUT, body.next()).await.expect("the second event in time").unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }

    // WebSockets are joined end to end.
    let tls = medos::pki::tls::client_config_for_ca(&cluster.ca_pem()).unwrap();
    let mut ws = medos::api::sandbox::connect_ws(&cluster.url(&leader), "/service/tools/web/ws", tls, Some(&token))
        .await
        .unwrap_or_else(|_| panic!("WebSocket through /service"));
    for word in ["hello", "again"] {
        ws.send(tokio_tungstenite::tungstenite::Message::Text(word.into())).await.unwrap();
        let answer = tokio::time::timeout(TIMEOUT, ws.next()).await.expect("an echo in time").unwrap().unwrap();
        assert_eq!(answer.into_text().unwrap().as_str(), format!("echo {word}"));
    }

    // Marathon itself at Admin Router's path, as the dcos CLI calls it.
    let apps = client.marathon(Method::GET, "/service/marathon/v2/apps", None).await.unwrap();
    assert_eq!(apps["apps"][0]["id"], "/tools/web");

    // Scaled to zero, the service has no instance to take requests (503); removed, it is
    // no service at all (404).
    client.marathon(Method::PUT, "/v2/apps/tools/web", Some(&json!({"instances": 0}))).await.unwrap();
    wait_for("the proxy to report no running instance", TIMEOUT, || async {
        let resp = client.send(Method::GET, "/service/tools/web/", None, false).await.ok()?;
        (resp.status() == 503 && resp.text().await.ok()?.contains("no running instance")).then_some(())
    })
    .await;
    client.marathon(Method::DELETE, "/v2/apps/tools/web?force=true", None).await.unwrap();
    let gone = client.send(Method::GET, "/service/tools/web/", None, false).await.unwrap();
    assert_eq!(gone.status(), 404);
    cluster.shutdown().await;
}

async fn login_token(cluster: &TestCluster, name: &str) -> String {
    let anon = medos::api::client::Client::new(vec![cluster.url(name)], &cluster.ca_pem(), None).unwrap();
    anon.login(support::ADMIN, support::PASSWORD).await.unwrap()
}
