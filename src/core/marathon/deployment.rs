//! Deployment plans, computed as Marathon computes them, and the pure decisions that drive
//! each action (start, scale, restart, stop) from the tasks that exist right now.
//!
//! A plan turns the apps before a change into the apps after it:
//! 1. the apps that are gone stop, dependents first (layers of the reversed dependency graph;
//!    Marathon stops them all in one step),
//! 2. one step "starting" every new app with 0 instances (kept for compatibility; it is done
//!    at once),
//! 3. then the new and changed apps, grouped by the length of their longest dependency chain
//!    (apps nothing depends on last): new apps and scale-only changes scale, other changes
//!    restart.
//!
//! The decisions ([`restart_decision`], [`scale_decision`]) are stateless: the leader asks them
//! again after every task change, so a new leader resumes a deployment from the replicated
//! state alone, with no counters to lose in a failover.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What the plan needs to know about an app.
pub trait PlannedApp {
    fn app_id(&self) -> &str;
    fn instance_count(&self) -> u32;
    /// Ids of the apps this one depends on.
    fn depends_on(&self) -> Vec<String>;
    /// Whether going from `self` to `to` needs new tasks (anything but the instance count changed).
    fn restart_needed(&self, to: &Self) -> bool;
    /// Whether `self` and `to` are the same definition (version fields aside).
    fn same_definition(&self, to: &Self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ActionKind {
    StartApplication,
    ScaleApplication,
    RestartApplication,
    StopApplication,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartApplication => "StartApplication",
            Self::ScaleApplication => "ScaleApplication",
            Self::RestartApplication => "RestartApplication",
            Self::StopApplication => "StopApplication",
        }
    }
}

/// One action of a step, with Marathon's JSON shape (`{"action": "ScaleApplication", "app": "/foo"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub action: ActionKind,
    pub app: String,
}

/// Actions that may run in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Step {
    pub actions: Vec<Action>,
}

/// Dependencies between apps, already resolved to app ids: app id → the apps it depends on.
/// Built by the caller from app and group dependencies (a dependency on a group means every
/// app under it).
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The dependency graph of `apps` from their own [`PlannedApp::depends_on`] (app ids only).
pub fn graph_of<A: PlannedApp>(apps: &BTreeMap<String, A>) -> Graph {
    apps.iter().map(|(id, app)| (id.clone(), app.depends_on().into_iter().collect())).collect()
}

/// The steps from `original` to `target` (both keyed by app id). Empty steps are dropped.
/// Dependencies are the apps' own ([`graph_of`]).
pub fn plan<A: PlannedApp>(original: &BTreeMap<String, A>, target: &BTreeMap<String, A>) -> Vec<Step> {
    plan_ordered(original, target, &BTreeSet::new(), &graph_of(original), &graph_of(target))
}

