//! Test images without a registry: a real busybox image built from Debian's static busybox,
//! packed as an OCI image layout or a `docker save` archive, and deliberately broken archives
//! and layers for the refusal tests. Used by this module's tests and by later integration and
//! end-to-end tests (public on purpose; it is small and has no test-only dependencies).
//!
//! Everything is deterministic (fixed mtimes, owners, gzip headers), so building the same image
//! twice gives the same digests. Digests are computed here with `sha2` directly, independently
//! of the importer, so tests can compare the two.

use std::{
    ffi::OsStr,
    fs,
    io::{Read, Write},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use flate2::{Compression as GzLevel, write::GzEncoder};
use serde_json::{Value, json};
use tar::{EntryType, Header};

use super::{
    digest::Digest,
    error::{ImageError, Result},
    manifest::{
        CONTAINERD_NAME_ANNOTATION, Compression, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, REF_NAME_ANNOTATION,
        host_architecture,
    },
};

/// Where Debian's `busybox-static` package installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The applets the test image links to busybox, in `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "hostname", "ps", "id", "head", "tail", "mkdir", "rm", "env", "true", "false",
];

/// The mtime of every entry the builders write (2023-11-14).
pub const MTIME: u64 = 1_700_000_000;

/// How a test image archive is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`), as skopeo or umoci
    /// write it; the name is the `org.opencontainers.image.ref.name` annotation.
    OciLayout,
    /// Classic `docker save`: `manifest.json`, `<config-hex>.json`, `<id>/layer.tar`,
    /// `repositories`. A layer identical to an earlier one is a symlink to its `layer.tar`.
    DockerSave,
    /// Docker 25+ `docker save`: an OCI layout plus `manifest.json` whose paths are blobs.
    DockerSaveOci,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The image name, e.g. `busybox:latest`.
    pub name: String,
    /// The archive format.
    pub format: ArchiveFormat,
    /// Gzip each layer (otherwise plain tar layers).
    pub gzip_layers: bool,
    /// Gzip the whole archive.
    pub gzip_archive: bool,
}

impl ImageSpec {
    /// An image named `name` in `format`, gzip'd layers, plain archive.
    pub fn new(name: &str, format: ArchiveFormat) -> Self {
        ImageSpec { name: name.to_owned(), format, gzip_layers: true, gzip_archive: false }
    }
}

/// A layer as built, with digests computed by the builder.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    /// Digest of the blob as stored in the archive.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the stored blob in bytes.
    pub size: u64,
    /// How the blob is compressed.
    pub compression: Compression,
}

/// An image archive as built.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The archive file.
    pub path: PathBuf,
    /// The names an importer should report.
    pub names: Vec<String>,
    /// The manifest digest, for formats that contain a manifest (not classic `docker save`).
    pub manifest: Option<Digest>,
    /// The config blob's digest.
    pub config: Digest,
    /// The layers, base first.
    pub layers: Vec<BuiltLayer>,
}

/// Builds layer tarballs entry by entry with fixed owners and mtimes. Paths are written
/// verbatim (no validation), so it can also write the hostile entries of [`malicious_layer`].
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        LayerBuilder { tar: tar::Builder::new(Vec::new()) }
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entry(EntryType::Directory, path.as_bytes(), None, mode, b"")
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.entry(EntryType::Regular, path.as_bytes(), None, mode, data)
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Symlink, path.as_bytes(), Some(target.as_bytes()), 0o777, b"")
    }

    /// A hard link to an earlier entry.
    pub fn hard_link(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Link, path.as_bytes(), Some(target.as_bytes()), 0o644, b"")
    }

    /// A character or block device.
    pub fn device(&mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        let mut header = self.header(kind, 0o600, 0);
        header.set_device_major(major).expect("a GNU header has device fields");
        header.set_device_minor(minor).expect("a GNU header has device fields");
        self.append(header, path.as_bytes(), None, b"")
    }

    /// Any entry, with a raw path and optional link target (written verbatim up to 100 bytes;
    /// longer ones must be plain relative paths).
    pub fn entry(&mut self, kind: EntryType, path: &[u8], link: Option<&[u8]>, mode: u32, data: &[u8]) -> &mut Self {
        let header = self.header(kind, mode, data.len() as u64);
        self.append(header, path, link, data)
    }

    /// The tar stream.
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().expect("writing to a Vec cannot fail")
    }

    fn header(&self, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(size);
        header
    }

    fn append(&mut self, mut header: Header, path: &[u8], link: Option<&[u8]>, data: &[u8]) -> &mut Self {
        let old = header.as_old_mut();
        if path.len() <= old.name.len() && link.is_none_or(|link| link.len() <= old.linkname.len()) {
            // Written verbatim, so hostile paths (`..`, absolute) survive.
            old.name[..path.len()].copy_from_slice(path);
            if let Some(link) = link {
                old.linkname[..link.len()].copy_from_slice(link);
            }
            header.set_cksum();
            self.tar.append(&header, data).expect("writing to a Vec cannot fail");
        } else {
            // Long names need GNU long-name entries, which tar writes for plain relative paths.
            let path = Path::new(OsStr::from_bytes(path));
            let result = match link {
                Some(link) => self.tar.append_link(&mut header, path, Path::new(OsStr::from_bytes(link))),
                None => self.tar.append_data(&mut header, path, data),
            };
            result.expect("paths over 100 bytes must be plain relative paths");
        }
        self
    }
}

