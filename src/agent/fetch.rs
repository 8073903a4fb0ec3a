//! The Mesos fetcher: before a task's container starts (while the task is TASK_STARTING), the
//! agent downloads the task's `fetch` URIs (Marathon's `fetch` and `uris`) into its sandbox.
//!
//! As in Mesos, each URI is downloaded to its `destPath` in the sandbox (default: the last
//! segment of the URI's path), replacing a file that is there. An `executable` file gets mode
//! 0755 and is never extracted. Otherwise, with `extract` (the default), an archive is unpacked
//! into the sandbox root and stays there too: `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`,
//! `.tar.xz`/`.txz`, `.zip` (stored and deflate entries); a bare `.gz` is gunzipped into the
//! sandbox root under its name without `.gz`. Other files are left as downloaded. The first
//! failure ends the task TASK_FAILED with `REASON_CONTAINER_LAUNCH_FAILED` (Mesos has no
//! fetcher reason either) and a message naming the URI and the cause.
//!
//! Where medos differs from Mesos:
//! - only `http` and `https`: no `file://` or bare paths (the agent runs as root and would copy
//!   files of its host into sandboxes), no `hdfs://`, `s3://`, `ftp://`;
//! - no fetcher cache: `cache` is accepted and every task downloads its URIs;
//! - downloads use a client of their own: TLS is verified against the host's trust store and the
//!   agent's cluster certificate is never presented; redirects are followed (at most 10);
//! - an image task whose user is a name (resolved only inside the image, at launch) gets files
//!   owned by the agent's user, readable by everyone; Mesos would fail the fetch when the name
//!   is unknown on the host.
//!
//! **Invariant: nothing outside the sandbox is created, changed or followed.** As in
//! `image::unpack`, every path is reached from the sandbox's directory descriptor one component
//! at a time with `O_NOFOLLOW | O_DIRECTORY`: `destPath`s and archive entries that are absolute
//! or contain `..` are refused, and so is a path through a symlink; files are created with
//! `O_EXCL | O_NOFOLLOW` (a file or symlink in the way is removed, never written through; a
//! directory in the way is an error). Symlinks from archives must stay inside the sandbox
//! (relative, with `..` only at the start and never above the sandbox root); hard links must
//! name a regular file already unpacked; device nodes and fifos are refused. Owners in archives
//! are ignored: everything belongs to the task's user (the agent's user when the task has none),
//! and setuid, setgid and sticky bits are dropped. Limits ([`FetchSettings`]): bytes per
//! download, bytes and entries per unpacked archive, a stall timeout (Mesos's
//! `--fetcher_stall_timeout`, 60 s) and a total timeout per URI.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use tokio_util::sync::CancellationToken;

use crate::core::Task;
use crate::core::tasks::{FetchUri, sandbox_path};

/// The fetcher's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Largest download (bytes).
    pub max_download_bytes: u64,
    /// Most bytes one archive may unpack to (guards against decompression bombs).
    pub max_unpacked_bytes: u64,
    /// Most entries one archive may have.
    pub max_archive_entries: u64,
    pub connect_timeout: Duration,
    /// A download that receives nothing for this long fails (Mesos's `--fetcher_stall_timeout`).
    pub stall_timeout: Duration,
    /// Longest time one download may take.
    pub timeout: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            max_download_bytes: 2 << 30,
            max_unpacked_bytes: 8 << 30,
            max_archive_entries: 1_000_000,
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// Who owns the files the fetcher writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub uri: String,
    pub cause: String,
    /// The task was killed while fetching.
    pub cancelled: bool,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failed to fetch '{}': {}", self.uri, self.cause)
    }
}

const KILLED: &str = "the task was killed while its URIs were being fetched";

/// Downloads and unpacks fetch URIs. One per agent; its HTTP client pools connections.
pub struct Fetcher {
    client: reqwest::Client,
    settings: FetchSettings,
}

