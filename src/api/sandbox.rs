//! Task sandboxes through the masters: Mesos's files API (`read`, `browse`) and `exec`.
//!
//! Every agent serves its sandboxes itself ([`crate::agent::http`], client certificates with
//! `OU=master` only). A master answers the operator's token-protected requests by finding the
//! task's agent in the replicated state and calling it over mutual TLS with its own
//! certificate; any master can do this, with or without a leader. `exec` is a WebSocket that
//! the master splices to one it opens to the agent.
//!
//! The agent names files with virtual paths `/sandboxes/TASK_ID/REL` (as Mesos attaches
//! sandboxes under virtual paths); `/v1/tasks/{id}/files/*` take `REL` only and
//! `/slave/{agent_id}/files/*.json` take the virtual path.
//!
//! # The exec protocol (one WebSocket, client ↔ master ↔ agent)
//! - Client → agent, text: first `{"type": "start", "command": [argv…], "tty": {"rows", "cols"}
//!   or null, "stdin": bool}`; later `{"type": "resize", "rows", "cols"}` and `{"type": "eof"}`
//!   (closes the process's stdin). Binary: `[0, bytes…]` is stdin.
//! - Agent → client, binary: `[1, bytes…]` stdout (and the terminal's output with a TTY),
//!   `[2, bytes…]` stderr. Text: `{"type": "started", "pid"}`, then finally
//!   `{"type": "exit", "code", "signal"}` or `{"type": "error", "message"}`, then a close.
//! - A client that goes away kills the process.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::client::{ClientError, encode_key};
use super::error::{ApiError, ErrorBody};
use super::query::Params;
use crate::core::Task;
use crate::master::Master;

/// The virtual directory under which an agent shows its tasks' sandboxes.
pub const SANDBOXES: &str = "/sandboxes";
/// Largest `length` of one read (Mesos reads at most a few pages; we allow more).
pub const MAX_READ_BYTES: u64 = 1024 * 1024;
/// `length` when none is given.
pub const DEFAULT_READ_BYTES: u64 = 64 * 1024;
/// Binary frame prefixes of the exec protocol.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// `files/read` answer (Mesos's `read.json`): `data` starts at byte `offset` of the file. Bytes
/// that are not UTF-8 come back as `?`, one per byte, so `offset + data.len()` is always the
/// next offset; a multi-byte character cut by `length` is left for the next read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChunk {
    pub data: String,
    pub offset: u64,
}

/// One `files/browse` entry (Mesos's `browse.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The virtual path, `/sandboxes/TASK_ID/…`.
    pub path: String,
    pub nlink: u64,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// `ls -l` style, e.g. `-rw-r--r--`.
    pub mode: String,
    pub uid: String,
    pub gid: String,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// The first message of an exec session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStart {
    /// argv, run directly (no shell).
    pub command: Vec<String>,
    /// `Some`: run the process on a pseudo-terminal of this size.
    #[serde(default)]
    pub tty: Option<WindowSize>,
    /// Whether the client sends stdin; without it the process's stdin is closed at once.
    #[serde(default)]
    pub stdin: bool,
}

/// Text messages from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecRequest {
    Start(ExecStart),
    Resize(WindowSize),
    Eof,
}

/// Text messages from the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    Started { pid: Option<u32> },
    Exit { code: Option<i32>, signal: Option<i32> },
    Error { message: String },
}

/// The agent's path of a file in a task's sandbox (`rel` empty: the sandbox itself).
pub fn sandbox_path(task_id: &str, rel: &str) -> String {
    let rel = rel.trim_start_matches("./").trim_end_matches('/');
    if rel.is_empty() || rel == "." { format!("{SANDBOXES}/{task_id}") } else { format!("{SANDBOXES}/{task_id}/{rel}") }
}

/// Checks a sandbox-relative path given by a user: no `..`, not absolute.
pub fn check_relative(rel: &str) -> Result<(), ApiError> {
    if rel.starts_with('/') {
        return Err(ApiError::BadRequest(format!(
            "path {rel:?} is absolute; give a path relative to the task's sandbox, like stdout"
        )));
    }
    if rel.split('/').any(|c| c == "..") {
        return Err(ApiError::BadRequest(format!("path {rel:?} contains '..'; paths stay inside the task's sandbox")));
    }
    if rel.contains('\0') {
        return Err(ApiError::BadRequest("path contains a NUL byte".into()));
    }
    Ok(())
}

