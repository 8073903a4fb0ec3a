//! VIPs: DC/OS's layer-4 load-balanced names. A port labelled `VIP_<n>: "/name:port"` (in
//! `portDefinitions[i].labels`, a port mapping's labels, or the app's labels as `VIP_<i>` for
//! port index `i`) gets the name `name.marathon.l4lb.thisdcos.directory`, which resolves to a
//! virtual IP allocated here, in the replicated state, from the cluster's VIP range; a
//! connection to `VIP:port` from any agent host (and its tasks) reaches one of the app's ready
//! instances on that port. `IP:port` labels name the virtual address directly.
//!
//! The range lies inside 127.0.0.0/8: every agent serves the VIPs on its own loopback
//! (`agent::vips`), so no interface, route or kernel module is needed on any host. An address
//! is chosen by a hash of the name, probing upward past taken ones, and kept while any app
//! names it: a VIP stays the same through restarts, scaling and redeployments, and usually
//! comes back the same after its app was removed and added again.
//!
//! Pure: the state calls [`State::sync_vips`] after every change to apps; [`routes`] is what
//! the leader sends agents.

use ::core::net::Ipv4Addr;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::State;
use super::marathon::app::AppDefinition;
use super::marathon::state::FRAMEWORK_ID;
use super::tasks::TaskState;

/// The zone VIP names live in (DC/OS's, so existing clients and configs keep working).
pub const DOMAIN: &str = "l4lb.thisdcos.directory";
/// The range VIPs are allocated from when none is configured.
pub const DEFAULT_RANGE: &str = "127.77.0.0/16";
const LABEL_PREFIX: &str = "VIP_";

/// What a VIP label names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VipTarget {
    /// `/name:port`: the name without its slashes' leading and trailing ones (`grp/web`).
    Named(String),
    /// `IP:port`: the address itself.
    Ip(Ipv4Addr),
}

/// One parsed VIP label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipLabel {
    pub target: VipTarget,
    pub port: u16,
}

/// Parses a VIP label's value: `/name:port` or `IP:port` (the IP inside 127.0.0.0/8).
pub fn parse_label(value: &str) -> Result<VipLabel, String> {
    let value = value.trim();
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("{value:?} must be /name:port or IP:port, such as /web:80"));
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("{value:?}: the port {port:?} must be a number from 1 to 65535")),
    };
    if let Some(name) = host.strip_prefix('/') {
        let name = name.trim_end_matches('/');
        if name.is_empty() || name.split('/').any(str::is_empty) {
            return Err(format!("{value:?}: the name must be one or more non-empty path segments, such as /web:80"));
        }
        let fragment = dns_fragment(name);
        for label in fragment.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "{value:?}: the name must make DNS labels of 1 to 63 letters, digits or inner '-' \
                     ({label:?} does not)"
                ));
            }
        }
        if fragment.len() + ".marathon.".len() + DOMAIN.len() > 253 {
            return Err(format!("{value:?}: the name is too long for a DNS name"));
        }
        return Ok(VipLabel { target: VipTarget::Named(name.to_string()), port });
    }
    let ip: Ipv4Addr = host.parse().map_err(|_| {
        format!("{value:?} must be /name:port (a named VIP; note the leading '/') or IP:port with an IPv4 address")
    })?;
    if !ip.is_loopback() {
        return Err(format!(
            "{value:?}: the IP VIP {ip} lies outside 127.0.0.0/8; medos agents serve VIPs on their \
             loopback, so use a named VIP such as /name:{port} or an address in 127.0.0.0/8"
        ));
    }
    Ok(VipLabel { target: VipTarget::Ip(ip), port })
}

/// The DNS form of a VIP name: its path segments joined without `/`, lower-cased (DC/OS's
/// `/grp/web` → `grpweb`).
fn dns_fragment(name: &str) -> String {
    name.replace('/', "").to_ascii_lowercase()
}

/// The DNS name of a named VIP: `name.marathon.l4lb.thisdcos.directory`.
pub fn dns_name(name: &str) -> String {
    format!("{}.marathon.{DOMAIN}", dns_fragment(name))
}

/// A VIP label found on an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVip {
    /// Where the label is, for errors (`portDefinitions(0)/labels/VIP_0`).
    pub at: String,
    /// The port index whose instances' host port takes the connections.
    pub port_index: usize,
    /// The label's value as given.
    pub value: String,
    pub parsed: Result<VipLabel, String>,
}

