//! The typed API client used by the CLI, `medos dev` and the tests.
//!
//! It knows every master URL of a cluster and moves to the next one only when a connection
//! cannot be made (so a request is never sent twice).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::{LoginResponse, UserList};
use super::cluster::{AddMaster, ClusterStatus};
use super::error::ErrorBody;
use super::kv::{KvItem, KvWriteResult};
use crate::core::MasterInfo;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the cluster at {urls}: {detail}; is it running? (`medos cluster list` shows the configured URL)"
    )]
    Unreachable { urls: String, detail: String },
    #[error("{status}: {}", .body.message)]
    Api { status: u16, body: ErrorBody },
    #[error("request to {url} failed: {detail}")]
    Request { url: String, detail: String },
    #[error("unexpected answer from {url}: {detail}")]
    Decode { url: String, detail: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    current: AtomicUsize,
    token: Option<String>,
    /// The TLS settings, kept for WebSockets (`exec`), which reqwest does not speak.
    tls: rustls::ClientConfig,
}

/// Percent-encodes a key for a URL path, keeping `/` as the separator.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client trusting the cluster CA in `ca_pem`.
    pub fn new(urls: Vec<String>, ca_pem: &[u8], token: Option<String>) -> Result<Self, ClientError> {
        crate::pki::install_crypto_provider();
        let tls = crate::pki::tls::client_config_for_ca(ca_pem).map_err(|e| ClientError::Tls(e.to_string()))?;
        Self::with_tls(urls, tls, token)
    }

    pub fn with_tls(urls: Vec<String>, tls: rustls::ClientConfig, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(180))
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let urls = urls.into_iter().map(|u| u.trim_end_matches('/').to_string()).collect();
        Ok(Self { http, urls, current: AtomicUsize::new(0), token, tls })
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Sends a request, trying each URL in turn while connections fail.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<reqwest::Body>,
        json: bool,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_with(method, path, body, json.then_some("application/json"), None).await
    }

    /// [`Client::send`] with a given `Content-Type` and `Accept`.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<reqwest::Body>,
        content_type: Option<&str>,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..self.urls.len() {
            let i = (start + attempt) % self.urls.len();
            let url = format!("{}{path}", self.urls[i]);
            let mut req = self.http.request(method.clone(), &url);
            if let Some(token) = &self.token {
                req = req.header(reqwest::header::AUTHORIZATION, format!("token={token}"));
            }
            if let Some(content_type) = content_type {
                req = req.header(reqwest::header::CONTENT_TYPE, content_type);
            }
            if let Some(accept) = accept {
                req = req.header(reqwest::header::ACCEPT, accept);
            }
            if let Some(b) = &body {
                req = req.body(b.as_bytes().map(|b| b.to_vec()).unwrap_or_default());
            }
            match req.send().await {
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) if e.is_connect() => last = format!("{url}: {e}"),
                Err(e) => return Err(ClientError::Request { url, detail: describe(&e) }),
            }
        }
        Err(ClientError::Unreachable { urls: self.urls.join(", "), detail: last })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        json: bool,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body.map(reqwest::Body::from), json).await?;
        decode(resp).await
    }

    async fn call_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(method, path, Some(serde_json::to_vec(body).expect("request serialises")), true).await
    }

    pub async fn login(&self, uid: &str, password: &str) -> Result<String, ClientError> {
        let body = serde_json::json!({ "uid": uid, "password": password });
        let r: LoginResponse = self.call_json(Method::POST, "/acs/api/v1/auth/login", &body).await?;
        Ok(r.token)
    }

    pub async fn kv_get(&self, key: &str, stale: bool) -> Result<Option<KvItem>, ClientError> {
        let path = format!("/v1/kv/{}{}", encode_key(key), if stale { "?stale" } else { "" });
        match self.call(Method::GET, &path, None, false).await {
            Ok(item) => Ok(Some(item)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn kv_list(&self, prefix: &str, stale: bool) -> Result<Vec<KvItem>, ClientError> {
        let path = format!("/v1/kv/{}?recurse{}", encode_key(prefix), if stale { "&stale" } else { "" });
        self.call(Method::GET, &path, None, false).await
    }

    pub async fn kv_put(&self, key: &str, value: &[u8], cas: Option<u64>) -> Result<KvWriteResult, ClientError> {
        let query = cas.map(|c| format!("?cas={c}")).unwrap_or_default();
        self.call(Method::PUT, &format!("/v1/kv/{}{query}", encode_key(key)), Some(value.to_vec()), false).await
    }

    pub async fn kv_delete(&self, key: &str, cas: Option<u64>, recurse: bool) -> Result<KvWriteResult, ClientError> {
        let mut query = Vec::new();
        if let Some(c) = cas {
            query.push(format!("cas={c}"));
        }
        if recurse {
            query.push("recurse".to_string());
        }
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        self.call(Method::DELETE, &format!("/v1/kv/{}{query}", encode_key(key)), None, false).await
    }

    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        self.call(Method::GET, "/v1/cluster/status", None, false).await
    }

    pub async fn add_master(&self, api: &str) -> Result<MasterInfo, ClientError> {
        self.call_json(Method::POST, "/v1/masters", &AddMaster { api: api.to_string() }).await
    }

    pub async fn remove_master(&self, name: &str) -> Result<MasterInfo, ClientError> {
        self.call(Method::DELETE, &format!("/v1/masters/{}", encode_key(name)), None, false).await
    }

    pub async fn run_task(&self, request: &super::tasks::RunTask) -> Result<crate::core::Task, ClientError> {
        self.call_json(Method::POST, "/v1/tasks", request).await
    }

    pub async fn tasks(&self, completed: bool) -> Result<Vec<crate::core::Task>, ClientError> {
        self.call(Method::GET, if completed { "/v1/tasks?completed" } else { "/v1/tasks" }, None, false).await
    }

    pub async fn task(&self, id: &str) -> Result<crate::core::Task, ClientError> {
        self.call(Method::GET, &format!("/v1/tasks/{}", encode_key(id)), None, false).await
    }

    pub async fn kill_task(&self, id: &str, grace_seconds: Option<f64>) -> Result<crate::core::Task, ClientError> {
        let body = super::tasks::KillRequest { grace_seconds };
        self.call_json(Method::POST, &format!("/v1/tasks/{}/kill", encode_key(id)), &body).await
    }

    /// Reads `length` bytes at `offset` of a file in a task's sandbox (`offset` -1: only the
    /// file's size, as the chunk's offset).
    pub async fn read_task_file(
        &self,
        task: &str,
        path: &str,
        offset: i64,
        length: u64,
    ) -> Result<super::sandbox::FileChunk, ClientError> {
        let query = format!("path={}&offset={offset}&length={length}", encode_key(path));
        self.call(Method::GET, &format!("/v1/tasks/{}/files/read?{query}", encode_key(task)), None, false).await
    }

    /// Lists a directory of a task's sandbox (`""`: the sandbox itself).
    pub async fn browse_task_files(
        &self,
        task: &str,
        path: &str,
    ) -> Result<Vec<super::sandbox::FileInfo>, ClientError> {
        let path = format!("/v1/tasks/{}/files/browse?path={}", encode_key(task), encode_key(path));
        self.call(Method::GET, &path, None, false).await
    }

    /// Starts a process in a running task (`medos task exec`).
    pub async fn exec(
        &self,
        task: &str,
        start: &super::sandbox::ExecStart,
    ) -> Result<super::sandbox::ExecSession, ClientError> {
        let first = self.current.load(Ordering::Relaxed) % self.urls.len().max(1);
        let mut urls = self.urls.clone();
        urls.rotate_left(first);
        super::sandbox::open_exec(&urls, &self.tls, self.token.as_deref(), task, start).await
    }

    /// Creates a join token for new agents (`medos node join-token create`).
    pub async fn create_join_token(
        &self,
        request: &super::join::CreateJoinToken,
    ) -> Result<super::join::JoinTokenCreated, ClientError> {
        self.call_json(Method::POST, "/v1/join-tokens", request).await
    }

    pub async fn agents(&self) -> Result<Vec<super::agents::AgentView>, ClientError> {
        self.call(Method::GET, "/v1/agents", None, false).await
    }

    pub async fn agent(&self, id: &str) -> Result<super::agents::AgentView, ClientError> {
        self.call(Method::GET, &format!("/v1/agents/{}", encode_key(id)), None, false).await
    }

    pub async fn set_agent_mode(&self, id: &str, mode: &str) -> Result<super::agents::AgentView, ClientError> {
        let body = super::agents::ModeRequest { mode: mode.to_string() };
        self.call_json(Method::POST, &format!("/v1/agents/{}/mode", encode_key(id)), &body).await
    }

    /// Whether the cluster already holds blob `digest` (`sha256:…`).
    pub async fn has_blob(&self, digest: &str) -> Result<bool, ClientError> {
        let resp = self.send(Method::HEAD, &format!("/v1/blobs/{digest}"), None, false).await?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => decode::<serde_json::Value>(resp).await.map(|_| false),
        }
    }

    /// Uploads a file as blob `digest`, calling `progress` with the bytes sent so far.
    pub async fn upload_blob(
        &self,
        digest: &str,
        path: &std::path::Path,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        use futures_util::StreamExt;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Request { url: path.display().to_string(), detail: e.to_string() })?;
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
            if let Ok(c) = &chunk {
                sent += c.len() as u64;
                progress(sent);
            }
            chunk
        });
        let base = &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()];
        let url = format!("{base}/v1/blobs/{digest}");
        let mut req = self.http.put(&url).body(reqwest::Body::wrap_stream(stream)).timeout(Duration::from_secs(3600));
        if let Some(token) = &self.token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("token={token}"));
        }
        let resp = req.send().await.map_err(|e| ClientError::Request { url, detail: describe(&e) })?;
        decode::<serde_json::Value>(resp).await.map(|_| ())
    }

    pub async fn register_image(
        &self,
        request: &super::images::RegisterImage,
    ) -> Result<crate::core::ImageRecord, ClientError> {
        self.call_json(Method::POST, "/v1/images", request).await
    }

    pub async fn images(&self) -> Result<Vec<crate::core::ImageRecord>, ClientError> {
        self.call(Method::GET, "/v1/images", None, false).await
    }

    pub async fn remove_image(&self, reference: &str) -> Result<serde_json::Value, ClientError> {
        self.call(Method::DELETE, &format!("/v1/images/{}", encode_key(reference)), None, false).await
    }

    pub async fn metadata(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/metadata", None, false).await
    }

    pub async fn users(&self) -> Result<UserList, ClientError> {
        self.call(Method::GET, "/acs/api/v1/users", None, false).await
    }

    pub async fn put_user(
        &self,
        uid: &str,
        password: &str,
        description: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::json!({ "password": password, "description": description });
        self.call_json(Method::PUT, &format!("/acs/api/v1/users/{}", encode_key(uid)), &body).await
    }

    pub async fn delete_user(&self, uid: &str) -> Result<(), ClientError> {
        let resp = self.send(Method::DELETE, &format!("/acs/api/v1/users/{}", encode_key(uid)), None, false).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(resp).await.map(|_| ())
    }
}

