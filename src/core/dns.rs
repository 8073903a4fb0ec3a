//! Cluster DNS answers, computed from the replicated state (pure: no sockets, no clock).
//!
//! Names follow Mesos-DNS, under the cluster domain (`mesos` by default):
//!
//! | name | type | answer |
//! | --- | --- | --- |
//! | `<domain>` | SOA, NS | `ns1.<domain>` serves the zone (every master does) |
//! | `ns1.<domain>` | A/AAAA | every master |
//! | `leader.<domain>` | A/AAAA | the Raft leader |
//! | `master.<domain>`, `master<N>.<domain>` | A/AAAA | every master, the N-th master |
//! | `_leader._tcp.<domain>`, `_leader._udp.<domain>` | SRV | `leader.<domain>`, the API port |
//! | `agent.<domain>`, `slave.<domain>` | A/AAAA | every active agent |
//! | `marathon.<domain>` | A/AAAA | the leader (the built-in Marathon runs there) |
//! | `<task>.<framework>.<domain>` | A/AAAA | the agent of each running instance |
//! | `<task>.<framework>.slave.<domain>` | A/AAAA | the same (the agent's address) |
//! | `<task>-<hash>-<agent>.<framework>[.slave].<domain>` | A/AAAA | one instance |
//! | `_<task>._tcp.<framework>[.slave].<domain>` (and `_udp`) | SRV | one per host port of each instance, target the instance's `…slave.<domain>` name |
//! | `_<port name>._<task>._tcp.<framework>.<domain>` | SRV | the same, for a named port |
//!
//! `<task>` is the task's name made a DNS label the Mesos-DNS way (RFC 1123: lower case;
//! `.`, `_` and `-` become `-`; other characters are dropped; at most 63 characters). Marathon
//! names a task after its app id's segments innermost first, so app `/grp/app` is
//! `app-grp.marathon.<domain>`. `<hash>` is 5 characters derived from the task id and `<agent>`
//! the last `-` field of the agent id (`s0`). Only TASK_RUNNING tasks are named, and of tasks
//! with health checks only those reported healthy. SRV protocols come from the app's
//! `portDefinitions` (`tcp`, `udp` or `udp,tcp`); a task of another framework has no port
//! protocols, so, as in Mesos-DNS, each of its ports is offered under both `_tcp` and `_udp`.
//!
//! TTLs: [`TTL`] (60 s, Mesos-DNS's default) for masters, agents and the zone records;
//! [`TASK_TTL`] (5 s) for task names, which change whenever an instance starts, dies or moves;
//! negative answers are cached for [`NEGATIVE_TTL`] (the SOA minimum) so a name that starts to
//! exist is found within seconds. Names are case-insensitive.

use ::core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::agents::AgentStatus;
use super::marathon::state::FRAMEWORK_ID as MARATHON;
use super::state::State;
use super::tasks::Task;

/// The cluster domain when none is configured (Mesos-DNS's default).
pub const DEFAULT_DOMAIN: &str = "mesos";
/// TTL of masters, agents and the zone's own records (Mesos-DNS's default `ttl`).
pub const TTL: u32 = 60;
/// TTL of task names: short, because instances come and go.
pub const TASK_TTL: u32 = 5;
/// How long resolvers may cache "no such name" (the SOA minimum).
pub const NEGATIVE_TTL: u32 = 5;
/// Longest DNS label (RFC 1123).
pub const MAX_LABEL: usize = 63;

/// The record types the cluster zone knows; anything else is [`RecordType::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
    Srv,
    Ns,
    Soa,
    /// `ANY` (`*`): every record of the name.
    Any,
    Other(u16),
}

/// The start of authority of the cluster zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv { priority: u16, weight: u16, port: u16, target: String },
    Ns(String),
    Soa(Soa),
}

impl RecordData {
    fn matches(&self, t: RecordType) -> bool {
        matches!(
            (self, t),
            (_, RecordType::Any)
                | (RecordData::A(_), RecordType::A)
                | (RecordData::Aaaa(_), RecordType::Aaaa)
                | (RecordData::Srv { .. }, RecordType::Srv)
                | (RecordData::Ns(_), RecordType::Ns)
                | (RecordData::Soa(_), RecordType::Soa)
        )
    }
}

/// One resource record. Names are absolute, with the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

/// The response code of an answer from the cluster zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
}

/// What the zone says about one query. `NoError` with no answers is NODATA: the name exists
/// but has no record of the asked type. Negative answers carry the SOA in `authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

impl Answer {
    pub fn is_nxdomain(&self) -> bool {
        self.rcode == Rcode::NxDomain
    }

    pub fn is_nodata(&self) -> bool {
        self.rcode == Rcode::NoError && self.answers.is_empty()
    }
}

/// Lower-cases `name` and gives it its trailing dot.
pub fn normalize(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// Whether `domain` can be the cluster domain: dot-separated RFC 1123 labels.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    let d = domain.trim_end_matches('.');
    if d.is_empty() || d.len() > 253 {
        return Err(format!("{domain:?} must be a DNS name of 1 to 253 characters, such as mesos"));
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{domain:?}: label {label:?} must be 1 to 63 letters, digits or inner '-' (such as mesos or cluster.local)"
            ));
        }
    }
    Ok(())
}

/// Makes `name` one DNS label the way Mesos-DNS does (RFC 1123): letters lower-cased,
/// `.`, `_` and `-` become `-`, other characters dropped, no leading or trailing `-`, at most
/// 63 characters. Empty when nothing is left.
pub fn label(name: &str) -> String {
    let mapped: String = name
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' => Some(c),
            '-' | '.' | '_' => Some('-'),
            _ => None,
        })
        .collect();
    let trimmed = mapped.trim_start_matches('-');
    let cut = &trimmed[..trimmed.len().min(MAX_LABEL)];
    cut.trim_end_matches('-').to_string()
}

