//! End-to-end tests of the image module: archives built by `testing` are imported, verified,
//! refused when broken, and unpacked into the layer cache, where hostile layers are refused and
//! whiteouts become overlayfs markers. Unpacking needs root, as it does in production.

use std::{
    collections::HashSet,
    fs,
    io::{self, Read},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    testing::{
        APPLETS, ArchiveFormat, BUSYBOX, BuiltImage, Corruption, HARD_LINK_TARGET, ImageSpec, MTIME, Malice, blob_path,
        build_archive, busybox_image, busybox_run_config, corrupt_archive, malicious_layer, rewrite_archive,
    },
    *,
};

const FORMATS: [ArchiveFormat; 3] = [ArchiveFormat::OciLayout, ArchiveFormat::DockerSave, ArchiveFormat::DockerSaveOci];

fn store_in(dir: &Path) -> BlobStore {
    BlobStore::new(dir.join("store")).unwrap()
}

fn import(store: &BlobStore, path: &Path) -> Result<Vec<Image>> {
    import_archive(store, path, &mut |_| {})
}

/// Nothing stored, nothing staged.
fn assert_store_empty(store: &BlobStore) {
    assert_eq!(store.list().unwrap(), vec![], "blobs were stored");
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0, "staging files were left behind");
}

/// Checks the import result against what the builder computed independently.
fn assert_matches_built(image: &Image, built: &BuiltImage, store: &BlobStore) {
    assert_eq!(image.names, built.names);
    if let Some(manifest) = built.manifest {
        assert_eq!(image.manifest, manifest);
    }
    assert_eq!(image.config_digest, built.config);
    assert_eq!(image.layers.len(), built.layers.len());
    for (got, want) in image.layers.iter().zip(&built.layers) {
        assert_eq!(
            (got.digest, got.diff_id, got.size, got.compression),
            (want.digest, want.diff_id, want.size, want.compression)
        );
    }
    assert_eq!(image.os, "linux");
    assert_eq!(image.config.cmd, vec!["sh"]);
    assert_eq!(image.config.env, vec!["PATH=/bin"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/"));
    assert_eq!(image.config.labels.get("org.medos.test").map(String::as_str), Some("busybox"));
    for blob in image.blobs() {
        store.verify(&blob).unwrap();
    }
    assert_eq!(read_image(store, &image.manifest, image.names.clone()).unwrap(), *image);
}

#[test]
fn imports_an_oci_layout_named_by_ref_name() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("busybox.tar"), &ImageSpec::new("busybox:1.35", ArchiveFormat::OciLayout))
            .unwrap();
    let store = store_in(dir.path());
    let mut reports = Vec::new();
    let images = import_archive(&store, &built.path, &mut |p| reports.push(p)).unwrap();
    assert_eq!(images.len(), 1);
    assert_matches_built(&images[0], &built, &store);
    assert_eq!(images[0].names, vec!["busybox:1.35"]);
    assert_eq!(store.usage().unwrap().blobs, 4, "two layers, config, manifest");
    assert_eq!(store.usage().unwrap().bytes, images[0].size());
    let total = fs::metadata(&built.path).unwrap().len();
    assert!(reports.len() >= 2, "busybox is about 2 MB, so there are intermediate reports: {reports:?}");
    assert!(reports.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(reports.last(), Some(&Progress { done: total, total: Some(total) }));
}

#[test]
fn imports_a_docker_save_archive_named_by_repo_tags() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ImageSpec { gzip_layers: false, ..ImageSpec::new("busybox:latest", ArchiveFormat::DockerSave) };
    let built = busybox_image(&dir.path().join("busybox.tar"), &spec).unwrap();
    let store = store_in(dir.path());
    let images = import(&store, &built.path).unwrap();
    assert_eq!(images.len(), 1);
    assert_matches_built(&images[0], &built, &store);
    // The manifest medos wrote is deterministic: a second import names the same image.
    let again = import(&store_in(&dir.path().join("second")), &built.path).unwrap();
    assert_eq!(again[0].manifest, images[0].manifest);
    assert!(images[0].layers.iter().all(|l| l.compression == Compression::None && l.digest == l.diff_id));
}

