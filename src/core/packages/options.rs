//! A package's options: the defaults its `config.json` JSON Schema declares, merged with the
//! user's options the way Cosmos merges them, and validated against that schema (draft-04, as
//! Universe writes them and Cosmos checks them).
//!
//! Validation uses the `boon` crate: it implements draft-04 (and later drafts) and passes the
//! JSON-Schema-Test-Suite, and adds five small crates to the build (it shares `url`, `idna`,
//! `regex` with the rest of medos). The `jsonschema` crate, even with `default-features = false`,
//! adds 26 (among them `fancy-regex`, `num`, `fraction`, `strum`), a poor trade on a slow
//! build machine for the same draft-04 checks. Schemas may not `$ref` anything outside
//! themselves: no loader is installed, so the core never reaches for a file or the network.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// One option that breaks the schema: its JSON pointer (`/service/cpus`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// The options break the package's schema; every violation is listed.
    #[error("the options do not match the package's config schema:\n{}", list(.0))]
    Invalid(Vec<OptionError>),
    /// The package's `config.json` is not a usable JSON Schema.
    #[error("the package's config.json is not a valid JSON Schema: {0}")]
    BadSchema(String),
    /// Options were given for a package that declares none.
    #[error("the package has no config.json, so it takes no options")]
    NotAllowed,
}

fn list(errors: &[OptionError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

/// The defaults a schema declares, nested as its `properties` are (Cosmos's
/// `extractDefaultsFromSchema`): a property's `default`, or else the defaults of its own
/// `properties` when there are any. Properties without either are left out.
pub fn defaults(schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (name, property) in properties {
        let Some(property) = property.as_object() else { continue };
        if let Some(default) = property.get("default") {
            out.insert(name.clone(), default.clone());
        } else if property.get("properties").is_some() {
            let nested = defaults(&Value::Object(property.clone()));
            if !nested.is_empty() {
                out.insert(name.clone(), Value::Object(nested));
            }
        }
    }
    out
}

/// Deep merge: fields of `fragment` override those of `target`; where both are objects they
/// are merged recursively (circe's `deepMerge`, which Cosmos uses).
pub fn merge(target: &Map<String, Value>, fragment: &Map<String, Value>) -> Map<String, Value> {
    let mut out = target.clone();
    for (key, value) in fragment {
        let merged = match (out.get(key), value) {
            (Some(Value::Object(a)), Value::Object(b)) => Value::Object(merge(a, b)),
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    out
}

/// The options a package is rendered with: the schema's defaults with the user's options
/// merged over them, checked against the schema. Without a schema only empty options pass.
pub fn resolve(schema: Option<&Value>, user: &Map<String, Value>) -> Result<Map<String, Value>, OptionsError> {
    let Some(schema) = schema else {
        return if user.is_empty() { Ok(Map::new()) } else { Err(OptionsError::NotAllowed) };
    };
    let merged = merge(&defaults(schema), user);
    if !merged.is_empty() {
        validate(schema, &Value::Object(merged.clone()))?;
    }
    Ok(merged)
}

const SCHEMA_URL: &str = "urn:medos:package-config";

/// Checks `options` against a draft-04 `schema`, listing every violation by option path.
pub fn validate(schema: &Value, options: &Value) -> Result<(), OptionsError> {
    let mut schema = schema.clone();
    // Universe schemas often name `http://json-schema.org/schema#` ("the latest draft"); Cosmos
    // checks them as draft-04 regardless.
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
    }
    strip_ids(&mut schema);
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V4);
    compiler.use_loader(Box::new(boon::SchemeUrlLoader::new()));
    let mut schemas = boon::Schemas::new();
    compiler.add_resource(SCHEMA_URL, schema).map_err(|e| OptionsError::BadSchema(e.to_string()))?;
    let index = compiler.compile(SCHEMA_URL, &mut schemas).map_err(|e| OptionsError::BadSchema(format!("{e:#}")))?;
    let Err(error) = schemas.validate(options, index) else { return Ok(()) };
    let mut errors = Vec::new();
    collect(&error, options, &mut errors);
    errors.dedup();
    Err(OptionsError::Invalid(errors))
}

/// Removes draft-04 `id` keywords. Universe schemas use `id` for documentation links and
/// repeat them across properties, which makes the schema invalid to a strict validator (two
/// subschemas with one id); Cosmos's validator accepts them. Options never `$ref` those ids.
/// Only schema positions are walked, so a property *named* `id` stays.
fn strip_ids(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    if map.get("id").is_some_and(Value::is_string) {
        map.remove("id");
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "definitions" | "dependencies" => {
                if let Some(children) = value.as_object_mut() {
                    children.values_mut().for_each(strip_ids);
                }
            }
            "items" | "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(list) => list.iter_mut().for_each(strip_ids),
                other => strip_ids(other),
            },
            "additionalItems" | "additionalProperties" | "not" => strip_ids(value),
            _ => {}
        }
    }
}

