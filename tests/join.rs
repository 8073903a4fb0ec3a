//! Agents joining with a token against in-process masters: an agent with nothing but a join
//! token obtains its certificate, registers and runs tasks, and reuses the certificate after
//! a restart; expired, forged and foreign tokens, bad requests and masters without the CA
//! key are refused with errors that say what is wrong.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use medos::agent::AgentConfig;
use medos::agent::config::default_tls;
use medos::agent::fake::FakeContainers;
use medos::api::join::{CreateJoinToken, ERR_INVALID_JOIN_TOKEN, ERR_NO_CA_KEY};
use medos::api::tasks::RunTask;
use medos::core::{AgentStatus, TaskState};
use medos::pki::join::{JoinKind, JoinToken};
use medos::pki::{PeerIdentity, Role};
use support::{TestCluster, fast_tuning, wait_for};

/// A config for an agent that has no certificate, only `token`.
fn joining_config(cluster: &TestCluster, name: &str, token: &str) -> AgentConfig {
    let mut config = cluster.agent_config(name);
    config.tls = default_tls(&config.work_dir);
    config.join_token = Some(token.to_string());
    config
}

async fn create_token(cluster: &TestCluster, public: bool) -> String {
    let client = cluster.client(&cluster.wait_leader().await).await;
    let created = client.create_join_token(&CreateJoinToken { ttl_seconds: 3600, public }).await.unwrap();
    assert!(created.served_by_signs);
    assert_eq!(created.public, public);
    created.token
}

/// Waits until an agent with `hostname` is active and returns whether it is public.
async fn wait_active(cluster: &TestCluster, hostname: &str) -> bool {
    let master = cluster.any_master();
    wait_for(&format!("{hostname} to register"), Duration::from_secs(20), || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            state.agents.values().find(|a| a.hostname == hostname && a.status == AgentStatus::Active).map(|a| a.public)
        }
    })
    .await
}

fn cluster_secret(cluster: &TestCluster) -> String {
    cluster.any_master().state.read().unwrap().identity.as_ref().unwrap().token_secret.clone()
}