#[test]
fn imports_every_format_with_plain_and_gzip_layers_and_archives() {
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        for gzip_layers in [false, true] {
            for gzip_archive in [false, true] {
                let spec = ImageSpec { gzip_layers, gzip_archive, ..ImageSpec::new("busybox:latest", format) };
                let case = format!("{format:?} gzip_layers={gzip_layers} gzip_archive={gzip_archive}");
                let path = dir.path().join(format!("{format:?}-{gzip_layers}-{gzip_archive}.tar"));
                let built = busybox_image(&path, &spec).unwrap();
                let store = store_in(&dir.path().join(&case));
                let images = import(&store, &built.path).unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(images.len(), 1, "{case}");
                assert_matches_built(&images[0], &built, &store);
                assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0, "{case}: staging left behind");
            }
        }
    }
}

#[test]
fn docker_25_archives_take_names_from_repo_tags_not_the_bare_tag() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("b.tar"), &ImageSpec::new("busybox:latest", ArchiveFormat::DockerSaveOci))
            .unwrap();
    let images = import(&store_in(dir.path()), &built.path).unwrap();
    assert_eq!(images[0].names, vec!["busybox:latest"]);

    // Without manifest.json the containerd annotation (full name) wins over ref.name ("latest").
    let without = dir.path().join("no-manifest-json.tar");
    rewrite_archive(&built.path, &without, |path, data| (path != "manifest.json").then_some(data)).unwrap();
    let images = import(&store_in(&dir.path().join("2")), &without).unwrap();
    assert_eq!(images[0].names, vec!["docker.io/library/busybox:latest"]);

    // Without index.json and oci-layout it is a docker archive whose layers are blob paths.
    let without = dir.path().join("no-index.tar");
    rewrite_archive(&built.path, &without, |path, data| (path != "index.json" && path != "oci-layout").then_some(data))
        .unwrap();
    let images = import(&store_in(&dir.path().join("3")), &without).unwrap();
    assert_eq!(images[0].names, vec!["busybox:latest"]);
    assert_eq!(
        images[0].layers.iter().map(|l| l.digest).collect::<Vec<_>>(),
        built.layers.iter().map(|l| l.digest).collect::<Vec<_>>()
    );
}

#[test]
fn docker_save_layers_shared_through_symlinks_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = testing::LayerBuilder::new();
    layer.file("hello", 0o644, b"hello\n");
    let layer = layer.finish();
    let spec = ImageSpec::new("twice:1", ArchiveFormat::DockerSave);
    let built =
        build_archive(&dir.path().join("twice.tar"), &spec, &[layer.clone(), layer], &busybox_run_config()).unwrap();
    let store = store_in(dir.path());
    let images = import(&store, &built.path).unwrap();
    assert_eq!(images[0].layers.len(), 2);
    assert_eq!(images[0].layers[0], images[0].layers[1]);
    assert_eq!(store.usage().unwrap().blobs, 3, "one layer blob, config, manifest");
}

/// The files of a plain tar archive, in order.
fn archive_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    let mut files = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.push((String::from_utf8_lossy(&entry.path_bytes()).into_owned(), data));
    }
    files
}

fn write_archive(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut archive = testing::LayerBuilder::new();
    for (name, data) in files {
        archive.file(name, 0o644, data);
    }
    fs::write(path, archive.finish()).unwrap();
}

