//! Parsing, normalisation and validation of Marathon app definitions, as Marathon does them.
//!
//! A request goes through the same phases as in Marathon:
//! 1. **Reading** (Marathon's generated RAML readers): types, ranges, patterns and enums of
//!    every field; defaults for absent fields; `null` counts as absent; unknown fields are
//!    ignored. All errors are reported at once with Marathon's play-json keys
//!    (`error.expected.jsstring`, `error.min`, `error.path.missing`, …) under the message
//!    `Invalid JSON`.
//! 2. **Deprecated API** checks (`ports`, `uris`, `ipAddress`, `container.docker.network`, …),
//!    then their translation to the canonical fields, with Marathon's error messages.
//! 3. **Validation** of the canonical app (Marathon's `AppValidation` and `AppDefinition`
//!    rules, plus the few medos adds because it cannot run something), all violations at once
//!    under the message `Object is not valid`.
//!
//! Paths follow Marathon: `/cpus`, `/healthChecks(0)/portIndex`, `/env/NAME/secret`, and `/`
//! for rules about the whole app.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::app::*;
use super::constraints::{Constraint, Operator};
use super::path::{PathId, matches_raml_pattern};

/// `message` of a reading error (a 422 in Marathon, like a validation error).
pub const INVALID_JSON: &str = "Invalid JSON";
/// `message` of a validation error.
pub const NOT_VALID: &str = "Object is not valid";

/// The errors at one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub path: String,
    pub errors: Vec<String>,
}

/// Marathon's 422 body: `{"message": "Object is not valid", "details": [{"path", "errors"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    pub message: String,
    pub details: Vec<Violation>,
}

impl ValidationError {
    /// One violation.
    pub fn single(message: &str, path: &str, error: impl Into<String>) -> ValidationError {
        ValidationError {
            message: message.to_string(),
            details: vec![Violation { path: path.to_string(), errors: vec![error.into()] }],
        }
    }

    /// The errors at `path`.
    pub fn errors_at(&self, path: &str) -> Vec<&str> {
        self.details.iter().filter(|v| v.path == path).flat_map(|v| v.errors.iter().map(String::as_str)).collect()
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for (i, v) in self.details.iter().enumerate() {
            write!(f, "{} {}: {}", if i == 0 { ":" } else { ";" }, v.path, v.errors.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// Collected (path, error) pairs, in the order found.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<(String, String)>);

impl Errors {
    pub(crate) fn add(&mut self, path: impl Into<String>, error: impl Into<String>) {
        let (path, error) = (path.into(), error.into());
        let path = if path.is_empty() { "/".to_string() } else { path };
        if !self.0.iter().any(|(p, e)| *p == path && *e == error) {
            self.0.push((path, error));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn into_error(self, message: &str) -> ValidationError {
        let mut details: Vec<Violation> = Vec::new();
        for (path, error) in self.0 {
            match details.iter_mut().find(|v| v.path == path) {
                Some(v) => v.errors.push(error),
                None => details.push(Violation { path, errors: vec![error] }),
            }
        }
        ValidationError { message: message.to_string(), details }
    }

    /// `Err` with `message` when anything was collected.
    pub(crate) fn check(self, message: &str) -> Result<(), ValidationError> {
        if self.is_empty() { Ok(()) } else { Err(self.into_error(message)) }
    }
}

/// What decides an app's valid roles besides its id (Marathon's `RoleSettings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleContext {
    /// Whether the app's top-level group has `enforceRole` set.
    pub enforce_role: bool,
    /// The role the app has now, when it is an update (it stays valid).
    pub existing_role: Option<String>,
}

/// The default role of an app with this id and the roles it may use: apps directly in `/`
/// use [`DEFAULT_ROLE`]; apps in a group may also use the top-level group's name, and only
/// that one when the group enforces its role.
pub fn role_settings(id: &PathId, roles: &RoleContext) -> (String, Vec<String>) {
    let mut valid: Vec<String> = Vec::new();
    let default = if id.parent().is_root() {
        valid.push(DEFAULT_ROLE.to_string());
        DEFAULT_ROLE.to_string()
    } else {
        let top = id.top_level().name().to_string();
        let default = if roles.enforce_role { top.clone() } else { DEFAULT_ROLE.to_string() };
        if !roles.enforce_role {
            valid.push(DEFAULT_ROLE.to_string());
        }
        valid.push(top);
        valid.extend(roles.existing_role.iter().cloned());
        default
    };
    let mut seen = BTreeSet::new();
    valid.retain(|r| seen.insert(r.clone()));
    (default, valid)
}

/// Parses a new app (`POST /v2/apps`): `id` relative to `base`, defaults applied, deprecated
/// fields translated, every rule checked. `version` and `versionInfo` are dropped (the
/// proposer sets them).
pub fn parse_app(json: &Value, base: &PathId) -> Result<AppDefinition, ValidationError> {
    parse_app_with(json, base, &RoleContext::default())
}

/// [`parse_app`] with the group's role settings.
pub fn parse_app_with(json: &Value, base: &PathId, roles: &RoleContext) -> Result<AppDefinition, ValidationError> {
    let mut app = pipeline(json, base, roles, "")?;
    app.version = None;
    app.version_info = None;
    Ok(app)
}

/// The whole new definition of app `id` (`PUT /v2/apps/{id}?partialUpdate=false`, and a `PUT`
/// that creates the app): the body is parsed as a new app whose `id` is `id`, whatever the body
/// says. `version` and `versionInfo` are dropped.
pub fn replace_app(id: &PathId, json: &Value, roles: &RoleContext) -> Result<AppDefinition, ValidationError> {
    let mut body = json
        .as_object()
        .cloned()
        .ok_or_else(|| ValidationError::single(INVALID_JSON, "/", "error.expected.jsobject"))?;
    body.insert("id".into(), Value::String(id.to_string()));
    parse_app_with(&Value::Object(body), &PathId::root(), roles)
}

/// Applies a partial update to an app (`PATCH /v2/apps/{id}`, and `PUT` with Marathon's default
/// `partialUpdate=true`): every field the patch gives (not `null`) replaces the current one as
/// a whole (`env`, `container`, `labels`, … are not merged key by key); deprecated fields
/// replace their canonical twins (`ports` → `portDefinitions`, `uris` → `fetch`). The `id`
/// in the patch is ignored; the result keeps `version` and `versionInfo` of `current`; the
/// whole result is validated as a new app would be. Call [`update_version`] first: a patch with
/// a `version` is a rollback, not a change.
pub fn patch_app(current: &AppDefinition, patch: &Value) -> Result<AppDefinition, ValidationError> {
    let Some(p) = patch.as_object() else {
        return Err(ValidationError::single(INVALID_JSON, "/", "error.expected.jsobject"));
    };
    // Type errors are reported against the patch itself.
    let mut errors = Errors::default();
    read_app(patch, "", &mut errors, false);
    errors.check(INVALID_JSON)?;

    let Value::Object(mut merged) = current.to_json() else { unreachable!("apps serialise to objects") };
    let given = |k: &str| p.get(k).is_some_and(|v| !v.is_null());
    if given("ports") && !given("portDefinitions") {
        merged.remove("portDefinitions");
    }
    if given("uris") && !given("fetch") {
        merged.remove("fetch");
    }
    let docker_network = p.get("container").and_then(|c| c.get("docker")).and_then(|d| d.get("network"));
    if (given("ipAddress") || docker_network.is_some_and(|n| !n.is_null())) && !given("networks") {
        merged.remove("networks");
    }
    for (k, v) in p {
        if v.is_null() || matches!(k.as_str(), "id" | "version" | "versionInfo") {
            continue;
        }
        merged.insert(k.clone(), v.clone());
    }
    merged.insert("id".into(), Value::String(current.id.to_string()));
    let roles = RoleContext { enforce_role: false, existing_role: Some(current.role.clone()) };
    let mut app = pipeline(&Value::Object(merged), &PathId::root(), &roles, "")?;
    app.version = current.version.clone();
    app.version_info = current.version_info.clone();
    Ok(app)
}

/// The version an update rolls back to: `Some` when the body gives `version` (then it may
/// only be combined with `id`, as in Marathon).
pub fn update_version(patch: &Value) -> Result<Option<String>, ValidationError> {
    let Some(p) = patch.as_object() else {
        return Err(ValidationError::single(INVALID_JSON, "/", "error.expected.jsobject"));
    };
    let Some(v) = p.get("version").filter(|v| !v.is_null()) else { return Ok(None) };
    let mut errors = Errors::default();
    let version = datetime(v, "/version", &mut errors);
    errors.check(INVALID_JSON)?;
    if p.iter().any(|(k, v)| !v.is_null() && k != "id" && k != "version") {
        return Err(ValidationError::single(
            NOT_VALID,
            "/",
            "The 'version' field may only be combined with the 'id' field.",
        ));
    }
    Ok(version)
}

/// Reads a stored definition (the JSON [`AppDefinition::to_json`] writes): types are checked
/// and deprecated fields translated, but no validation rule is applied.
pub fn read_stored_app(json: &Value) -> Result<AppDefinition, ValidationError> {
    let mut errors = Errors::default();
    let raw = read_app(json, "", &mut errors, true);
    errors.check(INVALID_JSON)?;
    let id = PathId::parse_lenient(raw.id.as_deref().unwrap_or("/"), &PathId::root());
    let role = raw.role.clone().unwrap_or_else(|| role_settings(&id, &RoleContext::default()).0);
    let version = raw.version.clone();
    let version_info = raw.version_info.clone();
    let mut app = normalize(raw, &PathId::root(), id, role).map_err(|m| ValidationError::single(NOT_VALID, "/", m))?;
    app.version = version;
    app.version_info = version_info;
    Ok(app)
}

/// Reads, translates and validates one app; `at` prefixes every path (`/apps(0)` in groups).
pub(crate) fn pipeline(
    json: &Value,
    base: &PathId,
    roles: &RoleContext,
    at: &str,
) -> Result<AppDefinition, ValidationError> {
    let mut errors = Errors::default();
    let raw = read_app(json, at, &mut errors, true);
    errors.check(INVALID_JSON)?;
    let mut errors = Errors::default();
    check_app(raw, base, roles, at, &mut errors).ok_or_else(|| errors.into_error(NOT_VALID))
}

/// Phases 2 and 3 on a read app; `None` when something was added to `errors`.
pub(crate) fn check_app(
    raw: Raw,
    base: &PathId,
    roles: &RoleContext,
    at: &str,
    errors: &mut Errors,
) -> Option<AppDefinition> {
    let before = errors.len();
    old_api_rules(&raw, at, errors);
    if errors.len() > before {
        return None;
    }
    raw_constraint_rules(&raw.constraints, at, errors);
    let id = PathId::parse_lenient(raw.id.as_deref().unwrap_or(""), base);
    let (default_role, valid_roles) = role_settings(&id, roles);
    let role = raw.role.clone().unwrap_or(default_role);
    let facts = RawFacts::of(&raw, base);
    let app = match normalize(raw, base, id, role) {
        // The proposer sets the version of a new or changed app.
        Ok(app) => AppDefinition { version: None, version_info: None, ..app },
        Err(message) => {
            errors.add(here(at), message);
            return None;
        }
    };
    canonical_rules(&app, &facts, &valid_roles, at, errors);
    (errors.len() == before).then_some(app)
}

// ---------------------------------------------------------------------------------------------
// Phase 1: reading
// ---------------------------------------------------------------------------------------------

type Obj = Map<String, Value>;

fn here(at: &str) -> String {
    if at.is_empty() { "/".to_string() } else { at.to_string() }
}

fn sub(at: &str, key: &str) -> String {
    format!("{at}/{key}")
}

fn item(at: &str, i: usize) -> String {
    format!("{at}({i})")
}

fn get<'a>(o: &'a Obj, k: &str) -> Option<&'a Value> {
    o.get(k).filter(|v| !v.is_null())
}

fn string(v: &Value, p: &str, e: &mut Errors) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            e.add(p, "error.expected.jsstring");
            None
        }
    }
}

