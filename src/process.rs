//! Process-level helpers shared by long-running commands: signals and logging.

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Sets up `tracing`: quiet by default (`warn`; `info` for servers), `MEDOS_LOG` or `-v`
/// for more.
pub fn init_logging(server: bool, verbose: u8) {
    let default = match (server, verbose) {
        (_, v) if v >= 2 => "debug",
        (true, _) | (false, 1) => "medos=info,openraft=warn,warn",
        (false, _) => "warn",
    };
    let filter = std::env::var("MEDOS_LOG").unwrap_or_else(|_| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
