//! `medos queue [APP]`: instances waiting to be launched, and why they wait.
//!
//! Marathon's `/v2/queue` entries carry the app, how many instances wait (`count`), the
//! launch delay after failures, and statistics on declined offers. medos adds per agent the
//! reasons of the last round (`lastUnusedOffers`) and `blocked` when no offer can ever fit
//! (an image that is not loaded). [`explain`] turns an entry into words:
//! `2 instances waiting: 3 of 3 agents declined: constraint hostname:UNIQUE (2), insufficient mem (1)`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::{Noun, array, call, normalize_id, num};
use crate::api::client::Client;
use crate::cli::output;

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Explain one app in detail: every agent and why it declined.
    pub app_id: Option<String>,
}

/// `medos queue [APP]`.
pub async fn run(args: QueueArgs, json: bool) -> Result<ExitCode> {
    let client = crate::cli::config::Target::resolve()?.client()?;
    execute(&client, args, json).await
}

pub async fn execute(client: &Client, args: QueueArgs, json: bool) -> Result<ExitCode> {
    let v = call(client, Method::GET, "/v2/queue", None, Noun::None).await?;
    let mut entries = array(&v["queue"]);
    if let Some(id) = &args.app_id {
        let id = normalize_id(id);
        entries.retain(|e| e["app"]["id"].as_str() == Some(id.as_str()));
        if json {
            output::json(&entries);
            return Ok(ExitCode::SUCCESS);
        }
        match entries.first() {
            Some(entry) => print!("{}", detail(entry)),
            None => println!("{id}: no instances waiting (`medos app show {id}` shows the app)"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        output::json(&entries);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        eprintln!("No instances are waiting to be launched.");
        return Ok(ExitCode::SUCCESS);
    }
    output::table(&["app", "instances waiting", "delay", "declined by"], rows(&entries));
    Ok(ExitCode::SUCCESS)
}

/// The queue table's rows, sorted by app.
pub fn rows(entries: &[Value]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let why = explain(e);
            let delay = if why.delay_secs > 0 { format!("{}s", why.delay_secs) } else { "-".into() };
            vec![why.app.clone(), why.waiting.to_string(), delay, why.declined_by()]
        })
        .collect();
    rows.sort();
    rows
}

/// One app's queue entry in words, with a line per agent.
pub fn detail(entry: &Value) -> String {
    let why = explain(entry);
    let mut text = format!("{}: {}\n", why.app, why.summary());
    text.push_str(&format!("  each instance needs: {}\n", needs(&entry["app"])));
    for (host, reasons) in &why.agents {
        text.push_str(&format!("  {host}: {}\n", reasons.join(", ")));
    }
    if let Some(hint) = why.hint() {
        text.push_str(&format!("  ({hint})\n"));
    }
    text
}

/// What one instance of the app asks for: `1 cpus, 512 MiB mem, 2 ports, constraint hostname:UNIQUE`.
pub fn needs(app: &Value) -> String {
    let mut parts =
        vec![format!("{} cpus", num_or_zero(&app["cpus"])), format!("{} MiB mem", num_or_zero(&app["mem"]))];
    if app["disk"].as_f64().unwrap_or(0.0) > 0.0 {
        parts.push(format!("{} MiB disk", num(&app["disk"])));
    }
    if app["gpus"].as_f64().unwrap_or(0.0) > 0.0 {
        parts.push(format!("{} gpus", num(&app["gpus"])));
    }
    let ports = ports_of(app);
    if !ports.is_empty() {
        if app["requirePorts"].as_bool() == Some(true) {
            let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
            parts.push(format!("host ports {}", list.join(", ")));
        } else {
            parts.push(format!("{} port{}", ports.len(), if ports.len() == 1 { "" } else { "s" }));
        }
    }
    let constraints = constraints_of(app);
    if !constraints.is_empty() {
        parts.push(format!("constraint {}", constraints.join(", ")));
    }
    if let Some(roles) = roles_of(app) {
        parts.push(format!("role {roles}"));
    }
    parts.join(", ")
}

fn num_or_zero(v: &Value) -> String {
    if v.is_null() { "0".into() } else { num(v) }
}

