//! `medos agent` configuration: a TOML file and/or flags (flags win).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::PortRange;
use crate::pki::TlsFiles;

/// Resource figures that replace the detected ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceOverrides {
    pub cpus: Option<f64>,
    /// MiB.
    pub mem: Option<f64>,
    /// MiB.
    pub disk: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique name; also the certificate's CN. Defaults to the hostname.
    pub name: String,
    /// Host name reported to the masters (DNS names use it later).
    pub hostname: String,
    /// IP address tasks on this agent are reached at.
    pub address: String,
    /// Master URLs; the agent finds the leader among them.
    pub masters: Vec<String>,
    /// Sandboxes, checkpoints and the runtime's state live here.
    pub work_dir: PathBuf,
    /// The agent's certificate, key and the cluster CA; in a config file `[tls]` defaults to
    /// `WORK_DIR/tls/{ca.crt,agent.crt,agent.key}`. With `join_token`, these files are
    /// created by joining when they do not exist yet.
    pub tls: TlsFiles,
    /// A join token (`medos node join-token create`): used once, when the files in `tls` do
    /// not exist, to obtain a certificate from a master. The agent's key never leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_token: Option<String>,
    /// Host ports offered to tasks, e.g. `31000-32000`.
    #[serde(default = "default_ports")]
    pub ports: Vec<String>,
    #[serde(default)]
    pub resources: ResourceOverrides,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// A public agent (Mesos role `slave_public`), for load balancers and edge services.
    #[serde(default)]
    pub public: bool,
    /// The agent's own API URL reported to masters (sandbox files, logs, exec). Empty: derived
    /// from `listen` (and `address` when `listen` is a wildcard address).
    #[serde(default)]
    pub api: String,
    /// Where the agent serves its HTTPS API (sandbox files, exec) to the masters, e.g.
    /// `0.0.0.0:5051`. None: no API; task logs and exec are then unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
}

fn default_ports() -> Vec<String> {
    vec!["31000-32000".into()]
}

#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
}

/// Parses `31000-32000` (or a single port) into a range.
pub fn parse_range(text: &str) -> Result<PortRange, String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let parse = |s: &str| s.trim().parse::<u16>().map_err(|_| format!("{text:?} is not a port range like 31000-32000"));
    let range = PortRange { begin: parse(a)?, end: parse(b)? };
    if range.begin == 0 || range.end < range.begin {
        return Err(format!("{text:?}: a range needs 1 <= begin <= end"));
    }
    Ok(range)
}