/// One path segment, percent-encoded (`/` included).
fn encode_segment(s: &str) -> String {
    encode_key(s).replace('/', "%2F")
}

/// Mesos-DNS's HTTP API (`/mesos_dns/v1`). Mesos-DNS answers a name without records with one
/// entry of empty fields; these methods return an empty list instead.
impl Client {
    pub async fn mesos_dns_version(&self) -> Result<super::mesos_dns::Version, ClientError> {
        self.call(Method::GET, "/mesos_dns/v1/version", None, false).await
    }

    pub async fn mesos_dns_config(&self) -> Result<super::mesos_dns::DnsSettings, ClientError> {
        self.call(Method::GET, "/mesos_dns/v1/config", None, false).await
    }

    /// Every A and AAAA address of `name` (empty when it has none).
    pub async fn dns_hosts(&self, name: &str) -> Result<Vec<crate::core::dns::HostEntry>, ClientError> {
        let path = format!("/mesos_dns/v1/hosts/{}", encode_segment(name));
        let entries: Vec<crate::core::dns::HostEntry> = self.call(Method::GET, &path, None, false).await?;
        Ok(entries.into_iter().filter(|e| !e.host.is_empty() || !e.ip.is_empty()).collect())
    }

    /// Every SRV record of `name` with its target's address (empty when it has none).
    pub async fn dns_services(&self, name: &str) -> Result<Vec<crate::core::dns::ServiceEntry>, ClientError> {
        let path = format!("/mesos_dns/v1/services/{}", encode_segment(name));
        let entries: Vec<crate::core::dns::ServiceEntry> = self.call(Method::GET, &path, None, false).await?;
        Ok(entries.into_iter().filter(|e| !e.host.is_empty() || !e.port.is_empty()).collect())
    }

