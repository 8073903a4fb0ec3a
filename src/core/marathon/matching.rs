//! Matching one instance of an app against one offer (Marathon's `ResourceMatcher` and
//! `PortsMatcher`), and the statistics `/v2/queue` reports about declined offers.
//!
//! Independent of the app type: the caller turns an app into an [`InstanceRequest`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use super::constraints::{AgentView, Constraint, Placed, meets};
use crate::core::allocator::{Offer, ROLE_ANY};
use crate::core::resources::{PortRange, Resources};

/// Tolerance for resource comparisons (as `Resources::fits`).
const EPSILON: f64 = 0.000_5;

/// What one instance needs from an offer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceRequest {
    /// cpus, mem and disk (ports are below).
    pub resources: Resources,
    /// One entry per host port wanted. `0` is any free port. A non-zero entry is that exact
    /// port if `require_ports` is set; otherwise it is a service port and the host port is any
    /// free one (Marathon: without `requirePorts`, host ports are always dynamic). For
    /// container port mappings pass the host ports and `require_ports: true`.
    pub ports: Vec<u16>,
    pub require_ports: bool,
    pub constraints: Vec<Constraint>,
    /// Resource roles the app accepts (`acceptedResourceRoles`); empty means `["*"]`.
    pub accepted_roles: Vec<String>,
    /// The app's target instance count (GROUP_BY balancing needs it).
    pub instances: u32,
}

/// Why an offer did not fit, with Marathon's names. The order is Marathon's reason funnel
/// (`NoOfferMatchReason.reasonFunnel`): the statistics count an unmatched offer under its
/// first reason in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NoMatchReason {
    UnfulfilledRole,
    UnfulfilledConstraint,
    /// Never produced (medos has no reservations); listed so `/v2/queue` names every reason.
    NoCorrespondingReservationFound,
    AgentMaintenance,
    InsufficientCpus,
    InsufficientMemory,
    InsufficientDisk,
    /// Never produced (medos agents advertise no GPUs).
    InsufficientGpus,
    InsufficientPorts,
    /// Never produced (GPU agents declined for non-GPU apps; medos has no GPUs).
    DeclinedScarceResources,
}

impl NoMatchReason {
    /// Every reason, in funnel order.
    pub const FUNNEL: [NoMatchReason; 10] = [
        Self::UnfulfilledRole,
        Self::UnfulfilledConstraint,
        Self::NoCorrespondingReservationFound,
        Self::AgentMaintenance,
        Self::InsufficientCpus,
        Self::InsufficientMemory,
        Self::InsufficientDisk,
        Self::InsufficientGpus,
        Self::InsufficientPorts,
        Self::DeclinedScarceResources,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnfulfilledRole => "UnfulfilledRole",
            Self::UnfulfilledConstraint => "UnfulfilledConstraint",
            Self::NoCorrespondingReservationFound => "NoCorrespondingReservationFound",
            Self::AgentMaintenance => "AgentMaintenance",
            Self::InsufficientCpus => "InsufficientCpus",
            Self::InsufficientMemory => "InsufficientMemory",
            Self::InsufficientDisk => "InsufficientDisk",
            Self::InsufficientGpus => "InsufficientGpus",
            Self::InsufficientPorts => "InsufficientPorts",
            Self::DeclinedScarceResources => "DeclinedScarceResources",
        }
    }
}

/// What an instance takes from a matching offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    /// The host port chosen for each entry of [`InstanceRequest::ports`], in the same order.
    pub ports: Vec<u16>,
    /// The request's cpus, mem and disk, and the chosen ports as ranges.
    pub resources: Resources,
}

/// Matches one instance against `offer`; `placed` is what the app's other instances hold
/// (see [`Placed`] and [`meets`]). Dynamic ports are the lowest free ones; see
/// [`match_offer_from`] to spread them.
pub fn match_offer(request: &InstanceRequest, offer: &Offer, placed: &Placed) -> Result<Matched, Vec<NoMatchReason>> {
    match_offer_from(request, offer, placed, 0)
}