/// Every VIP label of `app`: on its port definitions (or port mappings, with container
/// networking), and in its own labels as `VIP_<port index>`.
pub fn app_vips(app: &AppDefinition) -> Vec<AppVip> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut push = |at: String, port_index: usize, value: &String| {
        out.push(AppVip { at, port_index, value: value.clone(), parsed: parse_label(value) });
    };
    let port_labels: Vec<&BTreeMap<String, String>> = if app.has_non_host_networking() {
        app.container.iter().flat_map(|c| c.port_mappings.iter().flatten()).map(|m| &m.labels).collect()
    } else {
        app.port_definitions.iter().map(|p| &p.labels).collect()
    };
    let section = if app.has_non_host_networking() { "container/portMappings" } else { "portDefinitions" };
    for (i, labels) in port_labels.iter().enumerate() {
        for (key, value) in labels.iter().filter(|(k, _)| k.starts_with(LABEL_PREFIX)) {
            push(format!("{section}({i})/labels/{key}"), i, value);
        }
    }
    for (key, value) in app.labels.iter() {
        let Some(index) = key.strip_prefix(LABEL_PREFIX) else { continue };
        let at = format!("labels/{key}");
        match index.parse::<usize>() {
            Ok(i) => push(at, i, value),
            Err(_) => bad.push(AppVip {
                at,
                port_index: 0,
                value: value.clone(),
                parsed: Err(format!("the key must be VIP_<port index>, such as VIP_0 (not {key:?})")),
            }),
        }
    }
    out.extend(bad);
    out
}

/// What is wrong with `app`'s VIP labels: `(where, message)` pairs for validation.
pub fn label_violations(app: &AppDefinition) -> Vec<(String, String)> {
    let ports = if app.has_non_host_networking() {
        app.container.iter().flat_map(|c| c.port_mappings.iter().flatten()).count()
    } else {
        app.port_definitions.len()
    };
    let mut out = Vec::new();
    for vip in app_vips(app) {
        match &vip.parsed {
            Err(message) => out.push((vip.at, message.clone())),
            Ok(_) if vip.port_index >= ports => out.push((
                vip.at,
                format!("VIP {:?} is for port index {}, but the app has {ports} port(s)", vip.value, vip.port_index),
            )),
            Ok(_) => {}
        }
    }
    out
}

/// An IPv4 range, `a.b.c.d/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    base: u32,
    prefix: u8,
}

