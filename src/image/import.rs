//! Importing an image archive (OCI image layout or `docker save`) into a [`BlobStore`].
//!
//! One streaming pass over the tarball (optionally gzip'd as a whole) copies every regular file
//! into a private staging directory under the store's `tmp/`, hashing it on the way (sha256 of
//! the bytes as stored and, for gzip'd files, of the decompressed stream too). Memory stays
//! bounded: file contents never sit in memory, only a table of entries (capped at
//! [`MAX_ARCHIVE_ENTRIES`]) and the JSON documents being parsed (capped at
//! [`MAX_DOCUMENT_BYTES`](super::manifest::MAX_DOCUMENT_BYTES)).
//!
//! Entry order in an archive is arbitrary (Docker writes `manifest.json` last), so images are
//! resolved after the pass (`oci_layout`, `docker_save`), every digest is checked, and only then
//! are the referenced blobs fsynced and renamed into the store, layers first and manifests last.
//! **Invariant: an archive that fails any check stores nothing**; the staging directory is
//! removed on every path out.

use std::{
    collections::{BTreeMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, BufWriter, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use flate2::write::MultiGzDecoder;

use super::{
    digest::{Digest, HashingWriter},
    docker_save,
    durable::{TempPath, create_dir_all_mode, unique_name},
    error::{ImageError, Result},
    manifest::{Compression, Image, MAX_DOCUMENT_BYTES, Sniffed},
    oci_layout,
    store::BlobStore,
};

/// Most entries (files and links) an image archive may have.
pub const MAX_ARCHIVE_ENTRIES: usize = 100_000;

/// How far the import has read, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the archive (as stored, compressed or not) read so far.
    pub done: u64,
    /// The archive's size, when known.
    pub total: Option<u64>,
}

/// Imports the archive at `path`; see [`import_reader`].
pub fn import_archive(store: &BlobStore, path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Vec<Image>> {
    let file = File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
    let total = file.metadata().map_err(|e| ImageError::io("reading metadata of", path, e))?.len();
    import_reader(store, file, Some(total), progress)
}

/// Imports an image archive from `reader` into `store`, verifying every digest, and returns the
/// images it contains (one per manifest; names merged). `progress` is called about every MiB.
pub fn import_reader(
    store: &BlobStore,
    reader: impl Read,
    total: Option<u64>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Image>> {
    let mut staging = Staging::read(store, reader, total, progress)?;
    let resolution = if staging.entries.contains_key("index.json") {
        oci_layout::resolve(&staging)?
    } else if staging.entries.contains_key("manifest.json") {
        docker_save::resolve(&mut staging)?
    } else {
        return Err(ImageError::NotAnImage("the archive has neither index.json nor manifest.json".into()));
    };
    resolution.commit(store)?;
    tracing::debug!(images = resolution.images.len(), blobs = resolution.blobs.len(), "imported image archive");
    Ok(resolution.images)
}

/// What the bytes of a staged file turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// Not compressed (or not recognisably): the uncompressed digest is the stored digest.
    Plain,
    /// Gzip data; `diff_id` is the digest of the decompressed stream.
    Gzip { diff_id: Digest },
    /// Starts like gzip but does not decompress.
    BadGzip(String),
    /// Zstandard data (not decompressed).
    Zstd,
}

/// A regular file of the archive, copied into the staging directory.
#[derive(Debug)]
pub(crate) struct StagedEntry {
    pub(crate) file: PathBuf,
    pub(crate) size: u64,
    pub(crate) digest: Digest,
    pub(crate) content: Content,
}

/// The archive's files, staged on disk, by normalised path inside the archive.
pub(crate) struct Staging {
    dir: TempPath,
    pub(crate) entries: BTreeMap<String, StagedEntry>,
    /// Symbolic and hard links: path → normalised target path.
    links: BTreeMap<String, String>,
    next_file: u64,
}

impl Staging {
    /// Streams the archive into a new staging directory under the store's `tmp/`.
    fn read(
        store: &BlobStore,
        reader: impl Read,
        total: Option<u64>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self> {
        let dir = store.temp_dir().join(unique_name("import-"));
        create_dir_all_mode(&dir, 0o700).map_err(|e| ImageError::io("creating directory", &dir, e))?;
        let mut staging =
            Staging { dir: TempPath::new(dir), entries: BTreeMap::new(), links: BTreeMap::new(), next_file: 0 };

        let mut buffered = BufReader::with_capacity(
            256 * 1024,
            CountingReader { inner: reader, done: 0, reported: 0, total, progress },
        );
        let head = buffered.fill_buf().map_err(|e| corrupt("at the start", &e))?;
        let decoded: Box<dyn Read + '_> = match Sniffed::of(head) {
            Sniffed::Plain => Box::new(buffered),
            Sniffed::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
            Sniffed::Zstd => {
                return Err(ImageError::Unsupported {
                    what: "a zstd-compressed archive".into(),
                    detail: "decompress it first (zstd -d) or export it as .tar or .tar.gz".into(),
                });
            }
        };
        let mut archive = tar::Archive::new(decoded);
        let mut last = String::new();
        let at = |last: &str| if last.is_empty() { "at the start".to_owned() } else { format!("after entry {last}") };
        for entry in archive.entries().map_err(|e| corrupt("at the start", &e))? {
            let mut entry = entry.map_err(|e| corrupt(&at(&last), &e))?;
            let path = normalise_archive_path(&entry.path_bytes());
            last =
                if path.is_empty() { String::from_utf8_lossy(&entry.path_bytes()).into_owned() } else { path.clone() };
            if staging.entries.len() + staging.links.len() >= MAX_ARCHIVE_ENTRIES {
                return Err(ImageError::NotAnImage(format!("the archive has more than {MAX_ARCHIVE_ENTRIES} files")));
            }
            let kind = entry.header().entry_type();
            if kind.is_file() || kind.is_contiguous() {
                if staging.entries.contains_key(&path) || staging.links.contains_key(&path) {
                    return Err(duplicate(&path));
                }
                let staged = staging.stage_entry(&path, &mut entry)?;
                check_blob_name(&path, &staged)?;
                staging.entries.insert(path, staged);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| corrupt(&format!("in entry {path}"), &"a link without a target"))?;
                let target = if kind.is_symlink() && !target.starts_with(b"/") {
                    let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
                    normalise_archive_path(&[parent.as_bytes(), b"/", &target].concat())
                } else {
                    normalise_archive_path(&target)
                };
                if staging.entries.contains_key(&path) || staging.links.insert(path.clone(), target).is_some() {
                    return Err(duplicate(&path));
                }
            }
            // Directories, extended headers, devices and the like carry nothing an image needs.
        }
        // Read to the very end: trailing padding, and the gzip trailer whose CRC proves the
        // whole archive arrived.
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt(&at(&last), &e))?;
        drop(rest);
        Ok(staging)
    }

    /// Copies one archive entry into a staging file, hashing it (and its decompressed form).
    fn stage_entry<R: Read>(&mut self, path: &str, entry: &mut tar::Entry<'_, R>) -> Result<StagedEntry> {
        let file = self.dir.path().join(self.next_file.to_string());
        self.next_file += 1;
        let mut out = BufWriter::with_capacity(
            256 * 1024,
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| ImageError::io("creating", &file, e))?,
        );
        let expected = entry.size();
        let mut hasher = HashingWriter::default();
        let mut sniffer = Sniffer::default();
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(&format!("in entry {path}"), &e)),
            };
            out.write_all(&buf[..n]).map_err(|e| ImageError::io("writing", &file, e))?;
            hasher.write_all(&buf[..n]).expect("hashing cannot fail");
            sniffer.feed(&buf[..n]);
        }
        out.flush().map_err(|e| ImageError::io("writing", &file, e))?;
        let (digest, size) = hasher.finish();
        if size != expected {
            return Err(ImageError::TruncatedEntry { entry: path.to_owned(), expected, actual: size });
        }
        Ok(StagedEntry { file, size, digest, content: sniffer.finish() })
    }

    /// Adds a document medos wrote itself (a manifest for a `docker save` image).
    pub(crate) fn add_document(&mut self, bytes: &[u8]) -> Result<(PathBuf, Digest)> {
        let file = self.dir.path().join(self.next_file.to_string());
        self.next_file += 1;
        fs::write(&file, bytes).map_err(|e| ImageError::io("writing", &file, e))?;
        Ok((file, Digest::of(bytes)))
    }

    /// The staged file at `path` (following links inside the archive), or
    /// [`ImageError::MissingEntry`] naming `referenced_by`. Returns the resolved path too.
    pub(crate) fn get(&self, path: &str, referenced_by: &str) -> Result<(&str, &StagedEntry)> {
        let mut current = normalise_archive_path(path.as_bytes());
        for _ in 0..16 {
            if let Some((name, staged)) = self.entries.get_key_value(&current) {
                return Ok((name.as_str(), staged));
            }
            match self.links.get(&current) {
                Some(target) => current = target.clone(),
                None => break,
            }
        }
        Err(ImageError::MissingEntry { entry: path.to_owned(), referenced_by: referenced_by.to_owned() })
    }

    /// The staged blob `blobs/sha256/<hex>` for `digest` (its content was checked against its
    /// name while staging).
    pub(crate) fn blob(&self, digest: &Digest, referenced_by: &str) -> Result<(&str, &StagedEntry)> {
        self.get(&format!("blobs/sha256/{}", digest.hex()), referenced_by)
    }

    /// Reads a staged JSON document, refusing anything larger than `MAX_DOCUMENT_BYTES`.
    pub(crate) fn read_document(&self, path: &str, referenced_by: &str, what: &'static str) -> Result<Vec<u8>> {
        let (name, staged) = self.get(path, referenced_by)?;
        if staged.size > MAX_DOCUMENT_BYTES {
            return Err(ImageError::InvalidDocument {
                entry: name.to_owned(),
                what,
                detail: format!("{} bytes is more than the {MAX_DOCUMENT_BYTES}-byte limit", staged.size),
            });
        }
        fs::read(&staged.file).map_err(|e| ImageError::io("reading", &staged.file, e))
    }
}

