//! Marathon groups as sent to `POST /v2/groups` and `PUT /v2/groups/{id}`: a tree of groups
//! with apps, ids relative to their enclosing group.

use serde::Serialize;
use serde_json::Value;

use super::app::AppDefinition;
use super::path::{PathId, matches_raml_pattern};
use super::validation::{Errors, INVALID_JSON, NOT_VALID, Raw, RoleContext, ValidationError, check_app, read_app};

/// A group definition with every id absolute and every app parsed, defaulted and validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDefinition {
    pub id: PathId,
    pub apps: Vec<AppDefinition>,
    pub groups: Vec<GroupDefinition>,
    pub dependencies: Vec<PathId>,
    /// Set for top-level groups (`false` when not given); `None` for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce_role: Option<bool>,
    /// In a request: the version to roll the group back to (then nothing but `id` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// In a request: scale every app of the group by this factor (then nothing but `id` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_by: Option<f64>,
}

impl GroupDefinition {
    /// An empty group.
    pub fn empty(id: PathId) -> GroupDefinition {
        GroupDefinition {
            enforce_role: id.is_top_level().then_some(false),
            id,
            apps: Vec::new(),
            groups: Vec::new(),
            dependencies: Vec::new(),
            version: None,
            scale_by: None,
        }
    }

    /// Whether the request rolls back (`version`) or scales (`scaleBy`) instead of defining.
    pub fn is_rollback_or_scale(&self) -> bool {
        self.version.is_some() || self.scale_by.is_some()
    }

    /// Every app in the tree, outermost groups first.
    pub fn transitive_apps(&self) -> Vec<&AppDefinition> {
        let mut out: Vec<&AppDefinition> = self.apps.iter().collect();
        for g in &self.groups {
            out.extend(g.transitive_apps());
        }
        out
    }

    /// This group and every group below it.
    pub fn transitive_groups(&self) -> Vec<&GroupDefinition> {
        let mut out = vec![self];
        for g in &self.groups {
            out.extend(g.transitive_groups());
        }
        out
    }
}

/// Parses a group: its `id` relative to `base` (absent: `base` itself), nested groups' and
/// apps' ids relative to their enclosing group, dependencies relative to the group that names
/// them. Apps must be direct children of their group, and nested groups direct children of
/// theirs. Errors inside apps and groups carry their position (`/groups(0)/apps(1)/cpus`).
pub fn parse_group(json: &Value, base: &PathId) -> Result<GroupDefinition, ValidationError> {
    parse_group_with(json, base, false)
}

/// [`parse_group`] for a group below a top-level group whose `enforceRole` is
/// `top_level_enforces_role` (for top-level groups and the root the JSON decides).
pub fn parse_group_with(
    json: &Value,
    base: &PathId,
    top_level_enforces_role: bool,
) -> Result<GroupDefinition, ValidationError> {
    let mut errors = Errors::default();
    let raw = read_group(json, "", &mut errors);
    errors.check(INVALID_JSON)?;
    let mut errors = Errors::default();
    let group = check_group(raw, base, None, top_level_enforces_role, "", &mut errors);
    let mut seen: Vec<&PathId> = Vec::new();
    for app in group.transitive_apps() {
        if seen.contains(&&app.id) {
            errors.add("/", format!("App {} is defined more than once", app.id));
        }
        seen.push(&app.id);
    }
    errors.check(NOT_VALID)?;
    Ok(group)
}

struct RawGroup {
    id: Option<String>,
    apps: Vec<Raw>,
    groups: Vec<RawGroup>,
    dependencies: Vec<String>,
    version: Option<String>,
    enforce_role: Option<bool>,
    scale_by: Option<f64>,
    /// Keys given besides `id`, `version` and `scaleBy` (for the rollback/scale rule).
    other_keys: bool,
}

