//! Resource offers: which framework is offered which agent's free resources, in the model of
//! Mesos's hierarchical DRF allocator. Pure: the leader calls [`allocate`] whenever something
//! changed and turns the answer into [`Offer`]s.
//!
//! # The model
//!
//! * **What is offered.** An agent's free resources (total minus what its tasks hold) go, all
//!   together, to one framework in one offer. An agent is offered only if it accepts tasks
//!   (registered, active, not deactivated or draining: Mesos sends no offers for those), has no
//!   offer outstanding, and has at least the minimum allocatable resources (Mesos's default
//!   `--min_allocatable_resources=cpus:0.01|mem:32`).
//! * **Who gets it.** Frameworks are ordered by Dominant Resource Fairness: the largest share
//!   of the cluster's cpus, mem or disk a framework holds (tasks plus outstanding offers),
//!   divided by its weight, smallest first, ties by framework id. After each agent is
//!   allocated, the receiving framework's share grows before the next agent is considered, so
//!   one pass spreads agents fairly. Agents are considered in the caller's order (Mesos
//!   shuffles them; pass them shuffled for that, or sorted for determinism). Mesos sorts roles
//!   by weight first and frameworks within a role; `weight` here is the framework's role
//!   weight, which is the same thing as long as each role has one framework.
//! * **Roles.** Resources of private agents are unreserved (role `*`) and may go to any
//!   framework. Resources of public agents are reserved for `slave_public` and go only to
//!   frameworks subscribed with that role.
//! * **Suppress, decline, revive.** A suppressed framework is offered nothing. Declining an
//!   offer installs a filter ([`Filters::add`]) that keeps those resources of that agent away
//!   from the framework for `refuse_seconds` (Mesos's default 5 s); the agent is offered again
//!   sooner if more becomes free there than was declined, as Mesos's refused-resources filter
//!   only hides offers contained in what was refused. Reviving clears the framework's filters
//!   (and the caller clears its `suppressed` flag).
//! * **When.** Mesos allocates in batches every `allocation_interval` and on events. The
//!   caller runs [`allocate`] after anything that can change the answer: an agent registers or
//!   frees resources, an offer is declined or rescinded, a framework revives, a filter expires
//!   ([`Filters::next_expiry`] says when).
//! * **Rescinding is the caller's job.** When an agent is lost, deactivated or drained, the
//!   caller rescinds its outstanding offer (and drops its filters with
//!   [`Filters::remove_agent`]). The allocator sees only the current facts, so a rescind is a
//!   change of those facts, never a message to it: that keeps this code free of time and I/O
//!   and lets every decision be recomputed from the replicated state.
//! * **Offer ids** are chosen by the caller, like every other id in the core.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::resources::{PortRange, Resources};

/// The role of unreserved resources.
pub const ROLE_ANY: &str = "*";
/// The role public agents' resources are reserved for.
pub const ROLE_PUBLIC: &str = "slave_public";
/// Mesos's default `refuse_seconds` for a decline without filters.
pub const DEFAULT_REFUSE_SECONDS: f64 = 5.0;
/// Mesos's default minimum allocatable resources: an agent is offered if at least this many
/// cpus *or* this much memory (MiB) is free.
pub const MIN_ALLOCATABLE_CPUS: f64 = 0.01;
pub const MIN_ALLOCATABLE_MEM: f64 = 32.0;

/// Tolerance for resource comparisons (as `Resources::fits`).
const EPSILON: f64 = 0.000_5;

/// An offer of one agent's free resources to one framework.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub framework_id: String,
    pub agent_id: String,
    pub hostname: String,
    /// Raw attribute values of the agent.
    pub attributes: BTreeMap<String, String>,
    /// The fault domain of the agent (`@region`, `@zone` constraints).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    /// The role of the offered resources: [`ROLE_ANY`] or [`ROLE_PUBLIC`].
    pub role: String,
    /// Free scalars and free port ranges.
    pub resources: Resources,
    /// The agent is scheduled for maintenance (Marathon declines with `AgentMaintenance`).
    #[serde(default)]
    pub maintenance: bool,
}

impl Offer {
    /// The resource role of an agent's offers.
    pub fn role_of(public: bool) -> &'static str {
        if public { ROLE_PUBLIC } else { ROLE_ANY }
    }
}