/// [`match_offer`] with dynamic ports taken from the offer's free ports starting at position
/// `port_start` (modulo their number) and wrapping around, as Marathon starts at a random
/// position so that a port just freed is not reused at once. The caller draws `port_start`.
///
/// Marathon's rules, and its reasons:
/// * the offer's role must be accepted (`UnfulfilledRole`); resources of another role count as
///   absent, so the cpus/mem/disk the instance needs are then insufficient too;
/// * cpus, mem and disk must fit (`InsufficientCpus`, `InsufficientMemory`,
///   `InsufficientDisk`; a zero need always fits);
/// * every constraint must hold on the offer's agent (`UnfulfilledConstraint`);
/// * an agent in maintenance is declined with `UnfulfilledConstraint` and `AgentMaintenance`;
/// * only when all of that passed are ports chosen (`InsufficientPorts`), as in Marathon.
///
/// Every reason found is returned, without duplicates, in funnel order.
pub fn match_offer_from(
    request: &InstanceRequest,
    offer: &Offer,
    placed: &Placed,
    port_start: u64,
) -> Result<Matched, Vec<NoMatchReason>> {
    use NoMatchReason::*;
    let mut reasons = Vec::new();
    let role_ok = if request.accepted_roles.is_empty() {
        offer.role == ROLE_ANY
    } else {
        request.accepted_roles.contains(&offer.role)
    };
    let empty = Resources::default();
    let available = if role_ok { &offer.resources } else { &empty };
    let need = &request.resources;
    for (needed, free, reason) in [
        (need.cpus, available.cpus, InsufficientCpus),
        (need.mem, available.mem, InsufficientMemory),
        (need.disk, available.disk, InsufficientDisk),
    ] {
        if needed > 0.0 && needed > free + EPSILON {
            reasons.push(reason);
        }
    }
    if !role_ok {
        reasons.push(UnfulfilledRole);
    }
    let candidate = AgentView {
        agent_id: &offer.agent_id,
        hostname: &offer.hostname,
        attributes: &offer.attributes,
        region: offer.region.as_deref(),
        zone: offer.zone.as_deref(),
    };
    if !request.constraints.iter().all(|c| meets(c, &candidate, placed, request.instances)) {
        reasons.push(UnfulfilledConstraint);
    }
    if offer.maintenance {
        reasons.extend([UnfulfilledConstraint, AgentMaintenance]);
    }
    if reasons.is_empty() {
        match choose_ports(&request.ports, request.require_ports, &available.ports, port_start) {
            Some(ports) => {
                let resources = Resources { ports: as_ranges(&ports), ..need.clone() };
                return Ok(Matched { ports, resources });
            }
            None => reasons.push(InsufficientPorts),
        }
    }
    reasons.sort();
    reasons.dedup();
    Err(reasons)
}

/// Host ports for `wanted` from the offered `ranges`, or `None` if they do not fit.
fn choose_ports(wanted: &[u16], require: bool, ranges: &[PortRange], start: u64) -> Option<Vec<u16>> {
    let has = |port: u16| ranges.iter().any(|r| r.begin <= port && port <= r.end);
    let fixed: Vec<u16> = wanted.iter().copied().filter(|&p| require && p != 0).collect();
    if !fixed.iter().all(|&p| has(p)) {
        return None;
    }
    let mut free = dynamic_ports(ranges, start).filter(|p| !fixed.contains(p));
    wanted.iter().map(|&port| if require && port != 0 { Some(port) } else { free.next() }).collect()
}