    /// Marathon's apps (`GET /v2/apps`), as Marathon's JSON.
    pub async fn marathon_apps(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        let v = self.marathon(Method::GET, "/v2/apps", None).await?;
        Ok(v["apps"].as_array().cloned().unwrap_or_default())
    }

    /// Every VIP with its names, apps and ready instances.
    pub async fn vips(&self) -> Result<Vec<crate::core::vips::VipRoute>, ClientError> {
        self.call(Method::GET, super::mesos_dns::VIPS_PATH, None, false).await
    }

    pub async fn dns_enumerate(&self) -> Result<crate::core::dns::Enumeration, ClientError> {
        self.call(Method::GET, "/mesos_dns/v1/enumerate", None, false).await
    }
}

impl Client {
    /// A call to Marathon's API (`/v2/…`); answers the JSON body (`null` when empty). Error
    /// bodies with Marathon's `details` become one message naming every path.
    pub async fn marathon(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serialises"));
        let resp = self.send(method, path, bytes.map(reqwest::Body::from), body.is_some()).await?;
        let url = resp.url().to_string();
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Request { url: url.clone(), detail: describe(&e) })?;
        if !status.is_success() {
            let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            let message = parsed.as_ref().and_then(marathon_error_text);
            let body = match message {
                Some(message) => ErrorBody {
                    code: format!("HTTP_{}", status.as_u16()),
                    title: status.to_string(),
                    description: message.clone(),
                    message,
                    current_revision: None,
                },
                None => ErrorBody::parse_or_text(&bytes, status),
            };
            return Err(ClientError::Api { status: status.as_u16(), body });
        }
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url, detail: e.to_string() })
    }
}

