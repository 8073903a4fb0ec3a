//! Size-bounded `stdout`/`stderr` files in the sandbox, written by the shim.
//!
//! The task writes into pipes; the shim reads them and appends to `SANDBOX/stdout` (or
//! `stderr`). When a file would pass `max_file_bytes` it is rotated: `NAME.{n-2}` → `NAME.{n-1}`,
//! …, `NAME` → `NAME.1`, oldest dropped, like Mesos's logrotate container logger. The task
//! never holds these files, so rotation needs no signal or `copytruncate`, and a task that
//! writes forever cannot fill the disk. Files are opened with `O_NOFOLLOW`: the sandbox belongs to
//! the task's user, who must not be able to point the root shim at another file with a symlink.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::spec::LogPolicy;

/// One rotated log stream.
#[derive(Debug)]
pub(crate) struct RotatingLog {
    dir: PathBuf,
    name: &'static str,
    policy: LogPolicy,
    file: File,
    size: u64,
}

impl RotatingLog {
    /// Opens `dir/name` for appending (keeping what an earlier run wrote).
    pub fn open(dir: &Path, name: &'static str, policy: LogPolicy) -> io::Result<Self> {
        let file = open(&dir.join(name), false)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog { dir: dir.to_path_buf(), name, policy, file, size })
    }

    /// Appends `data`, rotating as often as needed; each file ends up at most
    /// `max_file_bytes` long.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.size >= self.policy.max_file_bytes {
                self.rotate()?;
            }
            let room = (self.policy.max_file_bytes - self.size) as usize;
            let n = room.min(data.len());
            self.file.write_all(&data[..n])?;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn path(&self, generation: u32) -> PathBuf {
        match generation {
            0 => self.dir.join(self.name),
            n => self.dir.join(format!("{}.{n}", self.name)),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.policy.max_files;
        if keep > 1 {
            ignore_missing(std::fs::remove_file(self.path(keep - 1)))?;
            for generation in (1..keep - 1).rev() {
                ignore_missing(std::fs::rename(self.path(generation), self.path(generation + 1)))?;
            }
            std::fs::rename(self.path(0), self.path(1))?;
        }
        self.file = open(&self.path(0), true)?;
        self.size = 0;
        Ok(())
    }
}

fn open(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).mode(0o644).custom_flags(nix::libc::O_NOFOLLOW);
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    options.open(path)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(dir: &Path) -> Vec<(String, u64)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn rotation_keeps_the_newest_bytes_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingLog::open(dir.path(), "stdout", LogPolicy { max_file_bytes: 10, max_files: 3 }).unwrap();
        let data: Vec<u8> = (0..45u8).map(|i| b'a' + i % 26).collect();
        for chunk in data.chunks(7) {
            log.write(chunk).unwrap();
        }
        assert_eq!(sizes(dir.path()), [("stdout".into(), 5), ("stdout.1".into(), 10), ("stdout.2".into(), 10)]);
        let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
        let newest: Vec<u8> = [read("stdout.2"), read("stdout.1"), read("stdout")].concat();
        assert_eq!(newest, data[20..]);
    }

    #[test]
    fn one_file_policy_truncates_in_place_and_reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let policy = LogPolicy { max_file_bytes: 4, max_files: 1 };
        RotatingLog::open(dir.path(), "stderr", policy).unwrap().write(b"abcdefg").unwrap();
        assert_eq!(std::fs::read(dir.path().join("stderr")).unwrap(), b"efg");
        RotatingLog::open(dir.path(), "stderr", policy).unwrap().write(b"h").unwrap();
        assert_eq!(sizes(dir.path()), [("stderr".into(), 4)]);
    }

    #[test]
    fn a_symlinked_log_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("stdout")).unwrap();
        assert!(RotatingLog::open(dir.path(), "stdout", LogPolicy::default()).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }
}
