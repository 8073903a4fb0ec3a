//! Cosmos's package API on every master: `POST /package/{search,describe,install,uninstall,
//! list,list-versions,render,repository/add,repository/delete,repository/list,add}` and
//! `GET /capabilities`, with Cosmos's versioned media types and error bodies
//! (`{"type", "message", "data"}`, `application/vnd.dcos.package.error+json;…;version=v1`).
//!
//! Requests are accepted as `application/json` or as the operation's Cosmos request type;
//! answers use the response version the `Accept` header names (v1 when it names none;
//! `describe` also answers v2 and v3, `install` v2). Packages are looked up over the
//! repositories in priority order: cluster repositories from the replicated state, URL
//! repositories fetched by this master (`packages::remote`). Installs go through the same
//! function as `POST /v2/apps`; every change is a proposed command.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::marathon::MarathonError;
use crate::core::marathon::path::PathId;
use crate::core::marathon::validation::parse_app;
use crate::core::packages::render::{LABEL_DEFINITION, LABEL_METADATA, LABEL_NAME, LABEL_VERSION};
use crate::core::packages::state::{MAX_REPO_BYTES, cluster_uri, is_url};
use crate::core::packages::{
    Catalog, OptionsError, Package, PackageError, RenderError, RepoSource, Repository, render_app,
};
use crate::core::{Command, Response as CoreResponse};
use crate::master::Master;

/// The error media type.
pub const ERROR_TYPE: &str = "application/vnd.dcos.package.error+json;charset=utf-8;version=v1";
/// The capabilities media type.
pub const CAPABILITIES_TYPE: &str = "application/vnd.dcos.capabilities+json;charset=utf-8;version=v1";
/// Request bodies may hold a whole repository index (8 MiB of JSON) plus the request around it.
const MAX_COSMOS_BODY: usize = MAX_REPO_BYTES + 1024 * 1024;

/// The Cosmos routes (token-protected, merged into the master's router).
pub fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/capabilities", get(capabilities))
        .route("/package/search", post(search))
        .route("/package/describe", post(describe))
        .route("/package/list-versions", post(list_versions))
        .route("/package/render", post(render))
        .route("/package/install", post(install))
        .route("/package/uninstall", post(uninstall))
        .route("/package/list", post(list))
        .route("/package/repository/list", post(repo_list))
        .route("/package/repository/add", post(repo_add))
        .route("/package/repository/delete", post(repo_delete))
        .route("/package/add", post(add))
        .layer(DefaultBodyLimit::max(MAX_COSMOS_BODY))
}

/// A Cosmos error: status, `type`, `message` and optional `data`.
#[derive(Debug)]
pub struct CosmosError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub data: Option<Value>,
}

impl CosmosError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>, data: Option<Value>) -> CosmosError {
        CosmosError { status, kind, message: message.into(), data }
    }

    fn bad(kind: &'static str, message: impl Into<String>, data: Value) -> CosmosError {
        CosmosError::new(StatusCode::BAD_REQUEST, kind, message, Some(data))
    }
}

impl IntoResponse for CosmosError {
    fn into_response(self) -> Response {
        let mut body = json!({"type": self.kind, "message": self.message});
        if let Some(data) = self.data {
            body["data"] = data;
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ERROR_TYPE));
        response
    }
}

impl From<crate::master::ProposeError> for CosmosError {
    fn from(e: crate::master::ProposeError) -> Self {
        let e = super::error::ApiError::from(e);
        CosmosError::new(e.status(), "ServiceUnavailable", e.to_string(), None)
    }
}

