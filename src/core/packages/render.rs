//! From a package and the user's options to the Marathon app it installs as, the way Cosmos's
//! `PackageDefinitionRenderer` does it:
//!
//! 1. the schema's defaults with the user's options merged over them, validated against the
//!    schema (a package without `config.json` takes no options);
//! 2. the template scope: those options plus `resource` (the package's `resource.json`);
//! 3. `marathon.json.mustache` rendered in [`Dialect::Cosmos`] and parsed as a JSON object;
//! 4. the template's `labels` (which must map strings to strings) with Cosmos's labels over
//!    them: `DCOS_PACKAGE_NAME`, `DCOS_PACKAGE_VERSION`, `DCOS_PACKAGE_SOURCE` (the repository's
//!    URI), `DCOS_PACKAGE_OPTIONS` (the user's options, not the defaults, as base64 JSON) and
//!    `DCOS_PACKAGE_DEFINITION` (base64 of a storage envelope holding the gzipped package JSON
//!    and its media type). `DCOS_PACKAGE_METADATA` (base64 of the package's metadata and
//!    images), which Cosmos wrote until DC/OS 1.12 and older tools still read, is added too;
//!    `DCOS_PACKAGE_FRAMEWORK_NAME` is whatever the template sets, as in Cosmos;
//! 5. `id` replaced by `--app-id` when given.
//!
//! [`RenderedApp::marathon_app`] then checks the result with medos's Marathon app parser, so
//! an install of an app Marathon would refuse fails before anything is created.

use super::mustache::{self, Dialect, MustacheError, Partials};
use super::options::{self, OptionsError};
use super::repo::Package;
use crate::core::marathon::app::AppDefinition;
use crate::core::marathon::path::PathId;
use crate::core::marathon::validation::parse_app;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

pub const LABEL_NAME: &str = "DCOS_PACKAGE_NAME";
pub const LABEL_VERSION: &str = "DCOS_PACKAGE_VERSION";
pub const LABEL_SOURCE: &str = "DCOS_PACKAGE_SOURCE";
pub const LABEL_OPTIONS: &str = "DCOS_PACKAGE_OPTIONS";
pub const LABEL_DEFINITION: &str = "DCOS_PACKAGE_DEFINITION";
pub const LABEL_METADATA: &str = "DCOS_PACKAGE_METADATA";
pub const LABEL_FRAMEWORK_NAME: &str = "DCOS_PACKAGE_FRAMEWORK_NAME";

/// Why a package could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("package `{0}` has no Marathon template (marathon.json.mustache), so it cannot be installed as an app")]
    NoTemplate(String),
    #[error("the Marathon template of `{0}` is not UTF-8 text")]
    TemplateNotUtf8(String),
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("the Marathon template cannot be rendered: {0}")]
    Template(#[from] MustacheError),
    #[error("the rendered Marathon template is not valid JSON: {message} at line {line} column {column}:\n{snippet}")]
    InvalidJson { message: String, line: usize, column: usize, snippet: String },
    #[error("the rendered Marathon template must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("the rendered Marathon app's labels must map names to strings: {0}")]
    BadLabels(String),
    #[error("invalid app id {id:?}: {message}")]
    BadAppId { id: String, message: String },
    #[error("the rendered Marathon app is invalid: {0}")]
    InvalidApp(String),
}

/// A rendered package: the Marathon app to create and the options it was rendered with.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedApp {
    /// The Marathon app definition, labels included.
    pub app: Value,
    /// The defaults merged with the user's options (what the template saw, minus `resource`).
    pub options: Map<String, Value>,
}

/// Renders `package` with the user's `options` into its Marathon app. `source` is the URI of
/// the repository the package came from; `app_id` replaces the template's `id`.
pub fn render_app(
    package: &Package,
    user_options: &Map<String, Value>,
    source: &str,
    app_id: Option<&str>,
) -> Result<RenderedApp, RenderError> {
    let template = match package.template() {
        None => return Err(RenderError::NoTemplate(package.name.clone())),
        Some(Err(_)) => return Err(RenderError::TemplateNotUtf8(package.name.clone())),
        Some(Ok(t)) => t,
    };
    let schema = package.config.as_ref().map(|c| Value::Object(c.clone()));
    let merged = options::resolve(schema.as_ref(), user_options)?;
    let mut scope = merged.clone();
    if let Some(resource) = &package.resource {
        let resource = serde_json::to_value(resource).expect("a resource serialises");
        scope = options::merge(&scope, &Map::from_iter([("resource".to_string(), resource)]));
    }
    let text = mustache::render(template, &Value::Object(scope), &Partials::new(), Dialect::Cosmos)?;
    let rendered: Value = serde_json::from_str(&text).map_err(|e| RenderError::InvalidJson {
        message: strip_position(&e.to_string()),
        line: e.line(),
        column: e.column(),
        snippet: snippet(&text, e.line(), e.column()),
    })?;
    let Value::Object(mut app) = rendered else {
        return Err(RenderError::NotAnObject(json_kind(&rendered)));
    };
    let mut labels = match app.remove("labels") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(labels)) => {
            if let Some((name, value)) = labels.iter().find(|(_, v)| !v.is_string()) {
                return Err(RenderError::BadLabels(format!("label {name:?} is {value}, expected a string")));
            }
            labels
        }
        Some(other) => return Err(RenderError::BadLabels(format!("`labels` is {other}, expected an object"))),
    };
    labels.insert(LABEL_NAME.into(), package.name.clone().into());
    labels.insert(LABEL_VERSION.into(), package.version.clone().into());
    labels.insert(LABEL_SOURCE.into(), source.into());
    labels.insert(LABEL_OPTIONS.into(), encode_for_label(&Value::Object(user_options.clone())).into());
    labels.insert(LABEL_DEFINITION.into(), definition_label(package).into());
    labels.insert(LABEL_METADATA.into(), encode_for_label(&metadata(package)).into());
    app.insert("labels".into(), Value::Object(labels));
    if let Some(id) = app_id {
        let path = PathId::parse(id, &PathId::root())
            .map_err(|message| RenderError::BadAppId { id: id.to_string(), message })?;
        if path.is_root() {
            return Err(RenderError::BadAppId {
                id: id.to_string(),
                message: "must name an app, not the root group".into(),
            });
        }
        app.insert("id".into(), Value::String(path.as_str().to_string()));
    }
    Ok(RenderedApp { app: Value::Object(app), options: merged })
}

