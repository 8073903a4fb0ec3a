//! The HTTP API against one in-process master: authentication, DC/OS documents, KV
//! semantics, and bad input answered with clear errors and no state change.

mod support;

use medos::api::error::ErrorBody;
use reqwest::StatusCode;
use support::{ADMIN, PASSWORD, TestCluster, fast_tuning};

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(cluster: &TestCluster) -> Self {
        medos::pki::install_crypto_provider();
        let tls = medos::pki::tls::client_config_for_ca(&cluster.ca_pem()).unwrap();
        let http = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
        let base = cluster.url("m1");
        let resp = http
            .post(format!("{base}/acs/api/v1/auth/login"))
            .json(&serde_json::json!({"uid": ADMIN, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        Api { http, base, token }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("token={}", self.token))
    }

    async fn error(resp: reqwest::Response, status: StatusCode) -> ErrorBody {
        assert_eq!(resp.status(), status);
        resp.json::<ErrorBody>().await.expect("errors have a JSON body")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_required_and_checked() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let api = Api::new(&cluster).await;
    let url = format!("{}/v1/kv/x", api.base);

    let none = api.http.get(&url).send().await.unwrap();
    assert_eq!(Api::error(none, StatusCode::UNAUTHORIZED).await.code, "ERR_MISSING_AUTH_HEADER");
    let bad = api.http.get(&url).header("Authorization", "token=not.a.jwt").send().await.unwrap();
    assert_eq!(Api::error(bad, StatusCode::UNAUTHORIZED).await.code, "ERR_INVALID_TOKEN");
    let forged = medos::auth::issue_token(&medos::auth::new_token_secret(), ADMIN, medos::auth::now_secs());
    let forged = api.http.get(&url).header("Authorization", format!("Bearer {forged}")).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // Both header forms are accepted with a real token.
    let bearer = api.http.get(&url).header("Authorization", format!("Bearer {}", api.token)).send().await.unwrap();
    assert_eq!(bearer.status(), StatusCode::NOT_FOUND);
    let dcos = api.req(reqwest::Method::GET, "/v1/kv/x").send().await.unwrap();
    assert_eq!(dcos.status(), StatusCode::NOT_FOUND);

    let wrong = api
        .http
        .post(format!("{}/acs/api/v1/auth/login", api.base))
        .json(&serde_json::json!({"uid": ADMIN, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    let body = Api::error(wrong, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body.code, "ERR_INVALID_CREDENTIALS");
    assert_eq!(body.title, "Unauthorized");

    // Internal endpoints need a master's client certificate, not a token.
    let internal = api.req(reqwest::Method::GET, "/internal/v1/identity").send().await.unwrap();
    assert_eq!(internal.status(), StatusCode::FORBIDDEN);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_can_be_created_used_and_removed() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let api = Api::new(&cluster).await;
    let put = api
        .req(reqwest::Method::PUT, "/acs/api/v1/users/ops")
        .json(&serde_json::json!({"password": "ops-password", "description": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let login = api
        .http
        .post(format!("{}/acs/api/v1/auth/login", api.base))
        .json(&serde_json::json!({"uid": "ops", "password": "ops-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let users: serde_json::Value =
        api.req(reqwest::Method::GET, "/acs/api/v1/users").send().await.unwrap().json().await.unwrap();
    let uids: Vec<&str> = users["array"].as_array().unwrap().iter().map(|u| u["uid"].as_str().unwrap()).collect();
    assert_eq!(uids, ["admin", "ops"]);

    let short = api
        .req(reqwest::Method::PUT, "/acs/api/v1/users/weak")
        .json(&serde_json::json!({"password": "short"}))
        .send()
        .await
        .unwrap();
    assert!(Api::error(short, StatusCode::BAD_REQUEST).await.message.contains("password"));
    let bad_uid = api
        .req(reqwest::Method::PUT, "/acs/api/v1/users/Bad%20Name")
        .json(&serde_json::json!({"password": "long-enough"}))
        .send()
        .await
        .unwrap();
    assert!(Api::error(bad_uid, StatusCode::BAD_REQUEST).await.message.contains("uid"));

    let del = api.req(reqwest::Method::DELETE, "/acs/api/v1/users/ops").send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let again = api.req(reqwest::Method::DELETE, "/acs/api/v1/users/ops").send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcos_discovery_documents_are_served_without_a_token() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let api = Api::new(&cluster).await;
    let meta: serde_json::Value =
        api.http.get(format!("{}/metadata", api.base)).send().await.unwrap().json().await.unwrap();
    let cluster_id = cluster.nodes["m1"].running.as_ref().unwrap().master.identity().cluster_id.unwrap();
    assert_eq!(meta["CLUSTER_ID"], cluster_id.as_str());
    assert_eq!(meta["PUBLIC_IPV4"], "127.0.0.1");
    let version: serde_json::Value = api
        .http
        .get(format!("{}/dcos-metadata/dcos-version.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(api.http.get(format!("{}/ping", api.base)).send().await.unwrap().text().await.unwrap(), "pong");
    let ca = api.http.get(format!("{}/ca.crt", api.base)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(ca.as_ref(), cluster.ca_pem().as_slice());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_lists_by_prefix_and_answers_raw_values() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let api = Api::new(&cluster).await;
    for (k, v) in [("app/a", "1"), ("app/b", "2"), ("apple", "3")] {
        let r = api.req(reqwest::Method::PUT, &format!("/v1/kv/{k}")).body(v).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let keys: Vec<String> =
        api.req(reqwest::Method::GET, "/v1/kv/app/?keys").send().await.unwrap().json().await.unwrap();
    assert_eq!(keys, ["app/a", "app/b"]);
    let raw = api.req(reqwest::Method::GET, "/v1/kv/app/b?raw").send().await.unwrap();
    assert!(raw.headers().contains_key("x-medos-index"));
    assert_eq!(raw.text().await.unwrap(), "2");
    let all: Vec<serde_json::Value> =
        api.req(reqwest::Method::GET, "/v1/kv?recurse").send().await.unwrap().json().await.unwrap();
    assert_eq!(all.len(), 3);
    let stale = api.req(reqwest::Method::GET, "/v1/kv/apple?stale=True").send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
    let del: serde_json::Value =
        api.req(reqwest::Method::DELETE, "/v1/kv/app/?recurse").send().await.unwrap().json().await.unwrap();
    assert_eq!(del["deleted"], 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let api = Api::new(&cluster).await;
    let master = cluster.nodes["m1"].running.as_ref().unwrap().master.clone();
    let before = master.state.read().unwrap().kv.clone();

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            api.http.post(format!("{}/acs/api/v1/auth/login", api.base)).body("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            api.http.post(format!("{}/acs/api/v1/auth/login", api.base)).json(&serde_json::json!({"uid": "a"})),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            api.req(reqwest::Method::PUT, "/v1/kv/big").body(vec![b'x'; 600 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "512",
        ),
        (api.req(reqwest::Method::PUT, "/v1/kv/k?cas=minus"), StatusCode::BAD_REQUEST, "cas"),
        (api.req(reqwest::Method::GET, "/v1/kv/k?stale=perhaps"), StatusCode::BAD_REQUEST, "stale"),
        (api.req(reqwest::Method::PUT, &format!("/v1/kv/{}", "k".repeat(600))), StatusCode::BAD_REQUEST, "512 bytes"),
        (api.req(reqwest::Method::PUT, "/v1/kv/a%0Ab"), StatusCode::BAD_REQUEST, "control character"),
        (
            api.req(reqwest::Method::POST, "/v1/masters").json(&serde_json::json!({"api": "http://plain"})),
            StatusCode::BAD_REQUEST,
            "https",
        ),
        (api.req(reqwest::Method::GET, "/v1/nowhere"), StatusCode::NOT_FOUND, "no such API path"),
    ];
    for (req, status, needle) in cases {
        let resp = req.send().await.unwrap();
        let got = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(got, status, "{body}");
        assert!(body.contains(needle), "expected {needle:?} in {body}");
    }
    // A body over the 1 MiB cap is refused before it is read; the server may close the
    // connection while the client is still sending, so either outcome is a refusal.
    let huge = api.req(reqwest::Method::PUT, "/v1/kv/huge").body(vec![b'x'; 3 * 1024 * 1024]).send().await;
    if let Ok(resp) = huge {
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert_eq!(master.state.read().unwrap().kv, before, "bad requests must not change state");
    // The server still works (on a new connection: the refused one may have been closed).
    let api = Api::new(&cluster).await;
    let ok = api.req(reqwest::Method::PUT, "/v1/kv/fine").body("yes").send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    cluster.shutdown().await;
}
