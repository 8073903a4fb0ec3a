//! `medos installer …`: installing a cluster on bare hosts from `genconf/config.yaml`.
//!
//! Every subcommand works on one genconf directory (`--genconf-dir`, default `genconf`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::output;
use crate::installer::deploy::{self, SshOverrides};
use crate::installer::{genconf, preflight};

#[derive(Debug, Args)]
pub struct InstallerArgs {
    /// The directory holding config.yaml (and optionally ip-detect); genconf writes pki/,
    /// secrets/ and serve/ into it.
    #[arg(long, global = true, default_value = "genconf", value_name = "DIR")]
    pub genconf_dir: PathBuf,
    /// An ssh config file for the remote commands (`ssh -F FILE`) instead of ~/.ssh/config.
    #[arg(long, global = true, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// The known_hosts file for the remote commands (default: ssh's own).
    #[arg(long, global = true, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Refuse hosts whose key is not in known_hosts yet (default: add new hosts' keys;
    /// a changed key is always refused).
    #[arg(long, global = true)]
    pub strict_host_keys: bool,
    #[command(subcommand)]
    pub command: InstallerCommand,
}

#[derive(Debug, Subcommand)]
pub enum InstallerCommand {
    /// Validate config.yaml and generate the CA, every node's certificate, secrets, per-node
    /// configs and serve/ (binary, configs, units, install.sh, SHA256SUMS). A rerun keeps the
    /// CA and secrets.
    Genconf {
        /// Start over: a new CA, new certificates and new secrets (a running cluster will no
        /// longer accept its nodes).
        #[arg(long)]
        force: bool,
    },
    /// Check every host before a deploy (OS, kernel, systemd, cgroups, overlayfs, free ports,
    /// disk, memory, hostname, reachability, clock skew); each failure says how to fix it.
    Preflight,
    /// Copy serve/ to every host and install: masters first, then (once they have a leader
    /// and all are in the Raft group) the agents. A rerun changes nothing.
    Deploy,
    /// Check the installed cluster: masters in the Raft group, agents active, DNS answering on
    /// every master, a smoke task finishing.
    Postflight {
        /// How long the smoke task may take.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        smoke_timeout: u64,
    },
    /// Roll a new binary over the cluster one host at a time (masters, then agents), keeping
    /// quorum and the agents' tasks; stops at the first host whose health check fails.
    Upgrade {
        /// The new binary; it replaces serve/medos (default: serve/medos as it is).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Stop and remove medos from every host (units, tasks, files, data dirs), then check
    /// that nothing is left.
    Uninstall,
    /// Per host: unit state, version, binary; the cluster's leader and agents.
    Status,
}

pub async fn run(args: InstallerArgs, json: bool) -> Result<()> {
    let overrides = SshOverrides {
        config_file: args.ssh_config.clone(),
        known_hosts: args.known_hosts.clone(),
        strict_host_keys: args.strict_host_keys,
    };
    let load = || deploy::Context::load(&args.genconf_dir, &overrides);
    let mut err = std::io::stderr();
    match args.command {
        InstallerCommand::Genconf { force } => {
            let binary = std::env::current_exe().context("finding the medos executable to ship")?;
            let options =
                genconf::Options { dir: args.genconf_dir, force, binary, now_secs: crate::clock::now_ms() / 1000 };
            let summary = genconf::run(&options)?;
            for warning in &summary.warnings {
                eprintln!("warning: {warning}");
            }
            if json {
                output::json(&summary);
            } else {
                genconf::print_summary(&summary, &mut std::io::stderr())?;
            }
        }
        InstallerCommand::Preflight => {
            let ctx = load()?;
            let report =
                preflight::preflight(&ctx.config.hosts(), &ctx.preflight_settings(), &args.genconf_dir.join("logs"))
                    .await?;
            if json {
                output::json(&report);
            } else {
                println!("{}", report.render());
            }
            if !report.passed() {
                bail!("preflight failed: fix the problems above and rerun `medos installer preflight`");
            }
        }
        InstallerCommand::Deploy => {
            let ctx = load()?;
            let report = deploy::deploy(&ctx, &mut err).await?;
            if json {
                output::json(&report);
            }
        }
        InstallerCommand::Postflight { smoke_timeout } => {
            let ctx = load()?;
            let report = deploy::postflight(&ctx, Duration::from_secs(smoke_timeout)).await?;
            if json {
                output::json(&report);
            } else {
                println!("{}", report.render());
            }
            if !report.passed() {
                bail!("postflight failed: see the checks above (and genconf/logs/, `medos installer status`)");
            }
        }
        InstallerCommand::Upgrade { binary } => {
            let ctx = load()?;
            let done = deploy::upgrade(&ctx, binary.as_deref(), &mut err).await?;
            if json {
                output::json(&done);
            }
        }
        InstallerCommand::Uninstall => {
            let ctx = load()?;
            let report = deploy::uninstall(&ctx, &mut err).await?;
            if json {
                output::json(&report);
            }
        }
        InstallerCommand::Status => {
            let ctx = load()?;
            let report = deploy::status(&ctx).await?;
            if json {
                output::json(&report);
            } else {
                println!("{}", report.render());
            }
        }
    }
    Ok(())
}