/// What the archive resolved to: the images, and the blobs to move into the store.
#[derive(Default)]
pub(crate) struct Resolution {
    pub(crate) images: Vec<Image>,
    /// (staged file, digest), in commit order; each digest once.
    blobs: Vec<(PathBuf, Digest)>,
    seen: HashSet<Digest>,
}

impl Resolution {
    /// Schedules a staged file to become blob `digest` (again: ignored).
    pub(crate) fn add_blob(&mut self, file: &Path, digest: Digest) {
        if self.seen.insert(digest) {
            self.blobs.push((file.to_owned(), digest));
        }
    }

    /// Adds an image, merging names if the same manifest was already resolved.
    pub(crate) fn add_image(&mut self, image: Image) {
        match self.images.iter_mut().find(|i| i.manifest == image.manifest) {
            Some(existing) => {
                for name in image.names {
                    if !existing.names.contains(&name) {
                        existing.names.push(name);
                    }
                }
            }
            None => self.images.push(image),
        }
    }

    /// Moves the blobs into the store: fsync each, rename, then fsync the blob directory.
    fn commit(&self, store: &BlobStore) -> Result<()> {
        for (file, digest) in &self.blobs {
            if store.has(digest) {
                continue;
            }
            File::open(file).and_then(|f| f.sync_all()).map_err(|e| ImageError::io("syncing", file, e))?;
            store.adopt(file, digest)?;
        }
        store.sync()
    }
}