/// The app's ports: `portDefinitions[].port`, else `ports`.
fn ports_of(app: &Value) -> Vec<u64> {
    let defs = array(&app["portDefinitions"]);
    if !defs.is_empty() {
        return defs.iter().map(|d| d["port"].as_u64().unwrap_or(0)).collect();
    }
    array(&app["ports"]).iter().map(|p| p.as_u64().unwrap_or(0)).collect()
}

/// Constraints as `field:OPERATOR[:value]`.
pub fn constraints_of(app: &Value) -> Vec<String> {
    array(&app["constraints"])
        .iter()
        .map(|c| {
            let parts: Vec<String> =
                array(c).iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect();
            let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| !p.is_empty()).collect();
            parts.join(":")
        })
        .collect()
}

fn roles_of(app: &Value) -> Option<String> {
    let roles: Vec<String> =
        array(&app["acceptedResourceRoles"]).iter().filter_map(|r| r.as_str().map(str::to_string)).collect();
    (!roles.is_empty() && roles != ["*"]).then(|| roles.join(" or "))
}

/// Marathon's reason funnel: an offer declined for several reasons counts under the first.
const FUNNEL: [&str; 10] = [
    "UnfulfilledRole",
    "UnfulfilledConstraint",
    "NoCorrespondingReservationFound",
    "AgentMaintenance",
    "InsufficientCpus",
    "InsufficientMemory",
    "InsufficientDisk",
    "InsufficientGpus",
    "InsufficientPorts",
    "DeclinedScarceResources",
];

/// A reason's words, with what the app asks for where that tells which setting to change.
pub fn reason_text(reason: &str, app: &Value) -> String {
    match reason {
        "UnfulfilledRole" => match roles_of(app) {
            Some(roles) => format!("role (app accepts only {roles})"),
            None => "role".into(),
        },
        "UnfulfilledConstraint" => {
            let constraints = constraints_of(app);
            if constraints.is_empty() { "constraint".into() } else { format!("constraint {}", constraints.join(", ")) }
        }
        "NoCorrespondingReservationFound" => "no matching reservation".into(),
        "AgentMaintenance" => "agent in maintenance (drained or deactivated)".into(),
        "InsufficientCpus" => "insufficient cpus".into(),
        "InsufficientMemory" => "insufficient mem".into(),
        "InsufficientDisk" => "insufficient disk".into(),
        "InsufficientGpus" => "insufficient gpus".into(),
        "InsufficientPorts" => {
            if app["requirePorts"].as_bool() == Some(true) {
                let ports: Vec<String> = ports_of(app).iter().map(|p| p.to_string()).collect();
                format!("ports {} taken", ports.join(", "))
            } else {
                "insufficient ports".into()
            }
        }
        "DeclinedScarceResources" => "GPU agent kept for GPU apps".into(),
        other => other.to_string(),
    }
}

/// A reason's name from its JSON (`"InsufficientMemory"`, or an object naming it).
fn reason_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => ["reason", "kind", "type", "name"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .or_else(|| (o.len() == 1).then(|| o.keys().next().cloned()).flatten()),
        _ => None,
    }
}

/// The reason an agent's decline counts under: maintenance when the agent is in maintenance
/// (it also breaks constraints, which would only mislead), else the first in the funnel.
fn primary(reasons: &[String]) -> Option<&String> {
    if let Some(m) = reasons.iter().find(|r| *r == "AgentMaintenance") {
        return Some(m);
    }
    reasons.iter().min_by_key(|r| FUNNEL.iter().position(|f| f == r).unwrap_or(FUNNEL.len()))
}

/// Declines counted by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declines {
    pub declined: u64,
    pub of: u64,
    /// `agents` (medos's last round, one offer per agent) or `offers` (Marathon's statistics).
    pub unit: &'static str,
    /// Reason words and how many declined for it, most first.
    pub reasons: Vec<(String, u64)>,
}

/// Why an app's instances wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub app: String,
    pub waiting: u64,
    /// Seconds the launch is still delayed (backoff after failed tasks).
    pub delay_secs: u64,
    /// Nothing can fit until this is fixed (e.g. the image is not loaded).
    pub blocked: Option<String>,
    pub declines: Option<Declines>,
    /// Each agent of the last round and every reason it declined for.
    pub agents: Vec<(String, Vec<String>)>,
}

