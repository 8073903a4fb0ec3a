//! The `medos` command line: clap definitions and one file per noun.
//!
//! **Architecture invariant:** CLI commands talk to a cluster only through
//! [`crate::api::client::Client`]; they never open a data dir or speak Raft.

pub mod agent;
pub mod auth;
pub mod ca;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod image;
pub mod installer;
pub mod kv;
pub mod marathon;
pub mod master;
pub mod node;
pub mod output;
pub mod package;
pub mod package_bundle;
pub mod service;
pub mod task;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "medos",
    version,
    about = "medos: a datacenter operating system in one binary",
    propagate_version = true
)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a master, or manage the masters of a running cluster.
    Master(master::MasterArgs),
    /// Run an agent: registers this host with the masters and runs tasks.
    Agent(agent::AgentArgs),
    /// Run a whole local cluster (masters and agents as processes on loopback).
    Dev(DevArgs),
    /// Create the cluster CA and issue node certificates.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Install a cluster on bare hosts from genconf/config.yaml (genconf).
    Installer(installer::InstallerArgs),
    /// Log in, print the token, manage users.
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Configure which cluster the CLI talks to, and show its status.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Agents and masters: list, show, drain, deactivate, reactivate.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Look cluster names up (Mesos-DNS's answers): A, AAAA, SRV.
    #[command(subcommand)]
    Dns(dns::DnsCommand),
    /// Packages from Universe repositories: search, describe, install, uninstall, list, repos.
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// Marathon apps with their DNS names, SRV names and /service paths.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Run, list, inspect and kill tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Load container images into the cluster (no registry needed), list and remove them.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Read and write the cluster's key-value store.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Marathon apps: add, list, show, update, scale, restart, remove, kill, versions, rollback.
    #[command(subcommand)]
    App(marathon::app::AppCommand),
    /// Marathon groups of apps: add, list, show, update, scale, remove.
    #[command(subcommand)]
    Group(marathon::group::GroupCommand),
    /// Marathon deployments in progress: list, watch, rollback, stop.
    #[command(subcommand)]
    Deployment(marathon::deployment::DeploymentCommand),
    /// Instances waiting to be launched, and why (which agents declined, for what).
    Queue(marathon::queue::QueueArgs),
    /// The DC/OS spellings: `medos marathon app add FILE`, `… deployment list`, `… task list`.
    #[command(subcommand)]
    Marathon(marathon::MarathonCommand),
    /// Internal: set up and run one container (started by the agent, never by hand).
    #[command(name = "__container-init", hide = true)]
    ContainerInit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a shell completion script.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of masters (1, 3 or 5 make sense).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub masters: u8,
    /// Number of agents (each with its own work dir and port range). Agents need root for
    /// namespaces and cgroups: the default is 1 as root and 0 otherwise.
    #[arg(long)]
    pub agents: Option<u8>,
    /// Where the cluster keeps its state; rerunning on the same dir keeps it.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Do not write the CLI's cluster config (for tests running several dev clusters).
    #[arg(long)]
    pub no_attach: bool,
    /// Upstream DNS server for names outside the cluster domain, `IP` or `IP:PORT`
    /// (repeatable). Default: the nameservers of the host's /etc/resolv.conf.
    #[arg(long = "dns-resolver", value_name = "IP[:PORT]")]
    pub dns_resolvers: Vec<String>,
}

/// A fresh, not yet created directory under the system's temp dir for one command's scratch
/// files (`medos-<what>-<random>`); the caller removes it.
pub fn scratch_dir(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("medos-{what}-{}", hex::encode(rand::random::<[u8; 8]>())))
}
