//! The leader's allocator, Mesos's model: agents' free resources are offered to frameworks in
//! dominant-resource-fairness order (`core::allocator::allocate`); a framework answers each
//! offer by accepting it with tasks to launch or declining it with `refuse_seconds`, which
//! installs a filter; `revive` clears a framework's filters, and a framework that wants
//! nothing is suppressed (gets no offers).
//!
//! Built-in frameworks (Marathon today) implement [`Framework`] and are asked synchronously in
//! each round, so no offer outlives its round and none needs rescinding when an agent is lost
//! (the next round simply does not offer it). The Mesos v1 scheduler API will adapt external
//! frameworks to the same trait, with offers that stay outstanding until answered or
//! rescinded. Rounds run after every applied change (freed resources are offered at once) and
//! on a timer.
//!
//! Filters live in the leader's memory, as in Mesos: a new leader starts with none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::allocator::{
    AgentFree, DEFAULT_REFUSE_SECONDS, Filters, FrameworkShare, Offer, ROLE_ANY, ROLE_PUBLIC,
};
use crate::core::resources::subtract_ports;
use crate::core::{Command, Resources, State, Task};

/// A framework's answer to one offer.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferAnswer {
    /// Launch these tasks with the offer's resources (each task names the offer's agent).
    Accept { offer_id: String, launch: Vec<Task> },
    /// Do not offer these resources again for `refuse_seconds` (unless more become free or the
    /// framework revives).
    Decline { offer_id: String, refuse_seconds: f64 },
}

/// A framework that takes offers.
pub trait Framework {
    fn id(&self) -> &str;
    /// The roles it subscribed with (`*`, `slave_public`).
    fn roles(&self) -> Vec<String>;
    /// Its role's weight for DRF.
    fn weight(&self) -> f64 {
        1.0
    }
    /// Whether it wants offers now; `false` suppresses it.
    fn wants_offers(&self) -> bool;
    /// Answers offers. An offer it does not answer counts as declined with the default filter.
    fn resource_offers(&self, offers: Vec<Offer>) -> Vec<OfferAnswer>;
}

/// What an agent has free, and what each framework holds, in one pass over the tasks.
pub struct Usage {
    pub agents: Vec<AgentFree>,
    /// Framework id → resources of its tasks.
    pub allocated: HashMap<String, Resources>,
    /// The cluster's total (DRF's denominator).
    pub total: Resources,
}

impl Usage {
    pub fn of(state: &State) -> Self {
        let mut used: HashMap<&str, (Resources, Vec<u16>)> = HashMap::new();
        let mut allocated: HashMap<String, Resources> = HashMap::new();
        for task in state.tasks.values().filter(|t| t.state.holds_resources()) {
            let entry = used.entry(task.agent_id.as_str()).or_default();
            entry.0.add(&task.spec.resources);
            entry.1.extend(task.ports.iter().copied());
            allocated.entry(task.framework_id.clone()).or_default().add(&task.spec.resources);
        }
        let mut total = Resources::default();
        let mut agents = Vec::with_capacity(state.agents.len());
        for agent in state.agents.values() {
            let mut free = agent.total.clone();
            let mut ports: Vec<u16> = Vec::new();
            if let Some((u, p)) = used.get(agent.id.as_str()) {
                free.subtract(u);
                ports = p.clone();
            }
            free.ports = subtract_ports(&agent.total.ports, &ports);
            if agent.accepts_tasks() {
                total.add(&agent.total);
            }
            agents.push(AgentFree {
                agent_id: agent.id.clone(),
                public: agent.public,
                free,
                accepts_tasks: agent.accepts_tasks(),
            });
        }
        Usage { agents, allocated, total }
    }
}

/// The allocator's leader memory.
#[derive(Default)]
pub struct Allocator {
    filters: Mutex<Filters>,
    next_offer: AtomicU64,
}

impl Allocator {
    /// Clears a framework's filters (it wants offers it declined before).
    pub fn revive(&self, framework: &str) {
        self.filters.lock().expect("filters lock").revive(framework);
    }

    /// Forgets everything (leadership changed).
    pub fn reset(&self) {
        *self.filters.lock().expect("filters lock") = Filters::default();
    }

