//! A content-addressed blob store on the file system: `ROOT/blobs/sha256/<hex>`.
//!
//! **Invariant: a file at `blobs/sha256/<hex>` always holds the complete bytes hashing to
//! `<hex>`.** Every write goes to `ROOT/tmp/` first, is hashed while it streams, fsynced, checked
//! against the expected digest, and only then renamed into place (followed by an fsync of the
//! directory). A failed or interrupted put leaves no blob, only a temporary file that
//! [`BlobStore::remove_temp_files`] clears. Blobs are immutable; two writers of the same digest
//! race harmlessly because both rename identical bytes.
//!
//! Masters keep every blob (images, later packages); agents keep the layers they fetched. The
//! store is plain blocking I/O: async callers wrap it in `spawn_blocking`.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{
    digest::{Digest, HashingReader, HashingWriter},
    durable::{TempPath, create_dir_all_mode, fsync_dir, unique_name},
    error::{ImageError, Result},
};

/// Whether [`BlobStore::open`] re-hashes the blob while it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Trust the store (it verified the blob when it was put).
    No,
    /// Hash while reading; the read that reaches the end fails if the content does not match.
    Yes,
}

/// One stored blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its digest (and file name).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// How much the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreUsage {
    /// Number of blobs.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// The content-addressed blob store rooted at one directory.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens the store at `root`, creating `root/blobs/sha256` and `root/tmp` (mode 0700) if
    /// missing. `root/tmp` must stay on the same file system as the blobs (renames are atomic).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let store = BlobStore { root: root.into() };
        for dir in [store.blob_dir(), store.temp_dir()] {
            create_dir_all_mode(&dir, 0o700).map_err(|e| ImageError::io("creating directory", &dir, e))?;
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob's size, or [`ImageError::BlobNotFound`].
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ImageError::BlobNotFound { digest: *digest }),
            Err(e) => Err(ImageError::io("reading metadata of", path, e)),
        }
    }

    /// Opens the blob for streaming (to unpack it, or to send it to another master or agent).
    pub fn open(&self, digest: &Digest, verify: Verify) -> Result<BlobReader> {
        let path = self.path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::BlobNotFound { digest: *digest });
            }
            Err(e) => return Err(ImageError::io("opening", path, e)),
        };
        let len = file.metadata().map_err(|e| ImageError::io("reading metadata of", &path, e))?.len();
        let verifier = (verify == Verify::Yes).then(sha2::Sha256::default);
        Ok(BlobReader { file, digest: *digest, len, verifier })
    }

    /// Reads a small blob (a manifest or config) whole, verified, refusing more than `limit` bytes.
    pub fn read_verified(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let size = self.size(digest)?;
        if size > limit {
            return Err(ImageError::InvalidDocument {
                entry: format!("blob {digest}"),
                what: "document",
                detail: format!("{size} bytes is more than the {limit}-byte limit for JSON documents"),
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        let mut reader = HashingReader::new(self.open(digest, Verify::No)?);
        reader.read_to_end(&mut bytes).map_err(|e| ImageError::io("reading", self.path(digest), e))?;
        let (actual, _) = reader.drain().map_err(|e| ImageError::io("reading", self.path(digest), e))?;
        if actual != *digest {
            return Err(ImageError::CorruptBlob { digest: *digest, actual });
        }
        Ok(bytes)
    }

    /// Re-hashes a stored blob; returns its size, or [`ImageError::CorruptBlob`].
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        let reader = HashingReader::new(self.open(digest, Verify::No)?);
        let (actual, size) = reader.drain().map_err(|e| ImageError::io("reading", self.path(digest), e))?;
        if actual != *digest {
            return Err(ImageError::CorruptBlob { digest: *digest, actual });
        }
        Ok(size)
    }

    /// Stores whatever `reader` yields under its computed digest; returns digest and size.
    pub fn put(&self, reader: impl Read) -> Result<BlobInfo> {
        self.put_checked(None, reader)
    }

    /// Stores `reader`'s bytes only if they hash to `expected` (replication between masters,
    /// fetches by agents); a mismatch stores nothing. Returns the size.
    pub fn put_verified(&self, expected: &Digest, reader: impl Read) -> Result<u64> {
        Ok(self.put_checked(Some(expected), reader)?.size)
    }

    /// Stores a small in-memory blob (e.g. a manifest); returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        Ok(self.put(bytes)?.digest)
    }

    fn put_checked(&self, expected: Option<&Digest>, mut reader: impl Read) -> Result<BlobInfo> {
        let mut staged = self.stage()?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ImageError::io("reading the source of", staged.path(), e)),
            };
            staged.write_all(&buf[..n]).map_err(|e| ImageError::io("writing", staged.path(), e))?;
        }
        staged.commit(expected)
    }

    /// A temporary blob file in `ROOT/tmp`, hashed as it is written; see [`StagedBlob::commit`].
    pub(crate) fn stage(&self) -> Result<StagedBlob> {
        let path = self.temp_dir().join(unique_name("blob-"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ImageError::io("creating", &path, e))?;
        Ok(StagedBlob {
            store: self.clone(),
            writer: BufWriter::with_capacity(256 * 1024, file),
            hasher: Default::default(),
            temp: TempPath::new(path),
        })
    }

    /// Moves an already verified, fsynced file into place as blob `digest` (used by the
    /// importer, whose staging files live in this store's `tmp`). Does not fsync the blob
    /// directory: call [`BlobStore::sync`] once after a batch.
    pub(crate) fn adopt(&self, file: &Path, digest: &Digest) -> Result<()> {
        let target = self.path(digest);
        if target.is_file() {
            // Content-addressed: the present blob is byte-identical.
            return fs::remove_file(file).map_err(|e| ImageError::io("removing", file, e));
        }
        fs::rename(file, &target).map_err(|e| ImageError::io("renaming into the store", file, e))
    }

    /// Makes every rename into the blob directory durable.
    pub(crate) fn sync(&self) -> Result<()> {
        fsync_dir(&self.blob_dir()).map_err(|e| ImageError::io("syncing", self.blob_dir(), e))
    }

    /// Every stored blob with its size, sorted by digest. Stray files are skipped.
    pub fn list(&self) -> Result<Vec<BlobInfo>> {
        let dir = self.blob_dir();
        let mut blobs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("listing", &dir, e))?;
            let Some(digest) = entry.file_name().to_str().and_then(Digest::from_hex) else {
                tracing::warn!(file = ?entry.path(), "ignoring a file that is not named by a sha256 digest");
                continue;
            };
            match entry.metadata() {
                Ok(meta) if meta.is_file() => blobs.push(BlobInfo { digest, size: meta.len() }),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // removed meanwhile
                Err(e) => return Err(ImageError::io("reading metadata of", entry.path(), e)),
            }
        }
        blobs.sort_by_key(|b| b.digest);
        Ok(blobs)
    }

    /// Number of blobs and bytes held.
    pub fn usage(&self) -> Result<StoreUsage> {
        Ok(self
            .list()?
            .iter()
            .fold(StoreUsage::default(), |u, b| StoreUsage { blobs: u.blobs + 1, bytes: u.bytes + b.size }))
    }

    /// Removes a blob; `Ok(false)` if it was not there.
    pub fn remove(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                self.sync()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ImageError::io("removing", path, e)),
        }
    }

    /// Removes temporary files left by interrupted puts and imports. Call it when no put or
    /// import is running on this store (at process start-up); returns how many were removed.
    pub fn remove_temp_files(&self) -> Result<usize> {
        let dir = self.temp_dir();
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("listing", &dir, e))?;
            drop(TempPath::new(entry.path()));
            removed += 1;
        }
        Ok(removed)
    }

    pub(crate) fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
}