/// The package manager (Cosmos's API, `/package/…`).
impl Client {
    /// One Cosmos call: `POST /package/{op}` with the operation's request media type, asking
    /// for response version `version`. Cosmos's error bodies (`type`, `message`, `data`)
    /// become [`ClientError::Api`] with `code` = the error's type.
    pub async fn cosmos<T: DeserializeOwned>(
        &self,
        op: &str,
        version: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let request_type = format!("application/vnd.dcos.package.{op}-request+json;charset=utf-8;version=v1");
        let accept = format!("application/vnd.dcos.package.{op}-response+json;charset=utf-8;version={version}");
        let path = format!("/package/{}", op.replace("repository.", "repository/"));
        self.cosmos_post(&path, &request_type, &accept, body).await
    }

    async fn cosmos_post<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        accept: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).expect("JSON serialises");
        let resp = self
            .send_with(Method::POST, path, Some(reqwest::Body::from(bytes)), Some(content_type), Some(accept))
            .await?;
        let url = resp.url().to_string();
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Request { url: url.clone(), detail: describe(&e) })?;
        if !status.is_success() {
            let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            let body = match parsed.as_ref().and_then(|v| Some((v.get("type")?.as_str()?, v.get("message")?.as_str()?)))
            {
                Some((kind, message)) => ErrorBody {
                    code: kind.to_string(),
                    title: status.to_string(),
                    description: message.to_string(),
                    message: message.to_string(),
                    current_revision: None,
                },
                None => ErrorBody::parse_or_text(&bytes, status),
            };
            return Err(ClientError::Api { status: status.as_u16(), body });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url, detail: e.to_string() })
    }

    /// Packages whose name, description or tags match `query` (all without one).
    pub async fn package_search(
        &self,
        query: Option<&str>,
    ) -> Result<Vec<crate::core::packages::SearchResult>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            packages: Vec<crate::core::packages::SearchResult>,
        }
        let body = match query {
            Some(q) => serde_json::json!({ "query": q }),
            None => serde_json::json!({}),
        };
        let r: R = self.cosmos("search", "v1", &body).await?;
        Ok(r.packages)
    }

    /// The package `name` at `version` (its newest release without one), in full (describe v3).
    pub async fn package_describe(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<crate::core::packages::Package, ClientError> {
        let mut body = serde_json::json!({ "packageName": name });
        if let Some(v) = version {
            body["packageVersion"] = v.into();
        }
        let r: serde_json::Value = self.cosmos("describe", "v3", &body).await?;
        let url = format!("{}/package/describe", self.urls.first().cloned().unwrap_or_default());
        let package =
            r.get("package").ok_or_else(|| ClientError::Decode { url: url.clone(), detail: "no `package`".into() })?;
        crate::core::packages::Package::from_json(package)
            .map_err(|(field, message)| ClientError::Decode { url, detail: format!("package.{field}: {message}") })
    }

    /// Every version of `name` with its release version (as Cosmos v1 writes it: a string).
    pub async fn package_list_versions(&self, name: &str) -> Result<BTreeMap<String, String>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            results: BTreeMap<String, String>,
        }
        let body = serde_json::json!({ "packageName": name, "includePackageVersions": true });
        let r: R = self.cosmos("list-versions", "v1", &body).await?;
        Ok(r.results)
    }

    fn package_request(
        name: &str,
        version: Option<&str>,
        options: Option<&serde_json::Map<String, serde_json::Value>>,
        app_id: Option<&str>,
    ) -> serde_json::Value {
        let mut body = serde_json::json!({ "packageName": name });
        if let Some(v) = version {
            body["packageVersion"] = v.into();
        }
        if let Some(o) = options {
            body["options"] = serde_json::Value::Object(o.clone());
        }
        if let Some(id) = app_id {
            body["appId"] = id.into();
        }
        body
    }

    /// The Marathon app `name` would install as (`marathonJson`).
    pub async fn package_render(
        &self,
        name: &str,
        version: Option<&str>,
        options: Option<&serde_json::Map<String, serde_json::Value>>,
        app_id: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let body = Self::package_request(name, version, options, app_id);
        let mut r: serde_json::Value = self.cosmos("render", "v1", &body).await?;
        Ok(r["marathonJson"].take())
    }

    /// Installs a package as a Marathon app (install v2).
    pub async fn package_install(
        &self,
        name: &str,
        version: Option<&str>,
        options: Option<&serde_json::Map<String, serde_json::Value>>,
        app_id: Option<&str>,
    ) -> Result<InstallResult, ClientError> {
        let body = Self::package_request(name, version, options, app_id);
        self.cosmos("install", "v2", &body).await
    }

    /// Removes the app(s) of an installed package.
    pub async fn package_uninstall(
        &self,
        name: &str,
        app_id: Option<&str>,
        all: bool,
    ) -> Result<Vec<UninstallResult>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            results: Vec<UninstallResult>,
        }
        let mut body = serde_json::json!({ "packageName": name, "all": all });
        if let Some(id) = app_id {
            body["appId"] = id.into();
        }
        let r: R = self.cosmos("uninstall", "v1", &body).await?;
        Ok(r.results)
    }

    /// Installed packages (from the Marathon apps' labels), optionally one package or app.
    pub async fn package_list(
        &self,
        name: Option<&str>,
        app_id: Option<&str>,
    ) -> Result<Vec<Installation>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            packages: Vec<Installation>,
        }
        let mut body = serde_json::json!({});
        if let Some(n) = name {
            body["packageName"] = n.into();
        }
        if let Some(id) = app_id {
            body["appId"] = id.into();
        }
        let r: R = self.cosmos("list", "v1", &body).await?;
        Ok(r.packages)
    }

    async fn repos(
        &self,
        op: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<crate::core::packages::RepoSource>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            repositories: Vec<crate::core::packages::RepoSource>,
        }
        let r: R = self.cosmos(op, "v1", body).await?;
        Ok(r.repositories)
    }

    /// The package repositories in priority order.
    pub async fn package_repo_list(&self) -> Result<Vec<crate::core::packages::RepoSource>, ClientError> {
        self.repos("repository.list", &serde_json::json!({})).await
    }

    /// Adds an http(s) repository at `index` (0 = first; last without).
    pub async fn package_repo_add(
        &self,
        name: &str,
        uri: &str,
        index: Option<usize>,
    ) -> Result<Vec<crate::core::packages::RepoSource>, ClientError> {
        let mut body = serde_json::json!({ "name": name, "uri": uri });
        if let Some(i) = index {
            body["index"] = i.into();
        }
        self.repos("repository.add", &body).await
    }

    /// Uploads a repository index (`{"packages": [...]}`) for the cluster to hold as `name`.
    pub async fn package_repo_upload(
        &self,
        name: &str,
        content: &serde_json::Value,
        index: Option<usize>,
    ) -> Result<Vec<crate::core::packages::RepoSource>, ClientError> {
        let mut body = serde_json::json!({ "name": name, "content": content });
        if let Some(i) = index {
            body["index"] = i.into();
        }
        self.repos("repository.add", &body).await
    }

    /// Removes the repository with this name (or URI).
    pub async fn package_repo_remove(&self, name: &str) -> Result<Vec<crate::core::packages::RepoSource>, ClientError> {
        self.repos("repository.delete", &serde_json::json!({ "name": name })).await
    }

    /// Adds one package (Universe package JSON, packagingVersion 3.0 to 5.0) to the cluster
    /// repository `local`; answers the package as stored.
    pub async fn package_add(&self, package: &serde_json::Value) -> Result<serde_json::Value, ClientError> {
        self.cosmos_post(
            "/package/add",
            "application/vnd.dcos.universe.package+json;charset=utf-8;version=v4",
            "application/vnd.dcos.package.add-response+json;charset=utf-8;version=v1",
            package,
        )
        .await
    }
}

