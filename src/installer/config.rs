//! `genconf/config.yaml`: the installer's one description of a cluster.
//!
//! DC/OS's keys where they fit (`cluster_name`, `master_list`, `agent_list`,
//! `public_agent_list`, `ssh_user`, `ssh_port`, `ssh_key_path`, `resolvers`,
//! `dns_forward_zones`), plus medos's own (`ports`, `data_dirs`, `dns_domain`, `admin_user`,
//! `join_token_ttl`, `preload_images`, `preload_packages`). Parsing and validation are pure: text in, a validated
//! [`ClusterConfig`] (or every problem, each naming its key) and warnings out, so they are
//! table-tested without files. Unknown keys are warnings with a did-you-mean.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The hosts and SSH settings the remote commands (preflight, deploy, …) work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    pub masters: Vec<String>,
    pub agents: Vec<String>,
    pub public_agents: Vec<String>,
    pub ssh: SshSettings,
}

/// How to reach the hosts with the system's ssh client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    /// `-i` for ssh; `None`: the user's ssh config and agent decide.
    pub key_path: Option<PathBuf>,
}

/// A node's role, as `install.sh` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRole {
    Master,
    Agent,
    PublicAgent,
}

impl NodeRole {
    /// The argument of `install.sh` (DC/OS's `dcos_install.sh` roles).
    pub fn install_arg(self) -> &'static str {
        match self {
            NodeRole::Master => "master",
            NodeRole::Agent => "agent",
            NodeRole::PublicAgent => "agent_public",
        }
    }

    /// The systemd unit that runs this role.
    pub fn unit(self) -> &'static str {
        match self {
            NodeRole::Master => "medos-master.service",
            NodeRole::Agent => "medos-agent.service",
            NodeRole::PublicAgent => "medos-agent-public.service",
        }
    }

    fn name_prefix(self) -> &'static str {
        match self {
            NodeRole::Master => "master",
            NodeRole::Agent => "agent",
            NodeRole::PublicAgent => "public",
        }
    }
}

/// One host of the cluster as genconf plans it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub role: NodeRole,
    pub ip: IpAddr,
    /// Derived from the role and the address (`master-10-0-0-1`), so it stays the same when
    /// lists are reordered; the certificate's CN and the master's Raft name.
    pub name: String,
}

/// Host ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// The masters' HTTPS API and Raft traffic.
    pub api: u16,
    /// The masters' cluster DNS (UDP and TCP).
    pub dns: u16,
    /// The agents' HTTPS API (sandbox files, exec) for the masters.
    pub agent: u16,
    /// Host port ranges agents offer to tasks.
    pub tasks: Vec<String>,
}

/// Where nodes keep their state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirs {
    pub master: PathBuf,
    pub agent: PathBuf,
}

/// A validated `config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub cluster_name: String,
    pub masters: Vec<IpAddr>,
    pub agents: Vec<IpAddr>,
    pub public_agents: Vec<IpAddr>,
    pub ssh: SshSettings,
    /// Upstream DNS servers of the masters (`IP` or `IP:PORT`).
    pub resolvers: Vec<String>,
    pub forward_zones: BTreeMap<String, Vec<String>>,
    pub dns_domain: String,
    pub ports: Ports,
    pub data_dirs: DataDirs,
    /// The first administrator (its password is generated).
    pub admin_user: String,
    /// Lifetime of the join tokens genconf writes for agents that are not listed.
    pub join_token_ttl_secs: u64,
    /// Image archives (relative to the genconf dir unless absolute) shipped in `serve/preload/`.
    pub preload_images: Vec<PathBuf>,
    /// Package bundles (`medos package bundle`; relative to the genconf dir unless absolute),
    /// shipped in `serve/preload/` and added to the cluster by deploy.
    pub preload_packages: Vec<PathBuf>,
}

impl ClusterConfig {
    /// The hosts and SSH settings for the remote commands.
    pub fn hosts(&self) -> Hosts {
        let strings = |ips: &[IpAddr]| ips.iter().map(IpAddr::to_string).collect();
        Hosts {
            masters: strings(&self.masters),
            agents: strings(&self.agents),
            public_agents: strings(&self.public_agents),
            ssh: self.ssh.clone(),
        }
    }

