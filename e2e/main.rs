//! Process end-to-end tests (see e2e/README.md): the real `medos` binary, `medos dev`
//! clusters on loopback, kill -9, restarts, membership changes, bad input, a history
//! checker for lost and stale writes, agents running real containers, and simulated
//! bare-metal hosts (systemd-nspawn machines with real sshd) for the installer.

mod agents;
mod bad_input;
mod cli;
mod dns;
mod done_when;
mod durability;
mod failover;
mod genconf_master;
mod history;
mod hosts;
mod hostsim;
mod images;
mod installer;
mod marathon;
mod membership;
mod packages;
mod packages_bundle;
mod preflight;
mod support;
mod task_io;
mod workload;