/// What the allocator needs to know about an agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentFree {
    pub agent_id: String,
    /// A public agent: its resources carry the role `slave_public`.
    pub public: bool,
    /// Free scalars and free port ranges.
    pub free: Resources,
    /// Registered, active and in normal mode.
    pub accepts_tasks: bool,
}

/// A framework as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameworkShare {
    pub framework_id: String,
    /// The roles it subscribed with (`*`, `slave_public`, …).
    pub roles: Vec<String>,
    /// The weight of its role (Mesos's default 1); non-positive or non-finite counts as 1.
    pub weight: f64,
    /// What it holds now: its tasks' resources plus its outstanding offers.
    pub allocated: Resources,
    /// It asked for no offers until it revives.
    pub suppressed: bool,
}

impl FrameworkShare {
    /// The DRF sort key: the dominant share of `total`, divided by the weight.
    pub fn weighted_share(&self, total: &Resources) -> f64 {
        let weight = if self.weight.is_finite() && self.weight > 0.0 { self.weight } else { 1.0 };
        dominant_share(&self.allocated, total) / weight
    }

    fn takes_role(&self, public: bool) -> bool {
        !public || self.roles.iter().any(|r| r == ROLE_PUBLIC)
    }
}

/// The largest fraction of `total` that `allocated` holds of any of cpus, mem and disk.
pub fn dominant_share(allocated: &Resources, total: &Resources) -> f64 {
    [(allocated.cpus, total.cpus), (allocated.mem, total.mem), (allocated.disk, total.disk)]
        .into_iter()
        .filter(|(_, t)| *t > 0.0)
        .map(|(a, t)| a / t)
        .fold(0.0, f64::max)
}

/// One refused-resources filter.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    refused: Resources,
    until_ms: u64,
}

/// Decline filters: framework × agent → the declined resources, hidden until a time. Kept
/// by the leader in memory, like Mesos's (a new leader starts with none; frameworks then
/// decline again).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    entries: BTreeMap<(String, String), Filter>,
}

impl Filters {
    /// Records that `framework` declined `refused` on `agent` at `now_ms` asking not to see
    /// them for `refuse_seconds`. As in Mesos: a negative or NaN value means the default 5 s,
    /// zero installs no filter, huge values saturate. A later decline of the same agent
    /// replaces the earlier filter.
    pub fn add(&mut self, framework: &str, agent: &str, refused: &Resources, refuse_seconds: f64, now_ms: u64) {
        let seconds =
            if refuse_seconds.is_nan() || refuse_seconds < 0.0 { DEFAULT_REFUSE_SECONDS } else { refuse_seconds };
        let key = (framework.to_string(), agent.to_string());
        if seconds == 0.0 {
            self.entries.remove(&key);
            return;
        }
        // `as` saturates for floats too large for u64 (and infinity).
        let duration_ms = (seconds * 1000.0).ceil() as u64;
        self.entries.insert(key, Filter { refused: refused.clone(), until_ms: now_ms.saturating_add(duration_ms) });
    }

    /// Clears every filter of `framework` (REVIVE).
    pub fn revive(&mut self, framework: &str) {
        self.entries.retain(|(f, _), _| f != framework);
    }

    /// Drops the filters on an agent that went away.
    pub fn remove_agent(&mut self, agent: &str) {
        self.entries.retain(|(_, a), _| a != agent);
    }