/// Makes a dotted name (a framework name) a sequence of labels, dropping empty ones.
pub fn domain_fragment(name: &str) -> String {
    name.split('.').map(label).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(".")
}

/// The Mesos-DNS label of a Marathon app id: its segments innermost first, joined with `-`
/// (`/grp/app` → `app-grp`).
pub fn app_label(app_id: &str) -> String {
    let mut segments: Vec<&str> = app_id.split('/').filter(|s| !s.is_empty()).collect();
    segments.reverse();
    label(&segments.join("."))
}

/// Five characters that tell instances of one task name apart: a 64-bit FNV-1a hash of the
/// task id in the z-base-32 alphabet Mesos-DNS uses for the same purpose.
fn task_hash(task_id: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in task_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..5).map(|i| char::from(ALPHABET[((h >> (59 - 5 * i)) & 31) as usize])).collect()
}

/// The last `-` field of an agent id (`…-S0` → `s0`), as a label.
fn agent_tail(agent_id: &str) -> String {
    label(agent_id.rsplit('-').next().unwrap_or(agent_id))
}

/// Host and port of an `https://host:port/…` URL.
fn url_host_port(url: &str) -> Option<(IpAddr, Option<u16>)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let ip = host.parse().ok()?;
    Some((ip, port.and_then(|p| p.parse().ok())))
}

fn address(ip: IpAddr) -> RecordData {
    match ip {
        IpAddr::V4(v4) => RecordData::A(v4),
        IpAddr::V6(v6) => RecordData::Aaaa(v6),
    }
}

/// The cluster zone: every record the state implies, built once per state change.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Normalised domain with the trailing dot (`mesos.`).
    domain: String,
    records: BTreeMap<String, Vec<Record>>,
    /// Names that own no records but have names below them (RFC 8020: NODATA, not NXDOMAIN).
    nonterminals: BTreeSet<String>,
    soa: Record,
    /// The SOA of the VIP zone (`l4lb.thisdcos.directory.`), served next to the cluster's.
    vip_soa: Record,
}

/// The VIP zone's apex, normalised (`l4lb.thisdcos.directory.`).
fn vip_apex() -> String {
    normalize(super::vips::DOMAIN)
}

/// Whether `name` is `apex` or below it.
fn under(name: &str, apex: &str) -> bool {
    name == apex || name.strip_suffix(apex).is_some_and(|prefix| prefix.ends_with('.'))
}

/// Whether `name` is answered from the state: the cluster domain `domain`, the VIP zone, or
/// below either (everything else is forwarded).
pub fn in_cluster_zones(name: &str, domain: &str) -> bool {
    let n = normalize(name);
    under(&n, &normalize(domain.trim_end_matches('.'))) || under(&n, &vip_apex())
}