#[test]
fn a_multi_platform_index_resolves_to_this_hosts_manifest_and_names_merge() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("b.tar"), &ImageSpec::new("busybox:latest", ArchiveFormat::OciLayout)).unwrap();
    let manifest = built.manifest.unwrap();
    let mut files = archive_files(&built.path);
    let manifest_size = files.iter().find(|(name, _)| *name == blob_path(&manifest)).unwrap().1.len();
    let elsewhere = Digest::of(b"a manifest for another machine, not in the archive");
    let host = manifest::host_architecture();
    let nested = |ours: bool| {
        let mut manifests = vec![
            json!({ "mediaType": manifest::OCI_MANIFEST, "digest": elsewhere.to_string(), "size": 7,
                    "platform": { "architecture": "s390x", "os": "linux" } }),
            json!({ "mediaType": manifest::OCI_MANIFEST, "digest": elsewhere.to_string(), "size": 7,
                    "platform": { "architecture": "unknown", "os": "unknown" },
                    "annotations": { "vnd.docker.reference.type": "attestation-manifest" } }),
        ];
        if ours {
            manifests.push(
                json!({ "mediaType": manifest::OCI_MANIFEST, "digest": manifest.to_string(), "size": manifest_size,
                                   "platform": { "architecture": host, "os": "linux" } }),
            );
        }
        serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests }))
            .unwrap()
    };

    for ours in [true, false] {
        let nested = nested(ours);
        let nested_digest = Digest::of(&nested);
        let index = json!({ "schemaVersion": 2, "manifests": [
            { "mediaType": manifest::OCI_INDEX, "digest": nested_digest.to_string(), "size": nested.len(),
              "annotations": { REF_NAME_ANNOTATION: "multi:1" } },
            { "mediaType": manifest::OCI_MANIFEST, "digest": manifest.to_string(), "size": manifest_size,
              "annotations": { REF_NAME_ANNOTATION: "alias:2" } },
        ]});
        files.retain(|(name, _)| name != "index.json");
        files.push((blob_path(&nested_digest), nested));
        files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
        let path = dir.path().join(format!("multi-{ours}.tar"));
        write_archive(&path, &files);
        let store = store_in(&dir.path().join(format!("store-{ours}")));
        if ours {
            let images = import(&store, &path).unwrap();
            assert_eq!(images.len(), 1, "both descriptors name one manifest");
            assert_eq!(images[0].manifest, manifest);
            assert_eq!(images[0].names, vec!["multi:1", "alias:2"]);
        } else {
            let err = import(&store, &path).unwrap_err().to_string();
            assert!(err.contains(&format!("no image for linux/{host}")) && err.contains("linux/s390x"), "{err}");
            assert_store_empty(&store);
        }
    }
}

#[test]
fn broken_archives_are_refused_naming_the_entry_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        for gzip_layers in [false, true] {
            let spec = ImageSpec { gzip_layers, ..ImageSpec::new("busybox:latest", format) };
            let built = busybox_image(&dir.path().join(format!("{format:?}-{gzip_layers}.tar")), &spec).unwrap();
            for corruption in
                [Corruption::LayerContent, Corruption::ConfigContent, Corruption::MissingLayer, Corruption::Truncated]
            {
                let case = format!("{format:?} gzip_layers={gzip_layers} {corruption:?}");
                let broken = dir.path().join(format!("{format:?}-{gzip_layers}-{corruption:?}.tar"));
                let entry = corrupt_archive(&built, &broken, corruption).unwrap();
                let store = store_in(&dir.path().join(&case));
                let err = import(&store, &broken).expect_err(&case);
                let message = err.to_string();
                assert!(message.contains(&entry), "{case}: {message:?} does not name {entry}");
                match (corruption, &err) {
                    (Corruption::LayerContent, ImageError::DigestMismatch { expected, actual, .. })
                    | (Corruption::ConfigContent, ImageError::DigestMismatch { expected, actual, .. }) => {
                        assert_ne!(expected, actual);
                        assert!(
                            message.contains(&expected.to_string()) && message.contains(&actual.to_string()),
                            "{case}: {message}"
                        );
                    }
                    // Classic docker layers are not named by digest: the config's diff_ids catch them.
                    (Corruption::LayerContent, ImageError::DiffIdMismatch { .. })
                        if format == ArchiveFormat::DockerSave => {}
                    (Corruption::LayerContent, ImageError::CorruptArchive { .. })
                        if format == ArchiveFormat::DockerSave && gzip_layers => {}
                    (Corruption::MissingLayer, ImageError::MissingEntry { .. }) => {}
                    (Corruption::Truncated, ImageError::TruncatedEntry { .. }) => {}
                    _ => panic!("{case}: unexpected error {err:?}"),
                }
                assert_store_empty(&store);
            }
        }
    }
}