/// The two layers of the busybox test image, as uncompressed tars: a base with busybox, its
/// applets, `/etc/passwd`, `/etc/motd` and `/opt/old/{a,b}.txt`; and an upper layer that
/// whites out `/etc/motd`, makes `/opt/old` opaque (adding `new.txt`) and adds
/// `/etc/medos-release`.
pub fn busybox_layers() -> Result<Vec<Vec<u8>>> {
    let busybox = fs::read(BUSYBOX).map_err(|e| {
        ImageError::TestImage(format!(
            "cannot read {BUSYBOX} ({e}); install Debian's busybox-static package (apt-get install busybox-static)"
        ))
    })?;
    let mut base = LayerBuilder::new();
    base.dir("./", 0o755);
    for dir in ["bin", "etc", "root", "proc", "sys", "dev", "home", "var", "opt", "opt/old"] {
        base.dir(&format!("{dir}/"), if dir == "root" { 0o700 } else { 0o755 });
    }
    base.dir("tmp/", 0o1777);
    base.file("bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        base.symlink(&format!("bin/{applet}"), "busybox");
    }
    base.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    base.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");
    base.hard_link("etc/group.hardlink", "etc/group");
    base.file("etc/motd", 0o644, b"welcome to a medos test image\n");
    base.file("bin/setuid-marker", 0o4755, b"#!/bin/sh\necho setuid\n");
    base.file("opt/old/a.txt", 0o644, b"a\n");
    base.file("opt/old/b.txt", 0o644, b"b\n");

    let mut upper = LayerBuilder::new();
    upper.dir("etc/", 0o755);
    upper.file("etc/.wh.motd", 0o644, b"");
    upper.file("etc/medos-release", 0o644, b"medos test image\n");
    upper.dir("opt/", 0o755);
    upper.dir("opt/old/", 0o755);
    upper.file("opt/old/.wh..wh..opq", 0o644, b"");
    upper.file("opt/old/new.txt", 0o644, b"new\n");
    Ok(vec![base.finish(), upper.finish()])
}

/// The `config` object of the busybox test image.
pub fn busybox_run_config() -> Value {
    json!({
        "Env": ["PATH=/bin"],
        "Cmd": ["sh"],
        "WorkingDir": "/",
        "Labels": { "org.medos.test": "busybox" },
    })
}

/// Builds the busybox test image at `path`.
pub fn busybox_image(path: &Path, spec: &ImageSpec) -> Result<BuiltImage> {
    build_archive(path, spec, &busybox_layers()?, &busybox_run_config())
}

