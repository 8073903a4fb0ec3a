//! The narrow storage trait the Raft store is written against, and its sled implementation.
//!
//! **Architecture invariant:** only this file names sled. Everything above it sees ordered
//! byte keys in a few key spaces, atomic batches, and an explicit `flush` that returns only
//! once the data is durable (fsync'd). Replacing sled means implementing [`Engine`] again.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;

/// The key spaces a master stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Raft log entries keyed by big-endian index.
    Log,
    /// Vote, committed id, purge point, node identity.
    Meta,
    /// The latest state-machine snapshot.
    Snapshot,
}

pub type FlushFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'static>>;

pub trait Engine: Send + Sync + 'static {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>>;
    /// Writes all pairs atomically (all or none survive a crash).
    fn put_many(&self, space: Space, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> io::Result<()>;
    /// Pairs with `from <= key < to` (`to = None`: to the end), in key order.
    fn range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Removes keys with `from <= key < to` (`to = None`: to the end).
    fn remove_range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> io::Result<()>;
    /// The pair with the greatest key.
    fn last(&self, space: Space) -> io::Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// Resolves once everything written before the call is durable on disk.
    fn flush(&self) -> FlushFuture;

    fn put(&self, space: Space, key: &[u8], value: Vec<u8>) -> io::Result<()> {
        self.put_many(space, vec![(key.to_vec(), value)])
    }
}

/// [`Engine`] on a sled database: one tree per [`Space`].
pub struct SledEngine {
    log: sled::Tree,
    meta: sled::Tree,
    snapshot: sled::Tree,
    flusher: Option<std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<io::Result<()>>>>,
    flush_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SledEngine {
    fn drop(&mut self) {
        // Closing the channel ends the thread; joining it releases its handle on the database,
        // so the directory can be opened again right away.
        self.flusher.take();
        if let Some(thread) = self.flush_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Group commit on one thread: every request waiting when a flush starts is answered by it.
///
/// Why not `sled::Db::flush_async` per request: in sled 0.34 it wakes every I/O thread per
/// call (about 20 context switches per write) and deadlocks with more than 7 calls in flight.
/// And sled's flush uses `sync_file_range`, which neither flushes the drive's cache nor the
/// file's metadata, so after it the thread also `fdatasync`s the database file.
fn run_flusher(
    db: sled::Db,
    file: std::fs::File,
    requests: std::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<io::Result<()>>>,
) {
    while let Ok(first) = requests.recv() {
        let mut waiting = vec![first];
        waiting.extend(requests.try_iter());
        let result = db.flush().map(|_| ()).map_err(io_err).and_then(|()| file.sync_data());
        for tx in waiting {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = tx.send(answer);
        }
    }
}

fn io_err(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl SledEngine {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> io::Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(io_err)?;
        let tree = |name: &str| db.open_tree(name).map_err(io_err);
        let file = std::fs::File::open(dir.join("db"))?;
        let (flusher, requests) = std::sync::mpsc::channel();
        let log = tree("raft_log")?;
        let meta = tree("meta")?;
        let snapshot = tree("snapshot")?;
        let thread =
            std::thread::Builder::new().name("medos-flush".into()).spawn(move || run_flusher(db, file, requests))?;
        Ok(Self { log, meta, snapshot, flusher: Some(flusher), flush_thread: Some(thread) })
    }

    fn tree(&self, space: Space) -> &sled::Tree {
        match space {
            Space::Log => &self.log,
            Space::Meta => &self.meta,
            Space::Snapshot => &self.snapshot,
        }
    }

    fn bounds<'a>(from: &'a [u8], to: Option<&'a [u8]>) -> (std::ops::Bound<&'a [u8]>, std::ops::Bound<&'a [u8]>) {
        use std::ops::Bound;
        (Bound::Included(from), to.map_or(Bound::Unbounded, Bound::Excluded))
    }
}

impl Engine for SledEngine {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.tree(space).get(key).map_err(io_err)?.map(|v| v.to_vec()))
    }

    fn put_many(&self, space: Space, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(k, v);
        }
        self.tree(space).apply_batch(batch).map_err(io_err)
    }

    fn range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree(space)
            .range::<&[u8], _>(Self::bounds(from, to))
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io_err))
            .collect()
    }

    fn remove_range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> io::Result<()> {
        let tree = self.tree(space);
        let mut batch = sled::Batch::default();
        for item in tree.range::<&[u8], _>(Self::bounds(from, to)) {
            let (k, _) = item.map_err(io_err)?;
            batch.remove(k);
        }
        tree.apply_batch(batch).map_err(io_err)
    }

    fn last(&self, space: Space) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.tree(space).last().map_err(io_err)?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn flush(&self) -> FlushFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.flusher.as_ref().map_or(Err(()), |f| f.send(tx).map_err(|_| ()));
        Box::pin(async move {
            sent.map_err(|_| io::Error::other("the flush thread stopped"))?;
            rx.await.map_err(|_| io::Error::other("the flush thread stopped"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_flushes_all_complete() {
        // sled's own flush_async deadlocks beyond 7 concurrent calls; the flusher must not.
        let dir = tempfile::tempdir().unwrap();
        let e = std::sync::Arc::new(SledEngine::open(dir.path(), 1 << 20).unwrap());
        let mut joins = Vec::new();
        for i in 0..64u64 {
            let e = e.clone();
            joins.push(tokio::spawn(async move {
                e.put(Space::Log, &i.to_be_bytes(), vec![1; 100]).unwrap();
                e.flush().await
            }));
        }
        let all = tokio::time::timeout(std::time::Duration::from_secs(30), futures_util::future::join_all(joins)).await;
        for r in all.expect("flushes must not hang") {
            r.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn sled_engine_ranges_batches_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let e = SledEngine::open(dir.path(), 1 << 20).unwrap();
        let key = |i: u64| i.to_be_bytes().to_vec();
        e.put_many(Space::Log, (1..=5).map(|i| (key(i), vec![i as u8])).collect()).unwrap();
        assert_eq!(e.range(Space::Log, &key(2), Some(&key(4))).unwrap().len(), 2);
        assert_eq!(e.last(Space::Log).unwrap().unwrap().1, vec![5]);
        e.remove_range(Space::Log, &key(4), None).unwrap();
        assert_eq!(e.last(Space::Log).unwrap().unwrap().1, vec![3]);
        assert_eq!(e.get(Space::Meta, b"none").unwrap(), None);
        e.flush().await.unwrap();
        drop(e);
        let reopened = SledEngine::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reopened.range(Space::Log, &key(0), None).unwrap().len(), 3);
    }
}