/// Checks each layer of `image` against its staged blob (`entries[i]` holds layer i): declared
/// compression against the bytes, and the uncompressed digest against `rootfs.diff_ids`.
pub(crate) fn check_layers(staging: &Staging, image: &Image, entries: &[String], referenced_by: &str) -> Result<()> {
    for (index, (layer, entry)) in image.layers.iter().zip(entries).enumerate() {
        let (name, staged) = staging.get(entry, referenced_by)?;
        let actual = match (&staged.content, layer.compression) {
            (Content::Plain, Compression::None) => staged.digest,
            (Content::Gzip { diff_id }, Compression::Gzip) => *diff_id,
            (Content::BadGzip(detail), _) => {
                return Err(corrupt(
                    &format!("in entry {name}"),
                    &format!("layer {index} is not valid gzip data: {detail}"),
                ));
            }
            (Content::Zstd, _) => {
                return Err(ImageError::Unsupported {
                    what: format!("{name}: a zstd-compressed layer"),
                    detail: "export the image with gzip or uncompressed layers".into(),
                });
            }
            (content, declared) => {
                return Err(ImageError::InvalidDocument {
                    entry: referenced_by.to_owned(),
                    what: "image manifest",
                    detail: format!("layers[{index}] is declared {declared:?} but {name} holds {content:?} data"),
                });
            }
        };
        if actual != layer.diff_id {
            return Err(ImageError::DiffIdMismatch { entry: name.to_owned(), index, expected: layer.diff_id, actual });
        }
    }
    Ok(())
}

