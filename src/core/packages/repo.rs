//! Packages and repositories in the Universe format.
//!
//! A repository arrives either as an index (`{"packages": [...]}`, the
//! `application/vnd.dcos.universe.repo+json` document: packagingVersion 2.0 to 5.0, templates
//! base64-encoded) or as the Universe source layout, given here as a map of relative path →
//! bytes: `packages/F/foo/N/{package.json,config.json,marathon.json.mustache,resource.json}`,
//! where `N` is the release version (other files in a package directory are ignored, as
//! Universe's build ignores them). Both become a [`Repository`]; errors name the package,
//! file and field.
//!
//! Lookups over several repositories follow Cosmos's package collection: a package
//! (name, version) comes from the first repository in the list that has it; describing a
//! package without a version picks, in the first repository that has the name, its highest
//! `releaseVersion`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The Universe packaging versions Cosmos reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PackagingVersion {
    #[serde(rename = "2.0")]
    V2,
    #[serde(rename = "3.0")]
    V3,
    #[serde(rename = "4.0")]
    V4,
    #[serde(rename = "5.0")]
    V5,
}

impl PackagingVersion {
    /// The media type Cosmos stores a package of this version under.
    pub fn package_media_type(self) -> &'static str {
        match self {
            PackagingVersion::V2 => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v2",
            PackagingVersion::V3 => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v3",
            PackagingVersion::V4 => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v4",
            PackagingVersion::V5 => "application/vnd.dcos.universe.package+json;charset=utf-8;version=v5",
        }
    }

    fn parse(text: &str) -> Option<PackagingVersion> {
        match text {
            "2.0" => Some(PackagingVersion::V2),
            "3.0" => Some(PackagingVersion::V3),
            "4.0" => Some(PackagingVersion::V4),
            "5.0" => Some(PackagingVersion::V5),
            _ => None,
        }
    }
}

/// A license a package names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    pub name: String,
    pub url: String,
}

/// The Marathon template (the bytes of `marathon.json.mustache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Marathon {
    #[serde(with = "crate::core::base64_bytes")]
    pub v2_app_mustache_template: Vec<u8>,
}

/// A 5.0 package managed by another package (an SDK service's manager).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manager {
    pub package_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_package_version: Option<String>,
}

/// `resource.json`: the images, container images, URIs and CLI binaries a package uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Assets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<Cli>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Image references by name, as templates use them:
    /// `{{resource.assets.container.docker.NAME}}`.
    pub docker: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    #[serde(rename = "icon-small", default, skip_serializing_if = "Option::is_none")]
    pub icon_small: Option<String>,
    #[serde(rename = "icon-medium", default, skip_serializing_if = "Option::is_none")]
    pub icon_medium: Option<String>,
    #[serde(rename = "icon-large", default, skip_serializing_if = "Option::is_none")]
    pub icon_large: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshots: Option<Vec<String>>,
}

/// CLI binaries (medos does not install package CLIs; they are read and kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cli {
    pub binaries: BTreeMap<String, BTreeMap<String, CliBinary>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CliBinary {
    pub kind: String,
    pub url: String,
    pub content_hash: Vec<HashInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashInfo {
    pub algo: String,
    pub value: String,
}

/// One package version, as in a Universe index (field names and JSON shape preserved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub packaging_version: PackagingVersion,
    pub name: String,
    pub version: String,
    pub release_version: u64,
    pub maintainer: String,
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_uninstall_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Vec<License>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_dcos_release_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marathon: Option<Marathon>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// The options' JSON Schema (`config.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    /// 2.0/3.0 only: the pip requirements of the (unsupported) Python CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_known_issues: Option<bool>,
    /// 4.0+: versions this one can upgrade from (`"*"` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades_from: Option<Vec<String>>,
    /// 4.0+: versions this one can downgrade to (`"*"` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrades_to: Option<Vec<String>>,
    /// 5.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
}