fn collect(error: &boon::ValidationError, options: &Value, out: &mut Vec<OptionError>) {
    if !error.causes.is_empty() {
        for cause in &error.causes {
            collect(cause, options, out);
        }
        return;
    }
    let pointer = error.instance_location.to_string();
    let value = options.pointer(&pointer).cloned().unwrap_or(Value::Null);
    let path = if pointer.is_empty() { "/".to_string() } else { pointer };
    out.push(OptionError { path, message: describe(&error.kind, &value) });
}

fn describe(kind: &boon::ErrorKind, value: &Value) -> String {
    use boon::ErrorKind as K;
    match kind {
        K::Type { got, want } => {
            let want: Vec<String> = want.iter().map(|t| t.to_string()).collect();
            format!("{value} is {} {got}, expected {}", article(&got.to_string()), want.join(" or "))
        }
        K::Enum { want } => {
            let want: Vec<String> = want.iter().map(Value::to_string).collect();
            format!("{value} is not one of {}", want.join(", "))
        }
        K::Minimum { got, want } => format!("{got} is less than the minimum {want}"),
        K::Maximum { got, want } => format!("{got} is greater than the maximum {want}"),
        K::ExclusiveMinimum { got, want } => format!("{got} is not greater than the exclusive minimum {want}"),
        K::ExclusiveMaximum { got, want } => format!("{got} is not less than the exclusive maximum {want}"),
        K::MultipleOf { got, want } => format!("{got} is not a multiple of {want}"),
        K::Required { want } if want.len() == 1 => format!("required option {} is missing", names(want)),
        K::Required { want } => format!("required options {} are missing", names(want)),
        K::AdditionalProperties { got } => {
            let got: Vec<&str> = got.iter().map(|s| s.as_ref()).collect();
            format!("unknown option {} (the schema allows no other options here)", names(&got))
        }
        K::MinLength { got, want } => format!("{value} is {got} characters long, shorter than the minimum {want}"),
        K::MaxLength { got, want } => format!("{value} is {got} characters long, longer than the maximum {want}"),
        K::Pattern { want, .. } => format!("{value} does not match the pattern {want:?}"),
        K::MinItems { got, want } => format!("the list has {got} items, fewer than the minimum {want}"),
        K::MaxItems { got, want } => format!("the list has {got} items, more than the maximum {want}"),
        K::UniqueItems { got } => format!("items {} and {} are equal, but items must be unique", got[0], got[1]),
        K::MinProperties { got, want } => format!("the object has {got} properties, fewer than the minimum {want}"),
        K::MaxProperties { got, want } => format!("the object has {got} properties, more than the maximum {want}"),
        K::Format { want, err, .. } => format!("{value} is not a valid {want}: {err}"),
        other => other.to_string(),
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

fn names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$schema": "http://json-schema.org/schema#",
            "type": "object",
            "properties": {
                "service": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "default": "web", "pattern": "^[a-z][a-z0-9-]*$"},
                        "cpus": {"type": "number", "default": 1, "minimum": 0.5, "maximum": 4},
                        "instances": {"type": "integer", "default": 1, "minimum": 1},
                        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                        "debug": {"type": "boolean", "default": false},
                        "nodefault": {"type": "string"}
                    },
                    "required": ["name"],
                    "additionalProperties": false
                },
                "ports": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}, "default": [80], "minItems": 1},
                "extra": {"type": ["object", "null"]},
                "deep": {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "default": "x"}}}}}
            },
            "required": ["service"]
        })
    }

    #[test]
    fn defaults_follow_nested_properties() {
        let d = Value::Object(defaults(&schema()));
        assert_eq!(
            d,
            json!({
                "service": {"name": "web", "cpus": 1, "instances": 1, "mode": "safe", "debug": false},
                "ports": [80],
                "deep": {"a": {"b": "x"}}
            })
        );
    }

    #[test]
    fn user_options_override_defaults_deeply() {
        let user = json!({"service": {"cpus": 2}, "ports": [8080, 8081]});
        let merged = resolve(Some(&schema()), user.as_object().unwrap()).unwrap();
        assert_eq!(
            merged["service"],
            json!({"name": "web", "cpus": 2, "instances": 1, "mode": "safe", "debug": false})
        );
        assert_eq!(merged["ports"], json!([8080, 8081]));
        assert_eq!(merged["deep"], json!({"a": {"b": "x"}}));
    }

    fn errors(user: Value) -> Vec<String> {
        match resolve(Some(&schema()), user.as_object().unwrap()) {
            Err(OptionsError::Invalid(errors)) => errors.iter().map(ToString::to_string).collect(),
            other => panic!("expected schema errors, got {other:?}"),
        }
    }

    #[test]
    fn violations_name_the_option_path() {
        assert_eq!(errors(json!({"service": {"cpus": 0.1}})), ["/service/cpus: 0.1 is less than the minimum 0.5"]);
        assert_eq!(errors(json!({"service": {"cpus": 8}})), ["/service/cpus: 8 is greater than the maximum 4"]);
        assert_eq!(
            errors(json!({"service": {"instances": 1.5}})),
            ["/service/instances: 1.5 is a number, expected integer"]
        );
        assert_eq!(
            errors(json!({"service": {"mode": "slow"}})),
            ["/service/mode: \"slow\" is not one of \"fast\", \"safe\""]
        );
        assert_eq!(
            errors(json!({"service": {"debug": "yes"}})),
            ["/service/debug: \"yes\" is a string, expected boolean"]
        );
        assert_eq!(
            errors(json!({"service": {"name": "Bad Name"}})),
            ["/service/name: \"Bad Name\" does not match the pattern \"^[a-z][a-z0-9-]*$\""]
        );
        assert_eq!(
            errors(json!({"service": {"color": "red"}})),
            ["/service: unknown option `color` (the schema allows no other options here)"]
        );
        assert_eq!(errors(json!({"ports": [80, 0]})), ["/ports/1: 0 is less than the minimum 1"]);
        assert_eq!(errors(json!({"ports": []})), ["/ports: the list has 0 items, fewer than the minimum 1"]);
        assert_eq!(errors(json!({"extra": 3})), ["/extra: 3 is a number, expected null or object"]);
    }

    #[test]
    fn several_violations_are_all_listed() {
        let all = errors(json!({"service": {"cpus": 0, "instances": 0}}));
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all.contains(&"/service/instances: 0 is less than the minimum 1".to_string()), "{all:?}");
    }

    #[test]
    fn required_options_are_checked_after_defaults() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string", "default": "x"}}, "required": ["a"]});
        let user = json!({});
        match resolve(Some(&schema), user.as_object().unwrap()) {
            Err(OptionsError::Invalid(e)) => assert_eq!(e[0].to_string(), "/: required option `a` is missing"),
            other => panic!("{other:?}"),
        }
        let ok = json!({"a": "y"});
        assert_eq!(
            Value::Object(resolve(Some(&schema), ok.as_object().unwrap()).unwrap()),
            json!({"a": "y", "b": "x"})
        );
    }

    #[test]
    fn no_schema_takes_no_options() {
        assert_eq!(resolve(None, &Map::new()).unwrap(), Map::new());
        let user = json!({"a": 1});
        assert_eq!(resolve(None, user.as_object().unwrap()), Err(OptionsError::NotAllowed));
    }

    #[test]
    fn documentation_ids_do_not_break_schemas() {
        let link = "https://example.com/docs.html";
        let schema = json!({"type": "object", "properties": {
            "a": {"id": link, "type": "string"},
            "b": {"id": link, "type": "integer", "maximum": 3},
            "id": {"type": "string", "default": "x"}
        }, "required": ["id"]});
        assert_eq!(validate(&schema, &json!({"a": "s", "b": 2, "id": "y"})), Ok(()));
        let Err(OptionsError::Invalid(e)) = validate(&schema, &json!({"b": 4})) else { panic!() };
        let e: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(e.contains(&"/b: 4 is greater than the maximum 3".to_string()), "{e:?}");
        assert!(e.contains(&"/: required option `id` is missing".to_string()), "{e:?}");
        let Err(OptionsError::Invalid(e)) = validate(&json!({"required": ["a", "b"]}), &json!({})) else { panic!() };
        assert_eq!(e[0].to_string(), "/: required options `a`, `b` are missing");
    }

    #[test]
    fn broken_schemas_and_remote_refs_are_refused() {
        let bad = json!({"type": "object", "properties": {"a": {"type": "no-such-type"}}});
        assert!(matches!(validate(&bad, &json!({"a": 1})), Err(OptionsError::BadSchema(_))));
        let remote = json!({"$ref": "http://example.invalid/schema.json"});
        assert!(matches!(validate(&remote, &json!({})), Err(OptionsError::BadSchema(_))));
    }
}
