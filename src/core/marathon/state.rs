//! Marathon's replicated state: apps (with their versions), explicit groups, the versions of
//! the whole tree (for `GET /v2/groups/{id}/versions` and group rollbacks), and the
//! deployments in progress. Changed only through [`MarathonState::deploy`] and the deployment
//! commands, from `State::apply`.
//!
//! Groups are explicit records (created by the groups API, with their dependencies and
//! `enforceRole`) plus the implicit groups every app id implies (`/prod` for `/prod/web`), as
//! a [`Snapshot`] shows them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::app::{AppDefinition, VersionInfo};
use super::deployment::{self, Graph, PlannedApp, Step};
use super::path::PathId;

/// The service ports Marathon hands out for port definitions with port 0 (its
/// `--local_port_min`/`--local_port_max` defaults).
pub const SERVICE_PORTS: std::ops::RangeInclusive<u32> = 10_000..=20_000;

/// App versions kept per app, and versions of the whole tree kept (Marathon's
/// `--max_versions` defaults to a similar bound).
pub const VERSIONS_KEPT: usize = 50;

/// Marathon's message for a dependency cycle (`RootGroup.noCyclicDependencies`).
pub const CYCLIC_DEPENDENCIES: &str = "Dependency graph has cyclic dependencies.";

/// Marathon's message for an app and a group with one id.
pub const APP_GROUP_CLASH: &str = "Groups and Applications may not have the same identifier.";

/// The framework id of the built-in Marathon.
pub const FRAMEWORK_ID: &str = "marathon";

/// An app and its earlier definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The current definition (its `version` is set).
    pub app: AppDefinition,
    /// Earlier and current definitions by version, oldest first, at most [`VERSIONS_KEPT`].
    pub versions: BTreeMap<String, AppDefinition>,
}

/// A group that exists on its own (Marathon keeps empty groups and group dependencies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: PathId,
    /// Apps and groups every app of this group (at any depth) depends on.
    #[serde(default)]
    pub dependencies: Vec<PathId>,
    /// Set for top-level groups only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_role: Option<bool>,
    pub version: String,
    /// Only in a command: remove this group and everything under it, apps included (the
    /// root: every group and app). Never stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
}

impl GroupRecord {
    /// An empty group as Marathon creates missing parents (`enforceRole: false` when top-level).
    pub fn new(id: PathId, version: &str) -> GroupRecord {
        GroupRecord {
            enforce_role: id.is_top_level().then_some(false),
            id,
            dependencies: Vec::new(),
            version: version.to_string(),
            remove: false,
        }
    }

    /// The command entry that removes group `id` with everything under it.
    pub fn removal(id: PathId, version: &str) -> GroupRecord {
        GroupRecord { remove: true, enforce_role: None, ..GroupRecord::new(id, version) }
    }
}

/// The whole tree at one version: the explicit groups and the version of every app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootVersion {
    pub groups: BTreeMap<String, GroupRecord>,
    /// App id → the app's version at that time.
    pub apps: BTreeMap<String, String>,
}

/// Apps and groups of a tree or subtree, now or at a version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Explicit groups (implicit ones follow from app ids, see [`Snapshot::group_ids`]).
    pub groups: BTreeMap<String, GroupRecord>,
    pub apps: BTreeMap<String, AppDefinition>,
}

/// Whether `id` is strictly below group `group` (everything but the root is below the root).
pub fn is_under(id: &str, group: &str) -> bool {
    if group == "/" {
        return id != "/";
    }
    id.len() > group.len() && id.starts_with(group) && id.as_bytes()[group.len()] == b'/'
}

/// The groups above `id`, innermost first, the root included.
fn ancestors(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = PathId::parse_lenient(id, &PathId::root());
    while !current.is_root() {
        current = current.parent();
        out.push(current.to_string());
    }
    out
}

