//! Status updates waiting for the masters' acknowledgement, kept on disk so they survive an
//! agent restart. Updates leave in the order they were queued (so per task, in order) and
//! are deleted only after a master answered that the update is committed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::core::TaskStatus;

pub struct Outbox {
    dir: PathBuf,
    next: Mutex<u64>,
    /// Updates queued and not yet acknowledged (kept in memory: `is_empty` is on a hot path).
    pending: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

fn io(context: &str, path: &Path, e: std::io::Error) -> String {
    format!("{context} {}: {e}", path.display())
}

impl Outbox {
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let entries = Self::entries(dir)?;
        let next = entries.last().map_or(0, |(seq, _)| seq + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            next: Mutex::new(next),
            pending: std::sync::atomic::AtomicUsize::new(entries.len()),
            notify: tokio::sync::Notify::new(),
        })
    }

    fn entries(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io("reading", dir, e))? {
            let path = entry.map_err(|e| io("reading", dir, e))?.path();
            let seq = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
            if let (Some(seq), Some("json")) = (seq, path.extension().and_then(|e| e.to_str())) {
                out.push((seq, path));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Queues an update durably (fsync'd before returning).
    pub fn push(&self, status: &TaskStatus) -> Result<(), String> {
        let mut next = self.next.lock().expect("outbox lock");
        let path = self.dir.join(format!("{:020}.json", *next));
        crate::atomic_file::write_atomic(&path, &serde_json::to_vec(status).expect("status serialises"))?;
        *next += 1;
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(next);
        self.notify.notify_one();
        Ok(())
    }

    /// The oldest pending update.
    pub fn peek(&self) -> Result<Option<(PathBuf, TaskStatus)>, String> {
        for (_, path) in Self::entries(&self.dir)? {
            let bytes = std::fs::read(&path).map_err(|e| io("reading", &path, e))?;
            match serde_json::from_slice(&bytes) {
                Ok(status) => return Ok(Some((path, status))),
                // A torn write from a crash: the update was never acknowledged; drop it.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping an unreadable queued status update");
                    let _ = self.ack(&path);
                }
            }
        }
        Ok(None)
    }

    pub fn ack(&self, path: &Path) -> Result<(), String> {
        std::fs::remove_file(path).map_err(|e| io("removing", path, e))?;
        let _ =
            self.pending.fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.pending.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when something was pushed since the last call.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::TaskState;

    fn status(n: u32) -> TaskStatus {
        TaskStatus {
            task_id: format!("t{n}"),
            uuid: format!("u{n}"),
            state: TaskState::TASK_RUNNING,
            reason: None,
            message: String::new(),
            timestamp_ms: 1,
            exit_code: None,
            healthy: None,
            source: "SOURCE_EXECUTOR".into(),
        }
    }

    #[test]
    fn updates_leave_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        for n in 0..3 {
            outbox.push(&status(n)).unwrap();
        }
        let (path, first) = outbox.peek().unwrap().unwrap();
        assert_eq!(first.uuid, "u0");
        outbox.ack(&path).unwrap();
        drop(outbox);
        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.len(), 2);
        assert_eq!(reopened.peek().unwrap().unwrap().1.uuid, "u1");
        reopened.push(&status(9)).unwrap();
        let order: Vec<String> = std::iter::from_fn(|| {
            let (p, s) = reopened.peek().unwrap()?;
            reopened.ack(&p).unwrap();
            Some(s.uuid)
        })
        .collect();
        assert_eq!(order, ["u1", "u2", "u9"]);
    }
}