impl Fetcher {
    pub fn new(settings: FetchSettings) -> Result<Self, String> {
        crate::pki::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("medos-fetcher/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the fetcher's HTTP client: {}", chain(&e)))?;
        Ok(Fetcher { client, settings })
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// Fetches `uris` in order into the existing directory `sandbox`. Blocks: call it on a
    /// blocking thread of the runtime `handle` (downloads run on `handle`, unpacking here).
    /// `cancel` stops it (the task was killed).
    pub fn fetch_all(
        &self,
        handle: &tokio::runtime::Handle,
        task_id: &str,
        uris: &[FetchUri],
        sandbox: &Path,
        owner: Option<Owner>,
        cancel: &CancellationToken,
    ) -> Result<(), FetchError> {
        for uri in uris {
            self.fetch_one(handle, task_id, uri, sandbox, owner, cancel).map_err(|cause| {
                let cancelled = cancel.is_cancelled();
                tracing::warn!(task = %task_id, uri = %uri.uri, %cause, cancelled, "fetch failed");
                FetchError { uri: uri.uri.clone(), cause: if cancelled { KILLED.into() } else { cause }, cancelled }
            })?;
        }
        Ok(())
    }

    fn fetch_one(
        &self,
        handle: &tokio::runtime::Handle,
        task_id: &str,
        uri: &FetchUri,
        sandbox: &Path,
        owner: Option<Owner>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        uri.check()?;
        let url = reqwest::Url::parse(&uri.uri).map_err(|e| format!("not a valid URI: {e}"))?;
        let dest = match &uri.dest_path {
            Some(dest) => dest.clone(),
            None => file_name_of(&url)?,
        };
        let components = sandbox_path(&dest).map_err(|e| format!("the destination {dest:?} {e}"))?;
        let (name, dirs) = components.split_last().expect("sandbox_path names a file");
        let name = OsStr::new(*name);
        let root = Sandbox::open(sandbox, owner)?;
        let parent = root.dir(dirs, true, &dest)?;

        // Download next to the destination, then rename: a failed download leaves nothing.
        let temp = OsString::from(format!(".medos-fetch-{}.part", hex::encode(rand::random::<[u8; 6]>())));
        let mut file = root.create_file(&parent, &temp, 0o600, &dest)?;
        let download = tokio::time::timeout(self.settings.timeout, self.download(url, &mut file, cancel));
        let result = match handle.block_on(download) {
            Ok(result) => result,
            Err(_) => Err(format!("the download took longer than {}s", self.settings.timeout.as_secs())),
        };
        let result = result.and_then(|bytes| {
            let mode = if uri.executable { 0o755 } else { 0o644 };
            fchmod(&file, Mode::from_bits_truncate(mode)).map_err(|e| format!("setting the mode of {dest}: {e}"))?;
            drop(file);
            renameat(&parent, temp.as_os_str(), &parent, name).map_err(|e| match e {
                Errno::EISDIR | Errno::ENOTEMPTY | Errno::EEXIST => format!("{dest} is a directory in the sandbox"),
                e => format!("moving the download to {dest}: {e}"),
            })?;
            Ok(bytes)
        });
        let bytes = result.inspect_err(|_| {
            let _ = unlinkat(&parent, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        })?;
        tracing::info!(task = %task_id, uri = %uri.uri, dest = %dest, bytes, executable = uri.executable, "fetched");

        if uri.executable || !uri.extract {
            return Ok(());
        }
        let Some(kind) = ArchiveKind::of(&dest) else { return Ok(()) };
        let fd = openat(&parent, name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| format!("opening {dest}: {e}"))?;
        let mut unpack = Unpack::new(&root, &self.settings, cancel);
        unpack.archive(kind, File::from(fd), &dest).map_err(|e| format!("unpacking {dest}: {e}"))?;
        tracing::info!(task = %task_id, uri = %uri.uri, archive = %dest, entries = unpack.entries,
            bytes = unpack.bytes, "unpacked into the sandbox");
        Ok(())
    }

    /// Streams `url` into `file`; returns the byte count.
    async fn download(&self, url: reqwest::Url, file: &mut File, cancel: &CancellationToken) -> Result<u64, String> {
        let stall = self.settings.stall_timeout;
        let max = self.settings.max_download_bytes;
        let response = tokio::select! {
            _ = cancel.cancelled() => return Err(KILLED.into()),
            r = tokio::time::timeout(stall, self.client.get(url).send()) => match r {
                Err(_) => return Err(format!("no answer within {}s", stall.as_secs_f64())),
                Ok(Err(e)) => return Err(chain(&e.without_url())),
                Ok(Ok(response)) => response,
            },
        };
        // Mesos accepts exactly 200.
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("the server answered HTTP {}", response.status()));
        }
        if let Some(length) = response.content_length()
            && length > max
        {
            return Err(format!("the file has {length} bytes; this agent fetches at most {max}"));
        }
        let mut stream = response.bytes_stream();
        let mut total = 0u64;
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Err(KILLED.into()),
                c = tokio::time::timeout(stall, stream.next()) => match c {
                    Err(_) => {
                        return Err(format!(
                            "the download stalled: nothing received for {}s after {total} bytes",
                            stall.as_secs_f64()
                        ))
                    }
                    Ok(None) => return Ok(total),
                    Ok(Some(Err(e))) => return Err(format!("the download broke after {total} bytes: {}", chain(&e.without_url()))),
                    Ok(Some(Ok(chunk))) => chunk,
                },
            };
            total += chunk.len() as u64;
            if total > max {
                return Err(format!("the file is larger than {max} bytes, the most this agent fetches"));
            }
            // A blocking write, on the blocking thread that runs this future.
            file.write_all(&chunk).map_err(|e| format!("writing the download into the sandbox: {e}"))?;
        }
    }
}