/// Packs `layers` (uncompressed tars, base first) with the image config's `config` object
/// `run_config` into an archive at `path`.
pub fn build_archive(path: &Path, spec: &ImageSpec, layers: &[Vec<u8>], run_config: &Value) -> Result<BuiltImage> {
    let compression = if spec.gzip_layers { Compression::Gzip } else { Compression::None };
    let mut blobs = Vec::new();
    let mut built_layers = Vec::new();
    for tar in layers {
        let blob = match compression {
            Compression::None => tar.clone(),
            Compression::Gzip => gzip(tar),
        };
        built_layers.push(BuiltLayer {
            digest: Digest::of(&blob),
            diff_id: Digest::of(tar),
            size: blob.len() as u64,
            compression,
        });
        blobs.push(blob);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": host_architecture(),
        "os": "linux",
        "config": run_config,
        "rootfs": { "type": "layers", "diff_ids": built_layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>() },
        "history": [{ "created_by": "medos image::testing" }],
    }))
    .expect("JSON serialises");
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len() },
        "layers": built_layers.iter().map(|l| json!({
            "mediaType": l.compression.oci_media_type(), "digest": l.digest.to_string(), "size": l.size,
        })).collect::<Vec<_>>(),
    }))
    .expect("JSON serialises");
    let manifest_digest = Digest::of(&manifest);

    let mut archive = ArchiveWriter::default();
    let (names, manifest) = match spec.format {
        ArchiveFormat::OciLayout | ArchiveFormat::DockerSaveOci => {
            let docker = spec.format == ArchiveFormat::DockerSaveOci;
            archive.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
            for blob in blobs.iter().chain([&config, &manifest]) {
                archive.file(&blob_path(&Digest::of(blob)), blob);
            }
            let annotations = if docker {
                let tag = spec.name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
                json!({ CONTAINERD_NAME_ANNOTATION: format!("docker.io/library/{}", spec.name), REF_NAME_ANNOTATION: tag })
            } else {
                json!({ REF_NAME_ANNOTATION: spec.name })
            };
            let index = json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{
                    "mediaType": OCI_MANIFEST, "digest": manifest_digest.to_string(), "size": manifest.len(),
                    "annotations": annotations,
                }],
            });
            archive.file("index.json", &serde_json::to_vec(&index).expect("JSON serialises"));
            if docker {
                let entry = json!([{
                    "Config": blob_path(&config_digest),
                    "RepoTags": [spec.name],
                    "Layers": built_layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
                }]);
                archive.file("manifest.json", &serde_json::to_vec(&entry).expect("JSON serialises"));
            }
            (vec![spec.name.clone()], Some(manifest_digest))
        }
        ArchiveFormat::DockerSave => {
            let mut layer_paths: Vec<String> = Vec::new();
            for (index, (layer, blob)) in built_layers.iter().zip(&blobs).enumerate() {
                let id = Digest::of(format!("{}/{index}", layer.diff_id).as_bytes()).hex();
                archive.file(&format!("{id}/VERSION"), b"1.0");
                archive.file(&format!("{id}/json"), json!({ "id": id }).to_string().as_bytes());
                match built_layers[..index].iter().position(|earlier| earlier.digest == layer.digest) {
                    Some(earlier) => {
                        archive.symlink(&format!("{id}/layer.tar"), &format!("../{}", layer_paths[earlier]))
                    }
                    None => archive.file(&format!("{id}/layer.tar"), blob),
                }
                layer_paths.push(format!("{id}/layer.tar"));
            }
            archive.file(&format!("{}.json", config_digest.hex()), &config);
            let (repository, tag) = spec.name.rsplit_once(':').unwrap_or((&spec.name, "latest"));
            let last_id = layer_paths.last().and_then(|p| p.split('/').next()).unwrap_or_default();
            archive.file("repositories", json!({ repository: { tag: last_id } }).to_string().as_bytes());
            let entry = json!([{ "Config": format!("{}.json", config_digest.hex()), "RepoTags": [spec.name], "Layers": layer_paths }]);
            archive.file("manifest.json", &serde_json::to_vec(&entry).expect("JSON serialises"));
            (vec![spec.name.clone()], None)
        }
    };
    let mut bytes = archive.finish();
    if spec.gzip_archive {
        bytes = gzip(&bytes);
    }
    fs::write(path, &bytes).map_err(|e| ImageError::io("writing", path, e))?;
    Ok(BuiltImage { path: path.to_owned(), names, manifest, config: config_digest, layers: built_layers })
}

/// The ways [`malicious_layer`] can attack the unpacker. `outside` (a directory the test owns,
/// outside the unpack root) is where a successful attack would write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malice {
    /// `../escape-parent`.
    ParentDir,
    /// `OUTSIDE/escape-absolute`, an absolute path.
    AbsolutePath,
    /// `evil -> OUTSIDE`, then `evil/escape-symlink`.
    SymlinkEscape,
    /// `dir/evil -> ../..`, then `dir/evil/escape-relative`.
    RelativeSymlinkEscape,
    /// A hard link to `../outside/target-file`.
    HardLinkParent,
    /// A hard link to `OUTSIDE/target-file`.
    HardLinkAbsolute,
    /// `evil -> OUTSIDE`, then a hard link to `evil/target-file`.
    HardLinkViaSymlink,
    /// A character device `dev/mem` (1:1).
    CharDevice,
    /// A block device `dev/sda` (8:0).
    BlockDevice,
    /// A whiteout `etc/.wh...` naming `..`.
    WhiteoutEscape,
}