    /// Every node: masters, agents, public agents, in list order.
    pub fn nodes(&self) -> Vec<Node> {
        let lists = [
            (NodeRole::Master, &self.masters),
            (NodeRole::Agent, &self.agents),
            (NodeRole::PublicAgent, &self.public_agents),
        ];
        lists
            .into_iter()
            .flat_map(|(role, ips)| ips.iter().map(move |ip| Node { role, ip: *ip, name: node_name(role, *ip) }))
            .collect()
    }

    /// The masters' API URLs, in list order.
    pub fn master_urls(&self) -> Vec<String> {
        self.masters.iter().map(|ip| url(*ip, self.ports.api)).collect()
    }
}

/// `https://IP:PORT` (IPv6 in brackets).
pub fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
    }
}

/// `master-10-0-0-1`, `agent-fd00--5`: a valid node name (a-z, 0-9, '-') for any address.
pub fn node_name(role: NodeRole, ip: IpAddr) -> String {
    let addr: String = ip.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("{}-{}", role.name_prefix(), addr.to_ascii_lowercase())
}

/// What parsing produced: the config and what the user should look at.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: ClusterConfig,
    pub warnings: Vec<String>,
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, as written in the file (`master_list[1]`, `ports.api`).
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or a value of the wrong type (serde's message names the key).
    #[error("{}", yaml_message(*line, *column, message))]
    Yaml { line: usize, column: usize, message: String },
    /// Every invalid setting, and the warnings (an unknown key often explains a missing one).
    #[error("{}", invalid_message(problems, warnings))]
    Invalid { problems: Vec<Problem>, warnings: Vec<String> },
}

fn yaml_message(line: usize, column: usize, message: &str) -> String {
    if line == 0 || message.contains(&format!("line {line} column {column}")) {
        message.to_string()
    } else {
        format!("line {line}, column {column}: {message}")
    }
}

fn invalid_message(problems: &[Problem], warnings: &[String]) -> String {
    let lines = problems.iter().map(|p| p.to_string()).chain(warnings.iter().map(|w| format!("warning: {w}")));
    lines.collect::<Vec<_>>().join("\n")
}