/// A blob being written: bytes written to it are hashed; nothing is visible in the store until
/// [`StagedBlob::commit`] succeeds, and the temporary file is removed if it is dropped.
pub(crate) struct StagedBlob {
    store: BlobStore,
    writer: BufWriter<File>,
    hasher: HashingWriter,
    temp: TempPath,
}

impl StagedBlob {
    pub(crate) fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Fsyncs, checks the digest against `expected` (if given) and renames into place.
    pub(crate) fn commit(self, expected: Option<&Digest>) -> Result<BlobInfo> {
        let StagedBlob { store, writer, hasher, temp } = self;
        let file = writer.into_inner().map_err(|e| ImageError::io("writing", temp.path(), e.into_error()))?;
        let (digest, size) = hasher.finish();
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(ImageError::DigestMismatch {
                entry: format!("blob {expected}"),
                expected: *expected,
                actual: digest,
            });
        }
        file.sync_all().map_err(|e| ImageError::io("syncing", temp.path(), e))?;
        drop(file);
        store.adopt(temp.path(), &digest)?;
        temp.keep();
        store.sync()?;
        Ok(BlobInfo { digest, size })
    }
}

impl Write for StagedBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.hasher.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A stored blob opened for reading. With [`Verify::Yes`] the read that reaches the end of the
/// file fails with [`ImageError::CorruptBlob`] (inside an `io::Error` of kind `InvalidData`) if
/// the content does not hash to the blob's name, so a consumer never silently accepts it.
pub struct BlobReader {
    file: File,
    digest: Digest,
    len: u64,
    verifier: Option<sha2::Sha256>,
}