/// The offered ports (ranges sorted and merged, so none appears twice), from position `start`
/// with wrap-around.
fn dynamic_ports(ranges: &[PortRange], start: u64) -> impl Iterator<Item = u16> {
    let mut sorted: Vec<PortRange> = ranges.iter().filter(|r| !r.is_empty()).copied().collect();
    sorted.sort_by_key(|r| (r.begin, r.end));
    let mut merged: Vec<PortRange> = Vec::new();
    for r in sorted {
        match merged.last_mut() {
            Some(last) if r.begin <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let total: u64 = merged.iter().map(|r| u64::from(r.len())).sum();
    let mut offset = if total == 0 { 0 } else { start % total };
    // The range holding the start position, and the start's offset in it.
    let mut first = 0;
    while first < merged.len() && offset >= u64::from(merged[first].len()) {
        offset -= u64::from(merged[first].len());
        first += 1;
    }
    let (head, rest) = merged.split_at(first);
    let (head, mut rest) = (head.to_vec(), rest.to_vec());
    let mut before_start = None;
    if let Some(r) = rest.first_mut() {
        // The start lies inside this range, so the sum stays within it.
        let middle = r.begin + offset as u16;
        if middle > r.begin {
            before_start = Some(PortRange { begin: r.begin, end: middle - 1 });
        }
        r.begin = middle;
    }
    rest.into_iter().chain(head).chain(before_start).flat_map(|r| r.begin..=r.end)
}

/// Ports as few ranges as possible, ascending.
fn as_ranges(ports: &[u16]) -> Vec<PortRange> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<PortRange> = Vec::new();
    for p in sorted {
        match out.last_mut() {
            Some(last) if u32::from(last.end) + 1 == u32::from(p) => last.end = p,
            _ => out.push(PortRange { begin: p, end: p }),
        }
    }
    out
}

/// One line of `/v2/queue`'s `rejectSummaryLastOffers` and `rejectSummaryLaunchAttempt`:
/// of the `processed` offers that got this far down the funnel, `declined` stopped here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclinedOfferStep {
    pub reason: NoMatchReason,
    pub declined: u64,
    pub processed: u64,
}

/// Offer statistics of one app, as Marathon keeps them: every processed offer is counted, and
/// an unmatched offer is counted once, under its first reason in funnel order. Serialises as
/// the list of [`DeclinedOfferStep`]s Marathon shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectSummary {
    processed: u64,
    unused: u64,
    declined: BTreeMap<NoMatchReason, u64>,
}

impl RejectSummary {
    /// Counts one processed offer: `Ok` matched, `Err` did not, for these reasons.
    pub fn add(&mut self, result: &Result<(), Vec<NoMatchReason>>) {
        match result {
            Ok(()) => self.add_match(),
            Err(reasons) => self.add_no_match(reasons),
        }
    }

    pub fn add_match(&mut self) {
        self.processed += 1;
    }

    pub fn add_no_match(&mut self, reasons: &[NoMatchReason]) {
        self.processed += 1;
        self.unused += 1;
        if let Some(first) = reasons.iter().min() {
            *self.declined.entry(*first).or_insert(0) += 1;
        }
    }

    /// The summary of the last unmatched offer of each agent (`rejectSummaryLastOffers`).
    pub fn from_no_matches<'a>(last: impl IntoIterator<Item = &'a [NoMatchReason]>) -> Self {
        let mut summary = Self::default();
        for reasons in last {
            summary.add_no_match(reasons);
        }
        summary
    }

    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Offers that did not match.
    pub fn unused(&self) -> u64 {
        self.unused
    }

    /// Offers counted under `reason`.
    pub fn declined(&self, reason: NoMatchReason) -> u64 {
        self.declined.get(&reason).copied().unwrap_or(0)
    }

    /// Every reason in funnel order with the offers it declined and the offers that reached
    /// it (all processed offers minus those declined by earlier reasons).
    pub fn steps(&self) -> Vec<DeclinedOfferStep> {
        let mut processed = self.processed;
        NoMatchReason::FUNNEL
            .into_iter()
            .map(|reason| {
                let declined = self.declined(reason);
                let step = DeclinedOfferStep { reason, declined, processed };
                processed = processed.saturating_sub(declined);
                step
            })
            .collect()
    }
}

