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
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    snapshot: sled::Tree,
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
        Ok(Self { log: tree("raft_log")?, meta: tree("meta")?, snapshot: tree("snapshot")?, db })
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
        let db = self.db.clone();
        Box::pin(async move { db.flush_async().await.map(|_| ()).map_err(io_err) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
