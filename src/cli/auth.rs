//! `medos auth login|token|logout|user …`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::config::{Clusters, Target};
use super::output;

#[derive(Debug, Args, Clone, Default)]
pub struct Credentials {
    /// User id (prompted for when missing).
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from this environment variable instead of prompting.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Read the password from this file instead of prompting.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
}

impl Credentials {
    /// Resolves the username and password, prompting on a terminal when needed.
    pub fn resolve(&self, default_user: Option<&str>) -> Result<(String, String)> {
        let username = match (&self.username, default_user) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => u.to_string(),
            (None, None) => {
                eprint!("username: ");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim().to_string()
            }
        };
        let password = if let Some(var) = &self.password_env {
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?
        } else if let Some(file) = &self.password_file {
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            rpassword::prompt_password(format!("{username}'s password: ")).context("reading the password")?
        };
        if username.is_empty() {
            bail!("the username is empty");
        }
        Ok((username, password))
    }
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in to the attached cluster and store the token.
    Login(Credentials),
    /// Print the current token (for scripts: `curl -H "Authorization: token=$(medos auth token)"`).
    Token,
    /// Forget the stored token.
    Logout,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    List,
    /// Create a user or set its password.
    Add {
        uid: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Read the password from this environment variable instead of prompting.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    #[command(alias = "rm")]
    Remove {
        uid: String,
    },
}

pub async fn run(cmd: AuthCommand, json: bool) -> Result<()> {
    match cmd {
        AuthCommand::Login(creds) => {
            let target = Target::resolve()?;
            let client = target.client()?;
            let Some(mut entry) = target.entry else {
                bail!("no cluster is attached; run `medos cluster setup URL` first")
            };
            let default_user = entry.config.username.clone();
            let (username, password) = creds.resolve(default_user.as_deref())?;
            let token = client.login(&username, &password).await?;
            entry.config.username = Some(username.clone());
            entry.config.token = Some(token);
            entry.save()?;
            if json {
                output::json(&serde_json::json!({ "cluster": entry.config.name, "username": username }));
            } else {
                eprintln!("logged in to {} as {username}", entry.config.name);
            }
        }
        AuthCommand::Token => {
            let target = Target::resolve()?;
            let Some(token) = target.token else { bail!("not logged in; run `medos auth login`") };
            println!("{token}");
        }
        AuthCommand::Logout => {
            let Some(mut entry) = Clusters::open()?.attached()? else { bail!("no cluster is attached") };
            entry.config.token = None;
            entry.save()?;
            eprintln!("logged out of {}", entry.config.name);
        }
        AuthCommand::User(user) => {
            let client = Target::resolve()?.client()?;
            match user {
                UserCommand::List => {
                    let users = client.users().await?;
                    if json {
                        output::json(&users.array);
                    } else {
                        output::table(
                            &["uid", "description"],
                            users.array.into_iter().map(|u| vec![u.uid, u.description]).collect(),
                        );
                    }
                }
                UserCommand::Add { uid, description, password_env } => {
                    let creds = Credentials { username: Some(uid.clone()), password_env, password_file: None };
                    let (_, password) = creds.resolve(None)?;
                    client.put_user(&uid, &password, &description).await?;
                    eprintln!("user {uid} saved");
                }
                UserCommand::Remove { uid } => {
                    client.delete_user(&uid).await?;
                    eprintln!("user {uid} removed");
                }
            }
        }
    }
    Ok(())
}