/// A file named `blobs/sha256/<hex>` must hash to `<hex>`; checked for every such file.
fn check_blob_name(path: &str, staged: &StagedEntry) -> Result<()> {
    if let Some(expected) = path.strip_prefix("blobs/sha256/").and_then(Digest::from_hex)
        && expected != staged.digest
    {
        return Err(ImageError::DigestMismatch { entry: path.to_owned(), expected, actual: staged.digest });
    }
    Ok(())
}

/// Lexically normalises a path inside the archive: no leading `/` or `./`, no `.` or empty
/// components, `..` applied. Only used as a lookup key; nothing is written under this name.
pub(crate) fn normalise_archive_path(raw: &[u8]) -> String {
    let raw = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

fn corrupt(at: &str, error: &dyn std::fmt::Display) -> ImageError {
    ImageError::CorruptArchive { at: at.to_owned(), detail: error.to_string() }
}

fn duplicate(path: &str) -> ImageError {
    corrupt(&format!("at entry {path}"), &"the archive has two entries with this name")
}

/// Recognises gzip (and zstd) from a file's first bytes and, for gzip, hashes the decompressed
/// stream as it passes.
#[derive(Default)]
struct Sniffer {
    head: Vec<u8>,
    state: SnifferState,
}

#[derive(Default)]
enum SnifferState {
    #[default]
    Undecided,
    Plain,
    Zstd,
    Gzip(Box<MultiGzDecoder<HashingWriter>>),
    Failed(String),
}

impl Sniffer {
    const HEAD: usize = 4;

    fn feed(&mut self, mut bytes: &[u8]) {
        if let SnifferState::Undecided = self.state {
            let take = (Self::HEAD - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.head.len() < Self::HEAD {
                return;
            }
            self.decide();
        }
        self.write(bytes);
    }

    fn decide(&mut self) {
        self.state = match Sniffed::of(&self.head) {
            Sniffed::Plain => SnifferState::Plain,
            Sniffed::Zstd => SnifferState::Zstd,
            Sniffed::Gzip => SnifferState::Gzip(Box::new(MultiGzDecoder::new(HashingWriter::default()))),
        };
        let head = std::mem::take(&mut self.head);
        self.write(&head);
    }

    fn write(&mut self, bytes: &[u8]) {
        if let SnifferState::Gzip(decoder) = &mut self.state
            && let Err(e) = decoder.write_all(bytes)
        {
            self.state = SnifferState::Failed(e.to_string());
        }
    }

    fn finish(mut self) -> Content {
        if let SnifferState::Undecided = self.state {
            self.decide();
        }
        match self.state {
            SnifferState::Undecided | SnifferState::Plain => Content::Plain,
            SnifferState::Zstd => Content::Zstd,
            SnifferState::Failed(detail) => Content::BadGzip(detail),
            SnifferState::Gzip(decoder) => match decoder.finish() {
                Ok(hashed) => Content::Gzip { diff_id: hashed.finish().0 },
                Err(e) => Content::BadGzip(e.to_string()),
            },
        }
    }
}

/// Counts bytes read from the archive and reports progress about every MiB and at the end.
struct CountingReader<'p, R> {
    inner: R,
    done: u64,
    reported: u64,
    total: Option<u64>,
    progress: &'p mut dyn FnMut(Progress),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= 1 << 20 || (n == 0 && !buf.is_empty() && self.reported != self.done) {
            self.reported = self.done;
            (self.progress)(Progress { done: self.done, total: self.total });
        }
        Ok(n)
    }
}