/// Who owns fetched files: the task's user (Mesos runs its fetcher as that user). A name is
/// looked up on the host for host tasks; image tasks are resolved only for `uid[:gid]`.
pub fn owner_of(task: &Task) -> Result<Option<Owner>, String> {
    let user =
        task.spec.user.clone().or_else(|| task.image.as_ref().and_then(|i| i.user.clone())).filter(|u| !u.is_empty());
    let Some(user) = user else { return Ok(None) };
    if task.image.is_none() {
        let credentials = super::runtime::user::resolve(&user, None).map_err(|e| e.to_string())?;
        return Ok(Some(Owner { uid: credentials.uid, gid: credentials.gid }));
    }
    let (uid, gid) = user.split_once(':').unwrap_or((&user, "0"));
    Ok(uid.parse().ok().zip(gid.parse().ok()).map(|(uid, gid)| Owner { uid, gid }))
}

/// The last segment of the URI's path (Mesos's default file name).
fn file_name_of(url: &reqwest::Url) -> Result<String, String> {
    let name = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err("the URI's path names no file; give destPath".into());
    }
    Ok(name.to_string())
}

/// An error and its sources, joined (reqwest's own message omits the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Tar(Compression),
    Zip,
    /// A single gzipped file.
    Gzip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

impl ArchiveKind {
    /// What the Mesos fetcher extracts, by the name of the fetched file.
    fn of(name: &str) -> Option<ArchiveKind> {
        let tar = |ext: &[&str]| ext.iter().any(|e| name.ends_with(e));
        Some(if tar(&[".tar"]) {
            ArchiveKind::Tar(Compression::None)
        } else if tar(&[".tgz", ".tar.gz"]) {
            ArchiveKind::Tar(Compression::Gzip)
        } else if tar(&[".tbz2", ".tar.bz2"]) {
            ArchiveKind::Tar(Compression::Bzip2)
        } else if tar(&[".txz", ".tar.xz"]) {
            ArchiveKind::Tar(Compression::Xz)
        } else if tar(&[".zip"]) {
            ArchiveKind::Zip
        } else if tar(&[".gz"]) {
            ArchiveKind::Gzip
        } else {
            return None;
        })
    }
}

/// The sandbox directory, written only through descriptors reached without following symlinks.
struct Sandbox {
    root: OwnedFd,
    owner: Option<Owner>,
}

impl Sandbox {
    fn open(path: &Path, owner: Option<Owner>) -> Result<Sandbox, String> {
        let root = open_dir(nix::fcntl::AT_FDCWD, path.as_os_str())
            .map_err(|e| format!("opening the sandbox {}: {e}", path.display()))?;
        Ok(Sandbox { root, owner })
    }