/// A repository, package lookup or repository-list operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// A repository index or Universe layout that cannot be read; `at` names the place
    /// (`packages[2] (foo)` or a file path) and the field.
    #[error("{at}: {message}")]
    BadRepository { at: String, message: String },
    #[error("package `{0}` not found")]
    PackageNotFound(String),
    #[error("version `{version}` of package `{name}` not found")]
    VersionNotFound { name: String, version: String },
    #[error("a repository named `{0}` is already in the list")]
    RepoNameExists(String),
    #[error("a repository with URI `{0}` is already in the list")]
    RepoUriExists(String),
    #[error("index {index} is out of range: it must be between 0 and {len}")]
    RepoIndexOutOfRange { index: usize, len: usize },
    #[error("no repository named or with URI `{0}`")]
    RepoNotFound(String),
    #[error("invalid repository {field}: {message}")]
    BadRepoSource { field: &'static str, message: String },
}

fn bad(at: impl Into<String>, message: impl Into<String>) -> PackageError {
    PackageError::BadRepository { at: at.into(), message: message.into() }
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-'
}

impl Package {
    /// Reads one package from its index JSON. Errors are `(field path, message)`.
    pub fn from_json(value: &Value) -> Result<Package, (String, String)> {
        let Some(object) = value.as_object() else {
            return Err((String::new(), "a package must be a JSON object".into()));
        };
        let packaging = match object.get("packagingVersion") {
            None => {
                return Err((
                    "packagingVersion".into(),
                    "missing (expected \"2.0\", \"3.0\", \"4.0\" or \"5.0\")".into(),
                ));
            }
            Some(Value::String(s)) => PackagingVersion::parse(s).ok_or_else(|| {
                (
                    "packagingVersion".to_string(),
                    format!("{s:?} is not supported (expected \"2.0\", \"3.0\", \"4.0\" or \"5.0\")"),
                )
            })?,
            Some(other) => {
                return Err(("packagingVersion".into(), format!("expected a string such as \"4.0\", got {other}")));
            }
        };
        let package: Package = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            (if path == "." { String::new() } else { path }, e.into_inner().to_string())
        })?;
        let field = |f: &str, m: String| Err((f.to_string(), m));
        if !valid_name(&package.name) {
            return field(
                "name",
                format!(
                    "{:?} is not a package name (lowercase letters, digits and `-`, starting with a letter)",
                    package.name
                ),
            );
        }
        if package.version.is_empty() || package.version.chars().any(char::is_whitespace) {
            return field("version", format!("{:?} must be non-empty and without spaces", package.version));
        }
        if let Some((i, tag)) =
            package.tags.iter().enumerate().find(|(_, t)| t.is_empty() || t.chars().any(char::is_whitespace))
        {
            return field(&format!("tags[{i}]"), format!("{tag:?} must be non-empty and without spaces"));
        }
        if packaging == PackagingVersion::V2 && package.marathon.is_none() {
            return field("marathon", "is required for packagingVersion 2.0".into());
        }
        if packaging < PackagingVersion::V4 && (package.upgrades_from.is_some() || package.downgrades_to.is_some()) {
            let f = if package.upgrades_from.is_some() { "upgradesFrom" } else { "downgradesTo" };
            return field(f, "needs packagingVersion 4.0 or later".into());
        }
        if packaging != PackagingVersion::V5 && package.manager.is_some() {
            return field("manager", "needs packagingVersion 5.0".into());
        }
        if packaging >= PackagingVersion::V4 && package.command.is_some() {
            return field("command", "is only allowed up to packagingVersion 3.0".into());
        }
        if packaging == PackagingVersion::V2 && package.resource.as_ref().is_some_and(|r| r.cli.is_some()) {
            return field("resource.cli", "needs packagingVersion 3.0 or later".into());
        }
        Ok(package)
    }

    /// The Marathon template as text, when the package has one.
    pub fn template(&self) -> Option<Result<&str, std::str::Utf8Error>> {
        self.marathon.as_ref().map(|m| std::str::from_utf8(&m.v2_app_mustache_template))
    }

    /// Whether this version may replace an installed `version` (4.0+ `upgradesFrom`).
    pub fn can_upgrade_from(&self, version: &str) -> bool {
        self.upgrades_from.as_ref().is_some_and(|v| v.iter().any(|s| s == "*" || s == version))
    }

    /// Whether this version may be replaced by `version` (4.0+ `downgradesTo`).
    pub fn can_downgrade_to(&self, version: &str) -> bool {
        self.downgrades_to.as_ref().is_some_and(|v| v.iter().any(|s| s == "*" || s == version))
    }
}

/// A package's entry in search results (Cosmos's search result shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub name: String,
    pub current_version: String,
    /// version → release version, over every repository that has the package.
    pub versions: BTreeMap<String, u64>,
    pub description: String,
    pub framework: bool,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
}