impl Range {
    /// Parses a VIP range: inside 127.0.0.0/8, with room for at least 2 addresses.
    pub fn parse(s: &str) -> Result<Range, String> {
        let (ip, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("VIP range {s:?} must be an IPv4 network such as {DEFAULT_RANGE}"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("VIP range {s:?}: {ip:?} is not an IPv4 address"))?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if (8..=30).contains(&p) => p,
            _ => return Err(format!("VIP range {s:?}: the prefix length must be 8 to 30")),
        };
        if !ip.is_loopback() {
            return Err(format!(
                "VIP range {s:?} must lie inside 127.0.0.0/8 (agents serve VIPs on their loopback), such as {DEFAULT_RANGE}"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Range { base: u32::from(ip) & mask, prefix })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & (u32::MAX << (32 - self.prefix)) == self.base
    }

    /// The `n`-th usable address (the network and broadcast addresses are skipped).
    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + n % (self.size() - 2))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The VIPs of the cluster, replicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vips {
    /// The range (as configured on the leader); `None`: [`DEFAULT_RANGE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Named VIPs (`grp/web`) and their addresses.
    #[serde(default)]
    pub by_name: BTreeMap<String, Ipv4Addr>,
}

impl Vips {
    pub fn range(&self) -> Range {
        self.range.as_deref().and_then(|r| Range::parse(r).ok()).unwrap_or_else(|| {
            Range::parse(DEFAULT_RANGE).unwrap_or(Range { base: u32::from(Ipv4Addr::new(127, 77, 0, 0)), prefix: 16 })
        })
    }
}

fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl State {
    /// Allocates an address to every VIP name an app uses and releases the ones no app uses
    /// (or that lie outside the range). Deterministic: names are visited in order, each starts
    /// at its hash and probes upward past taken addresses and the IP VIPs apps name.
    pub fn sync_vips(&mut self) {
        let mut named = BTreeSet::new();
        let mut fixed = BTreeSet::new();
        for record in self.marathon.apps.values() {
            for vip in app_vips(&record.app) {
                match vip.parsed {
                    Ok(VipLabel { target: VipTarget::Named(n), .. }) => {
                        named.insert(n);
                    }
                    Ok(VipLabel { target: VipTarget::Ip(ip), .. }) => {
                        fixed.insert(ip);
                    }
                    Err(_) => {}
                }
            }
        }
        let range = self.vips.range();
        self.vips.by_name.retain(|n, ip| named.contains(n) && range.contains(*ip) && !fixed.contains(ip));
        let mut taken: BTreeSet<Ipv4Addr> = self.vips.by_name.values().copied().chain(fixed).collect();
        let usable = range.size() - 2;
        for name in named {
            if self.vips.by_name.contains_key(&name) {
                continue;
            }
            let start = fnv1a(&name);
            let free = (0..usable).map(|k| range.nth(start.wrapping_add(k))).find(|ip| !taken.contains(ip));
            // A full range leaves the name without an address (its DNS name does not resolve).
            if let Some(ip) = free {
                taken.insert(ip);
                self.vips.by_name.insert(name, ip);
            }
        }
    }

    /// Sets the VIP range (the leader's configuration) and re-allocates what lies outside it.
    pub(crate) fn set_vip_range(&mut self, range: &str) -> Result<(), String> {
        let parsed = Range::parse(range)?;
        self.vips.range = Some(parsed.to_string());
        self.sync_vips();
        Ok(())
    }
}

/// One VIP and where its connections go: what the leader sends every agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipRoute {
    /// `IP:port`.
    pub vip: String,
    pub protocol: String,
    /// DNS names of this VIP (empty for IP VIPs).
    #[serde(default)]
    pub names: Vec<String>,
    /// Apps whose instances take the connections.
    #[serde(default)]
    pub apps: Vec<String>,
    /// `IP:port` of every ready instance (running, and healthy when its app has health
    /// checks), sorted.
    #[serde(default)]
    pub backends: Vec<String>,
}

/// Every VIP with its ready backends, sorted by VIP. A VIP whose instances are all gone is
/// still listed (connections to it are refused), so agents keep one table for every VIP.
pub fn routes(state: &State) -> Vec<VipRoute> {
    /// Names, apps and backends of one VIP.
    type Entry = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);
    let mut table: BTreeMap<(Ipv4Addr, u16), Entry> = BTreeMap::new();
    let mut by_app: BTreeMap<&str, Vec<&super::Task>> = BTreeMap::new();
    for task in state.tasks.values() {
        if task.framework_id == FRAMEWORK_ID && task.state == TaskState::TASK_RUNNING && task.kill_grace_ms.is_none() {
            if let Some(app) = task.app_id.as_deref() {
                by_app.entry(app).or_default().push(task);
            }
        }
    }
    for (app_id, record) in &state.marathon.apps {
        let app = &record.app;
        let checked = !app.health_checks.is_empty();
        for vip in app_vips(app) {
            let Ok(label) = vip.parsed else { continue };
            let (ip, name) = match &label.target {
                VipTarget::Named(n) => match state.vips.by_name.get(n) {
                    Some(ip) => (*ip, Some(dns_name(n))),
                    None => continue,
                },
                VipTarget::Ip(ip) => (*ip, None),
            };
            let (names, apps, backends) = table.entry((ip, label.port)).or_default();
            names.extend(name);
            apps.insert(app_id.clone());
            for task in by_app.get(app_id.as_str()).into_iter().flatten() {
                if !task.ready(checked) {
                    continue;
                }
                let (Some(agent), Some(port)) = (state.agents.get(&task.agent_id), task.ports.get(vip.port_index))
                else {
                    continue;
                };
                backends.insert(format!("{}:{port}", agent.address));
            }
        }
    }
    table
        .into_iter()
        .map(|((ip, port), (names, apps, backends))| VipRoute {
            vip: format!("{ip}:{port}"),
            protocol: "tcp".into(),
            names: names.into_iter().collect(),
            apps: apps.into_iter().collect(),
            backends: backends.into_iter().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::core::marathon::path::PathId;
    use crate::core::marathon::state::AppRecord;
    use crate::core::marathon::validation::parse_app;
    use crate::core::{Agent, AgentStatus, Task};

    #[test]
    fn labels_parse_or_say_what_is_expected() {
        let named = |n: &str, port| Ok(VipLabel { target: VipTarget::Named(n.into()), port });
        let cases: Vec<(&str, Result<VipLabel, &str>)> = vec![
            ("/web:80", named("web", 80).map_err(|_: ()| "")),
            (" /grp/web:8080 ", named("grp/web", 8080).map_err(|_: ()| "")),
            ("/web/:80", named("web", 80).map_err(|_: ()| "")),
            ("127.1.2.3:5000", Ok(VipLabel { target: VipTarget::Ip(Ipv4Addr::new(127, 1, 2, 3)), port: 5000 })),
            ("web:80", Err("must be /name:port (a named VIP")),
            ("/web", Err("must be /name:port or IP:port")),
            ("/web:0", Err("from 1 to 65535")),
            ("/web:99999", Err("from 1 to 65535")),
            ("/web:http", Err("from 1 to 65535")),
            ("/:80", Err("non-empty path segments")),
            ("/a//b:80", Err("non-empty path segments")),
            ("/we_b:80", Err("DNS labels")),
            ("/-web:80", Err("DNS labels")),
            ("10.0.0.1:80", Err("outside 127.0.0.0/8")),
        ];
        for (value, want) in cases {
            let got = parse_label(value);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "{value}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{value}: {g:?} lacks {w:?}"),
                (w, g) => panic!("{value}: wanted {w:?}, got {g:?}"),
            }
        }
        assert_eq!(dns_name("grp/Web"), "grpweb.marathon.l4lb.thisdcos.directory");
    }

