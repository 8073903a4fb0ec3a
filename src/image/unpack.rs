//! Unpacking one layer tarball into a directory, safely, for use as an overlayfs lower dir.
//!
//! **Invariant: nothing outside the destination directory is ever created, changed or
//! followed.** Every entry is created relative to a directory file descriptor reached from the
//! destination root one component at a time with `O_NOFOLLOW | O_DIRECTORY`:
//! - paths that are absolute or contain `..` are refused;
//! - a symlink inside the layer is created as a symlink (its target may be anything: it is
//!   resolved inside the container at run time), but a later entry whose path goes *through* a
//!   symlink is refused, so `evil -> /etc` followed by `evil/passwd` writes nothing;
//! - hard links must name an earlier entry of the same layer, reached the same way;
//! - character and block devices are refused (the only device nodes in an unpacked layer are
//!   the whiteouts medos itself creates, see `overlay`);
//! - files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`; an existing entry is removed
//!   first (a later entry replaces an earlier one, as tar does), except that a directory
//!   stays a directory when the new entry is one.
//!
//! Modes (including setuid/setgid/sticky), owners and mtimes are preserved; directory metadata
//! is applied after all entries, since creating children changes a directory's mtime. xattrs
//! from the tar (PAX `SCHILY.xattr.*`) are not applied. Every error names the offending entry.
//! Unpacking needs root (owners, whiteout device nodes, `trusted.*` xattrs).

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    fs::File,
    io::{self, Read, Write},
    os::{
        fd::{AsFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{AtFlags, OFlag, openat},
    sys::{
        stat::{
            FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens, mkdirat, mknodat,
            utimensat,
        },
        time::TimeSpec,
    },
    unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat},
};
use tar::EntryType;

use super::{
    error::{ImageError, Result},
    overlay,
};

/// What one unpack created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries processed.
    pub entries: u64,
    /// Regular files created.
    pub files: u64,
    /// Directories declared by the layer.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hard_links: u64,
    /// Whiteouts (`.wh.NAME`) converted to overlayfs whiteouts.
    pub whiteouts: u64,
    /// Opaque markers (`.wh..wh..opq`) converted to the opaque xattr.
    pub opaque_dirs: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks the (uncompressed) layer tar stream `tar` into the existing directory `dest`, then
/// reads `tar` to its end. Does not fsync; the caller syncs before publishing the directory.
pub fn unpack_layer(tar: impl Read, dest: &Path) -> Result<UnpackStats> {
    let root = open_dir(nix::fcntl::AT_FDCWD, dest.as_os_str())
        .map_err(|e| ImageError::io("opening the unpack directory", dest, e.into()))?;
    let mut unpacker = Unpacker {
        dest,
        root,
        cached_parent: None,
        dirs: BTreeMap::new(),
        stats: UnpackStats::default(),
        buf: vec![0; 128 * 1024],
    };
    let mut archive = tar::Archive::new(tar);
    let mut last = String::new();
    let entries = archive.entries().map_err(|e| corrupt_layer(&last, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt_layer(&last, &e))?;
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        unpacker.entry(&mut entry, &last)?;
    }
    unpacker.apply_dir_metadata()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt_layer(&last, &e))?;
    Ok(unpacker.stats)
}

/// A path inside the layer: normal components only.
type RelPath = Vec<OsString>;

/// Owner, mode and mtime of an entry.
#[derive(Clone, Copy, Debug)]
struct Meta {
    mode: Mode,
    uid: Uid,
    gid: Gid,
    mtime: TimeSpec,
}

