//! `medos master` configuration: a TOML file and/or flags (flags win).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pki::TlsFiles;

/// A master of the initial cluster: `name=https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialMaster {
    pub name: String,
    pub api: String,
}

impl std::str::FromStr for InitialMaster {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, api) =
            s.split_once('=').ok_or_else(|| format!("initial master {s:?} must look like NAME=https://HOST:PORT"))?;
        validate_name(name)?;
        validate_url(api)?;
        Ok(Self { name: name.to_string(), api: api.trim_end_matches('/').to_string() })
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("master name {name:?} must be 1-63 characters of a-z, 0-9 and '-'"));
    }
    Ok(())
}

fn validate_url(url: &str) -> Result<(), String> {
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        return Err(format!("{url:?} must be an https:// URL such as https://10.0.0.1:7443"));
    }
    Ok(())
}

/// Bootstrap settings used only when this master initialises a new cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    /// uid of the first administrator.
    pub admin_user: Option<String>,
    /// File holding the first administrator's password (one line).
    pub admin_password_file: Option<PathBuf>,
    /// File holding the cluster's token-signing secret (base64, one line), as chosen by the
    /// installer so that it can create join tokens before the cluster exists. Without it the
    /// first leader draws a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_file: Option<PathBuf>,
}

/// Raft timing and log retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// Log entries kept behind the latest snapshot (for followers that lag a little).
    pub keep_after_snapshot: u64,
    /// How long a client write or linearizable read may wait for a leader and a quorum.
    pub request_timeout_ms: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        // A follower campaigns after the leader lease (election_max_ms) plus its own election
        // timeout, so failover takes 1.5-2 s, or about 3 s after a split vote; heartbeats
        // stay far above the cost of one fsync on a busy 2-core host.
        Self {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            snapshot_every: 10_000,
            keep_after_snapshot: 1_000,
            request_timeout_ms: 10_000,
        }
    }
}

/// How the leader watches agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentTimeouts {
    /// How often agents heartbeat (told to them at registration).
    pub heartbeat_interval_ms: u64,
    /// An agent silent this long is marked UNREACHABLE and its tasks TASK_UNREACHABLE.
    pub unreachable_after_ms: u64,
}

impl Default for AgentTimeouts {
    fn default() -> Self {
        Self { heartbeat_interval_ms: 2_000, unreachable_after_ms: 20_000 }
    }
}

/// The cluster DNS server every master runs (`[dns]`).
///
/// On by default on `0.0.0.0:53` (UDP and TCP), as Mesos-DNS on DC/OS masters; binding port 53
/// needs root or `CAP_NET_BIND_SERVICE`. `enabled = false` turns it off (the in-process test
/// harness does; `medos dev` uses an unprivileged loopback port instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub enabled: bool,
    /// UDP and TCP address; port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    /// The cluster domain (`leader.mesos`, `app-grp.marathon.mesos`, …).
    pub domain: String,
    /// Upstream servers for every other name, `IP` or `IP:port` (53 by default); tried in
    /// order. Empty: names outside the cluster domain get REFUSED.
    pub resolvers: Vec<String>,
    /// Zones sent to chosen servers instead of `resolvers`: `"corp.example" = ["10.0.0.2"]`.
    pub forward_zones: BTreeMap<String, Vec<String>>,
    /// How long one upstream may take before the next is tried.
    pub timeout_ms: u64,
    /// Where named VIPs (`name.marathon.l4lb.thisdcos.directory`) get their addresses: a
    /// network inside 127.0.0.0/8, served by every agent on its loopback. The leader's setting
    /// is the cluster's.
    pub vip_range: String,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53),
            domain: crate::core::dns::DEFAULT_DOMAIN.into(),
            resolvers: Vec::new(),
            forward_zones: BTreeMap::new(),
            timeout_ms: 2_000,
            vip_range: crate::core::vips::DEFAULT_RANGE.into(),
        }
    }
}