/// `offset` (default 0, -1 = "tell me the size") and `length` of a read, checked.
pub fn read_window(params: &Params) -> Result<(i64, u64), ApiError> {
    let offset = match params.get("offset") {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= -1 => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter offset={v:?}: expected a byte offset, or -1 for the file's size"
                )));
            }
        },
    };
    let length = match params.get("length") {
        None => DEFAULT_READ_BYTES,
        // Mesos clients send length=-1 for "as much as you will give".
        Some(v) if v == "-1" => MAX_READ_BYTES,
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("query parameter length={v:?}: expected a non-negative number of bytes"))
        })?,
    };
    Ok((offset, length.min(MAX_READ_BYTES)))
}

/// Where a task's sandbox is served.
struct Located {
    task_id: String,
    agent: String,
    api: String,
    ended: bool,
}

fn find_task<'a>(state: &'a crate::core::State, id: &str) -> Result<Option<&'a Task>, ApiError> {
    if let Some(t) = state.tasks.get(id) {
        return Ok(Some(t));
    }
    let matches: Vec<&Task> = state.tasks.values().filter(|t| t.id.starts_with(id)).collect();
    match matches.as_slice() {
        [one] => Ok(Some(one)),
        [] => Ok(None),
        _ => Err(ApiError::BadRequest(format!("{id:?} matches {} tasks; give more of the id", matches.len()))),
    }
}

fn agent_api(state: &crate::core::State, agent_id: &str) -> Result<(String, String), ApiError> {
    let agent = state.agents.get(agent_id).ok_or_else(|| {
        ApiError::NotFound(format!("agent {agent_id} is not registered any more; its sandboxes cannot be reached"))
    })?;
    if agent.api.is_empty() {
        return Err(ApiError::Conflict {
            code: "ERR_NO_AGENT_API",
            message: format!(
                "agent {} ({agent_id}) serves no API; set `listen` in its config to read sandboxes and exec",
                agent.hostname
            ),
            current_revision: None,
        });
    }
    Ok((agent.hostname.clone(), agent.api.clone()))
}

/// Finds a task (or a unique prefix of its id) and its agent. Uses this master's state, so
/// it works without a leader; a task too new to be applied here is looked up again after a
/// read barrier.
async fn locate(master: &Master, id: &str) -> Result<Located, ApiError> {
    let lookup = |master: &Master| -> Result<Option<Located>, ApiError> {
        let state = master.state.read().expect("state lock");
        let Some(task) = find_task(&state, id)? else { return Ok(None) };
        let (agent, api) = agent_api(&state, &task.agent_id)?;
        Ok(Some(Located { task_id: task.id.clone(), agent, api, ended: task.state.is_terminal() }))
    };
    if let Some(found) = lookup(master)? {
        return Ok(found);
    }
    if master.read_barrier().await.is_ok()
        && let Some(found) = lookup(master)?
    {
        return Ok(found);
    }
    Err(ApiError::NotFound(format!("no task {id:?}; see `medos task list --completed`")))
}

/// Calls `GET {api}{path}?{query}` on an agent and answers with what it answered.
async fn forward(master: &Master, agent: &str, api: &str, path: &str, query: &[(&str, String)]) -> Response {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode_key(v))).collect();
    let url = format!("{}{path}?{}", api.trim_end_matches('/'), query.join("&"));
    let resp = match master.peers.get(&url).timeout(Duration::from_secs(30)).send().await {
        Ok(resp) => resp,
        Err(e) => {
            return ApiError::Unavailable(format!("cannot reach agent {agent} at {api}: {e}; is it running?"))
                .into_response();
        }
    };
    let status = resp.status();
    let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    match resp.bytes().await {
        Ok(body) => {
            let mut out = Response::new(Body::from(body));
            *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Some(ct) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
                out.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
            }
            out
        }
        Err(e) => ApiError::Unavailable(format!("agent {agent} at {api} broke off its answer: {e}")).into_response(),
    }
}

type QueryResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

/// `GET /v1/tasks/{id}/files/read?path=stdout&offset=N&length=N`.
pub async fn task_read(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    query: QueryResult,
) -> Result<Response, ApiError> {
    let Query(params) = query?;
    let rel = params
        .get("path")
        .ok_or_else(|| ApiError::BadRequest("query parameter path: give a file in the sandbox, like stdout".into()))?;
    check_relative(rel)?;
    let (offset, length) = read_window(&params)?;
    let target = locate(&master, &id).await?;
    let path = sandbox_path(&target.task_id, rel);
    let query = [("path", path), ("offset", offset.to_string()), ("length", length.to_string())];
    Ok(forward(&master, &target.agent, &target.api, "/files/read", &query).await)
}

