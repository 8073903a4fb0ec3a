//! `medos installer genconf`: `genconf/config.yaml` → CA, certificates, secrets, per-node
//! configs and `genconf/serve/` (see the module above for the layout).
//!
//! Rerunning keeps the CA, the node certificates (reissued only for new hosts or a changed
//! address), the admin password, the token-signing secret and unexpired join tokens, so the
//! same config gives the same `serve/` byte for byte; `--force` starts over with a new CA.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::config::{self, ClusterConfig, ConfigError, Node, NodeRole, Parsed, Problem};
use super::host;
use crate::agent::AgentConfig;
use crate::master::MasterConfig;
use crate::master::config::{BootstrapConfig, DnsConfig, InitialMaster};
use crate::pki::join::{JoinKind, JoinToken};
use crate::pki::{self, Ca, Role, TlsFiles};

pub const CONFIG_FILE: &str = "config.yaml";
pub const IP_DETECT_FILE: &str = "ip-detect";
pub const SERVE_DIR: &str = "serve";
pub const PKI_DIR: &str = "pki";
pub const SECRETS_DIR: &str = "secrets";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {error} (write the cluster's config.yaml there, or pass --genconf-dir)")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path} is invalid:\n{error}")]
    Config { path: PathBuf, error: ConfigError },
}

/// Reads and validates `DIR/config.yaml`, and checks what it names on this machine:
/// `ssh_key_path` exists (`~/` expanded), `preload_images` exist (relative to DIR, made
/// absolute), `DIR/ip-detect` (when present) is an executable file.
pub fn load_config(dir: &Path) -> Result<Parsed, LoadError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| LoadError::Read { path: path.clone(), error })?;
    let invalid = |error| LoadError::Config { path: path.clone(), error };
    let mut parsed = config::parse(&text).map_err(invalid)?;
    let mut problems = Vec::new();
    if let Some(key) = &parsed.config.ssh.key_path {
        let expanded = match key.strip_prefix("~") {
            Ok(rest) => dirs::home_dir().map(|h| h.join(rest)).unwrap_or_else(|| key.clone()),
            Err(_) => key.clone(),
        };
        if !expanded.is_file() {
            problems.push(Problem {
                key: "ssh_key_path".into(),
                message: format!("{} is not a file; give the private key ssh should use", expanded.display()),
            });
        }
        parsed.config.ssh.key_path = Some(expanded);
    }
    for (i, image) in parsed.config.preload_images.iter_mut().enumerate() {
        let full = if image.is_absolute() { image.clone() } else { dir.join(&*image) };
        if !full.is_file() {
            problems.push(Problem {
                key: format!("preload_images[{i}]"),
                message: format!(
                    "{} is not a file; give an image archive (docker save or OCI layout tar)",
                    full.display()
                ),
            });
        }
        *image = full;
    }
    let mut names = BTreeMap::new();
    for (i, image) in parsed.config.preload_images.iter().enumerate() {
        if let Some(first) = names.insert(image.file_name().map(|n| n.to_owned()), i) {
            problems.push(Problem {
                key: format!("preload_images[{i}]"),
                message: format!("has the same file name as preload_images[{first}]; rename one"),
            });
        }
    }
    let mut bundle_names = BTreeMap::new();
    for (i, bundle) in parsed.config.preload_packages.iter_mut().enumerate() {
        let full = if bundle.is_absolute() { bundle.clone() } else { dir.join(&*bundle) };
        if !full.is_file() {
            problems.push(Problem {
                key: format!("preload_packages[{i}]"),
                message: format!("{} is not a file; give a bundle made by `medos package bundle`", full.display()),
            });
        } else if let Some(first) = bundle_names.insert(full.file_name().map(|n| n.to_owned()), i) {
            problems.push(Problem {
                key: format!("preload_packages[{i}]"),
                message: format!("has the same file name as preload_packages[{first}]; rename one"),
            });
        }
        *bundle = full;
    }
    let ip_detect = dir.join(IP_DETECT_FILE);
    if let Ok(meta) = std::fs::metadata(&ip_detect) {
        if !meta.is_file() || meta.len() == 0 {
            problems.push(Problem {
                key: IP_DETECT_FILE.into(),
                message: format!("{} must be a non-empty file", ip_detect.display()),
            });
        } else if meta.permissions().mode() & 0o111 == 0 {
            problems.push(Problem {
                key: IP_DETECT_FILE.into(),
                message: format!("{} is not executable; chmod +x it", ip_detect.display()),
            });
        }
    }
    if !problems.is_empty() {
        return Err(invalid(ConfigError::Invalid { problems, warnings: std::mem::take(&mut parsed.warnings) }));
    }
    Ok(parsed)
}

