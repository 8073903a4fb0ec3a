//! The image library's one error type.
//!
//! Every message is lower-case, names the file, archive entry, layer entry or field at fault, and
//! ends with what to do about it. Archive and layer problems never panic and never leave partial
//! state behind (see the module docs of `import`, `store` and `layer_cache`).

use std::{io, path::PathBuf};

use super::digest::Digest;

/// Everything that can go wrong while importing, storing or unpacking images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file-system operation on one of medos's own files failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "creating directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The archive could not be read: not a tar file, bad gzip data, or cut short.
    #[error("reading the archive failed {at}: {detail}; the archive is truncated or corrupt: copy or export it again")]
    CorruptArchive {
        /// Where in the archive, e.g. "after entry manifest.json" or "in entry blobs/sha256/ab…".
        at: String,
        /// What the reader reported.
        detail: String,
    },

    /// An archive entry ended before its declared size.
    #[error(
        "archive entry {entry} is truncated: expected {expected} bytes, got {actual}; the archive is incomplete: copy or export it again"
    )]
    TruncatedEntry {
        /// The path inside the archive.
        entry: String,
        /// Bytes the tar header declares.
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },

    /// Content does not hash to the digest that names it.
    #[error(
        "{entry}: digest mismatch: expected {expected}, got {actual}; the data is corrupt or was modified: export the image again"
    )]
    DigestMismatch {
        /// The archive entry or blob whose content was hashed.
        entry: String,
        /// The digest it is named by or referenced with.
        expected: Digest,
        /// The sha256 of its bytes.
        actual: Digest,
    },

    /// Content is not as long as the descriptor referencing it says.
    #[error(
        "{entry}: size mismatch: the descriptor says {expected} bytes, the blob has {actual}; the image is inconsistent: export it again"
    )]
    SizeMismatch {
        /// The archive entry.
        entry: String,
        /// Size in the descriptor.
        expected: u64,
        /// Actual size.
        actual: u64,
    },

    /// An uncompressed layer does not match the `rootfs.diff_ids` entry of the image config.
    #[error(
        "{entry}: layer {index} does not match the image config: rootfs.diff_ids[{index}] is {expected}, the uncompressed layer is {actual}; the image is inconsistent: export it again"
    )]
    DiffIdMismatch {
        /// The archive entry (or blob) holding the layer.
        entry: String,
        /// Position of the layer, base layer = 0.
        index: usize,
        /// The diff id from the config.
        expected: Digest,
        /// The sha256 of the uncompressed layer.
        actual: Digest,
    },

    /// The archive is neither an OCI image layout nor a `docker save` archive.
    #[error(
        "not an image archive: {0}; expected an OCI image layout (oci-layout, index.json) or a `docker save` archive (manifest.json)"
    )]
    NotAnImage(String),

    /// A document references a file the archive does not contain.
    #[error(
        "{referenced_by} references {entry}, which is not in the archive; export the image again with all its blobs"
    )]
    MissingEntry {
        /// The missing path inside the archive.
        entry: String,
        /// Who references it, e.g. "manifest.json" or "layer 2 of manifest sha256:…".
        referenced_by: String,
    },

    /// A JSON document (index, manifest, config) is malformed or violates the image spec.
    #[error("{entry}: invalid {what}: {detail}")]
    InvalidDocument {
        /// The archive entry or blob.
        entry: String,
        /// What kind of document, e.g. "image manifest".
        what: &'static str,
        /// What is wrong, naming the field.
        detail: String,
    },

    /// A string is not a sha256 digest.
    #[error("invalid digest {value:?} in {field}: expected sha256:<64 lower-case hex digits>")]
    InvalidDigest {
        /// Where the value came from.
        field: String,
        /// The value itself.
        value: String,
    },

    /// Valid input that medos does not handle (zstd layers, other digest algorithms, …).
    #[error("{what} is not supported: {detail}")]
    Unsupported {
        /// The feature, naming the entry or field.
        what: String,
        /// Why, and what to do instead.
        detail: String,
    },

    /// A blob that should be in the store is not.
    #[error("blob {digest} is not in the store; fetch or import it first")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
    },

    /// A stored blob no longer hashes to its name (disk corruption or tampering).
    #[error("blob {digest} in the store is corrupt: its content hashes to {actual}; remove it and fetch it again")]
    CorruptBlob {
        /// The blob's name.
        digest: Digest,
        /// What its content hashes to now.
        actual: Digest,
    },

    /// A layer entry that would escape the layer root, or that medos refuses to create.
    #[error("layer entry {entry:?}: {reason}; the layer is unsafe and was not unpacked")]
    UnsafeEntry {
        /// The entry's path as written in the layer.
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// Creating a layer entry failed for an operating-system reason.
    #[error("layer entry {entry:?}: {action} failed: {source}")]
    UnpackEntry {
        /// The entry's path as written in the layer.
        entry: String,
        /// What was being done, e.g. "setting the owner".
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A test image could not be built (see `image::testing`).
    #[error("building a test image failed: {0}")]
    TestImage(String),
}

/// The result type of the image library.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

impl ImageError {
    /// An [`ImageError::Io`] for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io { action, path: path.into(), source }
    }
}