/// Reads one `/v2/queue` entry.
pub fn explain(entry: &Value) -> Why {
    let app = &entry["app"];
    let app_id = app["id"].as_str().or_else(|| entry["pod"]["id"].as_str()).unwrap_or("?").to_string();
    let waiting = entry["count"].as_u64().unwrap_or(0);
    let delay_secs = entry["delay"]["timeLeftSeconds"].as_u64().unwrap_or(0);
    let blocked = entry["blocked"].as_str().filter(|s| !s.is_empty()).map(str::to_string);

    let mut agents = Vec::new();
    let mut counts: Vec<(String, u64)> = Vec::new();
    let last = array(&entry["lastUnusedOffers"]);
    for offer in &last {
        let host = offer["offer"]["hostname"]
            .as_str()
            .or_else(|| offer["offer"]["agentId"].as_str())
            .unwrap_or("?")
            .to_string();
        let mut names: Vec<String> = array(&offer["reason"]).iter().filter_map(reason_name).collect();
        names.sort_by_key(|r| FUNNEL.iter().position(|f| f == r).unwrap_or(FUNNEL.len()));
        names.dedup();
        if let Some(p) = primary(&names) {
            bump(&mut counts, reason_text(p, app), 1);
        }
        agents.push((host, names.iter().map(|r| reason_text(r, app)).collect()));
    }
    let declines = if !last.is_empty() {
        let n = last.len() as u64;
        Some(Declines { declined: n, of: n, unit: "agents", reasons: sorted(counts) })
    } else {
        // Marathon's own statistics: each reason with how many offers reached it and were declined.
        let summary = array(&entry["processedOffersSummary"]["rejectSummaryLastOffers"]);
        let of = summary.iter().filter_map(|s| s["processed"].as_u64()).max().unwrap_or(0);
        for s in &summary {
            let declined = s["declined"].as_u64().unwrap_or(0);
            if declined > 0 {
                bump(&mut counts, reason_text(s["reason"].as_str().unwrap_or("?"), app), declined);
            }
        }
        let declined: u64 = counts.iter().map(|(_, n)| n).sum();
        (declined > 0).then(|| Declines { declined, of: of.max(declined), unit: "offers", reasons: sorted(counts) })
    };
    Why { app: app_id, waiting, delay_secs, blocked, declines, agents }
}

fn bump(counts: &mut Vec<(String, u64)>, text: String, n: u64) {
    match counts.iter_mut().find(|(t, _)| *t == text) {
        Some((_, c)) => *c += n,
        None => counts.push((text, n)),
    }
}

fn sorted(mut counts: Vec<(String, u64)>) -> Vec<(String, u64)> {
    // Most first; ties keep the funnel order they were found in.
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}

impl Why {
    /// The queue table's DECLINED-BY cell.
    pub fn declined_by(&self) -> String {
        if let Some(b) = &self.blocked {
            return format!("blocked: {b}");
        }
        match &self.declines {
            Some(d) => format!("{} of {} {}: {}", d.declined, d.of, d.unit, reasons_text(d)),
            None if self.delay_secs > 0 => "delayed after task failures".into(),
            None => "no offers yet".into(),
        }
    }

    /// One line: how many wait and why.
    pub fn summary(&self) -> String {
        let waiting = format!("{} instance{} waiting", self.waiting, if self.waiting == 1 { "" } else { "s" });
        if let Some(b) = &self.blocked {
            return format!("{waiting}: blocked: {b}");
        }
        let mut parts = Vec::new();
        if self.delay_secs > 0 {
            parts.push(format!("launch delayed {}s after failed tasks (backoff)", self.delay_secs));
        }
        match &self.declines {
            Some(d) => parts.push(format!("{} of {} {} declined: {}", d.declined, d.of, d.unit, reasons_text(d))),
            None if self.delay_secs == 0 => parts.push("no agent has offered resources yet".into()),
            None => {}
        }
        format!("{waiting}: {}", parts.join("; "))
    }