impl Zone {
    /// Builds the zone for `domain` from `state`; `leader` is the Raft leader's node id.
    pub fn build(state: &State, domain: &str, leader: Option<u64>) -> Zone {
        let domain = normalize(domain.trim_end_matches('.'));
        let ns = format!("ns1.{domain}");
        let soa = Record {
            name: domain.clone(),
            ttl: TTL,
            data: RecordData::Soa(Soa {
                mname: ns.clone(),
                rname: format!("root.{ns}"),
                // The applied index: it grows with every change of the zone.
                serial: (state.last_applied & u64::from(u32::MAX)) as u32,
                refresh: 60,
                retry: 600,
                expire: 86_400,
                minimum: NEGATIVE_TTL,
            }),
        };
        let vip_apex = vip_apex();
        let vip_soa = Record { name: vip_apex.clone(), ..soa.clone() };
        let mut zone =
            Zone { domain: domain.clone(), records: BTreeMap::new(), nonterminals: BTreeSet::new(), soa, vip_soa };
        zone.add(domain.clone(), TTL, zone.soa.data.clone());
        zone.add(domain.clone(), TTL, RecordData::Ns(ns.clone()));
        zone.add(vip_apex.clone(), TTL, zone.vip_soa.data.clone());
        zone.add(vip_apex.clone(), TTL, RecordData::Ns(ns.clone()));
        zone.masters(state, leader);
        zone.agents(state);
        for task in state.tasks.values() {
            zone.task(state, task);
        }
        for (name, ip) in &state.vips.by_name {
            zone.add(normalize(&super::vips::dns_name(name)), TTL, RecordData::A(*ip));
        }
        let names: Vec<String> = zone.records.keys().cloned().collect();
        for name in names {
            let apex_len = if under(&name, &vip_apex) { vip_apex.len() } else { domain.len() };
            let mut rest = name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() <= apex_len {
                    break;
                }
                if !zone.records.contains_key(parent) {
                    zone.nonterminals.insert(parent.to_string());
                }
                rest = parent;
            }
        }
        zone
    }

    fn add(&mut self, name: String, ttl: u32, data: RecordData) {
        let records = self.records.entry(name.clone()).or_default();
        if !records.iter().any(|r| r.data == data) {
            records.push(Record { name, ttl, data });
        }
    }

    fn masters(&mut self, state: &State, leader: Option<u64>) {
        let d = self.domain.clone();
        for (n, master) in state.masters.iter().enumerate() {
            let Some((ip, port)) = url_host_port(&master.api) else { continue };
            self.add(format!("master.{d}"), TTL, address(ip));
            self.add(format!("master{n}.{d}"), TTL, address(ip));
            self.add(format!("ns1.{d}"), TTL, address(ip));
            if leader == Some(master.id) {
                self.add(format!("leader.{d}"), TTL, address(ip));
                self.add(format!("{MARATHON}.{d}"), TTL, address(ip));
                if let Some(port) = port {
                    for proto in ["tcp", "udp"] {
                        let target = format!("leader.{d}");
                        let srv = RecordData::Srv { priority: 0, weight: 1, port, target };
                        self.add(format!("_leader._{proto}.{d}"), TTL, srv);
                    }
                }
            }
        }
    }

    fn agents(&mut self, state: &State) {
        let d = self.domain.clone();
        for agent in state.agents.values().filter(|a| a.status == AgentStatus::Active) {
            let Ok(ip) = agent.address.parse::<IpAddr>() else { continue };
            self.add(format!("agent.{d}"), TTL, address(ip));
            self.add(format!("slave.{d}"), TTL, address(ip));
        }
    }

    fn task(&mut self, state: &State, task: &Task) {
        let records = task_records(state, task, &self.domain);
        for r in records {
            self.add(r.name, r.ttl, r.data);
        }
    }

    /// The normalised cluster domain (`mesos.`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `name` is the cluster domain or below it (else it is forwarded).
    pub fn contains(&self, name: &str) -> bool {
        let n = normalize(name);
        under(&n, &self.domain) || under(&n, &self.vip_soa.name)
    }

    /// Answers a query, or `None` when `name` is outside the cluster domain. Answer records
    /// carry the name as asked (its case preserved).
    pub fn answer(&self, name: &str, rtype: RecordType) -> Option<Answer> {
        if !self.contains(name) {
            return None;
        }
        let key = normalize(name);
        let asked = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
        let negative = |rcode| Answer { rcode, answers: vec![], authority: vec![self.negative_soa(&key)] };
        match self.records.get(&key) {
            Some(records) => {
                let answers: Vec<Record> = records
                    .iter()
                    .filter(|r| r.data.matches(rtype))
                    .map(|r| Record { name: asked.clone(), ttl: r.ttl, data: r.data.clone() })
                    .collect();
                if answers.is_empty() {
                    Some(negative(Rcode::NoError))
                } else {
                    Some(Answer { rcode: Rcode::NoError, answers, authority: vec![] })
                }
            }
            None if self.nonterminals.contains(&key) => Some(negative(Rcode::NoError)),
            None => Some(negative(Rcode::NxDomain)),
        }
    }

    /// The SOA for negative answers: its TTL is the negative-caching time (RFC 2308).
    fn negative_soa(&self, name: &str) -> Record {
        let soa = if under(name, &self.vip_soa.name) { &self.vip_soa } else { &self.soa };
        Record { ttl: NEGATIVE_TTL, ..soa.clone() }
    }

    /// Every record, for diagnostics and tests.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values().flatten()
    }

    /// The zone's start of authority.
    pub fn soa(&self) -> &Soa {
        match &self.soa.data {
            RecordData::Soa(soa) => soa,
            _ => unreachable!("the zone's SOA record always holds an SOA"),
        }
    }

    /// Mesos-DNS's `/v1/hosts/{host}`: every A and AAAA address of `name` (lower-cased, with
    /// its trailing dot, as `host`), IPv4 first, each sorted. Empty for a name without
    /// addresses or outside the domain.
    pub fn hosts(&self, name: &str) -> Vec<HostEntry> {
        let key = normalize(name);
        let Some(records) = self.records.get(&key) else { return vec![] };
        let mut v4: Vec<Ipv4Addr> = Vec::new();
        let mut v6: Vec<Ipv6Addr> = Vec::new();
        for r in records {
            match r.data {
                RecordData::A(ip) => v4.push(ip),
                RecordData::Aaaa(ip) => v6.push(ip),
                _ => {}
            }
        }
        v4.sort();
        v6.sort();
        let ips = v4.into_iter().map(IpAddr::V4).chain(v6.into_iter().map(IpAddr::V6));
        ips.map(|ip| HostEntry { host: key.clone(), ip: ip.to_string() }).collect()
    }

    /// Mesos-DNS's `/v1/services/{service}`: one entry per SRV record of `name` and address
    /// of its target (the target's first A, then its first AAAA), `service` as asked; sorted
    /// by target and port. Empty for a name without SRV records.
    pub fn services(&self, name: &str) -> Vec<ServiceEntry> {
        let key = normalize(name);
        let Some(records) = self.records.get(&key) else { return vec![] };
        let mut targets: Vec<(&str, u16)> = records
            .iter()
            .filter_map(|r| match &r.data {
                RecordData::Srv { port, target, .. } => Some((target.as_str(), *port)),
                _ => None,
            })
            .collect();
        targets.sort();
        let mut out = Vec::new();
        for (target, port) in targets {
            let addresses = self.hosts(target);
            let first_v4 = addresses.iter().find(|h| h.ip.parse::<Ipv4Addr>().is_ok());
            let first_v6 = addresses.iter().find(|h| h.ip.parse::<Ipv6Addr>().is_ok());
            for h in first_v4.into_iter().chain(first_v6) {
                out.push(ServiceEntry {
                    service: name.to_string(),
                    host: target.to_string(),
                    ip: h.ip.clone(),
                    port: port.to_string(),
                });
            }
        }
        out
    }
}