impl DnsConfig {
    /// No DNS server (tests that do not need one).
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::default() }
    }

    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, message: String| ConfigError::Invalid { field, message };
        crate::core::dns::validate_domain(&self.domain).map_err(|m| invalid("dns.domain", m))?;
        crate::core::vips::Range::parse(&self.vip_range).map_err(|m| invalid("dns.vip_range", m))?;
        for r in &self.resolvers {
            parse_upstream(r).map_err(|m| invalid("dns.resolvers", m))?;
        }
        for (zone, servers) in &self.forward_zones {
            crate::core::dns::validate_domain(zone).map_err(|m| invalid("dns.forward_zones", m))?;
            if crate::core::dns::normalize(zone) == crate::core::dns::normalize(&self.domain)
                || crate::core::dns::normalize(zone)
                    .ends_with(&format!(".{}", crate::core::dns::normalize(&self.domain)))
            {
                return Err(invalid(
                    "dns.forward_zones",
                    format!("zone {zone:?} is inside the cluster domain {:?}, which the masters answer", self.domain),
                ));
            }
            if servers.is_empty() {
                return Err(invalid("dns.forward_zones", format!("zone {zone:?} lists no servers")));
            }
            for r in servers {
                parse_upstream(r).map_err(|m| invalid("dns.forward_zones", format!("zone {zone:?}: {m}")))?;
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(invalid("dns.timeout_ms", "must be 1 to 60000".into()));
        }
        Ok(())
    }
}

/// An upstream DNS server: `IP`, `IP:port`, `[IPv6]:port` (port 53 by default).
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not an IP address with an optional port, such as 10.0.0.2 or 10.0.0.2:5353"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterConfig {
    /// This master's name, unique in the cluster (a-z, 0-9, '-').
    pub name: String,
    pub data_dir: PathBuf,
    /// Address the HTTPS listener binds, e.g. `0.0.0.0:7443`.
    pub listen: SocketAddr,
    /// URL other masters and clients use to reach this master.
    pub advertise: String,
    /// Masters of the initial cluster (including this one); empty when joining an existing
    /// cluster through `medos master add`.
    #[serde(default)]
    pub initial_masters: Vec<InitialMaster>,
    pub tls: TlsFiles,
    /// The cluster CA's private key (PEM). With it this master signs certificates for agents
    /// that join with a token (`POST /v1/join`); without it, it refuses joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<PathBuf>,
    #[serde(default)]
    pub bootstrap: BootstrapConfig,
    #[serde(default)]
    pub raft: RaftTuning,
    #[serde(default)]
    pub agents: AgentTimeouts,
    #[serde(default)]
    pub dns: DnsConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("missing setting `{0}`: set it in the config file or pass --{1}")]
    Missing(&'static str, &'static str),
    #[error("invalid setting `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
}

/// Settings given as flags; each overrides the file.
#[derive(Debug, Clone, Default)]
pub struct MasterOverrides {
    pub name: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub advertise: Option<String>,
    pub initial_masters: Vec<InitialMaster>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub admin_user: Option<String>,
    pub admin_password_file: Option<PathBuf>,
    pub dns_listen: Option<SocketAddr>,
    pub dns_domain: Option<String>,
    pub dns_resolvers: Vec<String>,
    pub dns_disabled: bool,
}