    /// What to look at next, when the reasons point somewhere.
    pub fn hint(&self) -> Option<String> {
        if self.blocked.is_some() {
            return None;
        }
        if self.delay_secs > 0 {
            return Some(format!(
                "`medos app show {}` shows the last task failure; the delay ends on its own, or restart the app",
                self.app
            ));
        }
        let reasons: Vec<&str> = self.declines.iter().flat_map(|d| d.reasons.iter().map(|(r, _)| r.as_str())).collect();
        if reasons.is_empty() {
            return Some("`medos node list` shows the agents and what they have free".into());
        }
        if reasons.iter().any(|r| r.starts_with("insufficient") || r.ends_with("taken")) {
            return Some(format!(
                "`medos node list` shows free resources; lower the app's needs with `medos app update {} cpus=… mem=…` or add agents",
                self.app
            ));
        }
        if reasons.iter().any(|r| r.starts_with("constraint")) {
            return Some(format!(
                "more instances than agents satisfying the constraints? `medos app update {} instances=N` or `constraints=…`",
                self.app
            ));
        }
        None
    }
}

fn reasons_text(d: &Declines) -> String {
    d.reasons.iter().map(|(r, n)| format!("{r} ({n})")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The second entry of Marathon's `examples/queue.json` (trimmed): Marathon's statistics only.
    fn marathon_example() -> Value {
        json!({
            "app": {"id": "/foo", "instances": 1, "cpus": 0.5, "mem": 128.0, "disk": 0.0,
                    "constraints": [["hostname", "UNIQUE"]], "ports": [10010], "requirePorts": false},
            "count": 2, "role": "*",
            "delay": {"timeLeftSeconds": 0, "overdue": true},
            "since": "2016-02-28T16:41:41.090Z",
            "processedOffersSummary": {
                "processedOffersCount": 123, "unusedOffersCount": 123,
                "rejectSummaryLastOffers": [
                    {"reason": "UnfulfilledRole", "declined": 0, "processed": 123},
                    {"reason": "UnfulfilledConstraint", "declined": 0, "processed": 123},
                    {"reason": "NoCorrespondingReservationFound", "declined": 0, "processed": 123},
                    {"reason": "InsufficientCpus", "declined": 75, "processed": 123},
                    {"reason": "InsufficientMemory", "declined": 15, "processed": 48},
                    {"reason": "InsufficientDisk", "declined": 10, "processed": 33},
                    {"reason": "InsufficientGpus", "declined": 0, "processed": 23},
                    {"reason": "DeclinedScarceResources", "declined": 0, "processed": 11}
                ]
            },
            "lastUnusedOffers": [{
                "offer": {"id": "offer_123", "agentId": "slave_123", "hostname": "1.2.3.4"},
                "timestamp": "2016-02-28T16:41:41.090Z",
                "reason": ["InsufficientMemory"]
            }]
        })
    }

    /// What medos answers: one entry per agent of the last round, every reason it found.
    fn medos_entry() -> Value {
        json!({
            "app": {"id": "/web", "instances": 3, "cpus": 1, "mem": 512, "disk": 0,
                    "constraints": [["hostname", "UNIQUE"]], "portDefinitions": [{"port": 0}]},
            "count": 3,
            "delay": {"timeLeftSeconds": 0, "overdue": true},
            "processedOffersSummary": {"rejectSummaryLastOffers": []},
            "lastUnusedOffers": [
                {"offer": {"hostname": "agent-1"}, "reason": ["UnfulfilledConstraint"]},
                {"offer": {"hostname": "agent-2"}, "reason": ["InsufficientMemory", "UnfulfilledConstraint"]},
                {"offer": {"hostname": "agent-3"}, "reason": ["InsufficientMemory"]}
            ],
            "blocked": null
        })
    }

    #[test]
    fn agents_count_under_their_first_reason() {
        let why = explain(&medos_entry());
        assert_eq!(why.waiting, 3);
        assert_eq!(
            why.declines,
            Some(Declines {
                declined: 3,
                of: 3,
                unit: "agents",
                reasons: vec![("constraint hostname:UNIQUE".into(), 2), ("insufficient mem".into(), 1)],
            })
        );
        assert_eq!(
            why.summary(),
            "3 instances waiting: 3 of 3 agents declined: constraint hostname:UNIQUE (2), insufficient mem (1)"
        );
        assert_eq!(why.declined_by(), "3 of 3 agents: constraint hostname:UNIQUE (2), insufficient mem (1)");
        // Every reason of every agent is in the detail.
        assert_eq!(
            why.agents[1],
            ("agent-2".into(), vec!["constraint hostname:UNIQUE".into(), "insufficient mem".into()])
        );
        let text = detail(&medos_entry());
        assert!(
            text.contains("each instance needs: 1 cpus, 512 MiB mem, 1 port, constraint hostname:UNIQUE"),
            "{text}"
        );
        assert!(text.contains("  agent-3: insufficient mem\n"), "{text}");
        assert!(text.contains("medos node list"), "{text}");
    }

    #[test]
    fn marathons_statistics_are_read_when_medos_has_no_rounds() {
        let mut entry = marathon_example();
        entry["lastUnusedOffers"] = json!([]);
        let why = explain(&entry);
        assert_eq!(
            why.declined_by(),
            "100 of 123 offers: insufficient cpus (75), insufficient mem (15), insufficient disk (10)"
        );
        // With Marathon's lastUnusedOffers, those are the agents of the last round.
        let why = explain(&marathon_example());
        assert_eq!(why.declined_by(), "1 of 1 agents: insufficient mem (1)");
        assert_eq!(why.agents, vec![("1.2.3.4".to_string(), vec!["insufficient mem".to_string()])]);
    }

    #[test]
    fn maintenance_role_ports_delay_and_blocked_read_well() {
        let app = json!({"id": "/a", "acceptedResourceRoles": ["slave_public"], "requirePorts": true,
                         "portDefinitions": [{"port": 80}, {"port": 443}], "constraints": []});
        let entry = json!({
            "app": app, "count": 1,
            "lastUnusedOffers": [
                {"offer": {"hostname": "h1"}, "reason": ["UnfulfilledConstraint", "AgentMaintenance"]},
                {"offer": {"hostname": "h2"}, "reason": ["InsufficientCpus", "UnfulfilledRole"]},
                {"offer": {"hostname": "h3"}, "reason": ["InsufficientPorts"]},
                {"offer": {"hostname": "h4"}, "reason": [{"reason": "SomethingNew"}]}
            ]
        });
        let why = explain(&entry);
        assert_eq!(
            why.summary(),
            "1 instance waiting: 4 of 4 agents declined: agent in maintenance (drained or deactivated) (1), \
             role (app accepts only slave_public) (1), ports 80, 443 taken (1), SomethingNew (1)"
        );

        let delayed =
            explain(&json!({"app": {"id": "/b"}, "count": 2, "delay": {"timeLeftSeconds": 42, "overdue": false}}));
        assert_eq!(delayed.summary(), "2 instances waiting: launch delayed 42s after failed tasks (backoff)");
        assert_eq!(delayed.declined_by(), "delayed after task failures");
        assert!(delayed.hint().unwrap().contains("medos app show /b"));

        let blocked = explain(&json!({"app": {"id": "/c"}, "count": 1,
            "blocked": "image \"busybox\" is not loaded; load it with `medos image load FILE`"}));
        assert_eq!(
            blocked.declined_by(),
            "blocked: image \"busybox\" is not loaded; load it with `medos image load FILE`"
        );
        assert!(blocked.summary().starts_with("1 instance waiting: blocked: image"));

        let nothing = explain(&json!({"app": {"id": "/d"}, "count": 1}));
        assert_eq!(nothing.summary(), "1 instance waiting: no agent has offered resources yet");
        assert_eq!(nothing.declined_by(), "no offers yet");
    }

    #[test]
    fn the_table_has_one_row_per_app() {
        let rows = rows(&[medos_entry(), marathon_example()]);
        assert_eq!(rows[0][..3], ["/foo".to_string(), "2".into(), "-".into()]);
        assert_eq!(rows[1][0], "/web");
        assert_eq!(rows[1][3], "3 of 3 agents: constraint hostname:UNIQUE (2), insufficient mem (1)");
    }

    #[test]
    fn needs_name_what_to_change() {
        assert_eq!(needs(&marathon_example()["app"]), "0.5 cpus, 128 MiB mem, 1 port, constraint hostname:UNIQUE");
        let app = json!({"cpus": 2, "mem": 64, "disk": 10, "requirePorts": true, "ports": [8080],
                         "constraints": [["rack", "LIKE", "r[12]"]], "acceptedResourceRoles": ["slave_public"]});
        assert_eq!(
            needs(&app),
            "2 cpus, 64 MiB mem, 10 MiB disk, host ports 8080, constraint rack:LIKE:r[12], role slave_public"
        );
    }
}
