//! The Raft type configuration: commands and responses from the core, nodes named by their
//! API URL.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::core::{Command, Response};

/// A master as Raft addresses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterNode {
    pub name: String,
    /// HTTPS base URL, e.g. `https://10.0.0.1:7443`.
    pub api: String,
}

impl fmt::Display for MasterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.api)
    }
}

pub type NodeId = u64;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = MasterNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MasterNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MasterNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
