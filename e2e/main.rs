//! Process end-to-end tests (see e2e/README.md): the real `medos` binary, `medos dev`
//! clusters on loopback, kill -9, restarts, membership changes, bad input, a history
//! checker for lost and stale writes, and agents running real containers.

mod agents;
mod bad_input;
mod cli;
mod dns;
mod done_when;
mod durability;
mod failover;
mod history;
mod images;
mod marathon;
mod membership;
mod packages;
mod support;
mod task_io;
mod workload;