impl From<PackageError> for CosmosError {
    fn from(e: PackageError) -> Self {
        let message = e.to_string();
        match e {
            PackageError::PackageNotFound(name) => {
                CosmosError::bad("PackageNotFound", format!("Package [{name}] not found"), json!({"packageName": name}))
            }
            PackageError::VersionNotFound { name, version } => CosmosError::bad(
                "VersionNotFound",
                format!("Version [{version}] of package [{name}] not found"),
                json!({"packageName": name, "packageVersion": version}),
            ),
            PackageError::RepoNameExists(name) => {
                CosmosError::new(StatusCode::CONFLICT, "RepositoryAlreadyPresent", message, Some(json!({"name": name})))
            }
            PackageError::RepoUriExists(uri) => {
                CosmosError::new(StatusCode::CONFLICT, "RepositoryAlreadyPresent", message, Some(json!({"uri": uri})))
            }
            PackageError::RepoIndexOutOfRange { index, len } => {
                CosmosError::bad("RepositoryAddIndexOutOfBounds", message, json!({"attempted": index, "max": len}))
            }
            PackageError::RepoNotFound(which) => {
                CosmosError::bad("RepositoryNotPresent", message, json!({"name": which}))
            }
            PackageError::BadRepository { .. } | PackageError::BadRepoSource { .. } => {
                CosmosError::bad("RepositoryInvalid", message, json!({}))
            }
        }
    }
}

fn render_error(e: RenderError, name: &str, version: &str) -> CosmosError {
    let message = e.to_string();
    match e {
        RenderError::Options(OptionsError::Invalid(errors)) => {
            let list: Vec<Value> = errors
                .iter()
                .map(|e| json!({"path": e.path, "message": e.message, "instance": {"pointer": e.path}}))
                .collect();
            CosmosError::bad(
                "JsonSchemaMismatch",
                format!(
                    "Options JSON failed validation:\n{}",
                    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
                ),
                json!({"errors": list}),
            )
        }
        RenderError::Options(OptionsError::NotAllowed) => CosmosError::bad(
            "OptionsNotAllowed",
            format!("Package [{name}] version [{version}] takes no options: it has no config.json"),
            json!({"packageName": name, "packageVersion": version}),
        ),
        RenderError::NoTemplate(_) => CosmosError::bad(
            "ServiceMarathonTemplateNotFound",
            format!("Package [{name}] version [{version}] does not have a Marathon template and cannot be installed"),
            json!({"packageName": name, "packageVersion": version}),
        ),
        RenderError::InvalidJson { .. } | RenderError::NotAnObject(_) => {
            CosmosError::bad("MarathonTemplateMustBeJsonObject", message, json!({"packageName": name}))
        }
        RenderError::BadAppId { id, .. } => CosmosError::bad("InvalidAppId", message, json!({"appId": id})),
        _ => CosmosError::bad("RenderFailed", message, json!({"packageName": name, "packageVersion": version})),
    }
}

fn marathon_error(e: MarathonError, app_id: &str) -> CosmosError {
    match e {
        MarathonError::Conflict(message) if message.contains("app with id") => CosmosError::new(
            StatusCode::CONFLICT,
            "MarathonAppAlreadyExists",
            format!("A Marathon app with the id [{app_id}] already exists"),
            Some(json!({"appId": app_id})),
        ),
        MarathonError::Conflict(message) => {
            CosmosError::new(StatusCode::CONFLICT, "MarathonGroupConflict", message, Some(json!({"appId": app_id})))
        }
        MarathonError::Locked(deployments) => CosmosError::new(
            StatusCode::CONFLICT,
            "MarathonAppLocked",
            format!("The app [{app_id}] is locked by deployments {}", deployments.join(", ")),
            Some(json!({"appId": app_id, "deployments": deployments})),
        ),
        MarathonError::Invalid(v) => CosmosError::bad(
            "MarathonBadResponse",
            format!(
                "Marathon refused the app [{app_id}]: {}",
                v.details.iter().map(|d| format!("{}: {}", d.path, d.errors.join("; "))).collect::<Vec<_>>().join(", ")
            ),
            json!({"appId": app_id, "errors": v.details}),
        ),
        MarathonError::NotFound(message) | MarathonError::BadRequest(message) => {
            CosmosError::bad("MarathonBadResponse", message, json!({"appId": app_id}))
        }
        MarathonError::Api(e) => CosmosError::new(e.status(), "MarathonGenericError", e.to_string(), None),
    }
}

