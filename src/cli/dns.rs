//! `medos dns lookup NAME [TYPE]` (and DC/OS's spelling `medos node dns NAME`): cluster names
//! looked up through Mesos-DNS's HTTP API on the masters (`/mesos_dns/v1`), so the answer is
//! the one the masters' DNS servers give, without needing a DNS route to them.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::config::Target;
use super::output;
use crate::api::client::Client;

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Look a cluster name up: A (the default: every address, IPv4 and IPv6), AAAA (IPv6
    /// only) or SRV (the default for names starting with `_`).
    Lookup(LookupArgs),
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// A name in the cluster domain: `web-grp.marathon.mesos`, `_web-grp._tcp.marathon.mesos`,
    /// `leader.mesos`; case does not matter, the trailing dot is optional.
    pub name: String,
    /// Record type: A, AAAA or SRV.
    #[arg(value_name = "TYPE")]
    pub rtype: Option<String>,
}

/// What a lookup asks the masters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `/hosts`: every address (`v6_only` keeps the AAAA ones).
    Addresses { v6_only: bool },
    /// `/services`: SRV records with their targets' addresses.
    Services,
}

impl Lookup {
    fn type_name(self) -> &'static str {
        match self {
            Lookup::Addresses { v6_only: false } => "A",
            Lookup::Addresses { v6_only: true } => "AAAA",
            Lookup::Services => "SRV",
        }
    }
}

/// Checks the name and chooses the lookup: TYPE when given (any case), else SRV for names
/// starting with `_` and A for the rest.
pub fn plan(name: &str, rtype: Option<&str>) -> Result<Lookup, String> {
    crate::core::dns::validate_name(name)?;
    match rtype.map(|t| t.trim().to_ascii_uppercase()).as_deref() {
        None if name.starts_with('_') => Ok(Lookup::Services),
        None | Some("A") => Ok(Lookup::Addresses { v6_only: false }),
        Some("AAAA") => Ok(Lookup::Addresses { v6_only: true }),
        Some("SRV") => Ok(Lookup::Services),
        Some("") => Err("the record type is empty: use A, AAAA or SRV".into()),
        Some(other) => Err(format!("unsupported record type {other:?}: use A, AAAA or SRV")),
    }
}

pub async fn run(cmd: DnsCommand, json: bool) -> Result<()> {
    match cmd {
        DnsCommand::Lookup(args) => {
            check(&args)?;
            let client = Target::resolve()?.client()?;
            lookup(&client, &args, json).await
        }
    }
}

/// Refuses a malformed name or type before any cluster is contacted.
pub fn check(args: &LookupArgs) -> Result<()> {
    plan(&args.name, args.rtype.as_deref()).map(|_| ()).map_err(|m| anyhow::anyhow!("{m}"))
}

/// Prints what the masters answer for `args`; a name without records is an error in a table
/// (exit status 1) and `[]` with `--json`.
pub async fn lookup(client: &Client, args: &LookupArgs, json: bool) -> Result<()> {
    let kind = match plan(&args.name, args.rtype.as_deref()) {
        Ok(kind) => kind,
        Err(message) => bail!("{message}"),
    };
    let found = match kind {
        Lookup::Addresses { v6_only } => {
            let mut hosts = client.dns_hosts(&args.name).await?;
            if v6_only {
                hosts.retain(|h| h.ip.parse::<std::net::Ipv6Addr>().is_ok());
            }
            if json {
                output::json(&hosts);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = hosts.into_iter().map(|h| vec![h.host, h.ip]).collect();
            let found = !rows.is_empty();
            if found {
                output::table(&["host", "ip"], rows);
            }
            found
        }
        Lookup::Services => {
            let services = client.dns_services(&args.name).await?;
            if json {
                output::json(&services);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = services.into_iter().map(|s| vec![s.service, s.host, s.ip, s.port]).collect();
            let found = !rows.is_empty();
            if found {
                output::table(&["service", "host", "ip", "port"], rows);
            }
            found
        }
    };
    if !found {
        bail!(
            "{}: no {} records (no such name, or no running instance; `medos service list` shows the apps' names)",
            args.name,
            kind.type_name()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_default_by_the_name_and_bad_input_is_named() {
        let addresses = Lookup::Addresses { v6_only: false };
        assert_eq!(plan("web-grp.marathon.mesos", None), Ok(addresses));
        assert_eq!(plan("_web-grp._tcp.marathon.mesos", None), Ok(Lookup::Services));
        assert_eq!(plan("web.mesos", Some("srv")), Ok(Lookup::Services));
        assert_eq!(plan("_x._tcp.mesos", Some("A")), Ok(addresses));
        assert_eq!(plan("web.mesos", Some("aaaa")), Ok(Lookup::Addresses { v6_only: true }));
        let err = plan("web.mesos", Some("MX")).unwrap_err();
        assert!(err.contains("\"MX\"") && err.contains("A, AAAA or SRV"), "{err}");
        assert!(plan("web.mesos", Some(" ")).unwrap_err().contains("empty"));
        assert!(plan("", None).unwrap_err().contains("empty"));
        assert!(plan(&"a".repeat(300), None).unwrap_err().contains("253"));
        assert!(plan(&format!("{}.mesos", "b".repeat(64)), None).unwrap_err().contains("63"));
    }
}