/// `POST /package/install`'s answer (v2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallResult {
    pub package_name: String,
    pub package_version: String,
    pub app_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install_notes: Option<String>,
}

/// One removed app of `POST /package/uninstall`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallResult {
    pub package_name: String,
    pub app_id: String,
    #[serde(default)]
    pub package_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_uninstall_notes: Option<String>,
}

/// One installed package of `POST /package/list` (v1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installation {
    pub app_id: String,
    pub package_information: PackageInformation,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageInformation {
    /// The package's details (name, version, description, notes, …).
    pub package_definition: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_definition: Option<serde_json::Value>,
}

/// `{"message", "details": [{"path", "errors"}]}` (Marathon's 4xx bodies) as one line each.
fn marathon_error_text(v: &serde_json::Value) -> Option<String> {
    let message = v.get("message")?.as_str()?.to_string();
    let mut text = message;
    for detail in v.get("details").and_then(|d| d.as_array()).into_iter().flatten() {
        let path = detail.get("path").and_then(|p| p.as_str()).unwrap_or("/");
        let errors: Vec<&str> =
            detail.get("errors").and_then(|e| e.as_array()).into_iter().flatten().filter_map(|e| e.as_str()).collect();
        text.push_str(&format!("\n  {path}: {}", errors.join("; ")));
    }
    if let Some(deployments) = v.get("deployments").and_then(|d| d.as_array()) {
        let ids: Vec<&str> = deployments.iter().filter_map(|d| d.get("id").and_then(|i| i.as_str())).collect();
        if !ids.is_empty() {
            text.push_str(&format!("\n  deployments: {}", ids.join(", ")));
        }
    }
    Some(text)
}

/// An error with its chain of causes, for messages (reqwest's own text omits the cause).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
    let url = resp.url().to_string();
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| ClientError::Request { url: url.clone(), detail: describe(&e) })?;
    if !status.is_success() {
        let body = ErrorBody::parse_or_text(&bytes, status);
        return Err(ClientError::Api { status: status.as_u16(), body });
    }
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url, detail: e.to_string() })
}

/// `StatusCode` re-exported for callers matching on statuses.
pub type Status = StatusCode;

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_encoded_for_paths() {
        assert_eq!(super::encode_key("a/b c?d"), "a/b%20c%3Fd");
        assert_eq!(super::encode_key("é"), "%C3%A9");
        assert_eq!(super::encode_segment("_a._tcp.b/c"), "_a._tcp.b%2Fc");
    }
}
