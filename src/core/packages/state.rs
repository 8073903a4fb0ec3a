//! The package manager's replicated state: the repository list in priority order and the
//! content of the repositories the cluster holds itself.
//!
//! Two kinds of repositories exist:
//! - **URL repositories** (`http://…`, `https://…`): only the name and URL are replicated; the
//!   master serving a request fetches the index (adapters do that, not the core).
//! - **Cluster repositories** (URI `cluster:NAME`): the index was uploaded (a file or a
//!   Universe directory on the CLI's machine, or packages added one by one with
//!   `POST /package/add` into the repository named [`LOCAL_REPO`]); their packages live here,
//!   so every master serves the same without reaching anything outside the cluster.
//!
//! Every change is checked here, in `apply`: a refused command changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::repo::{Package, PackagingVersion, RepoList, RepoSource, Repository};

/// The cluster repository `POST /package/add` adds packages to.
pub const LOCAL_REPO: &str = "local";
/// The URI scheme of repositories whose content the cluster holds.
pub const CLUSTER_SCHEME: &str = "cluster:";
/// The largest repository index (or single package) the cluster stores, as JSON bytes.
pub const MAX_REPO_BYTES: usize = 8 * 1024 * 1024;

/// The URI of the cluster repository `name`.
pub fn cluster_uri(name: &str) -> String {
    format!("{CLUSTER_SCHEME}{name}")
}

/// Whether `uri` names an http(s) repository (scheme, then a non-empty host, no spaces).
pub fn is_url(uri: &str) -> bool {
    let rest = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Checks a repository name: 1 to 64 printable characters without spaces or `:`.
pub fn validate_repo_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("repository name {name:?} must be 1 to 64 characters long"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/') {
        return Err(format!("repository name {name:?} must not contain spaces, control characters, `:` or `/`"));
    }
    Ok(())
}

/// The repository list and the content of cluster repositories, by repository name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PackageState {
    #[serde(default)]
    pub repos: RepoList,
    #[serde(default)]
    pub content: BTreeMap<String, Repository>,
}

/// What [`PackageState::add_package`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub name: String,
    pub version: String,
    /// The same name and version was in the repository and was replaced.
    pub replaced: bool,
}

impl PackageState {
    /// Adds a repository at `index` (0 = first, `None` = last). With `content` (an index
    /// document, `{"packages": [...]}`) the cluster holds it and `uri` must be
    /// `cluster:NAME`; without, `uri` must be an http(s) URL.
    pub fn add_repo(
        &mut self,
        name: &str,
        uri: &str,
        index: Option<usize>,
        content: Option<&Value>,
    ) -> Result<Vec<RepoSource>, String> {
        validate_repo_name(name)?;
        let repository = match content {
            Some(doc) => {
                if uri != cluster_uri(name) {
                    return Err(format!(
                        "uri: a repository uploaded to the cluster has the URI {:?}, got {uri:?}",
                        cluster_uri(name)
                    ));
                }
                let bytes = serde_json::to_vec(doc).map_err(|e| format!("content: {e}"))?;
                if bytes.len() > MAX_REPO_BYTES {
                    return Err(too_large("repository index", bytes.len()));
                }
                Some(Repository::from_index_json(&bytes).map_err(|e| e.to_string())?)
            }
            None if is_url(uri) => None,
            None => {
                return Err(format!(
                    "uri: {uri:?} is not an http:// or https:// URL (local files and directories are uploaded by the CLI)"
                ));
            }
        };
        self.repos.add(name, uri, index).map_err(|e| e.to_string())?;
        if let Some(repository) = repository {
            self.content.insert(name.to_string(), repository);
        }
        Ok(self.repos.repos.clone())
    }

    /// Removes the repository with this name or URI (and the content the cluster held).
    pub fn remove_repo(&mut self, name_or_uri: &str) -> Result<Vec<RepoSource>, String> {
        let removed = self.repos.remove(name_or_uri).map_err(|e| e.to_string())?;
        self.content.remove(&removed.name);
        Ok(self.repos.repos.clone())
    }