/// The packages of one repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    pub packages: Vec<Package>,
}

impl Repository {
    /// Parses a repository index (`{"packages": [...]}`).
    pub fn from_index_json(bytes: &[u8]) -> Result<Repository, PackageError> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| bad("repository index", format!("not valid JSON: {e}")))?;
        let Some(list) = doc.get("packages") else {
            return Err(bad("repository index", "missing the `packages` list"));
        };
        let Some(list) = list.as_array() else {
            return Err(bad("repository index: packages", "expected a list of packages"));
        };
        let mut packages = Vec::with_capacity(list.len());
        for (i, value) in list.iter().enumerate() {
            let package = Package::from_json(value).map_err(|(field, message)| {
                let name = value.get("name").and_then(Value::as_str).map(|n| format!(" ({n})")).unwrap_or_default();
                let at = if field.is_empty() { String::new() } else { format!(".{field}") };
                bad(format!("repository index: packages[{i}]{name}{at}"), message)
            })?;
            packages.push(package);
        }
        let repo = Repository { packages };
        repo.check_unique()?;
        Ok(repo)
    }

    /// Reads the Universe source layout from relative path → file contents. Paths may start
    /// with `repo/` (as in the Universe repository); files outside `packages/` are ignored.
    pub fn from_universe_layout(files: &BTreeMap<String, Vec<u8>>) -> Result<Repository, PackageError> {
        // (letter, name, release) → file name → bytes
        let mut dirs: BTreeMap<(String, String, String), BTreeMap<&str, &[u8]>> = BTreeMap::new();
        for (path, bytes) in files {
            let rel = path.strip_prefix("./").unwrap_or(path);
            let rel = rel.strip_prefix("repo/").unwrap_or(rel);
            let Some(rest) = rel.strip_prefix("packages/") else { continue };
            let parts: Vec<&str> = rest.split('/').collect();
            if parts.len() != 4 {
                if parts.last().is_some_and(|p| p.ends_with(".json") || p.ends_with(".mustache")) {
                    return Err(bad(path, "expected packages/<LETTER>/<name>/<release>/<file>"));
                }
                continue;
            }
            dirs.entry((parts[0].to_string(), parts[1].to_string(), parts[2].to_string()))
                .or_default()
                .insert(parts[3], bytes.as_slice());
        }
        let mut packages = Vec::new();
        for ((letter, name, release), dir_files) in dirs {
            let base = format!("packages/{letter}/{name}/{release}");
            packages.push(package_from_dir(&base, &letter, &name, &release, &dir_files)?);
        }
        let repo = Repository { packages };
        repo.check_unique()?;
        Ok(repo)
    }

    fn check_unique(&self) -> Result<(), PackageError> {
        let mut seen = BTreeMap::new();
        for (i, p) in self.packages.iter().enumerate() {
            if let Some(first) = seen.insert((p.name.as_str(), p.version.as_str()), i) {
                return Err(bad(
                    format!("packages[{i}] ({})", p.name),
                    format!("version {:?} appears twice (also packages[{first}])", p.version),
                ));
            }
        }
        Ok(())
    }

    /// Packages whose name, description or a tag contains `query` (case-insensitive), or,
    /// when `query` has `*`, matches it as a whole-string wildcard pattern; all with `None`.
    pub fn search(&self, query: Option<&str>) -> Vec<SearchResult> {
        Catalog::new(vec![("", self)]).search(query)
    }

    /// The package `name` at `version`, or its highest release when `version` is `None`.
    pub fn describe(&self, name: &str, version: Option<&str>) -> Result<&Package, PackageError> {
        Catalog::new(vec![("", self)]).describe(name, version).map(|(p, _)| p)
    }

    /// Every version of `name`, with its release version.
    pub fn list_versions(&self, name: &str) -> Result<BTreeMap<String, u64>, PackageError> {
        Catalog::new(vec![("", self)]).list_versions(name)
    }
}