#[test]
fn truncated_and_garbage_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ImageSpec { gzip_archive: true, ..ImageSpec::new("busybox:latest", ArchiveFormat::OciLayout) };
    let built = busybox_image(&dir.path().join("b.tar.gz"), &spec).unwrap();
    let bytes = fs::read(&built.path).unwrap();
    let table: Vec<(&str, Vec<u8>, &str)> = vec![
        ("gzip cut in half", bytes[..bytes.len() / 2].to_vec(), "truncated or corrupt"),
        ("gzip without its last byte", bytes[..bytes.len() - 1].to_vec(), "truncated or corrupt"),
        (
            "not a tar file",
            b"this is not an archive at all, just some text that is long enough".repeat(20),
            "truncated or corrupt",
        ),
        ("empty file", Vec::new(), "not an image archive"),
        ("zstd", vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0], "zstd"),
    ];
    for (case, bytes, needle) in table {
        let path = dir.path().join("broken");
        fs::write(&path, bytes).unwrap();
        let store = store_in(&dir.path().join(case));
        let err = import(&store, &path).expect_err(case).to_string();
        assert!(err.contains(needle), "{case}: {err}");
        assert_store_empty(&store);
    }
}

#[test]
fn a_tar_without_image_metadata_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = testing::LayerBuilder::new();
    layer.file("hello.txt", 0o644, b"hello");
    let path = dir.path().join("plain.tar");
    fs::write(&path, layer.finish()).unwrap();
    let store = store_in(dir.path());
    assert!(matches!(import(&store, &path), Err(ImageError::NotAnImage(_))));
    assert_store_empty(&store);
}

/// A test sandbox for hostile layers: `root` is the unpack target, `outside` its sibling.
struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_owned();
        let (root, outside) = (base.join("root"), base.join("outside"));
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join(HARD_LINK_TARGET), b"precious").unwrap();
        Sandbox { _dir: dir, base, root, outside }
    }

    /// Nothing was created or linked outside the unpack root.
    fn assert_untouched(&self, case: &str) {
        let mut outside: Vec<_> = fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        outside.sort();
        assert_eq!(outside, vec![HARD_LINK_TARGET], "{case}: something was written outside");
        let target = fs::metadata(self.outside.join(HARD_LINK_TARGET)).unwrap();
        assert_eq!(target.nlink(), 1, "{case}: the outside file was hard-linked");
        assert_eq!(fs::read(self.outside.join(HARD_LINK_TARGET)).unwrap(), b"precious");
        let mut base: Vec<_> = fs::read_dir(&self.base).unwrap().map(|e| e.unwrap().file_name()).collect();
        base.sort();
        assert_eq!(base, vec!["outside", "root"], "{case}: something was written beside the root");
    }
}

