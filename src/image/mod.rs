//! Container images without a registry: archive import, the content-addressed blob store, and
//! safe layer unpacking for overlayfs.
//!
//! - [`import_archive`] reads an OCI image layout or `docker save` tarball (gzip'd or not),
//!   verifies every digest while streaming, stores the blobs in a [`BlobStore`] and returns a
//!   normalised [`Image`] per manifest. A bad archive stores nothing.
//! - [`BlobStore`] keeps blobs at `ROOT/blobs/sha256/<hex>` with atomic, fsynced, verified puts
//!   ([`BlobStore::put_verified`] is what replication between masters and agent fetches use).
//! - [`LayerCache`] unpacks each layer once into its own directory (an overlayfs lower dir),
//!   publishing it atomically, refusing entries that escape the layer or create devices, and
//!   converting OCI whiteouts into overlayfs ones; [`LayerCache::gc`] drops unused layers.
//! - [`testing`] builds real busybox images and hostile archives for tests.
//!
//! **Architecture Invariant: this module is plain blocking `std` I/O, no tokio.** The CLI uses
//! it directly; async servers call it through `spawn_blocking`.

mod digest;
mod docker_save;
mod durable;
mod error;
mod import;
mod layer_cache;
mod manifest;
mod oci_layout;
mod overlay;
mod store;
pub mod testing;
mod unpack;

#[cfg(test)]
mod tests;

pub use digest::Digest;
pub use error::{ImageError, Result};
pub use import::{MAX_ARCHIVE_ENTRIES, Progress, import_archive, import_reader};
pub use layer_cache::{GcReport, LayerCache};
pub use manifest::{
    CONTAINERD_NAME_ANNOTATION, Compression, Image, Layer, MAX_DOCUMENT_BYTES, REF_NAME_ANNOTATION, RunConfig,
    read_image,
};
pub use overlay::{OPAQUE_XATTR, is_opaque, is_whiteout};
pub use store::{BlobInfo, BlobReader, BlobStore, StoreUsage, Verify};
pub use unpack::{UnpackStats, unpack_layer};
