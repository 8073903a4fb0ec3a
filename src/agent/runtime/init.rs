//! `medos __container-init`: the process that sets up a container's namespaces and runs it.

/// Entry point of the hidden `__container-init` subcommand; runs before any async runtime.
pub fn run(_args: &[String]) -> std::process::ExitCode {
    eprintln!("error: the container runtime is not built yet");
    std::process::ExitCode::FAILURE
}