#[test]
fn hostile_layers_are_refused_naming_the_entry() {
    for malice in Malice::ALL {
        let sandbox = Sandbox::new();
        let case = format!("{malice:?}");
        let expected = malice.offending_entry(&sandbox.outside);
        let err = unpack_layer(malicious_layer(malice, &sandbox.outside).as_slice(), &sandbox.root).expect_err(&case);
        match &err {
            ImageError::UnsafeEntry { entry, .. } => assert_eq!(entry, &expected, "{case}"),
            other => panic!("{case}: expected an unsafe-entry error, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("{expected:?}")), "{case}: {err}");
        sandbox.assert_untouched(&case);
        assert!(!sandbox.root.join("etc/after").exists(), "{case}: unpacking went on after the refusal");
    }
}

#[test]
fn hostile_layers_import_but_never_reach_the_layer_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    for malice in Malice::ALL {
        let sandbox = Sandbox::new();
        let layer = malicious_layer(malice, &sandbox.outside);
        let spec = ImageSpec::new("evil:latest", ArchiveFormat::OciLayout);
        let built = build_archive(&dir.path().join("evil.tar"), &spec, &[layer], &busybox_run_config()).unwrap();
        // The digests are honest, so the archive imports; the unpacker is the line of defence.
        let image = import(&store, &built.path).unwrap().remove(0);
        let err = cache.ensure(&store, &image.layers[0]).expect_err(&format!("{malice:?}"));
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{malice:?}: {err}");
        assert!(!cache.contains(&image.layers[0].digest));
        assert_eq!(
            fs::read_dir(cache.root().join("tmp")).unwrap().count(),
            0,
            "{malice:?}: partial unpack left behind"
        );
        sandbox.assert_untouched(&format!("{malice:?}"));
    }
    assert_eq!(cache.list().unwrap(), vec![]);
}

/// The busybox image imported and both layers unpacked.
fn unpacked_busybox(dir: &Path) -> (BlobStore, LayerCache, Image, PathBuf, PathBuf) {
    let built =
        busybox_image(&dir.join("busybox.tar"), &ImageSpec::new("busybox:latest", ArchiveFormat::OciLayout)).unwrap();
    let store = store_in(dir);
    let image = import(&store, &built.path).unwrap().remove(0);
    let cache = LayerCache::new(dir.join("layers")).unwrap();
    let base = cache.ensure(&store, &image.layers[0]).unwrap();
    let upper = cache.ensure(&store, &image.layers[1]).unwrap();
    (store, cache, image, base, upper)
}

#[test]
fn unpacking_preserves_modes_owners_mtimes_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, cache, image, base, _) = unpacked_busybox(dir.path());
    assert_eq!(base, cache.path(&image.layers[0].digest));
    let meta = |p: &str| fs::symlink_metadata(base.join(p)).unwrap();
    let mode = |p: &str| meta(p).permissions().mode() & 0o7777;
    assert_eq!(meta("bin/busybox").len(), fs::metadata(BUSYBOX).unwrap().len());
    assert_eq!(fs::read(base.join("bin/busybox")).unwrap(), fs::read(BUSYBOX).unwrap());
    let table = [
        ("bin/busybox", 0o755),
        ("bin/setuid-marker", 0o4755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("etc/passwd", 0o644),
        (".", 0o755),
    ];
    for (path, expected) in table {
        assert_eq!(mode(path), expected, "{path}: mode {:o}", mode(path));
    }
    for applet in APPLETS {
        assert_eq!(fs::read_link(base.join("bin").join(applet)).unwrap(), Path::new("busybox"), "{applet}");
    }
    for path in ["bin/busybox", "bin", "tmp", "bin/sh", "etc/passwd", "."] {
        assert_eq!((meta(path).uid(), meta(path).gid()), (0, 0), "{path}");
        assert_eq!(meta(path).mtime(), MTIME as i64, "{path}");
    }
    assert_eq!(meta("etc/group.hardlink").ino(), meta("etc/group").ino());
    assert_eq!(meta("etc/group").nlink(), 2);
}

#[test]
fn whiteouts_become_overlay_markers() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _cache, _image, base, upper) = unpacked_busybox(dir.path());
    assert!(is_whiteout(&upper.join("etc/motd")).unwrap(), "etc/.wh.motd must become a 0:0 character device");
    assert!(!upper.join("etc/.wh.motd").exists());
    assert!(is_opaque(&upper.join("opt/old")).unwrap(), "opt/old/.wh..wh..opq must set {OPAQUE_XATTR}");
    assert!(!upper.join("opt/old/.wh..wh..opq").exists());
    assert_eq!(fs::read(upper.join("opt/old/new.txt")).unwrap(), b"new\n");
    assert!(!is_opaque(&base.join("opt/old")).unwrap());
    assert!(!is_whiteout(&base.join("etc/motd")).unwrap());
}

#[test]
fn overlayfs_shows_the_merged_image() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: mounting overlayfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_store, _cache, _image, base, upper) = unpacked_busybox(dir.path());
    let merged = dir.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let options = format!("lowerdir={}:{}", upper.display(), base.display());
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(options.as_str()),
    )
    .unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(&merged);
    assert!(merged.join("bin/busybox").is_file());
    assert!(!merged.join("etc/motd").exists(), "the whiteout hides etc/motd");
    assert_eq!(fs::read(merged.join("etc/medos-release")).unwrap(), b"medos test image\n");
    let mut old: Vec<_> = fs::read_dir(merged.join("opt/old")).unwrap().map(|e| e.unwrap().file_name()).collect();
    old.sort();
    assert_eq!(old, vec!["new.txt"], "the opaque directory hides the base layer's files");
    let output = Command::new(merged.join("bin/busybox"))
        .args(["cat", &merged.join("etc/passwd").display().to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("root:x:0:0"));
}

