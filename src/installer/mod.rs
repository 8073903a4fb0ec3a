//! `medos installer`: installing a cluster on bare hosts over SSH.
//!
//! - [`ssh`]: commands and file copies on many hosts in parallel through the system's OpenSSH
//!   client (the user's ssh config, agent, keys and known_hosts apply), with per-host logs,
//!   progress bars and a summary table;
//! - [`preflight`]: the checks run on every host before a deploy, each failure saying how to
//!   fix it;
//! - [`hostsettings`]: the hosts and SSH settings these work on.

pub mod hostsettings;
pub mod preflight;
pub mod ssh;