/// Where an agent that joins with a token keeps its TLS files unless `[tls]` says otherwise.
pub fn default_tls(work_dir: &Path) -> TlsFiles {
    let dir = work_dir.join("tls");
    TlsFiles { ca: dir.join("ca.crt"), cert: dir.join("agent.crt"), key: dir.join("agent.key") }
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, AgentConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| AgentConfigError::Read { path: path.to_path_buf(), source })?;
        let parse_err = |message: String| AgentConfigError::Parse { path: path.to_path_buf(), message };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
        // Without [tls] the files live in the work dir (where joining with a token puts them).
        if !table.contains_key("tls")
            && let Some(work_dir) = table.get("work_dir").and_then(|v| v.as_str())
        {
            let tls = toml::Value::try_from(default_tls(Path::new(work_dir))).expect("paths serialise");
            table.insert("tls".into(), tls);
        }
        let config: AgentConfig = table.try_into().map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), AgentConfigError> {
        if self.name.is_empty() {
            return Err(AgentConfigError::Invalid { field: "name", message: "must not be empty".into() });
        }
        if self.masters.is_empty() || self.masters.iter().any(|m| !m.starts_with("https://")) {
            return Err(AgentConfigError::Invalid {
                field: "masters",
                message: "list at least one master as https://HOST:PORT".into(),
            });
        }
        self.port_ranges().map_err(|message| AgentConfigError::Invalid { field: "ports", message })?;
        if let Some(token) = &self.join_token {
            crate::pki::join::JoinToken::parse(token)
                .map_err(|e| AgentConfigError::Invalid { field: "join_token", message: e.to_string() })?;
            // The name becomes the CN of the certificate the masters sign.
            crate::pki::join::validate_node_name(&self.name)
                .map_err(|message| AgentConfigError::Invalid { field: "name", message })?;
        }
        if !self.api.is_empty() && !self.api.starts_with("https://") {
            return Err(AgentConfigError::Invalid {
                field: "api",
                message: format!(
                    "{:?} must be an https:// URL (or leave it empty to derive it from `listen`)",
                    self.api
                ),
            });
        }
        for (field, value) in [
            ("resources.cpus", self.resources.cpus),
            ("resources.mem", self.resources.mem),
            ("resources.disk", self.resources.disk),
        ] {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(AgentConfigError::Invalid {
                    field: "resources",
                    message: format!("{field} = {v} must be a non-negative number"),
                });
            }
        }
        Ok(())
    }

    /// The API URL to advertise for an API bound to `bound`: `api` if set, else `https://`
    /// the bound address (with `address` in place of a wildcard IP).
    pub fn advertised_api(&self, bound: std::net::SocketAddr) -> String {
        if !self.api.is_empty() {
            return self.api.clone();
        }
        let host = if bound.ip().is_unspecified() { self.address.clone() } else { bound.ip().to_string() };
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
        format!("https://{host}:{}", bound.port())
    }

    pub fn port_ranges(&self) -> Result<Vec<PortRange>, String> {
        self.ports.iter().map(|r| parse_range(r)).collect()
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("agent config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_or_name_the_problem() {
        assert_eq!(parse_range("31000-32000"), Ok(PortRange { begin: 31000, end: 32000 }));
        assert_eq!(parse_range("8080"), Ok(PortRange { begin: 8080, end: 8080 }));
        assert!(parse_range("9-1").unwrap_err().contains("begin <= end"));
        assert!(parse_range("x-2").unwrap_err().contains("not a port range"));
        assert!(parse_range("0-5").is_err());
    }

    #[test]
    fn the_advertised_api_follows_listen_and_address() {
        let config: AgentConfig = toml::from_str(
            r#"
            name = "a"
            hostname = "a"
            address = "10.0.0.7"
            masters = ["https://m:1"]
            work_dir = "/tmp/a"
            listen = "0.0.0.0:5051"
            [tls]
            ca = "ca"
            cert = "c"
            key = "k"
            "#,
        )
        .unwrap();
        assert_eq!(config.listen, Some("0.0.0.0:5051".parse().unwrap()));
        assert_eq!(config.advertised_api("0.0.0.0:5051".parse().unwrap()), "https://10.0.0.7:5051");
        assert_eq!(config.advertised_api("127.0.0.1:40000".parse().unwrap()), "https://127.0.0.1:40000");
        assert_eq!(config.advertised_api("[::1]:5051".parse().unwrap()), "https://[::1]:5051");
        let explicit = AgentConfig { api: "https://agent.example:5051".into(), ..config.clone() };
        assert_eq!(explicit.advertised_api("0.0.0.0:1".parse().unwrap()), "https://agent.example:5051");
        let bad = AgentConfig { api: "http://x".into(), ..config };
        assert!(bad.validate().unwrap_err().to_string().contains("api"));
    }

    #[test]
    fn an_agent_with_a_join_token_may_leave_out_tls() {
        let dir = tempfile::tempdir().unwrap();
        let token = crate::pki::join::JoinToken::create(
            "c2VjcmV0",
            &"ab".repeat(32),
            crate::pki::join::JoinKind::Agent,
            9,
            [0; 8],
        );
        let base = "name = \"a\"\nhostname = \"a\"\naddress = \"10.0.0.7\"\nmasters = [\"https://m:1\"]\nwork_dir = \"/var/lib/a\"\n";
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, format!("{base}join_token = \"{token}\"\n")).unwrap();
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(config.tls, default_tls(Path::new("/var/lib/a")));
        assert_eq!(config.tls.key, PathBuf::from("/var/lib/a/tls/agent.key"));
        // A malformed token is refused at load time, naming the setting.
        std::fs::write(&path, format!("{base}join_token = \"K10abc::server:pw\"\n")).unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("join_token") && err.contains("MJ1"), "{err}");
        // Config files written back keep the token.
        std::fs::write(&path, format!("{base}join_token = \"{token}\"\n")).unwrap();
        let round = AgentConfig::load(&path).unwrap().to_toml();
        assert!(round.contains("join_token"), "{round}");
    }
}
