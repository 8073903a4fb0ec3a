//! The fetcher: path rules, archive formats, refusals that leave nothing outside the sandbox,
//! limits, ownership, and downloads from a local HTTP server.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tar::{EntryType, Header};

use super::*;

fn settings() -> FetchSettings {
    FetchSettings { stall_timeout: Duration::from_millis(500), ..FetchSettings::default() }
}

/// A sandbox inside a directory of its own, so tests can check nothing appears next to it.
struct Dirs {
    outer: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("sandbox")).unwrap();
        Dirs { outer }
    }

    fn sandbox(&self) -> PathBuf {
        self.outer.path().join("sandbox")
    }

    /// Everything beside the sandbox (must stay empty).
    fn outside(&self) -> Vec<String> {
        std::fs::read_dir(self.outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "sandbox")
            .collect()
    }

    /// Every path in the sandbox, relative, directories with a trailing `/`.
    fn tree(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if entry.file_type().unwrap().is_dir() {
                    out.insert(format!("{name}/"));
                    walk(&entry.path(), &format!("{name}/"), out);
                } else {
                    out.insert(name);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.sandbox(), "", &mut out);
        out
    }
}

/// One tar entry, written with raw names so that hostile paths can be built.
struct Item<'a> {
    kind: EntryType,
    path: &'a str,
    mode: u32,
    data: &'a [u8],
    link: &'a str,
}

fn file<'a>(path: &'a str, data: &'a [u8]) -> Item<'a> {
    Item { kind: EntryType::Regular, path, mode: 0o644, data, link: "" }
}

fn dir(path: &str) -> Item<'_> {
    Item { kind: EntryType::Directory, path, mode: 0o755, data: b"", link: "" }
}

fn symlink<'a>(path: &'a str, target: &'a str) -> Item<'a> {
    Item { kind: EntryType::Symlink, path, mode: 0o777, data: b"", link: target }
}

fn hard_link<'a>(path: &'a str, target: &'a str) -> Item<'a> {
    Item { kind: EntryType::Link, path, mode: 0o644, data: b"", link: target }
}