#[test]
fn unpacking_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache, image, base, _) = unpacked_busybox(dir.path());
    fs::write(base.join("marker"), b"still here").unwrap();
    assert_eq!(cache.ensure(&store, &image.layers[0]).unwrap(), base);
    let reader = store.open(&image.layers[0].digest, Verify::No).unwrap();
    let (path, stats) = cache.unpack_from(&image.layers[0].digest, image.layers[0].compression, None, reader).unwrap();
    assert_eq!((path, stats), (base.clone(), None), "an unpacked layer is not unpacked again");
    assert!(base.join("marker").exists());
}

/// Yields `limit` bytes of `inner`, then fails like a dropped connection.
struct FailAfter<R> {
    inner: R,
    limit: usize,
}

impl<R: Read> Read for FailAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.limit == 0 {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection lost"));
        }
        let n = buf.len().min(self.limit);
        let n = self.inner.read(&mut buf[..n])?;
        self.limit -= n;
        Ok(n)
    }
}

#[test]
fn an_interrupted_unpack_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("b.tar"), &ImageSpec::new("busybox:latest", ArchiveFormat::OciLayout)).unwrap();
    let store = store_in(dir.path());
    let image = import(&store, &built.path).unwrap().remove(0);
    let layer = &image.layers[0];
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();

    // A crash mid-unpack leaves a partial directory: the next unpack starts over.
    let partial = cache.root().join("tmp").join(format!("{}.partial", layer.digest.hex()));
    fs::create_dir_all(partial.join("bin")).unwrap();
    fs::write(partial.join("bin/half-written"), b"junk").unwrap();
    assert!(!cache.contains(&layer.digest), "a partial unpack never counts as unpacked");
    let path = cache.ensure(&store, layer).unwrap();
    assert!(!path.join("bin/half-written").exists());
    assert!(path.join("bin/busybox").is_file());
    assert!(!partial.exists());

    // A stream that breaks off publishes nothing and leaves nothing behind.
    let upper = &image.layers[1];
    let reader = FailAfter { inner: store.open(&upper.digest, Verify::No).unwrap(), limit: 100 };
    let err = cache.unpack_from(&upper.digest, upper.compression, Some(&upper.diff_id), reader).unwrap_err();
    assert!(err.to_string().contains("connection lost"), "{err}");
    assert!(!cache.contains(&upper.digest));
    assert_eq!(fs::read_dir(cache.root().join("tmp")).unwrap().count(), 0);
    cache.ensure(&store, upper).unwrap();

    // Bytes that are not the layer they claim to be are not published either.
    let wrong = Digest::of(b"some other layer");
    let reader = store.open(&upper.digest, Verify::No).unwrap();
    let err = cache.unpack_from(&wrong, upper.compression, None, reader).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(!cache.contains(&wrong));
    let reader = store.open(&upper.digest, Verify::No).unwrap();
    let err = cache.unpack_from(&wrong, upper.compression, Some(&wrong), reader).unwrap_err();
    assert!(err.to_string().contains("diff id"), "{err}");
}

#[test]
fn a_corrupt_blob_in_the_store_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("b.tar"), &ImageSpec::new("busybox:latest", ArchiveFormat::OciLayout)).unwrap();
    let store = store_in(dir.path());
    let image = import(&store, &built.path).unwrap().remove(0);
    let layer = &image.layers[0];
    let mut bytes = fs::read(store.path(&layer.digest)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(store.path(&layer.digest), bytes).unwrap();
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    let err = cache.ensure(&store, layer).unwrap_err();
    assert!(matches!(err, ImageError::CorruptBlob { .. }), "{err}");
    assert!(!cache.contains(&layer.digest));
}

