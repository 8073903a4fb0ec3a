//! The agent's HTTPS API, for masters only (client certificates with `OU=master`): Mesos's
//! files API over the task sandboxes, and `exec` into running tasks. Operators reach it
//! through a master ([`crate::api::sandbox`] has the wire types and the proxy).
//!
//! Files are named by virtual paths `/sandboxes/TASK_ID/REL`, served from
//! `WORK_DIR/sandboxes/TASK_ID/REL`. A sandbox belongs to its task's user, who may plant
//! symbolic links in it, so files are opened with `openat2(RESOLVE_BENEATH)` below the
//! sandbox directory: `..`, absolute paths and links that lead outside are refused by the
//! kernel, without a window between a check and the open.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::executor::{Containers, Executor};
use super::runtime::{CommandSpec, ExecSpec, TtySize};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::sandbox::{
    ExecEvent, ExecRequest, ExecStart, FileChunk, FileInfo, SANDBOXES, STDERR, STDIN, STDOUT, read_window,
};
use crate::api::server::ConnInfo;
use crate::core::TaskState;
use crate::pki::Role;

/// How long output may still arrive after an exec'd process ended (a background child that
/// keeps the pipes open does not hold the session forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How long a client may take to send the start message.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the API serves.
pub struct AgentApi {
    /// `WORK_DIR/sandboxes`.
    pub sandboxes: PathBuf,
    pub executor: Arc<Executor>,
    pub containers: Arc<dyn Containers>,
}

/// The agent's routes; every one requires a master's client certificate.
pub fn router(api: Arc<AgentApi>) -> Router {
    Router::new()
        .route("/files/read", get(read))
        .route("/files/read.json", get(read))
        .route("/files/browse", get(browse))
        .route("/files/browse.json", get(browse))
        .route("/exec/{task_id}", get(exec))
        .route_layer(axum::middleware::from_fn(require_master))
        .fallback(not_found)
        .with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("the agent serves /files/read, /files/browse and /exec/TASK_ID".into())
}

/// Admits only masters of this cluster (verified client certificate with `OU=master`).
pub async fn require_master(req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<ConnInfo>().and_then(|i| i.peer.as_ref()) {
        Some(peer) if peer.role == Role::Master => Ok(next.run(req).await),
        _ => Err(ApiError::Forbidden(
            "the agent API accepts only masters' client certificates; go through a master \
             (`medos task log`, `medos task exec`, /v1/tasks/ID/files)"
                .into(),
        )),
    }
}

/// The bound API listener, before it serves.
pub struct ApiServer {
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    /// The URL advertised to the masters.
    pub url: String,
}

impl ApiServer {
    /// Binds `listen` (None: the agent serves no API). Binding before registering lets the
    /// agent advertise the port it really got (`listen = "127.0.0.1:0"` in tests).
    pub async fn bind(config: &super::AgentConfig) -> Result<Option<Self>, super::AgentError> {
        let Some(addr) = config.listen else { return Ok(None) };
        let tls = Arc::new(config.tls.server_config()?);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            super::AgentError::Other(format!("cannot listen on {addr} (setting `listen`): {e}; choose a free port"))
        })?;
        let bound =
            listener.local_addr().map_err(|e| super::AgentError::Other(format!("the API listener on {addr}: {e}")))?;
        Ok(Some(ApiServer { listener, tls, url: config.advertised_api(bound) }))
    }

    /// Serves until `shutdown` turns true.
    pub fn spawn(self, api: AgentApi, shutdown: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tracing::info!(url = %self.url, "agent API listening");
        tokio::spawn(crate::api::server::serve(self.listener, self.tls, router(Arc::new(api)), shutdown))
    }
}

/// A parsed virtual path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SandboxPath {
    task_id: String,
    /// Components below the sandbox (none: the sandbox itself).
    rel: Vec<String>,
    /// As the client wrote it, for messages.
    shown: String,
}