fn package_from_dir(
    base: &str,
    letter: &str,
    name: &str,
    release: &str,
    files: &BTreeMap<&str, &[u8]>,
) -> Result<Package, PackageError> {
    let release_version: u64 = release
        .parse()
        .map_err(|_| bad(base, format!("the release directory {release:?} must be a non-negative whole number")))?;
    let expected_letter = name.chars().next().map(|c| c.to_ascii_uppercase().to_string()).unwrap_or_default();
    if letter != expected_letter {
        return Err(bad(base, format!("package `{name}` belongs under packages/{expected_letter}/")));
    }
    let json = |file: &str| -> Result<Option<Value>, PackageError> {
        files
            .get(file)
            .map(|bytes| {
                serde_json::from_slice::<Value>(bytes)
                    .map_err(|e| bad(format!("{base}/{file}"), format!("not valid JSON: {e}")))
            })
            .transpose()
    };
    let Some(mut doc) = json("package.json")? else {
        return Err(bad(format!("{base}/package.json"), "missing"));
    };
    let Some(object) = doc.as_object_mut() else {
        return Err(bad(format!("{base}/package.json"), "expected a JSON object"));
    };
    if object.get("name").and_then(Value::as_str).is_some_and(|n| n != name) {
        return Err(bad(format!("{base}/package.json"), format!("name: must be {name:?}, the directory's name")));
    }
    object.insert("releaseVersion".into(), Value::from(release_version));
    for (file, key) in [("config.json", "config"), ("resource.json", "resource"), ("command.json", "command")] {
        if let Some(value) = json(file)? {
            object.insert(key.into(), value);
        }
    }
    if let Some(template) = files.get("marathon.json.mustache") {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(template);
        object.insert("marathon".into(), serde_json::json!({"v2AppMustacheTemplate": encoded}));
    }
    Package::from_json(&doc).map_err(|(field, message)| {
        let (file, field) = if let Some(rest) = field.strip_prefix("config") {
            ("config.json", rest.trim_start_matches('.'))
        } else if let Some(rest) = field.strip_prefix("resource") {
            ("resource.json", rest.trim_start_matches('.'))
        } else if field.starts_with("marathon") {
            ("marathon.json.mustache", "")
        } else if let Some(rest) = field.strip_prefix("command") {
            ("command.json", rest.trim_start_matches('.'))
        } else {
            ("package.json", field.as_str())
        };
        let at = if field.is_empty() { format!("{base}/{file}") } else { format!("{base}/{file}: {field}") };
        bad(at, message)
    })
}

/// Several repositories in priority order (what package lookups go through).
#[derive(Debug, Clone)]
pub struct Catalog<'a> {
    repos: Vec<(&'a str, &'a Repository)>,
}

impl<'a> Catalog<'a> {
    /// `repos` in priority order, each with its source URI.
    pub fn new(repos: Vec<(&'a str, &'a Repository)>) -> Catalog<'a> {
        Catalog { repos }
    }

    /// Cosmos's merge: one entry per (name, version), from the first repository that has it,
    /// sorted by name, then repository order, then release version (highest first).
    fn merged(&self) -> Vec<(&'a Package, &'a str)> {
        let mut chosen: BTreeMap<(&str, &str), (usize, &'a Package, &'a str)> = BTreeMap::new();
        for (index, (uri, repo)) in self.repos.iter().enumerate() {
            for package in &repo.packages {
                chosen.entry((package.name.as_str(), package.version.as_str())).or_insert((index, package, uri));
            }
        }
        let mut list: Vec<(usize, &'a Package, &'a str)> = chosen.into_values().collect();
        list.sort_by(|a, b| {
            (a.1.name.as_str(), a.0).cmp(&(b.1.name.as_str(), b.0)).then(b.1.release_version.cmp(&a.1.release_version))
        });
        list.into_iter().map(|(_, p, uri)| (p, uri)).collect()
    }

    /// See [`Repository::search`]; results sort selected packages first, then by name.
    pub fn search(&self, query: Option<&str>) -> Vec<SearchResult> {
        let mut results: BTreeMap<&str, SearchResult> = BTreeMap::new();
        for (package, _) in self.merged() {
            let entry = results.entry(package.name.as_str()).or_insert_with(|| SearchResult {
                name: package.name.clone(),
                current_version: package.version.clone(),
                versions: BTreeMap::new(),
                description: package.description.clone(),
                framework: package.framework.unwrap_or(false),
                tags: package.tags.clone(),
                selected: package.selected,
                images: package.resource.as_ref().and_then(|r| r.images.clone()),
            });
            let release = entry.versions.entry(package.version.clone()).or_insert(package.release_version);
            *release = (*release).max(package.release_version);
        }
        let matcher = Matcher::new(query);
        let mut list: Vec<SearchResult> = results.into_values().filter(|r| matcher.matches(r)).collect();
        list.sort_by(|a, b| (!a.selected.unwrap_or(false), &a.name).cmp(&(!b.selected.unwrap_or(false), &b.name)));
        list
    }

    /// See [`Repository::describe`]; also returns the URI of the repository it came from.
    pub fn describe(&self, name: &str, version: Option<&str>) -> Result<(&'a Package, &'a str), PackageError> {
        let mut named = self.merged().into_iter().filter(|(p, _)| p.name == name);
        let Some(first) = named.next() else {
            return Err(PackageError::PackageNotFound(name.to_string()));
        };
        match version {
            None => Ok(first),
            Some(v) => std::iter::once(first)
                .chain(named)
                .find(|(p, _)| p.version == v)
                .ok_or_else(|| PackageError::VersionNotFound { name: name.to_string(), version: v.to_string() }),
        }
    }

    /// See [`Repository::list_versions`].
    pub fn list_versions(&self, name: &str) -> Result<BTreeMap<String, u64>, PackageError> {
        let versions: BTreeMap<String, u64> = self
            .merged()
            .into_iter()
            .filter(|(p, _)| p.name == name)
            .map(|(p, _)| (p.version.clone(), p.release_version))
            .collect();
        if versions.is_empty() {
            return Err(PackageError::PackageNotFound(name.to_string()));
        }
        Ok(versions)
    }
}

