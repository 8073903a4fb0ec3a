//! `medos package`: the package manager (DC/OS's `dcos package`), through Cosmos's API on the
//! masters: search, describe, list, list-versions, install, uninstall, render, and the
//! repositories (`repo add NAME PATH|URL [--index N]`, `repo list`, `repo remove NAME`).
//!
//! A repository given as a path (an index JSON file or a Universe directory) is read and
//! checked here and uploaded, so the cluster holds it; a URL is fetched by the masters.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::config::Target;
use super::output;
use crate::api::client::{Client, ClientError};
use crate::core::packages::state::is_url;

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Packages in the configured repositories whose name, description or tags match QUERY
    /// (`*` is a wildcard); all without one.
    Search { query: Option<String> },
    /// A package's details (newest release unless --package-version), its options schema
    /// (--config), its Marathon template (--app), or the app it renders to (--render).
    Describe(DescribeArgs),
    /// Installed packages (Marathon apps labelled DCOS_PACKAGE_NAME).
    #[command(alias = "ls")]
    List {
        /// Only this package.
        name: Option<String>,
        /// Only the package installed as this app.
        #[arg(long)]
        app_id: Option<String>,
    },
    /// Every version of a package with its release number.
    ListVersions { name: String },
    /// Installs a package as a Marathon app, with options from a JSON file.
    Install(InstallArgs),
    /// Removes an installed package's app (one, --app-id, or --all of them).
    Uninstall(UninstallArgs),
    /// Prints the Marathon app a package installs as, without installing it.
    Render {
        name: String,
        #[arg(long)]
        package_version: Option<String>,
        /// A JSON file with the package's options.
        #[arg(long)]
        options: Option<PathBuf>,
        #[arg(long)]
        app_id: Option<String>,
    },
    /// Package repositories: add, list, remove (in priority order: the first wins).
    #[command(subcommand, alias = "repository")]
    Repo(RepoCommand),
    /// Writes one file holding a package and the images it references, for clusters without
    /// a network (no cluster needed).
    Bundle(super::package_bundle::BundleArgs),
    /// Adds a bundle to the cluster: its images to the image store, its package to the
    /// cluster's `local` repository (everything is checked before anything is uploaded).
    Add(super::package_bundle::AddArgs),
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    pub name: String,
    #[arg(long)]
    pub package_version: Option<String>,
    /// Print the options' JSON Schema (config.json).
    #[arg(long)]
    pub config: bool,
    /// Print the Marathon template (marathon.json.mustache).
    #[arg(long)]
    pub app: bool,
    /// Print the Marathon app rendered with --options.
    #[arg(long)]
    pub render: bool,
    /// With --render: a JSON file with the package's options.
    #[arg(long, requires = "render")]
    pub options: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    pub name: String,
    #[arg(long)]
    pub package_version: Option<String>,
    /// A JSON file with the package's options (checked against its config.json).
    #[arg(long)]
    pub options: Option<PathBuf>,
    /// The app id to install as (to run several instances of one package).
    #[arg(long)]
    pub app_id: Option<String>,
    /// Do not ask before installing.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    pub name: String,
    /// The app to remove when the package is installed more than once.
    #[arg(long)]
    pub app_id: Option<String>,
    /// Remove every app of the package.
    #[arg(long)]
    pub all: bool,
    /// Do not ask before removing.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Adds a repository: an http(s) URL the masters fetch, or a path on this machine (an
    /// index JSON file or a Universe directory) uploaded for the cluster to hold.
    Add {
        name: String,
        #[arg(value_name = "PATH|URL")]
        source: String,
        /// Position in the list (0 = first, searched first); last without.
        #[arg(long)]
        index: Option<usize>,
    },
    /// The repositories in priority order.
    #[command(alias = "ls")]
    List,
    /// Removes a repository (by name or URI).
    #[command(alias = "rm")]
    Remove { name: String },
}

pub async fn run(cmd: PackageCommand, json: bool) -> Result<()> {
    if let PackageCommand::Bundle(args) = cmd {
        return super::package_bundle::run_bundle(args, json);
    }
    let client = Target::resolve()?.client()?;
    execute(&client, cmd, json).await
}