impl SandboxPath {
    fn parse(path: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| ApiError::BadRequest(format!("path {path:?}: {why}"));
        if path.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let rest = path
            .strip_prefix(SANDBOXES)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad(&format!("sandbox paths look like {SANDBOXES}/TASK_ID/stdout")))?;
        let mut parts = rest.split('/').filter(|c| !c.is_empty() && *c != ".");
        let task_id = parts.next().ok_or_else(|| bad("name a task's sandbox"))?.to_string();
        let rel: Vec<String> = parts.map(String::from).collect();
        if task_id == ".." || rel.iter().any(|c| c == "..") {
            return Err(bad("'..' is refused; paths stay inside the task's sandbox"));
        }
        Ok(SandboxPath { task_id, rel, shown: path.to_string() })
    }

    fn child(&self, name: &str) -> String {
        let mut parts = vec![SANDBOXES.to_string(), self.task_id.clone()];
        parts.extend(self.rel.iter().cloned());
        parts.push(name.to_string());
        parts.join("/")
    }
}

fn errno_error(path: &SandboxPath, e: Errno) -> ApiError {
    let shown = &path.shown;
    match e {
        Errno::XDEV => ApiError::Forbidden(format!(
            "{shown} leads outside the sandbox of task {} (through a symbolic link); refused",
            path.task_id
        )),
        Errno::NOENT => ApiError::NotFound(format!("no file {shown} on this agent")),
        Errno::NOTDIR => ApiError::NotFound(format!("{shown}: a part of the path is not a directory")),
        Errno::LOOP => ApiError::BadRequest(format!("{shown}: too many levels of symbolic links")),
        Errno::ACCESS => ApiError::Forbidden(format!("{shown}: permission denied")),
        e => ApiError::Internal(format!("opening {shown}: {e}")),
    }
}

impl AgentApi {
    /// Opens a file or directory inside a task's sandbox, never outside it.
    fn open(&self, path: &SandboxPath, directory: bool) -> Result<OwnedFd, ApiError> {
        let root = self.sandboxes.join(&path.task_id);
        let root_fd = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP => {
                ApiError::NotFound(format!("task {} has no sandbox on this agent", path.task_id))
            }
            e => ApiError::Internal(format!("opening the sandbox of task {}: {e}", path.task_id)),
        })?;
        let rel = if path.rel.is_empty() { ".".to_string() } else { path.rel.join("/") };
        // NONBLOCK: opening a FIFO must not hang; non-regular files are refused after fstat.
        let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        if directory {
            flags |= OFlags::DIRECTORY;
        }
        match rustix::fs::openat2(
            &root_fd,
            rel.as_str(),
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOSYS) => self.open_checked(&root, &rel, path, flags),
            Err(Errno::NOTDIR) if directory => {
                Err(ApiError::BadRequest(format!("{} is a file; read it with files/read", path.shown)))
            }
            Err(e) => Err(errno_error(path, e)),
        }
    }

    /// Kernels before 5.6 have no `openat2`: resolve, check, then open without following.
    fn open_checked(
        &self,
        root: &std::path::Path,
        rel: &str,
        path: &SandboxPath,
        flags: OFlags,
    ) -> Result<OwnedFd, ApiError> {
        let io = |e: std::io::Error| errno_error(path, Errno::from_io_error(&e).unwrap_or(Errno::IO));
        let root = root.canonicalize().map_err(io)?;
        let target = root.join(rel).canonicalize().map_err(io)?;
        if !target.starts_with(&root) {
            return Err(errno_error(path, Errno::XDEV));
        }
        rustix::fs::open(&target, flags | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| errno_error(path, e))
    }
}

/// Decodes UTF-8, turning each byte that is not part of a character into `?` (so the text is
/// as long as the bytes) and leaving out a character cut off at the end. Returns the text.
pub fn decode_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                out.push_str(text);
                return out;
            }
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                out.push_str(&String::from_utf8_lossy(good));
                match e.error_len() {
                    Some(n) => {
                        out.extend(std::iter::repeat_n('?', n));
                        bytes = &bad[n..];
                    }
                    // An incomplete character at the end: the next read starts with it.
                    None => return out,
                }
            }
        }
    }
}

fn path_param(params: &Params) -> Result<SandboxPath, ApiError> {
    let path = params.get("path").ok_or_else(|| {
        ApiError::BadRequest(format!("query parameter path: give a sandbox path like {SANDBOXES}/TASK_ID/stdout"))
    })?;
    SandboxPath::parse(path)
}

type QueryResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("file access failed: {e}")))?
}

