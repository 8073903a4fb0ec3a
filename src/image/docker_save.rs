//! Resolving a `docker save` archive (`manifest.json` with `Config`, `RepoTags`, `Layers`).
//!
//! Layers are `<id>/layer.tar` (classic Docker, possibly symlinks to another layer's tar) or
//! `blobs/sha256/<hex>` (Docker 25+). Nothing in the classic format is named by the digest of
//! its content except the config (`<hex>.json`), so digests are computed while staging, and each
//! uncompressed layer must match the config's `rootfs.diff_ids`. Such an image has no manifest:
//! medos writes an OCI image manifest for it (deterministic JSON, so importing the same archive
//! twice gives the same manifest digest).

use serde::Deserialize;

use super::{
    digest::Digest,
    error::{ImageError, Result},
    import::{Content, Resolution, Staging, check_layers},
    manifest::{Compression, OCI_CONFIG, OCI_MANIFEST, ParsedManifest},
};

/// One image in `manifest.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct DockerManifestEntry {
    /// Path of the image config inside the archive.
    #[serde(rename = "Config")]
    pub(crate) config: String,
    /// Names, e.g. `busybox:latest`; absent or null when saved by id.
    #[serde(rename = "RepoTags", default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    /// Paths of the layer tarballs, base layer first.
    #[serde(rename = "Layers", default)]
    pub(crate) layers: Vec<String>,
}

/// Parses `manifest.json`.
pub(crate) fn read_manifest_json(staging: &Staging) -> Result<Vec<DockerManifestEntry>> {
    let bytes = staging.read_document("manifest.json", "the archive root", "docker manifest.json")?;
    serde_json::from_slice(&bytes).map_err(|e| ImageError::InvalidDocument {
        entry: "manifest.json".into(),
        what: "docker manifest.json",
        detail: e.to_string(),
    })
}

/// Resolves the staged archive's images, writing an OCI manifest for each.
pub(crate) fn resolve(staging: &mut Staging) -> Result<Resolution> {
    let entries = read_manifest_json(staging)?;
    if entries.is_empty() {
        return Err(ImageError::NotAnImage("manifest.json lists no images".into()));
    }
    let mut resolution = Resolution::default();
    for (i, entry) in entries.into_iter().enumerate() {
        let field = format!("manifest.json[{i}]");
        let (config_entry, config) = staging.get(&entry.config, &format!("{field}.Config"))?;
        if let Some(named) =
            config_entry.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).and_then(Digest::from_hex)
            && named != config.digest
        {
            return Err(ImageError::DigestMismatch {
                entry: config_entry.to_owned(),
                expected: named,
                actual: config.digest,
            });
        }
        let (config_file, config_digest, config_size) = (config.file.clone(), config.digest, config.size);
        let config_bytes = staging.read_document(&entry.config, &format!("{field}.Config"), "image config")?;

        let mut layers = Vec::with_capacity(entry.layers.len());
        for (index, path) in entry.layers.iter().enumerate() {
            let (name, staged) = staging.get(path, &format!("{field}.Layers[{index}]"))?;
            let compression = match &staged.content {
                Content::Plain => Compression::None,
                Content::Gzip { .. } => Compression::Gzip,
                Content::Zstd => {
                    return Err(ImageError::Unsupported {
                        what: format!("{name}: a zstd-compressed layer"),
                        detail: "export the image with gzip or uncompressed layers".into(),
                    });
                }
                Content::BadGzip(detail) => {
                    return Err(ImageError::CorruptArchive {
                        at: format!("in entry {name}"),
                        detail: format!("layer {index} is not valid gzip data: {detail}"),
                    });
                }
            };
            resolution.add_blob(&staged.file, staged.digest);
            layers.push(serde_json::json!({
                "mediaType": compression.oci_media_type(),
                "digest": staged.digest.to_string(),
                "size": staged.size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size },
            "layers": layers,
        });
        let manifest = serde_json::to_vec(&manifest).expect("a JSON value serialises");
        let parsed = ParsedManifest::parse(&format!("{field} (as an OCI manifest)"), &manifest)?;
        let names = entry.repo_tags.unwrap_or_default();
        let image = parsed.describe(names, Digest::of(&manifest), manifest.len() as u64, &config_bytes).map_err(
            |e| match e {
                // Name the layer file, not the manifest medos wrote.
                ImageError::DiffIdMismatch { index, expected, actual, .. } => {
                    ImageError::DiffIdMismatch { entry: entry.layers[index].clone(), index, expected, actual }
                }
                e => e,
            },
        )?;
        check_layers(staging, &image, &entry.layers, &field)?;

        let (manifest_file, manifest_digest) = staging.add_document(&manifest)?;
        resolution.add_blob(&config_file, config_digest);
        resolution.add_blob(&manifest_file, manifest_digest);
        resolution.add_image(image);
    }
    Ok(resolution)
}
