//! The default repository shipped in `universe/`: every package parses, renders with its
//! defaults and with options, and gives an app Marathon's validation accepts.

use std::collections::BTreeMap;
use std::path::Path;

use medos::core::packages::{Repository, render_app};
use serde_json::{Map, Value, json};

fn files(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, base, out);
        } else {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}

fn repository() -> Repository {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("universe");
    let mut map = BTreeMap::new();
    files(&root, &root, &mut map);
    Repository::from_universe_layout(&map).expect("the default repository parses")
}

fn options(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn every_default_package_renders_to_a_valid_app() {
    let repo = repository();
    let names: Vec<&str> = repo.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["hello-world", "httpd"]);
    for package in &repo.packages {
        let rendered = render_app(package, &Map::new(), "universe/", None)
            .unwrap_or_else(|e| panic!("{} renders with its defaults: {e}", package.name));
        rendered.marathon_app().unwrap_or_else(|e| panic!("{}: {e}\n{:#}", package.name, rendered.app));
        assert_eq!(rendered.app["labels"]["DCOS_PACKAGE_NAME"], package.name.as_str());
    }
}

#[test]
fn options_reach_the_app_and_bad_ones_are_named() {
    let repo = repository();
    let httpd = repo.describe("httpd", None).unwrap();
    let rendered = render_app(
        httpd,
        &options(json!({"service": {"name": "web", "instances": 3}, "httpd": {"vip_port": 8080, "message": "a \"quoted\" page"}})),
        "universe/",
        None,
    )
    .unwrap();
    let app = rendered.marathon_app().unwrap();
    assert_eq!(app.id.to_string(), "/web");
    assert_eq!(app.instances, 3);
    assert_eq!(rendered.app["portDefinitions"][0]["labels"]["VIP_0"], "/web:8080");
    assert_eq!(rendered.app["env"]["MESSAGE"], "a \"quoted\" page");
    assert_eq!(rendered.app["container"]["docker"]["image"], "medos/busybox:1");
    let err = render_app(httpd, &options(json!({"service": {"name": "Bad Name"}})), "universe/", None).unwrap_err();
    assert!(err.to_string().contains("/service/name"), "{err}");
    let hello = repo.describe("hello-world", None).unwrap();
    let err = render_app(hello, &options(json!({"interval": 0})), "universe/", None).unwrap_err();
    assert!(err.to_string().contains("/interval"), "{err}");
    let rendered = render_app(hello, &options(json!({"greeting": "hi \\ there"})), "universe/", None).unwrap();
    assert_eq!(rendered.app["env"]["GREETING"], "hi \\ there");
}
