//! Resolving an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) into images.
//!
//! Also handles Docker 25+ `docker save` archives, which are OCI layouts with a `manifest.json`
//! beside them: their `RepoTags` name the images. Names otherwise come from the descriptor's
//! `io.containerd.image.name` annotation or, failing that, `org.opencontainers.image.ref.name`.
//! Nested indexes (multi-platform images) resolve to the manifest for this host's platform;
//! attestation manifests are skipped.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageIndex, OciLayout};

use super::{
    digest::Digest,
    docker_save,
    error::{ImageError, Result},
    import::{Resolution, StagedEntry, Staging, check_layers},
    manifest::{
        Blob, CONTAINERD_NAME_ANNOTATION, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
        ParsedManifest, REF_NAME_ANNOTATION, host_architecture,
    },
};

/// How deep image indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

/// Resolves the staged layout's images and schedules their blobs.
pub(crate) fn resolve(staging: &Staging) -> Result<Resolution> {
    let layout = staging.read_document("oci-layout", "the OCI image layout (index.json is present)", "oci-layout")?;
    let layout: OciLayout = serde_json::from_slice(&layout).map_err(|e| ImageError::InvalidDocument {
        entry: "oci-layout".into(),
        what: "oci-layout file",
        detail: e.to_string(),
    })?;
    if !layout.image_layout_version().starts_with("1.") {
        return Err(ImageError::Unsupported {
            what: format!("oci-layout imageLayoutVersion {:?}", layout.image_layout_version()),
            detail: "medos reads version 1.x image layouts".into(),
        });
    }
    let index = parse_index(staging, "index.json", "the archive root")?;

    // Docker 25+ archives: RepoTags by config digest.
    let mut repo_tags: HashMap<Digest, Vec<String>> = HashMap::new();
    if staging.entries.contains_key("manifest.json") {
        for entry in docker_save::read_manifest_json(staging)? {
            let (_, config) = staging.get(&entry.config, "manifest.json")?;
            repo_tags.entry(config.digest).or_default().extend(entry.repo_tags.unwrap_or_default());
        }
    }

    let mut candidates: Vec<(Blob, Vec<String>, String)> = Vec::new();
    let mut skipped = Vec::new();
    for (i, descriptor) in index.manifests().iter().enumerate() {
        let field = format!("index.json: manifests[{i}]");
        if is_attestation(descriptor) {
            continue;
        }
        if let Some(platform) = platform_mismatch(descriptor) {
            skipped.push(platform);
            continue;
        }
        let names = annotation_names(descriptor);
        let blob = Blob::from_descriptor(descriptor, &field)?;
        match blob.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => candidates.push((blob, names, field)),
            OCI_INDEX | DOCKER_MANIFEST_LIST => {
                let (blob, field) = select_platform(staging, blob, field, 1)?;
                candidates.push((blob, names, field));
            }
            other => {
                return Err(ImageError::Unsupported {
                    what: format!("{field}: mediaType {other:?}"),
                    detail: "expected an image manifest or image index".into(),
                });
            }
        }
    }
    if candidates.is_empty() {
        return Err(ImageError::NotAnImage(if skipped.is_empty() {
            "index.json lists no image manifests".into()
        } else {
            format!("index.json has no image for linux/{} (it has {})", host_architecture(), skipped.join(", "))
        }));
    }

    let mut resolution = Resolution::default();
    for (blob, names, field) in candidates {
        let (manifest_entry, manifest_file) = staged_blob(staging, &blob, &field)?;
        let manifest_entry = manifest_entry.to_owned();
        let bytes = staging.read_document(&manifest_entry, &field, "image manifest")?;
        let parsed = ParsedManifest::parse(&manifest_entry, &bytes)?;
        let config_field = format!("{manifest_entry}: config");
        let (config_entry, config_file) = staged_blob(staging, &parsed.config, &config_field)?;
        let config_bytes = staging.read_document(config_entry, &config_field, "image config")?;
        let names = match repo_tags.get(&parsed.config.digest) {
            Some(tags) if !tags.is_empty() => tags.clone(),
            _ => names,
        };
        let image = parsed.describe(names, blob.digest, blob.size, &config_bytes)?;
        let mut layer_entries = Vec::with_capacity(parsed.layers.len());
        for (index, (layer, _)) in parsed.layers.iter().enumerate() {
            let (name, staged) = staged_blob(staging, layer, &format!("{manifest_entry}: layers[{index}]"))?;
            layer_entries.push(name.to_owned());
            resolution.add_blob(&staged.file, layer.digest);
        }
        check_layers(staging, &image, &layer_entries, &manifest_entry)?;
        resolution.add_blob(&config_file.file, parsed.config.digest);
        resolution.add_blob(&manifest_file.file, blob.digest);
        resolution.add_image(image);
    }
    Ok(resolution)
}

