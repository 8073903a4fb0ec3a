//! openraft's storage (v2 traits) on top of [`Engine`]: the log, the vote, the committed id,
//! snapshots, and the state machine that applies committed entries through the pure core.
//!
//! Durability rule: `save_vote`, `truncate`, `purge` and the `append` callback report success
//! only after [`Engine::flush`] returned, i.e. after fsync. The state machine itself lives in
//! memory and is rebuilt on start from the latest snapshot plus the committed log, both of
//! which are durable in the engine.

// openraft's StorageError is large by design; boxing it here would only add conversions.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::{self, Cursor};
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, RaftSnapshotBuilder, StorageIOError,
};
use serde::{Deserialize, Serialize};

use super::engine::{Engine, Space};
use super::types::{Entry, LogId, NodeId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote};
use crate::core::{MasterInfo, Response, State};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";
const KEY_SNAPSHOT_META: &[u8] = b"meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"data";

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(subject: ErrorSubject<NodeId>, e: impl Into<anyhow_like::Error>) -> StorageError {
    StorageIOError::new(subject, ErrorVerb::Read, openraft::AnyError::error(e.into().0)).into()
}

fn write_err(subject: ErrorSubject<NodeId>, e: impl Into<anyhow_like::Error>) -> StorageError {
    StorageIOError::new(subject, ErrorVerb::Write, openraft::AnyError::error(e.into().0)).into()
}

/// Small shim: storage errors carry a message string.
mod anyhow_like {
    pub struct Error(pub String);
    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Self {
            Error(e.to_string())
        }
    }
    impl From<serde_json::Error> for Error {
        fn from(e: serde_json::Error) -> Self {
            Error(format!("corrupt record: {e}"))
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("raft records always serialise")
}

/// The Raft log, vote and committed id.
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<dyn Engine>,
}

impl LogStore {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
    }

    fn meta<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let raw = self.engine.get(Space::Meta, key).map_err(|e| read_err(ErrorSubject::Store, e))?;
        raw.map(|b| decode(&b)).transpose().map_err(|e| read_err(ErrorSubject::Store, e))
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        self.engine.put(Space::Meta, key, encode(value)).map_err(|e| write_err(ErrorSubject::Store, e))
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        self.engine.flush().await.map_err(|e| write_err(subject, e))
    }

    /// Called before Raft starts: a master never resumes leadership of a term it led before
    /// it stopped. openraft would restore it as leader at once (its vote is committed and
    /// names itself), with the commit index it last *persisted*, which can lag what it
    /// had committed and what clients and other masters already saw; its first read
    /// barrier would then pass (the followers still accept its term) and serve stale data,
    /// and entries it appended but had not yet fsync'd could be proposed again under the
    /// same log ids. Demoting the vote to an uncommitted vote for itself keeps the promise
    /// a vote makes (no other vote in that term) and leaves leadership to a fresh election
    /// in a higher term, which commits a new entry before it serves reads. Returns whether
    /// the vote was demoted.
    pub async fn step_down_after_restart(&self, me: NodeId) -> Result<bool, StorageError> {
        let Some(vote) = self.meta::<Vote>(KEY_VOTE)? else { return Ok(false) };
        if !vote.is_committed() || vote.leader_id().voted_for() != Some(me) {
            return Ok(false);
        }
        let demoted = Vote::new(vote.leader_id().get_term(), me);
        self.put_meta(KEY_VOTE, &demoted)?;
        self.flush(ErrorSubject::Vote).await?;
        Ok(true)
    }

    /// Number of log entries currently stored (for metrics and tests).
    pub fn stored_entries(&self) -> io::Result<usize> {
        Ok(self.engine.range(Space::Log, &index_key(0), None)?.len())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        let to_key = to.map(index_key);
        let pairs = self
            .engine
            .range(Space::Log, &index_key(from), to_key.as_ref().map(|k| &k[..]))
            .map_err(|e| read_err(ErrorSubject::Logs, e))?;
        pairs.iter().map(|(_, v)| decode(v).map_err(|e| read_err(ErrorSubject::Logs, e))).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.meta(KEY_PURGED)?;
        let last = self.engine.last(Space::Log).map_err(|e| read_err(ErrorSubject::Logs, e))?;
        let last_log_id = match last {
            Some((_, v)) => Some(decode::<Entry>(&v).map_err(|e| read_err(ErrorSubject::Logs, e))?.log_id),
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on purpose: a lost committed id only means replaying less on restart;
        // the entries themselves are durable.
        self.put_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let pairs: Vec<_> = entries.into_iter().map(|e| (index_key(e.log_id.index).to_vec(), encode(&e))).collect();
        self.engine.put_many(Space::Log, pairs).map_err(|e| write_err(ErrorSubject::Logs, e))?;
        // Acknowledge only once the entries are fsync'd; the flush runs off the Raft core so
        // that further appends can queue behind it and share the next flush.
        let flush = self.engine.flush();
        tokio::spawn(async move { callback.log_io_completed(flush.await) });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.engine
            .remove_range(Space::Log, &index_key(log_id.index), None)
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        self.put_meta(KEY_PURGED, &log_id)?;
        self.flush(ErrorSubject::Logs).await?;
        self.engine
            .remove_range(Space::Log, &index_key(0), Some(&index_key(log_id.index + 1)))
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        self.flush(ErrorSubject::Logs).await
    }
}

