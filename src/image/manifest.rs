//! The normalised image description ([`Image`]) and how it is read from an OCI image manifest
//! and image config (Docker's schema-2 manifests and configs are the same JSON shapes).
//!
//! An [`Image`] is plain data (serde): it can travel in the replicated state and in API bodies.
//! Every image medos holds has a manifest blob; for `docker save` archives, which have none, the
//! importer writes an OCI manifest itself (see `docker_save`).

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};

use super::{
    digest::Digest,
    error::{ImageError, Result},
    store::BlobStore,
};

/// Largest JSON document (index, manifest, config) medos reads, in bytes.
pub const MAX_DOCUMENT_BYTES: u64 = 8 << 20;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The annotation OCI layouts name images with.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd (and Docker 25+ `docker save`) puts the full image name in.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// A gzip'd tar stream (one or more gzip members).
    Gzip,
}

impl Compression {
    /// The OCI media type of a layer with this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER,
            Compression::Gzip => OCI_LAYER_GZIP,
        }
    }

    /// The compression a layer media type declares, or why medos cannot handle it.
    pub(crate) fn of_media_type(media_type: &str) -> std::result::Result<Self, String> {
        match media_type {
            OCI_LAYER
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
            OCI_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            zstd if zstd.ends_with("zstd") => {
                Err("zstd-compressed layers are not supported yet; export the image with gzip or uncompressed layers"
                    .into())
            }
            other => Err(format!("media type {other:?} is not a container image layer")),
        }
    }
}

/// What a layer blob's first bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Plain,
    Gzip,
    Zstd,
}

impl Sniffed {
    /// Classifies a blob by its first (up to 4) bytes.
    pub(crate) fn of(head: &[u8]) -> Sniffed {
        match head {
            [0x1f, 0x8b, ..] => Sniffed::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Sniffed::Zstd,
            _ => Sniffed::Plain,
        }
    }
}

/// One layer of an image, base layer first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the blob as stored (compressed if it is compressed).
    pub digest: Digest,
    /// Size of the blob as stored, in bytes.
    pub size: u64,
    /// The media type from the manifest.
    pub media_type: String,
    /// How the blob is compressed.
    pub compression: Compression,
    /// Digest of the uncompressed tar stream (`rootfs.diff_ids` in the config).
    pub diff_id: Digest,
}

