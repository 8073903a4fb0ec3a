//! Durable file-system steps shared by the blob store, the importer and the layer cache:
//! unique temporary names, directory fsync, and temporary paths removed unless kept.
//!
//! The pattern everywhere is: write under a temporary name, fsync the data, rename into place,
//! fsync the directory. A crash at any point leaves either the old state or the new one.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// A name unique within this machine for the lifetime of the file: pid, a process-wide counter
/// and the clock, so concurrent writers (threads or processes) never collide.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}{}-{n}-{nanos:08x}", std::process::id())
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and parents) if missing, with `mode` for the directories it creates.
pub(crate) fn create_dir_all_mode(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// A temporary file or directory that is removed when dropped unless [`TempPath::keep`] was called.
pub(crate) struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    pub(crate) fn new(path: PathBuf) -> Self {
        TempPath { path: Some(path) }
    }

    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("a TempPath has its path until it is kept")
    }

    /// Stops tracking the path (it was renamed into place or handed over).
    pub(crate) fn keep(mut self) -> PathBuf {
        self.path.take().expect("a TempPath has its path until it is kept")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let result = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a temporary path");
            }
        }
    }
}