/// The state machine: the core [`State`] in memory, shared read-only with the API.
#[derive(Clone)]
pub struct StateMachineStore {
    engine: Arc<dyn Engine>,
    state: Arc<RwLock<State>>,
    applied: Arc<RwLock<(Option<LogId>, StoredMembership)>>,
    /// The last applied index, for loops that react to state changes.
    applied_tx: Arc<tokio::sync::watch::Sender<u64>>,
    /// Every applied command with its response, for event streams (`/v2/events`). Sent only
    /// while someone listens; a slow listener misses events rather than slowing the apply.
    events: tokio::sync::broadcast::Sender<Arc<AppliedCommand>>,
}

/// A command as applied, with its response.
#[derive(Debug, Clone)]
pub struct AppliedCommand {
    pub index: u64,
    pub command: crate::core::Command,
    pub response: Response,
}

/// Applied commands buffered per event listener.
const EVENT_BUFFER: usize = 4096;

#[derive(Serialize, Deserialize)]
struct StoredSnapshotMeta {
    meta: SnapshotMeta,
}

fn masters_of(membership: &StoredMembership) -> Vec<MasterInfo> {
    let m = membership.membership();
    let voters: std::collections::BTreeSet<NodeId> = m.voter_ids().collect();
    m.nodes()
        .map(|(id, node)| MasterInfo {
            id: *id,
            name: node.name.clone(),
            api: node.api.clone(),
            voter: voters.contains(id),
        })
        .collect()
}

impl StateMachineStore {
    /// Opens the state machine, restoring the latest durable snapshot if there is one.
    pub fn open(engine: Arc<dyn Engine>) -> Result<Self, StorageError> {
        let mut state = State::default();
        let mut applied = (None, StoredMembership::default());
        let meta = engine.get(Space::Snapshot, KEY_SNAPSHOT_META).map_err(|e| read_err(ErrorSubject::Store, e))?;
        let data = engine.get(Space::Snapshot, KEY_SNAPSHOT_DATA).map_err(|e| read_err(ErrorSubject::Store, e))?;
        if let (Some(meta), Some(data)) = (meta, data) {
            let meta: StoredSnapshotMeta = decode(&meta).map_err(|e| read_err(ErrorSubject::Store, e))?;
            state = decode(&data).map_err(|e| read_err(ErrorSubject::Snapshot(Some(meta.meta.signature())), e))?;
            applied = (meta.meta.last_log_id, meta.meta.last_membership.clone());
        }
        let index = applied.0.map_or(0, |l: LogId| l.index);
        Ok(Self {
            engine,
            state: Arc::new(RwLock::new(state)),
            applied: Arc::new(RwLock::new(applied)),
            applied_tx: Arc::new(tokio::sync::watch::channel(index).0),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
        })
    }