/// `GET /v1/tasks/{id}/files/browse?path=` (default: the sandbox itself).
pub async fn task_browse(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    query: QueryResult,
) -> Result<Response, ApiError> {
    let Query(params) = query?;
    let rel = params.get("path").map(String::as_str).unwrap_or("");
    check_relative(rel)?;
    let target = locate(&master, &id).await?;
    let query = [("path", sandbox_path(&target.task_id, rel))];
    Ok(forward(&master, &target.agent, &target.api, "/files/browse", &query).await)
}

fn find_agent(master: &Master, id: &str) -> Result<(String, String), ApiError> {
    let state = master.state.read().expect("state lock");
    let agent_id = state
        .agents
        .values()
        .find(|a| a.id == id || a.hostname == id)
        .map(|a| a.id.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no agent {id:?}; see `medos node list`")))?;
    agent_api(&state, &agent_id)
}

fn virtual_path(params: &Params) -> Result<String, ApiError> {
    let path = params.get("path").ok_or_else(|| {
        ApiError::BadRequest(format!("query parameter path: give a sandbox path like {SANDBOXES}/TASK_ID/stdout"))
    })?;
    if path.split('/').any(|c| c == "..") {
        return Err(ApiError::BadRequest(format!("path {path:?} contains '..'; paths stay inside a sandbox")));
    }
    Ok(path.clone())
}

/// `GET /slave/{agent_id}/files/read.json?path=/sandboxes/TASK/FILE&offset&length` (Mesos).
pub async fn agent_read(
    State(master): State<Arc<Master>>,
    Path(agent_id): Path<String>,
    query: QueryResult,
) -> Result<Response, ApiError> {
    let Query(params) = query?;
    let path = virtual_path(&params)?;
    let (offset, length) = read_window(&params)?;
    let (agent, api) = find_agent(&master, &agent_id)?;
    let query = [("path", path), ("offset", offset.to_string()), ("length", length.to_string())];
    Ok(forward(&master, &agent, &api, "/files/read", &query).await)
}

/// `GET /slave/{agent_id}/files/browse.json?path=/sandboxes/TASK` (Mesos).
pub async fn agent_browse(
    State(master): State<Arc<Master>>,
    Path(agent_id): Path<String>,
    query: QueryResult,
) -> Result<Response, ApiError> {
    let Query(params) = query?;
    let path = virtual_path(&params)?;
    let (agent, api) = find_agent(&master, &agent_id)?;
    Ok(forward(&master, &agent, &api, "/files/browse", &[("path", path)]).await)
}

/// A WebSocket to an agent or a master.
pub type WsStream = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Why a WebSocket could not be opened.
#[derive(Debug)]
pub enum WsConnectError {
    /// No connection could be made (nothing was sent).
    Unreachable(String),
    /// The server answered the upgrade with an HTTP error.
    Refused {
        status: u16,
        body: Vec<u8>,
    },
    Other(String),
}

impl std::fmt::Display for WsConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsConnectError::Unreachable(m) | WsConnectError::Other(m) => f.write_str(m),
            WsConnectError::Refused { status, body } => write!(f, "{status}: {}", String::from_utf8_lossy(body)),
        }
    }
}

/// Opens `wss://` `base` + `path` over TLS with `tls` (HTTP/1.1), sending `token` if given.
pub async fn connect_ws(
    base: &str,
    path: &str,
    mut tls: rustls::ClientConfig,
    token: Option<&str>,
) -> Result<WsStream, WsConnectError> {
    let uri: Uri = base.parse().map_err(|e| WsConnectError::Other(format!("{base:?} is not a URL: {e}")))?;
    let host = uri.host().ok_or_else(|| WsConnectError::Other(format!("{base:?} has no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| WsConnectError::Other(format!("{host:?} is not a host name: {e}")))?;
    let tcp = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(WsConnectError::Unreachable(format!("{base}: {e}"))),
        Err(_) => return Err(WsConnectError::Unreachable(format!("{base}: no connection within 5 s"))),
    };
    let _ = tcp.set_nodelay(true);
    // WebSockets upgrade HTTP/1.1 connections.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .map_err(|e| WsConnectError::Other(format!("TLS with {base} failed: {e}")))?;
    let ws_url = format!("wss://{}{path}", uri.authority().map(|a| a.as_str()).unwrap_or(host.as_str()));
    let mut request =
        ws_url.as_str().into_client_request().map_err(|e| WsConnectError::Other(format!("{ws_url}: {e}")))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("token={token}"))
            .map_err(|_| WsConnectError::Other("the token is not a valid header value".into()))?;
        request.headers_mut().insert(axum::http::header::AUTHORIZATION, value);
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(WsConnectError::Refused {
            status: resp.status().as_u16(),
            body: resp.body().clone().unwrap_or_default(),
        }),
        Err(e) => Err(WsConnectError::Other(format!("WebSocket handshake with {base} failed: {e}"))),
    }
}