/// `dns_search` is a space-separated string in DC/OS; a list is accepted too.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    String(String),
    List(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    cluster_name: Option<String>,
    master_list: Option<Vec<String>>,
    agent_list: Vec<String>,
    public_agent_list: Vec<String>,
    ssh_user: Option<String>,
    ssh_port: Option<i64>,
    ssh_key_path: Option<String>,
    resolvers: Vec<String>,
    dns_search: Option<StringOrList>,
    dns_forward_zones: BTreeMap<String, Vec<String>>,
    dns_domain: Option<String>,
    ports: RawPorts,
    data_dirs: RawDirs,
    admin_user: Option<String>,
    join_token_ttl: Option<String>,
    preload_images: Vec<String>,
    preload_packages: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPorts {
    api: Option<i64>,
    dns: Option<i64>,
    agent: Option<i64>,
    tasks: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDirs {
    master: Option<String>,
    agent: Option<String>,
}

const TOP_KEYS: &[&str] = &[
    "cluster_name",
    "master_list",
    "agent_list",
    "public_agent_list",
    "ssh_user",
    "ssh_port",
    "ssh_key_path",
    "resolvers",
    "dns_search",
    "dns_forward_zones",
    "dns_domain",
    "ports",
    "data_dirs",
    "admin_user",
    "join_token_ttl",
    "preload_images",
    "preload_packages",
];
const PORT_KEYS: &[&str] = &["api", "dns", "agent", "tasks"];
const DIR_KEYS: &[&str] = &["master", "agent"];

/// DC/OS keys medos reads but does not need, and why.
const DCOS_ONLY: &[(&str, &str)] = &[
    (
        "bootstrap_url",
        "medos has no bootstrap web server: deploy copies genconf/serve to the hosts over SSH, or copy it yourself \
         and run install.sh",
    ),
    ("exhibitor_storage_backend", "medos masters agree through Raft among master_list; there is no ZooKeeper"),
    ("exhibitor_zk_hosts", "medos masters agree through Raft among master_list; there is no ZooKeeper"),
    ("exhibitor_zk_path", "medos masters agree through Raft among master_list; there is no ZooKeeper"),
    ("master_discovery", "masters are always the static master_list (medos master add/remove change it later)"),
    ("ip_detect_filename", "medos always uses genconf/ip-detect"),
    ("platform", "medos installs on any Linux host with systemd"),
    ("process_timeout", "deploy waits for each unit to report ready instead"),
    ("oauth_enabled", "medos authenticates with its own users (medos auth user add)"),
    ("telemetry_enabled", "medos sends no telemetry"),
];

/// The DC/OS default of `dns_search`'s use is the hosts' resolv.conf, which medos leaves alone.
const DNS_SEARCH_NOTE: &str = "`dns_search` is not used: medos does not change the hosts' /etc/resolv.conf; tasks get \
                               the search domains marathon.<dns_domain> and <dns_domain>, then the host's own";

pub const DEFAULT_API_PORT: u16 = 7443;
pub const DEFAULT_DNS_PORT: u16 = 53;
pub const DEFAULT_AGENT_PORT: u16 = 5051;
pub const DEFAULT_TASK_PORTS: &str = "31000-32000";
pub const DEFAULT_MASTER_DIR: &str = "/var/lib/medos/master";
pub const DEFAULT_AGENT_DIR: &str = "/var/lib/medos/agent";
pub const DEFAULT_JOIN_TOKEN_TTL: &str = "7d";

/// The closest of `known` to `key`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn unknown_key_warning(path: &str) -> String {
    let (section, leaf) = match path.rsplit_once('.') {
        Some((section, leaf)) => (Some(section), leaf),
        None => (None, path),
    };
    let known = match section {
        None => TOP_KEYS,
        Some("ports") => PORT_KEYS,
        Some("data_dirs") => DIR_KEYS,
        Some(_) => &[][..],
    };
    if section.is_none()
        && let Some((_, why)) = DCOS_ONLY.iter().find(|(k, _)| *k == leaf)
    {
        return format!("`{path}` (a DC/OS setting) is ignored: {why}");
    }
    match did_you_mean(leaf, known) {
        Some(suggestion) => {
            let full = section.map(|s| format!("{s}.{suggestion}")).unwrap_or_else(|| suggestion.to_string());
            format!("unknown key `{path}` is ignored; did you mean `{full}`?")
        }
        None => format!("unknown key `{path}` is ignored; known keys here: {}", known.join(", ")),
    }
}

/// Parses and validates `config.yaml`'s text.
pub fn parse(text: &str) -> Result<Parsed, ConfigError> {
    let mut unknown = Vec::new();
    let raw: RawConfig = match serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(text), |path| {
        unknown.push(path.to_string())
    }) {
        Ok(raw) => raw,
        Err(e) => {
            // An empty file (or only comments) is an empty config: validation names what is missing.
            if matches!(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text), Ok(serde_yaml_ng::Value::Null)) {
                RawConfig::default()
            } else {
                let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
                return Err(ConfigError::Yaml { line, column, message: e.to_string() });
            }
        }
    };
    let mut warnings: Vec<String> = unknown.iter().map(|p| unknown_key_warning(p)).collect();
    match validate(raw, &mut warnings) {
        Ok(config) => Ok(Parsed { config, warnings }),
        Err(problems) => Err(ConfigError::Invalid { problems, warnings }),
    }
}

fn port(key: &str, value: Option<i64>, default: u16, problems: &mut Vec<Problem>) -> u16 {
    match value {
        None => default,
        Some(v) => match u16::try_from(v) {
            Ok(p) if p != 0 => p,
            _ => {
                problems.push(Problem { key: key.into(), message: format!("{v} is not a port; expected 1 to 65535") });
                default
            }
        },
    }
}

fn absolute_dir(key: &str, value: Option<String>, default: &str, problems: &mut Vec<Problem>) -> PathBuf {
    let path = PathBuf::from(value.unwrap_or_else(|| default.to_string()));
    if !path.is_absolute() || path == std::path::Path::new("/") {
        problems.push(Problem {
            key: key.into(),
            message: format!("{:?} must be an absolute directory other than /, such as {default}", path.display()),
        });
    }
    path
}

/// A word passed to ssh: not empty, no white space, not an option.
fn ssh_word(key: &str, value: &str, problems: &mut Vec<Problem>) {
    if value.is_empty() || value.starts_with('-') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push(Problem {
            key: key.into(),
            message: format!("{value:?} must be non-empty, without spaces, and must not start with '-'"),
        });
    }
}