#[test]
fn gc_keeps_only_layers_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache, image, base, upper) = unpacked_busybox(dir.path());
    let mut other = testing::LayerBuilder::new();
    other.file("other", 0o644, b"another image");
    let spec = ImageSpec::new("other:1", ArchiveFormat::DockerSave);
    let built = build_archive(&dir.path().join("other.tar"), &spec, &[other.finish()], &busybox_run_config()).unwrap();
    let other = import(&store, &built.path).unwrap().remove(0);
    cache.ensure(&store, &other.layers[0]).unwrap();
    let stale = cache.root().join("tmp").join(format!("{}.partial", Digest::of(b"crashed").hex()));
    fs::create_dir_all(stale.join("usr")).unwrap();

    let in_use = HashSet::from([image.layers[0].digest]);
    let report = cache.gc(&in_use).unwrap();
    let mut removed = report.removed.clone();
    removed.sort();
    let mut expected = vec![image.layers[1].digest, other.layers[0].digest];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!((report.kept, report.leftovers_removed), (1, 1));
    assert_eq!(cache.list().unwrap(), vec![image.layers[0].digest]);
    assert!(base.join("bin/busybox").is_file());
    assert!(!upper.exists() && !stale.exists());
    assert_eq!(fs::read_dir(cache.root().join("tmp")).unwrap().count(), 0);
    let locks: Vec<_> = fs::read_dir(cache.root().join("locks")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(
        locks,
        vec![std::ffi::OsString::from(image.layers[0].digest.hex())],
        "lock files of removed layers are cleared"
    );

    assert_eq!(cache.gc(&in_use).unwrap(), GcReport { removed: vec![], kept: 1, leftovers_removed: 0 });
    // A removed layer unpacks again on demand.
    cache.ensure(&store, &image.layers[1]).unwrap();
    assert!(cache.remove(&image.layers[1].digest).unwrap());
    assert!(!cache.remove(&image.layers[1].digest).unwrap());
}

#[test]
fn long_paths_unpack_through_gnu_long_names() {
    let sandbox = Sandbox::new();
    let deep = format!("{}/file.txt", ["directory-with-a-long-name"; 6].join("/"));
    let mut layer = testing::LayerBuilder::new();
    layer.file(&deep, 0o644, b"deep").symlink(&format!("{deep}.link"), &deep);
    let stats = unpack_layer(layer.finish().as_slice(), &sandbox.root).unwrap();
    assert_eq!((stats.files, stats.symlinks), (1, 1));
    assert_eq!(fs::read(sandbox.root.join(&deep)).unwrap(), b"deep");
    assert_eq!(fs::read_link(sandbox.root.join(format!("{deep}.link"))).unwrap(), Path::new(&deep));
}

#[test]
fn a_later_entry_replaces_an_earlier_one_without_following_it() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside.display().to_string();
    let mut layer = testing::LayerBuilder::new();
    layer
        .symlink("a", &outside) // replaced by a directory: the symlink goes, nothing is followed
        .dir("a/", 0o750)
        .file("a/inner", 0o600, b"inner")
        .dir("b/", 0o755)
        .file("b/child", 0o644, b"gone soon")
        .symlink("b", "a") // replaces the whole directory b
        .file("c", 0o644, b"first")
        .file("c", 0o640, b"second");
    unpack_layer(layer.finish().as_slice(), &sandbox.root).unwrap();
    let root = &sandbox.root;
    assert!(fs::symlink_metadata(root.join("a")).unwrap().is_dir());
    assert_eq!(fs::symlink_metadata(root.join("a")).unwrap().permissions().mode() & 0o7777, 0o750);
    assert_eq!(fs::read_link(root.join("b")).unwrap(), Path::new("a"));
    assert_eq!(fs::read(root.join("c")).unwrap(), b"second");
    assert_eq!(fs::metadata(root.join("c")).unwrap().permissions().mode() & 0o7777, 0o640);
    sandbox.assert_untouched("replacements");
}