    /// The directory `dirs` below the root (created, owned by the owner, when `create`),
    /// opened one component at a time without following symlinks.
    fn dir<S: AsRef<OsStr>>(&self, dirs: &[S], create: bool, shown: &str) -> Result<OwnedFd, String> {
        let mut current = open_dir(&self.root, OsStr::new(".")).map_err(|e| format!("opening the sandbox: {e}"))?;
        for (depth, component) in dirs.iter().enumerate() {
            let component = component.as_ref();
            let next = match open_dir(&current, component) {
                Err(Errno::ENOENT) if create => match mkdirat(&current, component, Mode::from_bits_truncate(0o755)) {
                    Ok(()) => open_dir(&current, component).and_then(|fd| {
                        self.chown(&fd)?;
                        fchmod(&fd, Mode::from_bits_truncate(0o755))?;
                        Ok(fd)
                    }),
                    Err(Errno::EEXIST) => open_dir(&current, component),
                    Err(e) => Err(e),
                },
                other => other,
            };
            let prefix = || dirs[..=depth].iter().map(|c| c.as_ref().to_string_lossy()).collect::<Vec<_>>().join("/");
            current = next.map_err(|e| match e {
                Errno::ELOOP | Errno::ENOTDIR
                    if fstatat(&current, component, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|s| file_type(s.st_mode) == SFlag::S_IFLNK) =>
                {
                    format!("{shown}: {} is a symbolic link; the fetcher never follows symlinks", prefix())
                }
                Errno::ELOOP | Errno::ENOTDIR => format!("{shown}: {} is not a directory", prefix()),
                Errno::ENOENT => format!("{shown}: {} does not exist", prefix()),
                e => format!("{shown}: opening the directory {}: {e}", prefix()),
            })?;
        }
        Ok(current)
    }

    fn chown(&self, fd: impl AsFd) -> nix::Result<()> {
        match self.owner {
            Some(o) => fchown(fd, Some(Uid::from_raw(o.uid)), Some(Gid::from_raw(o.gid))),
            None => Ok(()),
        }
    }