impl Malice {
    /// Every kind.
    pub const ALL: [Malice; 10] = [
        Malice::ParentDir,
        Malice::AbsolutePath,
        Malice::SymlinkEscape,
        Malice::RelativeSymlinkEscape,
        Malice::HardLinkParent,
        Malice::HardLinkAbsolute,
        Malice::HardLinkViaSymlink,
        Malice::CharDevice,
        Malice::BlockDevice,
        Malice::WhiteoutEscape,
    ];

    /// The entry the unpacker must name when it refuses the layer.
    pub fn offending_entry(self, outside: &Path) -> String {
        match self {
            Malice::ParentDir => "../escape-parent".into(),
            Malice::AbsolutePath => format!("{}/escape-absolute", outside.display()),
            Malice::SymlinkEscape => "evil/escape-symlink".into(),
            Malice::RelativeSymlinkEscape => "dir/evil/escape-relative".into(),
            Malice::HardLinkParent | Malice::HardLinkAbsolute | Malice::HardLinkViaSymlink => "sneaky-link".into(),
            Malice::CharDevice => "dev/mem".into(),
            Malice::BlockDevice => "dev/sda".into(),
            Malice::WhiteoutEscape => "etc/.wh...".into(),
        }
    }
}

/// The file a hard-link attack targets: the test creates `OUTSIDE/target-file` first and
/// checks afterwards that its link count is still 1.
pub const HARD_LINK_TARGET: &str = "target-file";

/// A layer (uncompressed tar) carrying the attack `malice` aimed at `outside`. The unpack root
/// is expected to be `outside/../root` for [`Malice::ParentDir`] and
/// [`Malice::HardLinkParent`] to aim at `outside`'s directory.
pub fn malicious_layer(malice: Malice, outside: &Path) -> Vec<u8> {
    let outside = outside.display().to_string();
    let mut layer = LayerBuilder::new();
    layer.dir("etc/", 0o755).file("etc/harmless", 0o644, b"fine\n");
    let entry = malice.offending_entry(Path::new(&outside));
    match malice {
        Malice::ParentDir | Malice::AbsolutePath => {
            layer.file(&entry, 0o644, b"escaped\n");
        }
        Malice::SymlinkEscape => {
            layer.symlink("evil", &outside).file(&entry, 0o644, b"escaped\n");
        }
        Malice::RelativeSymlinkEscape => {
            layer.dir("dir/", 0o755).symlink("dir/evil", "../..").file(&entry, 0o644, b"escaped\n");
        }
        Malice::HardLinkParent => {
            layer.hard_link(&entry, &format!("../outside/{HARD_LINK_TARGET}"));
        }
        Malice::HardLinkAbsolute => {
            layer.hard_link(&entry, &format!("{outside}/{HARD_LINK_TARGET}"));
        }
        Malice::HardLinkViaSymlink => {
            layer.symlink("evil", &outside).hard_link(&entry, &format!("evil/{HARD_LINK_TARGET}"));
        }
        Malice::CharDevice => {
            layer.dir("dev/", 0o755).device(&entry, EntryType::Char, 1, 1);
        }
        Malice::BlockDevice => {
            layer.dir("dev/", 0o755).device(&entry, EntryType::Block, 8, 0);
        }
        Malice::WhiteoutEscape => {
            layer.file(&entry, 0o644, b"");
        }
    }
    layer.file("etc/after", 0o644, b"never reached\n");
    layer.finish()
}

/// Ways [`corrupt_archive`] breaks a built (plain, not gzip'd) archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// One byte of the first layer changed; its name and the manifest stay the same.
    LayerContent,
    /// The config's `Cmd` changed; its name and the manifest stay the same.
    ConfigContent,
    /// The first layer's file left out.
    MissingLayer,
    /// The archive cut in the middle of the first layer.
    Truncated,
}