/// One Cosmos operation: its request and response media types and the response versions.
struct Op {
    request: &'static str,
    response: &'static str,
    versions: &'static [&'static str],
}

const SEARCH: Op = Op { request: "package.search-request", response: "package.search-response", versions: &["v1"] };
const DESCRIBE: Op =
    Op { request: "package.describe-request", response: "package.describe-response", versions: &["v1", "v2", "v3"] };
const LIST_VERSIONS: Op =
    Op { request: "package.list-versions-request", response: "package.list-versions-response", versions: &["v1"] };
const RENDER: Op = Op { request: "package.render-request", response: "package.render-response", versions: &["v1"] };
const INSTALL: Op =
    Op { request: "package.install-request", response: "package.install-response", versions: &["v1", "v2"] };
const UNINSTALL: Op =
    Op { request: "package.uninstall-request", response: "package.uninstall-response", versions: &["v1"] };
const LIST: Op = Op { request: "package.list-request", response: "package.list-response", versions: &["v1"] };
const REPO_LIST: Op =
    Op { request: "package.repository.list-request", response: "package.repository.list-response", versions: &["v1"] };
const REPO_ADD: Op =
    Op { request: "package.repository.add-request", response: "package.repository.add-response", versions: &["v1"] };
const REPO_DELETE: Op = Op {
    request: "package.repository.delete-request",
    response: "package.repository.delete-response",
    versions: &["v1"],
};
const ADD: Op = Op { request: "universe.package", response: "package.add-response", versions: &["v1"] };

/// `type/subtype` in lowercase and the `version` parameter of a media type.
fn media(text: &str) -> (String, Option<String>) {
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let version = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("version"))
        .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
    (essence, version)
}

impl Op {
    fn request_essence(&self) -> String {
        format!("application/vnd.dcos.{}+json", self.request)
    }

    fn response_essence(&self) -> String {
        format!("application/vnd.dcos.{}+json", self.response)
    }

    /// Checks a request's media types and reads its body: the response version to answer with
    /// and the request.
    fn accept<T: DeserializeOwned>(&self, headers: &HeaderMap, body: &[u8]) -> Result<(&'static str, T), CosmosError> {
        self.check_request(headers)?;
        let version = self.response_version(headers)?;
        Ok((version, parse(body)?))
    }

    /// Checks the request's `Content-Type` (absent, `application/json` or this operation's).
    fn check_request(&self, headers: &HeaderMap) -> Result<(), CosmosError> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
        let text = value.to_str().unwrap_or("");
        let (essence, _) = media(text);
        if essence == "application/json" || essence == self.request_essence() {
            return Ok(());
        }
        Err(CosmosError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedContentType",
            format!(
                "Unsupported Content-Type [{text}]: expected application/json or {};charset=utf-8;version=v1",
                self.request_essence()
            ),
            Some(
                json!({"supported": [format!("{};charset=utf-8;version=v1", self.request_essence()), "application/json"], "found": text}),
            ),
        ))
    }

    /// The response version `Accept` asks for: the first of this operation's types it names
    /// with a version answered here; v1 when it names none; 406 when it names only others.
    fn response_version(&self, headers: &HeaderMap) -> Result<&'static str, CosmosError> {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut named = false;
        for entry in accept.split(',') {
            let (essence, version) = media(entry);
            if essence != self.response_essence() {
                continue;
            }
            named = true;
            let version = version.unwrap_or_else(|| "v1".into());
            if let Some(v) = self.versions.iter().find(|v| **v == version) {
                return Ok(v);
            }
        }
        if named {
            let supported: Vec<String> = self
                .versions
                .iter()
                .map(|v| format!("{};charset=utf-8;version={v}", self.response_essence()))
                .collect();
            return Err(CosmosError::new(
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                format!("Accept [{accept}] names no supported version; supported: {}", supported.join(", ")),
                Some(json!({"supported": supported})),
            ));
        }
        Ok("v1")
    }

    fn respond(&self, version: &str, body: Value) -> Response {
        let mut response = (StatusCode::OK, body.to_string()).into_response();
        let value = format!("{};charset=utf-8;version={version}", self.response_essence());
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        response
    }
}