fn tar(items: &[Item]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = Header::new_old();
        let old = header.as_old_mut();
        old.name[..item.path.len()].copy_from_slice(item.path.as_bytes());
        old.linkname[..item.link.len()].copy_from_slice(item.link.as_bytes());
        header.set_entry_type(item.kind);
        header.set_mode(item.mode);
        header.set_size(item.data.len() as u64);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        builder.append(&header, item.data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Unpacks `bytes`, saved as `name` in the sandbox, as the fetcher does.
fn unpack_with(
    dirs: &Dirs,
    name: &str,
    bytes: &[u8],
    settings: &FetchSettings,
    owner: Option<Owner>,
) -> Result<(), String> {
    std::fs::write(dirs.sandbox().join(name), bytes).unwrap();
    let root = Sandbox::open(&dirs.sandbox(), owner)?;
    let cancel = CancellationToken::new();
    let kind = ArchiveKind::of(name).expect("an archive name");
    Unpack::new(&root, settings, &cancel).archive(kind, File::open(dirs.sandbox().join(name)).unwrap(), name)
}

fn unpack(dirs: &Dirs, name: &str, bytes: &[u8]) -> Result<(), String> {
    unpack_with(dirs, name, bytes, &settings(), None)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn archives_are_recognised_by_the_names_mesos_extracts() {
    let cases = [
        ("a.tar", Some(ArchiveKind::Tar(Compression::None))),
        ("a.tar.gz", Some(ArchiveKind::Tar(Compression::Gzip))),
        ("a.tgz", Some(ArchiveKind::Tar(Compression::Gzip))),
        ("a.tar.bz2", Some(ArchiveKind::Tar(Compression::Bzip2))),
        ("a.tbz2", Some(ArchiveKind::Tar(Compression::Bzip2))),
        ("a.tar.xz", Some(ArchiveKind::Tar(Compression::Xz))),
        ("dir/a.txz", Some(ArchiveKind::Tar(Compression::Xz))),
        ("a.zip", Some(ArchiveKind::Zip)),
        ("a.json.gz", Some(ArchiveKind::Gzip)),
        ("a.TGZ", None),
        ("a.jar", None),
        ("run.sh", None),
    ];
    for (name, kind) in cases {
        assert_eq!(ArchiveKind::of(name), kind, "{name}");
    }
}

#[test]
fn entry_paths_and_symlink_targets_must_stay_inside() {
    assert_eq!(entry_path(b"./a//b/./c").unwrap(), ["a", "b", "c"]);
    assert!(entry_path(b"./").unwrap().is_empty());
    assert!(entry_path(b"a/../../b").unwrap_err().contains("`..`"));
    assert!(entry_path(b"/etc/passwd").unwrap_err().contains("absolute"));
    let cases: [(&[u8], usize, Result<(), &str>); 9] = [
        (b"lib.so.1", 0, Ok(())),
        (b"./x", 0, Ok(())),
        (b"../lib/x", 1, Ok(())),
        (b"../../x", 2, Ok(())),
        (b"..", 1, Ok(())),
        (b"..", 0, Err("points outside")),
        (b"../../x", 1, Err("points outside")),
        (b"a/../../x", 3, Err("only leading")),
        (b"/etc/shadow", 3, Err("absolute")),
    ];
    for (target, depth, want) in cases {
        let got = check_link_target(target, depth);
        match want {
            Ok(()) => assert_eq!(got, Ok(()), "{:?}", String::from_utf8_lossy(target)),
            Err(text) => assert!(got.unwrap_err().contains(text), "{:?}", String::from_utf8_lossy(target)),
        }
    }
}

#[test]
fn a_tar_gz_unpacks_into_the_sandbox_with_safe_modes() {
    let dirs = Dirs::new();
    let archive = gzip(&tar(&[
        dir("./"),
        dir("./app/"),
        Item { mode: 0o4755, ..file("./app/run", b"#!/bin/sh\necho hi\n") },
        file("app/conf/deep/x.conf", b"x=1"),
        Item { mode: 0o500, ..dir("app/ro/") },
        file("app/ro/inside", b"written after its directory"),
        symlink("app/current", "run"),
        symlink("app/conf/up", "../run"),
        hard_link("app/run2", "app/run"),
        file("app/replaced", b"old"),
        file("app/replaced", b"new"),
    ]));
    unpack(&dirs, "app.tgz", &archive).unwrap();
    let sandbox = dirs.sandbox();
    assert_eq!(
        dirs.tree(),
        set([
            "app.tgz",
            "app/",
            "app/conf/",
            "app/conf/deep/",
            "app/conf/deep/x.conf",
            "app/conf/up",
            "app/current",
            "app/replaced",
            "app/ro/",
            "app/ro/inside",
            "app/run",
            "app/run2",
        ])
    );
    assert_eq!(std::fs::read(sandbox.join("app/current")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(std::fs::read(sandbox.join("app/conf/up")).unwrap(), b"#!/bin/sh\necho hi\n");
    assert_eq!(std::fs::read(sandbox.join("app/replaced")).unwrap(), b"new");
    assert_eq!(mode(&sandbox.join("app/run")), 0o755, "setuid is dropped");
    assert_eq!(mode(&sandbox.join("app/conf/deep")), 0o755, "implicit parents are 0755");
    assert_eq!(mode(&sandbox.join("app/ro")), 0o700, "the owner keeps access to directories");
    let run = std::fs::metadata(sandbox.join("app/run")).unwrap();
    assert_eq!(run.ino(), std::fs::metadata(sandbox.join("app/run2")).unwrap().ino());
    assert!(dirs.outside().is_empty());
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside_the_sandbox() {
    let cases: Vec<(&str, Vec<Item>, &str)> = vec![
        ("dotdot", vec![file("../evil", b"x")], "entry \"../evil\" contains `..`"),
        ("nested dotdot", vec![file("a/../../evil", b"x")], "contains `..`"),
        ("absolute", vec![file("/tmp/evil", b"x")], "is absolute"),
        ("symlink up", vec![symlink("up", "..")], "points outside the sandbox"),
        ("symlink deep", vec![dir("a/"), symlink("a/up", "../../evil")], "points outside the sandbox"),
        ("absolute symlink", vec![symlink("etc", "/etc")], "is absolute"),
        ("dotdot after a name", vec![dir("a/"), symlink("a/x", "b/../../../evil")], "only leading"),
        (
            "through a symlink",
            vec![dir("real/"), symlink("link", "real"), file("link/evil", b"x")],
            "link is a symbolic link",
        ),
        ("device", vec![Item { kind: EntryType::Char, ..file("null", b"") }], "device node"),
        ("fifo", vec![Item { kind: EntryType::Fifo, ..file("pipe", b"") }], "fifo"),
        ("hard link outside", vec![hard_link("h", "../evil")], "contains `..`"),
        ("hard link to nothing", vec![hard_link("h", "missing")], "not an earlier entry"),
        ("hard link to a symlink", vec![symlink("s", "x"), hard_link("h", "s")], "not a regular file"),
        ("file over a directory", vec![dir("d/"), file("d", b"x")], "a directory is in the way"),
    ];
    for (what, items, want) in cases {
        let dirs = Dirs::new();
        let err = unpack(&dirs, "bad.tar", &tar(&items)).unwrap_err();
        assert!(err.contains(want), "{what}: {err}");
        assert!(dirs.outside().is_empty(), "{what}: {:?}", dirs.outside());
    }
    // A symlink in the sandbox pointing out is never written through.
    let dirs = Dirs::new();
    std::os::unix::fs::symlink(dirs.outer.path(), dirs.sandbox().join("out")).unwrap();
    let err = unpack(&dirs, "bad.tar", &tar(&[file("out/evil", b"x")])).unwrap_err();
    assert!(err.contains("out is a symbolic link"), "{err}");
    unpack(&dirs, "ok.tar", &tar(&[file("out", b"replaces the symlink")])).unwrap();
    assert_eq!(std::fs::read(dirs.sandbox().join("out")).unwrap(), b"replaces the symlink");
    assert!(dirs.outside().is_empty(), "{:?}", dirs.outside());
}

#[test]
fn bzip2_xz_zip_and_gz_are_unpacked_too() {
    let archive = tar(&[dir("d/"), file("d/f", b"content")]);

    let dirs = Dirs::new();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&archive).unwrap();
    unpack(&dirs, "a.tar.bz2", &bz.finish().unwrap()).unwrap();
    assert_eq!(std::fs::read(dirs.sandbox().join("d/f")).unwrap(), b"content");

    let dirs = Dirs::new();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &archive[..], &mut xz).unwrap();
    unpack(&dirs, "a.txz", &xz).unwrap();
    assert_eq!(std::fs::read(dirs.sandbox().join("d/f")).unwrap(), b"content");
    // A corrupt xz stream fails with the decoder's message.
    let err = unpack(&dirs, "b.tar.xz", &xz[..xz.len() / 2]).unwrap_err();
    assert!(err.contains("xz"), "{err}");

    let dirs = Dirs::new();
    unpack(&dirs, "notes.txt.gz", &gzip(b"plain text")).unwrap();
    assert_eq!(std::fs::read(dirs.sandbox().join("notes.txt")).unwrap(), b"plain text");

    let dirs = Dirs::new();
    let zip_bytes = {
        use zip::write::SimpleFileOptions;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        writer.add_directory("bin/", SimpleFileOptions::default()).unwrap();
        writer.start_file("bin/tool", deflated.unix_permissions(0o755)).unwrap();
        writer.write_all(b"#!/bin/sh\n").unwrap();
        writer
            .start_file("readme", SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored))
            .unwrap();
        writer.write_all(b"stored").unwrap();
        writer.add_symlink("tool", "bin/tool", SimpleFileOptions::default()).unwrap();
        writer.finish().unwrap().into_inner()
    };
    unpack(&dirs, "a.zip", &zip_bytes).unwrap();
    assert_eq!(dirs.tree(), set(["a.zip", "bin/", "bin/tool", "readme", "tool"]));
    assert_eq!(mode(&dirs.sandbox().join("bin/tool")), 0o755);
    assert_eq!(std::fs::read(dirs.sandbox().join("tool")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(std::fs::read(dirs.sandbox().join("readme")).unwrap(), b"stored");

    let hostile = {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer.start_file("../evil", zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(b"x").unwrap();
        writer.finish().unwrap().into_inner()
    };
    let dirs = Dirs::new();
    let err = unpack(&dirs, "bad.zip", &hostile).unwrap_err();
    assert!(err.contains("entry \"../evil\" contains `..`"), "{err}");
    assert!(dirs.outside().is_empty());
    let err = unpack(&dirs, "junk.zip", b"not a zip").unwrap_err();
    assert!(err.contains("not a valid zip archive"), "{err}");
    let err = unpack(&dirs, "junk.tgz", b"not gzip").unwrap_err();
    assert!(err.contains("tar"), "{err}");
}

#[test]
fn archives_are_unpacked_within_the_limits() {
    let archive = tar(&[file("a", b"0123456789"), file("b", b"0123456789")]);
    let dirs = Dirs::new();
    let small = FetchSettings { max_unpacked_bytes: 15, ..settings() };
    let err = unpack_with(&dirs, "a.tar", &archive, &small, None).unwrap_err();
    assert!(err.contains("more than 15 bytes"), "{err}");
    // Without a declared size (a gzipped file), the count stops the writing.
    let err = unpack_with(&dirs, "big.gz", &gzip(&[0; 100]), &small, None).unwrap_err();
    assert!(err.contains("more than 15 bytes"), "{err}");
    let few = FetchSettings { max_archive_entries: 1, ..settings() };
    let err = unpack_with(&dirs, "b.tar", &archive, &few, None).unwrap_err();
    assert!(err.contains("more than 1 entries"), "{err}");
}

#[test]
fn unpacked_files_belong_to_the_owner() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let dirs = Dirs::new();
    let owner = Owner { uid: 4242, gid: 4343 };
    let archive = tar(&[file("implicit/dir/f", b"x"), dir("d/"), symlink("l", "d")]);
    unpack_with(&dirs, "a.tar", &archive, &settings(), Some(owner)).unwrap();
    for path in ["implicit", "implicit/dir", "implicit/dir/f", "d", "l"] {
        let meta = std::fs::symlink_metadata(dirs.sandbox().join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{path}");
    }
}

// Downloads, from a local HTTP server.

async fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    use axum::routing::get;
    let mut router = axum::Router::new();
    for (path, body) in files {
        router = router.route(path, get(move || std::future::ready(body.clone())));
    }
    // Headers and one byte, then nothing.
    router = router.route(
        "/stall",
        get(|| async {
            let first = futures_util::stream::once(async { Ok::<_, io::Error>(bytes::Bytes::from_static(b"x")) });
            let body = axum::body::Body::from_stream(first.chain(futures_util::stream::pending()));
            axum::response::Response::builder().header("content-length", "10").body(body).unwrap()
        }),
    );
    // No Content-Length: the size is known only while reading.
    router = router.route(
        "/chunked",
        get(|| async {
            let chunks = futures_util::stream::iter(
                (0..10).map(|_| Ok::<_, io::Error>(bytes::Bytes::from_static(b"0123456789"))),
            );
            axum::body::Body::from_stream(chunks)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Runs `fetch_all` on a blocking thread, as the executor does.
fn fetch(
    fetcher: &Arc<Fetcher>,
    uris: Vec<FetchUri>,
    sandbox: PathBuf,
    cancel: CancellationToken,
) -> impl Future<Output = Result<(), FetchError>> + 'static {
    let fetcher = fetcher.clone();
    async move {
        tokio::task::spawn_blocking(move || {
            fetcher.fetch_all(&tokio::runtime::Handle::current(), "t", &uris, &sandbox, None, &cancel)
        })
        .await
        .unwrap()
    }
}

fn uri(url: String) -> FetchUri {
    FetchUri::new(&url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_land_in_the_sandbox_as_mesos_places_them() {
    let archive = gzip(&tar(&[dir("site/"), file("site/index.html", b"<h1>hi</h1>")]));
    let base = serve(vec![
        ("/files/config.json", b"{}".to_vec()),
        ("/bin/tool.sh", b"#!/bin/sh\n".to_vec()),
        ("/site.tar.gz", archive.clone()),
        ("/kept.tgz", archive),
    ])
    .await;
    let fetcher = Arc::new(Fetcher::new(settings()).unwrap());
    let dirs = Dirs::new();
    let uris = vec![
        uri(format!("{base}/files/config.json?version=3")),
        FetchUri { executable: true, ..uri(format!("{base}/bin/tool.sh")) },
        uri(format!("{base}/site.tar.gz")),
        FetchUri { dest_path: Some("conf/nested/app.json".into()), ..uri(format!("{base}/files/config.json")) },
        FetchUri { extract: false, ..uri(format!("{base}/kept.tgz")) },
    ];
    fetch(&fetcher, uris, dirs.sandbox(), CancellationToken::new()).await.unwrap();
    assert_eq!(
        dirs.tree(),
        set([
            "conf/",
            "conf/nested/",
            "conf/nested/app.json",
            "config.json",
            "kept.tgz",
            "site.tar.gz",
            "site/",
            "site/index.html",
            "tool.sh",
        ])
    );
    let sandbox = dirs.sandbox();
    assert_eq!(mode(&sandbox.join("tool.sh")), 0o755);
    assert_eq!(mode(&sandbox.join("config.json")), 0o644);
    assert_eq!(std::fs::read(sandbox.join("site/index.html")).unwrap(), b"<h1>hi</h1>");
    assert_eq!(std::fs::read(sandbox.join("conf/nested/app.json")).unwrap(), b"{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_downloads_name_the_uri_and_the_cause() {
    let base = serve(vec![("/ok", b"fine".to_vec()), ("/big", vec![0; 100])]).await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/x.tgz", listener.local_addr().unwrap())
    };
    let small = Arc::new(Fetcher::new(FetchSettings { max_download_bytes: 50, ..settings() }).unwrap());
    let cases = vec![
        (uri(format!("{base}/missing.tgz")), "HTTP 404 Not Found"),
        (uri(refused), "Connection refused"),
        (uri(format!("{base}/big")), "the file has 100 bytes; this agent fetches at most 50"),
        (uri(format!("{base}/chunked")), "larger than 50 bytes"),
        (uri(format!("{base}/stall")), "the download stalled"),
        (uri(format!("{base}/")), "names no file; give destPath"),
        (uri("file:///etc/shadow".into()), "file:// scheme is not supported"),
        (FetchUri { dest_path: Some("../x".into()), ..uri(format!("{base}/ok")) }, "`..`"),
    ];
    for (u, want) in cases {
        let dirs = Dirs::new();
        let shown = u.uri.clone();
        let err = fetch(&small, vec![u], dirs.sandbox(), CancellationToken::new()).await.unwrap_err();
        assert_eq!(err.uri, shown);
        assert!(!err.cancelled);
        let text = err.to_string();
        assert!(text.starts_with(&format!("Failed to fetch '{shown}': ")) && text.contains(want), "{text}");
        assert!(dirs.tree().is_empty(), "a failed download leaves nothing: {:?}", dirs.tree());
    }

    // A destination through a symlink is refused, not followed.
    let dirs = Dirs::new();
    std::os::unix::fs::symlink(dirs.outer.path(), dirs.sandbox().join("out")).unwrap();
    let through = FetchUri { dest_path: Some("out/x".into()), ..uri(format!("{base}/ok")) };
    let err = fetch(&small, vec![through], dirs.sandbox(), CancellationToken::new()).await.unwrap_err();
    assert!(err.cause.contains("out is a symbolic link"), "{err}");
    assert!(dirs.outside().is_empty());

    // A cancelled fetch says so.
    let dirs = Dirs::new();
    let cancel = CancellationToken::new();
    let stalled = fetch(&small, vec![uri(format!("{base}/stall"))], dirs.sandbox(), cancel.clone());
    let stalled = tokio::spawn(stalled);
    cancel.cancel();
    let err = stalled.await.unwrap().unwrap_err();
    assert!(err.cancelled && err.cause.contains("killed"), "{err}");
}
