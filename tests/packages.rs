//! The package manager's pure core against Universe-format packages written for these tests
//! (`tests/data/packages/`: the source layout under `universe/` and the same packages as
//! `index.json`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medos::core::packages::mustache::{Dialect, Partials, render};
use medos::core::packages::options::OptionsError;
use medos::core::packages::render::{RenderError, render_app};
use medos::core::packages::repo::{Catalog, PackageError, PackagingVersion, RepoList, Repository};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;

const SOURCE: &str = "https://repo.example.com/test-universe.json";

fn data_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/packages")
}

type Files = BTreeMap<String, Vec<u8>>;

fn layout_files() -> Files {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let root = data_dir().join("universe");
    let mut files = BTreeMap::new();
    walk(&root, &root, &mut files);
    files
}

fn layout() -> Repository {
    Repository::from_universe_layout(&layout_files()).unwrap()
}

fn index() -> Repository {
    Repository::from_index_json(&std::fs::read(data_dir().join("index.json")).unwrap()).unwrap()
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn decode_label(app: &Value, label: &str) -> Value {
    let text = app["labels"][label].as_str().unwrap_or_else(|| panic!("no label {label}"));
    serde_json::from_slice(&STANDARD.decode(text).unwrap()).unwrap()
}

#[test]
fn the_layout_and_the_index_hold_the_same_packages() {
    let layout = layout();
    assert_eq!(layout, index());
    let names: Vec<(&str, &str, u64)> =
        layout.packages.iter().map(|p| (p.name.as_str(), p.version.as_str(), p.release_version)).collect();
    assert_eq!(
        names,
        [("hello", "1.0.0", 0), ("hello", "1.1.0", 1), ("sdk-svc", "2.0.0-1", 0), ("web-proxy", "0.9", 0)]
    );
}

#[test]
fn every_packaging_field_is_read() {
    let repo = layout();
    let hello = repo.describe("hello", Some("1.1.0")).unwrap();
    assert_eq!(hello.packaging_version, PackagingVersion::V4);
    assert_eq!(hello.tags, ["greeting", "example"]);
    assert_eq!(hello.pre_install_notes.as_deref(), Some("Installing hello."));
    assert_eq!(hello.post_uninstall_notes.as_deref(), Some("hello is gone."));
    assert_eq!(hello.licenses.as_ref().unwrap()[0].name, "Apache License Version 2.0");
    assert_eq!(hello.min_dcos_release_version.as_deref(), Some("1.10"));
    let resource = hello.resource.as_ref().unwrap();
    assert_eq!(resource.assets.as_ref().unwrap().container.as_ref().unwrap().docker["hello"], "example/hello:1.1.0");
    assert_eq!(resource.images.as_ref().unwrap().icon_small.as_deref(), Some("https://example.com/hello/small.png"));
    assert!(hello.template().unwrap().unwrap().contains("{{service.name}}"));
    assert!(hello.config.as_ref().unwrap().contains_key("properties"));
    assert!(hello.can_upgrade_from("1.0.0") && !hello.can_upgrade_from("0.1"));
    assert!(hello.can_downgrade_to("anything"));

    let sdk = repo.describe("sdk-svc", None).unwrap();
    assert_eq!(sdk.packaging_version, PackagingVersion::V5);
    assert_eq!(sdk.manager.as_ref().unwrap().package_name, "sdk-manager");
    assert_eq!(sdk.framework, Some(true));
    let cli = sdk.resource.as_ref().unwrap().cli.as_ref().unwrap();
    assert_eq!(cli.binaries["linux"]["x86-64"].kind, "executable");
    assert!(sdk.config.is_none());
    assert!(sdk.can_upgrade_from("0.0.1") && !sdk.can_downgrade_to("1.0"));

    let proxy = repo.describe("web-proxy", None).unwrap();
    assert_eq!(proxy.packaging_version, PackagingVersion::V3);
    assert_eq!(proxy.selected, Some(true));
}

#[test]
fn search_matches_names_descriptions_and_tags_like_cosmos() {
    let repo = layout();
    let all: Vec<String> = repo.search(None).into_iter().map(|r| r.name).collect();
    assert_eq!(all, ["web-proxy", "hello", "sdk-svc"], "selected packages first, then by name");
    let names = |q: &str| -> Vec<String> { repo.search(Some(q)).into_iter().map(|r| r.name).collect() };
    assert_eq!(names("greeting"), ["hello"]);
    assert_eq!(names("PROXY"), ["web-proxy"]);
    assert_eq!(names("http"), ["web-proxy"], "by tag");
    assert_eq!(names("managed by"), ["sdk-svc"], "by description");
    assert_eq!(names("*svc"), ["sdk-svc"]);
    assert_eq!(names("hel*"), ["hello"]);
    assert_eq!(names("ell"), ["hello"]);
    assert!(names("ell*").is_empty(), "a pattern must match the whole name, description or tag");
    assert!(names("no-such-thing").is_empty());
    let hello = repo.search(Some("hello")).remove(0);
    assert_eq!(hello.current_version, "1.1.0");
    assert_eq!(hello.versions, BTreeMap::from([("1.0.0".to_string(), 0), ("1.1.0".to_string(), 1)]));
    assert!(hello.images.is_some());
    let encoded = serde_json::to_value(&hello).unwrap();
    assert_eq!(encoded["currentVersion"], "1.1.0");
}

#[test]
fn describe_and_list_versions_pick_the_latest_release_and_name_what_is_missing() {
    let repo = layout();
    assert_eq!(repo.describe("hello", None).unwrap().version, "1.1.0");
    assert_eq!(repo.describe("hello", Some("1.0.0")).unwrap().release_version, 0);
    assert_eq!(
        repo.describe("hello", Some("9.9")).unwrap_err(),
        PackageError::VersionNotFound { name: "hello".into(), version: "9.9".into() }
    );
    assert_eq!(repo.describe("nope", None).unwrap_err().to_string(), "package `nope` not found");
    assert_eq!(repo.list_versions("hello").unwrap().keys().collect::<Vec<_>>(), ["1.0.0", "1.1.0"]);
    assert!(matches!(repo.list_versions("nope"), Err(PackageError::PackageNotFound(_))));
}

fn other_repo() -> Repository {
    let template = STANDARD.encode(r#"{"id": "hello", "cmd": "echo from-a", "cpus": 0.1, "mem": 32}"#);
    let index = json!({"packages": [{
        "packagingVersion": "4.0", "name": "hello", "version": "1.0.0", "releaseVersion": 7,
        "maintainer": "a@example.com", "description": "hello from repo A", "tags": [],
        "marathon": {"v2AppMustacheTemplate": template}
    }]});
    Repository::from_index_json(index.to_string().as_bytes()).unwrap()
}

#[test]
fn the_first_repository_that_has_a_package_wins() {
    let a = other_repo();
    let universe = layout();
    let catalog = Catalog::new(vec![("uri-a", &a), ("uri-universe", &universe)]);
    let (hello, from) = catalog.describe("hello", None).unwrap();
    assert_eq!((hello.description.as_str(), from), ("hello from repo A", "uri-a"), "A comes first");
    let (newer, from) = catalog.describe("hello", Some("1.1.0")).unwrap();
    assert_eq!((newer.version.as_str(), from), ("1.1.0", "uri-universe"), "only the universe has 1.1.0");
    let (same, from) = catalog.describe("hello", Some("1.0.0")).unwrap();
    assert_eq!((same.release_version, from), (7, "uri-a"), "(name, version) comes from the first repository");
    assert_eq!(catalog.list_versions("hello").unwrap(), BTreeMap::from([("1.0.0".into(), 7), ("1.1.0".into(), 1)]));
    assert_eq!(catalog.search(Some("hello"))[0].current_version, "1.0.0");

    let reversed = Catalog::new(vec![("uri-universe", &universe), ("uri-a", &a)]);
    let (hello, from) = reversed.describe("hello", None).unwrap();
    assert_eq!((hello.version.as_str(), from), ("1.1.0", "uri-universe"));
}

#[test]
fn the_repository_list_keeps_priorities_and_refuses_duplicates() {
    let mut list = RepoList::default();
    list.add("universe", "https://repo.example.com/universe.json", None).unwrap();
    list.add("local", "local:packages", Some(0)).unwrap();
    list.add("last", "https://repo.example.com/last.json", Some(2)).unwrap();
    let names: Vec<&str> = list.repos.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["local", "universe", "last"]);
    assert_eq!(list.add("local", "other", None), Err(PackageError::RepoNameExists("local".into())));
    assert_eq!(list.add("x", "local:packages", None), Err(PackageError::RepoUriExists("local:packages".into())));
    assert_eq!(list.add("x", "y", Some(4)), Err(PackageError::RepoIndexOutOfRange { index: 4, len: 3 }));
    assert!(matches!(list.add("", "y", None), Err(PackageError::BadRepoSource { field: "name", .. })));
    assert_eq!(list.remove("https://repo.example.com/universe.json").unwrap().name, "universe");
    assert_eq!(list.remove("universe"), Err(PackageError::RepoNotFound("universe".into())));
    let round: RepoList = serde_json::from_value(serde_json::to_value(&list).unwrap()).unwrap();
    assert_eq!(round, list);
}

#[test]
fn a_package_renders_with_its_defaults_and_cosmos_labels() {
    let repo = layout();
    let hello = repo.describe("hello", None).unwrap();
    let rendered = render_app(hello, &Map::new(), SOURCE, None).unwrap();
    let app = &rendered.app;
    assert_eq!(app["id"], "hello");
    assert_eq!(app["cpus"], json!(0.5));
    assert_eq!(app["mem"], json!(128));
    assert_eq!(app["args"], json!(["--port", "8080", "--greeting", "hello \"world\""]));
    assert_eq!(app["container"]["docker"]["image"], "example/hello:1.1.0", "resource is in the template's scope");
    assert_eq!(app["env"], json!({"DEBUG": "false", "MODE": "safe"}), "inverted section on false; null note left out");
    assert_eq!(app["portDefinitions"], json!([{"port": 8080, "name": "http"}, {"port": 0, "name": "admin"}]));
    let labels = app["labels"].as_object().unwrap();
    assert_eq!(labels["DCOS_PACKAGE_NAME"], "hello", "the renderer's labels win over the template's");
    assert_eq!(labels["DCOS_PACKAGE_VERSION"], "1.1.0");
    assert_eq!(labels["DCOS_PACKAGE_SOURCE"], SOURCE);
    assert_eq!(labels["DCOS_PACKAGE_FRAMEWORK_NAME"], "hello");
    assert!(!labels.contains_key("HAPROXY_0_VHOST"));
    assert_eq!(decode_label(app, "DCOS_PACKAGE_OPTIONS"), json!({}), "only the user's options");
    assert_eq!(rendered.options["service"]["mem"], json!(128));

    let envelope = decode_label(app, "DCOS_PACKAGE_DEFINITION");
    assert_eq!(
        envelope["metadata"]["Content-Type"],
        "application/vnd.dcos.universe.package+json;charset=utf-8;version=v4"
    );
    assert_eq!(envelope["metadata"]["Content-Encoding"], "gzip");
    let gz = STANDARD.decode(envelope["data"].as_str().unwrap()).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let mut inflate = flate2::Decompress::new(false);
    let mut json_bytes = Vec::with_capacity(64 * 1024);
    inflate.decompress_vec(&gz[10..gz.len() - 8], &mut json_bytes, flate2::FlushDecompress::Finish).unwrap();
    let definition: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(definition, serde_json::to_value(hello).unwrap());
    assert_eq!(definition["marathon"]["v2AppMustacheTemplate"], STANDARD.encode(hello.template().unwrap().unwrap()));

    let metadata = decode_label(app, "DCOS_PACKAGE_METADATA");
    assert_eq!(metadata["name"], "hello");
    assert_eq!(metadata["selected"], false);
    assert_eq!(metadata["images"]["icon-large"], "https://example.com/hello/large.png");
    assert!(metadata.get("scm").is_some() && metadata.get("preInstallNotes").is_some());
}

#[test]
fn user_options_reach_sections_lists_and_escapes() {
    let repo = layout();
    let hello = repo.describe("hello", None).unwrap();
    let user = obj(json!({
        "service": {
            "name": "greeter", "cpus": 1.0, "debug": true, "note": "line1\nline2 \"quoted\"",
            "virtual_host": "hello.example.com", "args": ["a b", "c\"d"]
        },
        "networking": {"ports": [{"port": 9000, "name": "web"}, {"port": 9001, "name": "metrics"}]}
    }));
    let rendered = render_app(hello, &user, SOURCE, Some("/team/hello-2")).unwrap();
    let app = &rendered.app;
    assert_eq!(app["id"], "/team/hello-2");
    assert_eq!(app["cpus"], json!(1));
    assert_eq!(app["args"], json!(["a b", "c\"d", "--greeting", "hello \"world\""]));
    assert_eq!(app["env"], json!({"DEBUG": "true", "NOTE": "line1\nline2 \"quoted\"", "MODE": "safe"}));
    assert_eq!(
        app["portDefinitions"],
        json!([{"port": 9000, "name": "web"}, {"port": 9001, "name": "metrics"}, {"port": 0, "name": "admin"}])
    );
    assert_eq!(app["labels"]["HAPROXY_0_VHOST"], "hello.example.com");
    assert_eq!(app["labels"]["DCOS_PACKAGE_FRAMEWORK_NAME"], "greeter");
    assert_eq!(decode_label(app, "DCOS_PACKAGE_OPTIONS"), Value::Object(user));
    assert_eq!(rendered.options["service"]["mem"], json!(128), "defaults fill what the user left out");
}

#[test]
fn cosmos_lambda_and_packages_without_options_render() {
    let repo = layout();
    let proxy = repo.describe("web-proxy", None).unwrap();
    let app = render_app(proxy, &obj(json!({"proxy": {"port": 8081}})), SOURCE, None).unwrap().app;
    assert_eq!(app["cmd"], "echo welcome && serve --verbose --port 8081");
    assert_eq!(app["portDefinitions"], json!([{"port": 8081}]));

    let sdk = repo.describe("sdk-svc", None).unwrap();
    let app = render_app(sdk, &Map::new(), SOURCE, None).unwrap().app;
    assert_eq!(app["cmd"], "./scheduler --image example/sdk-scheduler:2.0.0");
    assert_eq!(app["labels"]["DCOS_PACKAGE_FRAMEWORK_NAME"], "sdk-svc");
    let envelope = decode_label(&app, "DCOS_PACKAGE_DEFINITION");
    assert_eq!(
        envelope["metadata"]["Content-Type"],
        "application/vnd.dcos.universe.package+json;charset=utf-8;version=v5"
    );
}

#[test]
fn schema_violations_and_options_for_packages_without_a_schema_are_refused() {
    let repo = layout();
    let hello = repo.describe("hello", None).unwrap();
    let user = obj(
        json!({"service": {"cpus": 0.01, "mode": "turbo", "colour": "red"}, "networking": {"ports": [{"port": 70000}]}}),
    );
    let Err(RenderError::Options(OptionsError::Invalid(errors))) = render_app(hello, &user, SOURCE, None) else {
        panic!("expected schema errors");
    };
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for expected in [
        "/service/cpus: 0.01 is less than the minimum 0.1",
        "/service/mode: \"turbo\" is not one of \"fast\", \"safe\"",
        "/service: unknown option `colour` (the schema allows no other options here)",
        "/networking/ports/0/port: 70000 is greater than the maximum 65535",
        "/networking/ports/0: required option `name` is missing",
    ] {
        assert!(errors.contains(&expected.to_string()), "missing {expected:?} in {errors:#?}");
    }
    let sdk = repo.describe("sdk-svc", None).unwrap();
    let err = render_app(sdk, &obj(json!({"x": 1})), SOURCE, None).unwrap_err();
    assert_eq!(err, RenderError::Options(OptionsError::NotAllowed));
}

#[test]
fn a_template_that_renders_invalid_json_names_the_line_and_column() {
    let repo = layout();
    let proxy = repo.describe("web-proxy", None).unwrap();
    // `asJson` writes the string raw, so a quote in it breaks the JSON.
    let err = render_app(proxy, &obj(json!({"banner": "say \"hi\""})), SOURCE, None).unwrap_err();
    let RenderError::InvalidJson { line, column, snippet, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*line, *column), (5, 21), "the character after the early closing quote");
    assert!(snippet.contains("\"cmd\": \"echo say \"hi\""), "{snippet}");
    assert!(err.to_string().contains("line 5 column 21"), "{err}");
}

