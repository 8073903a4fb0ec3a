//! `medos ca init|issue|fingerprint`: the cluster CA for real installs (`medos dev` and the
//! installer do this automatically).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::output;
use crate::pki::{self, Ca, Role};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new cluster CA (ca.crt, ca.key) in DIR.
    Init {
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        #[arg(long, default_value = "medos")]
        cluster_name: String,
    },
    /// Issue a node certificate signed by the CA.
    Issue {
        /// master or agent.
        #[arg(long)]
        role: Role,
        /// The node's name (becomes the certificate's CN).
        #[arg(long)]
        name: String,
        /// DNS names and IP addresses the node is reached at (repeat).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Directory holding ca.crt and ca.key.
        #[arg(long, default_value = "pki")]
        ca_dir: PathBuf,
        /// Where to write NAME.crt and NAME.key (default: the CA dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the CA's SHA-256 fingerprint (what `medos cluster setup` asks you to confirm).
    Fingerprint {
        #[arg(long, default_value = "pki")]
        ca_dir: PathBuf,
    },
}

pub fn run(cmd: CaCommand, json: bool) -> Result<()> {
    match cmd {
        CaCommand::Init { dir, cluster_name } => {
            let ca = Ca::init(&dir, &cluster_name)?;
            let der = pki::tls::certs_from_pem(ca.cert_pem.as_bytes(), &dir)?;
            let fp = pki::fingerprint(&der[0]);
            if json {
                output::json(&serde_json::json!({"dir": dir, "fingerprint": fp}));
            } else {
                eprintln!("created the cluster CA in {} (keep ca.key secret)\nfingerprint {fp}", dir.display());
            }
        }
        CaCommand::Issue { role, name, hosts, ca_dir, out } => {
            let ca = Ca::load(&ca_dir)?;
            let issued = ca.issue(role, &name, &hosts, out.as_deref().unwrap_or(&ca_dir))?;
            if json {
                output::json(&serde_json::json!({"cert": issued.cert, "key": issued.key}));
            } else {
                eprintln!("issued {} and {}", issued.cert.display(), issued.key.display());
            }
        }
        CaCommand::Fingerprint { ca_dir } => {
            let path = ca_dir.join(pki::ca::CA_CERT_FILE);
            let certs = pki::tls::load_certs(&path)?;
            println!("{}", pki::fingerprint(&certs[0]));
        }
    }
    Ok(())
}
