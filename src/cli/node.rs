//! `medos node list|show|drain|deactivate|reactivate|dns` (DC/OS's `dcos node`).

use anyhow::Result;
use clap::Subcommand;

use super::config::Target;
use super::output;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Masters and agents with their state and resources.
    #[command(alias = "ls")]
    List,
    /// One agent in detail (by id or hostname).
    Show { id: String },
    /// Stop placing tasks on the agent and kill its tasks (they are replaced elsewhere).
    Drain { id: String },
    /// Stop placing new tasks on the agent; its tasks keep running.
    Deactivate { id: String },
    /// Let the agent take new tasks again.
    Reactivate { id: String },
    /// Look a cluster name up (DC/OS's `dcos node dns`; the same as `medos dns lookup`).
    Dns(super::dns::LookupArgs),
    /// Join tokens: a new agent with one obtains its certificate from the masters.
    #[command(subcommand, name = "join-token")]
    JoinToken(JoinTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum JoinTokenCommand {
    /// Create a join token (printed alone on stdout); give it to `medos agent --join-token`.
    /// Anyone holding it can join agents until it expires.
    Create {
        /// How long the token is valid: 30m, 24h, 7d, … (1m to 365d).
        #[arg(long, default_value = "24h", value_parser = crate::pki::join::parse_ttl)]
        ttl: u64,
        /// Agents joining with this token register as public agents.
        #[arg(long)]
        public: bool,
    },
}

fn figure(used: f64, total: f64) -> String {
    format!("{used:.1}/{total:.1}")
}

pub async fn run(cmd: NodeCommand, json: bool) -> Result<()> {
    if let NodeCommand::Dns(args) = &cmd {
        super::dns::check(args)?;
    }
    let client = Target::resolve()?.client()?;
    match cmd {
        NodeCommand::List => {
            let agents = client.agents().await?;
            let status = client.cluster_status().await?;
            if json {
                output::json(&serde_json::json!({ "masters": status.members, "agents": agents }));
                return Ok(());
            }
            let mut rows: Vec<Vec<String>> = status
                .members
                .iter()
                .map(|m| {
                    let host = m.api.trim_start_matches("https://").rsplit_once(':').map_or("", |(h, _)| h).to_string();
                    let kind = if m.role == "leader" { "master (leader)" } else { "master" };
                    vec![
                        m.name.clone(),
                        host,
                        m.id.to_string(),
                        kind.into(),
                        m.role.to_uppercase(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]
                })
                .collect();
            rows.extend(agents.iter().map(|a| {
                let kind = if a.agent.public { "agent (public)" } else { "agent" };
                let mut status = format!("{:?}", a.agent.status).to_uppercase();
                if a.agent.mode != medos_mode_normal() {
                    status = format!("{status} ({:?})", a.agent.mode).to_uppercase();
                }
                vec![
                    a.agent.hostname.clone(),
                    a.agent.address.clone(),
                    a.agent.id.clone(),
                    kind.into(),
                    status,
                    a.active_tasks.to_string(),
                    figure(a.used.cpus, a.agent.total.cpus),
                    figure(a.used.mem, a.agent.total.mem),
                ]
            }));
            output::table(&["hostname", "ip", "id", "type", "status", "tasks", "cpus", "mem"], rows);
        }
        NodeCommand::Show { id } => {
            let a = client.agent(&id).await?;
            if json {
                output::json(&a);
                return Ok(());
            }
            println!("id:         {}", a.agent.id);
            println!("hostname:   {}", a.agent.hostname);
            println!("address:    {}", a.agent.address);
            println!("status:     {:?} (mode {:?})", a.agent.status, a.agent.mode);
            println!("public:     {}", a.agent.public);
            println!("cpus:       {} used of {}", a.used.cpus, a.agent.total.cpus);
            println!("mem (MiB):  {} used of {}", a.used.mem, a.agent.total.mem);
            println!("disk (MiB): {} used of {}", a.used.disk, a.agent.total.disk);
            let ports: Vec<String> = a.agent.total.ports.iter().map(|r| format!("{}-{}", r.begin, r.end)).collect();
            println!("ports:      {}", ports.join(", "));
            println!("tasks:      {}", a.active_tasks);
            for (k, v) in &a.agent.attributes {
                println!("attribute:  {k}={v}");
            }
        }
        NodeCommand::Dns(args) => super::dns::lookup(&client, &args, json).await?,
        NodeCommand::Drain { id } => set_mode(&client, &id, "drain", json).await?,
        NodeCommand::Deactivate { id } => set_mode(&client, &id, "deactivate", json).await?,
        NodeCommand::Reactivate { id } => set_mode(&client, &id, "reactivate", json).await?,
        NodeCommand::JoinToken(JoinTokenCommand::Create { ttl, public }) => {
            let request = crate::api::join::CreateJoinToken { ttl_seconds: ttl, public };
            let created = client.create_join_token(&request).await?;
            if json {
                output::json(&created);
                return Ok(());
            }
            let kind = if created.public { "public agents" } else { "agents" };
            eprintln!(
                "join token {} for {kind}, valid for {} (keep it secret; it pins CA {})",
                created.id,
                crate::pki::join::human_duration(ttl),
                created.ca_fingerprint
            );
            if !created.served_by_signs {
                eprintln!(
                    "note: master {} has no ca_key, so it cannot sign; agents join only through masters with ca_key set",
                    created.served_by
                );
            }
            eprintln!("on the new host: medos agent --join-token TOKEN --master URL --work-dir DIR");
            println!("{}", created.token);
        }
    }
    Ok(())
}

fn medos_mode_normal() -> crate::core::AgentMode {
    crate::core::AgentMode::Normal
}

async fn set_mode(client: &crate::api::client::Client, id: &str, mode: &str, json: bool) -> Result<()> {
    let a = client.set_agent_mode(id, mode).await?;
    if json {
        output::json(&a);
    } else {
        eprintln!("agent {} ({}) is now {:?}", a.agent.hostname, a.agent.id, a.agent.mode);
    }
    Ok(())
}