/// The steps from `original` to `target`, ordered by the dependency graphs of the whole
/// cluster before (`before`) and after (`after`) the change:
/// 1. the apps that are gone stop, dependents before what they depend on (Marathon stops them
///    all in one step; medos never stops an app while an app that depends on it still runs),
/// 2. every new app "starts" with 0 instances, in one step,
/// 3. new and changed apps scale or restart, in layers by the length of their longest
///    dependency chain in `after` (dependencies first), as Marathon's
///    `runSpecsGroupedByLongestPath`.
///
/// `restart` names apps whose tasks are all replaced even if their definition did not change
/// (`POST /v2/apps/{id}/restart`).
pub fn plan_ordered<A: PlannedApp>(
    original: &BTreeMap<String, A>,
    target: &BTreeMap<String, A>,
    restart: &BTreeSet<String>,
    before: &Graph,
    after: &Graph,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let dependents = reversed(before);
    let mut stop_layers: BTreeMap<usize, Vec<Action>> = BTreeMap::new();
    for id in original.keys().filter(|id| !target.contains_key(*id)) {
        let layer = longest_chain(&dependents, id, &mut BTreeSet::new());
        stop_layers.entry(layer).or_default().push(Action { action: ActionKind::StopApplication, app: id.clone() });
    }
    steps.extend(stop_layers.into_values().map(|actions| Step { actions }));
    let start = target
        .keys()
        .filter(|id| !original.contains_key(*id))
        .map(|id| Action { action: ActionKind::StartApplication, app: id.clone() })
        .collect();
    steps.push(Step { actions: start });

    let changed: BTreeSet<&String> = target
        .iter()
        .filter(|(id, app)| restart.contains(*id) || original.get(*id).is_none_or(|old| !old.same_definition(app)))
        .map(|(id, _)| id)
        .collect();
    let mut layers: BTreeMap<usize, Vec<Action>> = BTreeMap::new();
    for id in changed {
        let app = &target[id];
        let action = match original.get(id) {
            None => Some(ActionKind::ScaleApplication),
            Some(_) if restart.contains(id) => Some(ActionKind::RestartApplication),
            Some(old) if app.instance_count() == 0 || !old.restart_needed(app) => {
                (old.instance_count() != app.instance_count() || old.restart_needed(app))
                    .then_some(ActionKind::ScaleApplication)
            }
            Some(_) => Some(ActionKind::RestartApplication),
        };
        if let Some(action) = action {
            let depth = longest_chain(after, id, &mut BTreeSet::new());
            layers.entry(depth).or_default().push(Action { action, app: id.clone() });
        }
    }
    steps.extend(layers.into_values().map(|actions| Step { actions }));
    steps.retain(|s| !s.actions.is_empty());
    steps
}

/// The graph with every edge turned around: app id → the apps that depend on it.
fn reversed(graph: &Graph) -> Graph {
    let mut out = Graph::new();
    for (id, deps) in graph {
        for dep in deps {
            out.entry(dep.clone()).or_default().insert(id.clone());
        }
    }
    out
}

/// Number of apps on the longest path from `id` along the edges of `graph` (1 for an app
/// without edges). Cycles are cut (validation rejects them before a plan is made).
fn longest_chain(graph: &Graph, id: &str, seen: &mut BTreeSet<String>) -> usize {
    if !seen.insert(id.to_string()) {
        return 0;
    }
    let deepest =
        graph.get(id).map(|next| next.iter().map(|n| longest_chain(graph, n, seen)).max().unwrap_or(0)).unwrap_or(0);
    seen.remove(id);
    deepest + 1
}

/// Finds a cycle in a dependency graph (a self-dependency included), returning one app on it.
pub fn find_cycle_in(graph: &Graph) -> Option<String> {
    fn visit(graph: &Graph, id: &str, on_path: &mut BTreeSet<String>, done: &mut BTreeSet<String>) -> Option<String> {
        if done.contains(id) {
            return None;
        }
        if !on_path.insert(id.to_string()) {
            return Some(id.to_string());
        }
        for dep in graph.get(id).into_iter().flatten() {
            if let Some(found) = visit(graph, dep, on_path, done) {
                return Some(found);
            }
        }
        on_path.remove(id);
        done.insert(id.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|id| visit(graph, id, &mut BTreeSet::new(), &mut done))
}

/// Finds a dependency cycle among `apps`, returning one app on it.
pub fn find_cycle<A: PlannedApp>(apps: &BTreeMap<String, A>) -> Option<String> {
    fn visit<A: PlannedApp>(
        apps: &BTreeMap<String, A>,
        id: &str,
        on_path: &mut BTreeSet<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if done.contains(id) {
            return None;
        }
        if !on_path.insert(id.to_string()) {
            return Some(id.to_string());
        }
        if let Some(app) = apps.get(id) {
            for dep in app.depends_on() {
                if apps.contains_key(&dep)
                    && let Some(found) = visit(apps, &dep, on_path, done)
                {
                    return Some(found);
                }
            }
        }
        on_path.remove(id);
        done.insert(id.to_string());
        None
    }
    let mut done = BTreeSet::new();
    apps.keys().find_map(|id| visit(apps, id, &mut BTreeSet::new(), &mut done))
}

/// One task of an app as the decisions see it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    pub task_id: String,
    /// The app version the task was launched with.
    pub version: String,
    /// TASK_RUNNING, and healthy when the app has health checks.
    pub healthy: bool,
    /// A kill was already requested.
    pub killing: bool,
    /// When it was launched (for kill selection).
    pub launched_at_ms: u64,
}