/// Parses a request body; an empty body is `{}`. Errors name the field.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, CosmosError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid request body at `{path}`: {inner}")
        };
        CosmosError::bad("MalformedRequest", message, json!({"field": path}))
    })
}

/// The repositories in priority order with their URIs: cluster ones from the state, URL ones
/// fetched (or cached) by this master. A URL repository that cannot be read fails the request.
async fn repositories(master: &Master) -> Result<Vec<(String, Arc<Repository>)>, CosmosError> {
    master.read_barrier().await?;
    let sources: Vec<(RepoSource, Option<Repository>)> = {
        let state = master.state.read().expect("state lock");
        state.packages.repos.repos.iter().map(|r| (r.clone(), state.packages.content.get(&r.name).cloned())).collect()
    };
    let mut out = Vec::with_capacity(sources.len());
    for (source, content) in sources {
        let repo = match content {
            Some(repo) => Arc::new(repo),
            None => master.package_repos.get(&source.uri, false).await.map_err(|e| {
                CosmosError::bad("RepositoryUriConnection", e.to_string(), json!({"uri": e.url, "name": source.name}))
            })?,
        };
        out.push((source.uri, repo));
    }
    Ok(out)
}

fn catalog(repos: &[(String, Arc<Repository>)]) -> Catalog<'_> {
    Catalog::new(repos.iter().map(|(uri, r)| (uri.as_str(), r.as_ref())).collect())
}

async fn capabilities() -> Response {
    let body = json!({"capabilities": [{"name": "PACKAGE_MANAGEMENT"}]});
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CAPABILITIES_TYPE));
    response
}

#[derive(Deserialize)]
struct SearchRequest {
    #[serde(default)]
    query: Option<String>,
}

async fn search(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, request): (_, SearchRequest) = SEARCH.accept(&headers, &body)?;
    let repos = repositories(&master).await?;
    let query = request.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let packages = catalog(&repos).search(query);
    Ok(SEARCH.respond(version, json!({ "packages": packages })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    package_name: String,
    #[serde(default)]
    package_version: Option<String>,
}

/// Cosmos's package details (the metadata part of a package).
fn details(p: &Package) -> Value {
    let mut v = json!({
        "packagingVersion": p.packaging_version,
        "name": p.name,
        "version": p.version,
        "maintainer": p.maintainer,
        "description": p.description,
        "tags": p.tags,
        "selected": p.selected.unwrap_or(false),
        "framework": p.framework.unwrap_or(false),
    });
    let optional = [
        ("scm", p.scm.clone().map(Value::from)),
        ("website", p.website.clone().map(Value::from)),
        ("preInstallNotes", p.pre_install_notes.clone().map(Value::from)),
        ("postInstallNotes", p.post_install_notes.clone().map(Value::from)),
        ("postUninstallNotes", p.post_uninstall_notes.clone().map(Value::from)),
        ("licenses", p.licenses.as_ref().and_then(|l| serde_json::to_value(l).ok())),
        ("releaseVersion", Some(Value::from(p.release_version))),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            v[key] = value;
        }
    }
    v
}