/// The records one task gives the zone under `domain` (normalised, with its trailing dot), in
/// Mesos-DNS's order: A/AAAA of its name and canonical name (also under `slave`), then SRV per
/// host port and protocol. Empty unless the task is running (and healthy, when checked) on a
/// known agent with an IP address.
fn task_records(state: &State, task: &Task, domain: &str) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut add = |name: String, ttl: u32, data: RecordData| {
        if !out.iter().any(|r| r.name == name && r.data == data) {
            out.push(Record { name, ttl, data });
        }
    };
    let app = (task.framework_id == MARATHON)
        .then(|| task.app_id.as_ref().and_then(|id| state.marathon.apps.get(id)))
        .flatten()
        .map(|record| &record.app);
    if !task.ready(app.is_some_and(|a| !a.health_checks.is_empty())) {
        return out;
    }
    let Some(agent) = state.agents.get(&task.agent_id) else { return out };
    let Ok(ip) = agent.address.parse::<IpAddr>() else { return out };
    let (name, framework) = (label(&task.spec.name), domain_fragment(&task.framework_id));
    if name.is_empty() || framework.is_empty() {
        return out;
    }
    let d = domain;
    let canonical = format!("{name}-{}-{}", task_hash(&task.id), agent_tail(&task.agent_id));
    for host in [&name, &canonical] {
        add(format!("{host}.{framework}.{d}"), TASK_TTL, address(ip));
        add(format!("{host}.{framework}.slave.{d}"), TASK_TTL, address(ip));
    }
    let target = format!("{canonical}.{framework}.slave.{d}");
    for (i, &port) in task.ports.iter().enumerate() {
        let definition = app.and_then(|a| a.port_definitions.get(i));
        let protocols: Vec<&str> = match definition {
            Some(p) => {
                let list: Vec<&str> = p
                    .protocol
                    .split(',')
                    .map(str::trim)
                    .filter(|p| p.eq_ignore_ascii_case("tcp") || p.eq_ignore_ascii_case("udp"))
                    .collect();
                if list.is_empty() { vec!["tcp"] } else { list }
            }
            None if app.is_some() => vec!["tcp"],
            None => vec!["tcp", "udp"],
        };
        let port_name = definition.and_then(|p| p.name.as_deref()).map(label).filter(|l| !l.is_empty());
        for proto in protocols {
            let proto = proto.to_ascii_lowercase();
            let srv = RecordData::Srv { priority: 0, weight: 1, port, target: target.clone() };
            add(format!("_{name}._{proto}.{framework}.{d}"), TASK_TTL, srv.clone());
            add(format!("_{name}._{proto}.{framework}.slave.{d}"), TASK_TTL, srv.clone());
            if let Some(port_name) = &port_name {
                add(format!("_{port_name}._{name}._{proto}.{framework}.{d}"), TASK_TTL, srv);
            }
        }
    }
    out
}

/// One address of a name, as Mesos-DNS's HTTP API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub host: String,
    pub ip: String,
}

/// One SRV record with its target's address, as Mesos-DNS's HTTP API lists it (the port is a
/// string there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub service: String,
    pub host: String,
    pub ip: String,
    pub port: String,
}

/// Mesos-DNS's `/v1/enumerate`: every framework with the records of each of its named tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enumeration {
    pub frameworks: Vec<EnumeratedFramework>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumeratedFramework {
    pub tasks: Vec<EnumeratedTask>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumeratedTask {
    pub name: String,
    pub id: String,
    pub records: Vec<EnumeratedRecord>,
}

/// One record: `host` is the address (A, AAAA) or `target:port` (SRV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumeratedRecord {
    pub name: String,
    pub host: String,
    pub rtype: String,
}

/// The frameworks Mesos-DNS's enumeration always lists (the built-in ones).
const BUILT_IN_FRAMEWORKS: [&str; 2] = [MARATHON, "medos-tasks"];

/// Builds Mesos-DNS's enumeration under `domain`: the built-in frameworks and every framework
/// with a task, by name; in each, the tasks that have names (running, and healthy when
/// checked), by id, with every record they give the zone.
pub fn enumerate(state: &State, domain: &str) -> Enumeration {
    let domain = normalize(domain.trim_end_matches('.'));
    let mut frameworks: BTreeMap<&str, Vec<EnumeratedTask>> =
        BUILT_IN_FRAMEWORKS.iter().map(|f| (*f, Vec::new())).collect();
    for task in state.tasks.values() {
        let tasks = frameworks.entry(task.framework_id.as_str()).or_default();
        let records: Vec<EnumeratedRecord> = task_records(state, task, &domain)
            .into_iter()
            .filter_map(|r| {
                let (host, rtype) = match r.data {
                    RecordData::A(ip) => (ip.to_string(), "A"),
                    RecordData::Aaaa(ip) => (ip.to_string(), "AAAA"),
                    RecordData::Srv { port, target, .. } => (format!("{target}:{port}"), "SRV"),
                    _ => return None,
                };
                Some(EnumeratedRecord { name: r.name, host, rtype: rtype.into() })
            })
            .collect();
        if !records.is_empty() {
            tasks.push(EnumeratedTask { name: task.spec.name.clone(), id: task.id.clone(), records });
        }
    }
    let frameworks = frameworks
        .into_iter()
        .map(|(name, mut tasks)| {
            tasks.sort_by(|a, b| a.id.cmp(&b.id));
            EnumeratedFramework { tasks, name: name.to_string() }
        })
        .collect();
    Enumeration { frameworks }
}

/// Longest name a lookup accepts (RFC 1035: 253 characters without the trailing dot).
pub const MAX_NAME: usize = 253;

/// Checks a name to look up: 1 to 253 characters of dot-separated labels, each 1 to 63
/// letters, digits, `-` or `_` (service labels start with `_`); one trailing dot allowed.
/// The error names what is wrong.
pub fn validate_name(name: &str) -> Result<(), String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err("the name is empty; give a name such as leader.mesos or app-grp.marathon.mesos".into());
    }
    if n.len() > MAX_NAME {
        return Err(format!("the name is {} characters long; DNS names have at most {MAX_NAME}", n.len()));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Err(format!("{name:?} has an empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "{name:?}: the label {:?}… is {} characters long; labels have at most {MAX_LABEL}",
                label.chars().take(16).collect::<String>(),
                label.len()
            ));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("{name:?}: the label {label:?} holds {c:?}; labels are letters, digits, '-' and '_'"));
        }
    }
    Ok(())
}