/// Marathon's upgrade strategy bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub minimum_health_capacity: f64,
    pub maximum_over_capacity: f64,
}

/// What to do now for an app being restarted (replaced by its new version).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Old tasks to kill now.
    pub kill: Vec<String>,
    /// New tasks to launch now.
    pub launch: u32,
    /// The action is complete.
    pub done: bool,
}

/// A rolling restart to `version` with `instances` tasks: keeps at least
/// `ceil(minimumHealthCapacity × instances)` healthy tasks and at most
/// `(1 + maximumOverCapacity) × instances` tasks (old and new together), killing unhealthy
/// old tasks first. `active` are the app's non-terminal tasks.
pub fn restart_decision(instances: u32, version: &str, capacity: Capacity, active: &[InstanceView]) -> Decision {
    let n = f64::from(instances);
    let min_healthy = (n * capacity.minimum_health_capacity - 1e-9).ceil().max(0.0) as usize;
    let mut max_capacity = (n * (1.0 + capacity.maximum_over_capacity) + 1e-9).floor() as usize;
    let healthy_now = active.iter().filter(|i| i.healthy && !i.killing).count();
    if min_healthy == max_capacity && max_capacity <= healthy_now {
        // Neither a new task could start nor an old one stop: allow one over.
        max_capacity += 1;
    }
    let (new, old): (Vec<&InstanceView>, Vec<&InstanceView>) = active.iter().partition(|i| i.version == version);
    let new_healthy = new.iter().filter(|i| i.healthy && !i.killing).count();
    let mut old_alive: Vec<&InstanceView> = old.iter().copied().filter(|i| !i.killing).collect();
    // Unhealthy first (their loss costs no capacity), then the youngest.
    old_alive.sort_by_key(|i| (i.healthy, std::cmp::Reverse(i.launched_at_ms)));
    let mut healthy = healthy_now;
    let mut kill = Vec::new();
    for instance in &old_alive {
        if instance.healthy {
            if healthy <= min_healthy {
                break;
            }
            healthy -= 1;
        }
        kill.push(instance.task_id.clone());
    }
    let new_alive = new.iter().filter(|i| !i.killing).count();
    // Tasks being killed hold their capacity until they end.
    let occupied = active.len();
    let wanted = (instances as usize).saturating_sub(new_alive);
    let room = max_capacity.saturating_sub(occupied);
    let launch = wanted.min(room) as u32;
    let done = old.is_empty() && new_healthy >= instances as usize && new.len() == instances as usize;
    Decision { kill, launch, done }
}