fn string_len(v: &Value, p: &str, e: &mut Errors, min: usize, max: Option<usize>) -> Option<String> {
    let s = string(v, p, e)?;
    let n = s.chars().count();
    if n < min {
        e.add(p, "error.minLength");
        return None;
    }
    if max.is_some_and(|m| n > m) {
        e.add(p, "error.maxLength");
        return None;
    }
    Some(s)
}

fn pattern(v: &Value, p: &str, e: &mut Errors, max: Option<usize>, ok: fn(&str) -> bool) -> Option<String> {
    let s = string_len(v, p, e, 1, max)?;
    if !ok(&s) {
        e.add(p, "error.pattern");
        return None;
    }
    Some(s)
}

fn boolean(v: &Value, p: &str, e: &mut Errors) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => {
            e.add(p, "error.expected.jsboolean");
            None
        }
    }
}

/// An integer (`int32`, or `int64` when `long`) with play-json's errors and RAML's bounds.
fn int(v: &Value, p: &str, e: &mut Errors, min: i64, max: Option<i64>, long: bool) -> Option<i64> {
    let Value::Number(n) = v else {
        e.add(p, "error.expected.jsnumber");
        return None;
    };
    let limit = if long { i64::MAX } else { i64::from(i32::MAX) };
    let value = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    let Some(value) = value.filter(|x| x.abs() <= limit) else {
        e.add(p, if long { "error.expected.long" } else { "error.expected.int" });
        return None;
    };
    if value < min {
        e.add(p, "error.min");
        return None;
    }
    if max.is_some_and(|m| value > m) {
        e.add(p, "error.max");
        return None;
    }
    Some(value)
}

fn uint(v: &Value, p: &str, e: &mut Errors, max: Option<i64>) -> Option<u32> {
    int(v, p, e, 0, max, false).map(|x| x as u32)
}

fn number(v: &Value, p: &str, e: &mut Errors, min: Option<f64>, max: Option<f64>) -> Option<f64> {
    let Some(x) = v.as_f64() else {
        e.add(p, "error.expected.jsnumber");
        return None;
    };
    if min.is_some_and(|m| x < m) {
        e.add(p, "error.min");
        return None;
    }
    if max.is_some_and(|m| x > m) {
        e.add(p, "error.max");
        return None;
    }
    Some(x)
}

fn object<'a>(v: &'a Value, p: &str, e: &mut Errors) -> Option<&'a Obj> {
    match v {
        Value::Object(o) => Some(o),
        _ => {
            e.add(p, "error.expected.jsobject");
            None
        }
    }
}

fn array<'a>(v: &'a Value, p: &str, e: &mut Errors) -> Option<&'a Vec<Value>> {
    match v {
        Value::Array(a) => Some(a),
        _ => {
            e.add(p, "error.expected.jsarray");
            None
        }
    }
}

/// Every item read with `f` (items that fail are left out; their errors are recorded).
fn items<T>(
    v: &Value,
    p: &str,
    e: &mut Errors,
    mut f: impl FnMut(&Value, &str, &mut Errors) -> Option<T>,
) -> Option<Vec<T>> {
    let a = array(v, p, e)?;
    Some(a.iter().enumerate().filter_map(|(i, x)| f(x, &item(p, i), e)).collect())
}

/// Like [`items`] for RAML's `uniqueItems` arrays (Scala sets): duplicates are dropped.
fn unique_items<T: PartialEq>(
    v: &Value,
    p: &str,
    e: &mut Errors,
    f: impl FnMut(&Value, &str, &mut Errors) -> Option<T>,
) -> Option<Vec<T>> {
    let all = items(v, p, e, f)?;
    let mut out: Vec<T> = Vec::with_capacity(all.len());
    for x in all {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    Some(out)
}

fn str_map(v: &Value, p: &str, e: &mut Errors) -> Option<BTreeMap<String, String>> {
    let o = object(v, p, e)?;
    Some(o.iter().filter_map(|(k, x)| string(x, &sub(p, k), e).map(|s| (k.clone(), s))).collect())
}

/// An enum value, compared case-insensitively as Marathon's generated readers do.
fn one_of<T: Copy>(v: &Value, p: &str, e: &mut Errors, options: &[(&str, T)]) -> Option<T> {
    let found = v.as_str().and_then(|s| options.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)));
    match found {
        Some((_, t)) => Some(*t),
        None => {
            e.add(p, "error.unknown.enum.literal");
            None
        }
    }
}

/// An ISO-8601 date-time with an offset (`2015-09-30T09:09:17.614Z`).
fn datetime(v: &Value, p: &str, e: &mut Errors) -> Option<String> {
    let s = string(v, p, e)?;
    if is_datetime(&s) {
        Some(s)
    } else {
        e.add(p, "error.expected.date.isoformat");
        None
    }
}

fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' || !digits(8..10) {
        return false;
    }
    if !(b[10] == b'T' || b[10] == b't') || !digits(11..13) || b[13] != b':' || !digits(14..16) || b[16] != b':' {
        return false;
    }
    if !digits(17..19) {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') | Some(b'z') => i + 1 == b.len(),
        Some(b'+') | Some(b'-') => b.len() == i + 6 && digits(i + 1..i + 3) && b[i + 3] == b':' && digits(i + 4..i + 6),
        _ => false,
    }
}

/// RAML `LegacyName`: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`.
fn legacy_name(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(ok) && s.ends_with(ok) && s.chars().all(|c| ok(c) || c == '-')
}

/// RAML `NetworkName`: `^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$`.
fn network_name(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(ok) && s.ends_with(ok) && s.chars().all(|c| ok(c) || c == '-' || c == '_')
}