/// Reads an options file: a JSON object. Errors name the file.
pub fn read_options(path: &Path) -> Result<Map<String, Value>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the options file {}", path.display()))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| anyhow!("options file {}: not valid JSON: {e}", path.display()))?;
    match value {
        Value::Object(map) => Ok(map),
        other => bail!("options file {}: expected a JSON object of options, got {}", path.display(), kind(&other)),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Adds the options file to errors about options (which name the option paths).
fn options_context(e: ClientError, file: Option<&Path>) -> anyhow::Error {
    match (&e, file) {
        (ClientError::Api { body, .. }, Some(file))
            if body.code == "JsonSchemaMismatch" || body.code == "OptionsNotAllowed" =>
        {
            anyhow!("options file {}: {}", file.display(), body.message)
        }
        _ => e.into(),
    }
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("cannot ask without a terminal: pass --yes to go ahead");
    }
    print!("{question} [yes/no] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

pub async fn execute(client: &Client, cmd: PackageCommand, json: bool) -> Result<()> {
    match cmd {
        PackageCommand::Search { query } => {
            let results = client.package_search(query.as_deref()).await?;
            if json {
                output::json(&serde_json::json!({ "packages": results }));
                return Ok(());
            }
            let rows = results
                .into_iter()
                .map(|r| {
                    vec![
                        r.name,
                        r.current_version,
                        if r.selected.unwrap_or(false) { "yes".into() } else { "no".into() },
                        if r.framework { "yes".into() } else { "no".into() },
                        r.description,
                    ]
                })
                .collect();
            output::table(&["name", "version", "selected", "framework", "description"], rows);
        }
        PackageCommand::Describe(args) => {
            if args.render {
                let options = args.options.as_deref().map(read_options).transpose()?;
                let app = client
                    .package_render(&args.name, args.package_version.as_deref(), options.as_ref(), None)
                    .await
                    .map_err(|e| options_context(e, args.options.as_deref()))?;
                output::json(&app);
                return Ok(());
            }
            let package = client.package_describe(&args.name, args.package_version.as_deref()).await?;
            if args.config {
                output::json(&package.config.clone().map(Value::Object).unwrap_or(Value::Null));
            } else if args.app {
                match package.template() {
                    Some(Ok(template)) => println!("{template}"),
                    Some(Err(_)) => bail!("the Marathon template of {} is not UTF-8 text", package.name),
                    None => bail!("package {} has no Marathon template", package.name),
                }
            } else {
                output::json(&package);
            }
        }
        PackageCommand::List { name, app_id } => {
            let installed = client.package_list(name.as_deref(), app_id.as_deref()).await?;
            if json {
                output::json(&installed);
                return Ok(());
            }
            let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
            let rows = installed
                .into_iter()
                .map(|i| {
                    let d = &i.package_information.package_definition;
                    vec![text(d, "name"), text(d, "version"), i.app_id.clone(), text(d, "description")]
                })
                .collect();
            output::table(&["name", "version", "app", "description"], rows);
        }
        PackageCommand::ListVersions { name } => {
            let versions = client.package_list_versions(&name).await?;
            if json {
                output::json(&versions);
                return Ok(());
            }
            let mut rows: Vec<(u64, String, String)> =
                versions.into_iter().map(|(v, r)| (r.parse().unwrap_or(0), v, r)).collect();
            rows.sort();
            output::table(&["version", "release"], rows.into_iter().map(|(_, v, r)| vec![v, r]).collect());
        }
        PackageCommand::Install(args) => install(client, args, json).await?,
        PackageCommand::Uninstall(args) => uninstall(client, args, json).await?,
        PackageCommand::Render { name, package_version, options, app_id } => {
            let opts = options.as_deref().map(read_options).transpose()?;
            let app = client
                .package_render(&name, package_version.as_deref(), opts.as_ref(), app_id.as_deref())
                .await
                .map_err(|e| options_context(e, options.as_deref()))?;
            output::json(&app);
        }
        PackageCommand::Repo(cmd) => repo(client, cmd, json).await?,
        PackageCommand::Bundle(args) => super::package_bundle::run_bundle(args, json)?,
        PackageCommand::Add(args) => super::package_bundle::run_add(client, args, json).await?,
    }
    Ok(())
}

async fn install(client: &Client, args: InstallArgs, json: bool) -> Result<()> {
    let options = args.options.as_deref().map(read_options).transpose()?;
    // The release described is the one installed (the version is pinned from here on).
    let package = client.package_describe(&args.name, args.package_version.as_deref()).await?;
    if !json && let Some(notes) = &package.pre_install_notes {
        println!("{notes}");
    }
    if !args.yes && !confirm(&format!("Install {} version {}?", package.name, package.version))? {
        bail!("not installed");
    }
    let result = client
        .package_install(&package.name, Some(&package.version), options.as_ref(), args.app_id.as_deref())
        .await
        .map_err(|e| options_context(e, args.options.as_deref()))?;
    if json {
        output::json(&result);
        return Ok(());
    }
    println!(
        "Installed package {} version {} as Marathon app {}",
        result.package_name, result.package_version, result.app_id
    );
    if let Some(notes) = &result.post_install_notes {
        println!("{notes}");
    }
    Ok(())
}

async fn uninstall(client: &Client, args: UninstallArgs, json: bool) -> Result<()> {
    if !args.yes {
        let installed = client.package_list(Some(&args.name), args.app_id.as_deref()).await?;
        let ids: Vec<String> = installed.iter().map(|i| i.app_id.clone()).collect();
        // Nothing installed, or several without --all: the API's answer says what is wrong.
        if !ids.is_empty()
            && (ids.len() == 1 || args.all)
            && !confirm(&format!("Uninstall {} (Marathon app {})?", args.name, ids.join(", ")))?
        {
            bail!("not uninstalled");
        }
    }
    let results = client.package_uninstall(&args.name, args.app_id.as_deref(), args.all).await?;
    if json {
        output::json(&results);
        return Ok(());
    }
    for r in results {
        println!(
            "Uninstalled package {} version {} (removed Marathon app {})",
            r.package_name,
            r.package_version.as_deref().unwrap_or("?"),
            r.app_id
        );
        if let Some(notes) = r.post_uninstall_notes {
            println!("{notes}");
        }
    }
    Ok(())
}

async fn repo(client: &Client, cmd: RepoCommand, json: bool) -> Result<()> {
    let list = match cmd {
        RepoCommand::Add { name, source, index } => {
            if is_url(&source) {
                client.package_repo_add(&name, &source, index).await?
            } else if source.contains("://") {
                bail!("{source}: only http:// and https:// URLs are fetched; give a path for a file or directory")
            } else {
                let path = Path::new(&source);
                let (repo, doc) = crate::packages::local::read_repository(path)?;
                tracing::info!(path = %path.display(), packages = repo.packages.len(), "uploading package repository");
                client.package_repo_upload(&name, &doc, index).await?
            }
        }
        RepoCommand::List => client.package_repo_list().await?,
        RepoCommand::Remove { name } => client.package_repo_remove(&name).await?,
    };
    if json {
        output::json(&serde_json::json!({ "repositories": list }));
        return Ok(());
    }
    let rows = list.into_iter().enumerate().map(|(i, r)| vec![i.to_string(), r.name, r.uri]).collect();
    output::table(&["index", "name", "uri"], rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_files_must_hold_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("opts.json");
        std::fs::write(&file, "[1]").unwrap();
        let e = read_options(&file).unwrap_err().to_string();
        assert!(e.contains("opts.json") && e.contains("a list"), "{e}");
        std::fs::write(&file, "{\"a\": ").unwrap();
        let e = read_options(&file).unwrap_err().to_string();
        assert!(e.contains("opts.json") && e.contains("not valid JSON"), "{e}");
        std::fs::write(&file, "{\"service\": {\"cpus\": 1}}").unwrap();
        assert_eq!(read_options(&file).unwrap()["service"]["cpus"], 1);
        assert!(read_options(&dir.path().join("missing.json")).unwrap_err().to_string().contains("missing.json"));
    }
}
