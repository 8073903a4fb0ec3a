//! The master: Raft node, storage, networking and the leader's duties.

pub mod agents;
pub mod allocator;
pub mod blob_sync;
pub mod config;
pub mod engine;
pub mod marathon;
pub mod network;
pub mod node;
pub mod pace;
pub mod store;
pub mod types;

pub use config::{MasterConfig, MasterOverrides};
pub use node::{Master, MasterError, ProposeError, RunningMaster, start};