/// Marathon's `executor` pattern, matched in full: `""`, `//cmd`, or a path.
fn executor_pattern(s: &str) -> bool {
    if s.is_empty() || s == "//cmd" {
        return true;
    }
    let rest = s.strip_prefix('/').unwrap_or(s);
    !rest.is_empty() && rest.split('/').all(|part| !part.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DockerNetwork {
    Bridge,
    Host,
    None,
    User,
}

#[derive(Debug, Clone)]
pub(crate) struct RawDocker {
    pub(crate) spec: DockerSpec,
    pub(crate) network: Option<DockerNetwork>,
    pub(crate) port_mappings: Option<Vec<PortMapping>>,
}

#[derive(Debug, Clone)]
pub(crate) struct RawContainer {
    pub(crate) kind: ContainerKind,
    pub(crate) docker: Option<RawDocker>,
    pub(crate) volumes: Vec<Value>,
    pub(crate) port_mappings: Option<Vec<PortMapping>>,
    pub(crate) linux_info: Option<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct DiscoveryPort {
    number: u32,
    name: String,
    protocol: String,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct IpAddress {
    discovery_ports: Vec<DiscoveryPort>,
    labels: BTreeMap<String, String>,
    network_name: Option<String>,
}

/// An app as read, before translation (Marathon's `raml.App`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Raw {
    pub(crate) id: Option<String>,
    cmd: Option<String>,
    args: Vec<String>,
    user: Option<String>,
    env: BTreeMap<String, EnvValue>,
    instances: Option<u32>,
    cpus: Option<f64>,
    mem: Option<f64>,
    disk: Option<f64>,
    gpus: Option<u32>,
    executor: Option<String>,
    constraints: Vec<Vec<String>>,
    fetch: Vec<Artifact>,
    port_definitions: Option<Vec<PortDefinition>>,
    ports: Option<Vec<u32>>,
    uris: Option<Vec<String>>,
    require_ports: Option<bool>,
    backoff_seconds: Option<u64>,
    backoff_factor: Option<f64>,
    max_launch_delay_seconds: Option<u64>,
    container: Option<RawContainer>,
    health_checks: Vec<AppHealthCheck>,
    check: Option<Value>,
    readiness_checks: Vec<ReadinessCheck>,
    dependencies: Vec<String>,
    upgrade_strategy: Option<UpgradeStrategy>,
    labels: BTreeMap<String, String>,
    accepted_resource_roles: Option<Vec<String>>,
    ip_address: Option<IpAddress>,
    networks: Vec<Network>,
    secrets: BTreeMap<String, SecretDef>,
    residency: Option<Value>,
    executor_resources: Option<Value>,
    resource_limits: Option<Value>,
    kill_selection: Option<KillSelection>,
    unreachable_strategy: Option<UnreachableStrategy>,
    task_kill_grace_period_seconds: Option<u64>,
    tty: Option<bool>,
    pub(crate) role: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) version_info: Option<VersionInfo>,
}

const PROTOCOLS: [(&str, &str); 3] = [("tcp", "tcp"), ("udp", "udp"), ("udp,tcp", "udp,tcp")];

fn protocol(v: &Value, p: &str, e: &mut Errors) -> Option<String> {
    one_of(v, p, e, &PROTOCOLS).map(str::to_string)
}

/// Reads one app object at path `at`. `require_id` is false for partial updates.
pub(crate) fn read_app(v: &Value, at: &str, e: &mut Errors, require_id: bool) -> Raw {
    let mut raw = Raw::default();
    let Some(o) = object(v, &here(at), e) else { return raw };
    let p = |k: &str| sub(at, k);

    match get(o, "id") {
        Some(x) => raw.id = pattern(x, &p("id"), e, None, matches_raml_pattern),
        None if require_id => e.add(p("id"), "error.path.missing"),
        None => {}
    }
    if let Some(x) = get(o, "cmd") {
        raw.cmd = string_len(x, &p("cmd"), e, 1, None);
    }
    if let Some(x) = get(o, "args") {
        raw.args = items(x, &p("args"), e, string).unwrap_or_default();
    }
    if let Some(x) = get(o, "user") {
        raw.user = string(x, &p("user"), e);
    }
    if let Some(x) = get(o, "env") {
        raw.env = read_env(x, &p("env"), e);
    }
    if let Some(x) = get(o, "instances") {
        raw.instances = uint(x, &p("instances"), e, None);
    }
    if let Some(x) = get(o, "cpus") {
        raw.cpus = number(x, &p("cpus"), e, Some(0.001), None);
    }
    if let Some(x) = get(o, "mem") {
        raw.mem = number(x, &p("mem"), e, Some(0.0), None);
    }
    if let Some(x) = get(o, "disk") {
        raw.disk = number(x, &p("disk"), e, Some(0.0), None);
    }
    if let Some(x) = get(o, "gpus") {
        raw.gpus = uint(x, &p("gpus"), e, None);
    }
    if let Some(x) = get(o, "executor") {
        raw.executor = string(x, &p("executor"), e);
        if raw.executor.as_deref().is_some_and(|s| !executor_pattern(s)) {
            e.add(p("executor"), "error.pattern");
        }
    }
    if let Some(x) = get(o, "constraints") {
        raw.constraints = unique_items(x, &p("constraints"), e, |c, cp, e| items(c, cp, e, string)).unwrap_or_default();
    }
    if let Some(x) = get(o, "fetch") {
        raw.fetch = items(x, &p("fetch"), e, read_artifact).unwrap_or_default();
    }
    if let Some(x) = get(o, "portDefinitions") {
        raw.port_definitions = items(x, &p("portDefinitions"), e, read_port_definition);
    }
    if let Some(x) = get(o, "ports") {
        raw.ports = items(x, &p("ports"), e, |v, p, e| uint(v, p, e, Some(65535)));
    }
    if let Some(x) = get(o, "uris") {
        raw.uris = items(x, &p("uris"), e, |v, p, e| string_len(v, p, e, 1, Some(1024)));
    }
    if let Some(x) = get(o, "requirePorts") {
        raw.require_ports = boolean(x, &p("requirePorts"), e);
    }
    if let Some(x) = get(o, "backoffSeconds") {
        raw.backoff_seconds = uint(x, &p("backoffSeconds"), e, None).map(u64::from);
    }
    if let Some(x) = get(o, "backoffFactor") {
        raw.backoff_factor = number(x, &p("backoffFactor"), e, Some(1.0), None);
    }
    if let Some(x) = get(o, "maxLaunchDelaySeconds") {
        raw.max_launch_delay_seconds = uint(x, &p("maxLaunchDelaySeconds"), e, None).map(u64::from);
    }
    if let Some(x) = get(o, "container") {
        raw.container = read_container(x, &p("container"), e);
    }
    if let Some(x) = get(o, "healthChecks") {
        raw.health_checks = unique_items(x, &p("healthChecks"), e, read_health_check).unwrap_or_default();
    }
    if let Some(x) = get(o, "check") {
        raw.check = object(x, &p("check"), e).map(|_| x.clone());
    }
    if let Some(x) = get(o, "readinessChecks") {
        raw.readiness_checks = items(x, &p("readinessChecks"), e, read_readiness_check).unwrap_or_default();
    }
    if let Some(x) = get(o, "dependencies") {
        raw.dependencies =
            unique_items(x, &p("dependencies"), e, |v, p, e| pattern(v, p, e, None, matches_raml_pattern))
                .unwrap_or_default();
    }
    if let Some(x) = get(o, "upgradeStrategy") {
        raw.upgrade_strategy = read_upgrade_strategy(x, &p("upgradeStrategy"), e);
    }
    if let Some(x) = get(o, "labels") {
        raw.labels = str_map(x, &p("labels"), e).unwrap_or_default();
    }
    if let Some(x) = get(o, "acceptedResourceRoles") {
        raw.accepted_resource_roles = unique_items(x, &p("acceptedResourceRoles"), e, string);
    }
    if let Some(x) = get(o, "ipAddress") {
        raw.ip_address = read_ip_address(x, &p("ipAddress"), e);
    }
    if let Some(x) = get(o, "networks") {
        raw.networks = items(x, &p("networks"), e, read_network).unwrap_or_default();
    }
    if let Some(x) = get(o, "secrets") {
        raw.secrets = read_secrets(x, &p("secrets"), e);
    }
    if let Some(x) = get(o, "residency") {
        raw.residency = read_residency(x, &p("residency"), e);
    }
    if let Some(x) = get(o, "executorResources") {
        raw.executor_resources = read_executor_resources(x, &p("executorResources"), e);
    }
    if let Some(x) = get(o, "resourceLimits") {
        raw.resource_limits = read_resource_limits(x, &p("resourceLimits"), e);
    }
    if let Some(x) = get(o, "killSelection") {
        raw.kill_selection = one_of(
            x,
            &p("killSelection"),
            e,
            &[("YOUNGEST_FIRST", KillSelection::YoungestFirst), ("OLDEST_FIRST", KillSelection::OldestFirst)],
        );
    }
    if let Some(x) = get(o, "unreachableStrategy") {
        raw.unreachable_strategy = read_unreachable(x, &p("unreachableStrategy"), e);
    }
    if let Some(x) = get(o, "taskKillGracePeriodSeconds") {
        raw.task_kill_grace_period_seconds = uint(x, &p("taskKillGracePeriodSeconds"), e, None).map(u64::from);
    }
    if let Some(x) = get(o, "tty") {
        raw.tty = boolean(x, &p("tty"), e);
    }
    if let Some(x) = get(o, "role") {
        raw.role = string_len(x, &p("role"), e, 1, None);
    }
    if let Some(x) = get(o, "version") {
        raw.version = datetime(x, &p("version"), e);
    }
    if let Some(x) = get(o, "versionInfo")
        && let Some(vi) = object(x, &p("versionInfo"), e)
    {
        let vp = p("versionInfo");
        let field = |k: &str, e: &mut Errors| match get(vi, k) {
            Some(v) => datetime(v, &sub(&vp, k), e),
            None => {
                e.add(sub(&vp, k), "error.path.missing");
                None
            }
        };
        let scaling = field("lastScalingAt", e);
        let config = field("lastConfigChangeAt", e);
        if let (Some(last_scaling_at), Some(last_config_change_at)) = (scaling, config) {
            raw.version_info = Some(VersionInfo { last_scaling_at, last_config_change_at });
        }
    }
    raw
}

fn read_env(v: &Value, p: &str, e: &mut Errors) -> BTreeMap<String, EnvValue> {
    let Some(o) = object(v, p, e) else { return BTreeMap::new() };
    let mut env = BTreeMap::new();
    for (k, x) in o {
        let kp = sub(p, k);
        match x {
            Value::String(s) => {
                env.insert(k.clone(), EnvValue::Value(s.clone()));
            }
            Value::Object(so) => match get(so, "secret") {
                Some(s) => {
                    if let Some(s) = string(s, &sub(&kp, "secret"), e) {
                        env.insert(k.clone(), EnvValue::Secret(s));
                    }
                }
                None => e.add(sub(&kp, "secret"), "error.path.missing"),
            },
            _ => e.add(kp, "error.expected.jsstring"),
        }
    }
    env
}

fn read_artifact(v: &Value, p: &str, e: &mut Errors) -> Option<Artifact> {
    let o = object(v, p, e)?;
    let uri = match get(o, "uri") {
        Some(u) => string_len(u, &sub(p, "uri"), e, 1, Some(1024)),
        None => {
            e.add(sub(p, "uri"), "error.path.missing");
            None
        }
    };
    let flag = |k: &str, default: bool, e: &mut Errors| get(o, k).map_or(Some(default), |x| boolean(x, &sub(p, k), e));
    let extract = flag("extract", true, e);
    let executable = flag("executable", false, e);
    let cache = flag("cache", false, e);
    let dest_path = match get(o, "destPath") {
        Some(d) => Some(string_len(d, &sub(p, "destPath"), e, 1, Some(1024))?),
        None => None,
    };
    Some(Artifact { uri: uri?, extract: extract?, executable: executable?, cache: cache?, dest_path })
}

fn read_port_definition(v: &Value, p: &str, e: &mut Errors) -> Option<PortDefinition> {
    let o = object(v, p, e)?;
    let port = get(o, "port").map_or(Some(0), |x| uint(x, &sub(p, "port"), e, Some(65535)));
    let labels = get(o, "labels").map_or(Some(BTreeMap::new()), |x| str_map(x, &sub(p, "labels"), e));
    let name = match get(o, "name") {
        Some(n) => Some(pattern(n, &sub(p, "name"), e, None, legacy_name)?),
        None => None,
    };
    let protocol = get(o, "protocol").map_or(Some("tcp".to_string()), |x| protocol(x, &sub(p, "protocol"), e));
    Some(PortDefinition { port: port?, protocol: protocol?, name, labels: labels? })
}

fn read_port_mapping(v: &Value, p: &str, e: &mut Errors) -> Option<PortMapping> {
    let o = object(v, p, e)?;
    let port = |k: &str, e: &mut Errors| get(o, k).map(|x| uint(x, &sub(p, k), e, Some(65535)));
    let container_port = port("containerPort", e).unwrap_or(Some(0));
    let host_port = port("hostPort", e);
    let service_port = port("servicePort", e).unwrap_or(Some(0));
    let labels = get(o, "labels").map_or(Some(BTreeMap::new()), |x| str_map(x, &sub(p, "labels"), e));
    let name = match get(o, "name") {
        Some(n) => Some(pattern(n, &sub(p, "name"), e, None, legacy_name)?),
        None => None,
    };
    let protocol = get(o, "protocol").map_or(Some("tcp".to_string()), |x| protocol(x, &sub(p, "protocol"), e));
    let network_names = get(o, "networkNames").map_or(Some(Vec::new()), |x| {
        items(x, &sub(p, "networkNames"), e, |v, p, e| pattern(v, p, e, Some(63), legacy_name))
    });
    Some(PortMapping {
        container_port: container_port?,
        host_port: match host_port {
            Some(h) => Some(h?),
            None => None,
        },
        service_port: service_port?,
        protocol: protocol?,
        name,
        labels: labels?,
        network_names: network_names?,
    })
}

fn read_container(v: &Value, p: &str, e: &mut Errors) -> Option<RawContainer> {
    let o = object(v, p, e)?;
    let kind = get(o, "type").map_or(Some(ContainerKind::Docker), |x| {
        one_of(x, &sub(p, "type"), e, &[("MESOS", ContainerKind::Mesos), ("DOCKER", ContainerKind::Docker)])
    });
    let docker = get(o, "docker").map(|x| read_docker(x, &sub(p, "docker"), e));
    let volumes = get(o, "volumes").map_or(Some(Vec::new()), |x| items(x, &sub(p, "volumes"), e, read_volume));
    let port_mappings = get(o, "portMappings").map(|x| items(x, &sub(p, "portMappings"), e, read_port_mapping));
    let linux_info = match get(o, "linuxInfo") {
        Some(x) => Some(object(x, &sub(p, "linuxInfo"), e).map(|_| x.clone())?),
        None => None,
    };
    Some(RawContainer {
        kind: kind?,
        docker: match docker {
            Some(d) => Some(d?),
            None => None,
        },
        volumes: volumes?,
        port_mappings: match port_mappings {
            Some(pm) => Some(pm?),
            None => None,
        },
        linux_info,
    })
}

fn read_docker(v: &Value, p: &str, e: &mut Errors) -> Option<RawDocker> {
    let o = object(v, p, e)?;
    let image = match get(o, "image") {
        Some(i) => string_len(i, &sub(p, "image"), e, 1, None),
        None => {
            e.add(sub(p, "image"), "error.path.missing");
            None
        }
    };
    let flag = |k: &str, e: &mut Errors| get(o, k).map_or(Some(false), |x| boolean(x, &sub(p, k), e));
    let force_pull_image = flag("forcePullImage", e);
    let privileged = flag("privileged", e);
    let parameters = get(o, "parameters").map_or(Some(Vec::new()), |x| {
        items(x, &sub(p, "parameters"), e, |v, pp, e| {
            let po = object(v, pp, e)?;
            let field = |k: &str, min: usize, e: &mut Errors| match get(po, k) {
                Some(x) => string_len(x, &sub(pp, k), e, min, None),
                None => {
                    e.add(sub(pp, k), "error.path.missing");
                    None
                }
            };
            let key = field("key", 1, e);
            let value = field("value", 0, e);
            Some(DockerParameter { key: key?, value: value? })
        })
    });
    let network = get(o, "network").map(|x| {
        one_of(
            x,
            &sub(p, "network"),
            e,
            &[
                ("BRIDGE", DockerNetwork::Bridge),
                ("HOST", DockerNetwork::Host),
                ("NONE", DockerNetwork::None),
                ("USER", DockerNetwork::User),
            ],
        )
    });
    let port_mappings = get(o, "portMappings").map(|x| items(x, &sub(p, "portMappings"), e, read_port_mapping));
    let credential = match get(o, "credential") {
        Some(c) => {
            let co = object(c, &sub(p, "credential"), e)?;
            match get(co, "principal") {
                Some(pr) => {
                    string(pr, &sub(&sub(p, "credential"), "principal"), e)?;
                }
                None => e.add(sub(&sub(p, "credential"), "principal"), "error.path.missing"),
            }
            Some(c.clone())
        }
        None => None,
    };
    let pull_config = match get(o, "pullConfig") {
        Some(c) => {
            let co = object(c, &sub(p, "pullConfig"), e)?;
            match get(co, "secret") {
                Some(s) => {
                    string_len(s, &sub(&sub(p, "pullConfig"), "secret"), e, 1, None)?;
                }
                None => e.add(sub(&sub(p, "pullConfig"), "secret"), "error.path.missing"),
            }
            Some(c.clone())
        }
        None => None,
    };
    Some(RawDocker {
        spec: DockerSpec {
            image: image?,
            force_pull_image: force_pull_image?,
            privileged: privileged?,
            parameters: parameters?,
            credential,
            pull_config,
        },
        network: match network {
            Some(n) => Some(n?),
            None => None,
        },
        port_mappings: match port_mappings {
            Some(pm) => Some(pm?),
            None => None,
        },
    })
}

/// Volumes are kept as given; host volumes have their fields checked here.
fn read_volume(v: &Value, p: &str, e: &mut Errors) -> Option<Value> {
    let o = object(v, p, e)?;
    if ["persistent", "external", "secret"].iter().any(|k| o.contains_key(*k)) {
        // Rejected with a clear message by the canonical rules.
        return Some(v.clone());
    }
    let field = |k: &str, e: &mut Errors| match get(o, k) {
        Some(x) => string_len(x, &sub(p, k), e, 1, None),
        None => {
            e.add(sub(p, k), "error.path.missing");
            None
        }
    };
    let container_path = field("containerPath", e);
    let host_path = field("hostPath", e);
    let mode = match get(o, "mode") {
        Some(m) => one_of(m, &sub(p, "mode"), e, &[("RO", "RO"), ("RW", "RW")]),
        None => {
            e.add(sub(p, "mode"), "error.path.missing");
            None
        }
    };
    container_path?;
    host_path?;
    let mut out = o.clone();
    out.insert("mode".into(), Value::String(mode?.to_string()));
    Some(Value::Object(out))
}

fn read_health_check(v: &Value, p: &str, e: &mut Errors) -> Option<AppHealthCheck> {
    let o = object(v, p, e)?;
    let command = match get(o, "command") {
        Some(c) => {
            let co = object(c, &sub(p, "command"), e)?;
            match get(co, "value") {
                Some(x) => Some(string(x, &sub(&sub(p, "command"), "value"), e)?),
                None => {
                    e.add(sub(&sub(p, "command"), "value"), "error.path.missing");
                    return None;
                }
            }
        }
        None => None,
    };
    let secs =
        |k: &str, default: u32, e: &mut Errors| get(o, k).map_or(Some(default), |x| uint(x, &sub(p, k), e, None));
    let grace_period_seconds = secs("gracePeriodSeconds", 300, e);
    let interval_seconds = secs("intervalSeconds", 60, e);
    let max_consecutive_failures = secs("maxConsecutiveFailures", 3, e);
    let timeout_seconds = secs("timeoutSeconds", 20, e);
    let delay_seconds = secs("delaySeconds", 15, e);
    let ignore_http1xx = match get(o, "ignoreHttp1xx") {
        Some(x) => Some(boolean(x, &sub(p, "ignoreHttp1xx"), e)?),
        None => None,
    };
    let path = match get(o, "path") {
        Some(x) => Some(string(x, &sub(p, "path"), e)?),
        None => None,
    };
    let port = |k: &str, e: &mut Errors| get(o, k).map(|x| uint(x, &sub(p, k), e, Some(65535)));
    let port_index = port("portIndex", e);
    let port_number = port("port", e);
    let protocols: Vec<(&str, HealthCheckProtocol)> =
        HealthCheckProtocol::ALL.iter().map(|p| (p.as_str(), *p)).collect();
    let protocol =
        get(o, "protocol").map_or(Some(HealthCheckProtocol::Http), |x| one_of(x, &sub(p, "protocol"), e, &protocols));
    let ip_protocol = get(o, "ipProtocol")
        .map_or(Some("IPv4"), |x| one_of(x, &sub(p, "ipProtocol"), e, &[("IPv4", "IPv4"), ("IPv6", "IPv6")]));
    Some(AppHealthCheck {
        protocol: protocol?,
        command,
        path,
        port_index: match port_index {
            Some(i) => Some(i?),
            None => None,
        },
        port: match port_number {
            Some(n) => Some(n?),
            None => None,
        },
        ignore_http1xx,
        ip_protocol: ip_protocol?.to_string(),
        grace_period_seconds: grace_period_seconds?,
        interval_seconds: interval_seconds?,
        timeout_seconds: timeout_seconds?,
        max_consecutive_failures: max_consecutive_failures?,
        delay_seconds: delay_seconds?,
    })
}

fn read_readiness_check(v: &Value, p: &str, e: &mut Errors) -> Option<ReadinessCheck> {
    let o = object(v, p, e)?;
    let text = |k: &str, default: &str, e: &mut Errors| {
        get(o, k).map_or(Some(default.to_string()), |x| string_len(x, &sub(p, k), e, 1, Some(1024)))
    };
    let name = text("name", "readinessCheck", e);
    let path = text("path", "/", e);
    let port_name = get(o, "portName")
        .map_or(Some("http-api".to_string()), |x| pattern(x, &sub(p, "portName"), e, None, legacy_name));
    let protocol = get(o, "protocol")
        .map_or(Some("HTTP"), |x| one_of(x, &sub(p, "protocol"), e, &[("HTTP", "HTTP"), ("HTTPS", "HTTPS")]));
    let interval_seconds = get(o, "intervalSeconds").map_or(Some(30), |x| uint(x, &sub(p, "intervalSeconds"), e, None));
    let timeout_seconds = get(o, "timeoutSeconds").map_or(Some(10), |x| {
        let t = int(x, &sub(p, "timeoutSeconds"), e, 1, None, false)?;
        Some(t as u32)
    });
    let codes = match get(o, "httpStatusCodesForReady") {
        Some(x) => {
            let cp = sub(p, "httpStatusCodesForReady");
            let codes = unique_items(x, &cp, e, |v, p, e| int(v, p, e, 100, Some(999), false).map(|c| c as u32))?;
            if codes.is_empty() {
                e.add(cp, "error.minLength");
                return None;
            }
            codes
        }
        None => vec![200],
    };
    let preserve =
        get(o, "preserveLastResponse").map_or(Some(false), |x| boolean(x, &sub(p, "preserveLastResponse"), e));
    Some(ReadinessCheck {
        name: name?,
        protocol: protocol?.to_string(),
        path: path?,
        port_name: port_name?,
        interval_seconds: interval_seconds?,
        timeout_seconds: timeout_seconds?,
        http_status_codes_for_ready: codes,
        preserve_last_response: preserve?,
    })
}

fn read_upgrade_strategy(v: &Value, p: &str, e: &mut Errors) -> Option<UpgradeStrategy> {
    let o = object(v, p, e)?;
    let field = |k: &str, e: &mut Errors| match get(o, k) {
        Some(x) => number(x, &sub(p, k), e, Some(0.0), Some(1.0)),
        None => {
            e.add(sub(p, k), "error.path.missing");
            None
        }
    };
    let maximum_over_capacity = field("maximumOverCapacity", e);
    let minimum_health_capacity = field("minimumHealthCapacity", e);
    Some(UpgradeStrategy {
        minimum_health_capacity: minimum_health_capacity?,
        maximum_over_capacity: maximum_over_capacity?,
    })
}

fn read_unreachable(v: &Value, p: &str, e: &mut Errors) -> Option<UnreachableStrategy> {
    // Marathon reads any string as "disabled" (its union reader tries the string type first).
    if v.is_string() {
        return Some(UnreachableStrategy::Disabled);
    }
    let o = object(v, p, e)?;
    let field =
        |k: &str, e: &mut Errors| get(o, k).map_or(Some(0), |x| int(x, &sub(p, k), e, 0, None, true).map(|x| x as u64));
    let inactive_after_seconds = field("inactiveAfterSeconds", e);
    let expunge_after_seconds = field("expungeAfterSeconds", e);
    Some(UnreachableStrategy::Enabled {
        inactive_after_seconds: inactive_after_seconds?,
        expunge_after_seconds: expunge_after_seconds?,
    })
}

fn read_network(v: &Value, p: &str, e: &mut Errors) -> Option<Network> {
    let o = object(v, p, e)?;
    let name = match get(o, "name") {
        Some(n) => Some(pattern(n, &sub(p, "name"), e, Some(63), network_name)?),
        None => None,
    };
    let mode = get(o, "mode").map_or(Some(NetworkMode::Container), |x| {
        one_of(
            x,
            &sub(p, "mode"),
            e,
            &[
                ("container", NetworkMode::Container),
                ("container/bridge", NetworkMode::ContainerBridge),
                ("host", NetworkMode::Host),
            ],
        )
    });
    let labels = get(o, "labels").map_or(Some(BTreeMap::new()), |x| str_map(x, &sub(p, "labels"), e));
    Some(Network { mode: mode?, name, labels: labels? })
}

fn read_ip_address(v: &Value, p: &str, e: &mut Errors) -> Option<IpAddress> {
    let o = object(v, p, e)?;
    let mut discovery_ports = Vec::new();
    if let Some(d) = get(o, "discovery") {
        let dp = sub(p, "discovery");
        let dobj = object(d, &dp, e)?;
        if let Some(ports) = get(dobj, "ports") {
            discovery_ports = items(ports, &sub(&dp, "ports"), e, |v, pp, e| {
                let po = object(v, pp, e)?;
                let number = get(po, "number").map_or(Some(0), |x| uint(x, &sub(pp, "number"), e, Some(65535)));
                let name = match get(po, "name") {
                    Some(n) => pattern(n, &sub(pp, "name"), e, None, legacy_name),
                    None => {
                        e.add(sub(pp, "name"), "error.path.missing");
                        None
                    }
                };
                let protocol =
                    get(po, "protocol").map_or(Some("tcp".to_string()), |x| protocol(x, &sub(pp, "protocol"), e));
                let labels = get(po, "labels").map_or(Some(BTreeMap::new()), |x| str_map(x, &sub(pp, "labels"), e));
                Some(DiscoveryPort { number: number?, name: name?, protocol: protocol?, labels: labels? })
            })?;
        }
    }
    if let Some(g) = get(o, "groups") {
        unique_items(g, &sub(p, "groups"), e, string)?;
    }
    let labels = get(o, "labels").map_or(Some(BTreeMap::new()), |x| str_map(x, &sub(p, "labels"), e));
    let network_name = match get(o, "networkName") {
        Some(n) => Some(string_len(n, &sub(p, "networkName"), e, 1, None)?),
        None => None,
    };
    Some(IpAddress { discovery_ports, labels: labels?, network_name })
}

fn read_secrets(v: &Value, p: &str, e: &mut Errors) -> BTreeMap<String, SecretDef> {
    let Some(o) = object(v, p, e) else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for (k, x) in o {
        let kp = sub(p, k);
        let Some(so) = object(x, &kp, e) else { continue };
        match get(so, "source") {
            Some(s) => {
                if let Some(source) = string_len(s, &sub(&kp, "source"), e, 1, None) {
                    out.insert(k.clone(), SecretDef { source });
                }
            }
            None => e.add(sub(&kp, "source"), "error.path.missing"),
        }
    }
    out
}

fn read_residency(v: &Value, p: &str, e: &mut Errors) -> Option<Value> {
    let o = object(v, p, e)?;
    let timeout = get(o, "relaunchEscalationTimeoutSeconds")
        .map_or(Some(3600), |x| int(x, &sub(p, "relaunchEscalationTimeoutSeconds"), e, 0, None, true));
    let behavior = get(o, "taskLostBehavior").map_or(Some("WAIT_FOREVER"), |x| {
        one_of(
            x,
            &sub(p, "taskLostBehavior"),
            e,
            &[("WAIT_FOREVER", "WAIT_FOREVER"), ("RELAUNCH_AFTER_TIMEOUT", "RELAUNCH_AFTER_TIMEOUT")],
        )
    });
    Some(serde_json::json!({"relaunchEscalationTimeoutSeconds": timeout?, "taskLostBehavior": behavior?}))
}

fn read_executor_resources(v: &Value, p: &str, e: &mut Errors) -> Option<Value> {
    let o = object(v, p, e)?;
    let field = |k: &str, min: f64, default: f64, e: &mut Errors| {
        get(o, k).map_or(Some(default), |x| number(x, &sub(p, k), e, Some(min), None))
    };
    let cpus = field("cpus", 0.1, 0.1, e);
    let mem = field("mem", 32.0, 32.0, e);
    let disk = field("disk", 10.0, 10.0, e);
    Some(serde_json::json!({"cpus": cpus?, "mem": mem?, "disk": disk?}))
}

fn read_resource_limits(v: &Value, p: &str, e: &mut Errors) -> Option<Value> {
    let o = object(v, p, e)?;
    let mut out = Map::new();
    for k in ["cpus", "mem"] {
        match get(o, k) {
            Some(x @ Value::Number(_)) | Some(x @ Value::String(_)) => {
                out.insert(k.to_string(), x.clone());
            }
            Some(_) => e.add(sub(p, k), "error.expected.jsnumber"),
            None => {}
        }
    }
    Some(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// Phase 2: the deprecated API and its translation
// ---------------------------------------------------------------------------------------------

/// Marathon's `validateOldAppAPI`.
fn old_api_rules(raw: &Raw, at: &str, e: &mut Errors) {
    let p = |k: &str| sub(at, k);
    if let Some(c) = &raw.container
        && let Some(d) = &c.docker
    {
        let dp = sub(&p("container"), "docker");
        if d.spec.credential.is_some() {
            e.add(sub(&dp, "credential"), "must be empty");
        }
        if c.kind == ContainerKind::Mesos {
            if d.network.is_some() {
                e.add(sub(&dp, "network"), "must be empty");
            }
            if !d.spec.parameters.is_empty() {
                e.add(sub(&dp, "parameters"), "must be empty");
            }
            if d.port_mappings.as_ref().is_some_and(|pm| !pm.is_empty()) {
                e.add(sub(&dp, "portMappings"), "must be empty");
            }
        }
        if let Some(pm) = &d.port_mappings
            && !unique(pm.iter().filter_map(|m| m.name.clone()))
        {
            e.add(sub(&dp, "portMappings"), "Port names must be unique.");
        }
    }
    if let Some(ip) = &raw.ip_address
        && raw.container.as_ref().is_some_and(|c| c.kind == ContainerKind::Docker)
        && !ip.discovery_ports.is_empty()
    {
        e.add(p("ipAddress"), "ipAddress/discovery is not allowed for Docker containers");
    }
    if let Some(uris) = &raw.uris {
        for (i, uri) in uris.iter().enumerate() {
            if !uri_is_valid(uri) {
                e.add(item(&p("uris"), i), "URI has invalid syntax.");
            }
        }
        if !uris.is_empty() && !raw.fetch.is_empty() {
            e.add(p("uris"), "may not be set in conjunction with fetch");
        }
    }
    let docker_network = raw.container.as_ref().and_then(|c| c.docker.as_ref()).and_then(|d| d.network);
    if docker_network.is_some() && !raw.networks.is_empty() {
        e.add(here(at), "must not specify both container.docker.network and networks");
    }
    if raw.ip_address.is_some() && !raw.networks.is_empty() {
        e.add(here(at), "must not specify both networks and ipAddress");
    }
    if let Some(ports) = &raw.ports
        && !unique(ports.iter().filter(|p| **p != 0))
    {
        e.add(here(at), "ports must be unique");
    }
    let has_ports = raw.ports.as_ref().is_some_and(|p| !p.is_empty())
        || raw.port_definitions.as_ref().is_some_and(|p| !p.is_empty());
    if raw.ip_address.is_some() && has_ports {
        e.add(here(at), "cannot specify both an IP address and port");
    }
    if let (Some(ports), Some(defs)) = (&raw.ports, &raw.port_definitions)
        && defs.iter().map(|d| d.port).collect::<Vec<_>>() != *ports
    {
        e.add(here(at), "cannot specify both ports and port definitions");
    }
}

fn unique<T: Ord>(it: impl Iterator<Item = T>) -> bool {
    let mut seen = BTreeSet::new();
    it.into_iter().all(|x| seen.insert(x))
}

/// What the canonical rules need to know about the app as given (before translation).
pub(crate) struct RawFacts {
    cmd: Option<String>,
    dependencies: Vec<PathId>,
}

impl RawFacts {
    fn of(raw: &Raw, base: &PathId) -> RawFacts {
        RawFacts {
            cmd: raw.cmd.clone(),
            dependencies: raw.dependencies.iter().map(|d| PathId::parse_lenient(d, base)).collect(),
        }
    }
}

/// The extension of a URI that the Mesos fetcher extracts.
const EXTRACTABLE: [&str; 9] = [".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".gz", ".tgz", ".tbz2", ".txz", ".zip"];

/// Whether the fetcher would extract `uri` (Marathon's `FetchUri.isExtract`, used for `uris`).
pub fn is_extract(uri: &str) -> bool {
    if !uri_is_valid(uri) {
        return false;
    }
    let mut rest = uri.split(['?', '#']).next().unwrap_or("");
    if let Some(colon) = rest.find(':')
        && !rest[..colon].contains('/')
    {
        rest = &rest[colon + 1..];
    }
    if let Some(after) = rest.strip_prefix("//") {
        rest = after.find('/').map_or("", |i| &after[i..]);
    }
    EXTRACTABLE.iter().any(|ext| rest.ends_with(ext))
}

/// Whether Java's `new URI(s)` accepts `s` (RFC 2396 syntax, the check Marathon applies to
/// `fetch` and `uris`).
pub fn uri_is_valid(s: &str) -> bool {
    let legal = |c: char, authority: bool| {
        if c.is_ascii() {
            c.is_ascii_alphanumeric() || "-_.!~*'();/?:@&=+$,%#".contains(c) || (authority && (c == '[' || c == ']'))
        } else {
            !c.is_control() && !c.is_whitespace()
        }
    };
    // Escapes are % and two hex digits.
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return false;
        }
    }
    if s.matches('#').count() > 1 {
        return false;
    }
    // A scheme is what precedes the first ':' when no '/', '?' or '#' comes before it.
    let mut rest = s;
    if let Some(colon) = s.find(':')
        && !s[..colon].contains(['/', '?', '#'])
    {
        let scheme = &s[..colon];
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok || s.len() == colon + 1 {
            return false;
        }
        rest = &s[colon + 1..];
    }
    let (authority, tail) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        }
        None => ("", rest),
    };
    authority.chars().all(|c| legal(c, true)) && tail.chars().all(|c| legal(c, false))
}

/// Marathon's translation of the deprecated API and its defaults (`AppNormalization`).
fn normalize(raw: Raw, base: &PathId, id: PathId, role: String) -> Result<AppDefinition, String> {
    let fetch = match &raw.uris {
        Some(uris) if !uris.is_empty() && raw.fetch.is_empty() => {
            uris.iter().map(|u| Artifact { extract: is_extract(u), ..Artifact::new(u) }).collect()
        }
        _ => raw.fetch.clone(),
    };

    let docker_network = raw.container.as_ref().and_then(|c| c.docker.as_ref()).and_then(|d| d.network);
    let canonical = (!raw.networks.is_empty()).then(|| raw.networks.clone());
    let translated: Option<Vec<Network>> = match (&raw.ip_address, docker_network, canonical) {
        (Some(ip), Some(net), None) => Some(vec![match net {
            DockerNetwork::Host => Network::host(),
            DockerNetwork::User => {
                Network { mode: NetworkMode::Container, name: ip.network_name.clone(), labels: ip.labels.clone() }
            }
            DockerNetwork::Bridge => {
                Network { mode: NetworkMode::ContainerBridge, name: None, labels: ip.labels.clone() }
            }
            DockerNetwork::None => return Err("unsupported docker network type NONE".into()),
        }]),
        (Some(ip), None, None) => Some(vec![match ip.network_name.as_deref() {
            Some(MESOS_BRIDGE_NAME) => {
                Network { mode: NetworkMode::ContainerBridge, name: None, labels: ip.labels.clone() }
            }
            name => Network { mode: NetworkMode::Container, name: name.map(str::to_string), labels: ip.labels.clone() },
        }]),
        (None, Some(net), None) => Some(vec![match net {
            DockerNetwork::Host => Network::host(),
            DockerNetwork::User => Network { mode: NetworkMode::Container, name: None, labels: BTreeMap::new() },
            DockerNetwork::Bridge => {
                Network { mode: NetworkMode::ContainerBridge, name: None, labels: BTreeMap::new() }
            }
            DockerNetwork::None => return Err("unsupported docker network type NONE".into()),
        }]),
        (None, None, networks) => networks,
        _ => return Err("cannot mix deprecated and canonical network APIs".into()),
    };
    let mut networks: Vec<Network> = translated.unwrap_or_default();
    for n in &mut networks {
        if n.mode == NetworkMode::Container && n.name.is_none() {
            n.name = Some(DEFAULT_NETWORK_NAME.to_string());
        }
    }
    if networks.is_empty() {
        networks.push(Network::host());
    }
    let non_host = networks.iter().any(|n| n.mode != NetworkMode::Host);
    let bridged = networks.iter().any(|n| n.mode == NetworkMode::ContainerBridge);

    let migrated_port_definitions: Option<Vec<PortDefinition>> = raw
        .port_definitions
        .clone()
        .or_else(|| raw.ports.as_ref().map(|ports| ports.iter().map(|p| PortDefinition::new(*p)).collect()));
    let port_definitions = if non_host {
        Vec::new()
    } else {
        migrated_port_definitions
            .clone()
            .unwrap_or_else(|| vec![PortDefinition { name: Some("default".into()), ..PortDefinition::new(0) }])
    };

    let raw_container = raw.container.clone().or_else(|| {
        raw.ip_address.as_ref().map(|_| RawContainer {
            kind: ContainerKind::Mesos,
            docker: None,
            volumes: Vec::new(),
            port_mappings: None,
            linux_info: None,
        })
    });
    let mut container = match raw_container {
        Some(c) => Some(normalize_container(c, &raw, non_host, migrated_port_definitions.as_deref())?),
        // Container networking without a container gets an empty Mesos container.
        None if non_host => Some(Container {
            kind: ContainerKind::Mesos,
            docker: None,
            volumes: Vec::new(),
            port_mappings: Some(vec![PortMapping { name: Some("default".into()), ..PortMapping::default() }]),
            linux_info: None,
        }),
        None => None,
    };
    if bridged && let Some(pm) = container.as_mut().and_then(|c| c.port_mappings.as_mut()) {
        for m in pm.iter_mut() {
            m.host_port.get_or_insert(0);
        }
    }

    // Health checks get portIndex 0 when the app gives ports (Marathon looks at the
    // portDefinitions as given, not at `ports`).
    let has_ports = raw.port_definitions.as_ref().is_some_and(|p| !p.is_empty())
        || container.as_ref().is_some_and(|c| c.port_mappings.as_ref().is_some_and(|pm| !pm.is_empty()));
    let health_checks = raw
        .health_checks
        .iter()
        .map(|hc| {
            let mut hc = hc.clone();
            if has_ports && hc.protocol != HealthCheckProtocol::Command && hc.port.is_none() && hc.port_index.is_none()
            {
                hc.port_index = Some(0);
            }
            normalize_health_check(hc)
        })
        .collect();

    let unreachable_strategy = raw.unreachable_strategy.unwrap_or_default();
    Ok(AppDefinition {
        id,
        cmd: raw.cmd,
        args: raw.args,
        user: raw.user,
        env: raw.env,
        instances: raw.instances.unwrap_or(1),
        cpus: raw.cpus.unwrap_or(DEFAULT_CPUS),
        mem: raw.mem.unwrap_or(DEFAULT_MEM),
        disk: raw.disk.unwrap_or(0.0),
        gpus: raw.gpus.unwrap_or(0),
        executor: raw.executor.unwrap_or_default(),
        constraints: raw
            .constraints
            .iter()
            .filter_map(|c| {
                let operator = Operator::parse(&c.get(1)?.to_ascii_uppercase())?;
                Some(Constraint { field: c.first()?.clone(), operator, value: c.get(2).cloned() })
            })
            .collect(),
        fetch,
        port_definitions,
        require_ports: !non_host && raw.require_ports.unwrap_or(false),
        backoff_seconds: raw.backoff_seconds.unwrap_or(DEFAULT_BACKOFF_SECONDS),
        backoff_factor: raw.backoff_factor.unwrap_or(DEFAULT_BACKOFF_FACTOR),
        max_launch_delay_seconds: raw.max_launch_delay_seconds.unwrap_or(DEFAULT_MAX_LAUNCH_DELAY_SECONDS),
        container,
        health_checks,
        check: raw.check,
        readiness_checks: raw.readiness_checks,
        dependencies: raw.dependencies.iter().map(|d| PathId::parse_lenient(d, base)).fold(Vec::new(), |mut acc, d| {
            if !acc.contains(&d) {
                acc.push(d);
            }
            acc
        }),
        upgrade_strategy: raw.upgrade_strategy.unwrap_or_default(),
        labels: raw.labels,
        accepted_resource_roles: raw.accepted_resource_roles,
        networks,
        secrets: raw.secrets,
        residency: raw.residency,
        executor_resources: raw.executor_resources,
        resource_limits: raw.resource_limits,
        kill_selection: raw.kill_selection.unwrap_or_default(),
        unreachable_strategy,
        task_kill_grace_period_seconds: raw.task_kill_grace_period_seconds,
        tty: raw.tty,
        role,
        version: raw.version,
        version_info: raw.version_info,
    })
}

fn normalize_container(
    c: RawContainer,
    raw: &Raw,
    non_host: bool,
    migrated_port_definitions: Option<&[PortDefinition]>,
) -> Result<Container, String> {
    let mut port_mappings = c.port_mappings.clone();
    // docker.portMappings move to container.portMappings.
    if let Some(docker_pm) = c.docker.as_ref().and_then(|d| d.port_mappings.clone()) {
        let container_has = port_mappings.as_ref().is_some_and(|pm| !pm.is_empty());
        if container_has && !docker_pm.is_empty() {
            return Err("cannot specify both portMappings and docker.portMappings".into());
        }
        if !container_has {
            port_mappings = Some(docker_pm);
        }
    }
    // ipAddress.discovery.ports become port mappings of a Mesos container.
    if let Some(ip) = &raw.ip_address
        && !ip.discovery_ports.is_empty()
    {
        if c.kind != ContainerKind::Mesos {
            return Err(format!("ipAddress.discovery.ports do not apply for container type {}", c.kind.as_str()));
        }
        if port_mappings.as_ref().is_some_and(|pm| !pm.is_empty()) {
            return Err("container.portMappings and ipAddress.discovery.ports must not both be set".into());
        }
        port_mappings = Some(
            ip.discovery_ports
                .iter()
                .map(|d| PortMapping {
                    container_port: d.number,
                    host_port: None,
                    name: Some(d.name.clone()),
                    protocol: d.protocol.clone(),
                    labels: d.labels.clone(),
                    ..PortMapping::default()
                })
                .collect(),
        );
    }
    if !non_host {
        port_mappings = None;
    } else if port_mappings.is_none() {
        port_mappings = Some(vec![PortMapping { name: Some("default".into()), ..PortMapping::default() }]);
    }
    if non_host && let Some(pm) = port_mappings.as_mut() {
        let wanted = migrated_port_definitions.map_or(0, <[PortDefinition]>::len);
        while pm.len() < wanted {
            pm.push(PortMapping::default());
        }
    }
    Ok(Container {
        kind: c.kind,
        docker: c.docker.map(|d| d.spec),
        volumes: c.volumes,
        port_mappings,
        linux_info: c.linux_info,
    })
}

/// Drops the fields that do not apply to the protocol, as Marathon's conversion does.
fn normalize_health_check(mut hc: AppHealthCheck) -> AppHealthCheck {
    use HealthCheckProtocol::*;
    if hc.command.is_some() && hc.protocol == Command {
        hc.path = None;
        hc.port = None;
        hc.port_index = None;
        hc.ignore_http1xx = None;
        return hc;
    }
    if hc.command.is_some() {
        // Invalid (reported by the canonical rules); left as given.
        return hc;
    }
    match hc.protocol {
        Http | Https => {
            hc.ignore_http1xx = Some(hc.ignore_http1xx.unwrap_or(false));
            hc.delay_seconds = 15;
        }
        Tcp => {
            hc.path = None;
            hc.ignore_http1xx = None;
            hc.delay_seconds = 15;
        }
        MesosHttp | MesosHttps => hc.ignore_http1xx = None,
        MesosTcp => {
            hc.path = None;
            hc.ignore_http1xx = None;
        }
        Command => {}
    }
    hc
}

// ---------------------------------------------------------------------------------------------
// Phase 3: the canonical rules
// ---------------------------------------------------------------------------------------------

const SECRETS_FEATURE: &str = "Feature secrets is not enabled. Enable with --enable_features secrets)";
const GPU_FEATURE: &str = "Feature gpu_resources is not enabled. Enable with --enable_features gpu_resources)";
const EXTERNAL_VOLUMES_FEATURE: &str =
    "Feature external_volumes is not enabled. Enable with --enable_features external_volumes)";
pub const CMD_ARGS_OR_CONTAINER: &str =
    "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.";
pub const HEALTH_PORT_INDEX: &str =
    "Health check port indices must address an element of the ports array or container port mappings.";
/// medos cannot start an image's own entrypoint yet.
pub const MEDOS_NEEDS_COMMAND: &str =
    "medos does not run an image's own entrypoint or command yet: give 'cmd' or 'args'";
pub const MEDOS_NO_PERSISTENT_VOLUMES: &str = "medos does not support persistent volumes";
pub const MEDOS_EXECUTOR: &str = "medos runs every task with its own executor: 'executor' must be \"\" or \"//cmd\"";

fn canonical_rules(app: &AppDefinition, facts: &RawFacts, valid_roles: &[String], at: &str, e: &mut Errors) {
    let p = |k: &str| sub(at, k);
    let root = here(at);

    for (path, message) in crate::core::vips::label_violations(app) {
        e.add(sub(at, &path), message);
    }

    // id
    for v in app.id.violations() {
        e.add(p("id"), v);
    }
    if app.id.is_root() {
        e.add(p("id"), "Path must contain at least one path element");
        e.add(&root, "must not be root");
    }
    for (i, d) in facts.dependencies.iter().enumerate() {
        for v in d.violations() {
            e.add(item(&p("dependencies"), i), v);
        }
    }
    if facts.cmd.as_ref().is_some_and(|c| c.chars().count() <= 1) {
        e.add(&root, "must not be an empty string");
    }

    // command
    let cmd = app.cmd.is_some();
    let args = !app.args.is_empty();
    let container_ok = app.container.as_ref().is_some_and(|c| c.docker.is_some() || c.kind == ContainerKind::Mesos);
    if !((cmd ^ args) || (!(cmd && args) && container_ok)) {
        e.add(&root, CMD_ARGS_OR_CONTAINER);
    } else if !cmd && !args {
        e.add(&root, MEDOS_NEEDS_COMMAND);
    }
    if !executor_pattern(&app.executor) {
        e.add(p("executor"), "must fully match regular expression '^(//cmd)|(/?[^/]+(/[^/]+)*)|$'");
    } else if !(app.executor.is_empty() || app.executor == "//cmd") {
        e.add(p("executor"), MEDOS_EXECUTOR);
    }

    // container
    let networks = &app.networks;
    if let Some(c) = &app.container {
        container_rules(c, networks, &p("container"), e);
    }
    if app.check.is_some() && app.container.as_ref().is_some_and(|c| c.kind == ContainerKind::Docker) {
        e.add(&root, "AppDefinition must not use 'checks' if using docker");
    }
    if app.container.as_ref().is_some_and(|c| c.kind == ContainerKind::Docker)
        && networks.iter().filter(|n| n.mode == NetworkMode::Container).count() > 1
    {
        e.add(&root, "may only specify a single container network when using the Docker container engine");
    }

    // ports
    if !unique(app.port_definitions.iter().filter_map(|d| d.name.clone())) {
        e.add(p("portDefinitions"), "Port names must be unique.");
    }
    if !unique(app.port_definitions.iter().map(|d| d.port).filter(|p| *p != 0)) {
        e.add(p("portDefinitions"), "Ports must be unique.");
    }

    // health checks
    let port_count = match app.container.as_ref().and_then(|c| c.port_mappings.as_ref()).filter(|pm| !pm.is_empty()) {
        Some(pm) => pm.len(),
        None => app.port_definitions.len(),
    };
    let docker = app.container.as_ref().is_some_and(|c| c.kind == ContainerKind::Docker);
    for (i, hc) in app.health_checks.iter().enumerate() {
        let hp = item(&p("healthChecks"), i);
        let before = e.len();
        match (&hc.command, hc.protocol) {
            (Some(_), HealthCheckProtocol::Command) | (None, _) => {}
            (Some(_), other) => e.add(&hp, format!("illegal protocol {} specified with command", other.as_str())),
        }
        if hc.command.is_none() && hc.protocol == HealthCheckProtocol::Command {
            e.add(&hp, "COMMAND health checks need a command");
        }
        if hc.command.is_none() && hc.protocol.is_marathon_side() {
            let ok = match hc.port_index {
                Some(idx) => (idx as usize) < port_count,
                None => hc.port.is_some() || port_count == 1,
            };
            if !ok {
                e.add(&hp, HEALTH_PORT_INDEX);
            }
        }
        let mesos_side = matches!(
            hc.protocol,
            HealthCheckProtocol::MesosHttp | HealthCheckProtocol::MesosHttps | HealthCheckProtocol::MesosTcp
        );
        if hc.ip_protocol != "IPv4" && !(mesos_side && docker) {
            e.add(&hp, "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks");
        }
        if e.len() == before
            && let Err(message) =
                hc.to_task_check().validate(app.host_ports().len().min(usize::from(u16::MAX)) as u16, i)
        {
            e.add(&hp, message);
        }
    }
    let mesos_checks =
        app.health_checks.iter().filter(|h| h.command.is_some() || !h.protocol.is_marathon_side()).count();
    let command_checks = app.health_checks.iter().filter(|h| h.command.is_some()).count();
    if mesos_checks - command_checks > 1 {
        e.add(&root, "AppDefinition can contain at most one Mesos health check");
    }

    // fetch
    for (i, f) in app.fetch.iter().enumerate() {
        if !uri_is_valid(&f.uri) {
            e.add(sub(&item(&p("fetch"), i), "uri"), "URI has invalid syntax.");
        } else if let Err(why) = crate::core::tasks::FetchUri::from(f).check() {
            // Marathon accepts what the Mesos fetcher can do; medos's fetcher is narrower
            // (http and https only, destinations inside the sandbox): refuse up front rather
            // than fail every task.
            e.add(item(&p("fetch"), i), why);
        }
    }

    // resource limits
    if let Some(Value::Object(limits)) = &app.resource_limits {
        for (k, requested) in [("cpus", app.cpus), ("mem", app.mem)] {
            let lp = sub(&p("resourceLimits"), k);
            match limits.get(k) {
                Some(Value::String(s)) if s != "unlimited" => {
                    e.add(lp, format!("'{s}' is an invalid resource limit. It must be 'unlimited' or a number"))
                }
                Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x < requested) => e.add(
                    lp,
                    format!("resource limit must be greater than or equal to requested resource ({requested:?})"),
                ),
                _ => {}
            }
        }
    }

    // secrets and environment
    if !app.secrets.is_empty() {
        e.add(p("secrets"), SECRETS_FEATURE);
    }
    for (i, k) in app.env.keys().enumerate() {
        if k.is_empty() {
            e.add(item(&sub(&p("env"), "keys"), i), "must not be empty");
        }
    }
    if app.env.values().any(|v| matches!(v, EnvValue::Secret(_))) {
        e.add(p("env"), "use of secret-references in the environment requires the secrets feature to be enabled");
    }
    for (k, v) in &app.env {
        if let EnvValue::Secret(s) = v
            && !app.secrets.contains_key(s)
        {
            e.add(sub(&sub(&p("env"), k), "secret"), "references an undefined secret");
        }
    }

    // roles
    if !valid_roles.contains(&app.role) {
        e.add(p("role"), format!("got {}, expected one of: [{}]", app.role, valid_roles.join(", ")));
    }
    if let Some(roles) = &app.accepted_resource_roles {
        let rp = p("acceptedResourceRoles");
        if roles.is_empty() {
            e.add(&rp, "must not be empty");
        }
        for (i, r) in roles.iter().enumerate() {
            for message in role_name_violations(r) {
                e.add(item(&rp, i), message);
            }
        }
        let mut allowed: Vec<&str> = vec![UNRESERVED_ROLE, app.role.as_str()];
        allowed.sort_unstable();
        allowed.dedup();
        let fits = roles.len() <= 2 && roles.iter().all(|r| allowed.contains(&r.as_str()));
        if !roles.is_empty() && !fits {
            e.add(&rp, format!("acceptedResourceRoles can only contain {}", allowed.join(" and ")));
        }
    }

    // gpus, labels, readiness, upgrade strategy
    if app.gpus > 0 {
        if docker {
            e.add(&root, "GPU resources only work with the Mesos containerizer");
        }
        e.add(&root, GPU_FEATURE);
    }
    if let Some(version) = app.labels.get("DCOS_MIGRATION_API_VERSION")
        && !version.is_empty()
    {
        let has = |k: &str| app.labels.get(k).is_some_and(|v| !v.is_empty());
        if !(version == "v1" && has("DCOS_PACKAGE_FRAMEWORK_NAME") && has("DCOS_MIGRATION_API_PATH")) {
            e.add(
                &root,
                "DCOS_PACKAGE_FRAMEWORK_NAME and DCOS_MIGRATION_API_PATH must be defined when using DCOS_MIGRATION_API_VERSION",
            );
        }
    }
    if app.readiness_checks.len() > 1 {
        e.add(p("readinessChecks"), format!("got {}, expected 1 or less", app.readiness_checks.len()));
    }
    let port_names: Vec<&str> = if app.has_non_host_networking() {
        app.container.iter().flat_map(|c| c.port_mappings.iter().flatten()).filter_map(|m| m.name.as_deref()).collect()
    } else {
        app.port_definitions.iter().filter_map(|d| d.name.as_deref()).collect()
    };
    for (i, rc) in app.readiness_checks.iter().enumerate() {
        let rp = item(&p("readinessChecks"), i);
        if !port_names.contains(&rc.port_name.as_str()) {
            e.add(sub(&rp, "portName"), format!("No port definition reference for portName {}", rc.port_name));
        }
        if rc.timeout_seconds >= rc.interval_seconds {
            e.add(
                sub(&rp, "timeoutSeconds"),
                format!("got {}, expected less than {}", rc.timeout_seconds, rc.interval_seconds),
            );
        }
    }
    if app.labels.get("MARATHON_SINGLE_INSTANCE_APP").is_some_and(|v| v == "true") {
        if app.instances > 1 {
            e.add(&root, "Single instance app may only have one instance");
        }
        let up = p("upgradeStrategy");
        for (k, v) in [
            ("minimumHealthCapacity", app.upgrade_strategy.minimum_health_capacity),
            ("maximumOverCapacity", app.upgrade_strategy.maximum_over_capacity),
        ] {
            if v != 0.0 {
                e.add(sub(&up, k), format!("got {v:?}, expected 0.0"));
            }
        }
    }
    if let UnreachableStrategy::Enabled { inactive_after_seconds, expunge_after_seconds } = app.unreachable_strategy
        && inactive_after_seconds > expunge_after_seconds
    {
        e.add(
            sub(&p("unreachableStrategy"), "inactiveAfterSeconds"),
            format!(
                "inactiveAfterSeconds ({inactive_after_seconds}) must be less or equal to expungeAfterSeconds, which is {expunge_after_seconds}"
            ),
        );
    }

    // constraints
    for (i, c) in app.constraints.iter().enumerate() {
        if let Err(message) = c.validate() {
            e.add(item(&p("constraints"), i), message);
        }
    }

    // networks
    network_rules(networks, &p("networks"), e);
}