/// The file's shape before flags are merged: everything optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialConfig {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    advertise: Option<String>,
    #[serde(default)]
    initial_masters: Vec<String>,
    tls: Option<PartialTls>,
    ca_key: Option<PathBuf>,
    #[serde(default)]
    bootstrap: BootstrapConfig,
    #[serde(default)]
    raft: RaftTuning,
    #[serde(default)]
    agents: AgentTimeouts,
    #[serde(default)]
    dns: DnsConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialTls {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl MasterConfig {
    /// Reads `file` (if any), applies `flags`, and validates the result.
    pub fn load(file: Option<&Path>, flags: MasterOverrides) -> Result<Self, ConfigError> {
        let partial = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                toml::from_str::<PartialConfig>(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?
            }
            None => PartialConfig::default(),
        };
        let tls = partial.tls.unwrap_or_default();
        let name = flags.name.or(partial.name).ok_or(ConfigError::Missing("name", "name"))?;
        validate_name(&name).map_err(|message| ConfigError::Invalid { field: "name", message })?;
        let listen = flags.listen.or(partial.listen).ok_or(ConfigError::Missing("listen", "listen"))?;
        let advertise = flags
            .advertise
            .or(partial.advertise)
            .unwrap_or_else(|| format!("https://{listen}"))
            .trim_end_matches('/')
            .to_string();
        validate_url(&advertise).map_err(|message| ConfigError::Invalid { field: "advertise", message })?;
        let initial_masters = if flags.initial_masters.is_empty() {
            partial
                .initial_masters
                .iter()
                .map(|s| s.parse())
                .collect::<Result<Vec<InitialMaster>, _>>()
                .map_err(|message| ConfigError::Invalid { field: "initial_masters", message })?
        } else {
            flags.initial_masters
        };
        if !initial_masters.is_empty() && !initial_masters.iter().any(|m| m.name == name) {
            return Err(ConfigError::Invalid {
                field: "initial_masters",
                message: format!("this master ({name}) is not in the list; add {name}=<its URL>"),
            });
        }
        let mut bootstrap = partial.bootstrap;
        if flags.admin_user.is_some() {
            bootstrap.admin_user = flags.admin_user;
        }
        if flags.admin_password_file.is_some() {
            bootstrap.admin_password_file = flags.admin_password_file;
        }
        if bootstrap.admin_user.is_some() != bootstrap.admin_password_file.is_some() {
            return Err(ConfigError::Invalid {
                field: "bootstrap",
                message: "admin_user and admin_password_file go together; set both or neither".into(),
            });
        }
        let ca_key = flags.ca_key.or(partial.ca_key);
        if let Some(path) = &ca_key
            && path.as_os_str().is_empty()
        {
            return Err(ConfigError::Invalid {
                field: "ca_key",
                message: "is empty; set it to the cluster CA's key file (ca.key) or leave it out".into(),
            });
        }
        let raft = partial.raft.clone();
        if partial.agents.unreachable_after_ms < 2 * partial.agents.heartbeat_interval_ms {
            return Err(ConfigError::Invalid {
                field: "agents",
                message: "unreachable_after_ms must be at least twice heartbeat_interval_ms".into(),
            });
        }
        if raft.election_min_ms <= raft.heartbeat_ms || raft.election_max_ms <= raft.election_min_ms {
            return Err(ConfigError::Invalid {
                field: "raft",
                message: "need heartbeat_ms < election_min_ms < election_max_ms".into(),
            });
        }
        let mut dns = partial.dns;
        if let Some(listen) = flags.dns_listen {
            dns.listen = listen;
        }
        if let Some(domain) = flags.dns_domain {
            dns.domain = domain;
        }
        if !flags.dns_resolvers.is_empty() {
            dns.resolvers = flags.dns_resolvers;
        }
        if flags.dns_disabled {
            dns.enabled = false;
        }
        dns.domain = dns.domain.trim_end_matches('.').to_ascii_lowercase();
        dns.validate()?;
        Ok(Self {
            name,
            data_dir: flags.data_dir.or(partial.data_dir).ok_or(ConfigError::Missing("data_dir", "data-dir"))?,
            listen,
            advertise,
            initial_masters,
            tls: TlsFiles {
                ca: flags.tls_ca.or(tls.ca).ok_or(ConfigError::Missing("tls.ca", "tls-ca"))?,
                cert: flags.tls_cert.or(tls.cert).ok_or(ConfigError::Missing("tls.cert", "tls-cert"))?,
                key: flags.tls_key.or(tls.key).ok_or(ConfigError::Missing("tls.key", "tls-key"))?,
            },
            ca_key,
            bootstrap,
            raft,
            agents: partial.agents,
            dns,
        })
    }

    /// Renders the config as TOML (what `medos dev` writes for each master).
    pub fn to_toml(&self) -> String {
        let mut value = toml::Value::try_from(self).expect("config serialises");
        if let Some(table) = value.as_table_mut() {
            let list: Vec<toml::Value> =
                self.initial_masters.iter().map(|m| toml::Value::String(format!("{}={}", m.name, m.api))).collect();
            table.insert("initial_masters".into(), toml::Value::Array(list));
        }
        toml::to_string_pretty(&value).expect("config renders")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    const GOOD: &str = r#"
name = "m1"
data_dir = "/tmp/m1"
listen = "127.0.0.1:7001"
initial_masters = ["m1=https://127.0.0.1:7001", "m2=https://127.0.0.1:7002"]
ca_key = "ca.key"
[tls]
ca = "ca.crt"
cert = "m1.crt"
key = "m1.key"
"#;

    #[test]
    fn file_and_flags_merge_with_flags_winning() {
        let f = write(GOOD);
        let flags = MasterOverrides { listen: Some("127.0.0.1:9000".parse().unwrap()), ..Default::default() };
        let c = MasterConfig::load(Some(f.path()), flags).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.advertise, "https://127.0.0.1:9000");
        assert_eq!(c.initial_masters.len(), 2);
        assert_eq!(c.ca_key, Some(PathBuf::from("ca.key")));
        let round_trip = write(&c.to_toml());
        assert_eq!(MasterConfig::load(Some(round_trip.path()), MasterOverrides::default()).unwrap(), c);
    }

    #[test]
    fn dns_defaults_file_and_flags() {
        let f = write(GOOD);
        let c = MasterConfig::load(Some(f.path()), MasterOverrides::default()).unwrap();
        assert_eq!(c.dns, DnsConfig::default());
        assert!(c.dns.enabled);
        assert_eq!(c.dns.listen.to_string(), "0.0.0.0:53");
        assert_eq!(c.dns.domain, "mesos");

        let text = format!(
            "{GOOD}\n[dns]\nlisten = \"127.0.0.1:5353\"\ndomain = \"Cluster.Local.\"\nresolvers = [\"10.0.0.2\", \"[::1]:5300\"]\n\
             [dns.forward_zones]\n\"corp.example\" = [\"10.1.0.2:5353\"]\n"
        );
        let f = write(&text);
        let c = MasterConfig::load(Some(f.path()), MasterOverrides::default()).unwrap();
        assert_eq!(c.dns.listen.to_string(), "127.0.0.1:5353");
        assert_eq!(c.dns.domain, "cluster.local");
        assert_eq!(c.dns.resolvers, vec!["10.0.0.2", "[::1]:5300"]);
        assert_eq!(c.dns.forward_zones["corp.example"], vec!["10.1.0.2:5353"]);
        let round_trip = write(&c.to_toml());
        assert_eq!(MasterConfig::load(Some(round_trip.path()), MasterOverrides::default()).unwrap(), c);

        let flags = MasterOverrides {
            dns_listen: Some("127.0.0.1:1053".parse().unwrap()),
            dns_resolvers: vec!["1.1.1.1".into()],
            dns_disabled: true,
            ..Default::default()
        };
        let c = MasterConfig::load(Some(f.path()), flags).unwrap();
        assert_eq!(c.dns.listen.port(), 1053);
        assert_eq!(c.dns.resolvers, vec!["1.1.1.1"]);
        assert!(!c.dns.enabled);
        assert_eq!(parse_upstream("10.0.0.2").unwrap().to_string(), "10.0.0.2:53");
        assert_eq!(parse_upstream("::1").unwrap().to_string(), "[::1]:53");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (GOOD.replace("name = \"m1\"", "name = \"M 1\""), "name"),
            (GOOD.replace("listen = \"127.0.0.1:7001\"", "listen = \"nowhere\""), "listen"),
            (format!("{GOOD}\nbogus = 1\n"), "bogus"),
            (GOOD.replace("m1=https", "m1=http"), "initial_masters"),
            (GOOD.replace("data_dir = \"/tmp/m1\"", ""), "data_dir"),
            (GOOD.replace("\"m1=https://127.0.0.1:7001\", ", ""), "not in the list"),
            (GOOD.replace("ca_key = \"ca.key\"", "ca_key = \"\""), "ca_key"),
            (GOOD.replace("ca_key = \"ca.key\"", "ca_key = 5"), "ca_key"),
            (format!("{GOOD}\n[dns]\ndomain = \"bad_domain\"\n"), "dns.domain"),
            (format!("{GOOD}\n[dns]\nresolvers = [\"8.8.8.8:x\"]\n"), "dns.resolvers"),
            (format!("{GOOD}\n[dns]\nforward_zones = {{ corp = [] }}\n"), "dns.forward_zones"),
            (format!("{GOOD}\n[dns]\nforward_zones = {{ corp = [\"host\"] }}\n"), "dns.forward_zones"),
            (format!("{GOOD}\n[dns]\nlisten = \"53\"\n"), "listen"),
            (format!("{GOOD}\n[dns]\nport = 53\n"), "port"),
            (format!("{GOOD}\n[dns]\ntimeout_ms = 0\n"), "dns.timeout_ms"),
            (
                format!("{GOOD}\n[dns]\nforward_zones = {{ \"x.mesos\" = [\"10.0.0.1\"] }}\n"),
                "inside the cluster domain",
            ),
        ];
        for (text, needle) in cases {
            let f = write(&text);
            let err = MasterConfig::load(Some(f.path()), MasterOverrides::default()).unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }
}