struct Unpacker<'d> {
    dest: &'d Path,
    root: OwnedFd,
    /// The parent directory of the previous entry (entries usually come grouped by directory).
    cached_parent: Option<(RelPath, OwnedFd)>,
    /// Directory metadata to apply once all entries exist.
    dirs: BTreeMap<RelPath, Meta>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        self.stats.entries += 1;
        let unsafe_entry = |reason: String| ImageError::UnsafeEntry { entry: name.to_owned(), reason };
        let path = layer_path(&entry.path_bytes()).map_err(|r| unsafe_entry(r.to_owned()))?;
        let Some((file_name, dirs)) = path.split_last() else {
            // The layer root itself ("./").
            if kind != EntryType::Directory {
                return Err(unsafe_entry(format!("the layer root must be a directory, not {kind:?}")));
            }
            let meta = entry_meta(entry, name)?;
            self.dirs.insert(Vec::new(), meta);
            self.stats.dirs += 1;
            return Ok(());
        };

        if let Some(hidden) = file_name.as_bytes().strip_prefix(b".wh.") {
            return self.whiteout(dirs, OsStr::from_bytes(hidden), name);
        }
        let meta = entry_meta(entry, name)?;
        let parent = self.parent(dirs, name)?;
        let result = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(&parent, &path, file_name, entry, meta, name)
            }
            EntryType::Directory => self.directory(&parent, &path, file_name, meta, name),
            EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| unsafe_entry("a symlink without a target".into()))?;
                self.symlink(&parent, &path, file_name, OsStr::from_bytes(&target), meta, name)
            }
            EntryType::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| unsafe_entry("a hard link without a target".into()))?;
                self.hard_link(&parent, &path, file_name, &target, name)
            }
            EntryType::Fifo => self.fifo(&parent, &path, file_name, meta, name),
            EntryType::Char | EntryType::Block => {
                let (major, minor) = (
                    entry.header().device_major().ok().flatten().unwrap_or(0),
                    entry.header().device_minor().ok().flatten().unwrap_or(0),
                );
                Err(unsafe_entry(format!(
                    "device nodes are not allowed in image layers ({} device {major}:{minor})",
                    if kind == EntryType::Char { "character" } else { "block" }
                )))
            }
            other => Err(unsafe_entry(format!("unsupported tar entry type {:?}", other.as_byte() as char))),
        };
        self.cached_parent = Some((dirs.to_vec(), parent));
        result
    }

    /// `.wh.NAME` hides NAME from lower layers; `.wh..wh..opq` makes the directory opaque.
    fn whiteout(&mut self, dirs: &[OsString], hidden: &OsStr, name: &str) -> Result<()> {
        let parent = self.parent(dirs, name)?;
        let result = if hidden.as_bytes() == b".wh..opq" {
            self.stats.opaque_dirs += 1;
            overlay::mark_opaque(&parent).map_err(|e| failed(name, "marking the directory opaque", e))
        } else if hidden.as_bytes().starts_with(b".wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless for overlayfs.
            Ok(())
        } else if matches!(hidden.as_bytes(), b"" | b"." | b"..") {
            Err(ImageError::UnsafeEntry { entry: name.to_owned(), reason: "a whiteout must name an entry".into() })
        } else {
            let mut path = dirs.to_vec();
            path.push(hidden.to_owned());
            self.stats.whiteouts += 1;
            self.clear(&parent, &path, hidden, false, name).and_then(|_| {
                overlay::create_whiteout(parent.as_fd(), hidden).map_err(|e| failed(name, "creating the whiteout", e))
            })
        };
        self.cached_parent = Some((dirs.to_vec(), parent));
        result
    }

    fn file<R: Read>(
        &mut self,
        parent: &OwnedFd,
        path: &RelPath,
        file_name: &OsStr,
        entry: &mut tar::Entry<'_, R>,
        meta: Meta,
        name: &str,
    ) -> Result<()> {
        self.clear(parent, path, file_name, false, name)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(parent, file_name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| failed(name, "creating the file", e.into()))?;
        let mut file = File::from(fd);
        let expected = entry.size();
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt_layer(name, &e)),
            };
            file.write_all(&self.buf[..n]).map_err(|e| failed(name, "writing the file", e))?;
            written += n as u64;
        }
        if written != expected {
            return Err(ImageError::TruncatedEntry { entry: name.to_owned(), expected, actual: written });
        }
        // Owner before mode: chown clears setuid/setgid.
        fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(|e| failed(name, "setting the owner", e.into()))?;
        fchmod(&file, meta.mode).map_err(|e| failed(name, "setting the mode", e.into()))?;
        futimens(&file, &meta.mtime, &meta.mtime).map_err(|e| failed(name, "setting the mtime", e.into()))?;
        self.stats.files += 1;
        self.stats.bytes += written;
        Ok(())
    }

    fn directory(&mut self, parent: &OwnedFd, path: &RelPath, file_name: &OsStr, meta: Meta, name: &str) -> Result<()> {
        if !self.clear(parent, path, file_name, true, name)? {
            mkdirat(parent, file_name, Mode::from_bits_truncate(0o700))
                .map_err(|e| failed(name, "creating the directory", e.into()))?;
        }
        self.dirs.insert(path.clone(), meta);
        self.stats.dirs += 1;
        Ok(())
    }

    fn symlink(
        &mut self,
        parent: &OwnedFd,
        path: &RelPath,
        file_name: &OsStr,
        target: &OsStr,
        meta: Meta,
        name: &str,
    ) -> Result<()> {
        self.clear(parent, path, file_name, false, name)?;
        symlinkat(target, parent, file_name).map_err(|e| failed(name, "creating the symlink", e.into()))?;
        fchownat(parent, file_name, Some(meta.uid), Some(meta.gid), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| failed(name, "setting the owner", e.into()))?;
        utimensat(parent, file_name, &meta.mtime, &meta.mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| failed(name, "setting the mtime", e.into()))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hard_link(
        &mut self,
        parent: &OwnedFd,
        path: &RelPath,
        file_name: &OsStr,
        target: &[u8],
        name: &str,
    ) -> Result<()> {
        let unsafe_entry = |reason: String| ImageError::UnsafeEntry { entry: name.to_owned(), reason };
        let shown = String::from_utf8_lossy(target);
        let target_path = layer_path(target).map_err(|r| unsafe_entry(format!("hard link target {shown:?}: {r}")))?;
        let Some((target_name, target_dirs)) = target_path.split_last() else {
            return Err(unsafe_entry("a hard link cannot point at the layer root".into()));
        };
        if target_path == *path {
            return Ok(()); // a link to itself: nothing to do
        }
        let target_parent = self.walk(target_dirs, false, name).map_err(|e| match e {
            ImageError::UnpackEntry { source, .. } if source.raw_os_error() == Some(Errno::ENOENT as i32) => {
                unsafe_entry(format!("hard link target {shown:?} is not an earlier entry of this layer"))
            }
            ImageError::UnsafeEntry { reason, .. } => unsafe_entry(format!("hard link target {shown:?}: {reason}")),
            e => e,
        })?;
        match fstatat(&target_parent, target_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                return Err(unsafe_entry(format!("hard link target {shown:?} is a directory")));
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                return Err(unsafe_entry(format!("hard link target {shown:?} is not an earlier entry of this layer")));
            }
            Err(e) => return Err(failed(name, "inspecting the hard link target", e.into())),
        }
        self.clear(parent, path, file_name, false, name)?;
        // Without AT_SYMLINK_FOLLOW a symlink target is linked as the symlink itself.
        linkat(&target_parent, target_name.as_os_str(), parent, file_name, AtFlags::empty())
            .map_err(|e| failed(name, "creating the hard link", e.into()))?;
        self.stats.hard_links += 1;
        Ok(())
    }

    fn fifo(&mut self, parent: &OwnedFd, path: &RelPath, file_name: &OsStr, meta: Meta, name: &str) -> Result<()> {
        self.clear(parent, path, file_name, false, name)?;
        mknodat(parent, file_name, SFlag::S_IFIFO, Mode::from_bits_truncate(0o600), 0)
            .map_err(|e| failed(name, "creating the fifo", e.into()))?;
        fchownat(parent, file_name, Some(meta.uid), Some(meta.gid), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| failed(name, "setting the owner", e.into()))?;
        // The name is the fifo just created in a directory only this unpack writes to.
        fchmodat(parent, file_name, meta.mode, FchmodatFlags::FollowSymlink)
            .map_err(|e| failed(name, "setting the mode", e.into()))?;
        utimensat(parent, file_name, &meta.mtime, &meta.mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| failed(name, "setting the mtime", e.into()))?;
        Ok(())
    }

    /// Removes whatever exists at `file_name` in `parent` (a later entry replaces an earlier
    /// one). With `keep_dir`, an existing directory stays and `true` is returned.
    fn clear(
        &mut self,
        parent: &OwnedFd,
        path: &RelPath,
        file_name: &OsStr,
        keep_dir: bool,
        name: &str,
    ) -> Result<bool> {
        let stat = match fstatat(parent, file_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(failed(name, "inspecting the existing entry", e.into())),
        };
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            if keep_dir {
                return Ok(true);
            }
            // Every component of `path` was opened with O_NOFOLLOW just now, and
            // remove_dir_all does not follow symlinks inside the tree.
            let full: PathBuf = path.iter().fold(self.dest.to_owned(), |p, c| p.join(c));
            std::fs::remove_dir_all(&full).map_err(|e| failed(name, "replacing the existing directory", e))?;
            self.dirs.retain(|dir, _| !dir.starts_with(path));
        } else {
            unlinkat(parent, file_name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| failed(name, "replacing the existing entry", e.into()))?;
        }
        Ok(false)
    }

    /// The directory `dirs` (created if missing), from the cache when it is the previous entry's.
    fn parent(&mut self, dirs: &[OsString], name: &str) -> Result<OwnedFd> {
        match self.cached_parent.take() {
            Some((cached, fd)) if cached == dirs => Ok(fd),
            _ => self.walk(dirs, true, name),
        }
    }

    /// Opens `dirs` below the root one component at a time, never following a symlink.
    fn walk(&self, dirs: &[OsString], create: bool, name: &str) -> Result<OwnedFd> {
        let mut current =
            open_dir(&self.root, OsStr::new(".")).map_err(|e| failed(name, "opening the layer root", e.into()))?;
        for (depth, component) in dirs.iter().enumerate() {
            let next = match open_dir(&current, component) {
                Err(Errno::ENOENT) if create => {
                    // Layers may omit parent directories; tar creates them 0755.
                    match mkdirat(&current, component.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => open_dir(&current, component),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            current = match next {
                Ok(fd) => fd,
                Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                    let prefix = display_path(&dirs[..=depth]);
                    let is_symlink = fstatat(&current, component.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK);
                    return Err(if is_symlink {
                        ImageError::UnsafeEntry {
                            entry: name.to_owned(),
                            reason: format!(
                                "{prefix} is a symbolic link; medos never follows symlinks while unpacking"
                            ),
                        }
                    } else {
                        failed(
                            name,
                            "opening a parent directory",
                            io::Error::new(io::Error::from(e).kind(), format!("{prefix} is not a directory")),
                        )
                    });
                }
                Err(e) => return Err(failed(name, "opening a parent directory", e.into())),
            };
        }
        Ok(current)
    }

    /// Applies the recorded owner, mode and mtime of every directory.
    fn apply_dir_metadata(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, meta) in dirs.iter().rev() {
            let name = if path.is_empty() { "./".to_owned() } else { display_path(path) };
            let fd = match path.split_last() {
                None => open_dir(&self.root, OsStr::new("."))
                    .map_err(|e| failed(&name, "opening the directory", e.into()))?,
                Some((last, parents)) => {
                    let parent = self.walk(parents, false, &name)?;
                    open_dir(&parent, last).map_err(|e| failed(&name, "opening the directory", e.into()))?
                }
            };
            fchown(&fd, Some(meta.uid), Some(meta.gid)).map_err(|e| failed(&name, "setting the owner", e.into()))?;
            fchmod(&fd, meta.mode).map_err(|e| failed(&name, "setting the mode", e.into()))?;
            futimens(&fd, &meta.mtime, &meta.mtime).map_err(|e| failed(&name, "setting the mtime", e.into()))?;
        }
        Ok(())
    }
}