fn ca_fingerprint(cluster: &TestCluster) -> String {
    let der = medos::pki::tls::certs_from_pem(&cluster.ca_pem(), std::path::Path::new("ca")).unwrap();
    medos::pki::fingerprint(&der[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_with_only_a_join_token_registers_runs_tasks_and_keeps_its_certificate() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let token = create_token(&cluster, false).await;
    let config = joining_config(&cluster, "joiner", &token);
    assert!(!config.tls.cert.exists());

    let fake = Arc::new(FakeContainers::default());
    let agent = medos::agent::start(config.clone(), fake.clone()).await.unwrap();
    assert!(!wait_active(&cluster, "joiner").await, "an agent token makes a private agent");

    // The files are where the config says, the key private, the certificate an agent's.
    let mode = std::fs::metadata(&config.tls.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(&config.tls.ca).unwrap(), cluster.ca_pem());
    let cert = medos::pki::tls::load_certs(&config.tls.cert).unwrap();
    assert_eq!(
        medos::pki::tls::peer_identity(&cert[0]),
        Some(PeerIdentity { name: "joiner".into(), role: Role::Agent })
    );

    // It runs tasks like any agent.
    let client = cluster.client(&cluster.wait_leader().await).await;
    let run: RunTask =
        serde_json::from_value(serde_json::json!({ "name": "job", "cmd": "sleep 100", "cpus": 0.5, "mem": 64 }))
            .unwrap();
    let task = client.run_task(&run).await.unwrap();
    let id = task.id.clone();
    wait_for("the task to run", Duration::from_secs(20), || {
        let client = &client;
        let id = id.clone();
        async move { client.task(&id).await.ok().filter(|t| t.state == TaskState::TASK_RUNNING) }
    })
    .await;
    let agent_id = agent.session.agent_id().unwrap();
    agent.shutdown().await;

    // A restart reuses the stored certificate: the token is not used again (this one would
    // be refused), and the agent comes back under its id.
    let cert_before = std::fs::read(&config.tls.cert).unwrap();
    let forged = JoinToken::create(
        &medos::auth::new_token_secret(),
        &ca_fingerprint(&cluster),
        JoinKind::Agent,
        medos::clock::now_secs() + 3600,
        [9; 8],
    );
    let restarted = joining_config(&cluster, "joiner", &forged.to_string());
    let agent = medos::agent::start(restarted.clone(), fake).await.unwrap();
    wait_for("the agent to re-register", Duration::from_secs(20), || {
        let agent = &agent;
        let agent_id = agent_id.clone();
        let master = cluster.any_master();
        async move {
            let state = master.state.read().unwrap();
            (agent.session.agent_id().as_deref() == Some(agent_id.as_str())
                && state.agents.get(&agent_id).is_some_and(|a| a.status == AgentStatus::Active))
            .then_some(())
        }
    })
    .await;
    assert_eq!(std::fs::read(&restarted.tls.cert).unwrap(), cert_before);
    agent.shutdown().await;

    // A public token makes a public agent.
    let public = create_token(&cluster, true).await;
    let agent = medos::agent::start(joining_config(&cluster, "edge", &public), Arc::new(FakeContainers::default()))
        .await
        .unwrap();
    assert!(wait_active(&cluster, "edge").await, "a public token makes a public agent");
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_forged_and_foreign_tokens_are_refused_and_nothing_is_written() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let now = medos::clock::now_secs();
    let secret = cluster_secret(&cluster);
    let fingerprint = ca_fingerprint(&cluster);
    let expired = JoinToken::create(&secret, &fingerprint, JoinKind::Agent, now - 120, [1; 8]);
    let forged = JoinToken::create(&medos::auth::new_token_secret(), &fingerprint, JoinKind::Agent, now + 3600, [2; 8]);
    let foreign = JoinToken::create(&secret, &"ab".repeat(32), JoinKind::Agent, now + 3600, [3; 8]);
    let cases = [(expired, "expired 2m"), (forged, "secret does not match"), (foreign, "the token was not sent")];
    for (i, (token, needle)) in cases.into_iter().enumerate() {
        let config = joining_config(&cluster, &format!("bad-{i}"), &token.to_string());
        let err = match medos::agent::start(config.clone(), Arc::new(FakeContainers::default())).await {
            Ok(_) => panic!("{needle}: the agent started"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        assert!(err.contains("join"), "{err}");
        for path in [&config.tls.ca, &config.tls.cert, &config.tls.key] {
            assert!(!path.exists(), "{} was written", path.display());
        }
    }

    // No certificate and no token: the error says how to get either.
    let mut config = joining_config(&cluster, "nothing", "unused");
    config.join_token = None;
    let err = medos::agent::start(config, Arc::new(FakeContainers::default())).await.err().unwrap().to_string();
    assert!(err.contains("join-token create") && err.contains("medos ca issue"), "{err}");
    cluster.shutdown().await;
}

/// Posts raw JSON to `POST /v1/join` on `url`, trusting the cluster CA.
async fn post_join(cluster: &TestCluster, url: &str, body: &str) -> (u16, serde_json::Value) {
    let tls = medos::pki::tls::client_config_for_ca(&cluster.ca_pem()).unwrap();
    let http = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    let resp = http
        .post(format!("{url}/v1/join"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_join_requests_get_4xx_naming_the_field() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let url = cluster.url("m1");
    let token = create_token(&cluster, false).await;
    let forged = JoinToken::create(
        &medos::auth::new_token_secret(),
        &ca_fingerprint(&cluster),
        JoinKind::Agent,
        medos::clock::now_secs() + 60,
        [4; 8],
    )
    .to_string();
    let foreign = JoinToken::create(
        &cluster_secret(&cluster),
        &"cd".repeat(32),
        JoinKind::Agent,
        medos::clock::now_secs() + 60,
        [5; 8],
    )
    .to_string();
    let good = |token: &str, csr: &str, name: &str, hosts: &[&str]| {
        serde_json::json!({ "token": token, "csr": csr, "name": name, "hosts": hosts }).to_string()
    };
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "invalid JSON"),
        (serde_json::json!({ "token": token, "name": "a" }).to_string(), 400, "csr"),
        (serde_json::json!({ "token": token, "csr": csr(), "name": "a", "extra": 1 }).to_string(), 400, "extra"),
        (good("K10abc::server:password", &csr(), "a", &[]), 400, "token: join token is malformed"),
        (good(&forged, &csr(), "a", &[]), 401, "secret does not match"),
        (good(&foreign, &csr(), "a", &[]), 401, "this cluster's CA has fingerprint"),
        (good(&token, "not a csr", "a", &[]), 400, "csr:"),
        (good(&token, &csr(), "a b", &[]), 400, "name:"),
        (good(&token, &csr(), "a", &["10.0.0.1", "bad host"]), 400, "hosts[1]"),
        (good(&token, &"x".repeat(20_000), "a", &[]), 400, "csr:"),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = post_join(&cluster, &url, &body).await;
        let message = answer["message"].as_str().unwrap_or_default().to_string();
        assert_eq!(got, status, "{needle}: {answer}");
        assert!(message.contains(needle), "expected {needle:?} in {message:?}");
        if status == 401 {
            assert_eq!(answer["code"], ERR_INVALID_JOIN_TOKEN);
        }
    }
    // A good request gets a certificate for the requested name and hosts.
    let (got, answer) = post_join(&cluster, &url, &good(&token, &csr(), "a", &["10.0.0.1"])).await;
    assert_eq!(got, 200, "{answer}");
    assert!(answer["certificate"].as_str().unwrap().contains("BEGIN CERTIFICATE"));

    // Creating tokens needs a login, and a lifetime within bounds.
    let anonymous = medos::api::client::Client::new(vec![url.clone()], &cluster.ca_pem(), None).unwrap();
    let err = anonymous.create_join_token(&CreateJoinToken { ttl_seconds: 3600, public: false }).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    let client = cluster.client("m1").await;
    let err = client.create_join_token(&CreateJoinToken { ttl_seconds: 5, public: false }).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("ttl_seconds"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_without_the_ca_key_refuses_joins_and_a_wrong_key_refuses_to_start() {
    let cluster = TestCluster::start_with_ca_key(1, fast_tuning(), false).await;
    let client = cluster.client("m1").await;
    let created = client.create_join_token(&CreateJoinToken { ttl_seconds: 600, public: false }).await.unwrap();
    assert!(!created.served_by_signs, "the answer tells the operator this master cannot sign");

    let config = joining_config(&cluster, "orphan", &created.token);
    let err = medos::agent::start(config.clone(), Arc::new(FakeContainers::default())).await.err().unwrap().to_string();
    assert!(err.contains("ca_key") && err.contains("m1"), "{err}");
    assert!(!config.tls.key.exists());
    let body = serde_json::json!({ "token": created.token, "csr": csr(), "name": "orphan" }).to_string();
    let (status, answer) = post_join(&cluster, &cluster.url("m1"), &body).await;
    assert_eq!(status, 501, "{answer}");
    assert_eq!(answer["code"], ERR_NO_CA_KEY);

    // A ca_key that is not the key of tls.ca stops the master at start, naming the setting.
    let other = tempfile::tempdir().unwrap();
    medos::pki::Ca::init(other.path(), "other").unwrap();
    let mut config = cluster.nodes["m1"].config.clone();
    config.ca_key = Some(other.path().join("ca.key"));
    config.data_dir = other.path().join("data");
    let err = match medos::master::start(config, None, None).await {
        Ok(_) => panic!("a master started with another CA's key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("ca_key") && err.contains("does not belong"), "{err}");
    cluster.shutdown().await;
}