    /// Adds one package (its JSON in the Universe package shape, packagingVersion 3.0 or
    /// later) to the cluster repository [`LOCAL_REPO`], which is created (last in the list)
    /// on first use. A package with the same name and version is replaced; one without
    /// `releaseVersion` gets the next release number of its name in that repository.
    pub fn add_package(&mut self, package: &Value) -> Result<Added, String> {
        let size = serde_json::to_vec(package).map(|b| b.len()).unwrap_or(usize::MAX);
        if size > MAX_REPO_BYTES {
            return Err(too_large("package", size));
        }
        // Without `releaseVersion` the package comes after every release of its name here.
        let mut package = package.clone();
        if let Some(object) = package.as_object_mut()
            && !object.contains_key("releaseVersion")
        {
            let name = object.get("name").and_then(Value::as_str).unwrap_or_default();
            let next = self
                .content
                .get(LOCAL_REPO)
                .into_iter()
                .flat_map(|r| &r.packages)
                .filter(|p| p.name == name)
                .map(|p| p.release_version + 1)
                .max()
                .unwrap_or(0);
            object.insert("releaseVersion".into(), Value::from(next));
        }
        let parsed = Package::from_json(&package).map_err(|(field, message)| {
            if field.is_empty() { format!("package: {message}") } else { format!("package.{field}: {message}") }
        })?;
        if parsed.packaging_version < PackagingVersion::V3 {
            return Err("package.packagingVersion: \"2.0\" packages cannot be added; use \"3.0\" or later".into());
        }
        match self.repos.repos.iter().find(|r| r.name == LOCAL_REPO) {
            Some(r) if r.uri != cluster_uri(LOCAL_REPO) => {
                return Err(format!(
                    "the repository named {LOCAL_REPO:?} is {:?}, not the cluster's own; remove it to add packages",
                    r.uri
                ));
            }
            Some(_) => {}
            None => self.repos.add(LOCAL_REPO, &cluster_uri(LOCAL_REPO), None).map_err(|e| e.to_string())?,
        }
        let repo = self.content.entry(LOCAL_REPO.to_string()).or_default();
        let existing = repo.packages.iter().position(|p| p.name == parsed.name && p.version == parsed.version);
        let added = Added { name: parsed.name.clone(), version: parsed.version.clone(), replaced: existing.is_some() };
        match existing {
            Some(i) => repo.packages[i] = parsed,
            None => repo.packages.push(parsed),
        }
        Ok(added)
    }
}

fn too_large(what: &str, size: usize) -> String {
    format!("{what} is {size} bytes of JSON; the cluster stores at most {MAX_REPO_BYTES} bytes (8 MiB) per repository")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(name: &str, version: &str) -> Value {
        json!({"packagingVersion": "4.0", "name": name, "version": version, "releaseVersion": 0,
               "maintainer": "m@example.com", "description": "d", "tags": []})
    }

    #[test]
    fn uploaded_and_url_repositories_are_checked() {
        let mut s = PackageState::default();
        let content = json!({"packages": [package("foo", "1")]});
        assert!(s.add_repo("up", "cluster:other", None, Some(&content)).unwrap_err().contains("uri"));
        assert!(s.add_repo("up", "repo.json", None, None).unwrap_err().contains("not an http"));
        assert!(s.add_repo("bad name", "https://x", None, None).unwrap_err().contains("spaces"));
        let broken = json!({"packages": [{"name": "foo"}]});
        assert!(s.add_repo("up", "cluster:up", None, Some(&broken)).unwrap_err().contains("packagingVersion"));
        assert_eq!(s, PackageState::default(), "refused commands change nothing");
        s.add_repo("up", "cluster:up", None, Some(&content)).unwrap();
        let list = s.add_repo("web", "https://example.com/repo", Some(0), None).unwrap();
        assert_eq!(list.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["web", "up"]);
        assert_eq!(s.content["up"].packages[0].name, "foo");
        s.remove_repo("up").unwrap();
        assert!(s.content.is_empty());
    }

    #[test]
    fn packages_go_to_the_local_repository() {
        let mut s = PackageState::default();
        s.add_repo("web", "https://example.com/repo", None, None).unwrap();
        assert!(!s.add_package(&package("foo", "1")).unwrap().replaced);
        assert!(s.add_package(&package("foo", "1")).unwrap().replaced);
        s.add_package(&package("foo", "2")).unwrap();
        assert_eq!(s.repos.repos[1], RepoSource { name: "local".into(), uri: "cluster:local".into() });
        assert_eq!(s.content["local"].packages.len(), 2);
        let mut v2 = package("bar", "1");
        v2["packagingVersion"] = json!("2.0");
        assert!(s.add_package(&v2).unwrap_err().contains("packagingVersion"));
        assert!(s.add_package(&json!({"name": "x"})).unwrap_err().starts_with("package.packagingVersion"));
        let mut t = PackageState::default();
        t.add_repo("local", "https://example.com/local", None, None).unwrap();
        assert!(t.add_package(&package("foo", "1")).unwrap_err().contains("remove it"));
    }
}