    /// Makes room for `name` in `parent`: a file or symlink there is removed; an existing
    /// directory is kept with `keep_dir` (returns `true`) and is an error otherwise.
    fn clear(&self, parent: &OwnedFd, name: &OsStr, keep_dir: bool, shown: &str) -> Result<bool, String> {
        match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(format!("{shown}: inspecting what is there: {e}")),
            Ok(stat) if file_type(stat.st_mode) == SFlag::S_IFDIR => {
                if keep_dir {
                    Ok(true)
                } else {
                    Err(format!("{shown}: a directory is in the way"))
                }
            }
            Ok(_) => unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                .map(|()| false)
                .map_err(|e| format!("{shown}: replacing what is there: {e}")),
        }
    }

    /// A new file `name` in `parent` with `mode` (permission bits only), owned by the owner.
    fn create_file(&self, parent: &OwnedFd, name: &OsStr, mode: u32, shown: &str) -> Result<File, String> {
        self.clear(parent, name, false, shown)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(parent, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("{shown}: creating the file: {e}"))?;
        let file = File::from(fd);
        // Owner before mode: chown clears setuid/setgid (which are dropped anyway).
        self.chown(&file).map_err(|e| format!("{shown}: setting the owner: {e}"))?;
        fchmod(&file, Mode::from_bits_truncate(mode & 0o777)).map_err(|e| format!("{shown}: setting the mode: {e}"))?;
        Ok(file)
    }

    fn mkdir(&self, parent: &OwnedFd, name: &OsStr, mode: u32, shown: &str) -> Result<(), String> {
        let exists = self.clear(parent, name, true, shown)?;
        if !exists {
            mkdirat(parent, name, Mode::from_bits_truncate(0o700))
                .map_err(|e| format!("{shown}: creating the directory: {e}"))?;
        }
        let fd = open_dir(parent, name).map_err(|e| format!("{shown}: opening the directory: {e}"))?;
        self.chown(&fd).map_err(|e| format!("{shown}: setting the owner: {e}"))?;
        // The owner keeps full access, so later entries can be written into it.
        fchmod(&fd, Mode::from_bits_truncate((mode & 0o777) | 0o700))
            .map_err(|e| format!("{shown}: setting the mode: {e}"))
    }

    /// A symlink at depth `depth` (the number of directories above it in the sandbox).
    fn symlink(&self, parent: &OwnedFd, name: &OsStr, depth: usize, target: &[u8], shown: &str) -> Result<(), String> {
        check_link_target(target, depth)
            .map_err(|r| format!("{shown}: the symlink target {:?} {r}", String::from_utf8_lossy(target)))?;
        self.clear(parent, name, false, shown)?;
        symlinkat(OsStr::from_bytes(target), parent, name)
            .map_err(|e| format!("{shown}: creating the symlink: {e}"))?;
        if let Some(o) = self.owner {
            fchownat(
                parent,
                name,
                Some(Uid::from_raw(o.uid)),
                Some(Gid::from_raw(o.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("{shown}: setting the owner: {e}"))?;
        }
        Ok(())
    }

    /// A hard link to the regular file `target` (a sandbox path), which must already exist.
    fn hard_link(&self, parent: &OwnedFd, name: &OsStr, target: &[OsString], shown: &str) -> Result<(), String> {
        let shown_target = target.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
        let refuse = |why: &str| format!("{shown}: the hard link target {shown_target:?} {why}");
        let Some((target_name, target_dirs)) = target.split_last() else {
            return Err(refuse("is the sandbox itself"));
        };
        let target_parent = self.dir(target_dirs, false, shown)?;
        match fstatat(&target_parent, target_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) if file_type(stat.st_mode) == SFlag::S_IFREG => {}
            // A second name for a symlink would resolve from another directory.
            Ok(_) => return Err(refuse("is not a regular file")),
            Err(Errno::ENOENT) => return Err(refuse("is not an earlier entry of the archive")),
            Err(e) => return Err(format!("{shown}: inspecting the hard link target: {e}")),
        }
        let same = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok().map(|s| (s.st_dev, s.st_ino))
            == fstatat(&target_parent, target_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .ok()
                .map(|s| (s.st_dev, s.st_ino));
        if same {
            return Ok(());
        }
        self.clear(parent, name, false, shown)?;
        linkat(&target_parent, target_name.as_os_str(), parent, name, AtFlags::empty())
            .map_err(|e| format!("{shown}: creating the hard link: {e}"))
    }
}

fn open_dir(parent: impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
}

fn file_type(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT
}

/// Splits an archive entry's path into normal components (empty for the archive's root).
fn entry_path(raw: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if raw.starts_with(b"/") {
        return Err("is absolute; archive entries must be relative to the sandbox");
    }
    let mut path = Vec::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("contains `..`, which could leave the sandbox"),
            c => path.push(OsStr::from_bytes(c).to_owned()),
        }
    }
    Ok(path)
}

/// A symlink `depth` directories below the sandbox root may point only inside the sandbox:
/// relative, with `..` only at the start (so the kernel resolves it as written) and no more of
/// them than `depth`.
fn check_link_target(target: &[u8], depth: usize) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("is empty");
    }
    if target.starts_with(b"/") {
        return Err("is absolute; symlinks must stay inside the sandbox");
    }
    let mut up = 0;
    let mut named = false;
    for component in target.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if named => return Err("has `..` after a name; only leading `..` are allowed"),
            b".." => up += 1,
            _ => named = true,
        }
    }
    if up > depth {
        return Err("points outside the sandbox");
    }
    Ok(())
}