    /// Applied commands from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Sender<Arc<AppliedCommand>> {
        self.events.clone()
    }

    /// Changes whenever entries are applied or a snapshot is installed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The shared state, for readers (API, DNS, leader loops). Never hold the guard across
    /// an `.await`.
    pub fn state(&self) -> Arc<RwLock<State>> {
        self.state.clone()
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        // One atomic batch: a crash never leaves meta naming data that is not there.
        let pairs = vec![
            (KEY_SNAPSHOT_DATA.to_vec(), data.to_vec()),
            (KEY_SNAPSHOT_META.to_vec(), encode(&StoredSnapshotMeta { meta: meta.clone() })),
        ];
        self.engine.put_many(Space::Snapshot, pairs).map_err(|e| write_err(subject, e))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // Clone under the lock (fast), serialise outside it so applying writes is not blocked.
        let (state, last_applied, membership) = {
            let state = self.state.read().expect("state lock");
            let applied = self.applied.read().expect("applied lock");
            (state.clone(), applied.0, applied.1.clone())
        };
        let data = tokio::task::spawn_blocking(move || encode(&state))
            .await
            .map_err(|e| write_err(ErrorSubject::Store, anyhow_like::Error(e.to_string())))?;
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        self.save_snapshot(&meta, &data)?;
        self.engine.flush().await.map_err(|e| write_err(ErrorSubject::Snapshot(Some(meta.signature())), e))?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.applied.read().expect("applied lock").clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut state = self.state.write().expect("state lock");
        let mut applied = self.applied.write().expect("applied lock");
        for entry in entries {
            let index = entry.log_id.index;
            applied.0 = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {
                    state.note_blank(index);
                    responses.push(Response::Applied);
                }
                EntryPayload::Normal(command) => {
                    let response = state.apply(index, &command);
                    if self.events.receiver_count() > 0 {
                        let applied = AppliedCommand { index, command, response: response.clone() };
                        let _ = self.events.send(Arc::new(applied));
                    }
                    responses.push(response);
                }
                EntryPayload::Membership(membership) => {
                    applied.1 = StoredMembership::new(Some(entry.log_id), membership);
                    state.set_masters(index, masters_of(&applied.1));
                    responses.push(Response::Applied);
                }
            }
        }
        self.applied_tx.send_replace(state.last_applied);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let new_state: State =
            decode(&data).map_err(|e| read_err(ErrorSubject::Snapshot(Some(meta.signature())), e))?;
        self.save_snapshot(meta, &data)?;
        self.engine.flush().await.map_err(|e| write_err(ErrorSubject::Snapshot(Some(meta.signature())), e))?;
        *self.state.write().expect("state lock") = new_state;
        *self.applied.write().expect("applied lock") = (meta.last_log_id, meta.last_membership.clone());
        self.applied_tx.send_replace(meta.last_log_id.map_or(0, |l| l.index));
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let meta = self.engine.get(Space::Snapshot, KEY_SNAPSHOT_META).map_err(|e| read_err(ErrorSubject::Store, e))?;
        let data = self.engine.get(Space::Snapshot, KEY_SNAPSHOT_DATA).map_err(|e| read_err(ErrorSubject::Store, e))?;
        match (meta, data) {
            (Some(meta), Some(data)) => {
                let meta: StoredSnapshotMeta = decode(&meta).map_err(|e| read_err(ErrorSubject::Store, e))?;
                Ok(Some(Snapshot { meta: meta.meta, snapshot: Box::new(Cursor::new(data)) }))
            }
            _ => Ok(None),
        }
    }
}
