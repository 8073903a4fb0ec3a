//! Repositories on the CLI's machine: an index JSON file or a directory in the Universe source
//! layout, read and checked here, then uploaded as one index document (the cluster holds it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::core::packages::Repository;
use crate::core::packages::state::MAX_REPO_BYTES;

/// Why a local repository could not be read; names the path.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Bad { path: PathBuf, source: crate::core::packages::PackageError },
    #[error(
        "{path}: the repository is {size} bytes of JSON; the cluster stores at most {MAX_REPO_BYTES} bytes (8 MiB)"
    )]
    TooLarge { path: PathBuf, size: usize },
}

/// Reads `path` (an index JSON file, or a directory with `packages/` or `repo/packages/`)
/// into the repository and its index document.
pub fn read_repository(path: &Path) -> Result<(Repository, Value), LocalError> {
    let io = |p: &Path, e: std::io::Error| LocalError::Io { path: p.to_path_buf(), message: e.to_string() };
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    let repo = if meta.is_dir() {
        let mut files = BTreeMap::new();
        let mut total = 0usize;
        for root in ["packages", "repo/packages"] {
            let dir = path.join(root);
            if dir.is_dir() {
                collect(&dir, path, &mut files, &mut total)?;
            }
        }
        if files.is_empty() {
            return Err(LocalError::Io {
                path: path.to_path_buf(),
                message: "no packages/<LETTER>/<name>/<release>/package.json files: not a Universe directory".into(),
            });
        }
        Repository::from_universe_layout(&files)
            .map_err(|source| LocalError::Bad { path: path.to_path_buf(), source })?
    } else {
        if meta.len() > MAX_REPO_BYTES as u64 {
            return Err(LocalError::TooLarge { path: path.to_path_buf(), size: meta.len() as usize });
        }
        let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
        Repository::from_index_json(&bytes).map_err(|source| LocalError::Bad { path: path.to_path_buf(), source })?
    };
    let doc = json!({ "packages": repo.packages });
    let size = serde_json::to_vec(&doc).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_REPO_BYTES {
        return Err(LocalError::TooLarge { path: path.to_path_buf(), size });
    }
    Ok((repo, doc))
}

/// Adds every regular file below `dir` as `relative path → bytes` (symbolic links to
/// directories are not followed; the total is capped).
fn collect(
    dir: &Path,
    base: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut usize,
) -> Result<(), LocalError> {
    let io = |p: &Path, e: std::io::Error| LocalError::Io { path: p.to_path_buf(), message: e.to_string() };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(|e| io(dir, e))?.collect::<Result<_, _>>().map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if kind.is_dir() {
            collect(&path, base, files, total)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            *total += bytes.len();
            if *total > MAX_REPO_BYTES {
                return Err(LocalError::TooLarge { path: base.to_path_buf(), size: *total });
            }
            let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            files.insert(rel, bytes);
        }
    }
    Ok(())
}
