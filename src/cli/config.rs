//! The CLI's cluster configurations: one directory per cluster under the user's config dir
//! (`$MEDOS_CONFIG_DIR`, else `~/.config/medos`), DC/OS-style: `clusters/<id>/cluster.toml`,
//! `clusters/<id>/ca.crt`, and an `attached` marker in the cluster the CLI uses.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::api::client::Client;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    pub cluster_id: String,
    /// Every known master URL; the client moves on when one cannot be reached.
    pub urls: Vec<String>,
    pub ca_fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

pub struct Clusters {
    root: PathBuf,
}

/// A configured cluster with where it lives.
pub struct Entry {
    pub dir: PathBuf,
    pub config: ClusterConfig,
    pub attached: bool,
}

impl Entry {
    pub fn ca_pem(&self) -> Result<Vec<u8>> {
        let path = self.dir.join("ca.crt");
        std::fs::read(&path).with_context(|| format!("reading the cluster CA {}", path.display()))
    }

    pub fn save(&self) -> Result<()> {
        let text = toml::to_string_pretty(&self.config).expect("cluster config serialises");
        crate::pki::ca::write_file(&self.dir.join("cluster.toml"), &text, true)?;
        Ok(())
    }
}

impl Clusters {
    pub fn open() -> Result<Self> {
        let root = match std::env::var_os("MEDOS_CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::config_dir()
                .ok_or_else(|| anyhow!("cannot find your config directory; set MEDOS_CONFIG_DIR"))?
                .join("medos"),
        };
        Ok(Self { root })
    }

    pub fn at(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    fn clusters_dir(&self) -> PathBuf {
        self.root.join("clusters")
    }

    pub fn list(&self) -> Result<Vec<Entry>> {
        let dir = self.clusters_dir();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = item?.path();
            let file = path.join("cluster.toml");
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let config: ClusterConfig = toml::from_str(&text)
                .with_context(|| format!("{} is invalid; remove the cluster and set it up again", file.display()))?;
            out.push(Entry { attached: path.join("attached").exists(), dir: path, config });
        }
        out.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        Ok(out)
    }

    /// Stores a cluster (replacing one with the same id) and attaches it.
    pub fn add(&self, config: ClusterConfig, ca_pem: &[u8]) -> Result<Entry> {
        let dir = self.clusters_dir().join(&config.cluster_id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::pki::ca::write_file(&dir.join("ca.crt"), &String::from_utf8_lossy(ca_pem), false)?;
        let entry = Entry { dir, config, attached: false };
        entry.save()?;
        self.attach(&entry.config.cluster_id)?;
        Ok(Entry { attached: true, ..entry })
    }

    /// Finds a cluster by name or id (a unique id prefix is enough).
    pub fn find(&self, name_or_id: &str) -> Result<Entry> {
        let mut matches: Vec<Entry> = self
            .list()?
            .into_iter()
            .filter(|e| e.config.name == name_or_id || e.config.cluster_id.starts_with(name_or_id))
            .collect();
        match matches.len() {
            0 => bail!("no cluster named {name_or_id:?}; `medos cluster list` shows the configured clusters"),
            1 => Ok(matches.remove(0)),
            _ => bail!("{name_or_id:?} matches several clusters; use the full cluster id"),
        }
    }

    pub fn attach(&self, name_or_id: &str) -> Result<()> {
        let target = self.find(name_or_id)?;
        for entry in self.list()? {
            let marker = entry.dir.join("attached");
            if marker.exists() {
                std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
            }
        }
        std::fs::write(target.dir.join("attached"), b"")
            .with_context(|| format!("attaching {}", target.config.name))?;
        Ok(())
    }

    pub fn remove(&self, name_or_id: &str) -> Result<ClusterConfig> {
        let entry = self.find(name_or_id)?;
        std::fs::remove_dir_all(&entry.dir).with_context(|| format!("removing {}", entry.dir.display()))?;
        Ok(entry.config)
    }

    pub fn attached(&self) -> Result<Option<Entry>> {
        Ok(self.list()?.into_iter().find(|e| e.attached))
    }
}

/// The cluster and credentials a command should use: `MEDOS_URL`/`MEDOS_TOKEN` override the
/// attached cluster's.
pub struct Target {
    pub entry: Option<Entry>,
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub ca_pem: Vec<u8>,
}

impl Target {
    pub fn resolve() -> Result<Self> {
        let clusters = Clusters::open()?;
        let entry = clusters.attached()?;
        let env_url = std::env::var("MEDOS_URL").ok().filter(|s| !s.is_empty());
        let env_token = std::env::var("MEDOS_TOKEN").ok().filter(|s| !s.is_empty());
        let ca_pem = match std::env::var_os("MEDOS_CA_FILE") {
            Some(path) => std::fs::read(&path)
                .with_context(|| format!("reading MEDOS_CA_FILE {}", PathBuf::from(&path).display()))?,
            None => match &entry {
                Some(e) => e.ca_pem()?,
                None => bail!(
                    "no cluster is configured; run `medos dev` for a local cluster, or `medos cluster setup https://MASTER:PORT`"
                ),
            },
        };
        let urls = match (&env_url, &entry) {
            (Some(url), _) => vec![url.clone()],
            (None, Some(e)) => e.config.urls.clone(),
            (None, None) => bail!("MEDOS_URL is not set and no cluster is attached; run `medos cluster setup URL`"),
        };
        let token = env_token.or_else(|| entry.as_ref().and_then(|e| e.config.token.clone()));
        Ok(Self { entry, urls, token, ca_pem })
    }

    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(self.urls.clone(), &self.ca_pem, self.token.clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, id: &str) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            cluster_id: id.into(),
            urls: vec!["https://127.0.0.1:1".into()],
            ca_fingerprint: "aa".into(),
            username: None,
            token: Some("t".into()),
        }
    }

    #[test]
    fn add_attach_find_remove() {
        let dir = tempfile::tempdir().unwrap();
        let c = Clusters::at(dir.path());
        c.add(config("one", "1111"), b"ca").unwrap();
        c.add(config("two", "2222"), b"ca").unwrap();
        assert_eq!(c.attached().unwrap().unwrap().config.name, "two");
        c.attach("one").unwrap();
        assert_eq!(c.attached().unwrap().unwrap().config.name, "one");
        assert_eq!(c.find("22").unwrap().config.name, "two");
        assert!(c.find("nope").is_err());
        c.remove("one").unwrap();
        assert!(c.attached().unwrap().is_none());
        assert_eq!(c.list().unwrap().len(), 1);
    }
}