/// Scaling to `instances` (also a new app and the relaunch of lost tasks): launch the
/// missing tasks, kill the surplus (`oldest_first` picks by age; otherwise the youngest go),
/// done when exactly `instances` tasks are healthy and no surplus remains.
pub fn scale_decision(instances: u32, oldest_first: bool, active: &[InstanceView]) -> Decision {
    let alive: Vec<&InstanceView> = active.iter().filter(|i| !i.killing).collect();
    let want = instances as usize;
    let mut kill = Vec::new();
    if alive.len() > want {
        let mut by_age = alive.clone();
        // Unhealthy tasks go first, then by age as killSelection says.
        by_age.sort_by_key(|i| {
            let age_key = if oldest_first { i.launched_at_ms } else { u64::MAX - i.launched_at_ms };
            (i.healthy, age_key)
        });
        kill = by_age.iter().take(alive.len() - want).map(|i| i.task_id.clone()).collect();
    }
    let launch = want.saturating_sub(alive.len()) as u32;
    let healthy = alive.iter().filter(|i| i.healthy).count();
    let done = active.len() == want && healthy >= want;
    Decision { kill, launch, done }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq)]
    struct App {
        id: &'static str,
        instances: u32,
        cmd: &'static str,
        deps: Vec<&'static str>,
    }

    impl PlannedApp for App {
        fn app_id(&self) -> &str {
            self.id
        }
        fn instance_count(&self) -> u32 {
            self.instances
        }
        fn depends_on(&self) -> Vec<String> {
            self.deps.iter().map(|d| d.to_string()).collect()
        }
        fn restart_needed(&self, to: &Self) -> bool {
            self.cmd != to.cmd || self.deps != to.deps
        }
        fn same_definition(&self, to: &Self) -> bool {
            self == to
        }
    }

    fn app(id: &'static str, instances: u32, cmd: &'static str, deps: &[&'static str]) -> App {
        App { id, instances, cmd, deps: deps.to_vec() }
    }

    fn apps(list: &[App]) -> BTreeMap<String, App> {
        list.iter().map(|a| (a.id.to_string(), a.clone())).collect()
    }

    fn render(steps: &[Step]) -> Vec<Vec<String>> {
        steps.iter().map(|s| s.actions.iter().map(|a| format!("{} {}", a.action.as_str(), a.app)).collect()).collect()
    }

    /// A named case: apps before, apps after, the expected steps.
    type PlanCase = (&'static str, Vec<App>, Vec<App>, Vec<Vec<&'static str>>);

    #[test]
    fn plans_follow_marathons_order() {
        let cases: Vec<PlanCase> = vec![
            (
                "new app",
                vec![],
                vec![app("/a", 2, "x", &[])],
                vec![vec!["StartApplication /a"], vec!["ScaleApplication /a"]],
            ),
            (
                "scale only",
                vec![app("/a", 2, "x", &[])],
                vec![app("/a", 5, "x", &[])],
                vec![vec!["ScaleApplication /a"]],
            ),
            (
                "config change",
                vec![app("/a", 2, "x", &[])],
                vec![app("/a", 2, "y", &[])],
                vec![vec!["RestartApplication /a"]],
            ),
            (
                "scaled to zero with a change",
                vec![app("/a", 2, "x", &[])],
                vec![app("/a", 0, "y", &[])],
                vec![vec!["ScaleApplication /a"]],
            ),
            ("removed", vec![app("/a", 2, "x", &[])], vec![], vec![vec!["StopApplication /a"]]),
            ("unchanged", vec![app("/a", 2, "x", &[])], vec![app("/a", 2, "x", &[])], vec![]),
            (
                "dependencies first",
                vec![],
                vec![app("/db", 1, "x", &[]), app("/api", 1, "x", &["/db"]), app("/web", 1, "x", &["/api"])],
                vec![
                    vec!["StartApplication /api", "StartApplication /db", "StartApplication /web"],
                    vec!["ScaleApplication /db"],
                    vec!["ScaleApplication /api"],
                    vec!["ScaleApplication /web"],
                ],
            ),
            (
                "independent apps share a step",
                vec![app("/a", 1, "x", &[]), app("/b", 1, "x", &[]), app("/gone", 1, "x", &[])],
                vec![app("/a", 1, "y", &[]), app("/b", 3, "x", &[])],
                vec![vec!["StopApplication /gone"], vec!["RestartApplication /a", "ScaleApplication /b"]],
            ),
        ];
        for (name, before, after, want) in cases {
            let got = render(&plan(&apps(&before), &apps(&after)));
            let want: Vec<Vec<String>> = want.iter().map(|s| s.iter().map(|a| a.to_string()).collect()).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges.iter().map(|(id, deps)| (id.to_string(), deps.iter().map(|d| d.to_string()).collect())).collect()
    }

    /// A named case of [`plan_ordered`]: apps before, apps after, forced restarts, the graphs
    /// before and after (resolved, as the state builds them from app and group
    /// dependencies), the expected steps.
    type OrderedCase = (&'static str, Vec<App>, Vec<App>, Vec<&'static str>, Graph, Graph, Vec<Vec<&'static str>>);

    #[test]
    fn plans_follow_resolved_dependencies_for_starts_and_stops() {
        let cases: Vec<OrderedCase> = vec![
            (
                "a group dependency: every app of /shop/web after every app of /shop/db",
                vec![],
                vec![
                    app("/shop/db/pg", 1, "x", &[]),
                    app("/shop/db/redis", 1, "x", &[]),
                    app("/shop/web/ui", 2, "x", &[]),
                ],
                vec![],
                Graph::new(),
                graph(&[("/shop/web/ui", &["/shop/db/pg", "/shop/db/redis"])]),
                vec![
                    vec![
                        "StartApplication /shop/db/pg",
                        "StartApplication /shop/db/redis",
                        "StartApplication /shop/web/ui",
                    ],
                    vec!["ScaleApplication /shop/db/pg", "ScaleApplication /shop/db/redis"],
                    vec!["ScaleApplication /shop/web/ui"],
                ],
            ),
            (
                "stops: dependents first, also through an app that stays",
                vec![
                    app("/web", 1, "x", &[]),
                    app("/api", 1, "x", &[]),
                    app("/db", 1, "x", &[]),
                    app("/lone", 1, "x", &[]),
                ],
                vec![app("/api", 1, "x", &[])],
                vec![],
                graph(&[("/web", &["/api"]), ("/api", &["/db"])]),
                Graph::new(),
                vec![vec!["StopApplication /lone", "StopApplication /web"], vec!["StopApplication /db"]],
            ),
            (
                "an unchanged app still orders the changed ones",
                vec![app("/db", 1, "x", &[]), app("/web", 1, "x", &[])],
                vec![app("/db", 1, "y", &[]), app("/web", 1, "y", &[])],
                vec![],
                graph(&[("/web", &["/api"]), ("/api", &["/db"])]),
                graph(&[("/web", &["/api"]), ("/api", &["/db"])]),
                vec![vec!["RestartApplication /db"], vec!["RestartApplication /web"]],
            ),
            (
                "a forced restart of an unchanged app takes its dependency layer",
                vec![app("/db", 1, "x", &[]), app("/web", 2, "x", &[])],
                vec![app("/db", 3, "x", &[]), app("/web", 2, "x", &[])],
                vec!["/web"],
                graph(&[("/web", &["/db"])]),
                graph(&[("/web", &["/db"])]),
                vec![vec!["ScaleApplication /db"], vec!["RestartApplication /web"]],
            ),
        ];
        for (name, before, after, restart, g_before, g_after, want) in cases {
            let restart: BTreeSet<String> = restart.iter().map(|s| s.to_string()).collect();
            let got = render(&plan_ordered(&apps(&before), &apps(&after), &restart, &g_before, &g_after));
            let want: Vec<Vec<String>> = want.iter().map(|s| s.iter().map(|a| a.to_string()).collect()).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn cycles_in_resolved_graphs_are_found() {
        assert_eq!(find_cycle_in(&graph(&[("/a", &["/b"]), ("/b", &[])])), None);
        assert!(find_cycle_in(&graph(&[("/a", &["/b"]), ("/b", &["/c"]), ("/c", &["/a"])])).is_some());
        assert_eq!(find_cycle_in(&graph(&[("/g/a", &["/g/a"])])).as_deref(), Some("/g/a"));
        assert_eq!(find_cycle_in(&graph(&[("/a", &["/unknown"])])), None);
    }

    #[test]
    fn cycles_are_found() {
        let acyclic = apps(&[app("/a", 1, "x", &["/b"]), app("/b", 1, "x", &[])]);
        assert_eq!(find_cycle(&acyclic), None);
        let cyclic = apps(&[app("/a", 1, "x", &["/b"]), app("/b", 1, "x", &["/c"]), app("/c", 1, "x", &["/a"])]);
        assert!(find_cycle(&cyclic).is_some());
        let self_loop = apps(&[app("/a", 1, "x", &["/a"])]);
        assert_eq!(find_cycle(&self_loop).as_deref(), Some("/a"));
    }

    fn inst(id: &str, version: &str, healthy: bool, at: u64) -> InstanceView {
        InstanceView { task_id: id.into(), version: version.into(), healthy, killing: false, launched_at_ms: at }
    }

    const FULL: Capacity = Capacity { minimum_health_capacity: 1.0, maximum_over_capacity: 1.0 };

    #[test]
    fn restart_with_default_strategy_starts_all_new_first() {
        let active = [inst("o1", "v1", true, 1), inst("o2", "v1", true, 2), inst("o3", "v1", true, 3)];
        let d = restart_decision(3, "v2", FULL, &active);
        assert_eq!(d, Decision { kill: vec![], launch: 3, done: false });
    }

    #[test]
    fn restart_keeps_minimum_health_and_maximum_capacity() {
        // min healthy ceil(0.5 * 4) = 2, max capacity 4 * 1.0 = 4.
        let cap = Capacity { minimum_health_capacity: 0.5, maximum_over_capacity: 0.0 };
        let active: Vec<_> = (1..=4).map(|i| inst(&format!("o{i}"), "v1", true, i)).collect();
        let d = restart_decision(4, "v2", cap, &active);
        assert_eq!(d.kill.len(), 2, "two old tasks may go");
        assert_eq!(d.launch, 0, "no room until the killed tasks end");
        // The two killed tasks ended; two new ones may start.
        let active = vec![inst("o1", "v1", true, 1), inst("o2", "v1", true, 2)];
        let d = restart_decision(4, "v2", cap, &active);
        assert_eq!((d.kill.len(), d.launch), (0, 2));
        // New ones healthy: the remaining old ones may go.
        let active = vec![
            inst("o1", "v1", true, 1),
            inst("o2", "v1", true, 2),
            inst("n1", "v2", true, 5),
            inst("n2", "v2", true, 6),
        ];
        let d = restart_decision(4, "v2", cap, &active);
        assert_eq!(d.kill, vec!["o2".to_string(), "o1".to_string()]);
        assert!(!d.done);
        let active: Vec<_> = (1..=4).map(|i| inst(&format!("n{i}"), "v2", true, i)).collect();
        assert!(restart_decision(4, "v2", cap, &active).done);
    }

    #[test]
    fn restart_kills_unhealthy_old_tasks_first_and_waits_for_health() {
        let cap = Capacity { minimum_health_capacity: 1.0, maximum_over_capacity: 0.0 };
        // min 2 healthy, max 2 → one extra allowed, as Marathon does.
        let active = vec![inst("o1", "v1", true, 1), inst("o2", "v1", false, 2)];
        let d = restart_decision(2, "v2", cap, &active);
        assert_eq!(d.kill, vec!["o2".to_string()]);
        let mut active = vec![inst("o1", "v1", true, 1), inst("o3", "v1", true, 3), inst("n1", "v2", false, 4)];
        let d = restart_decision(2, "v2", cap, &active);
        assert_eq!((d.kill.len(), d.launch), (0, 0), "no healthy task may go before the new one is healthy");
        active[2].healthy = true;
        let d = restart_decision(2, "v2", cap, &active);
        assert_eq!((d.kill, d.launch), (vec!["o3".to_string()], 0), "the youngest old task goes");
        assert!(!d.done);
    }

    #[test]
    fn scale_up_down_and_kill_selection() {
        let d = scale_decision(3, false, &[inst("a", "v", true, 1)]);
        assert_eq!((d.launch, d.done), (2, false));
        let three = [inst("a", "v", true, 1), inst("b", "v", true, 2), inst("c", "v", true, 3)];
        assert_eq!(scale_decision(1, false, &three).kill, vec!["c".to_string(), "b".to_string()]);
        assert_eq!(scale_decision(1, true, &three).kill, vec!["a".to_string(), "b".to_string()]);
        assert!(scale_decision(3, false, &three).done);
        let with_sick = [inst("a", "v", true, 1), inst("b", "v", false, 2), inst("c", "v", true, 3)];
        assert_eq!(scale_decision(2, false, &with_sick).kill, vec!["b".to_string()]);
        let mut killing = three.clone();
        killing[2].killing = true;
        let d = scale_decision(2, false, &killing);
        assert_eq!((d.kill.len(), d.launch, d.done), (0, 0, false), "done only when the killed task has ended");
    }
}