/// The staged `blobs/sha256/<hex>` for a descriptor, its size checked (its digest was checked
/// against its name while staging).
fn staged_blob<'s>(staging: &'s Staging, blob: &Blob, referenced_by: &str) -> Result<(&'s str, &'s StagedEntry)> {
    let (name, staged) = staging.blob(&blob.digest, referenced_by)?;
    if staged.size != blob.size {
        return Err(ImageError::SizeMismatch { entry: name.to_owned(), expected: blob.size, actual: staged.size });
    }
    Ok((name, staged))
}

fn parse_index(staging: &Staging, entry: &str, referenced_by: &str) -> Result<ImageIndex> {
    let bytes = staging.read_document(entry, referenced_by, "image index")?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| ImageError::InvalidDocument {
        entry: entry.to_owned(),
        what: "image index",
        detail: e.to_string(),
    })?;
    if index.schema_version() != 2 {
        return Err(ImageError::InvalidDocument {
            entry: entry.to_owned(),
            what: "image index",
            detail: format!("schemaVersion is {}, expected 2", index.schema_version()),
        });
    }
    Ok(index)
}

/// Picks this host's manifest out of a (possibly nested) image index.
fn select_platform(staging: &Staging, index_blob: Blob, field: String, depth: usize) -> Result<(Blob, String)> {
    if depth > MAX_INDEX_DEPTH {
        return Err(ImageError::Unsupported {
            what: format!("{field}: image indexes nested more than {MAX_INDEX_DEPTH} deep"),
            detail: "flatten the image index".into(),
        });
    }
    let (entry, _) = staged_blob(staging, &index_blob, &field)?;
    let entry = entry.to_owned();
    let index = parse_index(staging, &entry, &field)?;
    let mut seen = Vec::new();
    for (i, descriptor) in index.manifests().iter().enumerate() {
        let field = format!("{entry}: manifests[{i}]");
        if is_attestation(descriptor) {
            continue;
        }
        if let Some(platform) = platform_mismatch(descriptor) {
            seen.push(platform);
            continue;
        }
        let blob = Blob::from_descriptor(descriptor, &field)?;
        match blob.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => return Ok((blob, field)),
            OCI_INDEX | DOCKER_MANIFEST_LIST => return select_platform(staging, blob, field, depth + 1),
            _ => seen.push(format!("{} ({})", blob.digest, blob.media_type)),
        }
    }
    Err(ImageError::NotAnImage(format!(
        "{entry} has no image for linux/{} (it has {})",
        host_architecture(),
        if seen.is_empty() { "nothing".to_owned() } else { seen.join(", ") }
    )))
}

/// `Some("os/arch")` if the descriptor names a platform other than this host's.
fn platform_mismatch(descriptor: &Descriptor) -> Option<String> {
    let platform = descriptor.platform().as_ref()?;
    let (os, arch) = (platform.os().to_string(), platform.architecture().to_string());
    (os != "linux" || arch != host_architecture()).then(|| format!("{os}/{arch}"))
}

/// Buildx attaches provenance/SBOM manifests to indexes; they are not runnable images.
fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// The image names a top-level descriptor carries: containerd's full name, else `ref.name`.
fn annotation_names(descriptor: &Descriptor) -> Vec<String> {
    let Some(annotations) = descriptor.annotations() else { return Vec::new() };
    [CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION]
        .into_iter()
        .find_map(|key| annotations.get(key).filter(|v| !v.is_empty()))
        .map(|name| vec![name.clone()])
        .unwrap_or_default()
}