    /// One round: offers free resources to the frameworks that want them and returns the
    /// launches they accepted, checked against the offers.
    pub fn round(&self, state: &State, frameworks: &[&dyn Framework], now_ms: u64) -> Vec<Command> {
        let wanting: Vec<&&dyn Framework> = frameworks.iter().filter(|f| f.wants_offers()).collect();
        if wanting.is_empty() {
            return vec![];
        }
        let usage = Usage::of(state);
        let shares: Vec<FrameworkShare> = wanting
            .iter()
            .map(|f| FrameworkShare {
                framework_id: f.id().to_string(),
                roles: f.roles(),
                weight: f.weight(),
                allocated: usage.allocated.get(f.id()).cloned().unwrap_or_default(),
                suppressed: false,
            })
            .collect();
        let mut filters = self.filters.lock().expect("filters lock");
        filters.expire(now_ms);
        let pairs =
            crate::core::allocator::allocate(&usage.agents, &shares, &filters, &BTreeSet::new(), &usage.total, now_ms);
        let free: HashMap<&str, &AgentFree> = usage.agents.iter().map(|a| (a.agent_id.as_str(), a)).collect();
        let mut by_framework: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        for (framework, agent_id) in pairs {
            let (Some(agent), Some(info)) = (state.agents.get(&agent_id), free.get(agent_id.as_str())) else {
                continue;
            };
            let n = self.next_offer.fetch_add(1, Ordering::Relaxed);
            by_framework.entry(framework.clone()).or_default().push(Offer {
                id: format!("O{n}"),
                framework_id: framework,
                agent_id: agent.id.clone(),
                hostname: agent.hostname.clone(),
                attributes: agent.attributes.clone(),
                region: agent.attributes.get("region").cloned(),
                zone: agent.attributes.get("zone").cloned(),
                role: if agent.public { ROLE_PUBLIC.to_string() } else { ROLE_ANY.to_string() },
                resources: info.free.clone(),
                maintenance: !agent.accepts_tasks(),
            });
        }
        let mut launches: Vec<Task> = Vec::new();
        for framework in wanting {
            let Some(offers) = by_framework.remove(framework.id()) else { continue };
            let by_id: HashMap<String, Offer> = offers.iter().map(|o| (o.id.clone(), o.clone())).collect();
            let mut answered: BTreeSet<String> = BTreeSet::new();
            for answer in framework.resource_offers(offers) {
                match answer {
                    OfferAnswer::Accept { offer_id, launch } => {
                        let Some(offer) = by_id.get(&offer_id) else { continue };
                        answered.insert(offer_id.clone());
                        launches.extend(checked(framework.id(), offer, launch));
                    }
                    OfferAnswer::Decline { offer_id, refuse_seconds } => {
                        let Some(offer) = by_id.get(&offer_id) else { continue };
                        answered.insert(offer_id.clone());
                        filters.add(framework.id(), &offer.agent_id, &offer.resources, refuse_seconds, now_ms);
                    }
                }
            }
            for (id, offer) in &by_id {
                if !answered.contains(id) {
                    filters.add(framework.id(), &offer.agent_id, &offer.resources, DEFAULT_REFUSE_SECONDS, now_ms);
                }
            }
        }
        if launches.is_empty() {
            return vec![];
        }
        vec![Command::TaskLaunchBatch { tasks: launches }]
    }
}