enum Matcher {
    All,
    Contains(String),
    Pattern(regex::Regex),
}

impl Matcher {
    fn new(query: Option<&str>) -> Matcher {
        match query {
            None => Matcher::All,
            Some(q) if q.contains('*') => {
                let parts: Vec<String> = q.split('*').map(regex::escape).collect();
                match regex::Regex::new(&format!("^{}$", parts.join(".*"))) {
                    Ok(re) => Matcher::Pattern(re),
                    // Escaped literals joined by `.*` always compile; fall back to a substring.
                    Err(_) => Matcher::Contains(q.to_lowercase()),
                }
            }
            Some(q) => Matcher::Contains(q.to_lowercase()),
        }
    }

    fn matches(&self, r: &SearchResult) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Contains(q) => {
                r.name.to_lowercase().contains(q)
                    || r.description.to_lowercase().contains(q)
                    || r.tags.iter().any(|t| t.to_lowercase().contains(q))
            }
            Matcher::Pattern(re) => {
                re.is_match(&r.name) || re.is_match(&r.description) || r.tags.iter().any(|t| re.is_match(t))
            }
        }
    }
}

/// A configured repository: a name and where it is read from (a URL, a path or a
/// cluster-local name; the adapters interpret it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSource {
    pub name: String,
    pub uri: String,
}

/// The configured repositories in priority order (first is searched first), as Cosmos keeps
/// them. Lives in the replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoList {
    pub repos: Vec<RepoSource>,
}

impl RepoList {
    /// Adds a repository at `index` (0 = highest priority), or last when `None`.
    pub fn add(&mut self, name: &str, uri: &str, index: Option<usize>) -> Result<(), PackageError> {
        if name.trim().is_empty() {
            return Err(PackageError::BadRepoSource { field: "name", message: "must not be empty".into() });
        }
        if uri.trim().is_empty() {
            return Err(PackageError::BadRepoSource { field: "uri", message: "must not be empty".into() });
        }
        if self.repos.iter().any(|r| r.name == name) {
            return Err(PackageError::RepoNameExists(name.to_string()));
        }
        if self.repos.iter().any(|r| r.uri == uri) {
            return Err(PackageError::RepoUriExists(uri.to_string()));
        }
        let len = self.repos.len();
        let index = index.unwrap_or(len);
        if index > len {
            return Err(PackageError::RepoIndexOutOfRange { index, len });
        }
        self.repos.insert(index, RepoSource { name: name.to_string(), uri: uri.to_string() });
        Ok(())
    }

    /// Removes the repository with this name or URI and returns it.
    pub fn remove(&mut self, name_or_uri: &str) -> Result<RepoSource, PackageError> {
        let Some(i) = self.repos.iter().position(|r| r.name == name_or_uri || r.uri == name_or_uri) else {
            return Err(PackageError::RepoNotFound(name_or_uri.to_string()));
        };
        Ok(self.repos.remove(i))
    }
}
