//! Bad input to the binary and to the HTTP API: clean non-zero exits that name the problem,
//! never a panic, never a modified data dir; clean 4xx answers, and a master that keeps
//! serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use medos::api::error::ErrorBody;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::support::{DevCluster, MEDOS, cli, free_port, shared_slot};

/// Every file under `dir` (relative path -> size and SHA-256), and every directory.
fn fingerprint_tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).expect("listing the data dir").map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).expect("reading a data file");
                out.insert(rel, format!("{} bytes sha256 {}", bytes.len(), hex::encode(Sha256::digest(&bytes))));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs `medos ARGS`, which must fail within 30 s; returns its stderr after checking there
/// was no panic.
async fn master_must_fail(args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new(MEDOS);
    cmd.args(args).env_remove("MEDOS_LOG").stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("medos {args:?} kept running; it should have refused to start"))
        .expect("running medos");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "medos {args:?} succeeded; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "medos {args:?} panicked:\n{stderr}");
    stderr
}

/// A master config as TOML.
fn master_toml(name: &str, data_dir: &Path, port: u16, pki: &Path, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n{extra}\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        data_dir.display(),
        pki.join("ca.crt").display(),
        pki.join(format!("{name}.crt")).display(),
        pki.join(format!("{name}.key")).display(),
    )
}

/// Runs a master invocation that must fail, and reports whether `data_dir` changed.
async fn refused(args: &[&str], data_dir: &Path) -> (String, Option<String>) {
    let before = fingerprint_tree(data_dir);
    let stderr = master_must_fail(args).await;
    let after = fingerprint_tree(data_dir);
    let change = (after != before)
        .then(|| format!("medos {args:?} changed {}:\nbefore {before:#?}\nafter {after:#?}", data_dir.display()));
    (stderr, change)
}

/// Writes config files into a scratch dir.
struct Configs(tempfile::TempDir);