/// The raw constraint arrays: 2 or 3 strings with a known operator (any case).
fn raw_constraint_rules(raw: &[Vec<String>], at: &str, e: &mut Errors) {
    for (i, c) in raw.iter().enumerate() {
        let cp = item(&sub(at, "constraints"), i);
        if c.len() < 2 || c.len() > 3 {
            e.add(cp, "Each constraint must have either 2 or 3 fields");
        } else if c[0].is_empty() {
            e.add(cp, "illegal constraint specification");
        } else if Operator::parse(&c[1].to_ascii_uppercase()).is_none() {
            e.add(cp, "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS");
        }
    }
}

fn role_name_violations(role: &str) -> Vec<String> {
    let mut out = Vec::new();
    for bad in ["", ".", ".."] {
        if role == bad {
            out.push(format!("A role name must not be \"{bad}\"."));
        }
    }
    if role.starts_with('-') {
        out.push("A role name must not start with a '-'.".into());
    }
    for (ch, name) in [
        ('\u{9}', "horizontal tab (\\x09)"),
        ('\u{a}', "line feed (\\x0a)"),
        ('\u{b}', "vertical tab (\\x0b)"),
        ('\u{c}', "form feed (\\x0c)"),
        ('\u{d}', "carriage return (\\x0d)"),
        (' ', "space (\\x20)"),
        ('/', "slash (\\x2f)"),
        ('\u{7f}', "backspace (\\x7f)"),
    ] {
        if role.contains(ch) {
            out.push(format!("A role name must not include a {name} character."));
        }
    }
    out
}