impl RenderedApp {
    /// Checks the app with medos's Marathon parser (as creating it would), so an install fails
    /// before anything is created. Rendering alone (Cosmos's `render`) does not check this.
    pub fn marathon_app(&self) -> Result<AppDefinition, RenderError> {
        parse_app(&self.app, &PathId::root()).map_err(|e| RenderError::InvalidApp(e.to_string()))
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The offending line (cut to about 80 characters around the column) and a caret under it.
fn snippet(text: &str, line: usize, column: usize) -> String {
    let Some(source) = text.lines().nth(line.saturating_sub(1)) else { return String::new() };
    let chars: Vec<char> = source.chars().collect();
    let at = column.saturating_sub(1).min(chars.len());
    let start = at.saturating_sub(40);
    let end = (at + 40).min(chars.len());
    let shown: String = chars[start..end].iter().collect();
    let prefix = if start > 0 { "…" } else { "" };
    let caret = " ".repeat(prefix.chars().count() + at - start);
    format!("{line:>5} | {prefix}{shown}\n      | {caret}^")
}

/// Drops `null` members (Cosmos prints labels with `dropNullValues`), recursively.
fn drop_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), drop_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

/// Base64 of compact JSON without null members, as Cosmos encodes label values.
pub fn encode_for_label(value: &Value) -> String {
    STANDARD.encode(drop_nulls(value).to_string())
}

/// `DCOS_PACKAGE_DEFINITION`: Cosmos's storage envelope (media type, gzip, base64 data).
fn definition_label(package: &Package) -> String {
    let json = serde_json::to_string(package).expect("a package serialises");
    let envelope = json!({
        "metadata": {
            "Content-Type": package.packaging_version.package_media_type(),
            "Content-Encoding": "gzip",
        },
        "data": STANDARD.encode(gzip(json.as_bytes())),
    });
    encode_for_label(&envelope)
}

/// Cosmos's `PackageMetadata` label value (`selected` and `framework` default to false).
fn metadata(package: &Package) -> Value {
    json!({
        "packagingVersion": package.packaging_version,
        "name": package.name,
        "version": package.version,
        "maintainer": package.maintainer,
        "description": package.description,
        "tags": package.tags,
        "selected": package.selected.unwrap_or(false),
        "scm": package.scm,
        "website": package.website,
        "framework": package.framework.unwrap_or(false),
        "preInstallNotes": package.pre_install_notes,
        "postInstallNotes": package.post_install_notes,
        "postUninstallNotes": package.post_uninstall_notes,
        "licenses": package.licenses,
        "images": package.resource.as_ref().and_then(|r| r.images.as_ref()),
    })
}

/// Gzip (RFC 1952) of in-memory bytes: flate2's deflate and CRC-32 with the 18 bytes of gzip
/// framing written here, because flate2's `GzEncoder` works through `std::io::Write`, which the
/// pure core does not use (`tests/core_purity.rs`).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut deflate = flate2::Compress::new(flate2::Compression::default(), false);
    let mut body = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&data[consumed..], &mut body, flate2::FlushCompress::Finish)
            .expect("deflate of an in-memory buffer cannot fail");
        if status == flate2::Status::StreamEnd {
            break;
        }
        body.reserve(body.capacity().max(64));
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let mut out = Vec::with_capacity(body.len() + 18);
    // magic, deflate, no flags, no mtime, no extra flags, unknown OS
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_through_a_standard_decoder() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let packed = gzip(&data);
        let mut decoder = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(data.len() + 16);
        let body = &packed[10..packed.len() - 8];
        decoder.decompress_vec(body, &mut out, flate2::FlushDecompress::Finish).unwrap();
        assert_eq!(out, data);
        let crc = u32::from_le_bytes(packed[packed.len() - 8..packed.len() - 4].try_into().unwrap());
        let mut check = flate2::Crc::new();
        check.update(&data);
        assert_eq!(crc, check.sum());
        assert!(packed.len() < data.len());
    }

    #[test]
    fn snippets_point_at_the_column() {
        let s = snippet("{\n  \"a\": 1,,\n}", 2, 10);
        assert_eq!(s, "    2 |   \"a\": 1,,\n      |          ^");
    }
}
