//! Cosmos's package API on a real in-process master with a fake agent: repositories uploaded
//! from the test Universe (directory and index file) and fetched from http and https URLs
//! (the test CA's certificate accepted, another CA's refused), priorities, search, describe,
//! list-versions, render, install → labelled Marathon app → task RUNNING → list → uninstall,
//! and bad input (schema violations with paths, unknown packages and versions, templates that
//! render invalid JSON, an app that exists) answered with Cosmos's errors and nothing created.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use medos::agent::fake::FakeContainers;
use medos::api::client::{Client, ClientError};
use medos::core::TaskState;
use reqwest::Method;
use serde_json::{Map, Value, json};
use support::{TestCluster, fast_tuning, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn data() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/packages"))
}

fn options(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// A Cosmos error's status and type.
fn cosmos_error(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api { status, body } => (status, body.code, body.message),
        other => panic!("expected an API error, got {other}"),
    }
}

/// POSTs raw JSON to a Cosmos path with the given media types; status, content type, body.
async fn post(client: &Client, path: &str, content_type: &str, accept: &str, body: Value) -> (u16, String, Value) {
    let resp = client
        .send_with(Method::POST, path, Some(reqwest::Body::from(body.to_string())), Some(content_type), Some(accept))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.bytes().await.unwrap();
    (status, ctype, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn app_ids(client: &Client) -> Vec<String> {
    let mut ids: Vec<String> =
        client.marathon_apps().await.unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packages_install_run_list_and_uninstall() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let _agent =
        medos::agent::start(cluster.agent_config("agent-1"), Arc::new(FakeContainers::default())).await.unwrap();
    cluster.wait_active_agents(1, WAIT).await;
    let master = cluster.any_master();
    let client = cluster.client("m1").await;

    // Capabilities, and 401 without a token.
    let resp = client.send(Method::GET, "/capabilities", None, false).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1");
    let caps: Value = resp.json().await.unwrap();
    assert_eq!(caps, json!({"capabilities": [{"name": "PACKAGE_MANAGEMENT"}]}));
    let anonymous = Client::new(vec![cluster.url("m1")], &cluster.ca_pem(), None).unwrap();
    assert_eq!(cosmos_error(anonymous.package_repo_list().await.unwrap_err()).0, 401);

    // The default list is empty: nothing to find.
    assert!(client.package_repo_list().await.unwrap().is_empty());
    let (status, kind, message) = cosmos_error(client.package_describe("hello", None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "PackageNotFound"));
    assert_eq!(message, "Package [hello] not found");

    // Upload the Universe directory, then the index file with one description changed.
    let (repo, doc) = medos::packages::local::read_repository(&data().join("universe")).unwrap();
    assert!(repo.packages.len() >= 4);
    let list = client.package_repo_upload("universe", &doc, None).await.unwrap();
    assert_eq!(list[0].uri, "cluster:universe");
    let (_, mut index) = medos::packages::local::read_repository(&data().join("index.json")).unwrap();
    for p in index["packages"].as_array_mut().unwrap() {
        if p["name"] == "hello" && p["version"] == "1.1.0" {
            p["description"] = json!("from the index");
        }
    }
    client.package_repo_upload("index", &index, None).await.unwrap();
    assert_eq!(
        client.package_describe("hello", None).await.unwrap().description,
        repo.packages.iter().find(|p| p.name == "hello" && p.version == "1.1.0").unwrap().description
    );
    // Same name again: 409; index out of range: 400; nothing changed.
    let (status, kind, _) = cosmos_error(client.package_repo_upload("index", &index, None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (409, "RepositoryAlreadyPresent"));
    let (status, kind, _) = cosmos_error(client.package_repo_upload("other", &index, Some(7)).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "RepositoryAddIndexOutOfBounds"));
    assert_eq!(client.package_repo_list().await.unwrap().len(), 2);
    // Reorder: the index first now wins.
    client.package_repo_remove("index").await.unwrap();
    let list = client.package_repo_upload("index", &index, Some(0)).await.unwrap();
    assert_eq!(list.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["index", "universe"]);
    assert_eq!(client.package_describe("hello", Some("1.1.0")).await.unwrap().description, "from the index");
    // A broken index is refused with the field, before anything is stored.
    let broken = json!({"packages": [{"packagingVersion": "4.0", "name": "x"}]});
    let (status, _, message) = cosmos_error(client.package_repo_upload("broken", &broken, None).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("packages[0]"), "{message}");
    assert_eq!(client.package_repo_list().await.unwrap().len(), 2);

    // Search, list-versions, describe v1 with its media type, render.
    let found = client.package_search(Some("greet")).await.unwrap();
    assert_eq!(found.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["hello"]);
    assert_eq!(found[0].current_version, "1.1.0");
    let all = client.package_search(None).await.unwrap();
    assert_eq!(all[0].name, "web-proxy", "selected packages come first");
    let versions = client.package_list_versions("hello").await.unwrap();
    assert_eq!(versions, [("1.0.0".to_string(), "0".to_string()), ("1.1.0".to_string(), "1".to_string())].into());
    let (status, ctype, v1) = post(
        &client,
        "/package/describe",
        "application/json",
        "application/vnd.dcos.package.describe-response+json;charset=utf-8;version=v1",
        json!({"packageName": "hello"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/vnd.dcos.package.describe-response+json;charset=utf-8;version=v1");
    assert!(v1["marathonMustache"].as_str().unwrap().contains("{{service.name}}"));
    assert_eq!(v1["package"]["name"], "hello");
    assert_eq!(v1["config"]["type"], "object");
    let (status, _, wrong) = post(
        &client,
        "/package/search",
        "text/plain",
        "application/vnd.dcos.package.search-response+json;charset=utf-8;version=v1",
        json!({}),
    )
    .await;
    assert_eq!((status, wrong["type"].as_str()), (415, Some("UnsupportedContentType")));
    let rendered = client
        .package_render("hello", None, Some(&options(json!({"service": {"name": "/rendered", "debug": true}}))), None)
        .await
        .unwrap();
    assert_eq!(rendered["id"], "/rendered");
    assert_eq!(rendered["env"]["DEBUG"], "true");
    assert_eq!(rendered["labels"]["DCOS_PACKAGE_NAME"], "hello");
    assert_eq!(rendered["labels"]["DCOS_PACKAGE_SOURCE"], "cluster:index");

    // Schema violations: 400 with every path, no app.
    let (status, ctype, body) = post(
        &client,
        "/package/install",
        "application/vnd.dcos.package.install-request+json;charset=utf-8;version=v1",
        "application/vnd.dcos.package.install-response+json;charset=utf-8;version=v2",
        json!({"packageName": "hello", "packageVersion": "1.1.0",
               "options": {"service": {"cpus": 0.01, "mode": "turbo"}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(ctype, "application/vnd.dcos.package.error+json;charset=utf-8;version=v1");
    assert_eq!(body["type"], "JsonSchemaMismatch");
    let paths: Vec<&str> =
        body["data"]["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/service/cpus") && paths.contains(&"/service/mode"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("/service/cpus"));
    // Unknown package and version.
    let e = client.package_install("nope", None, None, None).await.unwrap_err();
    assert_eq!(cosmos_error(e).1, "PackageNotFound");
    let (status, kind, message) =
        cosmos_error(client.package_install("hello", Some("9.9"), None, None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "VersionNotFound"));
    assert_eq!(message, "Version [9.9] of package [hello] not found");

    // A package added to `local` whose template renders invalid JSON: a clear error, no app.
    let broken_template = "{\"id\": \"/broken\", \"cpus\": {{cpus}}, \"mem\": 32, \"cmd\": \"true\"}";
    let added = client
        .package_add(&json!({
            "packagingVersion": "4.0", "name": "broken", "version": "1", "maintainer": "m@example.com",
            "description": "renders invalid JSON", "tags": [],
            "marathon": {"v2AppMustacheTemplate": base64(broken_template)},
        }))
        .await
        .unwrap();
    assert_eq!(added["releaseVersion"], 0);
    let list = client.package_repo_list().await.unwrap();
    assert_eq!(list.last().unwrap().name, "local");
    assert_eq!(list.last().unwrap().uri, "cluster:local");
    let (status, kind, message) = cosmos_error(client.package_install("broken", None, None, None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "MarathonTemplateMustBeJsonObject"));
    assert!(message.contains("not valid JSON"), "{message}");
    // A package that is not a package: refused with the field.
    let (status, _, message) = cosmos_error(client.package_add(&json!({"name": "x"})).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("packagingVersion"), "{message}");
    assert!(app_ids(&client).await.is_empty(), "nothing was installed");

    // Install with options: the app exists with Cosmos's labels and its task runs.
    let installed = client
        .package_install("hello", Some("1.0.0"), Some(&options(json!({"service": {"name": "/greeter"}}))), None)
        .await
        .unwrap();
    assert_eq!((installed.app_id.as_str(), installed.package_version.as_str()), ("/greeter", "1.0.0"));
    let app = client.marathon(Method::GET, "/v2/apps/greeter", None).await.unwrap();
    let labels = &app["app"]["labels"];
    assert_eq!(labels["DCOS_PACKAGE_NAME"], "hello");
    assert_eq!(labels["DCOS_PACKAGE_VERSION"], "1.0.0");
    assert!(labels["DCOS_PACKAGE_DEFINITION"].as_str().is_some_and(|s| !s.is_empty()));
    wait_for("the package's task to run", WAIT, || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            state
                .tasks
                .values()
                .any(|t| t.app_id.as_deref() == Some("/greeter") && t.state == TaskState::TASK_RUNNING)
                .then_some(())
        }
    })
    .await;
    // The same app again: 409. Another id: a second instance.
    let (status, kind, _) = cosmos_error(
        client
            .package_install("hello", Some("1.0.0"), Some(&options(json!({"service": {"name": "/greeter"}}))), None)
            .await
            .unwrap_err(),
    );
    assert_eq!((status, kind.as_str()), (409, "MarathonAppAlreadyExists"));
    let second = client.package_install("web-proxy", None, None, Some("/edge/proxy")).await.unwrap();
    assert_eq!(second.post_install_notes.as_deref(), Some("The proxy listens on its port."));
    client.package_install("hello", Some("1.0.0"), None, Some("/greeter-2")).await.unwrap();

    // list reads the labels.
    let list = client.package_list(None, None).await.unwrap();
    let rows: Vec<(String, String, String)> = list
        .iter()
        .map(|i| {
            let d = &i.package_information.package_definition;
            (i.app_id.clone(), d["name"].as_str().unwrap().into(), d["version"].as_str().unwrap().into())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("/edge/proxy".into(), "web-proxy".into(), "0.9".into()),
            ("/greeter".into(), "hello".into(), "1.0.0".into()),
            ("/greeter-2".into(), "hello".into(), "1.0.0".into()),
        ]
    );
    assert_eq!(client.package_list(Some("hello"), Some("/greeter-2")).await.unwrap().len(), 1);

    // Uninstall: ambiguous, unknown app id, then the one, then all.
    let (status, kind, message) = cosmos_error(client.package_uninstall("hello", None, false).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "AmbiguousAppId"));
    assert!(message.contains("/greeter") && message.contains("/greeter-2"), "{message}");
    let (_, kind, _) = cosmos_error(client.package_uninstall("hello", Some("/nope"), false).await.unwrap_err());
    assert_eq!(kind, "UninstallNonExistentAppForPackage");
    let removed = client.package_uninstall("web-proxy", None, false).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].app_id, "/edge/proxy");
    let removed = client.package_uninstall("hello", None, true).await.unwrap();
    assert_eq!(removed.iter().map(|r| r.app_id.as_str()).collect::<Vec<_>>(), ["/greeter", "/greeter-2"]);
    assert_eq!(removed[0].package_version.as_deref(), Some("1.0.0"));
    wait_for("the package's apps and tasks to go", WAIT, || {
        let m = master.clone();
        async move {
            let state = m.state.read().unwrap();
            let running = state.tasks.values().any(|t| !t.state.is_terminal() && t.app_id.is_some());
            (state.marathon.apps.is_empty() && !running).then_some(())
        }
    })
    .await;
    assert!(client.package_list(None, None).await.unwrap().is_empty());
    let (_, kind, _) = cosmos_error(client.package_uninstall("hello", None, false).await.unwrap_err());
    assert_eq!(kind, "PackageNotInstalled");
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Serves `body` for every request over plain TCP or TLS (HTTP/1.1, one request a connection).
async fn serve(body: Vec<u8>, status: &'static str, tls: Option<(String, String)>) -> String {
    serve_with(body, status, tls, String::new()).await
}

/// [`serve`] with more header lines (each ending in `\r\n`).
async fn serve_with(body: Vec<u8>, status: &'static str, tls: Option<(String, String)>, headers: String) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.as_ref().map(|(cert, key)| {
        medos::pki::install_crypto_provider();
        let certs = medos::pki::tls::certs_from_pem(cert.as_bytes(), Path::new("cert")).unwrap();
        use rustls_pki_types::pem::PemObject as _;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let body = body.clone();
            let headers = headers.clone();
            tokio::spawn(async move {
                let response = |mut s: Box<dyn Stream>| async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/vnd.dcos.universe.repo+json;charset=utf-8;version=v4\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                    let _ = s.shutdown().await;
                };
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(stream).await {
                            response(Box::new(s)).await;
                        }
                    }
                    None => response(Box::new(stream)).await,
                }
            });
        }
    });
    format!("{scheme}://{addr}/repo.json")
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn url_repositories_are_fetched_with_verified_tls() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let client = cluster.client("m1").await;
    let index = std::fs::read(data().join("index.json")).unwrap();

    let http = serve(index.clone(), "200 OK", None).await;
    let list = client.package_repo_add("plain", &http, None).await.unwrap();
    assert_eq!(list[0].uri, http);
    assert!(client.package_search(Some("hello")).await.unwrap().iter().any(|r| r.name == "hello"));

    // https with a certificate from the cluster CA: trusted.
    let https = serve(index.clone(), "200 OK", Some(cluster.issue_server_pem("repo-server"))).await;
    let list = client.package_repo_add("secure", &https, Some(0)).await.unwrap();
    assert_eq!(list[0].name, "secure");
    assert_eq!(client.package_describe("hello", None).await.unwrap().version, "1.1.0");
    let rendered = client.package_render("web-proxy", None, None, None).await.unwrap();
    assert_eq!(rendered["labels"]["DCOS_PACKAGE_SOURCE"], https.as_str(), "the first repository wins");

    // Another CA's certificate: refused, naming the URL; nothing added.
    let dir = tempfile::tempdir().unwrap();
    let other = medos::pki::Ca::init(dir.path(), "other").unwrap();
    let pem = other.issue_pem(medos::pki::Role::Master, "rogue", &["127.0.0.1".into()]).unwrap();
    let rogue = serve(index.clone(), "200 OK", Some(pem)).await;
    let (status, kind, message) = cosmos_error(client.package_repo_add("rogue", &rogue, None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "RepositoryUriConnection"));
    assert!(message.contains(&rogue), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    // Redirects: followed from http to https, never from https down to http.
    let up = serve_with(Vec::new(), "302 Found", None, format!("location: {https}\r\n")).await;
    client.package_repo_add("up", &up, None).await.unwrap();
    client.package_repo_remove("up").await.unwrap();
    let down =
        serve_with(Vec::new(), "302 Found", Some(cluster.issue_server_pem("down")), format!("location: {http}\r\n"))
            .await;
    let (_, kind, message) = cosmos_error(client.package_repo_add("down", &down, None).await.unwrap_err());
    assert_eq!(kind, "RepositoryUriConnection");
    assert!(message.contains(&down) && message.contains("redirect"), "{message}");

    // A 404, an index that is not one, a URI that is not a URL.
    let missing = serve(b"nothing here".to_vec(), "404 Not Found", None).await;
    let (_, _, message) = cosmos_error(client.package_repo_add("missing", &missing, None).await.unwrap_err());
    assert!(message.contains(&missing) && message.contains("404"), "{message}");
    let junk = serve(br#"{"packages": [{"packagingVersion": "9.0"}]}"#.to_vec(), "200 OK", None).await;
    let (_, _, message) = cosmos_error(client.package_repo_add("junk", &junk, None).await.unwrap_err());
    assert!(message.contains(&junk) && message.contains("packagingVersion"), "{message}");
    let (status, kind, _) = cosmos_error(client.package_repo_add("file", "./repo.json", None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (400, "UnsupportedRepositoryUri"));
    let names: Vec<String> = client.package_repo_list().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["secure", "plain"]);

    // Delete by name; an unknown name is an error.
    client.package_repo_remove("plain").await.unwrap();
    let (_, kind, _) = cosmos_error(client.package_repo_remove("plain").await.unwrap_err());
    assert_eq!(kind, "RepositoryNotPresent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_master_serves_the_same_repositories_and_the_size_is_capped() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let (m1, m2, m3) = (cluster.client("m1").await, cluster.client("m2").await, cluster.client("m3").await);
    let (_, doc) = medos::packages::local::read_repository(&data().join("universe")).unwrap();
    m1.package_repo_upload("universe", &doc, None).await.unwrap();
    m2.package_add(&json!({
        "packagingVersion": "3.0", "name": "extra", "version": "2.0", "maintainer": "m@example.com",
        "description": "added through another master", "tags": ["extra"],
    }))
    .await
    .unwrap();
    for client in [&m1, &m2, &m3] {
        let names: Vec<String> = client.package_search(None).await.unwrap().into_iter().map(|r| r.name).collect();
        assert!(names.contains(&"extra".to_string()) && names.contains(&"hello".to_string()), "{names:?}");
        let repos: Vec<String> = client.package_repo_list().await.unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(repos, ["universe", "local"]);
    }
    // A second package of the same name gets the next release number.
    let again = m3
        .package_add(&json!({
            "packagingVersion": "4.0", "name": "extra", "version": "2.1", "maintainer": "m@example.com",
            "description": "newer", "tags": [],
        }))
        .await
        .unwrap();
    assert_eq!(again["releaseVersion"], 1);
    assert_eq!(m1.package_describe("extra", None).await.unwrap().version, "2.1");

    // Over 8 MiB of index: refused with the size, nothing added.
    let huge = json!({"packages": [{
        "packagingVersion": "4.0", "name": "huge", "version": "1", "releaseVersion": 0,
        "maintainer": "m@example.com", "description": "x".repeat(8 * 1024 * 1024 + 10), "tags": [],
    }]});
    let (status, kind, message) = cosmos_error(m2.package_repo_upload("huge", &huge, None).await.unwrap_err());
    assert_eq!((status, kind.as_str()), (413, "RepositoryTooLarge"));
    assert!(message.contains("8 MiB"), "{message}");
    assert_eq!(m1.package_repo_list().await.unwrap().len(), 2);
    // A large index within the cap goes through the followers' forwarding too.
    let big = json!({"packages": [{
        "packagingVersion": "4.0", "name": "big", "version": "1", "releaseVersion": 0,
        "maintainer": "m@example.com", "description": "x".repeat(6 * 1024 * 1024), "tags": [],
    }]});
    m3.package_repo_upload("big", &big, None).await.unwrap();
    assert_eq!(m1.package_describe("big", None).await.unwrap().description.len(), 6 * 1024 * 1024);
}