fn read_group(v: &Value, at: &str, e: &mut Errors) -> RawGroup {
    let mut g = RawGroup {
        id: None,
        apps: Vec::new(),
        groups: Vec::new(),
        dependencies: Vec::new(),
        version: None,
        enforce_role: None,
        scale_by: None,
        other_keys: false,
    };
    let Value::Object(o) = v else {
        e.add(if at.is_empty() { "/" } else { at }, "error.expected.jsobject");
        return g;
    };
    let get = |k: &str| o.get(k).filter(|v| !v.is_null());
    let p = |k: &str| format!("{at}/{k}");
    let array = |k: &str, e: &mut Errors| match get(k) {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            e.add(p(k), "error.expected.jsarray");
            Vec::new()
        }
        None => Vec::new(),
    };
    match get("id") {
        Some(Value::String(s)) if s.is_empty() => e.add(p("id"), "error.minLength"),
        Some(Value::String(s)) if !matches_raml_pattern(s) => e.add(p("id"), "error.pattern"),
        Some(Value::String(s)) => g.id = Some(s.clone()),
        Some(_) => e.add(p("id"), "error.expected.jsstring"),
        None => {}
    }
    g.apps =
        array("apps", e).iter().enumerate().map(|(i, a)| read_app(a, &format!("{at}/apps({i})"), e, true)).collect();
    g.groups =
        array("groups", e).iter().enumerate().map(|(i, x)| read_group(x, &format!("{at}/groups({i})"), e)).collect();
    for (i, d) in array("dependencies", e).iter().enumerate() {
        let dp = format!("{at}/dependencies({i})");
        match d {
            Value::String(s) if s.is_empty() => e.add(dp, "error.minLength"),
            Value::String(s) if !matches_raml_pattern(s) => e.add(dp, "error.pattern"),
            Value::String(s) => {
                if !g.dependencies.contains(s) {
                    g.dependencies.push(s.clone());
                }
            }
            _ => e.add(dp, "error.expected.jsstring"),
        }
    }
    match get("version") {
        Some(Value::String(s)) => g.version = Some(s.clone()),
        Some(_) => e.add(p("version"), "error.expected.jsstring"),
        None => {}
    }
    match get("enforceRole") {
        Some(Value::Bool(b)) => g.enforce_role = Some(*b),
        Some(_) => e.add(p("enforceRole"), "error.expected.jsboolean"),
        None => {}
    }
    match get("scaleBy") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x >= 0.0 => g.scale_by = Some(x),
            _ => e.add(p("scaleBy"), "error.min"),
        },
        Some(_) => e.add(p("scaleBy"), "error.expected.jsnumber"),
        None => {}
    }
    g.other_keys = ["apps", "groups", "dependencies", "enforceRole"].iter().any(|k| get(k).is_some());
    g
}

