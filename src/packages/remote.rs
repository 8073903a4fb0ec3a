//! URL repositories: the master serving a request fetches the index (`GET`, TLS verified
//! against the platform's trusted roots and the cluster CA), parses it with
//! `core::packages::Repository::from_index_json` and keeps it in memory for [`CACHE_TTL`].
//! Every error names the URL and what failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::core::packages::Repository;
use crate::core::packages::state::MAX_REPO_BYTES;

/// How long a fetched index is served from memory before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
/// What Cosmos asks a repository server for, newest first.
const ACCEPT: &str = "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v5,\
application/vnd.dcos.universe.repo+json;charset=utf-8;version=v4,\
application/vnd.dcos.universe.repo+json;charset=utf-8;version=v3,application/json;q=0.5";

/// A URL repository that could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("repository {url}: {message}")]
pub struct FetchError {
    pub url: String,
    pub message: String,
}

/// Fetches and caches URL repositories for one master.
pub struct RemoteRepos {
    ca_pem: Vec<u8>,
    http: OnceLock<Result<reqwest::Client, String>>,
    cache: Mutex<HashMap<String, (Instant, Arc<Repository>)>>,
}

impl RemoteRepos {
    /// `ca_pem`: the cluster CA, trusted next to the platform's roots.
    pub fn new(ca_pem: &[u8]) -> RemoteRepos {
        RemoteRepos { ca_pem: ca_pem.to_vec(), http: OnceLock::new(), cache: Mutex::new(HashMap::new()) }
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.http.get_or_init(|| build_client(&self.ca_pem)).as_ref().map_err(Clone::clone)
    }

    /// The repository at `url`, from the cache when fetched less than [`CACHE_TTL`] ago
    /// (always fetched with `fresh`).
    pub async fn get(&self, url: &str, fresh: bool) -> Result<Arc<Repository>, FetchError> {
        if !fresh
            && let Some((at, repo)) = self.cache.lock().expect("cache lock").get(url)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(repo.clone());
        }
        let started = Instant::now();
        let repo = Arc::new(self.fetch(url).await.map_err(|message| FetchError { url: url.to_string(), message })?);
        tracing::info!(
            url,
            packages = repo.packages.len(),
            ms = started.elapsed().as_millis() as u64,
            "fetched package repository"
        );
        let mut cache = self.cache.lock().expect("cache lock");
        // Expired entries (of removed repositories, say) go whenever a fetch lands.
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        cache.insert(url.to_string(), (Instant::now(), repo.clone()));
        Ok(repo)
    }

    async fn fetch(&self, url: &str) -> Result<Repository, String> {
        let client = self.client()?;
        let mut resp = client
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| format!("cannot fetch the index: {}", crate::api::client::describe(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("the server answered {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_REPO_BYTES as u64) {
            return Err(format!("the index is larger than {MAX_REPO_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| format!("reading the index failed: {}", crate::api::client::describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_REPO_BYTES {
                return Err(format!("the index is larger than {MAX_REPO_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Repository::from_index_json(&body).map_err(|e| e.to_string())
    }
}

fn build_client(ca_pem: &[u8]) -> Result<reqwest::Client, String> {
    crate::pki::install_crypto_provider();
    let mut roots = crate::pki::tls::roots_from_pem(ca_pem, std::path::Path::new("<cluster CA>"))
        .map_err(|e| format!("the cluster CA cannot be used: {e}"))?;
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a platform certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "platform roots for package repositories");
    let tls = rustls::ClientConfig::builder_with_provider(crate::pki::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        // Redirects are followed (at most 5), never from https to plain http.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let downgrade =
                attempt.url().scheme() == "http" && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade {
                let to = attempt.url().to_string();
                attempt.error(format!("refusing a redirect from https to {to}"))
            } else if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else {
                attempt.follow()
            }
        }))
        .user_agent(concat!("medos/", env!("CARGO_PKG_VERSION"), " (package manager)"))
        .build()
        .map_err(|e| e.to_string())
}
