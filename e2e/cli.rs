//! The CLI's contract with scripts: exit codes, raw values on stdout, JSON shapes, the
//! message without a cluster, and configuration through the environment alone.

use crate::support::{DevCluster, cli, shared_slot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_contract_for_scripts() {
    let _slot = shared_slot().await;
    let cluster = DevCluster::start(3).await;

    // put exits 0; get prints exactly the raw value (no newline added when not a terminal).
    let value = "hello wörld \t with spaces";
    let put = cluster.cli(&["kv", "put", "cli/greeting", value]).await.success("medos kv put");
    assert!(put.stdout.is_empty(), "put prints nothing without --json: {:?}", put.stdout_text());
    let got = cluster.cli(&["kv", "get", "cli/greeting"]).await.success("medos kv get");
    assert_eq!(got.stdout, value.as_bytes());
    cluster.cli(&["kv", "put", "cli/newline", "line\n"]).await.success("put with a newline");
    assert_eq!(cluster.cli(&["kv", "get", "cli/newline"]).await.success("get").stdout, b"line\n");
    let missing = cluster.cli(&["kv", "get", "cli/absent"]).await;
    assert!(!missing.status.success() && missing.stdout.is_empty(), "a missing key fails: {missing:?}");
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);
    let json = cluster.cli(&["--json", "kv", "put", "cli/json", "v"]).await.success("put --json").json();
    assert!(json["revision"].as_u64().is_some_and(|r| r > 0), "put --json reports the revision: {json}");

    // cluster status --json: leader and members match cluster.json.
    let file: medos::dev::ClusterFile =
        serde_json::from_str(&std::fs::read_to_string(cluster.dir.join("cluster.json")).unwrap()).unwrap();
    let mut expected: Vec<String> = file.nodes.iter().filter(|n| n.role == "master").map(|n| n.name.clone()).collect();
    expected.sort();
    let status = cluster.cli(&["--json", "cluster", "status"]).await.success("cluster status").json();
    let mut names: Vec<String> = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, expected);
    let leader = status["leader"].as_str().expect("a leader");
    assert!(expected.iter().any(|n| n == leader), "leader {leader} is one of {expected:?}");
    assert_eq!(status["cluster_id"], cluster.cluster_id.as_str());

    // No cluster configured: a clear pointer to `medos cluster setup` or `medos dev`.
    let empty = tempfile::tempdir().unwrap();
    let out = cli(empty.path(), &[], &["kv", "get", "x"]).await;
    assert!(!out.status.success());
    assert!(out.stderr.contains("medos cluster setup") || out.stderr.contains("medos dev"), "{}", out.stderr);

    // auth login with the password from the environment, then auth token.
    cli(
        &cluster.cli_config,
        &[("E2E_PASSWORD", &cluster.admin_password)],
        &["auth", "login", "--username", "admin", "--password-env", "E2E_PASSWORD"],
    )
    .await
    .success("medos auth login");
    let token = cluster.cli(&["auth", "token"]).await.success("medos auth token").stdout_text().trim().to_string();
    assert!(!token.is_empty());
    let bad = cli(
        &cluster.cli_config,
        &[("E2E_PASSWORD", "wrong-password")],
        &["auth", "login", "--username", "admin", "--password-env", "E2E_PASSWORD"],
    )
    .await;
    assert!(!bad.status.success(), "a wrong password fails");

    // MEDOS_URL + MEDOS_TOKEN + MEDOS_CA_FILE work without any config.
    let ca = cluster.dir.join("pki/ca.crt");
    let url = cluster.urls()[1].clone();
    let env = [("MEDOS_URL", url.as_str()), ("MEDOS_TOKEN", token.as_str()), ("MEDOS_CA_FILE", ca.to_str().unwrap())];
    cli(empty.path(), &env, &["kv", "put", "cli/env", "from env"]).await.success("put with env only");
    let got = cli(empty.path(), &env, &["kv", "get", "cli/env"]).await.success("get with env only");
    assert_eq!(got.stdout, b"from env");
    let status = cli(empty.path(), &env, &["--json", "cluster", "status"]).await.success("status with env only").json();
    assert_eq!(status["cluster_id"], cluster.cluster_id.as_str());
    let no_token =
        cli(empty.path(), &env[..1].iter().chain(&env[2..]).copied().collect::<Vec<_>>(), &["kv", "get", "cli/env"])
            .await;
    assert!(!no_token.status.success() && no_token.stderr.contains("401"), "no token: {no_token:?}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "env-only use writes no config");
}
