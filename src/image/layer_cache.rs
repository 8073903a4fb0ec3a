//! The agent's cache of unpacked layers: one directory per layer digest, unpacked once, used
//! read-only as overlayfs lower dirs.
//!
//! ```text
//! ROOT/                       mode 0700: layers hold setuid binaries no host user may reach
//!   sha256/<hex>/             a complete unpacked layer (the overlay lower dir)
//!   tmp/<hex>.partial/        an unpack in progress, or one interrupted by a crash
//!   tmp/<hex>.removing-…/     a removal in progress
//!   locks/<hex>               flock(2) serialising unpack, removal and GC of one layer
//! ```
//!
//! **Invariant: `sha256/<hex>` exists only complete.** A layer is unpacked into
//! `tmp/<hex>.partial`, its blob digest and diff id are checked, the file system is synced, and
//! only then is the directory renamed into place (atomically) and its parent fsynced. An
//! interrupted unpack leaves a `.partial` directory that the next unpack of that layer (holding
//! its lock) or [`LayerCache::gc`] removes. Removal renames out of `sha256/` first, so a layer
//! never appears half-deleted either.

use std::{
    collections::HashSet,
    fs::{self, File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};

use super::{
    digest::{Digest, HashingReader},
    durable::{TempPath, create_dir_all_mode, fsync_dir, unique_name},
    error::{ImageError, Result},
    manifest::{Compression, Layer},
    store::{BlobStore, Verify},
    unpack::{UnpackStats, unpack_layer},
};

/// What [`LayerCache::gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unpacked layers removed.
    pub removed: Vec<Digest>,
    /// Unpacked layers kept because they are in use.
    pub kept: usize,
    /// Leftovers of interrupted unpacks and removals cleared.
    pub leftovers_removed: usize,
}

/// The layer cache rooted at one directory.
#[derive(Clone, Debug)]
pub struct LayerCache {
    root: PathBuf,
}