    /// Drops filters that have expired by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        self.entries.retain(|_, f| f.until_ms > now_ms);
    }

    /// When the next filter expires (the caller allocates again then).
    pub fn next_expiry(&self) -> Option<u64> {
        self.entries.values().map(|f| f.until_ms).min()
    }

    /// Whether offering `free` on `agent` to `framework` is filtered at `now_ms`: a filter is
    /// in force and `free` holds nothing beyond what was declined.
    pub fn is_filtered(&self, framework: &str, agent: &str, free: &Resources, now_ms: u64) -> bool {
        self.entries
            .get(&(framework.to_string(), agent.to_string()))
            .is_some_and(|f| now_ms < f.until_ms && contains(&f.refused, free))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether `outer` contains `inner`: every scalar no larger, every port inside a range.
fn contains(outer: &Resources, inner: &Resources) -> bool {
    if !outer.fits(inner) {
        return false;
    }
    let mut ranges: Vec<PortRange> = outer.ports.iter().filter(|r| !r.is_empty()).copied().collect();
    ranges.sort_by_key(|r| r.begin);
    // Merge touching and overlapping ranges, then every inner range must lie in one of them.
    let mut merged: Vec<PortRange> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(r.begin) <= u32::from(last.end) + 1 => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    inner.ports.iter().filter(|r| !r.is_empty()).all(|r| merged.iter().any(|m| m.begin <= r.begin && r.end <= m.end))
}

/// Whether an agent's free resources are worth offering (Mesos's minimum allocatable
/// resources).
pub fn allocatable(free: &Resources) -> bool {
    free.cpus + EPSILON >= MIN_ALLOCATABLE_CPUS || free.mem + EPSILON >= MIN_ALLOCATABLE_MEM
}

/// Which framework is offered each agent's free resources now, as `(framework, agent)` pairs
/// in allocation order. See the module documentation for the rules. `total` is the cluster's
/// total resources (the DRF denominator); `offered_agents` are agents with an offer
/// outstanding.
pub fn allocate(
    agents: &[AgentFree],
    frameworks: &[FrameworkShare],
    filters: &Filters,
    offered_agents: &BTreeSet<String>,
    total: &Resources,
    now_ms: u64,
) -> Vec<(String, String)> {
    let mut shares: Vec<FrameworkShare> = frameworks.iter().filter(|f| !f.suppressed).cloned().collect();
    let mut out = Vec::new();
    for agent in agents {
        if !agent.accepts_tasks || offered_agents.contains(&agent.agent_id) || !allocatable(&agent.free) {
            continue;
        }
        shares.sort_by(|a, b| {
            a.weighted_share(total)
                .total_cmp(&b.weighted_share(total))
                .then_with(|| a.framework_id.cmp(&b.framework_id))
        });
        let receiver = shares.iter_mut().find(|f| {
            f.takes_role(agent.public) && !filters.is_filtered(&f.framework_id, &agent.agent_id, &agent.free, now_ms)
        });
        if let Some(framework) = receiver {
            framework.allocated.add(&agent.free);
            out.push((framework.framework_id.clone(), agent.agent_id.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpus: f64, mem: f64) -> Resources {
        Resources { cpus, mem, disk: 0.0, ports: vec![] }
    }

    fn agent(id: &str, cpus: f64, mem: f64) -> AgentFree {
        AgentFree { agent_id: id.into(), public: false, free: res(cpus, mem), accepts_tasks: true }
    }

    fn framework(id: &str, weight: f64, cpus: f64, mem: f64) -> FrameworkShare {
        FrameworkShare {
            framework_id: id.into(),
            roles: vec![ROLE_ANY.into()],
            weight,
            allocated: res(cpus, mem),
            suppressed: false,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(f, a)| (f.to_string(), a.to_string())).collect()
    }

    fn run(agents: &[AgentFree], frameworks: &[FrameworkShare], filters: &Filters, now: u64) -> Vec<(String, String)> {
        allocate(agents, frameworks, filters, &BTreeSet::new(), &res(100.0, 100_000.0), now)
    }

    #[test]
    fn dominant_share_takes_the_largest_fraction() {
        let total = Resources { cpus: 10.0, mem: 1000.0, disk: 0.0, ports: vec![] };
        assert_eq!(dominant_share(&res(1.0, 500.0), &total), 0.5);
        assert_eq!(dominant_share(&res(5.0, 100.0), &total), 0.5);
        assert_eq!(dominant_share(&res(0.0, 0.0), &total), 0.0);
        // A resource the cluster lacks does not count (no division by zero).
        assert_eq!(dominant_share(&Resources { disk: 5.0, ..res(1.0, 0.0) }, &total), 0.1);
    }

    #[test]
    fn drf_order_with_weights_and_ties() {
        let agents = [agent("a1", 4.0, 4096.0)];
        // (frameworks, expected receiver of the single agent)
        let cases: Vec<(Vec<FrameworkShare>, &str)> = vec![
            // Smaller dominant share first: mem share 0.1 vs cpu share 0.2.
            (vec![framework("f1", 1.0, 20.0, 0.0), framework("f2", 1.0, 0.0, 10_000.0)], "f2"),
            // A weight of 3 makes 0.2 count as 0.067, less than f2's 0.1.
            (vec![framework("f1", 3.0, 20.0, 0.0), framework("f2", 1.0, 0.0, 10_000.0)], "f1"),
            // Equal shares: ties go by framework id.
            (vec![framework("fb", 1.0, 10.0, 0.0), framework("fa", 1.0, 10.0, 0.0)], "fa"),
            // A zero weight counts as 1.
            (vec![framework("f1", 0.0, 20.0, 0.0), framework("f2", 1.0, 30.0, 0.0)], "f1"),
        ];
        for (i, (frameworks, expected)) in cases.into_iter().enumerate() {
            assert_eq!(run(&agents, &frameworks, &Filters::default(), 0), pairs(&[(expected, "a1")]), "case {i}");
        }
    }

    #[test]
    fn allocation_rebalances_between_agents() {
        // Each agent raises the receiver's share, so two equal frameworks alternate.
        let agents = [agent("a1", 10.0, 0.0), agent("a2", 10.0, 0.0), agent("a3", 10.0, 0.0), agent("a4", 10.0, 0.0)];
        let frameworks = [framework("f1", 1.0, 0.0, 0.0), framework("f2", 1.0, 0.0, 0.0)];
        assert_eq!(
            run(&agents, &frameworks, &Filters::default(), 0),
            pairs(&[("f1", "a1"), ("f2", "a2"), ("f1", "a3"), ("f2", "a4")])
        );
        // With weight 3, f2 gets three agents for every one of f1's.
        let frameworks = [framework("f1", 1.0, 0.0, 0.0), framework("f2", 3.0, 0.0, 0.0)];
        assert_eq!(
            run(&agents, &frameworks, &Filters::default(), 0),
            pairs(&[("f1", "a1"), ("f2", "a2"), ("f2", "a3"), ("f2", "a4")])
        );
    }

    #[test]
    fn agents_that_are_not_offered() {
        let frameworks = [framework("f1", 1.0, 0.0, 0.0)];
        let mut offered = BTreeSet::new();
        offered.insert("busy".to_string());
        let agents = [
            agent("busy", 4.0, 4096.0),
            AgentFree { accepts_tasks: false, ..agent("draining", 4.0, 4096.0) },
            agent("full", 0.0, 0.0),
            agent("crumbs", 0.005, 31.0),
            agent("cpu-only", 0.01, 0.0),
            agent("mem-only", 0.0, 32.0),
        ];
        let got = allocate(&agents, &frameworks, &Filters::default(), &offered, &res(10.0, 10_000.0), 0);
        assert_eq!(got, pairs(&[("f1", "cpu-only"), ("f1", "mem-only")]));
    }

    #[test]
    fn suppressed_frameworks_get_nothing() {
        let agents = [agent("a1", 4.0, 4096.0)];
        let mut quiet = framework("f1", 1.0, 0.0, 0.0);
        quiet.suppressed = true;
        assert_eq!(
            run(&agents, &[quiet.clone(), framework("f2", 1.0, 50.0, 0.0)], &Filters::default(), 0),
            pairs(&[("f2", "a1")])
        );
        assert_eq!(run(&agents, &[quiet], &Filters::default(), 0), vec![]);
    }

    #[test]
    fn public_agents_go_only_to_slave_public_frameworks() {
        let public = AgentFree { public: true, ..agent("pub", 4.0, 4096.0) };
        let private = agent("priv", 4.0, 4096.0);
        let mut both = framework("marathon", 1.0, 50.0, 0.0);
        both.roles = vec![ROLE_ANY.into(), ROLE_PUBLIC.into()];
        let star = framework("other", 1.0, 0.0, 0.0);
        // `other` has the smaller share but no slave_public role: the public agent skips it.
        assert_eq!(
            run(&[public.clone(), private.clone()], &[both.clone(), star.clone()], &Filters::default(), 0),
            pairs(&[("marathon", "pub"), ("other", "priv")])
        );
        assert_eq!(run(&[public], &[star], &Filters::default(), 0), vec![]);
        // A framework with only the public role still takes unreserved resources.
        let mut only_public = framework("p", 1.0, 0.0, 0.0);
        only_public.roles = vec![ROLE_PUBLIC.into()];
        assert_eq!(run(&[private], &[only_public], &Filters::default(), 0), pairs(&[("p", "priv")]));
        assert_eq!(Offer::role_of(true), "slave_public");
        assert_eq!(Offer::role_of(false), "*");
    }

    #[test]
    fn declines_filter_until_they_expire() {
        let a1 = agent("a1", 4.0, 4096.0);
        let frameworks = [framework("f1", 1.0, 0.0, 0.0), framework("f2", 1.0, 10.0, 0.0)];
        let mut filters = Filters::default();
        filters.add("f1", "a1", &a1.free, 5.0, 1_000);
        assert_eq!(filters.next_expiry(), Some(6_000));
        // Filtered: the next framework in DRF order gets it.
        assert_eq!(run(std::slice::from_ref(&a1), &frameworks, &filters, 1_000), pairs(&[("f2", "a1")]));
        assert_eq!(run(std::slice::from_ref(&a1), &frameworks, &filters, 5_999), pairs(&[("f2", "a1")]));
        // Expired: f1 again, even before `expire` drops the entry.
        assert_eq!(run(std::slice::from_ref(&a1), &frameworks, &filters, 6_000), pairs(&[("f1", "a1")]));
        filters.expire(5_999);
        assert_eq!(filters.len(), 1);
        filters.expire(6_000);
        assert!(filters.is_empty());
        assert_eq!(filters.next_expiry(), None);
    }

    #[test]
    fn filters_hide_only_what_was_declined() {
        let declined = Resources { ports: vec![PortRange { begin: 31000, end: 31010 }], ..res(2.0, 1024.0) };
        let mut filters = Filters::default();
        filters.add("f1", "a1", &declined, 60.0, 0);
        let cases: Vec<(Resources, bool)> = vec![
            (declined.clone(), true),
            (res(1.0, 512.0), true),
            (Resources { ports: vec![PortRange { begin: 31002, end: 31005 }], ..res(2.0, 1024.0) }, true),
            // More became free: offered again despite the filter.
            (res(3.0, 1024.0), false),
            (res(2.0, 2048.0), false),
            (Resources { ports: vec![PortRange { begin: 31005, end: 31011 }], ..res(1.0, 1.0) }, false),
        ];
        for (i, (free, filtered)) in cases.into_iter().enumerate() {
            assert_eq!(filters.is_filtered("f1", "a1", &free, 10), filtered, "case {i}");
            assert!(!filters.is_filtered("f2", "a1", &free, 10), "case {i}: other framework");
            assert!(!filters.is_filtered("f1", "a2", &free, 10), "case {i}: other agent");
        }
    }

    #[test]
    fn refuse_seconds_like_mesos() {
        let r = res(1.0, 1.0);
        let cases: Vec<(f64, Option<u64>)> = vec![
            (5.0, Some(5_000)),
            (0.5, Some(500)),
            (-1.0, Some(5_000)),
            (f64::NAN, Some(5_000)),
            (0.0, None),
            (f64::INFINITY, Some(u64::MAX)),
        ];
        for (seconds, until) in cases {
            let mut filters = Filters::default();
            filters.add("f", "a", &r, seconds, 0);
            assert_eq!(filters.next_expiry(), until, "refuse_seconds {seconds}");
        }
        // A zero refuse_seconds also removes an earlier filter.
        let mut filters = Filters::default();
        filters.add("f", "a", &r, 10.0, 0);
        filters.add("f", "a", &r, 0.0, 0);
        assert!(filters.is_empty());
    }

    #[test]
    fn revive_clears_a_frameworks_filters_and_agents_can_go() {
        let r = res(1.0, 1.0);
        let mut filters = Filters::default();
        filters.add("f1", "a1", &r, 60.0, 0);
        filters.add("f1", "a2", &r, 60.0, 0);
        filters.add("f2", "a1", &r, 60.0, 0);
        filters.revive("f1");
        assert!(!filters.is_filtered("f1", "a1", &r, 1));
        assert!(!filters.is_filtered("f1", "a2", &r, 1));
        assert!(filters.is_filtered("f2", "a1", &r, 1));
        filters.remove_agent("a1");
        assert!(filters.is_empty());
        // Revived and unsuppressed, the framework is offered the agent again.
        let frameworks = [framework("f1", 1.0, 0.0, 0.0)];
        assert_eq!(run(&[agent("a1", 1.0, 64.0)], &frameworks, &filters, 1), pairs(&[("f1", "a1")]));
    }
}
