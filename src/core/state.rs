//! The replicated state and its single mutation path, [`State::apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::{Command, Response};
use super::kv::{self, KvStore, Written};
use super::users::{self, User};

/// A master as the Raft membership knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: u64,
    pub name: String,
    /// HTTPS base URL that serves the API and the Raft RPCs.
    pub api: String,
    /// Voters count toward quorum; learners only replicate.
    pub voter: bool,
}

/// Cluster identity, fixed by the first `InitCluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub cluster_id: String,
    pub created_at_ms: u64,
    pub token_secret: String,
}

/// Everything the masters agree on. Later issues add agents, apps, tasks and packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub identity: Option<ClusterIdentity>,
    /// The latest membership, mirrored from Raft membership entries.
    pub masters: Vec<MasterInfo>,
    pub kv: KvStore,
    pub users: BTreeMap<String, User>,
    /// Index of the last applied log entry (0 before any).
    pub last_applied: u64,
}

impl State {
    pub fn cluster_id(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.cluster_id.as_str())
    }

    /// Applies one committed command at log `index`. Deterministic: the result depends only
    /// on the state, the index and the command.
    pub fn apply(&mut self, index: u64, command: &Command) -> Response {
        self.last_applied = index;
        match command {
            Command::InitCluster { cluster_id, created_at_ms, token_secret, admin } => {
                if let Some(existing) = &self.identity {
                    return Response::AlreadyInitialized { cluster_id: existing.cluster_id.clone() };
                }
                self.identity = Some(ClusterIdentity {
                    cluster_id: cluster_id.clone(),
                    created_at_ms: *created_at_ms,
                    token_secret: token_secret.clone(),
                });
                if let Some(admin) = admin {
                    self.users.insert(admin.uid.clone(), admin.clone());
                }
                Response::ClusterInitialized { cluster_id: cluster_id.clone() }
            }
            Command::KvPut { key, value, cas } => {
                if let Err(e) = kv::validate_key(key).and_then(|()| kv::validate_value(value)) {
                    return Response::Rejected { message: e.to_string() };
                }
                match self.kv.put(key, value.clone(), *cas, index) {
                    Written::Ok => Response::KvWritten { revision: index },
                    Written::CasFailed { current } => Response::CasFailed { current },
                }
            }
            Command::KvDelete { key, cas, recurse } => {
                if !recurse && let Err(e) = kv::validate_key(key) {
                    return Response::Rejected { message: e.to_string() };
                }
                match self.kv.delete(key, *cas, *recurse) {
                    Ok(deleted) => Response::KvDeleted { revision: index, deleted },
                    Err(current) => Response::CasFailed { current },
                }
            }
            Command::UserPut { user } => {
                if let Err(message) = users::validate_uid(&user.uid) {
                    return Response::Rejected { message };
                }
                self.users.insert(user.uid.clone(), user.clone());
                Response::UserWritten { uid: user.uid.clone() }
            }
            Command::UserDelete { uid } => {
                let existed = self.users.remove(uid).is_some();
                Response::UserDeleted { uid: uid.clone(), existed }
            }
        }
    }

    /// Records a membership change (applied from a Raft membership entry at `index`).
    pub fn set_masters(&mut self, index: u64, masters: Vec<MasterInfo>) {
        self.last_applied = index;
        self.masters = masters;
    }

    /// Records a blank entry (a new leader's first entry).
    pub fn note_blank(&mut self, index: u64) {
        self.last_applied = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, cas: Option<u64>) -> Command {
        Command::KvPut { key: key.into(), value: value.as_bytes().to_vec(), cas }
    }

    fn init(id: &str) -> Command {
        Command::InitCluster {
            cluster_id: id.into(),
            created_at_ms: 1,
            token_secret: "c2VjcmV0".into(),
            admin: Some(User { uid: "admin".into(), password_hash: "h".into(), description: String::new() }),
        }
    }

    /// Applies `commands` at indexes 1.. and returns the responses.
    fn check(commands: &[Command]) -> (State, Vec<Response>) {
        let mut s = State::default();
        let responses = commands.iter().enumerate().map(|(i, c)| s.apply(i as u64 + 1, c)).collect();
        (s, responses)
    }

    #[test]
    fn apply_table() {
        let cases: Vec<(Vec<Command>, Response)> = vec![
            (vec![init("c1")], Response::ClusterInitialized { cluster_id: "c1".into() }),
            (vec![init("c1"), init("c2")], Response::AlreadyInitialized { cluster_id: "c1".into() }),
            (vec![put("a", "1", None)], Response::KvWritten { revision: 1 }),
            (vec![put("a", "1", None), put("a", "2", Some(1))], Response::KvWritten { revision: 2 }),
            (vec![put("a", "1", None), put("a", "2", Some(0))], Response::CasFailed { current: 1 }),
            (vec![put("", "1", None)], Response::Rejected { message: "key must not be empty".into() }),
            (
                vec![put("a", "1", None), Command::KvDelete { key: "a".into(), cas: Some(1), recurse: false }],
                Response::KvDeleted { revision: 2, deleted: 1 },
            ),
            (
                vec![Command::UserDelete { uid: "nobody".into() }],
                Response::UserDeleted { uid: "nobody".into(), existed: false },
            ),
        ];
        for (commands, expected) in cases {
            let (_, responses) = check(&commands);
            assert_eq!(responses.last().unwrap(), &expected, "{commands:?}");
        }
    }

    #[test]
    fn init_creates_the_admin_and_keeps_the_first_identity() {
        let (s, _) = check(&[init("c1"), init("c2")]);
        assert_eq!(s.cluster_id(), Some("c1"));
        assert!(s.users.contains_key("admin"));
    }

    #[test]
    fn replicas_applying_the_same_commands_agree() {
        let commands = vec![init("c"), put("x", "1", None), put("y", "2", Some(0)), put("x", "3", Some(2))];
        let (a, ra) = check(&commands);
        let (b, rb) = check(&commands);
        assert_eq!(a, b);
        assert_eq!(ra, rb);
        assert_eq!(a.last_applied, 4);
    }

    #[test]
    fn a_rejected_command_changes_nothing_but_the_applied_index() {
        let (before, _) = check(&[put("a", "1", None)]);
        let mut after = before.clone();
        after.apply(2, &put("a", &"v".repeat(kv::MAX_VALUE_BYTES + 1), None));
        assert_eq!(after.kv, before.kv);
        assert_eq!(after.last_applied, 2);
    }

    #[test]
    fn state_round_trips_through_json() {
        let (s, _) = check(&[init("c"), put("k", "\u{0}bin", None)]);
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(serde_json::from_slice::<State>(&json).unwrap(), s);
    }
}
