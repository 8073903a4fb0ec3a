//! Container images known to the cluster: names, the manifest digest that identifies them,
//! and the layers agents fetch. The blobs themselves live in every master's blob store; the
//! state only names them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayer {
    /// `sha256:…` of the blob as stored.
    pub digest: String,
    pub size: u64,
    /// `gzip` or `none`.
    pub compression: String,
    /// `sha256:…` of the uncompressed tar stream.
    pub diff_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:…` of the manifest: the image's identity.
    pub manifest: String,
    /// Names (tags) pointing at this image; a name points at one image at a time.
    pub names: Vec<String>,
    pub config_digest: String,
    /// Base layer first.
    pub layers: Vec<ImageLayer>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `NAME=value`.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Bytes of all blobs.
    pub size: u64,
    pub loaded_at_ms: u64,
}

impl ImageRecord {
    /// Every blob digest the image consists of.
    pub fn blobs(&self) -> Vec<String> {
        let mut out = vec![self.manifest.clone(), self.config_digest.clone()];
        out.extend(self.layers.iter().map(|l| l.digest.clone()));
        out
    }
}

/// Checks a record before it is stored, naming the bad field.
pub fn validate(image: &ImageRecord) -> Result<(), String> {
    let is_digest =
        |d: &str| d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
    for (field, d) in [("manifest", &image.manifest), ("config_digest", &image.config_digest)] {
        if !is_digest(d) {
            return Err(format!("{field}: {d:?} is not a sha256:<64 hex> digest"));
        }
    }
    for (i, l) in image.layers.iter().enumerate() {
        if !is_digest(&l.digest) || !is_digest(&l.diff_id) {
            return Err(format!("layers[{i}]: digest and diff_id must be sha256:<64 hex> digests"));
        }
        if l.compression != "gzip" && l.compression != "none" {
            return Err(format!("layers[{i}].compression: {:?} is not gzip or none", l.compression));
        }
    }
    if image.layers.is_empty() {
        return Err("layers: an image needs at least one layer".into());
    }
    for name in &image.names {
        if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("names: {name:?} is not a valid image name"));
        }
    }
    Ok(())
}

/// Finds an image by name (`busybox` also matches `busybox:latest`), by manifest digest, or by
/// a unique prefix of the digest's hex.
pub fn resolve<'a>(images: impl Iterator<Item = &'a ImageRecord> + Clone, reference: &str) -> Option<&'a ImageRecord> {
    let latest = format!("{reference}:latest");
    if let Some(found) = images.clone().find(|i| i.names.iter().any(|n| n == reference || *n == latest)) {
        return Some(found);
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() < 6 {
        return None;
    }
    let mut matches = images.filter(|i| i.manifest.trim_start_matches("sha256:").starts_with(hex));
    let first = matches.next()?;
    matches.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(hex: char, names: &[&str]) -> ImageRecord {
        let d = format!("sha256:{}", hex.to_string().repeat(64));
        ImageRecord {
            manifest: d.clone(),
            names: names.iter().map(|s| s.to_string()).collect(),
            config_digest: d.clone(),
            layers: vec![ImageLayer { digest: d.clone(), size: 1, compression: "gzip".into(), diff_id: d }],
            entrypoint: vec![],
            cmd: vec![],
            env: vec![],
            working_dir: None,
            user: None,
            size: 3,
            loaded_at_ms: 0,
        }
    }

    #[test]
    fn references_resolve_by_name_latest_and_digest() {
        let images = [image('a', &["busybox:latest"]), image('b', &["tools:1.0"])];
        let cases = [
            ("busybox", Some('a')),
            ("busybox:latest", Some('a')),
            ("tools:1.0", Some('b')),
            ("tools", None),
            ("bbbbbb", Some('b')),
            ("sha256:aaaaaaa", Some('a')),
            ("aaa", None),
            ("nothing", None),
        ];
        for (reference, expected) in cases {
            let got = resolve(images.iter(), reference).map(|i| i.manifest.chars().nth(7).unwrap());
            assert_eq!(got, expected, "{reference}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(validate(&image('a', &["x"])), Ok(()));
        let mut bad = image('a', &["x"]);
        bad.layers[0].compression = "zstd".into();
        assert!(validate(&bad).unwrap_err().contains("layers[0].compression"));
        let mut bad = image('a', &["x"]);
        bad.manifest = "md5:1".into();
        assert!(validate(&bad).unwrap_err().contains("manifest"));
        assert!(validate(&image('a', &["has space"])).unwrap_err().contains("names"));
    }
}