/// What genconf is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The genconf directory (holding config.yaml).
    pub dir: PathBuf,
    /// Start over: new CA, certificates and secrets.
    pub force: bool,
    /// The binary to ship (the running executable for the CLI).
    pub binary: PathBuf,
    /// Unix seconds now (join token expiry).
    pub now_secs: u64,
}

/// What genconf did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub serve: PathBuf,
    pub ca_fingerprint: String,
    /// Whether this run created the CA (first run or --force).
    pub created_ca: bool,
    pub nodes: Vec<NodeSummary>,
    pub admin_user: String,
    pub admin_password_file: PathBuf,
    pub warnings: Vec<String>,
    /// Files listed in SHA256SUMS.
    pub files: usize,
}

/// One node in `serve/cluster.json` and the summary.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeSummary {
    pub name: String,
    pub ip: String,
    /// `master`, `agent` or `agent_public` (install.sh's argument).
    pub role: String,
    pub unit: String,
}

/// `serve/cluster.json`: what the remote commands need to know about the generated cluster.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClusterFile {
    pub cluster_name: String,
    pub ca_fingerprint: String,
    pub masters: Vec<String>,
    pub nodes: Vec<NodeSummary>,
    /// Paths under serve/ of the image archives to load once the cluster runs.
    pub preload_images: Vec<String>,
    /// Paths under serve/ of the package bundles to add once the cluster runs.
    #[serde(default)]
    pub preload_packages: Vec<String>,
}

fn pki_path(name: &str) -> PathBuf {
    Path::new(host::PKI_DIR).join(name)
}

fn tls_files(node: &Node) -> TlsFiles {
    TlsFiles {
        ca: pki_path(pki::ca::CA_CERT_FILE),
        cert: pki_path(&format!("{}.crt", node.name)),
        key: pki_path(&format!("{}.key", node.name)),
    }
}