fn check_group(
    raw: RawGroup,
    base: &PathId,
    parent: Option<&PathId>,
    inherited_enforce: bool,
    at: &str,
    e: &mut Errors,
) -> GroupDefinition {
    let p = |k: &str| format!("{at}/{k}");
    let here = if at.is_empty() { "/".to_string() } else { at.to_string() };
    let id = match &raw.id {
        Some(s) => PathId::parse_lenient(s, base),
        None => base.clone(),
    };
    for v in id.violations() {
        e.add(p("id"), v);
    }
    if let Some(parent) = parent
        && !id.is_child_of(parent)
    {
        e.add(p("id"), format!("Identifier is not child of '{parent}'"));
    }
    if raw.other_keys {
        if raw.version.is_some() {
            e.add(p("version"), "not allowed in conjunction with other properties.");
        }
        if raw.scale_by.is_some() {
            e.add(p("scaleBy"), "not allowed in conjunction with other properties.");
        }
    }
    if raw.version.is_some() && raw.scale_by.is_some() {
        e.add(p("version"), "not allowed in conjunction with other properties.");
    }
    if !id.is_top_level() && raw.enforce_role == Some(true) {
        e.add(p("enforceRole"), format!("enforceRole can only be set for top-level groups, and {id} is not top-level"));
    }
    let enforce = if id.is_top_level() { raw.enforce_role.unwrap_or(false) } else { inherited_enforce };

    let mut apps = Vec::new();
    for (i, app) in raw.apps.into_iter().enumerate() {
        let ap = format!("{at}/apps({i})");
        let roles = RoleContext { enforce_role: enforce, existing_role: None };
        if let Some(app) = check_app(app, &id, &roles, &ap, e) {
            if !app.id.is_child_of(&id) {
                e.add(format!("{ap}/id"), format!("Identifier is not child of '{id}'"));
            }
            apps.push(app);
        }
    }
    let groups: Vec<GroupDefinition> = raw
        .groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| check_group(g, &id, Some(&id), enforce, &format!("{at}/groups({i})"), e))
        .collect();
    if groups.iter().any(|g| apps.iter().any(|a| a.id == g.id)) {
        e.add(&here, "Groups and Applications may not have the same identifier.");
    }
    let dependencies: Vec<PathId> = raw.dependencies.iter().map(|d| PathId::parse_lenient(d, &id)).collect();
    for (i, d) in dependencies.iter().enumerate() {
        for v in d.violations() {
            e.add(format!("{at}/dependencies({i})"), v);
        }
    }
    GroupDefinition {
        enforce_role: id.is_top_level().then_some(enforce),
        id,
        apps,
        groups,
        dependencies,
        version: raw.version,
        scale_by: raw.scale_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    #[test]
    fn nested_relative_ids_resolve_against_their_group() {
        let g = parse_group(
            &json!({
                "id": "prod",
                "dependencies": ["../db"],
                "apps": [{"id": "web", "cmd": "sleep 1", "dependencies": ["api"]}],
                "groups": [{"id": "back", "apps": [{"id": "/prod/back/api", "cmd": "sleep 1"}, {"id": "worker", "args": ["w"]}]}]
            }),
            &PathId::root(),
        )
        .unwrap();
        assert_eq!(g.id, id("/prod"));
        assert_eq!(g.dependencies, vec![id("/db")]);
        assert_eq!(g.apps[0].id, id("/prod/web"));
        assert_eq!(g.apps[0].dependencies, vec![id("/prod/api")]);
        assert_eq!(g.groups[0].id, id("/prod/back"));
        let ids: Vec<String> = g.transitive_apps().iter().map(|a| a.id.to_string()).collect();
        assert_eq!(ids, vec!["/prod/web", "/prod/back/api", "/prod/back/worker"]);
        assert_eq!(g.enforce_role, Some(false));
        assert_eq!(g.groups[0].enforce_role, None);
        assert_eq!(g.transitive_groups().len(), 2);
        // Marathon's RAML pattern for ids accepts `..` but not `.` segments.
        let err = parse_group(&json!({"id": "/g", "apps": [{"id": "./a", "cmd": "ab"}]}), &PathId::root()).unwrap_err();
        assert_eq!(err.errors_at("/apps(0)/id"), vec!["error.pattern"]);
    }

    #[test]
    fn apps_must_be_children_of_their_group() {
        let err = parse_group(&json!({"id": "/g", "apps": [{"id": "/other/app", "cmd": "sleep 1"}]}), &PathId::root())
            .unwrap_err();
        assert_eq!(err.message, NOT_VALID);
        assert_eq!(err.errors_at("/apps(0)/id"), vec!["Identifier is not child of '/g'"]);

        let err = parse_group(&json!({"id": "/g", "groups": [{"id": "/h/x"}]}), &PathId::root()).unwrap_err();
        assert_eq!(err.errors_at("/groups(0)/id"), vec!["Identifier is not child of '/g'"]);
    }

    #[test]
    fn app_errors_carry_their_position() {
        let err = parse_group(
            &json!({"id": "/g", "groups": [{"id": "h", "apps": [{"id": "a", "cmd": "sleep 1", "cpus": "x"}]}]}),
            &PathId::root(),
        )
        .unwrap_err();
        assert_eq!(err.message, INVALID_JSON);
        assert_eq!(err.errors_at("/groups(0)/apps(0)/cpus"), vec!["error.expected.jsnumber"]);

        let err = parse_group(&json!({"id": "/g", "apps": [{"id": "a"}]}), &PathId::root()).unwrap_err();
        assert_eq!(err.message, NOT_VALID);
        assert_eq!(
            err.errors_at("/apps(0)"),
            vec!["AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]
        );
    }

    #[test]
    fn enforce_role_only_on_top_level_groups_and_it_sets_the_role() {
        let err = parse_group(
            &json!({"id": "/prod", "enforceRole": true, "groups": [{"id": "second", "enforceRole": true}]}),
            &PathId::root(),
        )
        .unwrap_err();
        assert_eq!(
            err.details,
            vec![super::super::validation::Violation {
                path: "/groups(0)/enforceRole".into(),
                errors: vec![
                    "enforceRole can only be set for top-level groups, and /prod/second is not top-level".into()
                ],
            }]
        );

        let g = parse_group(
            &json!({"id": "/prod", "enforceRole": true, "groups": [{"id": "db", "apps": [{"id": "pg", "cmd": "pg"}]}]}),
            &PathId::root(),
        )
        .unwrap();
        assert_eq!(g.enforce_role, Some(true));
        assert_eq!(g.groups[0].apps[0].role, "prod");

        let g = parse_group(&json!({"id": "/dev", "apps": [{"id": "a", "cmd": "ab"}]}), &PathId::root()).unwrap();
        assert_eq!(g.apps[0].role, "slave_public");
        let err = parse_group(
            &json!({"id": "/dev", "enforceRole": true, "apps": [{"id": "a", "cmd": "ab", "role": "slave_public"}]}),
            &PathId::root(),
        )
        .unwrap_err();
        assert_eq!(err.errors_at("/apps(0)/role"), vec!["got slave_public, expected one of: [dev]"]);
    }

    #[test]
    fn duplicates_and_clashes() {
        let err = parse_group(
            &json!({"id": "/g", "apps": [{"id": "a", "cmd": "ab"}, {"id": "/g/a", "cmd": "cd"}]}),
            &PathId::root(),
        )
        .unwrap_err();
        assert_eq!(err.errors_at("/"), vec!["App /g/a is defined more than once"]);
        let err = parse_group(
            &json!({"id": "/g", "apps": [{"id": "a", "cmd": "ab"}], "groups": [{"id": "a"}]}),
            &PathId::root(),
        )
        .unwrap_err();
        assert_eq!(err.errors_at("/"), vec!["Groups and Applications may not have the same identifier."]);
    }

    #[test]
    fn rollback_and_scale_stand_alone() {
        let g = parse_group(&json!({"id": "/g", "version": "2015-09-17T10:38:20.875Z"}), &PathId::root()).unwrap();
        assert!(g.is_rollback_or_scale());
        let g = parse_group(&json!({"id": "/g", "scaleBy": 2}), &PathId::root()).unwrap();
        assert_eq!(g.scale_by, Some(2.0));
        let err = parse_group(&json!({"id": "/g", "scaleBy": 2, "apps": []}), &PathId::root()).unwrap_err();
        assert_eq!(err.errors_at("/scaleBy"), vec!["not allowed in conjunction with other properties."]);
    }

    #[test]
    fn the_id_defaults_to_the_base_and_type_errors_are_reported() {
        let g = parse_group(&json!({"apps": [{"id": "a", "cmd": "ab"}]}), &id("/base")).unwrap();
        assert_eq!(g.id, id("/base"));
        assert_eq!(g.apps[0].id, id("/base/a"));
        let err = parse_group(&json!({"id": 3, "apps": {}, "enforceRole": "yes"}), &PathId::root()).unwrap_err();
        assert_eq!(err.errors_at("/id"), vec!["error.expected.jsstring"]);
        assert_eq!(err.errors_at("/apps"), vec!["error.expected.jsarray"]);
        assert_eq!(err.errors_at("/enforceRole"), vec!["error.expected.jsboolean"]);
        let err = parse_group(&json!({"id": "/tasks"}), &PathId::root()).unwrap_err();
        assert_eq!(
            err.errors_at("/id"),
            vec!["must not end with any of the following reserved keywords: restart, tasks, versions, ., .."]
        );
    }

    #[test]
    fn serialises_like_marathon() {
        let g = parse_group(&json!({"id": "/g", "apps": [{"id": "a", "cmd": "ab"}]}), &PathId::root()).unwrap();
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["id"], "/g");
        assert_eq!(v["apps"][0]["id"], "/g/a");
        assert_eq!(v["groups"], json!([]));
        assert_eq!(v["dependencies"], json!([]));
        assert_eq!(v["enforceRole"], false);
        assert!(v.get("version").is_none());
    }
}