fn one_package(template: &str, extra: Value) -> Repository {
    let mut package = json!({
        "packagingVersion": "4.0", "name": "broken", "version": "1", "releaseVersion": 0,
        "maintainer": "m", "description": "d", "tags": [],
        "marathon": {"v2AppMustacheTemplate": STANDARD.encode(template)}
    });
    package.as_object_mut().unwrap().extend(obj(extra));
    Repository::from_index_json(json!({"packages": [package]}).to_string().as_bytes()).unwrap()
}

#[test]
fn bad_templates_and_bad_apps_are_refused_before_anything_is_installed() {
    let render = |template: &str, id: Option<&str>| {
        let repo = one_package(template, json!({}));
        match render_app(&repo.packages[0], &Map::new(), SOURCE, id) {
            Ok(rendered) => rendered.marathon_app().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        }
    };
    let ok = r#"{"id": "x", "cmd": "true", "cpus": 0.1, "mem": 32}"#;
    assert!(render("[1, 2]", None).contains("must be a JSON object, got a list"));
    assert!(
        render(r#"{"id": "x", "cmd": "c", "labels": {"a": 1}}"#, None).contains("label \"a\" is 1, expected a string")
    );
    assert!(render("{{#open}} {", None).contains("section `open` is never closed"));
    assert!(
        render(r#"{"id": "x", "cmd": "true", "cpus": -1, "mem": 32}"#, None)
            .contains("the rendered Marathon app is invalid")
    );
    assert!(render(ok, Some("/Bad_Id")).contains("invalid app id \"/Bad_Id\""));
    assert!(render(ok, Some("/")).contains("not the root group"));
    let repo = one_package(ok, json!({}));
    let app = render_app(&repo.packages[0], &Map::new(), SOURCE, Some("/a/b")).unwrap().marathon_app().unwrap();
    assert_eq!(app.id.as_str(), "/a/b");
    let no_template = one_package(ok, json!({}));
    let mut package = no_template.packages[0].clone();
    package.marathon = None;
    assert_eq!(render_app(&package, &Map::new(), SOURCE, None).unwrap_err(), RenderError::NoTemplate("broken".into()));
}

fn index_error(doc: Value) -> String {
    Repository::from_index_json(doc.to_string().as_bytes()).unwrap_err().to_string()
}

#[test]
fn broken_indexes_name_the_package_and_field() {
    assert!(Repository::from_index_json(b"{\"packages\": [").unwrap_err().to_string().contains("not valid JSON"));
    assert!(index_error(json!({})).contains("missing the `packages` list"));
    assert!(index_error(json!({"packages": {}})).contains("expected a list of packages"));
    let base = || {
        json!({"packagingVersion": "4.0", "name": "pkg", "version": "1", "releaseVersion": 0,
               "maintainer": "m", "description": "d", "tags": []})
    };
    let with = |extra: Value| {
        let mut p = base();
        p.as_object_mut().unwrap().extend(obj(extra));
        json!({"packages": [base(), p]})
    };
    let e = index_error(with(json!({"packagingVersion": "6.0", "version": "2"})));
    assert_eq!(
        e,
        "repository index: packages[1] (pkg).packagingVersion: \"6.0\" is not supported (expected \"2.0\", \"3.0\", \"4.0\" or \"5.0\")"
    );
    let e = index_error(with(json!({"version": "2", "marathon": {"v2AppMustacheTemplate": "not base64!"}})));
    assert!(e.starts_with("repository index: packages[1] (pkg).marathon.v2AppMustacheTemplate: invalid base64"), "{e}");
    let mut missing = base();
    missing.as_object_mut().unwrap().remove("maintainer");
    let e = index_error(json!({"packages": [missing]}));
    assert!(e.starts_with("repository index: packages[0] (pkg)") && e.contains("missing field `maintainer`"), "{e}");
    let e = index_error(with(json!({"version": "2", "releaseVersion": -1})));
    assert!(e.contains("packages[1] (pkg).releaseVersion: invalid value"), "{e}");
    let e = index_error(with(json!({"version": "2", "resource": {"images": {"icon-tiny": "x"}}})));
    assert!(e.contains("packages[1] (pkg).resource.images.icon-tiny: unknown field `icon-tiny`"), "{e}");
    let e = index_error(with(json!({"name": "Bad Name"})));
    assert!(e.contains("packages[1] (Bad Name).name: \"Bad Name\" is not a package name"), "{e}");
    let e = index_error(with(json!({"version": "2", "packagingVersion": "3.0", "upgradesFrom": ["1"]})));
    assert!(e.contains("upgradesFrom: needs packagingVersion 4.0 or later"), "{e}");
    let e = index_error(with(json!({"version": "2", "manager": {"packageName": "m"}})));
    assert!(e.contains("manager: needs packagingVersion 5.0"), "{e}");
    let e = index_error(with(json!({"version": "2", "packagingVersion": "2.0"})));
    assert!(e.contains("marathon: is required for packagingVersion 2.0"), "{e}");
    let e = index_error(with(json!({"tags": ["two words"], "version": "2"})));
    assert!(e.contains("tags[0]: \"two words\" must be non-empty and without spaces"), "{e}");
    let e = index_error(with(json!({})));
    assert!(e.contains("version \"1\" appears twice"), "{e}");
}

#[test]
fn broken_layouts_name_the_file_and_field() {
    let layout_error = |change: &dyn Fn(&mut Files)| {
        let mut files = layout_files();
        change(&mut files);
        Repository::from_universe_layout(&files).unwrap_err().to_string()
    };
    let e = layout_error(&|f| {
        f.insert("packages/H/hello/1/config.json".into(), b"{ not json".to_vec());
    });
    assert!(e.starts_with("packages/H/hello/1/config.json: not valid JSON"), "{e}");
    let e = layout_error(&|f| {
        f.insert(
            "packages/H/hello/1/resource.json".into(),
            br#"{"assets": {"container": {"docker": {"a": 1}}}}"#.to_vec(),
        );
    });
    assert!(e.starts_with("packages/H/hello/1/resource.json: assets.container.docker.a: invalid type"), "{e}");
    let e = layout_error(&|f| {
        f.remove("packages/W/web-proxy/0/package.json");
    });
    assert_eq!(e, "packages/W/web-proxy/0/package.json: missing");
    let e = layout_error(&|f| {
        let package = br#"{"packagingVersion": "3.0", "name": "extra", "version": "1", "maintainer": "m", "description": "d", "tags": []}"#;
        f.insert("packages/Q/extra/0/package.json".into(), package.to_vec());
    });
    assert_eq!(e, "packages/Q/extra/0: package `extra` belongs under packages/E/");
    let e = layout_error(&|f| {
        f.insert("packages/S/sdk-svc/latest/package.json".into(), b"{}".to_vec());
    });
    assert!(e.contains("must be a non-negative whole number"), "{e}");
    let e = layout_error(&|f| {
        f.insert(
            "packages/S/sdk-svc/0/package.json".into(),
            br#"{"packagingVersion": "5.0", "name": "sdk-svc", "version": "1", "maintainer": "m", "tags": []}"#
                .to_vec(),
        );
    });
    assert!(e.starts_with("packages/S/sdk-svc/0/package.json") && e.contains("missing field `description`"), "{e}");
    // Files outside `packages/` (README, scripts) and unknown files in a package are ignored; a `repo/` prefix is accepted.
    let mut files: BTreeMap<String, Vec<u8>> =
        layout_files().into_iter().map(|(k, v)| (format!("repo/{k}"), v)).collect();
    files.insert("README.md".into(), b"# test".to_vec());
    files.insert("repo/packages/S/sdk-svc/0/extra-options.json".into(), b"not json".to_vec());
    assert_eq!(Repository::from_universe_layout(&files).unwrap(), layout());
}

#[test]
fn universe_style_templates_render_as_cosmos_renders_them() {
    // Standalone section lines vanish, strings are JSON-escaped, numbers print as Java does.
    let template = "{\n  \"a\": \"{{s}}\",\n  {{#flag}}\n  \"b\": {{n}},\n  {{/flag}}\n  \"c\": [{{#list}}{{.}},{{/list}}\"end\"]\n}\n";
    let data = json!({"s": "tab\tquote\"", "flag": true, "n": 2.5e-7, "list": ["x", 1]});
    let out = render(template, &data, &Partials::new(), Dialect::Cosmos).unwrap();
    assert_eq!(out, "{\n  \"a\": \"tab\\tquote\\\"\",\n  \"b\": 2.5E-7,\n  \"c\": [\"x\",1,\"end\"]\n}\n");
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["a"], "tab\tquote\"");
}