fn wildcard(ip: IpAddr, port: u16) -> std::net::SocketAddr {
    let any: IpAddr =
        if ip.is_ipv6() { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
    std::net::SocketAddr::new(any, port)
}

/// A master's config on its host (pure).
pub fn master_config(c: &ClusterConfig, node: &Node) -> MasterConfig {
    MasterConfig {
        name: node.name.clone(),
        data_dir: c.data_dirs.master.clone(),
        listen: wildcard(node.ip, c.ports.api),
        advertise: config::url(node.ip, c.ports.api),
        initial_masters: c
            .nodes()
            .into_iter()
            .filter(|n| n.role == NodeRole::Master)
            .map(|n| InitialMaster { api: config::url(n.ip, c.ports.api), name: n.name })
            .collect(),
        tls: tls_files(node),
        // Masters sign certificates for agents that join with a token.
        ca_key: Some(pki_path(pki::ca::CA_KEY_FILE)),
        bootstrap: BootstrapConfig {
            admin_user: Some(c.admin_user.clone()),
            admin_password_file: Some(Path::new(host::SECRETS_DIR).join("admin-password")),
            token_secret_file: Some(Path::new(host::SECRETS_DIR).join("token-secret")),
        },
        raft: Default::default(),
        agents: Default::default(),
        dns: DnsConfig {
            listen: wildcard(node.ip, c.ports.dns),
            domain: c.dns_domain.clone(),
            resolvers: c.resolvers.clone(),
            forward_zones: c.forward_zones.clone(),
            ..DnsConfig::default()
        },
    }
}

/// An agent's config on its host (pure). Its host name is its address, as DC/OS's agents'
/// were by default.
pub fn agent_config(c: &ClusterConfig, node: &Node) -> AgentConfig {
    AgentConfig {
        name: node.name.clone(),
        hostname: node.ip.to_string(),
        address: node.ip.to_string(),
        masters: c.master_urls(),
        work_dir: c.data_dirs.agent.clone(),
        tls: tls_files(node),
        join_token: None,
        ports: c.ports.tasks.clone(),
        resources: Default::default(),
        attributes: Default::default(),
        public: node.role == NodeRole::PublicAgent,
        api: String::new(),
        listen: Some(wildcard(node.ip, c.ports.agent)),
    }
}

/// The config template for agents that are not listed and join with `token`; `install.sh`
/// fills in `@NAME@` and `@ADDRESS@` from ip-detect. Its TLS files are created by joining, in
/// the work dir.
pub fn join_template(c: &ClusterConfig, public: bool, token: &str) -> String {
    let mut table = toml::Table::new();
    let s = |v: &str| toml::Value::String(v.to_string());
    table.insert("name".into(), s("@NAME@"));
    table.insert("hostname".into(), s("@ADDRESS@"));
    table.insert("address".into(), s("@ADDRESS@"));
    table.insert("masters".into(), toml::Value::Array(c.master_urls().iter().map(|u| s(u)).collect()));
    table.insert("work_dir".into(), s(&c.data_dirs.agent.display().to_string()));
    table.insert("join_token".into(), s(token));
    table.insert("ports".into(), toml::Value::Array(c.ports.tasks.iter().map(|r| s(r)).collect()));
    table.insert("public".into(), toml::Value::Boolean(public));
    table.insert("listen".into(), s(&format!("0.0.0.0:{}", c.ports.agent)));
    format!(
        "# An agent that joins with a token (install.sh fills in its name and address)\n{}",
        toml::to_string_pretty(&table).expect("template renders")
    )
}

/// Whether `cert_pem` is a certificate of this CA for `name` in `role`, valid for `ip`.
fn cert_fits(cert_pem: &str, ca_pem: &str, name: &str, role: Role, ip: IpAddr) -> bool {
    let Ok(der) = pki::tls::certs_from_pem(cert_pem.as_bytes(), Path::new("node certificate")) else { return false };
    let Ok(ca_der) = pki::tls::certs_from_pem(ca_pem.as_bytes(), Path::new("ca.crt")) else { return false };
    let Some(identity) = pki::tls::peer_identity(&der[0]) else { return false };
    if identity.name != name || identity.role != role {
        return false;
    }
    let (Ok((_, cert)), Ok((_, ca))) =
        (x509_parser::parse_x509_certificate(der[0].as_ref()), x509_parser::parse_x509_certificate(ca_der[0].as_ref()))
    else {
        return false;
    };
    if cert.issuer().as_raw() != ca.subject().as_raw() || !cert.validity().is_valid() {
        return false;
    }
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let Ok(Some(sans)) = cert.subject_alternative_name() else { return false };
    sans.value
        .general_names
        .iter()
        .any(|n| matches!(n, x509_parser::extensions::GeneralName::IPAddress(b) if *b == octets.as_slice()))
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn secret_file(path: &Path, make: impl FnOnce() -> String) -> Result<String> {
    if let Some(existing) = read_trimmed(path) {
        return Ok(existing);
    }
    let value = make();
    pki::ca::write_file(path, &format!("{value}\n"), true)?;
    Ok(value)
}

fn join_token(
    path: &Path,
    secret: &str,
    fingerprint: &str,
    kind: JoinKind,
    options: &Options,
    ttl: u64,
) -> Result<String> {
    if let Some(text) = read_trimmed(path)
        && let Ok(token) = JoinToken::parse(&text)
        && token.kind == kind
        // Kept while it has at least a day (or a tenth of its lifetime) to go.
        && token.verify(secret, fingerprint, options.now_secs + (ttl / 10).min(86_400)).is_ok()
    {
        return Ok(text);
    }
    let token = JoinToken::create(secret, fingerprint, kind, options.now_secs + ttl, rand::random()).to_string();
    pki::ca::write_file(path, &format!("{token}\n"), true)?;
    Ok(token)
}

/// Copies `from` to `to` with `mode`.
fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", to.display()))?;
    Ok(())
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<()> {
    pki::ca::write_file(path, contents, mode == 0o600)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(())
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Writes `dir/SHA256SUMS` (`sha256sum -c` format) over every other file; returns the count.
pub fn write_checksums(dir: &Path) -> Result<usize> {
    let mut text = String::new();
    let files: Vec<PathBuf> = files_under(dir)?.into_iter().filter(|p| p != Path::new("SHA256SUMS")).collect();
    for rel in &files {
        let name = rel.to_str().with_context(|| format!("{} is not UTF-8", rel.display()))?;
        if name.contains('\n') || name.contains('\\') {
            bail!("{name:?}: file names in serve/ must not contain newlines or backslashes");
        }
        text.push_str(&format!("{}  {name}\n", sha256_file(&dir.join(rel))?));
    }
    write(&dir.join("SHA256SUMS"), &text, 0o644)?;
    Ok(files.len())
}

/// Runs genconf: validates, generates, and replaces `serve/` as a whole.
pub fn run(options: &Options) -> Result<Summary> {
    let parsed = load_config(&options.dir)?;
    let c = &parsed.config;
    let pki_dir = options.dir.join(PKI_DIR);
    let secrets_dir = options.dir.join(SECRETS_DIR);
    if options.force {
        for dir in [&pki_dir, &secrets_dir] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
    }
    for dir in [&pki_dir, &secrets_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
    }

    // The CA and the secrets, kept between runs.
    let created_ca = !pki_dir.join(pki::ca::CA_KEY_FILE).exists();
    let ca = if created_ca {
        tracing::info!(dir = %pki_dir.display(), "creating the cluster CA");
        Ca::init(&pki_dir, &c.cluster_name)?
    } else {
        Ca::load_files(&pki_dir.join(pki::ca::CA_CERT_FILE), &pki_dir.join(pki::ca::CA_KEY_FILE))
            .with_context(|| format!("{} holds a broken CA; rerun with --force to make a new one", pki_dir.display()))?
    };
    let ca_der = pki::tls::certs_from_pem(ca.cert_pem.as_bytes(), &pki_dir)?;
    let fingerprint = pki::fingerprint(&ca_der[0]);
    let admin_password_file = secrets_dir.join("admin-password");
    let admin_password = secret_file(&admin_password_file, || hex::encode(rand::random::<[u8; 16]>()))?;
    let token_secret = secret_file(&secrets_dir.join("token-secret"), crate::auth::new_token_secret)?;
    let ttl = c.join_token_ttl_secs;
    let agent_token =
        join_token(&secrets_dir.join("join-token-agent"), &token_secret, &fingerprint, JoinKind::Agent, options, ttl)?;
    let public_token = join_token(
        &secrets_dir.join("join-token-public"),
        &token_secret,
        &fingerprint,
        JoinKind::Public,
        options,
        ttl,
    )?;

    // serve/ is built beside the old one and swapped in when complete.
    let serve = options.dir.join(SERVE_DIR);
    let staging = options.dir.join("serve.new");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    copy(&options.binary, &staging.join("medos"), 0o755)?;
    write(&staging.join("install.sh"), super::INSTALL_SH, 0o755)?;
    let own_ip_detect = options.dir.join(IP_DETECT_FILE);
    if own_ip_detect.exists() {
        copy(&own_ip_detect, &staging.join(IP_DETECT_FILE), 0o755)?;
    } else {
        let first = c.masters[0].to_string();
        write(&staging.join(IP_DETECT_FILE), &super::IP_DETECT_DEFAULT.replace("@FIRST_MASTER@", &first), 0o755)?;
    }
    for (name, text) in super::UNITS {
        write(&staging.join("units").join(name), text, 0o644)?;
    }
    write(&staging.join(pki::ca::CA_CERT_FILE), &ca.cert_pem, 0o644)?;

    let mut nodes = Vec::new();
    for node in c.nodes() {
        let role = if node.role == NodeRole::Master { Role::Master } else { Role::Agent };
        let cert_path = pki_dir.join(format!("{}.crt", node.name));
        let key_path = pki_dir.join(format!("{}.key", node.name));
        let fits = std::fs::read_to_string(&cert_path)
            .is_ok_and(|pem| cert_fits(&pem, &ca.cert_pem, &node.name, role, node.ip))
            && key_path.exists();
        if !fits {
            let mut hosts = vec![node.ip.to_string()];
            if role == Role::Master {
                // The CLI on a master may use https://127.0.0.1:PORT.
                hosts.extend(["127.0.0.1".to_string(), "localhost".to_string()]);
            }
            ca.issue(role, &node.name, &hosts, &pki_dir)?;
        }
        let root = staging.join("nodes").join(node.ip.to_string()).join("root");
        let on_host = |p: &Path| root.join(p.strip_prefix("/").expect("absolute host path"));
        write(
            &staging.join("nodes").join(node.ip.to_string()).join("role"),
            &format!("{}\n", node.role.install_arg()),
            0o644,
        )?;
        let tls = tls_files(&node);
        copy(&cert_path, &on_host(&tls.cert), 0o644)?;
        copy(&key_path, &on_host(&tls.key), 0o600)?;
        write(&on_host(&tls.ca), &ca.cert_pem, 0o644)?;
        match node.role {
            NodeRole::Master => {
                let mc = master_config(c, &node);
                copy(&pki_dir.join(pki::ca::CA_KEY_FILE), &on_host(&pki_path(pki::ca::CA_KEY_FILE)), 0o600)?;
                let secrets = Path::new(host::SECRETS_DIR);
                write(&on_host(&secrets.join("admin-password")), &format!("{admin_password}\n"), 0o600)?;
                write(&on_host(&secrets.join("token-secret")), &format!("{token_secret}\n"), 0o600)?;
                write(&on_host(Path::new(host::MASTER_CONFIG)), &mc.to_toml(), 0o644)?;
            }
            NodeRole::Agent | NodeRole::PublicAgent => {
                write(&on_host(Path::new(host::AGENT_CONFIG)), &agent_config(c, &node).to_toml(), 0o644)?;
            }
        }
        nodes.push(NodeSummary {
            name: node.name.clone(),
            ip: node.ip.to_string(),
            role: node.role.install_arg().into(),
            unit: node.role.unit().into(),
        });
    }
    write(&staging.join("join").join("agent.toml.in"), &join_template(c, false, &agent_token), 0o600)?;
    write(&staging.join("join").join("agent-public.toml.in"), &join_template(c, true, &public_token), 0o600)?;

    let mut preload = Vec::new();
    for image in &c.preload_images {
        let name = image.file_name().context("an image path without a file name")?;
        let rel = Path::new("preload").join("images").join(name);
        copy(image, &staging.join(&rel), 0o644)?;
        preload.push(rel.display().to_string());
    }
    let mut preload_packages = Vec::new();
    for bundle in &c.preload_packages {
        let name = bundle.file_name().context("a bundle path without a file name")?;
        let rel = Path::new("preload").join("packages").join(name);
        copy(bundle, &staging.join(&rel), 0o644)?;
        preload_packages.push(rel.display().to_string());
    }
    let cluster = ClusterFile {
        cluster_name: c.cluster_name.clone(),
        ca_fingerprint: fingerprint.clone(),
        masters: c.master_urls(),
        nodes: nodes.clone(),
        preload_images: preload,
        preload_packages,
    };
    write(&staging.join("cluster.json"), &(serde_json::to_string_pretty(&cluster)? + "\n"), 0o644)?;
    let files = write_checksums(&staging)?;

    if serve.exists() {
        std::fs::remove_dir_all(&serve).with_context(|| format!("removing the old {}", serve.display()))?;
    }
    std::fs::rename(&staging, &serve)
        .with_context(|| format!("moving {} to {}", staging.display(), serve.display()))?;
    if let Ok(dir) = std::fs::File::open(&options.dir) {
        let _ = dir.sync_all();
    }
    Ok(Summary {
        serve,
        ca_fingerprint: fingerprint,
        created_ca,
        nodes,
        admin_user: c.admin_user.clone(),
        admin_password_file,
        warnings: parsed.warnings,
        files,
    })
}

/// Prints a summary for people (`medos installer genconf`).
pub fn print_summary(summary: &Summary, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{} the cluster CA (fingerprint {})",
        if summary.created_ca { "created" } else { "kept" },
        summary.ca_fingerprint
    )?;
    for node in &summary.nodes {
        writeln!(out, "  {:<14} {:<40} {}", node.role, node.ip, node.name)?;
    }
    writeln!(out, "wrote {} ({} files, SHA256SUMS)", summary.serve.display(), summary.files)?;
    writeln!(
        out,
        "the first administrator is {:?}; the password is in {}",
        summary.admin_user,
        summary.admin_password_file.display()
    )?;
    writeln!(out, "next: on each host, from a copy of serve/: bash install.sh master|agent|agent_public")?;
    Ok(())
}

#[cfg(test)]
mod tests;
