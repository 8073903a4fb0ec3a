//! Marathon's replicated state: apps (with their versions), explicit groups, and the
//! deployments in progress. Changed only through [`MarathonState::deploy`] and the deployment
//! commands, from `State::apply`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::app::AppDefinition;
use super::deployment::{self, PlannedApp, Step};
use super::path::PathId;

/// App versions kept per app (Marathon's `--max_versions` defaults to a similar bound).
pub const VERSIONS_KEPT: usize = 50;

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
    #[serde(default)]
    pub dependencies: Vec<PathId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_role: Option<bool>,
    pub version: String,
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

    /// Applies a change to some apps as one deployment. With `force`, deployments that touch
    /// the same apps are cancelled (their apps keep whatever definition they have now);
    /// otherwise they make the change conflict and nothing changes.
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
        let mut original: BTreeMap<String, AppDefinition> = BTreeMap::new();
        let mut target: BTreeMap<String, AppDefinition> = BTreeMap::new();
        for change in changes {
            if let Some(app) = &change.app
                && app.id.as_str() != change.id
            {
                return DeployOutcome::Invalid { message: format!("app {} changed under id {}", app.id, change.id) };
            }
            if change.app.is_none() && !self.apps.contains_key(&change.id) {
                return DeployOutcome::Invalid { message: format!("App '{}' does not exist", change.id) };
            }
            if let Some(record) = self.apps.get(&change.id) {
                original.insert(change.id.clone(), record.app.clone());
            }
            if let Some(app) = &change.app {
                target.insert(change.id.clone(), (**app).clone());
            }
        }
        // Dependencies are checked against every app the cluster will have.
        let mut all: BTreeMap<String, AppDefinition> =
            self.apps.iter().map(|(id, r)| (id.clone(), r.app.clone())).collect();
        for change in changes {
            match &change.app {
                Some(app) => all.insert(change.id.clone(), (**app).clone()),
                None => all.remove(&change.id),
            };
        }
        if let Some(app) = deployment::find_cycle(&all) {
            return DeployOutcome::Invalid { message: format!("Dependency graph has cyclic dependencies (at {app})") };
        }
        for app in target.values() {
            for dep in &app.dependencies {
                let dep = dep.to_string();
                let exists = all.contains_key(&dep)
                    || all.keys().any(|id| id.starts_with(&format!("{dep}/")))
                    || self.groups.contains_key(&dep)
                    || groups.iter().any(|g| g.id.to_string() == dep);
                if !exists {
                    return DeployOutcome::Invalid {
                        message: format!("app {} depends on {dep}, which does not exist", app.id),
                    };
                }
            }
        }

        let mut steps = deployment::plan(&original, &target);
        for change in changes.iter().filter(|c| c.force_restart && c.app.is_some()) {
            let planned = steps.iter().flat_map(|s| &s.actions).any(|a| a.app == change.id);
            if !planned {
                steps.push(Step {
                    actions: vec![deployment::Action {
                        action: deployment::ActionKind::RestartApplication,
                        app: change.id.clone(),
                    }],
                });
            }
        }
        // Dependency order needs the whole target: apps outside the change still order it.
        steps = reorder_by_dependencies(steps, &all);
        let affected: Vec<String> = {
            let mut ids: Vec<String> = steps.iter().flat_map(|s| s.actions.iter().map(|a| a.app.clone())).collect();
            ids.sort();
            ids.dedup();
            ids
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

        for change in changes {
            match &change.app {
                Some(app) => {
                    let record = self
                        .apps
                        .entry(change.id.clone())
                        .or_insert_with(|| AppRecord { app: (**app).clone(), versions: BTreeMap::new() });
                    record.app = (**app).clone();
                    let version = app.version.clone().unwrap_or_else(|| version.to_string());
                    record.versions.insert(version, (**app).clone());
                    while record.versions.len() > VERSIONS_KEPT {
                        let oldest = record.versions.keys().next().cloned().expect("non-empty");
                        record.versions.remove(&oldest);
                    }
                }
                None => {
                    self.apps.remove(&change.id);
                }
            }
        }
        for group in groups {
            self.groups.insert(group.id.to_string(), group.clone());
        }
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
        self.groups.retain(|gid, _| {
            !ids.iter().any(|id| gid == id || gid.starts_with(&format!("{}/", id.trim_end_matches('/'))))
        });
    }
}

/// Re-sorts the scale/restart steps of a plan by the dependency depth over all apps (the plan
/// only saw the changed ones).
fn reorder_by_dependencies(steps: Vec<Step>, all: &BTreeMap<String, AppDefinition>) -> Vec<Step> {
    use super::deployment::ActionKind;
    let mut head = Vec::new();
    let mut layers: BTreeMap<usize, Vec<deployment::Action>> = BTreeMap::new();
    for step in steps {
        let ordered = step
            .actions
            .iter()
            .all(|a| matches!(a.action, ActionKind::ScaleApplication | ActionKind::RestartApplication));
        if !ordered {
            head.push(step);
            continue;
        }
        for action in step.actions {
            let depth = depth(all, &action.app, &mut Vec::new());
            layers.entry(depth).or_default().push(action);
        }
    }
    head.extend(layers.into_values().map(|actions| Step { actions }));
    head
}

fn depth(all: &BTreeMap<String, AppDefinition>, id: &str, path: &mut Vec<String>) -> usize {
    if path.iter().any(|p| p == id) {
        return 0;
    }
    path.push(id.to_string());
    let deps: Vec<String> = all
        .get(id)
        .map(|a| {
            a.dependencies
                .iter()
                .flat_map(|d| {
                    // A dependency on a group means every app under it.
                    let d = d.to_string();
                    all.keys().filter(|k| **k == d || k.starts_with(&format!("{d}/"))).cloned().collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    let deepest = deps.iter().map(|d| depth(all, d, path)).max().unwrap_or(0);
    path.pop();
    deepest + 1
}