impl LayerCache {
    /// Opens the cache at `root`, creating it (mode 0700) if missing. `root` must not be on an
    /// overlayfs mount if it is to serve as lower dirs of containers with an upper dir beside it.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let cache = LayerCache { root: root.into() };
        create_dir_all_mode(&cache.root, 0o700).map_err(|e| ImageError::io("creating directory", &cache.root, e))?;
        for dir in [cache.layers_dir(), cache.temp_dir(), cache.locks_dir()] {
            create_dir_all_mode(&dir, 0o700).map_err(|e| ImageError::io("creating directory", &dir, e))?;
        }
        Ok(cache)
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where layer `digest` is (or would be) unpacked: the overlayfs lower dir.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.layers_dir().join(digest.hex())
    }

    /// Whether layer `digest` is unpacked (completely: partial unpacks never live here).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_dir()
    }

    /// Unpacks `layer` from `store` unless it already is; returns its directory. The blob's
    /// digest and the layer's diff id are verified while it streams.
    pub fn ensure(&self, store: &BlobStore, layer: &Layer) -> Result<PathBuf> {
        if self.contains(&layer.digest) {
            return Ok(self.path(&layer.digest));
        }
        let reader = store.open(&layer.digest, Verify::No)?;
        match self.unpack_from(&layer.digest, layer.compression, Some(&layer.diff_id), reader) {
            Ok((path, _)) => Ok(path),
            // A damaged blob usually shows up as a tar or gzip error before its digest can be
            // checked; say what is really wrong.
            Err(e) => match store.verify(&layer.digest) {
                Err(corrupt @ ImageError::CorruptBlob { .. }) => Err(corrupt),
                _ => Err(e),
            },
        }
    }

    /// Unpacks layer `digest` from `reader` (the blob as stored, compressed as `compression`)
    /// unless it is already unpacked. The bytes must hash to `digest` and, if given, the
    /// uncompressed stream to `diff_id`; otherwise nothing is published. Returns the layer's
    /// directory and, if this call unpacked it, what was created.
    pub fn unpack_from(
        &self,
        digest: &Digest,
        compression: Compression,
        diff_id: Option<&Digest>,
        reader: impl Read,
    ) -> Result<(PathBuf, Option<UnpackStats>)> {
        let target = self.path(digest);
        let _lock = self.lock(digest, FlockArg::LockExclusive)?.expect("a blocking lock is always acquired");
        if target.is_dir() {
            return Ok((target, None));
        }
        let partial = self.temp_dir().join(format!("{}.partial", digest.hex()));
        remove_tree(&partial)?; // an interrupted unpack; we hold the layer's lock
        create_dir_all_mode(&partial, 0o755).map_err(|e| ImageError::io("creating directory", &partial, e))?;
        let partial = TempPath::new(partial);

        let mut blob = HashingReader::new(reader);
        let stats = {
            let decoded: Box<dyn Read + '_> = match compression {
                Compression::None => Box::new(&mut blob),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut blob)),
            };
            let mut uncompressed = HashingReader::new(decoded);
            let stats = unpack_layer(&mut uncompressed, partial.path())?;
            let (actual, _) = uncompressed.drain().map_err(|e| corrupt_layer(digest, &e))?;
            if let Some(expected) = diff_id
                && actual != *expected
            {
                return Err(ImageError::DigestMismatch {
                    entry: format!("uncompressed layer {digest} (its diff id)"),
                    expected: *expected,
                    actual,
                });
            }
            stats
        };
        let (actual, _) = blob.drain().map_err(|e| corrupt_layer(digest, &e))?;
        if actual != *digest {
            return Err(ImageError::DigestMismatch { entry: format!("layer {digest}"), expected: *digest, actual });
        }

        // Everything durable before the layer becomes visible under its final name.
        let dir = File::open(partial.path()).map_err(|e| ImageError::io("opening", partial.path(), e))?;
        nix::unistd::syncfs(&dir)
            .map_err(|e| ImageError::io("syncing the file system of", partial.path(), e.into()))?;
        drop(dir);
        fs::rename(partial.path(), &target).map_err(|e| ImageError::io("publishing the unpacked layer", &target, e))?;
        partial.keep();
        fsync_dir(&self.layers_dir()).map_err(|e| ImageError::io("syncing", self.layers_dir(), e))?;
        tracing::debug!(layer = %digest.short(), files = stats.files, bytes = stats.bytes, "unpacked layer");
        Ok((target, Some(stats)))
    }

    /// The digests of all unpacked layers, sorted.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.layers_dir();
        let mut layers = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("listing", &dir, e))?;
            if let Some(digest) = entry.file_name().to_str().and_then(Digest::from_hex) {
                layers.push(digest);
            }
        }
        layers.sort();
        Ok(layers)
    }

    /// Removes an unpacked layer; `Ok(false)` if it was not there. The caller makes sure no
    /// container uses it.
    pub fn remove(&self, digest: &Digest) -> Result<bool> {
        let lock = self.lock(digest, FlockArg::LockExclusive)?.expect("a blocking lock is always acquired");
        self.remove_locked(digest, lock)
    }

    /// Removes every unpacked layer not in `in_use`, and leftovers of interrupted unpacks and
    /// removals. Layers being unpacked or removed right now are left alone.
    pub fn gc(&self, in_use: &HashSet<Digest>) -> Result<GcReport> {
        let mut report = GcReport::default();
        for digest in self.list()? {
            if in_use.contains(&digest) {
                report.kept += 1;
                continue;
            }
            let Some(lock) = self.lock(&digest, FlockArg::LockExclusiveNonblock)? else { continue };
            if self.remove_locked(&digest, lock)? {
                report.removed.push(digest);
            }
        }
        let temp = self.temp_dir();
        for entry in fs::read_dir(&temp).map_err(|e| ImageError::io("listing", &temp, e))? {
            let entry = entry.map_err(|e| ImageError::io("listing", &temp, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // `<hex>.partial` and `<hex>.removing-…` belong to whoever holds that layer's lock.
            let _guard = match name.split_once('.').and_then(|(hex, _)| Digest::from_hex(hex)) {
                Some(digest) => match self.lock(&digest, FlockArg::LockExclusiveNonblock)? {
                    Some(lock) => Some(lock),
                    None => continue,
                },
                None => None,
            };
            remove_tree(&entry.path())?;
            report.leftovers_removed += 1;
        }
        // Lock files of layers that are not unpacked.
        let locks = self.locks_dir();
        for entry in fs::read_dir(&locks).map_err(|e| ImageError::io("listing", &locks, e))? {
            let entry = entry.map_err(|e| ImageError::io("listing", &locks, e))?;
            if let Some(digest) = entry.file_name().to_str().and_then(Digest::from_hex)
                && !self.contains(&digest)
                && let Some(_lock) = self.lock(&digest, FlockArg::LockExclusiveNonblock)?
            {
                remove_file_if_present(&entry.path())?;
            }
        }
        Ok(report)
    }

    fn remove_locked(&self, digest: &Digest, lock: Flock<File>) -> Result<bool> {
        let target = self.path(digest);
        let doomed = self.temp_dir().join(unique_name(&format!("{}.removing-", digest.hex())));
        match fs::rename(&target, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(ImageError::io("removing", target, e)),
        }
        fsync_dir(&self.layers_dir()).map_err(|e| ImageError::io("syncing", self.layers_dir(), e))?;
        remove_tree(&doomed)?;
        // Delete the lock file while holding it; `lock` re-checks the inode, so a waiter that
        // opened the old file locks again.
        remove_file_if_present(&self.locks_dir().join(digest.hex()))?;
        drop(lock);
        Ok(true)
    }

    /// Locks layer `digest`; `None` if non-blocking and someone else holds it.
    fn lock(&self, digest: &Digest, mode: FlockArg) -> Result<Option<Flock<File>>> {
        let path = self.locks_dir().join(digest.hex());
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| ImageError::io("opening lock file", &path, e))?;
            let locked = match Flock::lock(file, mode) {
                Ok(locked) => locked,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => return Err(ImageError::io("locking", &path, e.into())),
            };
            // The file may have been removed (by a removal holding the lock) between our open
            // and our lock; then our lock protects nothing: retry on the current file.
            let held = locked.metadata().map_err(|e| ImageError::io("reading metadata of", &path, e))?;
            match fs::metadata(&path) {
                Ok(current) if current.ino() == held.ino() && current.dev() == held.dev() => return Ok(Some(locked)),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io("reading metadata of", &path, e)),
            }
        }
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(|e| ImageError::io("removing", path, e)),
        Ok(_) => remove_file_if_present(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("inspecting", path, e)),
    }
}

fn remove_file_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::io("removing", path, e)),
        _ => Ok(()),
    }
}

fn corrupt_layer(digest: &Digest, error: &io::Error) -> ImageError {
    ImageError::CorruptArchive { at: format!("in layer {digest}"), detail: error.to_string() }
}
