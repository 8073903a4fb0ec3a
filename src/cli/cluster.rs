//! `medos cluster setup|list|attach|remove|status`.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::auth::Credentials;
use super::config::{ClusterConfig, Clusters, Target};
use super::output;
use crate::api::client::Client;
use crate::pki;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Add a cluster: fetch and confirm its CA, log in, attach it.
    Setup {
        /// Any master's URL, e.g. https://10.0.0.1:7443.
        url: String,
        /// Name to show for this cluster (default: the cluster id's first part).
        #[arg(long)]
        name: Option<String>,
        /// Expected CA fingerprint (SHA-256); skips the confirmation prompt.
        #[arg(long)]
        ca_fingerprint: Option<String>,
        /// Trust the CA without asking (only on networks you trust).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        credentials: Credentials,
    },
    /// List configured clusters.
    List,
    /// Make a configured cluster the one commands use.
    Attach { name: String },
    /// Forget a configured cluster.
    Remove { name: String },
    /// Show the masters, the leader and Raft progress.
    Status,
}

pub async fn run(cmd: ClusterCommand, json: bool) -> Result<()> {
    match cmd {
        ClusterCommand::Setup { url, name, ca_fingerprint, yes, credentials } => {
            setup(&url, name, ca_fingerprint, yes, &credentials, json).await
        }
        ClusterCommand::List => {
            let clusters = Clusters::open()?.list()?;
            if json {
                let list: Vec<_> = clusters
                    .iter()
                    .map(|e| serde_json::json!({"name": e.config.name, "cluster_id": e.config.cluster_id, "urls": e.config.urls, "attached": e.attached}))
                    .collect();
                output::json(&list);
            } else {
                let rows = clusters
                    .iter()
                    .map(|e| {
                        let name = if e.attached { format!("{}*", e.config.name) } else { e.config.name.clone() };
                        vec![name, e.config.cluster_id.clone(), e.config.urls.first().cloned().unwrap_or_default()]
                    })
                    .collect();
                output::table(&["name", "cluster id", "url"], rows);
            }
            Ok(())
        }
        ClusterCommand::Attach { name } => {
            Clusters::open()?.attach(&name)?;
            eprintln!("attached {name}");
            Ok(())
        }
        ClusterCommand::Remove { name } => {
            let removed = Clusters::open()?.remove(&name)?;
            eprintln!("removed {} ({})", removed.name, removed.cluster_id);
            Ok(())
        }
        ClusterCommand::Status => {
            let status = Target::resolve()?.client()?.cluster_status().await?;
            if json {
                output::json(&status);
                return Ok(());
            }
            println!(
                "cluster {}  term {}  answered by {}",
                status.cluster_id.as_deref().unwrap_or("(initialising)"),
                status.term,
                status.served_by
            );
            let rows = status
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.role.clone(),
                        m.api.clone(),
                        m.matched_index.map_or("-".into(), |i| i.to_string()),
                    ]
                })
                .collect();
            output::table(&["name", "role", "api", "matched"], rows);
            if status.leader.is_none() {
                eprintln!("warning: no leader; a majority of masters must be running and reachable");
            }
            Ok(())
        }
    }
}

async fn setup(
    url: &str,
    name: Option<String>,
    expected: Option<String>,
    yes: bool,
    credentials: &Credentials,
    json: bool,
) -> Result<()> {
    let url = url.trim_end_matches('/').to_string();
    if !url.starts_with("https://") {
        bail!("{url:?}: the URL must start with https://");
    }
    pki::install_crypto_provider();
    // Fetch the CA over an unverified connection, then verify everything against it.
    let probe = Client::with_tls(vec![url.clone()], pki::tls::trust_on_first_use_config(), None)?;
    let resp = probe.send(reqwest::Method::GET, "/ca.crt", None, false).await?;
    if !resp.status().is_success() {
        bail!("{url} did not serve its CA certificate ({}); is it a medos master?", resp.status());
    }
    let ca_pem = resp.bytes().await.context("downloading the CA")?.to_vec();
    let ca_der = pki::tls::certs_from_pem(&ca_pem, std::path::Path::new("ca.crt"))?;
    let fingerprint = pki::fingerprint(&ca_der[0]);
    match expected {
        Some(expected) if pki::normalize_fingerprint(&expected) == fingerprint => {}
        Some(expected) => bail!("the cluster's CA fingerprint is {fingerprint}, not {expected}; refusing to trust it"),
        None if yes => {}
        None => {
            eprintln!("The cluster's CA certificate has the SHA-256 fingerprint\n  {fingerprint}");
            if !std::io::stdin().is_terminal() {
                bail!(
                    "cannot confirm the fingerprint without a terminal; pass --ca-fingerprint {fingerprint} (after checking it) or --yes"
                );
            }
            eprint!("Trust it? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                bail!("not trusted; nothing was saved");
            }
        }
    }
    let mut client = Client::new(vec![url.clone()], &ca_pem, None)?;
    let metadata = client.metadata().await?;
    let cluster_id = metadata["CLUSTER_ID"].as_str().context("the master's /metadata has no CLUSTER_ID")?.to_string();
    let (username, password) = credentials.resolve(None)?;
    let token = client.login(&username, &password).await?;
    client.set_token(Some(token.clone()));
    let status = client.cluster_status().await?;
    let mut urls = vec![url.clone()];
    urls.extend(status.members.iter().map(|m| m.api.clone()).filter(|u| *u != url));
    let name = name.unwrap_or_else(|| cluster_id.split('-').next().unwrap_or(&cluster_id).to_string());
    let config = ClusterConfig {
        name: name.clone(),
        cluster_id: cluster_id.clone(),
        urls,
        ca_fingerprint: fingerprint,
        username: Some(username),
        token: Some(token),
    };
    Clusters::open()?.add(config, &ca_pem)?;
    if json {
        output::json(&serde_json::json!({"name": name, "cluster_id": cluster_id}));
    } else {
        eprintln!("cluster {name} ({cluster_id}) is set up and attached");
    }
    Ok(())
}