fn validate(raw: RawConfig, warnings: &mut Vec<String>) -> Result<ClusterConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    let problem = |problems: &mut Vec<Problem>, key: String, message: String| problems.push(Problem { key, message });

    let cluster_name = match raw.cluster_name {
        None => {
            problem(
                &mut problems,
                "cluster_name".into(),
                "is missing; name the cluster, e.g. `cluster_name: prod`".into(),
            );
            String::new()
        }
        Some(name) => {
            let name = name.trim().to_string();
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                problem(&mut problems, "cluster_name".into(), "must be 1 to 64 printable characters".into());
            }
            name
        }
    };

    // Host lists: IP addresses, each host in one list once.
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    let mut host_list = |key: &str, list: &[String], problems: &mut Vec<Problem>| -> Vec<IpAddr> {
        let mut ips = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let item = format!("{key}[{i}]");
            let ip = match entry.trim().parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    problem(
                        problems,
                        item,
                        format!(
                            "{entry:?} is not an IP address; list hosts by address, e.g. 10.0.0.1 (ip-detect must print it on that host)"
                        ),
                    );
                    continue;
                }
            };
            if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
                problem(problems, item, format!("{ip} cannot be a host's address"));
                continue;
            }
            if ip.is_loopback() {
                warnings.push(format!(
                    "`{item}`: {ip} is a loopback address; other hosts cannot reach it (fine only for a one-host cluster)"
                ));
            }
            if let Some(first) = seen.get(&ip) {
                problem(
                    problems,
                    item,
                    format!("{ip} is already listed as {first}; each host has one role and is listed once"),
                );
                continue;
            }
            seen.insert(ip, item);
            ips.push(ip);
        }
        ips
    };
    let masters = match &raw.master_list {
        None => {
            problem(
                &mut problems,
                "master_list".into(),
                "is missing; list the masters' IP addresses (1, 3 or 5 of them)".into(),
            );
            Vec::new()
        }
        Some(list) if list.is_empty() => {
            problem(
                &mut problems,
                "master_list".into(),
                "is empty; list the masters' IP addresses (1, 3 or 5 of them)".into(),
            );
            Vec::new()
        }
        Some(list) => host_list("master_list", list, &mut problems),
    };
    let agents = host_list("agent_list", &raw.agent_list, &mut problems);
    let public_agents = host_list("public_agent_list", &raw.public_agent_list, &mut problems);
    if !masters.is_empty() && masters.len() % 2 == 0 {
        warnings.push(format!(
            "`master_list` has {} masters: an even number tolerates no more failures than {} (a majority of {} must be up)",
            masters.len(),
            masters.len() - 1,
            masters.len() / 2 + 1
        ));
    }
    if masters.len() > 9 {
        warnings.push(format!(
            "`master_list` has {} masters: every write waits for a majority, so more than 5 mostly adds latency",
            masters.len()
        ));
    }
    if agents.is_empty() && public_agents.is_empty() && raw.master_list.is_some() {
        warnings.push(
            "`agent_list` and `public_agent_list` are empty: the cluster cannot run tasks until agents join".into(),
        );
    }

    // SSH.
    let ssh_user = raw.ssh_user.unwrap_or_else(|| "root".into());
    ssh_word("ssh_user", &ssh_user, &mut problems);
    let ssh_port = port("ssh_port", raw.ssh_port, 22, &mut problems);
    let ssh_key_path = raw.ssh_key_path.map(|p| {
        ssh_word("ssh_key_path", &p, &mut problems);
        PathBuf::from(p)
    });

    // DNS.
    let dns_domain = raw.dns_domain.unwrap_or_else(|| crate::core::dns::DEFAULT_DOMAIN.into());
    let dns_domain = dns_domain.trim_end_matches('.').to_ascii_lowercase();
    let dns = crate::master::config::DnsConfig {
        domain: dns_domain.clone(),
        resolvers: raw.resolvers.clone(),
        forward_zones: raw.dns_forward_zones.clone(),
        ..Default::default()
    };
    if let Err(crate::master::config::ConfigError::Invalid { field, message }) = dns.validate() {
        let key = match field {
            "dns.domain" => "dns_domain",
            "dns.resolvers" => "resolvers",
            "dns.forward_zones" => "dns_forward_zones",
            other => other,
        };
        problem(&mut problems, key.into(), message);
    }
    if raw.resolvers.is_empty() {
        warnings.push(
            "`resolvers` is empty: the masters' DNS answers only the cluster domain and refuses other names".into(),
        );
    }
    let dns_search_set = match &raw.dns_search {
        None => false,
        Some(StringOrList::String(s)) => !s.trim().is_empty(),
        Some(StringOrList::List(l)) => !l.is_empty(),
    };
    if dns_search_set {
        warnings.push(DNS_SEARCH_NOTE.into());
    }

    // Ports.
    let api = port("ports.api", raw.ports.api, DEFAULT_API_PORT, &mut problems);
    let dns_port = port("ports.dns", raw.ports.dns, DEFAULT_DNS_PORT, &mut problems);
    let agent = port("ports.agent", raw.ports.agent, DEFAULT_AGENT_PORT, &mut problems);
    if api == dns_port {
        problem(
            &mut problems,
            "ports.dns".into(),
            format!("{dns_port} is also ports.api; the masters' API and DNS both listen on TCP and need two ports"),
        );
    }
    let tasks = raw.ports.tasks.unwrap_or_else(|| vec![DEFAULT_TASK_PORTS.into()]);
    if tasks.is_empty() {
        problem(&mut problems, "ports.tasks".into(), "is empty; give at least one range such as 31000-32000".into());
    }
    for (i, range) in tasks.iter().enumerate() {
        match crate::agent::config::parse_range(range) {
            Ok(r) if (r.begin..=r.end).contains(&agent) => problem(
                &mut problems,
                format!("ports.tasks[{i}]"),
                format!("{range} contains ports.agent ({agent}), which the agents themselves listen on"),
            ),
            Ok(_) => {}
            Err(message) => problem(&mut problems, format!("ports.tasks[{i}]"), message),
        }
    }

    let data_dirs = DataDirs {
        master: absolute_dir("data_dirs.master", raw.data_dirs.master, DEFAULT_MASTER_DIR, &mut problems),
        agent: absolute_dir("data_dirs.agent", raw.data_dirs.agent, DEFAULT_AGENT_DIR, &mut problems),
    };

    let admin_user = raw.admin_user.unwrap_or_else(|| "admin".into());
    if let Err(e) = crate::core::users::validate_uid(&admin_user) {
        problem(&mut problems, "admin_user".into(), e.to_string());
    }
    let ttl_text = raw.join_token_ttl.unwrap_or_else(|| DEFAULT_JOIN_TOKEN_TTL.into());
    let join_token_ttl_secs = crate::pki::join::parse_ttl(&ttl_text).unwrap_or_else(|message| {
        problem(&mut problems, "join_token_ttl".into(), message);
        0
    });
    let mut preload_images = Vec::new();
    for (i, path) in raw.preload_images.iter().enumerate() {
        if path.trim().is_empty() {
            problem(
                &mut problems,
                format!("preload_images[{i}]"),
                "is empty; give the path of an image archive".into(),
            );
        } else {
            preload_images.push(PathBuf::from(path));
        }
    }

    let mut preload_packages = Vec::new();
    for (i, path) in raw.preload_packages.iter().enumerate() {
        if path.trim().is_empty() {
            problem(
                &mut problems,
                format!("preload_packages[{i}]"),
                "is empty; give the path of a package bundle (medos package bundle)".into(),
            );
        } else {
            preload_packages.push(PathBuf::from(path));
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ClusterConfig {
        cluster_name,
        masters,
        agents,
        public_agents,
        ssh: SshSettings { user: ssh_user, port: ssh_port, key_path: ssh_key_path },
        resolvers: raw.resolvers,
        forward_zones: raw.dns_forward_zones,
        dns_domain,
        ports: Ports { api, dns: dns_port, agent, tasks },
        data_dirs,
        admin_user,
        join_token_ttl_secs,
        preload_images,
        preload_packages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
cluster_name: prod
master_list: [10.0.0.1, 10.0.0.2, 10.0.0.3]
agent_list:
  - 10.0.0.11
  - 10.0.0.12
public_agent_list: [10.0.0.21]
ssh_user: centos
ssh_port: 2222
ssh_key_path: /home/ops/.ssh/id_ed25519
resolvers: [10.0.0.53, '1.1.1.1:53']
";

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn keys(text: &str) -> Vec<String> {
        problems(text).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_good_config_gives_hosts_nodes_and_defaults() {
        let parsed = parse(GOOD).unwrap();
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let c = parsed.config;
        assert_eq!(
            c.hosts(),
            Hosts {
                masters: vec!["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into()],
                agents: vec!["10.0.0.11".into(), "10.0.0.12".into()],
                public_agents: vec!["10.0.0.21".into()],
                ssh: SshSettings {
                    user: "centos".into(),
                    port: 2222,
                    key_path: Some("/home/ops/.ssh/id_ed25519".into())
                },
            }
        );
        assert_eq!(c.ports, Ports { api: 7443, dns: 53, agent: 5051, tasks: vec!["31000-32000".into()] });
        assert_eq!(c.data_dirs.master, PathBuf::from("/var/lib/medos/master"));
        assert_eq!(c.dns_domain, "mesos");
        assert_eq!(c.admin_user, "admin");
        assert_eq!(c.join_token_ttl_secs, 7 * 86_400);
        let names: Vec<_> = c.nodes().into_iter().map(|n| (n.role, n.name)).collect();
        assert_eq!(names[0], (NodeRole::Master, "master-10-0-0-1".to_string()));
        assert_eq!(names[3], (NodeRole::Agent, "agent-10-0-0-11".to_string()));
        assert_eq!(names[5], (NodeRole::PublicAgent, "public-10-0-0-21".to_string()));
        assert_eq!(c.master_urls()[1], "https://10.0.0.2:7443");
        assert_eq!(node_name(NodeRole::Agent, "fd00::5".parse().unwrap()), "agent-fd00--5");
        assert_eq!(url("fd00::5".parse().unwrap(), 1), "https://[fd00::5]:1");
    }

    #[test]
    fn broken_yaml_is_reported_with_line_and_column() {
        let err = parse("cluster_name: prod\nmaster_list: [10.0.0.1\nagent_list: []\n").unwrap_err();
        let ConfigError::Yaml { line, column, message } = &err else { panic!("{err:?}") };
        assert!(*line >= 2, "{err}");
        assert!(*column > 0, "{err}");
        assert!(err.to_string().contains(&format!("line {line} column {column}")), "{err}");
        assert!(!message.is_empty());
        // A wrong type names the key and where it is.
        let err = parse("cluster_name: prod\nmaster_list: 10.0.0.1\n").unwrap_err();
        let ConfigError::Yaml { line, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*line, 2, "{err}");
        assert!(err.to_string().contains("master_list"), "{err}");
    }

    #[test]
    fn unknown_keys_are_warnings_with_a_suggestion() {
        let text = format!("{GOOD}mster_list: [10.0.0.9]\nports:\n  apii: 1\nbootstrap_url: http://x\nzzz: 1\n");
        let warnings = parse(&text).unwrap().warnings;
        let all = warnings.join("\n");
        assert!(all.contains("unknown key `mster_list` is ignored; did you mean `master_list`?"), "{all}");
        assert!(all.contains("unknown key `ports.apii` is ignored; did you mean `ports.api`?"), "{all}");
        assert!(all.contains("`bootstrap_url` (a DC/OS setting) is ignored"), "{all}");
        assert!(all.contains("unknown key `zzz` is ignored; known keys here: cluster_name"), "{all}");
        // With a typo the required key is missing: the error shows the suggestion too.
        let err = parse("cluster_name: c\nmster_list: [10.0.0.1]\n").unwrap_err().to_string();
        assert!(err.starts_with("`master_list`: is missing"), "{err}");
        assert!(err.contains("warning: unknown key `mster_list` is ignored; did you mean `master_list`?"), "{err}");
        assert_eq!(did_you_mean("agnet_list", TOP_KEYS), Some("agent_list"));
        assert_eq!(did_you_mean("colour", TOP_KEYS), None);
    }

    #[test]
    fn bad_hosts_are_named_by_key() {
        let base = "cluster_name: c\n";
        assert_eq!(
            keys(&format!("{base}master_list: [10.0.0.1, nope, 10.0.0.300]\n")),
            ["master_list[1]", "master_list[2]"]
        );
        let p = problems(&format!("{base}master_list: [10.0.0.1]\nagent_list: [10.0.0.2, 10.0.0.1]\n"));
        assert_eq!(p[0].key, "agent_list[1]");
        assert!(p[0].message.contains("already listed as master_list[0]"), "{}", p[0]);
        assert_eq!(keys(&format!("{base}master_list: [0.0.0.0, 224.0.0.1]\n")), ["master_list[0]", "master_list[1]"]);
        let p = problems(&format!("{base}master_list: []\n"));
        assert_eq!(p[0].key, "master_list");
        assert!(p[0].message.contains("is empty"), "{}", p[0]);
        assert!(problems("master_list: [10.0.0.1]\n")[0].message.contains("cluster_name"));
        // An empty file names everything that is required.
        let missing = keys("# nothing yet\n");
        assert_eq!(missing, ["cluster_name", "master_list"]);
    }

    #[test]
    fn an_even_number_of_masters_is_a_warning() {
        let parsed = parse(
            "cluster_name: c\nmaster_list: [10.0.0.1, 10.0.0.2]\nagent_list: [10.0.0.3]\nresolvers: [10.0.0.53]\n",
        )
        .unwrap();
        assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
        assert!(parsed.warnings[0].contains("even number"), "{:?}", parsed.warnings);
        let loopback = parse("cluster_name: c\nmaster_list: [127.0.0.1]\n").unwrap().warnings.join("\n");
        assert!(loopback.contains("loopback") && loopback.contains("agent_list"), "{loopback}");
    }

    #[test]
    fn bad_ports_dirs_and_settings_are_named() {
        let base = "cluster_name: c\nmaster_list: [10.0.0.1]\n";
        let p = problems(&format!(
            "{base}ssh_port: 70000\nports:\n  api: 0\n  agent: 31005\n  tasks: ['31000-32000', '9-1']\n"
        ));
        let found: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(found, ["ssh_port", "ports.api", "ports.tasks[0]", "ports.tasks[1]"], "{p:?}");
        assert!(p[0].message.contains("70000 is not a port; expected 1 to 65535"), "{}", p[0]);
        assert!(p[2].message.contains("contains ports.agent (31005)"), "{}", p[2]);
        assert_eq!(keys(&format!("{base}ports: {{api: 53}}\n")), ["ports.dns"]);
        assert_eq!(keys(&format!("{base}data_dirs: {{master: relative/dir}}\n")), ["data_dirs.master"]);
        assert_eq!(keys(&format!("{base}resolvers: [not-an-ip]\n")), ["resolvers"]);
        assert_eq!(keys(&format!("{base}dns_domain: 'bad domain'\n")), ["dns_domain"]);
        assert_eq!(keys(&format!("{base}dns_forward_zones: {{x.mesos: [10.0.0.9]}}\n")), ["dns_forward_zones"]);
        assert_eq!(keys(&format!("{base}ssh_user: '-oProxyCommand=x'\n")), ["ssh_user"]);
        assert_eq!(keys(&format!("{base}join_token_ttl: 10s\n")), ["join_token_ttl"]);
        assert_eq!(keys(&format!("{base}admin_user: ''\n")), ["admin_user"]);
        assert_eq!(keys(&format!("{base}preload_images: ['']\n")), ["preload_images[0]"]);
        assert_eq!(keys(&format!("{base}preload_packages: [a.bundle, '']\n")), ["preload_packages[1]"]);
        // Wrong types are caught by the parser, naming the key.
        let err = parse(&format!("{base}ports:\n  api: seven\n")).unwrap_err().to_string();
        assert!(err.contains("ports.api") && err.contains("line 4"), "{err}");
    }

    #[test]
    fn dns_search_is_explained_and_forward_zones_are_kept() {
        let parsed =
            parse(&format!("{GOOD}dns_search: corp.example\ndns_forward_zones:\n  corp.example: ['10.1.0.2:53']\n"))
                .unwrap();
        assert!(parsed.warnings.iter().any(|w| w.contains("dns_search")), "{:?}", parsed.warnings);
        assert_eq!(parsed.config.forward_zones["corp.example"], ["10.1.0.2:53"]);
    }
}
