//! The Mustache specification's own test cases (`tests/data/mustache-spec/`, from the
//! specification's `specs/*.json`, with its license) against `core::packages::mustache`.
//! Every case of the required modules runs; a failure lists each case that differs.

use medos::core::packages::mustache::{Dialect, Partials, render};
use serde_json::Value;
use std::path::Path;

const SPECS: &[&str] = &["comments", "delimiters", "interpolation", "inverted", "partials", "sections"];

#[test]
fn every_case_of_the_required_mustache_specs_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mustache-spec");
    let mut failures = Vec::new();
    let mut cases = 0;
    for spec in SPECS {
        let text = std::fs::read_to_string(dir.join(format!("{spec}.json"))).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let tests = doc["tests"].as_array().expect("a spec file has a `tests` list");
        assert!(!tests.is_empty(), "{spec}.json has no cases");
        for case in tests {
            cases += 1;
            let name = case["name"].as_str().unwrap();
            let template = case["template"].as_str().unwrap();
            let expected = case["expected"].as_str().unwrap();
            let partials: Partials = case
                .get("partials")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
                .unwrap_or_default();
            match render(template, &case["data"], &partials, Dialect::Spec) {
                Ok(got) if got == expected => {}
                Ok(got) => failures.push(format!("{spec} / {name}: expected {expected:?}, got {got:?}")),
                Err(e) => failures.push(format!("{spec} / {name}: error {e}")),
            }
        }
    }
    assert!(cases > 100, "only {cases} spec cases were found");
    assert!(failures.is_empty(), "{} of {cases} spec cases differ:\n{}", failures.len(), failures.join("\n"));
}
