//! Issue 6's "Done when" on `medos dev --agents 1` (root: the agent runs real processes): the
//! test Universe directory added with `medos package repo add`, a package installed with an
//! options file, its Marathon app's task RUNNING, `medos package list` showing it, and
//! `medos package uninstall` removing it; an options file that breaks the schema refused with
//! the file and the option path, nothing installed.

use reqwest::Method;
use serde_json::Value;

use crate::support::{CONDITION_TIMEOUT, DevCluster, eventually, shared_slot};

fn universe() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/packages/universe").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_installs_with_options_runs_lists_and_uninstalls() {
    let _slot = shared_slot().await;
    let c = DevCluster::start_with_agents(1, 1).await;
    let client = c.client();

    let out = c.cli(&["package", "repo", "add", "universe", &universe()]).await.success("medos package repo add");
    assert!(out.stdout_text().contains("cluster:universe"), "{}", out.stdout_text());
    let repos = c.cli(&["--json", "package", "repo", "list"]).await.success("medos package repo list").json();
    assert_eq!(repos["repositories"][0]["name"], "universe", "{repos}");
    let found = c.cli(&["package", "search", "proxy"]).await.success("medos package search").stdout_text();
    assert!(found.contains("web-proxy"), "{found}");

    // Options that break the schema: refused, naming the file and the option; nothing created.
    let bad = c.dir.join("bad-options.json");
    std::fs::write(&bad, r#"{"proxy": {"port": 0}}"#).unwrap();
    let refused = c.cli(&["package", "install", "web-proxy", "--options", bad.to_str().unwrap(), "--yes"]).await;
    assert!(!refused.status.success(), "install with bad options succeeded: {}", refused.stdout_text());
    assert!(
        refused.stderr.contains("bad-options.json") && refused.stderr.contains("/proxy/port"),
        "{}",
        refused.stderr
    );
    let apps = client.marathon(Method::GET, "/v2/apps", None).await.unwrap();
    assert_eq!(apps["apps"], Value::Array(vec![]), "nothing installed");

    // Install with options: a long-running command in place of the proxy's.
    let options = c.dir.join("options.json");
    std::fs::write(&options, r#"{"proxy": {"name": "/e2e/proxy", "command": "sleep 600;"}}"#).unwrap();
    let out = c
        .cli(&["package", "install", "web-proxy", "--options", options.to_str().unwrap(), "--yes"])
        .await
        .success("medos package install");
    let text = out.stdout_text();
    assert!(text.contains("Installed package web-proxy version 0.9 as Marathon app /e2e/proxy"), "{text}");
    assert!(text.contains("The proxy listens on its port."), "post-install notes: {text}");

    eventually("the package's task to run", CONDITION_TIMEOUT, || {
        let client = &client;
        async move {
            let app = client.marathon(Method::GET, "/v2/apps/e2e/proxy", None).await.map_err(|e| e.to_string())?;
            let tasks = app["app"]["tasks"].as_array().cloned().unwrap_or_default();
            if tasks.iter().any(|t| t["state"] == "TASK_RUNNING") { Ok(()) } else { Err(format!("tasks: {tasks:?}")) }
        }
    })
    .await;
    let app = client.marathon(Method::GET, "/v2/apps/e2e/proxy", None).await.unwrap();
    assert_eq!(app["app"]["labels"]["DCOS_PACKAGE_NAME"], "web-proxy");
    assert!(app["app"]["cmd"].as_str().unwrap().contains("sleep 600"), "{}", app["app"]["cmd"]);

    let listed = c.cli(&["--json", "package", "list"]).await.success("medos package list").json();
    assert_eq!(listed[0]["appId"], "/e2e/proxy", "{listed}");
    assert_eq!(listed[0]["packageInformation"]["packageDefinition"]["name"], "web-proxy", "{listed}");
    let table = c.cli(&["package", "list"]).await.success("medos package list").stdout_text();
    assert!(table.contains("web-proxy") && table.contains("/e2e/proxy"), "{table}");

    // The other read commands, and no silent removal without --yes and without a terminal.
    let schema = c.cli(&["package", "describe", "web-proxy", "--config"]).await.success("describe --config").json();
    assert_eq!(schema["properties"]["proxy"]["properties"]["port"]["default"], 80, "{schema}");
    let template = c.cli(&["package", "describe", "web-proxy", "--app"]).await.success("describe --app").stdout_text();
    assert!(template.contains("{{proxy.command}}"), "{template}");
    let versions = c.cli(&["package", "list-versions", "hello"]).await.success("list-versions").stdout_text();
    assert!(versions.contains("1.0.0") && versions.contains("1.1.0"), "{versions}");
    let rendered = c
        .cli(&["package", "render", "web-proxy", "--options", options.to_str().unwrap()])
        .await
        .success("medos package render")
        .json();
    assert_eq!(rendered["id"], "/e2e/proxy", "{rendered}");
    let asked = c.cli(&["package", "uninstall", "web-proxy"]).await;
    assert!(!asked.status.success() && asked.stderr.contains("--yes"), "{}", asked.stderr);

    let out = c.cli(&["package", "uninstall", "web-proxy", "--yes"]).await.success("medos package uninstall");
    let text = out.stdout_text();
    assert!(text.contains("Uninstalled package web-proxy version 0.9 (removed Marathon app /e2e/proxy)"), "{text}");
    eventually("the app and its task to go", CONDITION_TIMEOUT, || {
        let client = &client;
        async move {
            let apps = client.marathon(Method::GET, "/v2/apps", None).await.map_err(|e| e.to_string())?;
            let tasks = client.tasks(false).await.map_err(|e| e.to_string())?;
            let live = tasks.iter().filter(|t| t.app_id.is_some()).count();
            if apps["apps"].as_array().is_some_and(|a| a.is_empty()) && live == 0 {
                Ok(())
            } else {
                Err(format!("apps {apps}, {live} live tasks"))
            }
        }
    })
    .await;
    let listed = c.cli(&["--json", "package", "list"]).await.success("medos package list").json();
    assert_eq!(listed, Value::Array(vec![]));
}