impl Configs {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// A stopped one-master dev cluster holding the key `bad-input/kept`.
async fn stopped_cluster() -> DevCluster {
    let mut cluster = DevCluster::start(1).await;
    cluster.client().kv_put("bad-input/kept", b"1", None).await.expect("put");
    let status = cluster.stop_dev().await;
    assert!(status.success());
    cluster
}

/// The cluster comes back on its data dir with its state.
async fn assert_data_dir_still_good(cluster: &mut DevCluster) {
    cluster.restart_dev().await;
    let item = cluster.client().kv_get("bad-input/kept", false).await.expect("read").expect("key kept");
    assert_eq!(item.value, b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_and_flags_fail_cleanly_without_touching_the_data_dir() {
    let _slot = shared_slot().await;
    let configs = Configs::new();
    let mut cluster = DevCluster::start(1).await;
    let data_dir = cluster.master("master-1").data_dir.clone();
    let pki = cluster.dir.join("pki");

    // While the cluster runs: a second master on the same (locked) data dir.
    let locked = configs.write("locked.toml", &master_toml("master-1", &data_dir, free_port(), &pki, ""));
    let stderr = master_must_fail(&["master", "--config", &locked]).await;
    assert!(stderr.contains(&data_dir.display().to_string()), "names the data dir: {stderr}");
    cluster.client().kv_put("bad-input/kept", b"1", None).await.expect("the running master is unharmed");
    assert!(cluster.stop_dev().await.success());
    assert!(fingerprint_tree(&data_dir).len() > 1, "the data dir holds a database");

    // Malformed TOML.
    let malformed =
        configs.write("malformed.toml", &format!("data_dir = \"{}\"\nname = \"master-1\n", data_dir.display()));
    let (stderr, change) = refused(&["master", "--config", &malformed], &data_dir).await;
    assert!(stderr.contains(&malformed) && stderr.contains("invalid"), "names the file and the problem: {stderr}");
    assert_eq!(change, None);

    // An unknown flag.
    let good = configs.write("good.toml", &master_toml("master-1", &data_dir, free_port(), &pki, ""));
    let (stderr, change) = refused(&["master", "--config", &good, "--bogus-flag"], &data_dir).await;
    assert!(stderr.contains("--bogus-flag"), "names the flag: {stderr}");
    assert_eq!(change, None);

    // An unknown config key.
    let unknown =
        configs.write("unknown.toml", &master_toml("master-1", &data_dir, free_port(), &pki, "bogus_key = 1"));
    let (stderr, change) = refused(&["master", "--config", &unknown], &data_dir).await;
    assert!(stderr.contains("bogus_key"), "names the key: {stderr}");
    assert_eq!(change, None);

    // A data dir that is a file.
    let file = configs.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let on_file = configs.write("file.toml", &master_toml("master-1", &file, free_port(), &pki, ""));
    let stderr = master_must_fail(&["master", "--config", &on_file]).await;
    assert!(stderr.contains(&file.display().to_string()) && stderr.contains("not a directory"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory", "the file is untouched");

    assert_data_dir_still_good(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_cluster_or_master_is_refused_untouched() {
    let _slot = shared_slot().await;
    let configs = Configs::new();
    let mut cluster = stopped_cluster().await;
    let data_dir = cluster.master("master-1").data_dir.clone();
    let dev_pki = cluster.dir.join("pki");
    let mut changes = Vec::new();

    // The data dir of this cluster, but the CA of another one (`medos ca init` elsewhere).
    let other_pki = configs.path().join("other-pki");
    let other = other_pki.to_str().unwrap();
    cli(configs.path(), &[], &["ca", "init", "--dir", other]).await.success("medos ca init");
    let issue = ["ca", "issue", "--role", "master", "--host", "127.0.0.1", "--name"];
    cli(configs.path(), &[], &[&issue[..], &["master-1", "--ca-dir", other]].concat()).await.success("medos ca issue");
    let foreign = configs.write("foreign.toml", &master_toml("master-1", &data_dir, free_port(), &other_pki, ""));
    let (stderr, change) = refused(&["master", "--config", &foreign], &data_dir).await;
    assert!(stderr.contains("another cluster CA"), "explains the CA mismatch: {stderr}");
    changes.extend(change);

    // The right CA, but the name of another master.
    let renamed_pki = configs.path().join("renamed-pki");
    let (dev_pki_str, renamed_str) = (dev_pki.to_str().unwrap(), renamed_pki.to_str().unwrap());
    cli(configs.path(), &[], &[&issue[..], &["master-9", "--ca-dir", dev_pki_str, "--out", renamed_str]].concat())
        .await
        .success("medos ca issue");
    std::fs::copy(dev_pki.join("ca.crt"), renamed_pki.join("ca.crt")).unwrap();
    let renamed = configs.write("renamed.toml", &master_toml("master-9", &data_dir, free_port(), &renamed_pki, ""));
    let (stderr, change) = refused(&["master", "--config", &renamed], &data_dir).await;
    assert!(stderr.contains("belongs to master \"master-1\""), "names the owner: {stderr}");
    changes.extend(change);

    assert_data_dir_still_good(&mut cluster).await;
    assert!(changes.is_empty(), "a master that refused to start modified the data dir:\n{}", changes.join("\n"));
}

fn http_client(ca_pem: &[u8]) -> reqwest::Client {
    medos::pki::install_crypto_provider();
    let tls = medos::pki::tls::client_config_for_ca(ca_pem).expect("TLS config");
    reqwest::Client::builder().use_preconfigured_tls(tls).build().expect("reqwest client")
}

/// Checks the status and that the body is the JSON error shape; returns the body.
async fn expect_error(resp: reqwest::Response, status: StatusCode, what: &str) -> ErrorBody {
    assert_eq!(resp.status(), status, "{what}");
    let bytes = resp.bytes().await.expect("body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!("{what}: the error body is not the JSON error shape ({e}): {}", String::from_utf8_lossy(&bytes))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_clean_errors_and_the_master_keeps_serving() {
    let _slot = shared_slot().await;
    let cluster = DevCluster::start(1).await;
    let http = http_client(&cluster.ca_pem);
    let api = cluster.urls()[0].clone();
    let kv = |key: &str| format!("{api}/v1/kv/{key}");
    let login = format!("{api}/acs/api/v1/auth/login");
    let auth = format!("token={}", cluster.token);

    let r = http.get(kv("x")).send().await.unwrap();
    let body = expect_error(r, StatusCode::UNAUTHORIZED, "no token").await;
    assert_eq!(body.code, "ERR_MISSING_AUTH_HEADER");
    let r = http.get(kv("x")).header("Authorization", "token=garbage").send().await.unwrap();
    assert_eq!(expect_error(r, StatusCode::UNAUTHORIZED, "garbage token").await.code, "ERR_INVALID_TOKEN");
    // Well-formed, but signed by another cluster's secret.
    let forged = medos::auth::issue_token(&medos::auth::new_token_secret(), "admin", medos::auth::now_secs());
    let r = http.put(kv("x")).header("Authorization", format!("token={forged}")).body("v").send().await.unwrap();
    assert_eq!(expect_error(r, StatusCode::UNAUTHORIZED, "forged token").await.code, "ERR_INVALID_TOKEN");

    let r = http.post(&login).header("Content-Type", "application/json").body("this is not json").send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "non-JSON login body").await;
    let r = http.post(&login).body("this is not json").send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "login body without a content type").await;
    let r = http.post(&login).json(&serde_json::json!({"uid": "admin"})).send().await.unwrap();
    let body = expect_error(r, StatusCode::BAD_REQUEST, "login without a password").await;
    assert!(body.message.contains("password"), "names the missing field: {}", body.message);
    let r = http.post(&login).json(&serde_json::json!({"uid": "admin", "password": "wrong"})).send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "wrong password").await;

    let limit = 512 * 1024;
    let r = http.put(kv("big")).header("Authorization", &auth).body(vec![b'x'; limit + 1]).send().await.unwrap();
    let body = expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "a value of 512 KiB + 1").await;
    assert!(body.message.contains("524289"), "names the size: {}", body.message);
    // A body over the 1 MiB request limit is refused before it is read; the server then
    // closes the connection, so this uses a connection of its own, and the client may see the
    // close (while still sending) instead of the answer.
    let oversized = http_client(&cluster.ca_pem);
    match oversized.put(kv("big")).header("Authorization", &auth).body(vec![b'x'; 4 * limit]).send().await {
        Ok(r) => drop(expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "a 2 MiB body").await),
        Err(e) => println!("a 2 MiB body: the connection closed before the answer was read: {e}"),
    }
    let r = http.put(kv("big")).header("Authorization", &auth).body(vec![b'x'; limit]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "exactly 512 KiB is accepted");

    // Still serving.
    let r = http.put(kv("after")).header("Authorization", &auth).body("fine").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http.get(format!("{}?raw", kv("after"))).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"fine");
    let item = cluster.client().kv_get("big", false).await.unwrap().expect("the 512 KiB value");
    assert_eq!(item.value.len(), limit);
    let r = http.get(format!("{api}/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
