//! `medos kv get|put|del|list|cas`.

use std::io::Read;

use anyhow::{Result, bail};
use clap::Subcommand;

use super::config::Target;
use super::output;
use crate::api::client::ClientError;

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print a key's raw value.
    Get {
        key: String,
        /// Read from the answering master without confirming with the leader (may be stale).
        #[arg(long)]
        stale: bool,
    },
    /// Write a key; exits 0 once the write is committed. VALUE `-` reads standard input.
    Put { key: String, value: String },
    /// Delete a key (or every key under a prefix with --recurse).
    #[command(alias = "delete", alias = "rm")]
    Del {
        key: String,
        /// Delete only if the key's revision is this.
        #[arg(long)]
        cas: Option<u64>,
        #[arg(long)]
        recurse: bool,
    },
    /// List keys under a prefix.
    #[command(alias = "ls")]
    List {
        #[arg(default_value = "")]
        prefix: String,
        #[arg(long)]
        stale: bool,
    },
    /// Write a key only if its revision is REVISION (0: only if it does not exist).
    Cas { key: String, revision: u64, value: String },
}

fn read_value(value: &str) -> Result<Vec<u8>> {
    if value == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        return Ok(buf);
    }
    Ok(value.as_bytes().to_vec())
}

pub async fn run(cmd: KvCommand, json: bool) -> Result<()> {
    let client = Target::resolve()?.client()?;
    match cmd {
        KvCommand::Get { key, stale } => match client.kv_get(&key, stale).await? {
            Some(item) if json => output::json(&item),
            Some(item) => {
                use std::io::Write;
                std::io::stdout().write_all(&item.value)?;
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !item.value.ends_with(b"\n") {
                    println!();
                }
            }
            None => bail!("key {key:?} not found"),
        },
        KvCommand::Put { key, value } => {
            let r = client.kv_put(&key, &read_value(&value)?, None).await?;
            if json {
                output::json(&r);
            }
        }
        KvCommand::Cas { key, revision, value } => {
            match client.kv_put(&key, &read_value(&value)?, Some(revision)).await {
                Ok(r) if json => output::json(&r),
                Ok(_) => {}
                Err(ClientError::Api { status: 409, body }) => {
                    bail!(
                        "compare-and-swap failed: {key:?} is at revision {}, not {revision}",
                        body.current_revision.unwrap_or(0)
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
        KvCommand::Del { key, cas, recurse } => {
            let r = client.kv_delete(&key, cas, recurse).await?;
            if json {
                output::json(&r);
            } else if r.deleted == 0 {
                eprintln!("nothing deleted: {key:?} does not exist");
            }
        }
        KvCommand::List { prefix, stale } => {
            let items = client.kv_list(&prefix, stale).await?;
            if json {
                output::json(&items);
            } else {
                let rows = items
                    .iter()
                    .map(|i| {
                        let v = String::from_utf8_lossy(&i.value);
                        let shown: String = v.chars().take(40).collect();
                        vec![i.key.clone(), i.mod_revision.to_string(), i.value.len().to_string(), shown]
                    })
                    .collect();
                output::table(&["key", "revision", "bytes", "value"], rows);
            }
        }
    }
    Ok(())
}