/// Unpacks archives into the sandbox root, counting entries and bytes against the limits.
struct Unpack<'a> {
    root: &'a Sandbox,
    settings: &'a FetchSettings,
    cancel: &'a CancellationToken,
    entries: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<'a> Unpack<'a> {
    fn new(root: &'a Sandbox, settings: &'a FetchSettings, cancel: &'a CancellationToken) -> Self {
        Unpack { root, settings, cancel, entries: 0, bytes: 0, buf: vec![0; 128 * 1024] }
    }

    fn archive(&mut self, kind: ArchiveKind, file: File, name: &str) -> Result<(), String> {
        match kind {
            ArchiveKind::Tar(Compression::None) => self.tar(BufReader::new(file)),
            ArchiveKind::Tar(Compression::Gzip) => self.tar(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
            ArchiveKind::Tar(Compression::Bzip2) => self.tar(bzip2::read::MultiBzDecoder::new(BufReader::new(file))),
            ArchiveKind::Tar(Compression::Xz) => self.tar(xz_reader(file)?),
            ArchiveKind::Zip => self.zip(file),
            ArchiveKind::Gzip => {
                // Into the sandbox root under the name without `.gz`, as Mesos's `gunzip -c`.
                let base = name.rsplit('/').next().unwrap_or(name);
                let out = base.strip_suffix(".gz").filter(|b| !b.is_empty() && *b != "." && *b != "..");
                let out = out.ok_or_else(|| format!("{base:?} leaves no file name without .gz"))?;
                self.count(out)?;
                let parent = self.root.dir::<&str>(&[], false, out)?;
                let mut input = flate2::read::MultiGzDecoder::new(BufReader::new(file));
                self.file(&parent, OsStr::new(out), 0o644, &mut input, None, out)
            }
        }
    }

    fn count(&mut self, shown: &str) -> Result<(), String> {
        if self.cancel.is_cancelled() {
            return Err(KILLED.into());
        }
        self.entries += 1;
        if self.entries > self.settings.max_archive_entries {
            return Err(format!(
                "{shown}: the archive has more than {} entries, the most this agent unpacks",
                self.settings.max_archive_entries
            ));
        }
        Ok(())
    }

    fn tar(&mut self, reader: impl Read) -> Result<(), String> {
        use tar::EntryType;
        let mut archive = tar::Archive::new(reader);
        let mut last = String::new();
        let corrupt = |last: &str, e: io::Error| {
            if last.is_empty() {
                format!("not a valid tar archive: {e}")
            } else {
                format!("the archive is corrupt after entry {last:?}: {e}")
            }
        };
        for entry in archive.entries().map_err(|e| corrupt(&last, e))? {
            let mut entry = entry.map_err(|e| corrupt(&last, e))?;
            last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let shown = last.clone();
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
            ) {
                continue;
            }
            self.count(&shown)?;
            let path = entry_path(&entry.path_bytes()).map_err(|r| format!("entry {shown:?} {r}"))?;
            let Some((name, dirs)) = path.split_last() else {
                if kind == EntryType::Directory {
                    continue; // the archive's root, "./"
                }
                return Err(format!("entry {shown:?} names the sandbox itself"));
            };
            let mode = entry.header().mode().map_err(|e| format!("entry {shown:?}: reading the mode: {e}"))?;
            let parent = self.root.dir(dirs, true, &shown)?;
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    let size = entry.size();
                    self.file(&parent, name, mode, &mut entry, Some(size), &shown)?
                }
                EntryType::Directory => self.root.mkdir(&parent, name, mode, &shown)?,
                EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| format!("entry {shown:?}: a symlink without a target"))?;
                    self.root.symlink(&parent, name, dirs.len(), &target, &shown)?
                }
                EntryType::Link => {
                    let raw = entry
                        .link_name_bytes()
                        .ok_or_else(|| format!("entry {shown:?}: a hard link without a target"))?;
                    let target = entry_path(&raw).map_err(|r| {
                        format!("entry {shown:?}: the hard link target {:?} {r}", String::from_utf8_lossy(&raw))
                    })?;
                    self.root.hard_link(&parent, name, &target, &shown)?
                }
                EntryType::Char | EntryType::Block => {
                    return Err(format!("entry {shown:?} is a device node; device nodes are not unpacked"));
                }
                EntryType::Fifo => return Err(format!("entry {shown:?} is a fifo; fifos are not unpacked")),
                other => {
                    return Err(format!("entry {shown:?} has the unsupported tar type {:?}", other.as_byte() as char));
                }
            }
        }
        Ok(())
    }

    fn zip(&mut self, file: File) -> Result<(), String> {
        let mut archive =
            zip::ZipArchive::new(BufReader::new(file)).map_err(|e| format!("not a valid zip archive: {e}"))?;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
            let shown = entry.name().to_string();
            self.count(&shown)?;
            let path = entry_path(shown.as_bytes()).map_err(|r| format!("entry {shown:?} {r}"))?;
            let Some((name, dirs)) = path.split_last() else {
                if entry.is_dir() {
                    continue;
                }
                return Err(format!("entry {shown:?} names the sandbox itself"));
            };
            let parent = self.root.dir(dirs, true, &shown)?;
            let mode = entry.unix_mode().map(|m| m & 0o777).filter(|m| *m != 0);
            if entry.is_dir() {
                self.root.mkdir(&parent, name, mode.unwrap_or(0o755), &shown)?;
            } else if entry.is_symlink() {
                let mut target = Vec::new();
                (&mut entry).take(4096).read_to_end(&mut target).map_err(|e| format!("entry {shown:?}: {e}"))?;
                self.root.symlink(&parent, name, dirs.len(), &target, &shown)?;
            } else {
                let size = entry.size();
                self.file(&parent, name, mode.unwrap_or(0o644), &mut entry, Some(size), &shown)?;
            }
        }
        Ok(())
    }

    /// Writes `content` to a new file, within the unpacked-bytes limit.
    fn file(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        mode: u32,
        content: &mut dyn Read,
        declared: Option<u64>,
        shown: &str,
    ) -> Result<(), String> {
        let max = self.settings.max_unpacked_bytes;
        let too_big = || format!("{shown}: the archive unpacks to more than {max} bytes, the most this agent writes");
        if declared.is_some_and(|size| self.bytes.saturating_add(size) > max) {
            return Err(too_big());
        }
        let mut file = self.root.create_file(parent, name, mode, shown)?;
        let mut written = 0u64;
        loop {
            let n = match content.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("{shown}: reading the archive: {e}")),
            };
            self.bytes += n as u64;
            if self.bytes > max {
                return Err(too_big());
            }
            file.write_all(&self.buf[..n]).map_err(|e| format!("{shown}: writing the file: {e}"))?;
            written += n as u64;
        }
        if let Some(size) = declared
            && written != size
        {
            return Err(format!("{shown}: the archive is truncated ({written} of {size} bytes)"));
        }
        Ok(())
    }
}

