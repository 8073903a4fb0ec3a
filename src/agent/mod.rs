//! The agent: runs tasks on a worker host.

pub mod runtime;