impl BlobReader {
    /// The blob's size in bytes when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.read(buf)?;
        if let Some(hasher) = &mut self.verifier {
            if n > 0 {
                hasher.update(&buf[..n]);
            } else if !buf.is_empty() {
                let actual = Digest::from_hasher(std::mem::take(hasher));
                if actual != self.digest {
                    let err = ImageError::CorruptBlob { digest: self.digest, actual };
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
                self.verifier = None;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("store")).unwrap();
        (dir, store)
    }

    fn temp_files(store: &BlobStore) -> usize {
        fs::read_dir(store.temp_dir()).unwrap().count()
    }

    /// A reader that yields some bytes and then fails, like a dropped connection.
    struct FailingReader(usize);

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer went away"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn put_stores_under_the_content_digest_and_reads_back() {
        let (_dir, store) = store();
        let info = store.put(&b"hello"[..]).unwrap();
        assert_eq!(info, BlobInfo { digest: Digest::of(b"hello"), size: 5 });
        assert!(store.has(&info.digest));
        assert_eq!(store.size(&info.digest).unwrap(), 5);
        let mut out = String::new();
        store.open(&info.digest, Verify::Yes).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
        assert_eq!(store.read_verified(&info.digest, 1024).unwrap(), b"hello");
        assert_eq!(store.verify(&info.digest).unwrap(), 5);
        // Putting the same content again is a no-op.
        assert_eq!(store.put(&b"hello"[..]).unwrap(), info);
        assert_eq!(store.list().unwrap(), vec![info]);
        assert_eq!(temp_files(&store), 0);
    }

    #[test]
    fn put_verified_refuses_a_mismatch_and_stores_nothing() {
        let (_dir, store) = store();
        let expected = Digest::of(b"the real thing");
        let err = store.put_verified(&expected, &b"an impostor"[..]).unwrap_err();
        match &err {
            ImageError::DigestMismatch { expected: e, actual, .. } => {
                assert_eq!(*e, expected);
                assert_eq!(*actual, Digest::of(b"an impostor"));
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains(&expected.to_string()), "{err}");
        assert!(!store.has(&expected) && !store.has(&Digest::of(b"an impostor")));
        assert!(store.list().unwrap().is_empty());
        assert_eq!(temp_files(&store), 0);
        assert_eq!(store.put_verified(&expected, &b"the real thing"[..]).unwrap(), 14);
        assert!(store.has(&expected));
    }

    #[test]
    fn a_failed_put_leaves_no_blob_and_no_temp_file() {
        let (_dir, store) = store();
        let err = store.put(FailingReader(300_000)).unwrap_err();
        assert!(matches!(err, ImageError::Io { .. }), "{err}");
        assert!(store.list().unwrap().is_empty());
        assert_eq!(temp_files(&store), 0);
    }

    #[test]
    fn verify_on_read_detects_corruption() {
        let (_dir, store) = store();
        let digest = store.put_bytes(b"precious bytes").unwrap();
        fs::write(store.path(&digest), b"rotten bytes!!").unwrap();
        let mut out = Vec::new();
        let err = store.open(&digest, Verify::Yes).unwrap().read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("is corrupt"), "{err}");
        // Without verification the bytes are handed out as they are.
        out.clear();
        store.open(&digest, Verify::No).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"rotten bytes!!");
        assert!(matches!(store.verify(&digest), Err(ImageError::CorruptBlob { .. })));
        assert!(matches!(store.read_verified(&digest, 100), Err(ImageError::CorruptBlob { .. })));
    }

    #[test]
    fn list_usage_and_remove_account_for_sizes() {
        let (_dir, store) = store();
        let a = store.put_bytes(b"a").unwrap();
        let b = store.put_bytes(&[7u8; 1000]).unwrap();
        fs::write(store.blob_dir().join("not-a-digest"), b"stray").unwrap();
        assert_eq!(store.usage().unwrap(), StoreUsage { blobs: 2, bytes: 1001 });
        assert!(store.remove(&b).unwrap());
        assert!(!store.remove(&b).unwrap());
        assert_eq!(store.list().unwrap(), vec![BlobInfo { digest: a, size: 1 }]);
        assert!(matches!(store.open(&b, Verify::No), Err(ImageError::BlobNotFound { .. })));
        assert!(matches!(store.size(&b), Err(ImageError::BlobNotFound { .. })));
    }

    #[test]
    fn leftover_temp_files_are_cleared() {
        let (_dir, store) = store();
        fs::write(store.temp_dir().join("blob-crashed"), b"half a blob").unwrap();
        fs::create_dir(store.temp_dir().join("import-crashed")).unwrap();
        assert_eq!(store.remove_temp_files().unwrap(), 2);
        assert_eq!(temp_files(&store), 0);
    }
}