    #[test]
    fn ranges_must_be_loopback_networks() {
        assert_eq!(Range::parse("127.77.3.4/16").unwrap().to_string(), "127.77.0.0/16");
        for bad in ["10.0.0.0/8", "127.0.0.0", "127.0.0.0/31", "127.0.0.0/7", "x/16"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
        let r = Range::parse("127.9.0.0/30").unwrap();
        assert!(r.contains(Ipv4Addr::new(127, 9, 0, 3)) && !r.contains(Ipv4Addr::new(127, 9, 0, 4)));
        assert_eq!(r.nth(0), Ipv4Addr::new(127, 9, 0, 1));
        assert_eq!(r.nth(1), Ipv4Addr::new(127, 9, 0, 2));
        assert_eq!(r.nth(2), Ipv4Addr::new(127, 9, 0, 1));
    }

    fn app(id: &str, ports: Value, labels: Value) -> Value {
        json!({"id": id, "cmd": "serve", "instances": 2, "portDefinitions": ports, "labels": labels})
    }

    fn state(apps: Vec<Value>) -> State {
        let mut s = State::default();
        s.agents.insert("a1".into(), Agent::for_test("a1", "10.0.0.1", AgentStatus::Active));
        s.agents.insert("a2".into(), Agent::for_test("a2", "10.0.0.2", AgentStatus::Active));
        for v in apps {
            put(&mut s, v);
        }
        s
    }

    fn put(s: &mut State, v: Value) {
        let app = parse_app(&v, &PathId::root()).unwrap();
        s.marathon.apps.insert(app.id.to_string(), AppRecord { app, versions: BTreeMap::new() });
        s.sync_vips();
    }

    fn task(id: &str, app: &str, agent: &str, state: TaskState, ports: &[u16], healthy: Option<bool>) -> Task {
        Task { app_id: Some(app.into()), healthy, ..Task::for_test(id, FRAMEWORK_ID, "t", agent, state, ports) }
    }

    #[test]
    fn every_labelled_port_gets_a_stable_vip_balancing_over_ready_instances() {
        let mut s = state(vec![
            app("/web", json!([{"port": 0, "labels": {"VIP_0": "/web:80"}}, {"port": 0}]), json!({"VIP_1": "/web:81"})),
            app("/grp/api", json!([{"port": 0, "labels": {"VIP_0": "127.5.5.5:9000"}}]), json!({})),
        ]);
        let web = s.vips.by_name["web"];
        assert!(Range::parse(DEFAULT_RANGE).unwrap().contains(web));
        s.tasks.insert("w1".into(), task("w1", "/web", "a1", TaskState::TASK_RUNNING, &[31000, 31001], None));
        s.tasks.insert("w2".into(), task("w2", "/web", "a2", TaskState::TASK_RUNNING, &[31005, 31006], None));
        s.tasks.insert("w3".into(), task("w3", "/web", "a2", TaskState::TASK_STAGING, &[31007, 31008], None));
        s.tasks.insert("x1".into(), task("x1", "/grp/api", "a1", TaskState::TASK_RUNNING, &[31002], None));
        let r = routes(&s);
        let vip = |ip: Ipv4Addr, port: u16| format!("{ip}:{port}");
        assert_eq!(
            r,
            vec![
                VipRoute {
                    vip: "127.5.5.5:9000".into(),
                    protocol: "tcp".into(),
                    names: vec![],
                    apps: vec!["/grp/api".into()],
                    backends: vec!["10.0.0.1:31002".into()],
                },
                VipRoute {
                    vip: vip(web, 80),
                    protocol: "tcp".into(),
                    names: vec!["web.marathon.l4lb.thisdcos.directory".into()],
                    apps: vec!["/web".into()],
                    backends: vec!["10.0.0.1:31000".into(), "10.0.0.2:31005".into()],
                },
                VipRoute {
                    vip: vip(web, 81),
                    protocol: "tcp".into(),
                    names: vec!["web.marathon.l4lb.thisdcos.directory".into()],
                    apps: vec!["/web".into()],
                    backends: vec!["10.0.0.1:31001".into(), "10.0.0.2:31006".into()],
                },
            ]
        );

        // Scaling, restarts and other apps leave the address alone.
        put(&mut s, app("/other", json!([{"port": 0, "labels": {"VIP_0": "/other:80"}}]), json!({})));
        put(&mut s, app("/web", json!([{"port": 0, "labels": {"VIP_0": "/web:80"}}]), json!({})));
        assert_eq!(s.vips.by_name["web"], web);
        assert_ne!(s.vips.by_name["other"], web);

        // Health checks: only healthy instances take connections.
        let mut checked = app("/web", json!([{"port": 0, "labels": {"VIP_0": "/web:80"}}]), json!({}));
        checked["healthChecks"] = json!([{"protocol": "MESOS_TCP", "portIndex": 0}]);
        put(&mut s, checked);
        s.tasks.get_mut("w1").unwrap().healthy = Some(true);
        s.tasks.get_mut("w2").unwrap().healthy = Some(false);
        let web80 = routes(&s).into_iter().find(|r| r.vip == vip(web, 80)).unwrap();
        assert_eq!(web80.backends, vec!["10.0.0.1:31000".to_string()]);

        // A removed app releases its name; the same name comes back on the same address.
        s.marathon.apps.remove("/web");
        s.sync_vips();
        assert!(!s.vips.by_name.contains_key("web"));
        put(&mut s, app("/web2", json!([{"port": 0, "labels": {"VIP_0": "/web:80"}}]), json!({})));
        assert_eq!(s.vips.by_name["web"], web);
    }

    #[test]
    fn allocation_probes_past_taken_addresses_and_fills_a_small_range() {
        let mut s = state(vec![]);
        s.set_vip_range("127.9.0.0/30").unwrap();
        for n in ["a", "b", "c"] {
            put(
                &mut s,
                app(&format!("/{n}"), json!([{"port": 0, "labels": {"VIP_0": format!("/{n}:80")}}]), json!({})),
            );
        }
        let ips: BTreeSet<Ipv4Addr> = s.vips.by_name.values().copied().collect();
        assert_eq!(ips.len(), 2, "a /30 has two usable addresses: {:?}", s.vips.by_name);
        assert_eq!(s.vips.by_name.len(), 2, "the third name waits for a free address");
        // A new range moves every VIP into it.
        s.set_vip_range("127.10.0.0/24").unwrap();
        let range = Range::parse("127.10.0.0/24").unwrap();
        assert_eq!(s.vips.by_name.len(), 3);
        assert!(s.vips.by_name.values().all(|ip| range.contains(*ip)));
        assert!(s.set_vip_range("10.0.0.0/8").is_err());
    }

    #[test]
    fn bad_labels_are_named_with_where_they_are() {
        let s = state(vec![app("/web", json!([{"port": 0}]), json!({"VIP_0": "/web:80"}))]);
        assert!(label_violations(&s.marathon.apps["/web"].app).is_empty());
        let bad = parse_app(
            &app(
                "/web",
                json!([{"port": 0, "labels": {"VIP_0": "web:80"}}]),
                json!({"VIP_3": "/web:80", "VIP_x": "/a:1"}),
            ),
            &PathId::root(),
        );
        let message = format!("{bad:?}");
        assert!(message.contains("portDefinitions(0)/labels/VIP_0"), "{message}");
        assert!(message.contains("port index 3"), "{message}");
        assert!(message.contains("VIP_<port index>"), "{message}");
    }
}
