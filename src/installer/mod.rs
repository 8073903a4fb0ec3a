//! `medos installer`: installing a cluster on bare hosts, as DC/OS's installer did.
//!
//! Everything starts from a directory (`genconf/` by default) holding `config.yaml` (see
//! [`config`]) and optionally `ip-detect`. `medos installer genconf` ([`genconf`]) validates
//! it and generates:
//!
//! ```text
//! genconf/pki/                 the cluster CA (ca.crt, ca.key) and every node's certificate and key;
//!                              kept between runs (a rerun reuses them; --force starts over)
//! genconf/secrets/             the admin password, the token-signing secret, join tokens (0600)
//! genconf/serve/               what goes to the hosts:
//!   medos                        the binary (a copy of the one that ran genconf)
//!   install.sh                   `bash install.sh master|agent|agent_public` on a host
//!   ip-detect                    prints the host's address (genconf/ip-detect, or the default)
//!   units/*.service              the systemd units
//!   ca.crt, cluster.json         the CA certificate; the cluster's nodes, URLs, CA fingerprint
//!   nodes/<ip>/role              the role config.yaml gives that host
//!   nodes/<ip>/root/…            its files, at their paths on the host (/etc/medos/…)
//!   join/*.toml.in               agent configs with a join token, for hosts not listed (0600)
//!   preload/images/…             image archives to load once the cluster runs
//!   SHA256SUMS                   `sha256sum -c` format, every other file
//! ```
//!
//! A host needs the shared files and only its own `nodes/<ip>/` (the masters' directories hold
//! the CA key); `install.sh` checks the checksums of the files present
//! (`sha256sum -c --ignore-missing`) and that the ones it uses exist.
//!
//! The remote commands get their hosts and SSH settings from the same validated config:
//! `genconf::load_config(dir)?.config.hosts()` ([`config::Hosts`]); `serve/cluster.json`
//! ([`genconf::ClusterFile`]) names every node's role, unit and the masters' URLs.
//!
//! `ip-detect` runs on each host, at install time, as in DC/OS: `install.sh` runs it to learn
//! which `nodes/<ip>/` is this host (and, for a host that is not listed, which address an
//! agent joining with a token reports). The default prints the source address of the host's
//! route to the first master (`ip route get`), i.e. the address this host uses to reach it.

//!
//! The remote steps: [`ssh`] runs commands and copies files on many hosts in parallel through
//! the system's OpenSSH client (the user's ssh config, agent, keys and known_hosts apply), with
//! per-host logs, progress bars and a summary table; [`preflight`] runs the checks on every
//! host before a deploy, each failure saying how to fix it.

pub mod config;
pub mod deploy;
pub mod genconf;
pub mod preflight;
pub mod ssh;

/// Where things live on an installed host (the units and `install.sh` use the same paths).
pub mod host {
    /// The binary; `/usr/local/bin/medos` (install.sh) or `/usr/bin/medos` (.deb) link to it.
    pub const BIN: &str = "/opt/medos/bin/medos";
    pub const MASTER_CONFIG: &str = "/etc/medos/master.toml";
    pub const AGENT_CONFIG: &str = "/etc/medos/agent.toml";
    /// CA certificate, node certificate and key, and (masters) the CA key.
    pub const PKI_DIR: &str = "/etc/medos/pki";
    /// The masters' bootstrap secrets: admin password, token-signing secret.
    pub const SECRETS_DIR: &str = "/etc/medos/secrets";
}

/// The unit files, as shipped (`systemd/`).
pub const UNITS: &[(&str, &str)] = &[
    ("medos-master.service", include_str!("../../systemd/medos-master.service")),
    ("medos-agent.service", include_str!("../../systemd/medos-agent.service")),
    ("medos-agent-public.service", include_str!("../../systemd/medos-agent-public.service")),
];

/// `installer/install.sh`.
pub const INSTALL_SH: &str = include_str!("../../installer/install.sh");

/// `installer/ip-detect`: the default ip-detect, with `@FIRST_MASTER@` to fill in.
pub const IP_DETECT_DEFAULT: &str = include_str!("../../installer/ip-detect");

#[cfg(test)]
mod tests;
