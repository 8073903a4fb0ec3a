//! medos: a datacenter operating system in one binary (master, agent, installer, CLI).
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map.

pub mod agent;
pub mod api;
pub mod atomic_file;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod core;
pub mod dev;
pub mod dns;
pub mod image;
pub mod master;
pub mod packages;
pub mod pki;
pub mod process;