/// How a container of this image runs by default (the `config` object of the image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value` strings.
    pub env: Vec<String>,
    /// `WorkingDir`, if set.
    pub working_dir: Option<String>,
    /// `User` (`name`, `uid`, `uid:gid` or `name:group`), if set.
    pub user: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `ExposedPorts`, e.g. `8080/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// `StopSignal`, if set.
    pub stop_signal: Option<String>,
}

/// A container image as medos knows it: names, the manifest and config blobs, the layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Names from the archive (`RepoTags`, or the OCI `ref.name` annotation); may be empty.
    pub names: Vec<String>,
    /// Digest of the image manifest blob (the image's identity).
    pub manifest: Digest,
    /// Size of the manifest blob in bytes.
    pub manifest_size: u64,
    /// Digest of the image config blob.
    pub config_digest: Digest,
    /// Size of the config blob in bytes.
    pub config_size: u64,
    /// Operating system, always `linux` for images medos accepts.
    pub os: String,
    /// CPU architecture in Go's naming (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Default process settings.
    pub config: RunConfig,
    /// Layers, base layer first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// Every blob the image consists of (manifest, config, layers): what a master must hold.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut blobs = vec![self.manifest, self.config_digest];
        blobs.extend(self.layers.iter().map(|l| l.digest));
        blobs
    }

    /// Total size of the image's blobs in bytes.
    pub fn size(&self) -> u64 {
        self.manifest_size + self.config_size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// Reads an image whose manifest (and config) are in `store`, e.g. after replication. Layer
/// blobs need not be present. `names` are carried into the result unchanged.
pub fn read_image(store: &BlobStore, manifest: &Digest, names: Vec<String>) -> Result<Image> {
    let manifest_bytes = store.read_verified(manifest, MAX_DOCUMENT_BYTES)?;
    let parsed = ParsedManifest::parse(&format!("manifest {manifest}"), &manifest_bytes)?;
    let config_bytes = store.read_verified(&parsed.config.digest, MAX_DOCUMENT_BYTES)?;
    if config_bytes.len() as u64 != parsed.config.size {
        return Err(ImageError::SizeMismatch {
            entry: format!("config {}", parsed.config.digest),
            expected: parsed.config.size,
            actual: config_bytes.len() as u64,
        });
    }
    parsed.describe(names, *manifest, manifest_bytes.len() as u64, &config_bytes)
}

/// A descriptor reduced to what medos uses.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

impl Blob {
    pub(crate) fn from_descriptor(descriptor: &Descriptor, field: &str) -> Result<Self> {
        Ok(Blob {
            media_type: descriptor.media_type().to_string(),
            digest: Digest::parse(descriptor.digest().as_ref(), &format!("{field}.digest"))?,
            size: descriptor.size(),
        })
    }
}

/// An image manifest, checked for what medos needs: an image config and supported layers.
#[derive(Debug)]
pub(crate) struct ParsedManifest {
    pub(crate) entry: String,
    pub(crate) config: Blob,
    pub(crate) layers: Vec<(Blob, Compression)>,
}

impl ParsedManifest {
    /// Parses manifest JSON; `entry` names the document in errors.
    pub(crate) fn parse(entry: &str, bytes: &[u8]) -> Result<Self> {
        let invalid =
            |detail: String| ImageError::InvalidDocument { entry: entry.to_owned(), what: "image manifest", detail };
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if manifest.schema_version() != 2 {
            return Err(invalid(format!("schemaVersion is {}, expected 2", manifest.schema_version())));
        }
        if let Some(media_type) = manifest.media_type() {
            let media_type = media_type.to_string();
            if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
                return Err(invalid(format!("mediaType is {media_type:?}, not an image manifest")));
            }
        }
        let config = Blob::from_descriptor(manifest.config(), &format!("{entry}: config"))?;
        if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
            return Err(ImageError::Unsupported {
                what: format!("{entry}: config.mediaType {:?}", config.media_type),
                detail: "this is not a container image (an artifact, signature or attestation?)".into(),
            });
        }
        let mut layers = Vec::with_capacity(manifest.layers().len());
        for (index, descriptor) in manifest.layers().iter().enumerate() {
            let blob = Blob::from_descriptor(descriptor, &format!("{entry}: layers[{index}]"))?;
            let compression = Compression::of_media_type(&blob.media_type)
                .map_err(|detail| ImageError::Unsupported { what: format!("{entry}: layers[{index}]"), detail })?;
            layers.push((blob, compression));
        }
        Ok(ParsedManifest { entry: entry.to_owned(), config, layers })
    }

    /// Combines the manifest with its config (already verified against `self.config.digest`).
    pub(crate) fn describe(
        &self,
        names: Vec<String>,
        manifest: Digest,
        manifest_size: u64,
        config_bytes: &[u8],
    ) -> Result<Image> {
        let config_entry = format!("config {}", self.config.digest);
        let invalid =
            |detail: String| ImageError::InvalidDocument { entry: config_entry.clone(), what: "image config", detail };
        let config: ImageConfiguration = serde_json::from_slice(config_bytes).map_err(|e| invalid(e.to_string()))?;
        let os = config.os().to_string();
        let architecture = config.architecture().to_string();
        if os != "linux" {
            return Err(ImageError::Unsupported {
                what: format!("{config_entry}: os {os:?}"),
                detail: "medos runs linux images only".into(),
            });
        }
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != self.layers.len() {
            return Err(invalid(format!(
                "rootfs.diff_ids has {} entries but {} lists {} layers",
                diff_ids.len(),
                self.entry,
                self.layers.len()
            )));
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for (index, ((blob, compression), diff_id)) in self.layers.iter().zip(diff_ids).enumerate() {
            let diff_id = Digest::parse(diff_id, &format!("{config_entry}: rootfs.diff_ids[{index}]"))?;
            if *compression == Compression::None && diff_id != blob.digest {
                return Err(ImageError::DiffIdMismatch {
                    entry: format!("{}: layers[{index}]", self.entry),
                    index,
                    expected: diff_id,
                    actual: blob.digest,
                });
            }
            layers.push(Layer {
                digest: blob.digest,
                size: blob.size,
                media_type: blob.media_type.clone(),
                compression: *compression,
                diff_id,
            });
        }
        let run = config.config().clone().unwrap_or_default();
        let mut exposed_ports = run.exposed_ports().clone().unwrap_or_default();
        exposed_ports.sort();
        Ok(Image {
            names,
            manifest,
            manifest_size,
            config_digest: self.config.digest,
            config_size: self.config.size,
            os,
            architecture,
            config: RunConfig {
                entrypoint: run.entrypoint().clone().unwrap_or_default(),
                cmd: run.cmd().clone().unwrap_or_default(),
                env: run.env().clone().unwrap_or_default(),
                working_dir: run.working_dir().clone().filter(|w| !w.is_empty()),
                user: run.user().clone().filter(|u| !u.is_empty()),
                labels: run.labels().clone().unwrap_or_default().into_iter().collect(),
                exposed_ports,
                stop_signal: run.stop_signal().clone().filter(|s| !s.is_empty()),
            },
            layers,
        })
    }
}

/// The host's architecture in Go's naming, as image configs and platforms spell it.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types_map_to_compression() {
        let table = [
            (OCI_LAYER, Ok(Compression::None)),
            (OCI_LAYER_GZIP, Ok(Compression::Gzip)),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Ok(Compression::Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Err("zstd")),
            ("application/json", Err("not a container image layer")),
        ];
        for (media_type, expected) in table {
            match (Compression::of_media_type(media_type), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{media_type}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{media_type}: {got}"),
                (got, want) => panic!("{media_type}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn sniffs_compression_from_magic_bytes() {
        assert_eq!(Sniffed::of(&[0x1f, 0x8b, 8, 0]), Sniffed::Gzip);
        assert_eq!(Sniffed::of(&[0x28, 0xb5, 0x2f, 0xfd]), Sniffed::Zstd);
        assert_eq!(Sniffed::of(b"bin/"), Sniffed::Plain);
        assert_eq!(Sniffed::of(b""), Sniffed::Plain);
    }

    #[test]
    fn manifest_errors_name_the_document_and_field() {
        let table: [(&str, &str); 4] = [
            ("{", "EOF"),
            (
                r#"{"schemaVersion":1,"config":{"mediaType":"x","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1},"layers":[]}"#,
                "schemaVersion",
            ),
            // oci-spec checks digests while deserialising; its message names the digest and column.
            (
                r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":1},"layers":[]}"#,
                "digest",
            ),
            (
                r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.example.sbom","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1},"layers":[]}"#,
                "config.mediaType",
            ),
        ];
        for (json, needle) in table {
            let err = ParsedManifest::parse("blobs/sha256/abc", json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("blobs/sha256/abc") && err.contains(needle), "{json}: {err}");
        }
    }
}
