//! The `medos` binary: one entry point for master, dev cluster and CLI.

use clap::{CommandFactory, Parser};
use medos::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    // The container runtime re-executes this binary for every stage of every launch (`medos
    // __container-init STAGE …`): route those before clap builds the whole command line, and
    // before any thread starts (the stages set up namespaces).
    if let Some(args) = medos::agent::runtime::init::stage_args(std::env::args_os()) {
        return medos::agent::runtime::init::run(&args);
    }
    // A closed output pipe (`medos … | head`) ends the command quietly, as for other tools.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    if let Command::ContainerInit { args } = &cli.command {
        return medos::agent::runtime::init::run(args);
    }
    let server =
        matches!(&cli.command, Command::Master(m) if m.command.is_none()) || matches!(cli.command, Command::Dev(_));
    medos::process::init_logging(server, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let json = cli.json;
    let result = match cli.command {
        Command::Master(args) => match args.command {
            None => medos::cli::master::serve(args.run).await,
            Some(cmd) => medos::cli::master::run(cmd, json).await,
        },
        Command::Agent(args) => medos::cli::agent::serve(args).await,
        Command::Dev(args) => medos::dev::run(args, json).await,
        Command::Ca(cmd) => medos::cli::ca::run(cmd, json),
        Command::Installer(args) => medos::cli::installer::run(args, json).await,
        Command::Auth(cmd) => medos::cli::auth::run(cmd, json).await,
        Command::Cluster(cmd) => medos::cli::cluster::run(cmd, json).await,
        Command::Kv(cmd) => medos::cli::kv::run(cmd, json).await,
        Command::Image(cmd) => medos::cli::image::run(cmd, json).await,
        Command::Node(cmd) => medos::cli::node::run(cmd, json).await,
        Command::Dns(cmd) => medos::cli::dns::run(cmd, json).await,
        Command::Service(cmd) => medos::cli::service::run(cmd, json).await,
        Command::Package(cmd) => medos::cli::package::run(cmd, json).await,
        Command::Task(cmd) => return medos::cli::task::run(cmd, json).await,
        Command::App(cmd) => return medos::cli::marathon::app::run(cmd, json).await,
        Command::Group(cmd) => return medos::cli::marathon::group::run(cmd, json).await,
        Command::Deployment(cmd) => return medos::cli::marathon::deployment::run(cmd, json).await,
        Command::Queue(args) => return medos::cli::marathon::queue::run(args, json).await,
        Command::Marathon(cmd) => return medos::cli::marathon::run(cmd, json).await,
        Command::ContainerInit { .. } => unreachable!("handled before the runtime starts"),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "medos", &mut std::io::stdout());
            Ok(())
        }
    };
    result.map(|()| std::process::ExitCode::SUCCESS)
}