#[test]
fn concurrent_unpacks_of_one_layer_agree() {
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("b.tar"), &ImageSpec::new("busybox:latest", ArchiveFormat::OciLayout)).unwrap();
    let store = store_in(dir.path());
    let image = import(&store, &built.path).unwrap().remove(0);
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    let layer = &image.layers[0];
    let results: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let reader = store.open(&layer.digest, Verify::Yes).unwrap();
                    cache.unpack_from(&layer.digest, layer.compression, Some(&layer.diff_id), reader).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(results.iter().all(|(path, _)| *path == cache.path(&layer.digest)));
    assert_eq!(results.iter().filter(|(_, stats)| stats.is_some()).count(), 1, "exactly one thread unpacked");
    assert!(cache.path(&layer.digest).join("bin/busybox").is_file());
}

#[test]
fn imports_from_a_stream_of_unknown_length() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ImageSpec { gzip_archive: true, ..ImageSpec::new("busybox:latest", ArchiveFormat::DockerSave) };
    let built = busybox_image(&dir.path().join("b.tar.gz"), &spec).unwrap();
    let bytes = fs::read(&built.path).unwrap();
    let store = store_in(dir.path());
    let mut last = None;
    let images = import_reader(&store, bytes.as_slice(), None, &mut |p| last = Some(p)).unwrap();
    assert_eq!(images[0].names, vec!["busybox:latest"]);
    assert_eq!(last, Some(Progress { done: bytes.len() as u64, total: None }));
}

#[test]
fn the_blob_path_helper_matches_the_store_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let digest = store.put_bytes(b"x").unwrap();
    assert_eq!(store.path(&digest), store.root().join(blob_path(&digest)));
}

fn umoci() -> Option<PathBuf> {
    let path = Path::new("/usr/bin/umoci");
    path.exists().then(|| path.to_owned())
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Extracts a plain tar archive into `dir` (test archives only).
fn extract(archive: &Path, dir: &Path) {
    tar::Archive::new(fs::File::open(archive).unwrap()).unpack(dir).unwrap();
}

#[test]
fn umoci_reads_the_oci_layouts_medos_builds() {
    let Some(umoci) = umoci() else {
        eprintln!("skipping: umoci is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let built =
        busybox_image(&dir.path().join("b.tar"), &ImageSpec::new("medos-test", ArchiveFormat::OciLayout)).unwrap();
    let layout = dir.path().join("layout");
    extract(&built.path, &layout);
    let bundle = dir.path().join("bundle");
    run(Command::new(&umoci).arg("unpack").arg("--image").arg(format!("{}:medos-test", layout.display())).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read(rootfs.join("bin/busybox")).unwrap(), fs::read(BUSYBOX).unwrap());
    assert!(!rootfs.join("etc/motd").exists());
    assert!(!rootfs.join("opt/old/a.txt").exists() && rootfs.join("opt/old/new.txt").exists());
}

#[test]
fn medos_imports_oci_layouts_umoci_builds() {
    let Some(umoci) = umoci() else {
        eprintln!("skipping: umoci is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let image = format!("{}:from-umoci", layout.display());
    let bundle = dir.path().join("bundle");
    run(Command::new(&umoci).arg("init").arg("--layout").arg(&layout));
    run(Command::new(&umoci).args(["new", "--image", &image]));
    run(Command::new(&umoci).args(["unpack", "--image", &image]).arg(&bundle));
    fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    fs::copy(BUSYBOX, bundle.join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sh")).unwrap();
    run(Command::new(&umoci).args(["repack", "--image", &image]).arg(&bundle));
    run(Command::new(&umoci).args(["config", "--image", &image, "--config.cmd", "sh"]));

    let archive = dir.path().join("umoci.tar");
    let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    builder.finish().unwrap();
    drop(builder);

    let store = store_in(dir.path());
    let images = import(&store, &archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].names, vec!["from-umoci"]);
    assert_eq!(images[0].config.cmd, vec!["sh"]);
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    let top = cache.ensure(&store, images[0].layers.last().unwrap()).unwrap();
    assert_eq!(fs::read(top.join("bin/busybox")).unwrap(), fs::read(BUSYBOX).unwrap());
    assert_eq!(fs::read_link(top.join("bin/sh")).unwrap(), Path::new("busybox"));
}