impl Serialize for RejectSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.steps().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::NoMatchReason::*;
    use super::*;
    use crate::core::allocator::ROLE_PUBLIC;
    use crate::core::marathon::constraints::Operator;

    fn range(begin: u16, end: u16) -> PortRange {
        PortRange { begin, end }
    }

    fn offer(host: &str, cpus: f64, mem: f64, ports: Vec<PortRange>) -> Offer {
        Offer {
            id: format!("o-{host}"),
            framework_id: "marathon".into(),
            agent_id: format!("id-{host}"),
            hostname: host.into(),
            attributes: BTreeMap::new(),
            region: None,
            zone: None,
            role: "*".into(),
            resources: Resources { cpus, mem, disk: 1000.0, ports },
            maintenance: false,
        }
    }

    fn request(cpus: f64, mem: f64, ports: Vec<u16>) -> InstanceRequest {
        InstanceRequest {
            resources: Resources { cpus, mem, disk: 0.0, ports: vec![] },
            ports,
            require_ports: false,
            constraints: vec![],
            accepted_roles: vec![],
            instances: 1,
        }
    }

    fn unique_host() -> Constraint {
        Constraint { field: "hostname".into(), operator: Operator::Unique, value: None }
    }

    #[test]
    fn each_reason_and_several_at_once() {
        let base_offer = offer("h1", 1.0, 1024.0, vec![range(31000, 31001)]);
        let placed_attrs = BTreeMap::new();
        let on_h1 =
            AgentView { agent_id: "id-h1", hostname: "h1", attributes: &placed_attrs, region: None, zone: None };
        type Case = (&'static str, Box<dyn Fn(&mut InstanceRequest, &mut Offer)>, bool, Vec<NoMatchReason>);
        let cases: Vec<Case> = vec![
            ("fits", Box::new(|_, _| {}), false, vec![]),
            ("cpus", Box::new(|r, _| r.resources.cpus = 1.5), false, vec![InsufficientCpus]),
            ("mem", Box::new(|r, _| r.resources.mem = 2048.0), false, vec![InsufficientMemory]),
            ("disk", Box::new(|r, _| r.resources.disk = 1001.0), false, vec![InsufficientDisk]),
            ("ports", Box::new(|r, _| r.ports = vec![0, 0, 0]), false, vec![InsufficientPorts]),
            (
                "required port absent",
                Box::new(|r, _| (r.ports, r.require_ports) = (vec![80], true)),
                false,
                vec![InsufficientPorts],
            ),
            ("constraint", Box::new(|r, _| r.constraints = vec![unique_host()]), true, vec![UnfulfilledConstraint]),
            (
                "maintenance",
                Box::new(|_, o| o.maintenance = true),
                false,
                vec![UnfulfilledConstraint, AgentMaintenance],
            ),
            // Another role: its resources count as absent, so every need is insufficient.
            (
                "public offer",
                Box::new(|_, o| o.role = ROLE_PUBLIC.into()),
                false,
                vec![UnfulfilledRole, InsufficientCpus, InsufficientMemory],
            ),
            (
                "only public accepted",
                Box::new(|r, _| r.accepted_roles = vec![ROLE_PUBLIC.into()]),
                false,
                vec![UnfulfilledRole, InsufficientCpus, InsufficientMemory],
            ),
            (
                "many",
                Box::new(|r, o| {
                    r.resources.cpus = 2.0;
                    r.resources.mem = 4096.0;
                    r.constraints = vec![unique_host()];
                    o.maintenance = true;
                }),
                true,
                vec![UnfulfilledConstraint, AgentMaintenance, InsufficientCpus, InsufficientMemory],
            ),
            // Ports are looked at only when everything else fits (Marathon).
            (
                "ports after cpus",
                Box::new(|r, _| (r.resources.cpus, r.ports) = (2.0, vec![0, 0, 0])),
                false,
                vec![InsufficientCpus],
            ),
        ];
        for (name, change, placed_on_h1, expected) in cases {
            let mut r = request(0.5, 512.0, vec![0]);
            let mut o = base_offer.clone();
            change(&mut r, &mut o);
            let placed = if placed_on_h1 { vec![on_h1] } else { vec![] };
            let got = match_offer(&r, &o, &Placed::new(&r.constraints, placed));
            if expected.is_empty() {
                assert!(got.is_ok(), "{name}: {got:?}");
            } else {
                assert_eq!(got.unwrap_err(), expected, "{name}");
            }
        }
    }

    #[test]
    fn zero_needs_fit_and_roles_are_accepted() {
        let mut o = offer("h1", 0.0, 0.0, vec![]);
        o.resources.disk = 0.0;
        assert!(match_offer(&request(0.0, 0.0, vec![]), &o, &Placed::default()).is_ok());
        o.role = ROLE_PUBLIC.into();
        let mut r = request(0.0, 0.0, vec![]);
        r.accepted_roles = vec!["*".into(), ROLE_PUBLIC.into()];
        assert!(match_offer(&r, &o, &Placed::default()).is_ok());
        // Within the tolerance of resource arithmetic.
        let o = offer("h1", 0.3, 64.0, vec![]);
        assert!(match_offer(&request(0.1 + 0.2, 64.0, vec![]), &o, &Placed::default()).is_ok());
    }

    #[test]
    fn port_choice() {
        let ranges = vec![range(31005, 31006), range(31000, 31002)];
        // (wanted, require_ports, start, expected host ports or None)
        type Case = (Vec<u16>, bool, u64, Option<Vec<u16>>);
        let cases: Vec<Case> = vec![
            (vec![], false, 0, Some(vec![])),
            (vec![0, 0], false, 0, Some(vec![31000, 31001])),
            // Service ports without requirePorts still get dynamic host ports.
            (vec![10000, 10001], false, 0, Some(vec![31000, 31001])),
            // From position 3 (31005), wrapping around.
            (vec![0, 0, 0], false, 3, Some(vec![31005, 31006, 31000])),
            (vec![0, 0], false, 4, Some(vec![31006, 31000])),
            (vec![0], false, 5, Some(vec![31000])),
            (vec![0, 0], false, 2, Some(vec![31002, 31005])),
            (vec![0; 5], false, 7, Some(vec![31002, 31005, 31006, 31000, 31001])),
            (vec![0; 6], false, 0, None),
            // requirePorts: exactly these ports, dynamic ones avoid them.
            (vec![31001, 31005], true, 0, Some(vec![31001, 31005])),
            (vec![31001, 0, 0], true, 0, Some(vec![31001, 31000, 31002])),
            (vec![0, 31000], true, 0, Some(vec![31001, 31000])),
            (vec![31003], true, 0, None),
            (vec![31001, 0, 0, 0, 0, 0], true, 0, None),
        ];
        for (wanted, require, start, expected) in cases {
            let mut r = request(0.1, 32.0, wanted.clone());
            r.require_ports = require;
            let got = match_offer_from(&r, &offer("h1", 1.0, 1024.0, ranges.clone()), &Placed::default(), start);
            match expected {
                Some(ports) => {
                    let m = got.unwrap_or_else(|e| panic!("{wanted:?} from {start}: {e:?}"));
                    assert_eq!(m.ports, ports, "{wanted:?} require={require} from {start}");
                    assert_eq!(m.resources.ports, as_ranges(&ports));
                    assert_eq!((m.resources.cpus, m.resources.mem), (0.1, 32.0));
                }
                None => assert_eq!(got.unwrap_err(), vec![InsufficientPorts], "{wanted:?} require={require}"),
            }
        }
        assert_eq!(as_ranges(&[5, 3, 4, 9, 7, 8, 1]), vec![range(1, 1), range(3, 5), range(7, 9)]);
        // Overlapping offered ranges never yield a port twice.
        let got = match_offer(
            &request(0.1, 32.0, vec![0; 4]),
            &offer("h", 1.0, 64.0, vec![range(1, 3), range(2, 4)]),
            &Placed::default(),
        );
        assert_eq!(got.unwrap().ports, vec![1, 2, 3, 4]);
        // The whole port space.
        let got = match_offer_from(
            &request(0.1, 32.0, vec![0; 2]),
            &offer("h", 1.0, 64.0, vec![range(1, 65535)]),
            &Placed::default(),
            65534,
        );
        assert_eq!(got.unwrap().ports, vec![65535, 1]);
    }

    #[test]
    fn constraints_see_the_offers_agent_and_the_placed_ones() {
        let mut o = offer("h2", 1.0, 1024.0, vec![]);
        o.region = Some("eu".into());
        o.zone = Some("eu-1".into());
        o.attributes.insert("rack".into(), "r1".into());
        let attrs = BTreeMap::from([("rack".to_string(), "r1".to_string())]);
        let placed = [AgentView {
            agent_id: "id-h1",
            hostname: "h1",
            attributes: &attrs,
            region: Some("eu"),
            zone: Some("eu-2"),
        }];
        let with = |field: &str, operator: Operator, value: Option<&str>| {
            let mut r = request(0.1, 32.0, vec![]);
            r.instances = 3;
            r.constraints = vec![Constraint { field: field.into(), operator, value: value.map(str::to_string) }];
            match_offer(&r, &o, &Placed::new(&r.constraints, placed)).is_ok()
        };
        assert!(with("hostname", Operator::Unique, None));
        assert!(!with("rack", Operator::Unique, None));
        assert!(!with("@region", Operator::Unique, None));
        assert!(with("@zone", Operator::Unique, None));
        assert!(with("@zone", Operator::Is, Some("eu-1")));
        assert!(with("rack", Operator::MaxPer, Some("2")));
        assert!(!with("rack", Operator::MaxPer, Some("1")));
    }

    #[test]
    fn reject_summary_counts_the_first_reason_in_the_funnel() {
        let mut summary = RejectSummary::default();
        summary.add(&Ok(()));
        summary.add(&Err(vec![InsufficientMemory, UnfulfilledConstraint]));
        summary.add(&Err(vec![InsufficientCpus, InsufficientMemory]));
        summary.add(&Err(vec![InsufficientPorts]));
        summary.add(&Err(vec![UnfulfilledConstraint, AgentMaintenance]));
        summary.add(&Err(vec![]));
        assert_eq!((summary.processed(), summary.unused()), (6, 5));
        let steps: Vec<(NoMatchReason, u64, u64)> =
            summary.steps().into_iter().map(|s| (s.reason, s.declined, s.processed)).collect();
        assert_eq!(
            steps,
            vec![
                (UnfulfilledRole, 0, 6),
                (UnfulfilledConstraint, 2, 6),
                (NoCorrespondingReservationFound, 0, 4),
                (AgentMaintenance, 0, 4),
                (InsufficientCpus, 1, 4),
                (InsufficientMemory, 0, 3),
                (InsufficientDisk, 0, 3),
                (InsufficientGpus, 0, 3),
                (InsufficientPorts, 1, 3),
                (DeclinedScarceResources, 0, 2),
            ]
        );
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json[1], serde_json::json!({"reason": "UnfulfilledConstraint", "declined": 2, "processed": 6}));
        assert_eq!(json.as_array().unwrap().len(), 10);

        let last: Vec<Vec<NoMatchReason>> = vec![vec![InsufficientCpus], vec![UnfulfilledRole, InsufficientCpus]];
        let summary = RejectSummary::from_no_matches(last.iter().map(Vec::as_slice));
        assert_eq!(
            (summary.processed(), summary.declined(UnfulfilledRole), summary.declined(InsufficientCpus)),
            (2, 1, 1)
        );
    }

    #[test]
    fn reasons_have_marathons_names_in_funnel_order() {
        for (i, reason) in NoMatchReason::FUNNEL.into_iter().enumerate() {
            assert_eq!(serde_json::to_value(reason).unwrap(), serde_json::json!(reason.as_str()));
            assert_eq!(serde_json::from_value::<NoMatchReason>(serde_json::json!(reason.as_str())).unwrap(), reason);
            if i > 0 {
                assert!(NoMatchReason::FUNNEL[i - 1] < reason);
            }
        }
        assert_eq!(NoMatchReason::FUNNEL[0].as_str(), "UnfulfilledRole");
    }
}
