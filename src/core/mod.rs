//! The pure core: medos's domain state and the replicated state machine.
//!
//! **Architecture invariant:** nothing in this module does I/O, reads a clock, draws
//! randomness, or depends on tokio or openraft. Time, ids and secrets are chosen by the
//! adapters *before* a [`Command`] is proposed and travel inside it, so every master applies
//! the same bytes to the same result. `tests/core_purity.rs` enforces this mechanically.

pub mod agents;
pub mod allocator;
pub mod command;
pub mod dns;
pub mod images;
pub mod kv;
pub mod marathon;
pub mod packages;
pub mod placement;
pub mod resources;
pub mod service;
pub mod state;
pub mod tasks;
pub mod users;
pub mod vips;

pub use agents::{Agent, AgentMode, AgentRegistration, AgentStatus};
pub use command::{Command, Response};
pub use images::{ImageLayer, ImageRecord};
pub use kv::{KvEntry, KvError};
pub use resources::{PortRange, Resources};
pub use state::{MasterInfo, State};
pub use tasks::{CommandSpec, Task, TaskSpec, TaskState, TaskStatus};
pub use users::User;

/// Serialises `Vec<u8>` as standard base64 so binary values survive JSON.
pub mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

#[cfg(test)]
mod lifecycle_tests;