/// `GET /files/read?path=/sandboxes/TASK/FILE&offset=N&length=N` (Mesos's `read.json`).
/// `offset=-1` answers with the file's size and no data; an offset past the end answers with
/// the size too (the file was rotated or truncated).
async fn read(State(api): State<Arc<AgentApi>>, query: QueryResult) -> Result<Json<FileChunk>, ApiError> {
    let Query(params) = query?;
    let path = path_param(&params)?;
    let (offset, length) = read_window(&params)?;
    let chunk = blocking(move || {
        let file = File::from(api.open(&path, false)?);
        let meta = file.metadata().map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.shown)))?;
        if meta.is_dir() {
            return Err(ApiError::BadRequest(format!("{} is a directory; list it with files/browse", path.shown)));
        }
        if !meta.is_file() {
            return Err(ApiError::BadRequest(format!("{} is not a regular file", path.shown)));
        }
        let size = meta.len();
        let Ok(offset) = u64::try_from(offset) else { return Ok(FileChunk { data: String::new(), offset: size }) };
        if offset >= size {
            return Ok(FileChunk { data: String::new(), offset: offset.min(size) });
        }
        let want = usize::try_from(length.min(size - offset)).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ApiError::Internal(format!("reading {}: {e}", path.shown))),
            }
        }
        Ok(FileChunk { data: decode_utf8(&buf[..filled]), offset })
    })
    .await?;
    Ok(Json(chunk))
}

/// `ls -l` style mode string.
fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (shift, special, on, off) in [(6, 0o4000, 's', 'S'), (3, 0o2000, 's', 'S'), (0, 0o1000, 't', 'T')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

// `struct stat`'s field types differ between architectures; `from` converts where they do.
#[allow(clippy::useless_conversion)]
fn file_info(path: String, st: &rustix::fs::Stat) -> FileInfo {
    FileInfo {
        path,
        nlink: u64::from(st.st_nlink),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: i64::from(st.st_mtime),
        mode: mode_string(u32::from(st.st_mode)),
        uid: user_name(u32::from(st.st_uid)),
        gid: group_name(u32::from(st.st_gid)),
    }
}

/// `GET /files/browse?path=/sandboxes/TASK[/DIR]` (Mesos's `browse.json`).
async fn browse(State(api): State<Arc<AgentApi>>, query: QueryResult) -> Result<Json<Vec<FileInfo>>, ApiError> {
    let Query(params) = query?;
    let path = path_param(&params)?;
    let entries = blocking(move || {
        let fd = api.open(&path, true)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| errno_error(&path, e))?;
        let mut entries = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| errno_error(&path, e))?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            // A file that vanished in between is simply not listed.
            let Ok(st) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            entries.push(file_info(path.child(&name.to_string_lossy()), &st));
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    })
    .await?;
    Ok(Json(entries))
}

/// `GET /exec/{task_id}` (WebSocket; protocol in [`crate::api::sandbox`]).
async fn exec(
    State(api): State<Arc<AgentApi>>,
    Path(task_id): Path<String>,
    upgrade: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade =
        upgrade.map_err(|e| ApiError::BadRequest(format!("exec is a WebSocket endpoint: {}", e.body_text())))?;
    match api.executor.state_of(&task_id) {
        None => return Err(ApiError::NotFound(format!("task {task_id} does not run on this agent"))),
        Some(state) if state.is_terminal() => {
            return Err(ApiError::Conflict {
                code: "ERR_TASK_ENDED",
                message: format!("task {task_id} has ended ({}); exec needs a running task", state.as_str()),
                current_revision: None,
            });
        }
        Some(TaskState::TASK_STAGING | TaskState::TASK_STARTING) => {
            return Err(ApiError::Conflict {
                code: "ERR_TASK_STARTING",
                message: format!("task {task_id} is still starting; retry in a moment"),
                current_revision: None,
            });
        }
        Some(_) => {}
    }
    Ok(upgrade.on_upgrade(move |socket| run_exec(api, task_id, socket)))
}

type WsSink = SplitSink<WebSocket, ws::Message>;

async fn send_event(tx: &mut WsSink, event: &ExecEvent) -> bool {
    let text = serde_json::to_string(event).expect("exec events serialise");
    tx.send(ws::Message::Text(text.into())).await.is_ok()
}

async fn fail(mut tx: WsSink, message: String) {
    let _ = send_event(&mut tx, &ExecEvent::Error { message }).await;
    let _ = tx.close().await;
}