fn container_rules(c: &Container, networks: &[Network], at: &str, e: &mut Errors) {
    if let Some(pm) = &c.port_mappings {
        let pp = sub(at, "portMappings");
        if !unique(pm.iter().filter_map(|m| m.name.clone())) {
            e.add(&pp, "Port names must be unique.");
        }
        let container_networks = networks.iter().filter(|n| n.mode == NetworkMode::Container).count();
        let names: Vec<&str> = networks.iter().filter_map(|n| n.name.as_deref()).collect();
        for (i, m) in pm.iter().enumerate() {
            if container_networks > 1 && m.host_port.is_some() && m.network_names.len() != 1 {
                e.add(
                    item(&pp, i),
                    "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined",
                );
            }
            for (j, n) in m.network_names.iter().enumerate() {
                if !names.contains(&n.as_str()) {
                    e.add(item(&sub(&item(&pp, i), "networkNames"), j), format!("is not one of ({})", names.join(",")));
                }
            }
        }
    }
    for (i, v) in c.volumes.iter().enumerate() {
        let vp = item(&sub(at, "volumes"), i);
        if v.get("persistent").is_some() {
            e.add(vp, MEDOS_NO_PERSISTENT_VOLUMES);
        } else if v.get("external").is_some() {
            e.add(vp, EXTERNAL_VOLUMES_FEATURE);
        } else if v.get("secret").is_some() {
            e.add(vp, SECRETS_FEATURE);
        }
    }
    let dp = sub(at, "docker");
    match (c.kind, &c.docker) {
        (ContainerKind::Docker, None) => e.add(dp, "not defined"),
        (ContainerKind::Docker, Some(d)) if d.pull_config.is_some() => {
            e.add(sub(&dp, "pullConfig"), "pullConfig is not supported with Docker containerizer");
        }
        (ContainerKind::Mesos, Some(d)) if d.pull_config.is_some() => {
            e.add(sub(&dp, "pullConfig"), SECRETS_FEATURE);
        }
        _ => {}
    }
}

fn network_rules(nets: &[Network], at: &str, e: &mut Errors) {
    if nets.iter().any(|n| n.mode == NetworkMode::Host && (n.name.is_some() || !n.labels.is_empty())) {
        e.add(at, "Host networks may not have names or labels");
    }
    if nets.iter().any(|n| n.mode == NetworkMode::ContainerBridge && n.name.is_some()) {
        e.add(at, "Bridge networks may not have names");
    }
    if !unique(nets.iter().filter_map(|n| n.name.clone())) {
        e.add(at, "Duplicate networks are not allowed");
    }
    let count = |m: NetworkMode| nets.iter().filter(|n| n.mode == m).count();
    let (host, bridge, container) =
        (count(NetworkMode::Host), count(NetworkMode::ContainerBridge), count(NetworkMode::Container));
    let ok = (host <= 1 && bridge == 0 && container == 0)
        || (host == 0 && bridge <= 1 && container == 0)
        || (host == 0 && bridge == 0 && container > 0);
    if !ok {
        e.add(at, "May specify a single host network, single bridge network, or else 1-to-n container networks");
    }
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
