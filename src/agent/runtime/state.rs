//! The runtime state directory: one directory per container, the checkpoint that lets a
//! restarted agent find its containers again.
//!
//! ```text
//! STATE_DIR/containers/ID/
//!   config.json     the launch plan (written by the agent before the shim starts; read by the
//!                   shim, the container init and exec helpers; never changes afterwards)
//!   state.json      pids + start times of shim, init and task (written by the shim)
//!   exit.json       the exit status (written once by the shim, last)
//!   kill_requested  marker: a kill was asked for (so exit.json says kill_requested)
//!   shim.log        stderr of the shim and the container init
//!   rootfs/         mount point of the overlay root (only inside the container's mount ns)
//!   stdout.fifo, stderr.fifo   the task's output on its way to the shim (removed once open)
//!   exec/N/         FIFOs and files of one exec
//! ```
//!
//! Every JSON file is written atomically (temporary file, then rename), so a reader sees either
//! nothing, the previous version or the whole new file, whatever process dies when. Only
//! `exit.json` is also made durable (fsync of the file before the rename and of the directory
//! after): it is the one record that matters after the processes are gone. `config.json` and
//! `state.json` describe live processes, which a host crash kills anyway, so they are not
//! synced (a sync costs milliseconds on the launch path); after a crash they may be missing or
//! empty, which recovery reads as "never written" ([`super::recover`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Result, RuntimeError};
use super::procfs::ProcIdentity;
use super::spec::ContainerId;

/// Paths inside one container's state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerDir {
    pub path: PathBuf,
}

impl ContainerDir {
    pub fn new(state_dir: &Path, id: &ContainerId) -> Self {
        ContainerDir { path: containers_dir(state_dir).join(id.as_str()) }
    }

    pub fn at(path: impl Into<PathBuf>) -> Self {
        ContainerDir { path: path.into() }
    }

    pub fn plan(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }
    pub fn exit(&self) -> PathBuf {
        self.path.join("exit.json")
    }
    pub fn kill_marker(&self) -> PathBuf {
        self.path.join("kill_requested")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.path.join("shim.log")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }
    pub fn stdout_fifo(&self) -> PathBuf {
        self.path.join("stdout.fifo")
    }
    pub fn stderr_fifo(&self) -> PathBuf {
        self.path.join("stderr.fifo")
    }
    pub fn exec_dir(&self, n: u64) -> PathBuf {
        self.path.join("exec").join(n.to_string())
    }
}

pub(crate) fn containers_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("containers")
}

/// What the shim records about the processes of a running container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct ShimState {
    pub shim: ProcIdentity,
    /// The container init (PID 1 inside), once spawned.
    pub init: Option<ProcIdentity>,
    /// Host tid of the init's thread that created the namespaces (the init itself when it is
    /// single-threaded, as in production). Exec joins the namespaces of this thread.
    #[serde(default)]
    pub init_thread: Option<u32>,
    /// The task's main process, once started; it leads its own process group.
    pub task: Option<ProcIdentity>,
}

/// Writes `value` as JSON to `path` atomically (not synced: see the module docs).
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, &encode(path, value)?, false)
}

/// Writes `value` as JSON to `path` atomically and durably (`exit.json`).
pub(crate) fn write_json_durable<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, &encode(path, value)?, true)
}

fn encode<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| RuntimeError::CorruptState { path: path.to_path_buf(), reason: format!("cannot encode: {e}") })
}

/// Writes `bytes` to `path` through a temporary file and a rename; with `durable`, fsyncs the
/// file before the rename and the directory after it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        RuntimeError::io("write", path, e)
    })
}

/// Whether `path` is an empty file: what an unsynced atomic write can leave after a host crash.
pub(crate) fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

/// Reads a JSON file; `None` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RuntimeError::CorruptState { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_json_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json_atomic(&path, &vec![1u32, 2, 3]).unwrap();
        write_json_durable(&path, &vec![4u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![4]));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("exit.json")]);
        std::fs::write(&path, b"{truncated").unwrap();
        let err = read_json::<Vec<u32>>(&path).unwrap_err().to_string();
        assert!(err.contains("corrupt runtime state") && err.contains("exit.json"), "{err}");
    }
}