impl Snapshot {
    /// Every group: the root, the explicit groups, and every group above an app or a group.
    pub fn group_ids(&self) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = BTreeSet::from(["/".to_string()]);
        for id in self.groups.keys() {
            ids.insert(id.clone());
            ids.extend(ancestors(id));
        }
        for id in self.apps.keys() {
            ids.extend(ancestors(id));
        }
        ids
    }

    pub fn has_group(&self, id: &str) -> bool {
        id == "/"
            || self.groups.contains_key(id)
            || self.groups.keys().any(|g| is_under(g, id))
            || self.apps.keys().any(|a| is_under(a, id))
    }

    /// Group `id` and everything under it.
    pub fn subtree(&self, id: &str) -> Snapshot {
        Snapshot {
            groups: self
                .groups
                .iter()
                .filter(|(g, _)| *g == id || is_under(g, id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            apps: self.apps.iter().filter(|(a, _)| is_under(a, id)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// The dependency graph of the apps (see [`dependency_graph`]).
    pub fn graph(&self) -> Graph {
        dependency_graph(&self.apps, &self.groups)
    }
}

/// Dependencies between apps as Marathon derives them (`RootGroup.applicationDependencies`):
/// an app depends on the apps it names and on every app under a group it names; every app
/// under a group (at any depth) depends on every app under the groups its group names (and on
/// an app it names, which Marathon ignores).
pub fn dependency_graph(apps: &BTreeMap<String, AppDefinition>, groups: &BTreeMap<String, GroupRecord>) -> Graph {
    let resolve = |dep: &str| -> Vec<String> {
        if apps.contains_key(dep) {
            return vec![dep.to_string()];
        }
        apps.keys().filter(|a| is_under(a, dep)).cloned().collect()
    };
    let mut graph: Graph = apps.keys().map(|id| (id.clone(), BTreeSet::new())).collect();
    for (id, app) in apps {
        let edges = graph.get_mut(id).expect("every app has an entry");
        for dep in &app.dependencies {
            edges.extend(resolve(dep.as_str()));
        }
    }
    for group in groups.values().filter(|g| !g.dependencies.is_empty()) {
        let targets: BTreeSet<String> = group.dependencies.iter().flat_map(|d| resolve(d.as_str())).collect();
        for (id, edges) in graph.iter_mut() {
            if is_under(id, group.id.as_str()) {
                edges.extend(targets.iter().cloned());
            }
        }
    }
    graph
}

/// Sets `app`'s version to `version` as Marathon's `GroupVersioningUtil` does:
/// `versionInfo.lastScalingAt` is the new version, `lastConfigChangeAt` too unless only the
/// instance count changed since `previous`.
pub fn stamp(app: &mut AppDefinition, version: &str, previous: Option<&AppDefinition>) {
    let config_changed = previous.is_none_or(|p| p.needs_restart(app));
    let last_config = match previous.and_then(|p| p.version_info.as_ref()) {
        Some(info) if !config_changed => info.last_config_change_at.clone(),
        _ => version.to_string(),
    };
    app.version = Some(version.to_string());
    app.version_info = Some(VersionInfo { last_scaling_at: version.to_string(), last_config_change_at: last_config });
}

/// `app` with the service ports `previous` had at the same positions where `app` asks for
/// port 0 (what the state would assign anyway), so that an unchanged definition compares equal.
fn with_kept_service_ports(app: &AppDefinition, previous: &AppDefinition) -> AppDefinition {
    let mut app = app.clone();
    if !app.require_ports {
        for (definition, before) in app.port_definitions.iter_mut().zip(&previous.port_definitions) {
            if definition.port == 0 {
                definition.port = before.port;
            }
        }
    }
    app
}

/// Whether two definitions are the same (version fields aside).
pub fn same_app(a: &AppDefinition, b: &AppDefinition) -> bool {
    !a.needs_restart(b) && a.instances == b.instances && a.id == b.id
}

/// A deployment in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    /// The version of the change (ISO-8601), also the version of the apps it created or changed.
    pub version: String,
    pub started_at_ms: u64,
    pub steps: Vec<Step>,
    /// Index of the step being carried out (0-based; Marathon's API counts from 1).
    pub current_step: usize,
    /// Every app the plan touches.
    pub affected_apps: Vec<String>,
    /// The definitions before the change (None: the app did not exist), for rollback.
    pub original: BTreeMap<String, Option<AppDefinition>>,
    /// The definitions the change leads to (None: the app is removed).
    pub target: BTreeMap<String, Option<AppDefinition>>,
}

impl Deployment {
    pub fn affects(&self, app_id: &str) -> bool {
        self.affected_apps.iter().any(|a| a == app_id)
    }

    /// The actions of the current step.
    pub fn current_actions(&self) -> &[deployment::Action] {
        self.steps.get(self.current_step).map(|s| s.actions.as_slice()).unwrap_or(&[])
    }
}

/// One requested change to an app: the new definition (its version already set), or removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppChange {
    pub id: String,
    pub app: Option<Box<AppDefinition>>,
    /// Replace every task even if the definition did not change (`/v2/apps/{id}/restart`).
    #[serde(default)]
    pub force_restart: bool,
}

/// What a deploy command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    Started {
        deployment_id: String,
        version: String,
    },
    /// Apps are locked by these deployments (and `force` was not given).
    Conflict {
        deployments: Vec<String>,
    },
    Invalid {
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarathonState {
    pub apps: BTreeMap<String, AppRecord>,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupRecord>,
    #[serde(default)]
    pub deployments: BTreeMap<String, Deployment>,
    /// The tree after each change, by version, at most [`VERSIONS_KEPT`].
    #[serde(default)]
    pub root_versions: BTreeMap<String, RootVersion>,
    /// Definitions of removed apps that a kept root version still names: app id → version →
    /// definition.
    #[serde(default)]
    pub retired_apps: BTreeMap<String, BTreeMap<String, AppDefinition>>,
}

/// A change checked and planned, not yet applied.
struct Prepared {
    /// The requested changes plus the removal of apps under removed groups.
    changes: Vec<AppChange>,
    original: BTreeMap<String, AppDefinition>,
    steps: Vec<Step>,
    affected: Vec<String>,
}

impl PlannedApp for AppDefinition {
    fn app_id(&self) -> &str {
        self.id.as_str()
    }
    fn instance_count(&self) -> u32 {
        self.instances
    }
    fn depends_on(&self) -> Vec<String> {
        self.dependencies.iter().map(|d| d.to_string()).collect()
    }
    fn restart_needed(&self, to: &Self) -> bool {
        self.needs_restart(to)
    }
    fn same_definition(&self, to: &Self) -> bool {
        !self.needs_restart(to) && self.instances == to.instances
    }
}

impl MarathonState {
    /// Deployments that touch `app_id`.
    pub fn deployments_of(&self, app_id: &str) -> Vec<&Deployment> {
        self.deployments.values().filter(|d| d.affects(app_id)).collect()
    }

    /// The tree now, or the subtree under group `id` (`/`: everything).
    pub fn subtree(&self, id: &str) -> Snapshot {
        Snapshot {
            groups: self
                .groups
                .iter()
                .filter(|(g, _)| *g == id || is_under(g, id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            apps: self.apps.iter().filter(|(a, _)| is_under(a, id)).map(|(k, r)| (k.clone(), r.app.clone())).collect(),
        }
    }

    /// Whether group `id` exists (explicitly, or above an app or group; the root always does).
    pub fn group_exists(&self, id: &str) -> bool {
        id == "/"
            || self.groups.contains_key(id)
            || self.groups.keys().any(|g| is_under(g, id))
            || self.apps.keys().any(|a| is_under(a, id))
    }

    /// The version groups report: the latest version of the tree (Marathon gives every group
    /// the root's version), or the record's for a state without tree versions.
    pub fn group_version(&self, id: &str) -> Option<String> {
        self.root_versions.keys().next_back().cloned().or_else(|| self.groups.get(id).map(|g| g.version.clone()))
    }

    /// The tree at `version`, if that version is kept with every app definition it names
    /// (always, as app versions are kept at least as long as tree versions).
    pub fn at_version(&self, version: &str) -> Option<Snapshot> {
        let root = self.root_versions.get(version)?;
        let apps = root
            .apps
            .iter()
            .map(|(id, v)| {
                let app = self
                    .apps
                    .get(id)
                    .and_then(|r| r.versions.get(v))
                    .or_else(|| self.retired_apps.get(id).and_then(|versions| versions.get(v)))?;
                Some((id.clone(), app.clone()))
            })
            .collect::<Option<BTreeMap<String, AppDefinition>>>()?;
        Some(Snapshot { groups: root.groups.clone(), apps })
    }

    /// The kept versions of the tree in which group `id` exists, newest first (Marathon's
    /// `GET /v2/groups/{id}/versions`).
    pub fn versions_of_group(&self, id: &str) -> Vec<String> {
        self.root_versions
            .iter()
            .rev()
            .filter(|(_, root)| {
                id == "/"
                    || root.groups.contains_key(id)
                    || root.groups.keys().any(|g| is_under(g, id))
                    || root.apps.keys().any(|a| is_under(a, id))
            })
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// The changes that make group `id` and everything under it equal to `target` (whose
    /// apps and groups must be `id`, or under it), with `version` for every app that changes
    /// and every group written. Apps elsewhere stay as they are; unchanged apps keep their
    /// version.
    pub fn replace_subtree(&self, id: &str, target: &Snapshot, version: &str) -> (Vec<AppChange>, Vec<GroupRecord>) {
        let current = self.subtree(id);
        let mut changes = Vec::new();
        for app_id in current.apps.keys().filter(|a| !target.apps.contains_key(*a)) {
            changes.push(AppChange { id: app_id.clone(), app: None, force_restart: false });
        }
        for (app_id, app) in &target.apps {
            let previous = self.apps.get(app_id).map(|r| &r.app);
            let app = match previous {
                Some(p) => with_kept_service_ports(app, p),
                None => app.clone(),
            };
            if previous.is_some_and(|p| same_app(p, &app)) {
                continue;
            }
            let mut app = app;
            stamp(&mut app, version, previous);
            changes.push(AppChange { id: app_id.clone(), app: Some(Box::new(app)), force_restart: false });
        }
        let keep = target.group_ids();
        let mut groups: Vec<GroupRecord> = current
            .groups
            .keys()
            .filter(|g| !keep.contains(*g))
            .map(|g| GroupRecord::removal(PathId::parse_lenient(g, &PathId::root()), version))
            .collect();
        groups.extend(target.groups.values().filter(|g| !g.id.is_root()).map(|g| GroupRecord {
            version: version.to_string(),
            remove: false,
            ..g.clone()
        }));
        (changes, groups)
    }

    /// The steps a change would take, without applying it (`?dryRun=true`), or why it is
    /// refused.
    pub fn preview(&self, changes: &[AppChange], groups: &[GroupRecord]) -> Result<Vec<Step>, String> {
        self.prepare(changes, groups).map(|p| p.steps)
    }

    /// The groups after a change: removed subtrees gone, given records written, their
    /// missing parents created (as Marathon's `putGroup` does), and empty groups that an app
    /// takes the id of dropped (as Marathon's `updateApp` does).
    fn groups_after(
        &self,
        groups: &[GroupRecord],
        apps: &BTreeMap<String, AppDefinition>,
    ) -> BTreeMap<String, GroupRecord> {
        let mut out = self.groups.clone();
        for removed in groups.iter().filter(|g| g.remove) {
            let id = removed.id.as_str();
            out.retain(|g, _| g != id && !is_under(g, id));
        }
        for group in groups.iter().filter(|g| !g.remove && !g.id.is_root()) {
            for parent in ancestors(group.id.as_str()) {
                if parent != "/" && !out.contains_key(&parent) {
                    out.insert(
                        parent.clone(),
                        GroupRecord::new(PathId::parse_lenient(&parent, &PathId::root()), &group.version),
                    );
                }
            }
            out.insert(group.id.to_string(), GroupRecord { remove: false, ..group.clone() });
        }
        // An empty group gives way to an app with its id, unless this change writes the group.
        out.retain(|id, _| {
            !apps.contains_key(id)
                || out_has_content(id, apps)
                || groups.iter().any(|g| !g.remove && g.id.as_str() == id)
        });
        out
    }

    /// Gives every port definition with port 0 a cluster-wide unique service port from
    /// [`SERVICE_PORTS`], as Marathon does; an app keeps the service ports it had at the same
    /// positions. Load balancers and VIPs name services by these ports.
    fn assign_service_ports(&self, changes: &mut [AppChange]) {
        let changing: std::collections::BTreeSet<&str> = changes.iter().map(|c| c.id.as_str()).collect();
        let mut taken: std::collections::BTreeSet<u32> = self
            .apps
            .iter()
            .filter(|(id, _)| !changing.contains(id.as_str()))
            .flat_map(|(_, r)| r.app.port_definitions.iter().map(|p| p.port))
            .filter(|p| *p != 0)
            .collect();
        for change in changes.iter() {
            if let Some(app) = &change.app {
                taken.extend(app.port_definitions.iter().map(|p| p.port).filter(|p| *p != 0));
            }
        }
        for change in changes.iter_mut() {
            let previous: Vec<u32> = self
                .apps
                .get(&change.id)
                .map(|r| r.app.port_definitions.iter().map(|p| p.port).collect())
                .unwrap_or_default();
            let Some(app) = change.app.as_mut() else { continue };
            if app.require_ports {
                continue;
            }
            for (index, definition) in app.port_definitions.iter_mut().enumerate() {
                if definition.port != 0 {
                    continue;
                }
                let kept = previous.get(index).copied().filter(|p| *p != 0 && !taken.contains(p));
                let port = kept.or_else(|| SERVICE_PORTS.clone().find(|p| !taken.contains(p)));
                if let Some(port) = port {
                    definition.port = port;
                    taken.insert(port);
                }
            }
        }
    }

    fn prepare(&self, changes: &[AppChange], groups: &[GroupRecord]) -> Result<Prepared, String> {
        let mut changes = changes.to_vec();
        for change in &changes {
            if let Some(app) = &change.app
                && app.id.as_str() != change.id
            {
                return Err(format!("app {} changed under id {}", app.id, change.id));
            }
            if change.app.is_none() && !self.apps.contains_key(&change.id) {
                return Err(format!("App '{}' does not exist", change.id));
            }
        }
        // Removing a group removes every app under it, also one created since the request
        // was prepared.
        for removed in groups.iter().filter(|g| g.remove) {
            let extra: Vec<AppChange> = self
                .apps
                .keys()
                .filter(|a| is_under(a, removed.id.as_str()) && !changes.iter().any(|c| &c.id == *a))
                .map(|a| AppChange { id: a.clone(), app: None, force_restart: false })
                .collect();
            changes.extend(extra);
        }
        self.assign_service_ports(&mut changes);
        let mut original: BTreeMap<String, AppDefinition> = BTreeMap::new();
        let mut target: BTreeMap<String, AppDefinition> = BTreeMap::new();
        for change in &changes {
            if let Some(record) = self.apps.get(&change.id) {
                original.insert(change.id.clone(), record.app.clone());
            }
            if let Some(app) = &change.app {
                target.insert(change.id.clone(), (**app).clone());
            }
        }
        let before: BTreeMap<String, AppDefinition> =
            self.apps.iter().map(|(id, r)| (id.clone(), r.app.clone())).collect();
        // Dependencies are checked against every app the cluster will have.
        let mut all = before.clone();
        for change in &changes {
            match &change.app {
                Some(app) => all.insert(change.id.clone(), (**app).clone()),
                None => all.remove(&change.id),
            };
        }
        let groups_after = self.groups_after(groups, &all);
        let after = Snapshot { groups: groups_after, apps: all };
        let group_ids = after.group_ids();
        if let Some(clash) = after.apps.keys().find(|a| group_ids.contains(*a)) {
            return Err(format!("{APP_GROUP_CLASH} ({clash})"));
        }
        let after_graph = after.graph();
        if deployment::find_cycle_in(&after_graph).is_some() {
            return Err(CYCLIC_DEPENDENCIES.to_string());
        }
        for app in target.values() {
            for dep in &app.dependencies {
                let dep = dep.to_string();
                if !after.apps.contains_key(&dep) && !group_ids.contains(&dep) {
                    return Err(format!("app {} depends on {dep}, which does not exist", app.id));
                }
            }
        }
        let restart: BTreeSet<String> =
            changes.iter().filter(|c| c.force_restart && c.app.is_some()).map(|c| c.id.clone()).collect();
        let before_graph = dependency_graph(&before, &self.groups);
        let steps = deployment::plan_ordered(&original, &target, &restart, &before_graph, &after_graph);
        let affected: Vec<String> = {
            let ids: BTreeSet<String> = steps.iter().flat_map(|s| s.actions.iter().map(|a| a.app.clone())).collect();
            ids.into_iter().collect()
        };
        Ok(Prepared { changes, original, steps, affected })
    }

    /// Applies a change to some apps (and groups) as one deployment. With `force`,
    /// deployments that touch the same apps are cancelled (their apps keep whatever
    /// definition they have now); otherwise they make the change conflict and nothing
    /// changes. Group records in `groups` are written (their missing parents created), or,
    /// with `remove`, removed with everything under them. Every change records a version of
    /// the whole tree.
    pub fn deploy(
        &mut self,
        deployment_id: &str,
        version: &str,
        at_ms: u64,
        changes: &[AppChange],
        groups: &[GroupRecord],
        force: bool,
    ) -> DeployOutcome {
        if self.deployments.contains_key(deployment_id) {
            return DeployOutcome::Invalid { message: format!("deployment id {deployment_id} is already in use") };
        }
        let Prepared { changes, original, steps, affected } = match self.prepare(changes, groups) {
            Ok(p) => p,
            Err(message) => return DeployOutcome::Invalid { message },
        };
        let conflicting: Vec<String> =
            self.deployments.values().filter(|d| affected.iter().any(|a| d.affects(a))).map(|d| d.id.clone()).collect();
        if !conflicting.is_empty() {
            if !force {
                return DeployOutcome::Conflict { deployments: conflicting };
            }
            for id in &conflicting {
                self.deployments.remove(id);
            }
        }

        for change in &changes {
            match &change.app {
                Some(app) => {
                    let mut app = (**app).clone();
                    let app_version = app.version.get_or_insert_with(|| version.to_string()).clone();
                    let record = self
                        .apps
                        .entry(change.id.clone())
                        .or_insert_with(|| AppRecord { app: app.clone(), versions: BTreeMap::new() });
                    record.app = app.clone();
                    record.versions.insert(app_version, app);
                    while record.versions.len() > VERSIONS_KEPT {
                        let oldest = record.versions.keys().next().cloned().expect("non-empty");
                        record.versions.remove(&oldest);
                    }
                }
                None => {
                    if let Some(record) = self.apps.remove(&change.id) {
                        self.retired_apps.entry(change.id.clone()).or_default().extend(record.versions);
                    }
                }
            }
        }
        let apps: BTreeMap<String, AppDefinition> =
            self.apps.iter().map(|(id, r)| (id.clone(), r.app.clone())).collect();
        self.groups = self.groups_after(groups, &apps);
        self.record_root_version(version);
        if !steps.is_empty() {
            self.deployments.insert(
                deployment_id.to_string(),
                Deployment {
                    id: deployment_id.to_string(),
                    version: version.to_string(),
                    started_at_ms: at_ms,
                    steps,
                    current_step: 0,
                    affected_apps: affected,
                    original: changes.iter().map(|c| (c.id.clone(), original.get(&c.id).cloned())).collect(),
                    target: changes.iter().map(|c| (c.id.clone(), c.app.as_deref().cloned())).collect(),
                },
            );
        }
        DeployOutcome::Started { deployment_id: deployment_id.to_string(), version: version.to_string() }
    }

    /// Keeps the tree as it is now as `version`, forgets the oldest versions beyond
    /// [`VERSIONS_KEPT`] and the definitions of removed apps no kept version names.
    fn record_root_version(&mut self, version: &str) {
        let root = RootVersion {
            groups: self.groups.clone(),
            apps: self
                .apps
                .iter()
                .map(|(id, r)| (id.clone(), r.app.version.clone().unwrap_or_else(|| version.to_string())))
                .collect(),
        };
        self.root_versions.insert(version.to_string(), root);
        while self.root_versions.len() > VERSIONS_KEPT {
            let oldest = self.root_versions.keys().next().cloned().expect("non-empty");
            self.root_versions.remove(&oldest);
        }
        let roots = &self.root_versions;
        for (id, versions) in self.retired_apps.iter_mut() {
            versions.retain(|v, _| roots.values().any(|r| r.apps.get(id) == Some(v)));
        }
        self.retired_apps.retain(|_, versions| !versions.is_empty());
    }

    /// Marks step `step` of a deployment done; the deployment ends after its last step.
    /// Returns false when the deployment is gone or already past that step (a retry).
    pub fn step_done(&mut self, deployment_id: &str, step: usize) -> bool {
        let Some(d) = self.deployments.get_mut(deployment_id) else { return false };
        if d.current_step != step {
            return false;
        }
        d.current_step += 1;
        if d.current_step >= d.steps.len() {
            self.deployments.remove(deployment_id);
        }
        true
    }

    /// Removes groups by id (and their subgroups); apps are removed through `deploy`.
    pub fn remove_groups(&mut self, ids: &[String]) {
        self.groups.retain(|gid, _| !ids.iter().any(|id| gid == id || is_under(gid, id)));
    }
}

/// Whether group `id` holds an app (an empty group gives way to an app with its id).
fn out_has_content(id: &str, apps: &BTreeMap<String, AppDefinition>) -> bool {
    apps.keys().any(|a| is_under(a, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::marathon::group::parse_group;
    use crate::core::marathon::validation::parse_app;
    use serde_json::{Value, json};

    fn app(v: Value) -> AppDefinition {
        parse_app(&v, &PathId::root()).unwrap()
    }

    fn id(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    fn put(state: &mut MarathonState, n: u64, v: Value) -> AppDefinition {
        let a = app(v);
        let change = AppChange { id: a.id.to_string(), app: Some(Box::new(a.clone())), force_restart: true };
        let outcome = state.deploy(&format!("d{n}"), &format!("v{n}"), n, &[change], &[], true);
        assert!(matches!(outcome, DeployOutcome::Started { .. }), "{outcome:?}");
        state.apps[a.id.as_str()].app.clone()
    }

    fn ports(a: &AppDefinition) -> Vec<u32> {
        a.port_definitions.iter().map(|p| p.port).collect()
    }

    #[test]
    fn port_zero_gets_a_unique_service_port_that_the_app_keeps() {
        let mut state = MarathonState::default();
        let a =
            put(&mut state, 1, json!({"id": "/a", "cmd": "sleep 1", "portDefinitions": [{"port": 0}, {"port": 0}]}));
        assert_eq!(ports(&a), [10_000, 10_001]);
        let b = put(
            &mut state,
            2,
            json!({"id": "/b", "cmd": "sleep 1", "portDefinitions": [{"port": 0}, {"port": 10_002}]}),
        );
        assert_eq!(ports(&b), [10_003, 10_002], "fixed service ports are taken as given");
        let again =
            put(&mut state, 3, json!({"id": "/a", "cmd": "sleep 2", "portDefinitions": [{"port": 0}, {"port": 0}]}));
        assert_eq!(ports(&again), [10_000, 10_001], "an update keeps the app's service ports");
        let host = put(
            &mut state,
            4,
            json!({"id": "/h", "cmd": "sleep 1", "requirePorts": true, "portDefinitions": [{"port": 31_000}]}),
        );
        assert_eq!(ports(&host), [31_000]);
    }

    fn group_snapshot(v: Value) -> Snapshot {
        let def = parse_group(&v, &PathId::root()).unwrap();
        let mut snap = Snapshot::default();
        for g in def.transitive_groups() {
            snap.groups.insert(
                g.id.to_string(),
                GroupRecord {
                    dependencies: g.dependencies.clone(),
                    enforce_role: g.enforce_role,
                    ..GroupRecord::new(g.id.clone(), "")
                },
            );
        }
        for a in def.transitive_apps() {
            snap.apps.insert(a.id.to_string(), a.clone());
        }
        snap
    }

    fn render(steps: &[Step]) -> Vec<Vec<String>> {
        steps.iter().map(|s| s.actions.iter().map(|a| format!("{} {}", a.action.as_str(), a.app)).collect()).collect()
    }

    fn shop() -> Value {
        json!({
            "id": "/shop",
            "groups": [
                {"id": "db", "apps": [{"id": "pg", "cmd": "pg"}]},
                {"id": "api", "apps": [{"id": "api", "cmd": "api", "dependencies": ["../db"]}]},
                {
                    "id": "web",
                    "dependencies": ["../api"],
                    "apps": [{"id": "ui", "cmd": "ui"}, {"id": "cdn", "cmd": "cdn"}]
                }
            ]
        })
    }

    fn deploy_subtree(state: &mut MarathonState, gid: &str, target: &Snapshot, version: &str) -> DeployOutcome {
        let (changes, groups) = state.replace_subtree(gid, target, version);
        state.deploy(&format!("d-{version}"), version, 0, &changes, &groups, false)
    }

    fn finish(state: &mut MarathonState) {
        while let Some(id) = state.deployments.keys().next().cloned() {
            let step = state.deployments[&id].current_step;
            state.step_done(&id, step);
        }
    }

    #[test]
    fn group_and_app_dependencies_order_starts_and_stops() {
        let mut state = MarathonState::default();
        let target = group_snapshot(shop());
        let (changes, groups) = state.replace_subtree("/shop", &target, "v1");
        let preview = state.preview(&changes, &groups).unwrap();
        assert_eq!(state, MarathonState::default(), "a preview changes nothing");
        assert_eq!(
            render(&preview),
            vec![
                vec![
                    "StartApplication /shop/api/api",
                    "StartApplication /shop/db/pg",
                    "StartApplication /shop/web/cdn",
                    "StartApplication /shop/web/ui"
                ],
                vec!["ScaleApplication /shop/db/pg"],
                vec!["ScaleApplication /shop/api/api"],
                vec!["ScaleApplication /shop/web/cdn", "ScaleApplication /shop/web/ui"],
            ]
        );
        assert!(matches!(state.deploy("d1", "v1", 0, &changes, &groups, false), DeployOutcome::Started { .. }));
        assert_eq!(render(&state.deployments["d1"].steps), render(&preview));
        assert_eq!(state.groups["/shop/web"].dependencies, vec![id("/shop/api")]);
        finish(&mut state);

        // Removing the group stops dependents first: the web apps, then the api, then the db.
        let (changes, groups) = (Vec::new(), vec![GroupRecord::removal(id("/shop"), "v2")]);
        assert!(matches!(state.deploy("d2", "v2", 0, &changes, &groups, false), DeployOutcome::Started { .. }));
        assert_eq!(
            render(&state.deployments["d2"].steps),
            vec![
                vec!["StopApplication /shop/web/cdn", "StopApplication /shop/web/ui"],
                vec!["StopApplication /shop/api/api"],
                vec!["StopApplication /shop/db/pg"],
            ]
        );
        assert!(state.apps.is_empty() && state.groups.is_empty(), "every app and group under /shop is gone");
        assert_eq!(state.deployments["d2"].original.len(), 4, "the removal names every app for a rollback");
    }

    #[test]
    fn a_group_dependency_on_its_own_parent_is_a_cycle_and_nothing_changes() {
        let mut state = MarathonState::default();
        let target = group_snapshot(json!({"id": "/g", "apps": [{"id": "a", "cmd": "ab"}], "groups": [
            {"id": "h", "dependencies": ["/g"], "apps": [{"id": "b", "cmd": "ab"}]}
        ]}));
        let (changes, groups) = state.replace_subtree("/g", &target, "v1");
        let before = state.clone();
        assert_eq!(
            state.deploy("d1", "v1", 0, &changes, &groups, false),
            DeployOutcome::Invalid { message: CYCLIC_DEPENDENCIES.into() }
        );
        assert_eq!(state, before);
        let cyclic = group_snapshot(json!({"id": "/c", "apps": [
            {"id": "a", "cmd": "ab", "dependencies": ["b"]}, {"id": "b", "cmd": "ab", "dependencies": ["a"]}
        ]}));
        let (changes, groups) = state.replace_subtree("/c", &cyclic, "v1");
        assert_eq!(state.preview(&changes, &groups), Err(CYCLIC_DEPENDENCIES.into()));
    }

    #[test]
    fn replacing_a_subtree_keeps_unchanged_apps_and_removes_what_is_gone() {
        let mut state = MarathonState::default();
        deploy_subtree(&mut state, "/shop", &group_snapshot(shop()), "v1");
        finish(&mut state);
        let pg_before = state.apps["/shop/db/pg"].app.clone();
        // The web group without cdn, ui scaled: pg and api untouched.
        let mut target = state.subtree("/shop");
        target.apps.remove("/shop/web/cdn");
        target.apps.get_mut("/shop/web/ui").unwrap().instances = 3;
        let (changes, groups) = state.replace_subtree("/shop", &target, "v2");
        let ids: Vec<(&str, bool)> = changes.iter().map(|c| (c.id.as_str(), c.app.is_some())).collect();
        assert_eq!(ids, vec![("/shop/web/cdn", false), ("/shop/web/ui", true)]);
        let ui = changes[1].app.as_ref().unwrap();
        assert_eq!(ui.version.as_deref(), Some("v2"));
        assert_eq!(ui.version_info.as_ref().unwrap().last_config_change_at, "v1", "a scale is not a config change");
        assert!(groups.iter().all(|g| !g.remove));
        state.deploy("d2", "v2", 0, &changes, &groups, false);
        assert_eq!(
            render(&state.deployments["d2"].steps),
            vec![vec!["StopApplication /shop/web/cdn"], vec!["ScaleApplication /shop/web/ui"]]
        );
        assert_eq!(state.apps["/shop/db/pg"].app, pg_before);
        finish(&mut state);

        // Dropping a subgroup removes its record and its apps.
        let mut target = state.subtree("/shop");
        target.groups.remove("/shop/web");
        target.apps.retain(|a, _| !is_under(a, "/shop/web"));
        let (changes, groups) = state.replace_subtree("/shop", &target, "v3");
        assert!(groups.iter().any(|g| g.remove && g.id == id("/shop/web")));
        assert_eq!(changes.len(), 1);
        state.deploy("d3", "v3", 0, &changes, &groups, false);
        assert!(!state.group_exists("/shop/web"));
        assert!(state.group_exists("/shop/db"));
    }

    #[test]
    fn tree_versions_bring_back_removed_apps_and_are_bounded() {
        let mut state = MarathonState::default();
        deploy_subtree(&mut state, "/shop", &group_snapshot(shop()), "2020-01-01T00:00:00.001Z");
        finish(&mut state);
        state.deploy("rm", "2020-01-01T00:00:00.002Z", 0, &[], &[GroupRecord::removal(id("/shop/web"), "x")], false);
        finish(&mut state);
        assert!(!state.apps.contains_key("/shop/web/ui"));
        assert!(state.retired_apps.contains_key("/shop/web/ui"), "a kept version still names it");
        assert_eq!(state.versions_of_group("/shop/web"), vec!["2020-01-01T00:00:00.001Z".to_string()]);
        assert_eq!(state.versions_of_group("/shop").len(), 2);
        assert_eq!(state.versions_of_group("/").len(), 2);
        assert_eq!(state.group_version("/shop").as_deref(), Some("2020-01-01T00:00:00.002Z"));

        // Roll /shop back to the first version: web comes back, with its group dependency.
        let old = state.at_version("2020-01-01T00:00:00.001Z").unwrap();
        assert!(old.has_group("/shop/web"));
        let (changes, groups) = state.replace_subtree("/shop", &old.subtree("/shop"), "2020-01-01T00:00:00.003Z");
        assert_eq!(changes.len(), 2, "only the two web apps change: {changes:?}");
        state.deploy("rb", "2020-01-01T00:00:00.003Z", 0, &changes, &groups, false);
        assert_eq!(state.apps["/shop/web/ui"].app.cmd.as_deref(), Some("ui"));
        assert_eq!(state.groups["/shop/web"].dependencies, vec![id("/shop/api")]);
        assert_eq!(render(&state.deployments["rb"].steps)[0].len(), 2, "both start in one step");

        // Old tree versions go; so do retired definitions nothing names any more.
        for i in 0..VERSIONS_KEPT {
            state.deploy(&format!("n{i}"), &format!("2021-01-01T00:00:{i:02}.000Z"), 0, &[], &[], false);
        }
        assert_eq!(state.root_versions.len(), VERSIONS_KEPT);
        assert!(state.retired_apps.is_empty());
        assert!(state.at_version("2020-01-01T00:00:00.001Z").is_none());
    }

    #[test]
    fn removing_a_group_also_removes_apps_created_since_and_clashes_are_refused() {
        let mut state = MarathonState::default();
        deploy_subtree(&mut state, "/shop", &group_snapshot(shop()), "v1");
        finish(&mut state);
        // Only one app named, the others are found.
        let changes = [AppChange { id: "/shop/db/pg".into(), app: None, force_restart: false }];
        state.deploy("d2", "v2", 0, &changes, &[GroupRecord::removal(id("/shop"), "v2")], false);
        assert!(state.apps.is_empty());
        finish(&mut state);

        // An app may not take the id of a group that holds apps; an empty group gives way.
        let created = deploy_subtree(&mut state, "/shop", &group_snapshot(shop()), "v3");
        assert!(matches!(created, DeployOutcome::Started { .. }), "{created:?}");
        let clash = AppChange {
            id: "/shop/db".into(),
            app: Some(Box::new(app(json!({"id": "/shop/db", "cmd": "ab"})))),
            force_restart: false,
        };
        let outcome = state.deploy("d4", "v4", 0, std::slice::from_ref(&clash), &[], true);
        assert!(
            matches!(&outcome, DeployOutcome::Invalid { message } if message.starts_with(APP_GROUP_CLASH)),
            "{outcome:?}"
        );
        state.deploy("d5", "v5", 0, &[], &[GroupRecord::new(id("/empty"), "v5")], false);
        assert!(state.groups.contains_key("/empty"));
        let takeover = AppChange {
            id: "/empty".into(),
            app: Some(Box::new(app(json!({"id": "/empty", "cmd": "ab"})))),
            force_restart: false,
        };
        assert!(matches!(state.deploy("d6", "v6", 0, &[takeover], &[], false), DeployOutcome::Started { .. }));
        assert!(!state.groups.contains_key("/empty"));
        // A group may not take the id of an app either.
        let outcome = state.deploy("d7", "v7", 0, &[], &[GroupRecord::new(id("/empty"), "v7")], false);
        assert!(matches!(&outcome, DeployOutcome::Invalid { message } if message.starts_with(APP_GROUP_CLASH)));
    }

    #[test]
    fn missing_parents_are_created_and_dependencies_on_groups_resolve() {
        let mut state = MarathonState::default();
        state.deploy("d1", "v1", 0, &[], &[GroupRecord::new(id("/a/b/c"), "v1")], false);
        assert_eq!(state.groups.keys().collect::<Vec<_>>(), vec!["/a", "/a/b", "/a/b/c"]);
        assert_eq!(state.groups["/a"].enforce_role, Some(false));
        let apps: BTreeMap<String, AppDefinition> = [
            app(json!({"id": "/x/one", "cmd": "ab"})),
            app(json!({"id": "/x/two", "cmd": "ab"})),
            app(json!({"id": "/y", "cmd": "ab", "dependencies": ["/x"]})),
        ]
        .into_iter()
        .map(|a| (a.id.to_string(), a))
        .collect();
        let graph = dependency_graph(&apps, &BTreeMap::new());
        assert_eq!(graph["/y"], BTreeSet::from(["/x/one".to_string(), "/x/two".to_string()]));
        assert!(graph["/x/one"].is_empty());
        assert!(is_under("/x/one", "/x") && !is_under("/xy", "/x") && !is_under("/x", "/x") && is_under("/x", "/"));
    }
}