/// Writes a broken copy of `image` (built with `gzip_archive: false`) to `dst` and returns the
/// archive entry an importer's error must name.
pub fn corrupt_archive(image: &BuiltImage, dst: &Path, corruption: Corruption) -> Result<String> {
    let layer_entry = layer_entry(image)?;
    let config_entry = match image.manifest {
        Some(_) => blob_path(&image.config),
        None => format!("{}.json", image.config.hex()),
    };
    match corruption {
        Corruption::LayerContent => {
            rewrite_archive(&image.path, dst, |path, mut data| {
                if path == layer_entry {
                    let middle = data.len() / 2;
                    data[middle] ^= 0xff;
                }
                Some(data)
            })?;
            Ok(layer_entry)
        }
        Corruption::ConfigContent => {
            rewrite_archive(&image.path, dst, |path, data| {
                Some(if path == config_entry {
                    String::from_utf8_lossy(&data).replace(r#""Cmd":["sh"]"#, r#""Cmd":["rm","-rf","/"]"#).into_bytes()
                } else {
                    data
                })
            })?;
            Ok(config_entry)
        }
        Corruption::MissingLayer => {
            rewrite_archive(&image.path, dst, |path, data| (path != layer_entry).then_some(data))?;
            Ok(layer_entry)
        }
        Corruption::Truncated => {
            let bytes = fs::read(&image.path).map_err(|e| ImageError::io("reading", &image.path, e))?;
            let offset = find_entry_data(&bytes, &layer_entry)
                .ok_or_else(|| ImageError::TestImage(format!("{layer_entry} not found in {}", image.path.display())))?;
            let cut = offset + (image.layers[0].size as usize) / 2;
            fs::write(dst, &bytes[..cut]).map_err(|e| ImageError::io("writing", dst, e))?;
            Ok(layer_entry)
        }
    }
}

/// Copies the plain tar archive `src` to `dst`, passing each regular file through `edit`
/// (return `None` to leave the file out). Other entries are copied unchanged.
pub fn rewrite_archive(src: &Path, dst: &Path, mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) -> Result<()> {
    let failed = |e: std::io::Error| ImageError::TestImage(format!("rewriting {}: {e}", src.display()));
    let file = fs::File::open(src).map_err(|e| ImageError::io("opening", src, e))?;
    let mut archive = tar::Archive::new(file);
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(failed)?;
        if header.entry_type().is_file() {
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(edited) = edit(&path, data) else { continue };
            data = edited;
            header.set_size(data.len() as u64);
            header.set_cksum();
        }
        out.append(&header, data.as_slice()).map_err(failed)?;
    }
    let bytes = out.into_inner().map_err(failed)?;
    fs::write(dst, bytes).map_err(|e| ImageError::io("writing", dst, e))
}

/// `blobs/sha256/<hex>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The archive entry holding the image's first layer.
fn layer_entry(image: &BuiltImage) -> Result<String> {
    let first = image.layers.first().ok_or_else(|| ImageError::TestImage("the image has no layers".into()))?;
    if image.manifest.is_some() {
        return Ok(blob_path(&first.digest));
    }
    let file = fs::File::open(&image.path).map_err(|e| ImageError::io("opening", &image.path, e))?;
    let mut archive = tar::Archive::new(file);
    let failed = |e: std::io::Error| ImageError::TestImage(format!("reading {}: {e}", image.path.display()));
    for entry in archive.entries().map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if path == "manifest.json" {
            let manifest: Value = serde_json::from_reader(entry).map_err(|e| ImageError::TestImage(e.to_string()))?;
            if let Some(layer) = manifest[0]["Layers"][0].as_str() {
                return Ok(layer.to_owned());
            }
        }
    }
    Err(ImageError::TestImage(format!("no layers in {}", image.path.display())))
}

/// Offset of the data of entry `name` in a plain tar archive.
fn find_entry_data(bytes: &[u8], name: &str) -> Option<usize> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = archive.entries().ok()?;
    entries.find_map(|entry| {
        let entry = entry.ok()?;
        (String::from_utf8_lossy(&entry.path_bytes()) == name).then(|| entry.raw_file_position() as usize)
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), GzLevel::fast());
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Writes the outer archive: regular files and symlinks, in order, with fixed metadata.
#[derive(Default)]
struct ArchiveWriter {
    layer: LayerBuilder,
}

impl ArchiveWriter {
    fn file(&mut self, path: &str, data: &[u8]) {
        self.layer.file(path, 0o644, data);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.layer.symlink(path, target);
    }

    fn finish(self) -> Vec<u8> {
        self.layer.finish()
    }
}