/// `GET /v1/tasks/{id}/exec` (WebSocket): spliced to the task's agent.
pub async fn task_exec(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::BadRequest(format!("exec is a WebSocket endpoint ({}); use `medos task exec`", e.body_text()))
    })?;
    let target = locate(&master, &id).await?;
    if target.ended {
        return Err(ApiError::Conflict {
            code: "ERR_TASK_ENDED",
            message: format!("task {} has ended; exec needs a running task", target.task_id),
            current_revision: None,
        });
    }
    let tls = master.config.tls.mutual_client_config().map_err(|e| ApiError::Internal(e.to_string()))?;
    // Connect to the agent first, so that its refusal reaches the client as an HTTP error.
    let agent_ws = match connect_ws(&target.api, &format!("/exec/{}", encode_key(&target.task_id)), tls, None).await {
        Ok(ws) => ws,
        Err(WsConnectError::Refused { status, body }) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            resp.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(resp);
        }
        Err(e) => {
            return Err(ApiError::Unavailable(format!(
                "cannot open exec on agent {} at {}: {e}; is it running?",
                target.agent, target.api
            )));
        }
    };
    Ok(upgrade.on_upgrade(move |client| splice(client, agent_ws)))
}

/// Copies messages both ways until either side closes; then closes the other. Pings and
/// pongs are answered on each connection by its own WebSocket layer, not forwarded.
async fn splice(client: WebSocket, agent: WsStream) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut agent_tx, mut agent_rx) = agent.split();
    let up = async {
        while let Some(Ok(m)) = client_rx.next().await {
            let m = match m {
                ws::Message::Text(t) => tungstenite::Message::text(t.as_str()),
                ws::Message::Binary(b) => tungstenite::Message::Binary(b),
                ws::Message::Close(_) => break,
                ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
            };
            if agent_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = agent_tx.close().await;
    };
    let down = async {
        while let Some(Ok(m)) = agent_rx.next().await {
            let m = match m {
                tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
                tungstenite::Message::Binary(b) => ws::Message::Binary(b),
                tungstenite::Message::Close(_) => break,
                _ => continue,
            };
            if client_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// What an exec session delivers to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Started { pid: Option<u32> },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit { code: Option<i32>, signal: Option<i32> },
}

/// All output and the end of a non-interactive exec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExecResult {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 1,
        }
    }
}

/// The client's end of `medos task exec`.
pub struct ExecSession {
    ws: WsStream,
    url: String,
}

fn session_error(url: &str, detail: impl std::fmt::Display) -> ClientError {
    ClientError::Request { url: url.to_string(), detail: detail.to_string() }
}

impl ExecSession {
    async fn send(&mut self, m: tungstenite::Message) -> Result<(), ClientError> {
        self.ws.send(m).await.map_err(|e| session_error(&self.url, format!("sending to the exec session: {e}")))
    }

    async fn send_request(&mut self, r: &ExecRequest) -> Result<(), ClientError> {
        let text = serde_json::to_string(r).expect("exec requests serialise");
        self.send(tungstenite::Message::text(text)).await
    }

    /// Sends bytes to the process's stdin.
    pub async fn stdin(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(STDIN);
        frame.extend_from_slice(data);
        self.send(tungstenite::Message::binary(frame)).await
    }

    /// Closes the process's stdin.
    pub async fn close_stdin(&mut self) -> Result<(), ClientError> {
        self.send_request(&ExecRequest::Eof).await
    }

    pub async fn resize(&mut self, size: WindowSize) -> Result<(), ClientError> {
        self.send_request(&ExecRequest::Resize(size)).await
    }

    /// The next output; `None` once the session is over (after `Exit`).
    pub async fn next(&mut self) -> Result<Option<ExecOutput>, ClientError> {
        loop {
            let Some(message) = self.ws.next().await else { return Ok(None) };
            let message = message.map_err(|e| session_error(&self.url, format!("the exec session broke: {e}")))?;
            match message {
                tungstenite::Message::Binary(b) => match b.split_first() {
                    Some((&STDOUT, rest)) => return Ok(Some(ExecOutput::Stdout(rest.to_vec()))),
                    Some((&STDERR, rest)) => return Ok(Some(ExecOutput::Stderr(rest.to_vec()))),
                    _ => continue,
                },
                tungstenite::Message::Text(t) => match serde_json::from_str::<ExecEvent>(t.as_str()) {
                    Ok(ExecEvent::Started { pid }) => return Ok(Some(ExecOutput::Started { pid })),
                    Ok(ExecEvent::Exit { code, signal }) => return Ok(Some(ExecOutput::Exit { code, signal })),
                    Ok(ExecEvent::Error { message }) => return Err(session_error(&self.url, message)),
                    Err(e) => return Err(session_error(&self.url, format!("unexpected exec message {t:?}: {e}"))),
                },
                tungstenite::Message::Close(_) => return Ok(None),
                _ => continue,
            }
        }
    }