/// Splits a layer entry path into normal components, refusing absolute paths and `..`.
fn layer_path(raw: &[u8]) -> std::result::Result<RelPath, &'static str> {
    if raw.starts_with(b"/") {
        return Err("absolute paths are not allowed in image layers");
    }
    let mut path = Vec::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("`..` would escape the layer root"),
            component => path.push(OsStr::from_bytes(component).to_owned()),
        }
    }
    Ok(path)
}

fn display_path(path: &[OsString]) -> String {
    path.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn open_dir(parent: impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
}

/// Owner, mode and mtime from the tar header (PAX extensions included).
fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
    let header_error = |e: io::Error| failed(name, "reading the tar header", e);
    let header = entry.header();
    let mode = header.mode().map_err(header_error)?;
    let id = |value: u64, what: &str| {
        u32::try_from(value).map_err(|_| ImageError::UnsafeEntry {
            entry: name.to_owned(),
            reason: format!("{what} {value} is out of range"),
        })
    };
    let uid = id(header.uid().map_err(header_error)?, "uid")?;
    let gid = id(header.gid().map_err(header_error)?, "gid")?;
    let mut seconds = header.mtime().map_err(header_error)? as i64;
    let mut nanos = 0i64;
    // PAX mtimes carry sub-second precision ("1700000000.123456789").
    if let Some(extensions) = entry.pax_extensions().map_err(header_error)? {
        for extension in extensions.flatten() {
            if extension.key_bytes() == b"mtime"
                && let Some((s, n)) = parse_pax_time(extension.value_bytes())
            {
                (seconds, nanos) = (s, n);
            }
        }
    }
    Ok(Meta {
        mode: Mode::from_bits_truncate(mode & 0o7777),
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        mtime: TimeSpec::new(seconds, nanos),
    })
}

fn parse_pax_time(value: &[u8]) -> Option<(i64, i64)> {
    let value = std::str::from_utf8(value).ok()?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let seconds = whole.parse().ok()?;
    let digits: String = fraction.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    Some((seconds, if seconds < 0 { -nanos } else { nanos }))
}

fn failed(name: &str, action: &'static str, source: io::Error) -> ImageError {
    ImageError::UnpackEntry { entry: name.to_owned(), action, source }
}

fn corrupt_layer(last: &str, error: &dyn std::fmt::Display) -> ImageError {
    ImageError::CorruptArchive {
        at: if last.is_empty() { "at the start of the layer".into() } else { format!("at layer entry {last:?}") },
        detail: error.to_string(),
    }
}