/// Answers one query from `state` (builds the zone; servers keep a built [`Zone`] instead).
pub fn answer(state: &State, domain: &str, leader: Option<u64>, name: &str, rtype: RecordType) -> Option<Answer> {
    Zone::build(state, domain, leader).answer(name, rtype)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::core::agents::Agent;
    use crate::core::marathon::path::PathId;
    use crate::core::marathon::state::AppRecord;
    use crate::core::marathon::validation::parse_app;
    use crate::core::state::MasterInfo;
    use crate::core::tasks::TaskState;

    fn agent(id: &str, address: &str, status: AgentStatus) -> Agent {
        Agent::for_test(id, address, status)
    }

    fn task(id: &str, framework: &str, name: &str, agent: &str, state: TaskState, ports: &[u16]) -> Task {
        Task::for_test(id, framework, name, agent, state, ports)
    }

    fn marathon_task(id: &str, app: &str, agent: &str, state: TaskState, ports: &[u16]) -> Task {
        let mut segments: Vec<&str> = app.split('/').filter(|s| !s.is_empty()).collect();
        segments.reverse();
        let mut t = task(id, MARATHON, &segments.join("."), agent, state, ports);
        t.app_id = Some(app.into());
        t
    }

    fn add_app(state: &mut State, definition: serde_json::Value) {
        let app = parse_app(&definition, &PathId::root()).expect("valid app");
        let id = app.id.to_string();
        state.marathon.apps.insert(id, AppRecord { app, versions: BTreeMap::new() });
    }

    /// Three masters (m2 leads), two active agents and one unreachable, and tasks: `/grp/web`
    /// (two running instances, a tcp and a udp port), `/checked` (health checks: one healthy,
    /// one unhealthy, one unknown), a staging and a finished instance, and a one-off task.
    fn cluster() -> State {
        let mut s = State { last_applied: 42, ..State::default() };
        for (id, name, ip) in [(11, "m1", "10.0.0.1"), (22, "m2", "10.0.0.2"), (33, "m3", "10.0.0.3")] {
            s.masters.push(MasterInfo { id, name: name.into(), api: format!("https://{ip}:7443"), voter: true });
        }
        for (id, ip, status) in [
            ("c1-S0", "10.0.1.1", AgentStatus::Active),
            ("c1-S1", "10.0.1.2", AgentStatus::Active),
            ("c1-S2", "10.0.1.3", AgentStatus::Unreachable),
            ("c1-S3", "fd00::4", AgentStatus::Active),
        ] {
            s.agents.insert(id.into(), agent(id, ip, status));
        }
        add_app(
            &mut s,
            json!({"id": "/grp/web", "cmd": "sleep 1000", "portDefinitions": [
                {"port": 0, "protocol": "tcp", "name": "http"}, {"port": 0, "protocol": "udp"}]}),
        );
        add_app(&mut s, json!({"id": "/checked", "cmd": "sleep 1000", "healthChecks": [{"protocol": "MESOS_TCP"}]}));
        let mut tasks = vec![
            marathon_task("web.1", "/grp/web", "c1-S0", TaskState::TASK_RUNNING, &[31000, 31001]),
            marathon_task("web.2", "/grp/web", "c1-S1", TaskState::TASK_RUNNING, &[31005, 31006]),
            marathon_task("web.3", "/grp/web", "c1-S1", TaskState::TASK_STAGING, &[31007, 31008]),
            marathon_task("web.4", "/grp/web", "c1-S0", TaskState::TASK_FINISHED, &[31009, 31010]),
            marathon_task("checked.1", "/checked", "c1-S0", TaskState::TASK_RUNNING, &[31100]),
            marathon_task("checked.2", "/checked", "c1-S1", TaskState::TASK_RUNNING, &[31101]),
            marathon_task("checked.3", "/checked", "c1-S1", TaskState::TASK_RUNNING, &[31102]),
            task("one.1", "medos-tasks", "Backup_Job", "c1-S1", TaskState::TASK_RUNNING, &[32000]),
            task("v6.1", "medos-tasks", "six", "c1-S3", TaskState::TASK_RUNNING, &[]),
        ];
        tasks[4].healthy = Some(true);
        tasks[5].healthy = Some(false);
        for t in tasks {
            s.tasks.insert(t.id.clone(), t);
        }
        s
    }

    fn leader() -> Option<u64> {
        Some(22)
    }

    /// What an answer holds, as sorted strings: `A 10.0.0.1`, `SRV 31000 target`, …
    fn data(answer: &Answer) -> Vec<String> {
        let mut out: Vec<String> = answer
            .answers
            .iter()
            .map(|r| match &r.data {
                RecordData::A(ip) => format!("A {ip}"),
                RecordData::Aaaa(ip) => format!("AAAA {ip}"),
                RecordData::Srv { port, target, .. } => format!("SRV {port} {target}"),
                RecordData::Ns(n) => format!("NS {n}"),
                RecordData::Soa(soa) => format!("SOA {} {} {}", soa.mname, soa.rname, soa.serial),
            })
            .collect();
        out.sort();
        out
    }

    fn canonical(task_id: &str, name: &str, agent_tail: &str) -> String {
        format!("{name}-{}-{agent_tail}", task_hash(task_id))
    }

    #[test]
    fn records_of_every_type() {
        let s = cluster();
        let web1 = canonical("web.1", "web-grp", "s0");
        let web2 = canonical("web.2", "web-grp", "s1");
        let srv = |port: u16, host: &str| format!("SRV {port} {host}.marathon.slave.mesos.");
        let (web1_name, web2_slave) = (format!("{web1}.marathon.mesos"), format!("{web2}.marathon.slave.mesos"));
        let cases: Vec<(&str, RecordType, Vec<String>)> = vec![
            ("mesos", RecordType::Soa, vec!["SOA ns1.mesos. root.ns1.mesos. 42".into()]),
            ("mesos", RecordType::Ns, vec!["NS ns1.mesos.".into()]),
            ("ns1.mesos", RecordType::A, vec!["A 10.0.0.1".into(), "A 10.0.0.2".into(), "A 10.0.0.3".into()]),
            ("leader.mesos", RecordType::A, vec!["A 10.0.0.2".into()]),
            ("marathon.mesos", RecordType::A, vec!["A 10.0.0.2".into()]),
            ("master.mesos", RecordType::A, vec!["A 10.0.0.1".into(), "A 10.0.0.2".into(), "A 10.0.0.3".into()]),
            ("master0.mesos", RecordType::A, vec!["A 10.0.0.1".into()]),
            ("master2.mesos", RecordType::A, vec!["A 10.0.0.3".into()]),
            ("_leader._tcp.mesos", RecordType::Srv, vec!["SRV 7443 leader.mesos.".into()]),
            ("_leader._udp.mesos", RecordType::Srv, vec!["SRV 7443 leader.mesos.".into()]),
            ("agent.mesos", RecordType::A, vec!["A 10.0.1.1".into(), "A 10.0.1.2".into()]),
            ("slave.mesos", RecordType::A, vec!["A 10.0.1.1".into(), "A 10.0.1.2".into()]),
            ("agent.mesos", RecordType::Aaaa, vec!["AAAA fd00::4".into()]),
            ("web-grp.marathon.mesos", RecordType::A, vec!["A 10.0.1.1".into(), "A 10.0.1.2".into()]),
            ("web-grp.marathon.slave.mesos", RecordType::A, vec!["A 10.0.1.1".into(), "A 10.0.1.2".into()]),
            (&web1_name, RecordType::A, vec!["A 10.0.1.1".into()]),
            (&web2_slave, RecordType::A, vec!["A 10.0.1.2".into()]),
            ("_web-grp._tcp.marathon.mesos", RecordType::Srv, vec![srv(31000, &web1), srv(31005, &web2)]),
            ("_web-grp._tcp.marathon.slave.mesos", RecordType::Srv, vec![srv(31000, &web1), srv(31005, &web2)]),
            ("_web-grp._udp.marathon.mesos", RecordType::Srv, vec![srv(31001, &web1), srv(31006, &web2)]),
            ("_http._web-grp._tcp.marathon.mesos", RecordType::Srv, vec![srv(31000, &web1), srv(31005, &web2)]),
            // Health checks: only the healthy instance.
            ("checked.marathon.mesos", RecordType::A, vec!["A 10.0.1.1".into()]),
            // Another framework: the task name made a label; ports under both protocols.
            ("backup-job.medos-tasks.mesos", RecordType::A, vec!["A 10.0.1.2".into()]),
            (
                "_backup-job._udp.medos-tasks.mesos",
                RecordType::Srv,
                vec![format!("SRV 32000 {}.medos-tasks.slave.mesos.", canonical("one.1", "backup-job", "s1"))],
            ),
            ("six.medos-tasks.mesos", RecordType::Aaaa, vec!["AAAA fd00::4".into()]),
        ];
        for (name, rtype, want) in cases {
            let answer = answer(&s, "mesos", leader(), name, rtype).expect("in the zone");
            assert_eq!(answer.rcode, Rcode::NoError, "{name} {rtype:?}");
            assert_eq!(data(&answer), want, "{name} {rtype:?}");
            assert!(answer.answers.iter().all(|r| r.name == format!("{name}.")), "{name}: owner names");
        }
    }

    #[test]
    fn ttls_are_short_for_tasks_and_longer_for_the_rest() {
        let s = cluster();
        let ttl = |name: &str, t| answer(&s, "mesos", leader(), name, t).unwrap().answers[0].ttl;
        assert_eq!(ttl("leader.mesos", RecordType::A), TTL);
        assert_eq!(ttl("agent.mesos", RecordType::A), TTL);
        assert_eq!(ttl("web-grp.marathon.mesos", RecordType::A), TASK_TTL);
        assert_eq!(ttl("_web-grp._tcp.marathon.mesos", RecordType::Srv), TASK_TTL);
        let negative = answer(&s, "mesos", leader(), "nope.mesos", RecordType::A).unwrap();
        assert_eq!(negative.authority.len(), 1);
        assert_eq!(negative.authority[0].ttl, NEGATIVE_TTL);
        assert!(matches!(&negative.authority[0].data, RecordData::Soa(soa) if soa.minimum == NEGATIVE_TTL));
    }

    #[test]
    fn nxdomain_versus_nodata() {
        let s = cluster();
        let canonical_web3 = format!("{}.marathon.mesos", canonical("web.3", "web-grp", "s1"));
        let checked2 = format!("{}.marathon.mesos", canonical("checked.2", "checked", "s1"));
        let checked3 = format!("{}.marathon.mesos", canonical("checked.3", "checked", "s1"));
        // (name, type, NXDOMAIN?)
        let cases: Vec<(&str, RecordType, bool)> = vec![
            ("nothing.mesos", RecordType::A, true),
            ("leader.mesos", RecordType::Srv, false),
            ("leader.mesos", RecordType::Aaaa, false),
            ("leader.mesos", RecordType::Other(16), false),
            ("mesos", RecordType::A, false),
            // Empty non-terminals exist (RFC 8020).
            ("slave.mesos", RecordType::Srv, false),
            ("medos-tasks.mesos", RecordType::A, false),
            ("_tcp.marathon.mesos", RecordType::Srv, false),
            ("_web-grp._tcp.marathon.mesos", RecordType::A, false),
            // Unhealthy, unknown health, staging, finished and unknown apps have no names.
            ("nosuch.marathon.mesos", RecordType::A, true),
            (&canonical_web3, RecordType::A, true),
            (&checked2, RecordType::A, true),
            (&checked3, RecordType::A, true),
            ("master9.mesos", RecordType::A, true),
            ("a.b.c.leader.mesos", RecordType::A, true),
        ];
        for (name, rtype, nx) in cases {
            let answer = answer(&s, "mesos", leader(), name, rtype).expect("in the zone");
            if nx {
                assert!(answer.is_nxdomain(), "{name} {rtype:?}: want NXDOMAIN, got {answer:?}");
            } else {
                assert!(answer.is_nodata(), "{name} {rtype:?}: want NODATA, got {answer:?}");
            }
            assert!(matches!(answer.authority[0].data, RecordData::Soa(_)), "{name}: SOA in authority");
        }
    }

    #[test]
    fn vip_names_resolve_in_their_own_zone() {
        let mut s = cluster();
        add_app(
            &mut s,
            json!({"id": "/grp/api", "cmd": "sleep 1000", "portDefinitions": [{"port": 0, "labels": {"VIP_0": "/grp/api:80"}}]}),
        );
        s.sync_vips();
        let ip = s.vips.by_name["grp/api"];
        let a = answer(&s, "mesos", leader(), "grpapi.marathon.l4lb.thisdcos.directory", RecordType::A).unwrap();
        assert_eq!(data(&a), vec![format!("A {ip}")]);
        assert_eq!(a.answers[0].ttl, TTL);
        let soa = |name: &str, rtype| {
            let got = answer(&s, "mesos", leader(), name, rtype).unwrap();
            let apex = got.authority.first().map(|r| r.name.clone());
            (got.rcode, got.answers.len(), apex)
        };
        let vip_apex = Some("l4lb.thisdcos.directory.".to_string());
        assert_eq!(soa("nope.marathon.l4lb.thisdcos.directory", RecordType::A), (Rcode::NxDomain, 0, vip_apex.clone()));
        assert_eq!(soa("marathon.l4lb.thisdcos.directory", RecordType::A), (Rcode::NoError, 0, vip_apex.clone()));
        assert_eq!(soa("grpapi.marathon.l4lb.thisdcos.directory", RecordType::Aaaa), (Rcode::NoError, 0, vip_apex));
        assert_eq!(soa("l4lb.thisdcos.directory", RecordType::Ns), (Rcode::NoError, 1, None));
        assert_eq!(soa("nope.mesos", RecordType::A), (Rcode::NxDomain, 0, Some("mesos.".to_string())));
        assert_eq!(answer(&s, "mesos", leader(), "thisdcos.directory", RecordType::A), None);
        assert!(in_cluster_zones("X.l4lb.thisdcos.directory.", "mesos"));
        assert!(!in_cluster_zones("xl4lb.thisdcos.directory", "mesos"));
    }

    #[test]
    fn names_outside_the_domain_are_not_answered() {
        let s = cluster();
        for name in ["example.com", "com", "mesos.example.com", "notmesos", "xmesos.", "."] {
            assert_eq!(answer(&s, "mesos", leader(), name, RecordType::A), None, "{name}");
        }
    }

    #[test]
    fn names_are_case_insensitive_and_keep_the_asked_spelling() {
        let s = cluster();
        for name in ["LEADER.MESOS", "Leader.Mesos.", "leader.mesos."] {
            let a = answer(&s, "mesos", leader(), name, RecordType::A).unwrap();
            assert_eq!(data(&a), vec!["A 10.0.0.2"], "{name}");
            let asked = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
            assert_eq!(a.answers[0].name, asked);
        }
        let a = answer(&s, "MeSoS.", leader(), "Web-Grp.MARATHON.mesos", RecordType::A).unwrap();
        assert_eq!(data(&a).len(), 2);
    }

    #[test]
    fn another_domain_and_no_leader() {
        let s = cluster();
        let a = answer(&s, "dcos.example", None, "master.dcos.example", RecordType::A).unwrap();
        assert_eq!(data(&a).len(), 3);
        assert!(answer(&s, "dcos.example", None, "leader.dcos.example", RecordType::A).unwrap().is_nxdomain());
        assert_eq!(answer(&s, "dcos.example", None, "leader.mesos", RecordType::A), None);
    }

    #[test]
    fn any_returns_every_record_of_the_name() {
        let s = cluster();
        let a = answer(&s, "mesos", leader(), "mesos", RecordType::Any).unwrap();
        assert_eq!(data(&a), vec!["NS ns1.mesos.", "SOA ns1.mesos. root.ns1.mesos. 42"]);
    }

    #[test]
    fn labels_are_built_the_mesos_dns_way() {
        let cases = [
            ("app.grp", "app-grp"),
            ("My_App.Group", "my-app-group"),
            ("--x--", "x"),
            ("a b!c", "abc"),
            ("ünïcode", "ncode"),
            ("...", ""),
            (&"x".repeat(70), &"x".repeat(63)),
            (&format!("{}-y", "x".repeat(62)), &"x".repeat(62)),
        ];
        for (input, want) in cases {
            assert_eq!(label(input), want, "{input}");
        }
        assert_eq!(app_label("/grp/app"), "app-grp");
        assert_eq!(app_label("/a/b/c"), "c-b-a");
        assert_eq!(app_label("/web"), "web");
        assert_eq!(domain_fragment("my.Frame_work"), "my.frame-work");
        assert_eq!(task_hash("a").len(), 5);
        assert_ne!(task_hash("a"), task_hash("b"));
        assert_eq!(agent_tail("4f0f-aa-S12"), "s12");
    }

    #[test]
    fn domains_are_validated() {
        for good in ["mesos", "cluster.local", "a-b.c1", "mesos."] {
            assert!(validate_domain(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "-x", "a..b", "a_b", "x-", &"y".repeat(64)] {
            assert!(validate_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn master_urls_give_addresses_and_ports() {
        assert_eq!(url_host_port("https://10.0.0.1:7443"), Some(("10.0.0.1".parse().unwrap(), Some(7443))));
        assert_eq!(url_host_port("https://[fd00::1]:7443/x"), Some(("fd00::1".parse().unwrap(), Some(7443))));
        assert_eq!(url_host_port("https://10.0.0.1"), Some(("10.0.0.1".parse().unwrap(), None)));
        assert_eq!(url_host_port("https://master-1.example:7443"), None);
    }

    #[test]
    fn hosts_list_every_address_of_a_name() {
        let zone = Zone::build(&cluster(), "mesos", leader());
        let hosts = zone.hosts("Web-Grp.Marathon.MESOS");
        let want = |ip: &str| HostEntry { host: "web-grp.marathon.mesos.".into(), ip: ip.into() };
        assert_eq!(hosts, vec![want("10.0.1.1"), want("10.0.1.2")]);
        assert_eq!(zone.hosts("leader.mesos.")[0].ip, "10.0.0.2");
        assert_eq!(zone.hosts("agent.mesos").len(), 3, "A and AAAA");
        assert_eq!(zone.hosts("agent.mesos")[2].ip, "fd00::4", "IPv4 first");
        for none in ["nothing.mesos", "_web-grp._tcp.marathon.mesos", "mesos", "example.com", "medos-tasks.mesos"] {
            assert_eq!(zone.hosts(none), vec![], "{none}");
        }
    }

    #[test]
    fn services_list_each_srv_record_with_its_targets_address() {
        let zone = Zone::build(&cluster(), "mesos", leader());
        let web1 = format!("{}.marathon.slave.mesos.", canonical("web.1", "web-grp", "s0"));
        let web2 = format!("{}.marathon.slave.mesos.", canonical("web.2", "web-grp", "s1"));
        let asked = "_web-grp._tcp.marathon.mesos";
        let entry = |host: &str, ip: &str, port: &str| ServiceEntry {
            service: asked.into(),
            host: host.into(),
            ip: ip.into(),
            port: port.into(),
        };
        let mut want = vec![entry(&web1, "10.0.1.1", "31000"), entry(&web2, "10.0.1.2", "31005")];
        want.sort_by(|a, b| a.host.cmp(&b.host));
        assert_eq!(zone.services(asked), want);
        let leader = zone.services("_LEADER._tcp.mesos.");
        assert_eq!(leader.len(), 1);
        assert_eq!(
            (leader[0].host.as_str(), leader[0].ip.as_str(), leader[0].port.as_str()),
            ("leader.mesos.", "10.0.0.2", "7443")
        );
        assert_eq!(leader[0].service, "_LEADER._tcp.mesos.", "as asked");
        for none in ["_nothing._tcp.marathon.mesos", "web-grp.marathon.mesos", "", "example.com"] {
            assert_eq!(zone.services(none), vec![], "{none}");
        }
    }

    #[test]
    fn enumeration_lists_frameworks_and_the_records_of_named_tasks() {
        let e = enumerate(&cluster(), "mesos.");
        let names: Vec<&str> = e.frameworks.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["marathon", "medos-tasks"]);
        let marathon = &e.frameworks[0];
        let ids: Vec<&str> = marathon.tasks.iter().map(|t| t.id.as_str()).collect();
        // Staging, finished, unhealthy and unknown-health instances have no records.
        assert_eq!(ids, vec!["checked.1", "web.1", "web.2"]);
        let web1 = &marathon.tasks[1];
        assert_eq!(web1.name, "web.grp");
        let canonical = canonical("web.1", "web-grp", "s0");
        let has = |name: &str, host: &str, rtype: &str| {
            web1.records.iter().any(|r| r.name == name && r.host == host && r.rtype == rtype)
        };
        assert!(has("web-grp.marathon.mesos.", "10.0.1.1", "A"), "{web1:?}");
        assert!(has(&format!("{canonical}.marathon.slave.mesos."), "10.0.1.1", "A"));
        let target = format!("{canonical}.marathon.slave.mesos.:31000");
        assert!(has("_web-grp._tcp.marathon.mesos.", &target, "SRV"));
        assert!(has("_http._web-grp._tcp.marathon.mesos.", &target, "SRV"));
        assert!(has("_web-grp._udp.marathon.slave.mesos.", &format!("{canonical}.marathon.slave.mesos.:31001"), "SRV"));
        assert_eq!(web1.records.len(), 4 + 5, "four A names, five SRV names");
        // Every enumerated record is in the zone.
        let zone = Zone::build(&cluster(), "mesos", leader());
        for t in e.frameworks.iter().flat_map(|f| &f.tasks) {
            for r in &t.records {
                assert!(zone.records().any(|z| z.name == r.name), "{r:?}");
            }
        }
        let tasks = &e.frameworks[1].tasks;
        assert_eq!(tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec!["one.1", "v6.1"]);
        assert_eq!(tasks[1].records[0].rtype, "AAAA");
        let json = serde_json::to_value(&e).unwrap();
        assert!(json["frameworks"][0]["tasks"][0]["records"][0]["rtype"].is_string());
        assert_eq!(enumerate(&State::default(), "mesos").frameworks.iter().map(|f| f.tasks.len()).sum::<usize>(), 0);
    }

    #[test]
    fn names_to_look_up_are_checked() {
        for good in
            ["leader.mesos", "leader.mesos.", "_web-grp._tcp.marathon.mesos", "a", &format!("{}.mesos", "x".repeat(63))]
        {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        let long = vec!["abc"; 70].join(".");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            (".".into(), "empty"),
            ("a..b".into(), "empty label"),
            (".a".into(), "empty label"),
            (format!("{}.mesos", "x".repeat(64)), "at most 63"),
            (long, "at most 253"),
            ("a b.mesos".into(), "' '"),
            ("a/b".into(), "'/'"),
            (format!("{}.mesos", "é".repeat(40)), "at most 63"),
            ("é.mesos".into(), "'é'"),
        ];
        for (bad, why) in cases {
            let err = validate_name(&bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
