//! `medos installer …`: installing a cluster on bare hosts from `genconf/config.yaml`.
//!
//! Every subcommand works on one genconf directory (`--genconf-dir`, default `genconf`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::output;
use crate::installer::genconf;

#[derive(Debug, Args)]
pub struct InstallerArgs {
    /// The directory holding config.yaml (and optionally ip-detect); genconf writes pki/,
    /// secrets/ and serve/ into it.
    #[arg(long, global = true, default_value = "genconf", value_name = "DIR")]
    pub genconf_dir: PathBuf,
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
}

pub fn run(args: InstallerArgs, json: bool) -> Result<()> {
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
    }
    Ok(())
}