/// The accepted tasks that fit the offer (the state checks again when it applies them).
fn checked(framework: &str, offer: &Offer, launch: Vec<Task>) -> Vec<Task> {
    let mut left = offer.resources.clone();
    let mut out = Vec::new();
    for task in launch {
        let ports_ok = task.ports.iter().all(|p| left.has_port(*p));
        if task.agent_id != offer.agent_id
            || task.framework_id != framework
            || !left.fits(&task.spec.resources)
            || !ports_ok
        {
            tracing::warn!(framework, task = %task.id, offer = %offer.id, "an accepted task does not fit its offer; dropped");
            continue;
        }
        left.subtract(&task.spec.resources);
        left.ports = subtract_ports(&left.ports, &task.ports);
        out.push(task);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::agents::AgentRegistration;
    use crate::core::{PortRange, TaskState};

    fn state_with_agents(n: usize, public: &[usize]) -> State {
        let mut state = State::default();
        for i in 0..n {
            let command = Command::AgentRegister {
                registration: AgentRegistration {
                    agent_id: format!("a{i}"),
                    hostname: format!("host-{i}"),
                    address: "127.0.0.1".into(),
                    api: String::new(),
                    total: Resources {
                        cpus: 2.0,
                        mem: 1024.0,
                        disk: 0.0,
                        ports: vec![PortRange { begin: 31000, end: 31001 }],
                    },
                    attributes: BTreeMap::new(),
                    public: public.contains(&i),
                    version: "test".into(),
                },
                at_ms: 1,
            };
            state.apply(i as u64 + 1, &command);
        }
        state
    }

    fn task(id: &str, framework: &str, agent: &str, cpus: f64, ports: Vec<u16>) -> Task {
        let mut task = Task::for_test(id, framework, "t", agent, TaskState::TASK_STAGING, &ports);
        task.spec.resources = Resources { cpus, mem: 64.0, disk: 0.0, ports: vec![] };
        task
    }

    /// A framework that records its offers and answers with a fixed policy.
    struct Recording {
        id: &'static str,
        roles: Vec<String>,
        wants: bool,
        seen: RefCell<Vec<Offer>>,
        answer: fn(&Offer) -> OfferAnswer,
    }

    impl Recording {
        fn new(id: &'static str, answer: fn(&Offer) -> OfferAnswer) -> Self {
            Recording { id, roles: vec![ROLE_ANY.into()], wants: true, seen: RefCell::default(), answer }
        }

        fn agents_seen(&self) -> Vec<String> {
            let mut agents: Vec<String> = self.seen.borrow_mut().drain(..).map(|o| o.agent_id).collect();
            agents.sort();
            agents
        }
    }

    impl Framework for Recording {
        fn id(&self) -> &str {
            self.id
        }
        fn roles(&self) -> Vec<String> {
            self.roles.clone()
        }
        fn wants_offers(&self) -> bool {
            self.wants
        }
        fn resource_offers(&self, offers: Vec<Offer>) -> Vec<OfferAnswer> {
            self.seen.borrow_mut().extend(offers.iter().cloned());
            offers.iter().map(self.answer).collect()
        }
    }

    fn decline_long(o: &Offer) -> OfferAnswer {
        OfferAnswer::Decline { offer_id: o.id.clone(), refuse_seconds: 60.0 }
    }

    #[test]
    fn declines_filter_until_revive_or_expiry_and_public_agents_need_the_role() {
        let state = state_with_agents(3, &[2]);
        let allocator = Allocator::default();
        let framework = Recording::new("f", decline_long);
        assert!(allocator.round(&state, &[&framework], 1_000).is_empty());
        assert_eq!(framework.agents_seen(), ["a0", "a1"], "the public agent a2 needs the slave_public role");
        allocator.round(&state, &[&framework], 2_000);
        assert!(framework.agents_seen().is_empty(), "declined for 60 s");
        allocator.round(&state, &[&framework], 62_000);
        assert_eq!(framework.agents_seen(), ["a0", "a1"], "the filter expired");
        allocator.round(&state, &[&framework], 63_000);
        allocator.revive("f");
        allocator.round(&state, &[&framework], 63_001);
        assert_eq!(framework.agents_seen(), ["a0", "a1"], "revive clears the filters");
        let mut public = Recording::new("p", decline_long);
        public.roles.push(ROLE_PUBLIC.into());
        allocator.round(&state, &[&public], 63_002);
        assert_eq!(public.agents_seen(), ["a0", "a1", "a2"]);
        let mut quiet = Recording::new("q", decline_long);
        quiet.wants = false;
        allocator.round(&state, &[&quiet], 63_003);
        assert!(quiet.agents_seen().is_empty(), "a suppressed framework gets no offers");
    }

    #[test]
    fn accepted_tasks_must_fit_their_offer() {
        let state = state_with_agents(1, &[]);
        let allocator = Allocator::default();
        let framework = Recording::new("f", |o| OfferAnswer::Accept {
            offer_id: o.id.clone(),
            launch: vec![
                task("fits", "f", &o.agent_id, 1.5, vec![31000]),
                task("too-big", "f", &o.agent_id, 1.0, vec![]),
                task("port-taken", "f", &o.agent_id, 0.1, vec![31000]),
                task("other-agent", "f", "elsewhere", 0.1, vec![]),
                task("other-framework", "g", &o.agent_id, 0.1, vec![]),
                task("fits-too", "f", &o.agent_id, 0.5, vec![31001]),
            ],
        });
        let launched: Vec<String> = allocator
            .round(&state, &[&framework], 1)
            .into_iter()
            .flat_map(|c| match c {
                Command::TaskLaunchBatch { tasks } => tasks.into_iter().map(|t| t.id),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(launched, ["fits", "fits-too"]);
    }

    #[test]
    fn drf_offers_each_agent_to_the_framework_with_the_smallest_share() {
        let mut state = state_with_agents(2, &[]);
        // Framework "big" already holds most of a0.
        state.apply(10, &Command::TaskLaunch { task: Box::new(task("held", "big", "a0", 1.5, vec![])) });
        let allocator = Allocator::default();
        let big = Recording::new("big", decline_long);
        let small = Recording::new("small", decline_long);
        allocator.round(&state, &[&big, &small], 1);
        assert_eq!(small.agents_seen(), ["a0"], "the framework holding less is offered first");
        assert_eq!(big.agents_seen(), ["a1"], "then the other: small's share grew with the first offer");
    }
}
