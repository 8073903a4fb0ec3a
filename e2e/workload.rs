//! Concurrent KV clients that record a [`History`]: writers put unique values, readers do
//! linearizable reads, each through its own [`Client`] pointed at every master.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use medos::api::client::{Client, ClientError};
use tokio::task::JoinSet;

use crate::history::{Event, History, Observed, Op, ReadResult, WriteResult};
use crate::support::{DevCluster, eventually};

/// A request that takes longer than this is given up: a write becomes indeterminate.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after a failed operation, so a worker does not spin while there is no leader.
const BACKOFF: Duration = Duration::from_millis(20);

/// Which keys writers use.
#[derive(Clone)]
pub enum Keys {
    /// Writers and readers pick among these keys, round robin.
    Shared(Vec<String>),
    /// Every write goes to a new key `PREFIX<worker>/<seq>`; no readers.
    Unique(String),
}

pub struct Spec {
    pub writers: usize,
    pub readers: usize,
    pub keys: Keys,
}

pub struct Workload {
    pub history: Arc<History>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

/// How a write's error is classified. Only answers that prove the write was not applied make
/// it `Failed`; anything else (a 503 "leader lost", a reset connection, a timeout) may have
/// been applied.
pub fn classify_write(result: &Result<u64, ClientError>) -> WriteResult {
    match result {
        Ok(revision) => WriteResult::Ok { revision: *revision },
        // No master accepted a connection: the request was never sent.
        Err(ClientError::Unreachable { .. }) => WriteResult::Failed,
        Err(ClientError::Api { status, .. }) if (400..500).contains(status) => WriteResult::Failed,
        Err(_) => WriteResult::Indeterminate,
    }
}

impl Workload {
    pub fn start(cluster: &DevCluster, spec: Spec) -> Self {
        let history = Arc::new(History::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let urls = cluster.urls();
        let client_for = |worker: usize| {
            // Spread the workers over the masters: each starts at a different URL.
            let mut urls = urls.clone();
            let n = urls.len();
            urls.rotate_left(worker % n);
            cluster.client_for_urls(urls)
        };
        for w in 0..spec.writers {
            let (client, history, stop, keys) = (client_for(w), history.clone(), stop.clone(), spec.keys.clone());
            tasks.spawn(writer(w, client, history, stop, keys));
        }
        if let Keys::Shared(keys) = &spec.keys {
            for r in 0..spec.readers {
                let worker = spec.writers + r;
                let (client, history, stop, keys) = (client_for(worker), history.clone(), stop.clone(), keys.clone());
                tasks.spawn(reader(worker, client, history, stop, keys));
            }
        }
        Self { history, stop, tasks }
    }

    /// Waits until `predicate` holds for the history recorded so far.
    pub async fn wait_until(&self, what: &str, timeout: Duration, predicate: impl Fn(&[Op]) -> bool) {
        eventually(what, timeout, || async {
            if self.history.inspect(&predicate) { Ok(()) } else { Err("not yet".to_string()) }
        })
        .await
    }

    /// Waits until `n` more writes were acknowledged that started at or after `since`.
    pub async fn wait_for_acked_writes(&self, n: usize, since: Instant, timeout: Duration) {
        self.wait_until(&format!("{n} acknowledged writes"), timeout, |ops| acked_since(ops, since) >= n).await
    }

    /// Stops the workers (each finishes its current operation) and returns the history.
    pub async fn stop(mut self) -> Vec<Op> {
        self.stop.store(true, Ordering::SeqCst);
        while let Some(r) = self.tasks.join_next().await {
            r.expect("a workload task panicked");
        }
        self.history.snapshot()
    }
}

pub fn acked_since(ops: &[Op], since: Instant) -> usize {
    ops.iter()
        .filter(|op| op.start >= since && matches!(op.event, Event::Write { result: WriteResult::Ok { .. }, .. }))
        .count()
}

async fn writer(worker: usize, client: Client, history: Arc<History>, stop: Arc<AtomicBool>, keys: Keys) {
    let mut seq = 0usize;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = match &keys {
            Keys::Shared(keys) => keys[(worker + seq) % keys.len()].clone(),
            Keys::Unique(prefix) => format!("{prefix}{worker}/{seq}"),
        };
        let value = format!("w{worker}-{seq}");
        let start = Instant::now();
        let result = match tokio::time::timeout(OP_TIMEOUT, client.kv_put(&key, value.as_bytes(), None)).await {
            Ok(r) => classify_write(&r.map(|w| w.revision)),
            Err(_) => WriteResult::Indeterminate,
        };
        let end = Instant::now();
        let ok = matches!(result, WriteResult::Ok { .. });
        history.record(Op { worker, key, start, end, event: Event::Write { value, result } });
        if !ok {
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

async fn reader(worker: usize, client: Client, history: Arc<History>, stop: Arc<AtomicBool>, keys: Vec<String>) {
    let mut seq = 0usize;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = keys[(worker + seq) % keys.len()].clone();
        let start = Instant::now();
        let result = match tokio::time::timeout(OP_TIMEOUT, client.kv_get(&key, false)).await {
            Ok(Ok(item)) => ReadResult::Ok(item.map(|i| Observed {
                value: String::from_utf8_lossy(&i.value).into_owned(),
                mod_revision: i.mod_revision,
            })),
            _ => ReadResult::Failed,
        };
        let end = Instant::now();
        let ok = matches!(result, ReadResult::Ok(_));
        history.record(Op { worker, key, start, end, event: Event::Read { result } });
        if !ok {
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

/// Every key the history touched.
pub fn keys_of(ops: &[Op]) -> Vec<String> {
    let mut keys: Vec<String> = ops.iter().map(|op| op.key.clone()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Reads `keys` linearizably through every running master separately, requires that they all
/// agree, and returns the answers (the `finals` of [`crate::history::check`]).
pub async fn read_finals(cluster: &DevCluster, keys: &[String]) -> BTreeMap<String, Option<Observed>> {
    let mut agreed: Option<(String, BTreeMap<String, Option<Observed>>)> = None;
    for m in cluster.masters.iter().filter(|m| m.is_running()) {
        let client = cluster.client_for(&m.name);
        let mut finals = BTreeMap::new();
        for key in keys {
            let item = client
                .kv_get(key, false)
                .await
                .unwrap_or_else(|e| panic!("final linearizable read of {key} through {}: {e}", m.name));
            let seen = item.map(|i| Observed {
                value: String::from_utf8_lossy(&i.value).into_owned(),
                mod_revision: i.mod_revision,
            });
            finals.insert(key.clone(), seen);
        }
        match &agreed {
            None => agreed = Some((m.name.clone(), finals)),
            Some((first, theirs)) => {
                for key in keys {
                    assert_eq!(finals[key], theirs[key], "{} and {first} disagree about {key}", m.name);
                }
            }
        }
    }
    agreed.expect("at least one master runs").1
}

/// Like [`read_finals`] for many keys under a prefix: one linearizable list per master.
pub async fn list_finals(cluster: &DevCluster, prefix: &str, keys: &[String]) -> BTreeMap<String, Option<Observed>> {
    let mut agreed: Option<(String, BTreeMap<String, Option<Observed>>)> = None;
    for m in cluster.masters.iter().filter(|m| m.is_running()) {
        let items = cluster
            .client_for(&m.name)
            .kv_list(prefix, false)
            .await
            .unwrap_or_else(|e| panic!("final linearizable list of {prefix} through {}: {e}", m.name));
        let mut finals: BTreeMap<String, Option<Observed>> = keys.iter().map(|k| (k.clone(), None)).collect();
        for i in items {
            let seen = Observed { value: String::from_utf8_lossy(&i.value).into_owned(), mod_revision: i.mod_revision };
            finals.insert(i.key, Some(seen));
        }
        match &agreed {
            None => agreed = Some((m.name.clone(), finals)),
            Some((first, theirs)) => assert!(finals == *theirs, "{} and {first} disagree about {prefix}*", m.name),
        }
    }
    agreed.expect("at least one master runs").1
}