    /// Collects all output until the process ends (for scripts and tests).
    pub async fn collect(mut self) -> Result<ExecResult, ClientError> {
        let mut result = ExecResult::default();
        loop {
            match self.next().await? {
                Some(ExecOutput::Stdout(b)) => result.stdout.extend(b),
                Some(ExecOutput::Stderr(b)) => result.stderr.extend(b),
                Some(ExecOutput::Started { .. }) => {}
                Some(ExecOutput::Exit { code, signal }) => {
                    result.code = code;
                    result.signal = signal;
                    let _ = self.ws.close(None).await;
                    return Ok(result);
                }
                None => {
                    return Err(session_error(
                        &self.url,
                        "the exec session closed before the process's exit was reported",
                    ));
                }
            }
        }
    }

    /// Ends the session (kills the process if it still runs).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Opens an exec session on the first master of `urls` that can be reached.
pub async fn open_exec(
    urls: &[String],
    tls: &rustls::ClientConfig,
    token: Option<&str>,
    task: &str,
    start: &ExecStart,
) -> Result<ExecSession, ClientError> {
    let path = format!("/v1/tasks/{}/exec", encode_key(task));
    let mut last = String::new();
    for base in urls {
        match connect_ws(base, &path, tls.clone(), token).await {
            Ok(ws) => {
                let mut session = ExecSession { ws, url: format!("{base}{path}") };
                session.send_request(&ExecRequest::Start(start.clone())).await?;
                return Ok(session);
            }
            Err(WsConnectError::Unreachable(detail)) => last = detail,
            Err(WsConnectError::Refused { status, body }) => {
                let body = ErrorBody::parse_or_text(&body, status);
                return Err(ClientError::Api { status, body });
            }
            Err(WsConnectError::Other(detail)) => {
                return Err(ClientError::Request { url: format!("{base}{path}"), detail });
            }
        }
    }
    Err(ClientError::Unreachable { urls: urls.join(", "), detail: last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside_the_sandbox() {
        assert!(check_relative("stdout").is_ok());
        assert!(check_relative("dir/file").is_ok());
        assert!(check_relative("").is_ok());
        assert!(check_relative("../x").unwrap_err().to_string().contains(".."));
        assert!(check_relative("a/../../x").is_err());
        assert!(check_relative("/etc/passwd").unwrap_err().to_string().contains("absolute"));
        assert_eq!(sandbox_path("t.1", "stdout"), "/sandboxes/t.1/stdout");
        assert_eq!(sandbox_path("t.1", ""), "/sandboxes/t.1");
        assert_eq!(sandbox_path("t.1", "./dir/"), "/sandboxes/t.1/dir");
    }

    #[test]
    fn read_windows_are_checked_and_capped() {
        let p =
            |pairs: &[(&str, &str)]| -> Params { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        assert_eq!(read_window(&p(&[])).unwrap(), (0, DEFAULT_READ_BYTES));
        assert_eq!(read_window(&p(&[("offset", "-1")])).unwrap().0, -1);
        assert_eq!(read_window(&p(&[("length", "999999999")])).unwrap().1, MAX_READ_BYTES);
        assert!(read_window(&p(&[("offset", "-2")])).unwrap_err().to_string().contains("offset"));
        assert!(read_window(&p(&[("length", "x")])).unwrap_err().to_string().contains("length"));
    }

    #[test]
    fn exec_messages_have_a_stable_wire_form() {
        let start = ExecRequest::Start(ExecStart {
            command: vec!["hostname".into()],
            tty: Some(WindowSize { rows: 24, cols: 80 }),
            stdin: true,
        });
        let text = serde_json::to_string(&start).unwrap();
        assert_eq!(text, r#"{"type":"start","command":["hostname"],"tty":{"rows":24,"cols":80},"stdin":true}"#);
        assert_eq!(serde_json::to_string(&ExecRequest::Eof).unwrap(), r#"{"type":"eof"}"#);
        let exit = ExecEvent::Exit { code: Some(3), signal: None };
        assert_eq!(serde_json::to_string(&exit).unwrap(), r#"{"type":"exit","code":3,"signal":null}"#);
    }
}