async fn describe(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, request): (_, DescribeRequest) = DESCRIBE.accept(&headers, &body)?;
    let repos = repositories(&master).await?;
    let (package, _) = catalog(&repos).describe(&request.package_name, request.package_version.as_deref())?;
    let body = match version {
        "v1" => {
            let mut v = json!({ "package": details(package) });
            if let Some(Ok(template)) = package.template() {
                v["marathonMustache"] = Value::from(template);
            }
            if let Some(config) = &package.config {
                v["config"] = Value::Object(config.clone());
            }
            if let Some(resource) = &package.resource {
                v["resource"] = serde_json::to_value(resource).unwrap_or(Value::Null);
            }
            if let Some(command) = &package.command {
                v["command"] = command.clone();
            }
            v
        }
        _ => json!({ "package": package }),
    };
    Ok(DESCRIBE.respond(version, body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListVersionsRequest {
    /// (`includePackageVersions` changes nothing: the versions are always listed.)
    package_name: String,
}

async fn list_versions(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CosmosError> {
    let (version, request): (_, ListVersionsRequest) = LIST_VERSIONS.accept(&headers, &body)?;
    let repos = repositories(&master).await?;
    let versions = catalog(&repos).list_versions(&request.package_name)?;
    // Cosmos v1 writes release versions as strings.
    let results: Map<String, Value> = versions.into_iter().map(|(v, r)| (v, Value::from(r.to_string()))).collect();
    Ok(LIST_VERSIONS.respond(version, json!({ "results": results })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenderRequest {
    package_name: String,
    #[serde(default)]
    package_version: Option<String>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    app_id: Option<String>,
}

async fn render(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, request): (_, RenderRequest) = RENDER.accept(&headers, &body)?;
    let repos = repositories(&master).await?;
    let (package, source) = catalog(&repos).describe(&request.package_name, request.package_version.as_deref())?;
    let options = request.options.unwrap_or_default();
    let rendered = render_app(package, &options, source, request.app_id.as_deref())
        .map_err(|e| render_error(e, &package.name, &package.version))?;
    Ok(RENDER.respond(version, json!({ "marathonJson": rendered.app })))
}

async fn install(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, request): (_, RenderRequest) = INSTALL.accept(&headers, &body)?;
    let repos = repositories(&master).await?;
    let (package, source) = catalog(&repos).describe(&request.package_name, request.package_version.as_deref())?;
    let options = request.options.unwrap_or_default();
    let rendered = render_app(package, &options, source, request.app_id.as_deref())
        .map_err(|e| render_error(e, &package.name, &package.version))?;
    let shown_id = rendered.app.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    let app =
        parse_app(&rendered.app, &PathId::root()).map_err(|e| marathon_error(MarathonError::Invalid(e), &shown_id))?;
    let app_id = app.id.to_string();
    let (app_id, deployment_id) =
        super::marathon::apps::create_app(&master, app, false).await.map_err(|e| marathon_error(e, &app_id))?;
    tracing::info!(package = %package.name, version = %package.version, app_id, deployment_id, "package installed");
    let mut body = json!({"packageName": package.name, "packageVersion": package.version, "appId": app_id});
    if version == "v2"
        && let Some(notes) = &package.post_install_notes
    {
        body["postInstallNotes"] = Value::from(notes.clone());
    }
    Ok(INSTALL.respond(version, body))
}

/// An installed package as its app's labels describe it.
struct Installed {
    app_id: String,
    name: String,
    version: String,
    package: Option<Value>,
}

/// Decodes `DCOS_PACKAGE_DEFINITION` (base64 envelope → gzip → package JSON), or else
/// `DCOS_PACKAGE_METADATA` (base64 JSON), of an app's labels.
fn package_from_labels(labels: &BTreeMap<String, String>) -> Option<Value> {
    let from_definition = labels.get(LABEL_DEFINITION).and_then(|text| {
        let envelope: Value = serde_json::from_slice(&STANDARD.decode(text).ok()?).ok()?;
        let data = STANDARD.decode(envelope.get("data")?.as_str()?).ok()?;
        let gzipped = envelope.pointer("/metadata/Content-Encoding").and_then(Value::as_str) == Some("gzip");
        let json = if gzipped {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&data[..]).take(64 * 1024 * 1024).read_to_end(&mut out).ok()?;
            out
        } else {
            data
        };
        serde_json::from_slice::<Value>(&json).ok()
    });
    from_definition.or_else(|| {
        let text = labels.get(LABEL_METADATA)?;
        serde_json::from_slice(&STANDARD.decode(text).ok()?).ok()
    })
}

fn installed(master: &Master) -> Vec<Installed> {
    let state = master.state.read().expect("state lock");
    state
        .marathon
        .apps
        .values()
        .filter_map(|record| {
            let labels = &record.app.labels;
            let name = labels.get(LABEL_NAME)?.clone();
            Some(Installed {
                app_id: record.app.id.to_string(),
                version: labels.get(LABEL_VERSION).cloned().unwrap_or_default(),
                package: package_from_labels(labels),
                name,
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UninstallRequest {
    package_name: String,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    all: Option<bool>,
}

async fn uninstall(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CosmosError> {
    let (version, request): (_, UninstallRequest) = UNINSTALL.accept(&headers, &body)?;
    let name = request.package_name;
    let app_id = match request.app_id.as_deref() {
        Some(id) => Some(PathId::parse(id, &PathId::root()).map_err(|message| {
            CosmosError::bad("InvalidAppId", format!("invalid app id {id:?}: {message}"), json!({"appId": id}))
        })?),
        None => None,
    };
    master.read_barrier().await?;
    let mut apps: Vec<Installed> = installed(&master).into_iter().filter(|i| i.name == name).collect();
    if let Some(id) = &app_id {
        apps.retain(|i| i.app_id == id.as_str());
        if apps.is_empty() {
            return Err(CosmosError::bad(
                "UninstallNonExistentAppForPackage",
                format!("Package [{name}] with id [{id}] is not installed"),
                json!({"packageName": name, "appId": id.as_str()}),
            ));
        }
    }
    if apps.is_empty() {
        return Err(CosmosError::bad(
            "PackageNotInstalled",
            format!("Package [{name}] is not installed"),
            json!({"packageName": name}),
        ));
    }
    if apps.len() > 1 && !request.all.unwrap_or(false) {
        let ids: Vec<&str> = apps.iter().map(|a| a.app_id.as_str()).collect();
        return Err(CosmosError::bad(
            "AmbiguousAppId",
            format!(
                "Multiple apps named [{name}] are installed: [{}]. Name one with appId (--app-id), or all of them with all (--all).",
                ids.join(", ")
            ),
            json!({"packageName": name, "appIds": ids}),
        ));
    }
    let ids: Vec<String> = apps.iter().map(|a| a.app_id.clone()).collect();
    // Like `dcos package uninstall`, a running deployment of the app does not block removal.
    let (deployment_id, _) = super::marathon::apps::remove_apps(&master, ids.clone(), true)
        .await
        .map_err(|e| marathon_error(e, &ids.join(", ")))?;
    tracing::info!(package = %name, apps = ?ids, deployment_id, "package uninstalled");
    let results: Vec<Value> = apps
        .iter()
        .map(|a| {
            let mut r = json!({"packageName": a.name, "appId": a.app_id, "packageVersion": a.version});
            if let Some(notes) = a.package.as_ref().and_then(|p| p.get("postUninstallNotes")).and_then(Value::as_str) {
                r["postUninstallNotes"] = Value::from(notes);
            }
            r
        })
        .collect();
    Ok(UNINSTALL.respond(version, json!({ "results": results })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRequest {
    #[serde(default)]
    package_name: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
}

async fn list(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, request): (_, ListRequest) = LIST.accept(&headers, &body)?;
    let app_id = request.app_id.as_deref().map(|id| PathId::parse_lenient(id, &PathId::root()).to_string());
    master.read_barrier().await?;
    let mut packages: Vec<Value> = installed(&master)
        .into_iter()
        .filter(|i| request.package_name.as_deref().is_none_or(|n| n == i.name))
        .filter(|i| app_id.as_deref().is_none_or(|id| id == i.app_id))
        .map(|i| {
            let package = i.package.unwrap_or_else(|| json!({"name": i.name, "version": i.version}));
            let mut definition = match Package::from_json(&package) {
                Ok(p) => details(&p),
                Err(_) => {
                    // Older labels (DCOS_PACKAGE_METADATA) carry the details, images included.
                    let mut d = package.clone();
                    if let Some(o) = d.as_object_mut() {
                        o.remove("images");
                    }
                    d
                }
            };
            if definition.get("name").is_none() {
                definition["name"] = Value::from(i.name.clone());
            }
            let mut information = json!({ "packageDefinition": definition });
            let resource = package.get("resource").cloned().map(|mut r| {
                if let Some(o) = r.as_object_mut() {
                    o.remove("cli");
                }
                r
            });
            let resource = resource.or_else(|| package.get("images").map(|images| json!({ "images": images })));
            if let Some(resource) = resource {
                information["resourceDefinition"] = resource;
            }
            json!({"appId": i.app_id, "packageInformation": information})
        })
        .collect();
    packages.sort_by(|a, b| a["appId"].as_str().cmp(&b["appId"].as_str()));
    Ok(LIST.respond(version, json!({ "packages": packages })))
}

fn repos_body(repositories: &[RepoSource]) -> Value {
    json!({ "repositories": repositories })
}

async fn repo_list(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CosmosError> {
    let (version, _): (_, Map<String, Value>) = REPO_LIST.accept(&headers, &body)?;
    master.read_barrier().await?;
    let repos = master.state.read().expect("state lock").packages.repos.repos.clone();
    Ok(REPO_LIST.respond(version, repos_body(&repos)))
}

#[derive(Deserialize)]
struct RepoAddRequest {
    name: String,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    index: Option<usize>,
    /// medos: the index document of a repository uploaded to the cluster.
    #[serde(default)]
    content: Option<Value>,
}

/// Turns a refused package command into an error: the state's message, with the field it names.
fn rejected(kind: &'static str, message: String) -> CosmosError {
    if message.contains("already in the list") {
        return CosmosError::new(StatusCode::CONFLICT, "RepositoryAlreadyPresent", message, Some(json!({})));
    }
    let kind = if message.contains("out of range") { "RepositoryAddIndexOutOfBounds" } else { kind };
    CosmosError::new(StatusCode::BAD_REQUEST, kind, message, Some(json!({})))
}

async fn repo_add(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, request): (_, RepoAddRequest) = REPO_ADD.accept(&headers, &body)?;
    let uri = match (&request.content, request.uri) {
        (Some(_), None) => cluster_uri(&request.name),
        (Some(_), Some(uri)) if uri == cluster_uri(&request.name) => uri,
        (Some(_), Some(uri)) => {
            return Err(CosmosError::bad(
                "MalformedRequest",
                format!(
                    "uri: a repository with content is held by the cluster as {:?}; got {uri:?}",
                    cluster_uri(&request.name)
                ),
                json!({"field": "uri"}),
            ));
        }
        (None, Some(uri)) if is_url(&uri) => {
            // Read it once now, so a repository that cannot be read is never added.
            master.package_repos.get(&uri, true).await.map_err(|e| {
                CosmosError::bad("RepositoryUriConnection", e.to_string(), json!({"uri": e.url, "name": request.name}))
            })?;
            uri
        }
        (None, Some(uri)) => {
            return Err(CosmosError::bad(
                "UnsupportedRepositoryUri",
                format!(
                    "uri: {uri:?} is not an http:// or https:// URL (upload files and directories with `medos package repo add`)"
                ),
                json!({"uri": uri}),
            ));
        }
        (None, None) => {
            return Err(CosmosError::bad(
                "MalformedRequest",
                "invalid request body: `uri` is required (or `content` for a repository the cluster holds)",
                json!({"field": "uri"}),
            ));
        }
    };
    if let Some(content) = &request.content {
        let size = serde_json::to_vec(content).map(|b| b.len()).unwrap_or(usize::MAX);
        if size > MAX_REPO_BYTES {
            return Err(CosmosError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RepositoryTooLarge",
                format!(
                    "content: the repository index is {size} bytes; the cluster stores at most {MAX_REPO_BYTES} bytes (8 MiB)"
                ),
                Some(json!({"size": size, "max": MAX_REPO_BYTES})),
            ));
        }
        // Checked here for a clear error before anything is proposed; `apply` checks again.
        Repository::from_index_json(&serde_json::to_vec(content).unwrap_or_default())?;
    }
    let command = Command::PackageRepoAdd {
        name: request.name.clone(),
        uri: uri.clone(),
        index: request.index,
        content: request.content.map(Box::new),
    };
    match master.propose(command).await? {
        CoreResponse::PackageRepos { repositories } => {
            tracing::info!(name = %request.name, uri, index = ?request.index, "package repository added");
            Ok(REPO_ADD.respond(version, repos_body(&repositories)))
        }
        CoreResponse::Rejected { message } => Err(rejected("RepositoryInvalid", message)),
        other => {
            Err(CosmosError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", format!("unexpected {other:?}"), None))
        }
    }
}

#[derive(Deserialize)]
struct RepoDeleteRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
}

async fn repo_delete(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CosmosError> {
    let (version, request): (_, RepoDeleteRequest) = REPO_DELETE.accept(&headers, &body)?;
    let Some(which) = request.name.or(request.uri) else {
        return Err(CosmosError::bad(
            "MalformedRequest",
            "invalid request body: give `name` or `uri` of the repository to delete",
            json!({"field": "name"}),
        ));
    };
    match master.propose(Command::PackageRepoRemove { name_or_uri: which.clone() }).await? {
        CoreResponse::PackageRepos { repositories } => {
            tracing::info!(repository = %which, "package repository removed");
            Ok(REPO_DELETE.respond(version, repos_body(&repositories)))
        }
        CoreResponse::Rejected { message } if message.starts_with("no repository") => {
            Err(CosmosError::bad("RepositoryNotPresent", message, json!({"name": which})))
        }
        CoreResponse::Rejected { message } => Err(rejected("RepositoryInvalid", message)),
        other => {
            Err(CosmosError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", format!("unexpected {other:?}"), None))
        }
    }
}

/// `POST /package/add`: one package (Universe package JSON, packagingVersion 3.0 to 5.0) into
/// the cluster repository `local`; answers the package.
async fn add(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Result<Response, CosmosError> {
    let (version, package): (_, Value) = ADD.accept(&headers, &body)?;
    let command = Command::PackageAdd { package: Box::new(package) };
    match master.propose(command).await? {
        CoreResponse::PackageAdded { name, version: package_version, replaced } => {
            tracing::info!(name, version = %package_version, replaced, "package added to the local repository");
            let state = master.state.read().expect("state lock");
            let added = state
                .packages
                .content
                .get(crate::core::packages::state::LOCAL_REPO)
                .and_then(|r| r.packages.iter().find(|p| p.name == name && p.version == package_version))
                .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                .unwrap_or_else(|| json!({"name": name, "version": package_version}));
            Ok(ADD.respond(version, added))
        }
        CoreResponse::Rejected { message } => Err(CosmosError::bad("InvalidPackage", message, json!({}))),
        other => {
            Err(CosmosError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", format!("unexpected {other:?}"), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_a_version() {
        let mut h = HeaderMap::new();
        assert_eq!(DESCRIBE.response_version(&h).unwrap(), "v1");
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/vnd.dcos.package.describe-response+json;charset=utf-8;version=v9, application/vnd.dcos.package.describe-response+json;charset=utf-8;version=v3",
            ),
        );
        assert_eq!(DESCRIBE.response_version(&h).unwrap(), "v3");
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.dcos.package.search-response+json;version=v2"),
        );
        assert_eq!(SEARCH.response_version(&h).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(INSTALL.response_version(&h).unwrap(), "v1");
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(INSTALL.check_request(&h).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.dcos.universe.package+json;charset=utf-8;version=v4"),
        );
        assert!(ADD.check_request(&h).is_ok());
    }
}