/// What the xz decoder thread sends.
enum Piece {
    Data(Vec<u8>),
    Failed(io::Error),
    Done,
}

/// The decoded content of an xz file, as a reader: lzma-rs decodes into a writer, so the
/// decoder runs on a thread of its own and hands over chunks (at most a few in flight). The
/// thread ends when decoding does or when the reader is dropped.
fn xz_reader(file: File) -> Result<impl Read, String> {
    struct Sender(mpsc::SyncSender<Piece>);
    impl Write for Sender {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .send(Piece::Data(buf.to_vec()))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader stopped"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    struct Receiver {
        rx: mpsc::Receiver<Piece>,
        chunk: Vec<u8>,
        at: usize,
        done: bool,
    }
    impl Read for Receiver {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.at == self.chunk.len() {
                if self.done {
                    return Ok(0);
                }
                match self.rx.recv() {
                    Ok(Piece::Data(chunk)) => (self.chunk, self.at) = (chunk, 0),
                    Ok(Piece::Failed(e)) => return Err(e),
                    Ok(Piece::Done) => self.done = true,
                    Err(_) => return Err(io::Error::other("the xz decoder stopped unexpectedly")),
                }
            }
            let n = buf.len().min(self.chunk.len() - self.at);
            buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    let (tx, rx) = mpsc::sync_channel(4);
    std::thread::Builder::new()
        .name("fetch-xz".into())
        .spawn(move || {
            let mut input = BufReader::new(file);
            let mut output = io::BufWriter::with_capacity(64 * 1024, Sender(tx.clone()));
            let result = lzma_rs::xz_decompress(&mut input, &mut output)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))
                .and_then(|()| output.flush());
            drop(output);
            let _ = tx.send(match result {
                Ok(()) => Piece::Done,
                Err(e) => Piece::Failed(e),
            });
        })
        .map_err(|e| format!("starting the xz decoder: {e}"))?;
    Ok(Receiver { rx, chunk: Vec::new(), at: 0, done: false })
}

#[cfg(test)]
mod tests;