/// Waits for the client's start message.
async fn start_message(rx: &mut SplitStream<WebSocket>) -> Result<ExecStart, String> {
    loop {
        match rx.next().await {
            Some(Ok(ws::Message::Text(t))) => {
                return match serde_json::from_str::<ExecRequest>(t.as_str()) {
                    Ok(ExecRequest::Start(start)) => Ok(start),
                    Ok(other) => Err(format!("the first message must be a start message, not {other:?}")),
                    Err(e) => Err(format!("invalid start message: {e}")),
                };
            }
            Some(Ok(ws::Message::Ping(_) | ws::Message::Pong(_))) => continue,
            Some(Ok(_)) => return Err("the first message must be a JSON start message".into()),
            Some(Err(_)) | None => return Err("the client went away before starting".into()),
        }
    }
}

/// The process's input side: its stdin pipe, or the terminal's master side.
enum Input {
    Pipe(Option<pipe::Sender>),
    Pty(pipe::Sender),
}

/// Feeds the client's messages to the process until the client goes away.
async fn input_loop(mut rx: SplitStream<WebSocket>, mut input: Input) {
    while let Some(Ok(message)) = rx.next().await {
        match message {
            ws::Message::Binary(b) => {
                let Some((&STDIN, data)) = b.split_first() else { continue };
                match &mut input {
                    Input::Pipe(stdin) => {
                        if let Some(pipe) = stdin
                            && pipe.write_all(data).await.is_err()
                        {
                            // The process closed its stdin; later input goes nowhere.
                            *stdin = None;
                        }
                    }
                    Input::Pty(master) => {
                        let _ = master.write_all(data).await;
                    }
                }
            }
            ws::Message::Text(t) => match serde_json::from_str::<ExecRequest>(t.as_str()) {
                Ok(ExecRequest::Eof) => match &mut input {
                    Input::Pipe(stdin) => *stdin = None,
                    // On a terminal, end of input is the EOF character (^D).
                    Input::Pty(master) => {
                        let _ = master.write_all(&[4]).await;
                    }
                },
                Ok(ExecRequest::Resize(size)) => {
                    if let Input::Pty(master) = &input {
                        let winsize = rustix::termios::Winsize {
                            ws_row: size.rows.max(1),
                            ws_col: size.cols.max(1),
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        let _ = rustix::termios::tcsetwinsize(master, winsize);
                    }
                }
                Ok(ExecRequest::Start(_)) | Err(_) => {}
            },
            ws::Message::Close(_) => break,
            ws::Message::Ping(_) | ws::Message::Pong(_) => {}
        }
    }
}

/// Copies a pipe (or the terminal's master side) to the client until EOF. On a terminal the
/// end is `EIO`, once the process and its children closed it.
async fn pump(mut pipe: pipe::Receiver, stream: u8, tx: mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        if tx.send((stream, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
}

/// Splits a terminal's master side into a reading and a writing half for tokio. The pipe
/// types only poll and read/write the descriptor, which is all a terminal needs.
fn pty_halves(master: File) -> std::io::Result<(pipe::Receiver, pipe::Sender)> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
    let writer = master.try_clone()?;
    Ok((pipe::Receiver::from_file_unchecked(master)?, pipe::Sender::from_file_unchecked(writer)?))
}

/// One exec session: start the process, copy its I/O, report its end.
async fn run_exec(api: Arc<AgentApi>, task_id: String, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let start = match tokio::time::timeout(START_TIMEOUT, start_message(&mut rx)).await {
        Ok(Ok(start)) => start,
        Ok(Err(message)) => return fail(tx, message).await,
        Err(_) => return fail(tx, format!("no start message within {START_TIMEOUT:?}")).await,
    };
    if start.command.is_empty() || start.command[0].is_empty() {
        return fail(tx, "command: give the program to run, e.g. [\"hostname\"]".into()).await;
    }
    let mut spec = ExecSpec::new(CommandSpec::argv(start.command.clone()));
    spec.tty = start
        .tty
        .map(|w| TtySize { rows: if w.rows == 0 { 24 } else { w.rows }, cols: if w.cols == 0 { 80 } else { w.cols } });
    let mut process = match api.containers.exec(&task_id, spec).await {
        Ok(p) => p,
        Err(e) => return fail(tx, format!("cannot exec {:?} in task {task_id}: {e}", start.command)).await,
    };
    tracing::info!(task = %task_id, command = ?start.command, pid = ?process.pid, tty = start.tty.is_some(), "exec started");
    let pid = process.pid;
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(8);
    let mut pumps = Vec::new();
    let input = match process.pty.take() {
        Some(pty) => match pty_halves(pty) {
            Ok((reader, writer)) => {
                pumps.push(tokio::spawn(pump(reader, STDOUT, out_tx.clone())));
                Input::Pty(writer)
            }
            Err(e) => {
                let _ = process.signal(nix::sys::signal::Signal::SIGKILL);
                let _ = process.wait().await;
                return fail(tx, format!("cannot use the exec's terminal: {e}")).await;
            }
        },
        None => {
            for (pipe, stream) in [(process.stdout.take(), STDOUT), (process.stderr.take(), STDERR)] {
                if let Some(pipe) = pipe {
                    pumps.push(tokio::spawn(pump(pipe, stream, out_tx.clone())));
                }
            }
            // Without stdin from the client, the process reads EOF at once.
            Input::Pipe(process.stdin.take().filter(|_| start.stdin))
        }
    };
    drop(out_tx);
    let _ = send_event(&mut tx, &ExecEvent::Started { pid }).await;
    let mut input = tokio::spawn(input_loop(rx, input));

    let kill = |pid: Option<u32>| {
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    };
    let mut wait = std::pin::pin!(process.wait());
    let drain = tokio::time::sleep(Duration::from_secs(24 * 3600));
    let mut drain = std::pin::pin!(drain);
    let mut exit = None;
    let (mut output_open, mut client_gone, mut input_done) = (true, false, false);
    while exit.is_none() || output_open {
        tokio::select! {
            chunk = out_rx.recv(), if output_open => match chunk {
                Some((stream, data)) if !client_gone => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(stream);
                    frame.extend_from_slice(&data);
                    if tx.send(ws::Message::Binary(frame.into())).await.is_err() {
                        client_gone = true;
                        if exit.is_none() {
                            kill(pid);
                        }
                    }
                }
                Some(_) => {}
                None => output_open = false,
            },
            status = &mut wait, if exit.is_none() => {
                exit = Some(status);
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            _ = &mut drain, if exit.is_some() => break,
            _ = &mut input, if !input_done => {
                input_done = true;
                // The client went away: the process goes too.
                client_gone = true;
                if exit.is_none() {
                    kill(pid);
                }
            }
        }
    }
    input.abort();
    for pump in pumps {
        pump.abort();
    }
    let event = match exit {
        Some(Ok(status)) => {
            tracing::info!(task = %task_id, ?pid, code = ?status.code(), signal = ?status.signal(), "exec ended");
            ExecEvent::Exit { code: status.code(), signal: status.signal() }
        }
        Some(Err(e)) => ExecEvent::Error { message: format!("the exec'd process's end is unknown: {e}") },
        None => ExecEvent::Error { message: "the exec session ended before the process".into() },
    };
    if !client_gone {
        let _ = send_event(&mut tx, &event).await;
        let _ = tx.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_paths_name_a_sandbox_and_refuse_dot_dot() {
        let p = SandboxPath::parse("/sandboxes/t.1/dir//./stdout").unwrap();
        assert_eq!((p.task_id.as_str(), p.rel.clone()), ("t.1", vec!["dir".to_string(), "stdout".to_string()]));
        assert_eq!(p.child("x"), "/sandboxes/t.1/dir/stdout/x");
        assert!(SandboxPath::parse("/sandboxes/t.1").unwrap().rel.is_empty());
        for bad in ["/etc/passwd", "sandboxes/t/stdout", "/sandboxes/", "/sandboxes/../x", "/sandboxes/t/../../x"] {
            assert!(SandboxPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_keeps_one_character_per_undecodable_byte() {
        assert_eq!(decode_utf8(b"plain\n"), "plain\n");
        assert_eq!(decode_utf8(b"a\xffb"), "a?b");
        assert_eq!(decode_utf8("é".as_bytes()), "é");
        // A character cut at the end is left for the next read.
        assert_eq!(decode_utf8(&"aé".as_bytes()[..2]), "a");
        assert_eq!(decode_utf8(b"\xc3\xa9\xff\xfe"), "é??");
    }

    #[test]
    fn modes_look_like_ls() {
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
    }
}
