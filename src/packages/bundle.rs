//! Air-gapped package bundles: one file that carries a package and every image it references,
//! so a cluster that has never seen a network can install it.
//!
//! A bundle is a plain tar archive (image layers are already compressed):
//!
//! | entry | what |
//! | --- | --- |
//! | `bundle.json` | the manifest: bundle format version, the package's name and version, and the SHA-256 and size of every other entry |
//! | `package.json` | the package as one entry of a Universe repository index (its template base64 in `marathon.v2AppMustacheTemplate`, `config`, `resource`) |
//! | `images/<n>.tar` | one image archive per image the package's `resource.json` names (`docker save` or OCI layout, as `medos image load` takes) |
//!
//! [`build`] reads a package directory in Universe's layout (`package.json`, `config.json`,
//! `marathon.json.mustache`, `resource.json`) and image archives (named on the command line,
//! or found in the directory's `images/` by the names inside them). [`open`] unpacks a bundle
//! into a scratch directory and checks everything before anything is uploaded: only the
//! entries above, each exactly once, each with the digest and size the manifest names, the
//! package readable, and an archive for every image it references.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::core::packages::{Package, Repository};

pub const MANIFEST: &str = "bundle.json";
pub const PACKAGE: &str = "package.json";
/// The bundle format this build writes and reads.
pub const FORMAT: u32 = 1;
/// No manifest or package is this large; refuse before reading it into memory.
const MAX_JSON: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("package directory {dir}: {message}")]
    Package { dir: String, message: String },
    #[error(
        "the package references image {image:?}, but no archive holds it: pass --image {image}=FILE or put a \
         `docker save` / OCI archive named {image} in {dir}/images/"
    )]
    MissingImage { image: String, dir: String },
    #[error("bundle {bundle}: {message}")]
    Invalid { bundle: String, message: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> BundleError {
    BundleError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// The manifest, `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub version: String,
    /// Every other entry: path → digest and size.
    pub files: BTreeMap<String, FileDigest>,
    pub images: Vec<BundledImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledImage {
    /// The name the package's `resource.json` uses (`assets.container.docker`).
    pub name: String,
    /// Its archive in the bundle (`images/0.tar`).
    pub file: String,
}

/// The images a package runs: the values of its `resource.assets.container.docker`.
pub fn referenced_images(package: &Package) -> BTreeSet<String> {
    let Ok(Value::Object(resource)) = serde_json::to_value(&package.resource) else { return BTreeSet::new() };
    resource
        .get("assets")
        .and_then(|a| a.get("container"))
        .and_then(|c| c.get("docker"))
        .and_then(Value::as_object)
        .map(|docker| docker.values().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Reads a package version directory in Universe's layout (`package.json` and, when present,
/// `config.json`, `marathon.json.mustache`, `resource.json`).
pub fn read_package_dir(dir: &Path) -> Result<Package, BundleError> {
    let bad = |message: String| BundleError::Package { dir: dir.display().to_string(), message };
    let package_json = dir.join("package.json");
    let raw = std::fs::read(&package_json).map_err(|e| bad(format!("cannot read package.json: {e}")))?;
    let meta: Value = serde_json::from_slice(&raw).map_err(|e| bad(format!("package.json: {e}")))?;
    let name = meta["name"].as_str().ok_or_else(|| bad("package.json: `name` must be a string".into()))?;
    let letter = name.chars().next().map(|c| c.to_ascii_uppercase().to_string()).unwrap_or_default();
    // Universe keeps each release in a directory named by its release number.
    let release = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("0");
    let mut files = BTreeMap::new();
    for file in ["package.json", "config.json", "marathon.json.mustache", "resource.json"] {
        match std::fs::read(dir.join(file)) {
            Ok(bytes) => {
                files.insert(format!("packages/{letter}/{name}/{release}/{file}"), bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(format!("cannot read {file}: {e}"))),
        }
    }
    let repo = Repository::from_universe_layout(&files).map_err(|e| bad(e.to_string()))?;
    repo.packages.into_iter().next().ok_or_else(|| bad("holds no package".into()))
}

/// Names of the images inside an archive (verifying it in a scratch blob store).
fn archive_names(archive: &Path, scratch: &Path) -> Result<Vec<String>, BundleError> {
    let store = crate::image::BlobStore::new(scratch).map_err(|e| io_err(scratch, e))?;
    let images = crate::image::import_archive(&store, archive, &mut |_| {}).map_err(|e| io_err(archive, e))?;
    Ok(images.into_iter().flat_map(|i| i.names).collect())
}

/// Copies `from` into the tar as `name`, hashing it on the way.
fn append_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, from: &Path) -> Result<FileDigest, BundleError> {
    let file = File::open(from).map_err(|e| io_err(from, e))?;
    let size = file.metadata().map_err(|e| io_err(from, e))?.len();
    let mut hashing = HashingReader { inner: file, hash: Sha256::new() };
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, &mut hashing).map_err(|e| io_err(from, e))?;
    Ok(FileDigest { digest: format!("sha256:{}", hex::encode(hashing.hash.finalize())), size })
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<FileDigest, BundleError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
        .map_err(|e| BundleError::Io { path: name.into(), message: e.to_string() })?;
    Ok(FileDigest { digest: format!("sha256:{}", hex::encode(Sha256::digest(bytes))), size: bytes.len() as u64 })
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Builds a bundle of the package in `dir` at `out`. `images` maps image names to archives;
/// images the package references and `images` lacks are looked for in `dir/images/*.tar`.
/// `scratch` is an empty directory for verifying archives. Nothing is written at `out` unless
/// everything is found (the bundle is written next to it and renamed).
pub fn build(
    dir: &Path,
    images: &BTreeMap<String, PathBuf>,
    out: &Path,
    scratch: &Path,
) -> Result<Manifest, BundleError> {
    let package = read_package_dir(dir)?;
    let wanted = referenced_images(&package);
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for name in &wanted {
        if let Some(path) = images.get(name) {
            let names = archive_names(path, &scratch.join(format!("given-{}", found.len())))?;
            if !names.iter().any(|n| n == name) && names.len() > 1 {
                return Err(io_err(path, format!("holds images {names:?}, none named {name:?}")));
            }
            found.insert(name.clone(), path.clone());
        }
    }
    let images_dir = dir.join("images");
    if found.len() < wanted.len() && images_dir.is_dir() {
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(&images_dir)
            .map_err(|e| io_err(&images_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        candidates.sort();
        for (i, path) in candidates.iter().enumerate() {
            for name in archive_names(path, &scratch.join(format!("found-{i}")))? {
                if wanted.contains(&name) && !found.contains_key(&name) {
                    found.insert(name, path.clone());
                }
            }
        }
    }
    if let Some(missing) = wanted.iter().find(|w| !found.contains_key(*w)) {
        return Err(BundleError::MissingImage { image: missing.clone(), dir: dir.display().to_string() });
    }
    let extra: Vec<&String> = images.keys().filter(|k| !wanted.contains(*k)).collect();
    if !extra.is_empty() {
        return Err(BundleError::Package {
            dir: dir.display().to_string(),
            message: format!("--image names {extra:?}, which the package's resource.json does not reference"),
        });
    }

    let package_json = serde_json::to_vec_pretty(&package).map_err(|e| io_err(dir, e))?;
    let partial = out.with_extension("partial");
    let file = File::create(&partial).map_err(|e| io_err(&partial, e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut files = BTreeMap::new();
    files.insert(PACKAGE.to_string(), append_bytes(&mut tar, PACKAGE, &package_json)?);
    let mut bundled = Vec::new();
    for (i, (name, path)) in found.iter().enumerate() {
        let entry = format!("images/{i}.tar");
        files.insert(entry.clone(), append_file(&mut tar, &entry, path)?);
        bundled.push(BundledImage { name: name.clone(), file: entry });
    }
    let manifest = Manifest {
        format: FORMAT,
        name: package.name.clone(),
        version: package.version.clone(),
        files,
        images: bundled,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| io_err(out, e))?;
    append_bytes(&mut tar, MANIFEST, &manifest_json)?;
    let mut writer = tar.into_inner().map_err(|e| io_err(&partial, e))?;
    writer.flush().map_err(|e| io_err(&partial, e))?;
    writer.into_inner().map_err(|e| io_err(&partial, e.error()))?.sync_all().map_err(|e| io_err(&partial, e))?;
    std::fs::rename(&partial, out).map_err(|e| io_err(out, e))?;
    Ok(manifest)
}

/// A bundle unpacked and checked.
#[derive(Debug)]
pub struct Opened {
    pub manifest: Manifest,
    /// The package JSON as stored (what `POST /package/add` takes).
    pub package_json: Value,
    pub package: Package,
    /// Image name → its archive, unpacked under the scratch directory.
    pub images: Vec<(String, PathBuf)>,
}

/// Unpacks `bundle` into `scratch` (an empty directory) and checks it; see the module docs.
pub fn open(bundle: &Path, scratch: &Path) -> Result<Opened, BundleError> {
    let invalid = |message: String| BundleError::Invalid { bundle: bundle.display().to_string(), message };
    let file = File::open(bundle).map_err(|e| io_err(bundle, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut seen: BTreeMap<String, FileDigest> = BTreeMap::new();
    let mut manifest_bytes = None;
    let mut package_bytes = None;
    let entries = archive.entries().map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("unreadable entry: {e}")))?;
        let path =
            entry.path().map_err(|e| invalid(format!("entry with a bad path: {e}")))?.to_string_lossy().into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(invalid(format!("entry {path:?} is not a regular file")));
        }
        let allowed = path == MANIFEST
            || path == PACKAGE
            || path
                .strip_prefix("images/")
                .and_then(|p| p.strip_suffix(".tar"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !allowed {
            return Err(invalid(format!(
                "unexpected entry {path:?} (a bundle holds only {MANIFEST}, {PACKAGE} and images/<n>.tar)"
            )));
        }
        if seen.contains_key(&path) || (path == MANIFEST && manifest_bytes.is_some()) {
            return Err(invalid(format!("entry {path:?} appears twice")));
        }
        if path == MANIFEST || path == PACKAGE {
            if entry.size() > MAX_JSON {
                return Err(invalid(format!("{path} is {} bytes; at most {MAX_JSON} are allowed", entry.size())));
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| invalid(format!("reading {path}: {e}")))?;
            if path == MANIFEST {
                manifest_bytes = Some(bytes);
                continue;
            }
            seen.insert(
                path.clone(),
                FileDigest {
                    digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
                    size: bytes.len() as u64,
                },
            );
            package_bytes = Some(bytes);
            continue;
        }
        let target = scratch.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        let out = File::create(&target).map_err(|e| io_err(&target, e))?;
        let mut hashing = HashingReader { inner: &mut entry, hash: Sha256::new() };
        let mut writer = std::io::BufWriter::new(out);
        let size = std::io::copy(&mut hashing, &mut writer).map_err(|e| invalid(format!("reading {path}: {e}")))?;
        writer.flush().map_err(|e| io_err(&target, e))?;
        seen.insert(path, FileDigest { digest: format!("sha256:{}", hex::encode(hashing.hash.finalize())), size });
    }
    let manifest_bytes =
        manifest_bytes.ok_or_else(|| invalid(format!("no {MANIFEST}: this is not a medos package bundle")))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| invalid(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(invalid(format!("{MANIFEST}: format {} is not one this medos reads ({FORMAT})", manifest.format)));
    }
    for (path, want) in &manifest.files {
        match seen.get(path) {
            None => return Err(invalid(format!("{path} is in {MANIFEST} but not in the bundle"))),
            Some(got) if got != want => {
                return Err(invalid(format!(
                    "{path} has digest {} ({} bytes), but {MANIFEST} says {} ({} bytes): the bundle is damaged or was altered",
                    got.digest, got.size, want.digest, want.size
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().find(|p| !manifest.files.contains_key(*p)) {
        return Err(invalid(format!("{extra} is in the bundle but not in {MANIFEST}")));
    }
    let package_bytes = package_bytes.ok_or_else(|| invalid(format!("no {PACKAGE}")))?;
    let package_json: Value = serde_json::from_slice(&package_bytes).map_err(|e| invalid(format!("{PACKAGE}: {e}")))?;
    let package = Package::from_json(&package_json)
        .map_err(|(field, message)| invalid(format!("{PACKAGE}: {field}: {message}")))?;
    if package.name != manifest.name || package.version != manifest.version {
        return Err(invalid(format!(
            "{MANIFEST} names {} {}, but {PACKAGE} holds {} {}",
            manifest.name, manifest.version, package.name, package.version
        )));
    }
    let mut images = Vec::new();
    for image in &manifest.images {
        if !manifest.files.contains_key(&image.file) {
            return Err(invalid(format!("image {:?} names {}, which is not in the bundle", image.name, image.file)));
        }
        images.push((image.name.clone(), scratch.join(&image.file)));
    }
    let bundled: BTreeSet<String> = manifest.images.iter().map(|i| i.name.clone()).collect();
    if let Some(missing) = referenced_images(&package).into_iter().find(|i| !bundled.contains(i)) {
        return Err(invalid(format!("the package references image {missing:?}, which the bundle does not carry")));
    }
    Ok(Opened { manifest, package_json, package, images })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testing::{ArchiveFormat, ImageSpec, busybox_image};

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// A package version directory that runs `image`.
    fn package_dir(root: &Path, image: &str) -> PathBuf {
        let dir = root.join("pkg").join("0");
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "package.json",
            r#"{"packagingVersion": "4.0", "name": "tiny-web", "version": "1.0.0", "maintainer": "medos",
                "description": "a tiny web server", "tags": ["web"]}"#,
        );
        write(
            &dir,
            "config.json",
            r#"{"type": "object", "properties": {"port": {"type": "integer", "default": 8080}}}"#,
        );
        write(
            &dir,
            "marathon.json.mustache",
            r#"{"id": "/tiny-web", "cmd": "httpd -f -p {{port}}", "cpus": 0.1, "mem": 32,
                "container": {"type": "MESOS", "docker": {"image": "{{resource.assets.container.docker.web}}"}}}"#,
        );
        write(&dir, "resource.json", &format!(r#"{{"assets": {{"container": {{"docker": {{"web": "{image}"}}}}}}}}"#));
        dir
    }

    fn busybox_available() -> bool {
        Path::new(crate::image::testing::BUSYBOX).exists()
    }

    #[test]
    fn a_bundle_round_trips_with_its_image_found_by_name() {
        if !busybox_available() {
            eprintln!("skipped: needs Debian's busybox-static for a real image");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dir = package_dir(root.path(), "tiny/busybox:1");
        std::fs::create_dir_all(dir.join("images")).unwrap();
        busybox_image(&dir.join("images/busybox.tar"), &ImageSpec::new("tiny/busybox:1", ArchiveFormat::OciLayout))
            .unwrap();
        let out = root.path().join("tiny-web.bundle");
        let scratch = root.path().join("scratch");
        let manifest = build(&dir, &BTreeMap::new(), &out, &scratch).unwrap();
        assert_eq!((manifest.name.as_str(), manifest.version.as_str()), ("tiny-web", "1.0.0"));
        assert_eq!(manifest.images, vec![BundledImage { name: "tiny/busybox:1".into(), file: "images/0.tar".into() }]);

        let unpacked = root.path().join("unpacked");
        let opened = open(&out, &unpacked).unwrap();
        assert_eq!(opened.package.name, "tiny-web");
        assert_eq!(opened.images.len(), 1);
        assert_eq!(
            std::fs::read(&opened.images[0].1).unwrap(),
            std::fs::read(dir.join("images/busybox.tar")).unwrap(),
            "the image archive travels unchanged"
        );
        let template = opened.package.template().unwrap().unwrap();
        assert!(template.contains("httpd -f -p {{port}}"), "{template}");
    }

    #[test]
    fn a_missing_image_is_named_and_nothing_is_written() {
        let root = tempfile::tempdir().unwrap();
        let dir = package_dir(root.path(), "tiny/busybox:1");
        let out = root.path().join("x.bundle");
        let err = build(&dir, &BTreeMap::new(), &out, &root.path().join("s")).unwrap_err();
        assert!(err.to_string().contains("\"tiny/busybox:1\"") && err.to_string().contains("--image"), "{err}");
        assert!(!out.exists() && !out.with_extension("partial").exists());
        let extra = BTreeMap::from([("other:1".to_string(), root.path().join("nope.tar"))]);
        let err = build(&dir, &extra, &out, &root.path().join("s2")).unwrap_err();
        assert!(err.to_string().contains("tiny/busybox:1"), "{err}");
    }

    /// Writes a tar with the given entries.
    fn tar_of(path: &Path, entries: &[(&str, &[u8])]) {
        let mut b = tar::Builder::new(File::create(path).unwrap());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw names: `set_path` refuses `..`, which a hostile bundle may hold.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.finish().unwrap();
    }

    #[test]
    fn damaged_or_foreign_bundles_are_refused_with_the_reason() {
        let root = tempfile::tempdir().unwrap();
        let dir = package_dir(root.path(), "tiny/busybox:1");
        let package = serde_json::to_vec(&read_package_dir(&dir).unwrap()).unwrap();
        let fake_image = b"not really an image".as_slice();
        let digest = |b: &[u8]| FileDigest {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(b))),
            size: b.len() as u64,
        };
        let manifest = |files: Vec<(&str, FileDigest)>, images: Vec<BundledImage>| {
            serde_json::to_vec(&Manifest {
                format: FORMAT,
                name: "tiny-web".into(),
                version: "1.0.0".into(),
                files: files.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                images,
            })
            .unwrap()
        };
        let image = || vec![BundledImage { name: "tiny/busybox:1".into(), file: "images/0.tar".into() }];
        let good = manifest(vec![(PACKAGE, digest(&package)), ("images/0.tar", digest(fake_image))], image());
        let tampered = b"not really an imagE".as_slice();
        let no_image = manifest(vec![(PACKAGE, digest(&package))], vec![]);
        type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, &'a str);
        let cases: Vec<Case> = vec![
            ("good", vec![(PACKAGE, &package), ("images/0.tar", fake_image), (MANIFEST, &good)], ""),
            (
                "altered image",
                vec![(PACKAGE, &package), ("images/0.tar", tampered), (MANIFEST, &good)],
                "damaged or was altered",
            ),
            ("no manifest", vec![(PACKAGE, &package)], "not a medos package bundle"),
            ("traversal", vec![("../evil", b"x"), (MANIFEST, &good)], "unexpected entry"),
            (
                "extra entry",
                vec![("images/7.tar", b"x"), (PACKAGE, &package), ("images/0.tar", fake_image), (MANIFEST, &good)],
                "not in bundle.json",
            ),
            ("missing file", vec![(PACKAGE, &package), (MANIFEST, &good)], "but not in the bundle"),
            ("image not carried", vec![(PACKAGE, &package), (MANIFEST, &no_image)], "does not carry"),
            ("bad manifest", vec![(PACKAGE, &package), (MANIFEST, b"{\"format\": 1}")], "bundle.json"),
        ];
        for (what, entries, want) in cases {
            let path = root.path().join(format!("{what}.bundle"));
            tar_of(&path, &entries);
            let got = open(&path, &root.path().join(format!("scratch-{what}")));
            match (want, got) {
                ("", Ok(opened)) => assert_eq!(opened.images.len(), 1, "{what}"),
                ("", Err(e)) => panic!("{what}: {e}"),
                (want, Ok(_)) => panic!("{what}: accepted, wanted an error with {want:?}"),
                (want, Err(e)) => assert!(e.to_string().contains(want), "{what}: {e} lacks {want:?}"),
            }
        }
        std::fs::write(root.path().join("plain.bundle"), b"just text").unwrap();
        assert!(open(&root.path().join("plain.bundle"), &root.path().join("s-plain")).is_err());
    }
}
