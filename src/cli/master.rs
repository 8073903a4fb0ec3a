//! `medos master` (run a master) and `medos master add|remove|list`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::config::Target;
use super::output;
use crate::master::config::InitialMaster;
use crate::master::{MasterConfig, MasterOverrides};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MasterArgs {
    #[command(subcommand)]
    pub command: Option<MasterCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// TOML config file; flags override its settings.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to bind, e.g. 0.0.0.0:7443.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// URL others reach this master at, e.g. https://10.0.0.1:7443.
    #[arg(long)]
    pub advertise: Option<String>,
    /// A master of the initial cluster, NAME=URL (repeat for each).
    #[arg(long = "initial-master", value_name = "NAME=URL")]
    pub initial_masters: Vec<InitialMaster>,
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The cluster CA's key: lets this master sign certificates for agents joining with a
    /// token (`medos node join-token create`).
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
    /// uid of the first administrator (bootstrap only).
    #[arg(long)]
    pub admin_user: Option<String>,
    /// File with the first administrator's password (bootstrap only).
    #[arg(long)]
    pub admin_password_file: Option<PathBuf>,
    /// Cluster DNS address, UDP and TCP (default 0.0.0.0:53).
    #[arg(long)]
    pub dns_listen: Option<SocketAddr>,
    /// Cluster DNS domain (default mesos).
    #[arg(long)]
    pub dns_domain: Option<String>,
    /// Upstream DNS server for other names, IP[:PORT] (repeat for each).
    #[arg(long = "dns-resolver", value_name = "IP[:PORT]")]
    pub dns_resolvers: Vec<String>,
    /// Run no DNS server on this master.
    #[arg(long)]
    pub no_dns: bool,
}

#[derive(Debug, Subcommand)]
pub enum MasterCommand {
    /// Add a running, empty master to the cluster (as learner, then voter).
    Add {
        /// The new master's URL, e.g. https://10.0.0.4:7443.
        url: String,
    },
    /// Remove a master from the cluster (also how a dead master is replaced: remove, then add).
    #[command(alias = "rm")]
    Remove { name: String },
    /// List the masters.
    #[command(alias = "ls")]
    List,
}

impl RunArgs {
    pub fn config(self) -> Result<MasterConfig> {
        let overrides = MasterOverrides {
            name: self.name,
            data_dir: self.data_dir,
            listen: self.listen,
            advertise: self.advertise,
            initial_masters: self.initial_masters,
            tls_ca: self.tls_ca,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            ca_key: self.ca_key,
            admin_user: self.admin_user,
            admin_password_file: self.admin_password_file,
            dns_listen: self.dns_listen,
            dns_domain: self.dns_domain,
            dns_resolvers: self.dns_resolvers,
            dns_disabled: self.no_dns,
        };
        Ok(MasterConfig::load(self.config.as_deref(), overrides)?)
    }
}

/// Runs a master until SIGINT or SIGTERM.
pub async fn serve(args: RunArgs) -> Result<()> {
    let config = args.config()?;
    let running = crate::master::start(config, None, None).await?;
    eprintln!("medos master {} serving {}", running.master.name, running.master.advertise);
    // Under systemd (Type=notify): ready once the API and DNS listen; the status line then
    // follows the Raft role.
    let notifier = std::sync::Arc::new(crate::systemd::Notifier::from_env());
    notifier.ready(&format!("serving {}; waiting for a leader", running.master.advertise));
    let watchdog = crate::systemd::spawn_watchdog(notifier.clone());
    let status = notifier.enabled().then(|| tokio::spawn(report_status(running.master.clone(), notifier.clone())));
    crate::process::wait_for_shutdown_signal().await;
    tracing::info!("shutting down");
    notifier.stopping();
    for task in [watchdog, status].into_iter().flatten() {
        task.abort();
    }
    running.shutdown().await;
    Ok(())
}

/// Keeps the unit's status line (`systemctl status medos-master`) on the master's Raft role.
async fn report_status(
    master: std::sync::Arc<crate::master::Master>,
    notifier: std::sync::Arc<crate::systemd::Notifier>,
) {
    let mut metrics = master.raft.metrics();
    let mut last = String::new();
    loop {
        let line = {
            let m = metrics.borrow();
            let leader =
                m.current_leader.and_then(|id| m.membership_config.membership().get_node(&id).map(|n| n.name.clone()));
            let voters = m.membership_config.membership().voter_ids().count();
            match leader {
                Some(_) if m.current_leader == Some(master.id) => {
                    format!("leader of {voters} masters (term {}); serving {}", m.current_term, master.advertise)
                }
                Some(name_of_leader) => format!(
                    "follower of {name_of_leader} ({voters} masters, term {}); serving {}",
                    m.current_term, master.advertise
                ),
                None => format!("serving {}; no leader yet", master.advertise),
            }
        };
        if line != last {
            notifier.status(&line);
            last = line;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

pub async fn run(cmd: MasterCommand, json: bool) -> Result<()> {
    let client = Target::resolve()?.client()?;
    match cmd {
        MasterCommand::Add { url } => {
            eprintln!("adding {url}: it joins as a learner, catches up, then becomes a voter…");
            let added = client.add_master(&url).await?;
            if json {
                output::json(&added);
            } else {
                eprintln!("master {} ({}) is now a voting member", added.name, added.api);
            }
        }
        MasterCommand::Remove { name } => {
            let removed = client.remove_master(&name).await?;
            if json {
                output::json(&removed);
            } else {
                eprintln!("master {} removed; stop its process and delete its data dir", removed.name);
            }
        }
        MasterCommand::List => {
            let status = client.cluster_status().await?;
            if json {
                output::json(&status.members);
            } else {
                let rows = status
                    .members
                    .iter()
                    .map(|m| vec![m.name.clone(), m.role.clone(), m.api.clone(), m.id.to_string()])
                    .collect();
                output::table(&["name", "role", "api", "id"], rows);
            }
        }
    }
    Ok(())
}
