//! The built-in Marathon framework, run by the leader: carries out deployments step by step,
//! keeps every app at its instance count (relaunching failed tasks with backoff, replacing
//! unhealthy and long-unreachable ones), and places new tasks on the offers the allocator
//! makes it.
//!
//! Everything it decides is recomputed from the replicated state on every pass (after every
//! applied change, and at least twice a second), so a new leader simply carries on: there are
//! no counters that a failover could lose. What lives only here, in the leader's memory, is what
//! Marathon also keeps in memory: launch backoff delays and the offer statistics of `/v2/queue`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::allocator::{Framework, OfferAnswer};
use super::node::Master;
use crate::clock::now_ms;
use crate::core::allocator::{DEFAULT_REFUSE_SECONDS, Offer, ROLE_ANY, ROLE_PUBLIC};
use crate::core::marathon::app::AppDefinition;
use crate::core::marathon::constraints::{AgentView, Placed};
use crate::core::marathon::deployment::{self, ActionKind, Capacity, Decision, InstanceView};
use crate::core::marathon::matching::{InstanceRequest, NoMatchReason, RejectSummary, match_offer};
use crate::core::marathon::state::FRAMEWORK_ID;
use crate::core::{Command, CommandSpec, Resources, State, Task, TaskSpec, TaskState};

/// How long a TASK_UNREACHABLE task counts as an instance when the app sets no strategy.
const DEFAULT_INACTIVE_AFTER_MS: u64 = 0;

/// The least gap between passes (see `master::pace`): under a stream of commits (status updates
/// of thousands of tasks) one pass handles everything applied since the previous one.
const PASS_GAP: Duration = Duration::from_millis(5);

/// Launch delay of an app after failed tasks (Marathon's backoff).
#[derive(Debug, Clone, Default)]
struct Backoff {
    /// The next delay.
    delay_ms: u64,
    /// No launch before this time.
    until_ms: u64,
    /// Terminal tasks already counted.
    counted: std::collections::HashSet<String>,
}

/// Per-app offer statistics for `/v2/queue` and "why is it pending?".
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueInfo {
    /// Instances waiting for an offer that fits.
    pub waiting: u32,
    pub processed_offers_count: u64,
    pub unused_offers_count: u64,
    pub last_unused_offer_at_ms: Option<u64>,
    pub last_used_offer_at_ms: Option<u64>,
    pub summary: RejectSummary,
    /// Why each agent declined in the last round: (agent hostname, reasons).
    pub last_refusals: Vec<(String, Vec<NoMatchReason>)>,
    /// Launches are delayed until this time after failures.
    pub delayed_until_ms: Option<u64>,
    /// The launch needs something no agent has (e.g. an image that is not loaded).
    pub blocked: Option<String>,
}

/// The leader's Marathon memory.
#[derive(Default)]
pub struct Scheduler {
    backoff: Mutex<HashMap<String, Backoff>>,
    queue: Mutex<BTreeMap<String, QueueInfo>>,
    /// Apps that waited for instances in the last round (new ones revive the offers).
    last_wanted: Mutex<std::collections::BTreeSet<String>>,
    revive_wanted: std::sync::atomic::AtomicBool,
}

impl Scheduler {
    /// The queue entries of apps that wait for instances.
    pub fn queue(&self) -> BTreeMap<String, QueueInfo> {
        self.queue.lock().expect("queue lock").clone()
    }

    /// Forgets the backoff delay of an app (`DELETE /v2/queue/{app}/delay`).
    pub fn reset_delay(&self, app_id: &str) {
        self.backoff.lock().expect("backoff lock").remove(app_id);
    }

    fn forget_all(&self) {
        self.backoff.lock().expect("backoff lock").clear();
        self.queue.lock().expect("queue lock").clear();
        self.last_wanted.lock().expect("wanted lock").clear();
    }
}

/// The leader's Marathon loop. Runs on every master; acts only while leader.
pub async fn marathon_duties(master: Arc<Master>) {
    let mut applied = master.applied.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut was_leader = false;
    let mut pace = super::pace::Pace::new(PASS_GAP);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = applied.changed() => if changed.is_err() { return },
        }
        pace.next_pass().await;
        let leader = master.is_leader();
        if leader != was_leader {
            master.marathon.forget_all();
            master.allocator.reset();
            was_leader = leader;
        }
        if !leader {
            continue;
        }
        let commands = {
            let state = master.state.read().expect("state lock");
            let now = now_ms();
            let (mut commands, wanted) = pass(&state, now);
            let framework = MarathonOffers::new(&master.marathon, &state, wanted, now);
            if master.marathon.revive_wanted.swap(false, std::sync::atomic::Ordering::Relaxed) {
                master.allocator.revive(FRAMEWORK_ID);
            }
            commands.extend(master.allocator.round(&state, &[&framework], now));
            commands
        };
        pace.done();
        if commands.is_empty() {
            continue;
        }
        let results = futures_util::future::join_all(commands.into_iter().map(|c| master.propose(c))).await;
        for result in results {
            match result {
                Ok(crate::core::Response::Rejected { message }) => {
                    tracing::debug!(%message, "a Marathon decision was refused by the state; recomputing")
                }
                Ok(crate::core::Response::TasksLaunched { launched, rejected }) => {
                    for (task, message) in rejected {
                        tracing::debug!(%task, %message, "a placement was refused by the state; recomputing");
                    }
                    tracing::debug!(launched = launched.len(), "Marathon tasks launched");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a Marathon decision could not be written; retrying on the next pass")
                }
            }
        }
    }
}

/// The non-terminal tasks of each Marathon app.
fn tasks_by_app(state: &State) -> HashMap<&str, Vec<&Task>> {
    let mut by_app: HashMap<&str, Vec<&Task>> = HashMap::new();
    for task in state.tasks.values() {
        if task.framework_id == FRAMEWORK_ID
            && !task.state.is_terminal()
            && let Some(app) = task.app_id.as_deref()
        {
            by_app.entry(app).or_default().push(task);
        }
    }
    by_app
}

/// Whether a task counts as an instance of its app now: not being killed, and not unreachable
/// for longer than the app's `inactiveAfterSeconds`.
fn counts(task: &Task, app: Option<&AppDefinition>, now_ms: u64) -> bool {
    if task.state != TaskState::TASK_UNREACHABLE {
        return true;
    }
    if task.kill_grace_ms.is_some() {
        // Asked to die while its agent is away: it will be killed if the agent returns.
        return false;
    }
    let inactive_after_ms = app.map(unreachable_inactive_after_ms).unwrap_or(DEFAULT_INACTIVE_AFTER_MS);
    now_ms.saturating_sub(task.updated_at_ms) < inactive_after_ms
}

fn unreachable_inactive_after_ms(app: &AppDefinition) -> u64 {
    use crate::core::marathon::app::UnreachableStrategy;
    match &app.unreachable_strategy {
        UnreachableStrategy::Disabled => u64::MAX,
        UnreachableStrategy::Enabled { inactive_after_seconds, .. } => inactive_after_seconds.saturating_mul(1000),
    }
}

fn unreachable_expunge_after_ms(app: &AppDefinition) -> Option<u64> {
    use crate::core::marathon::app::UnreachableStrategy;
    match &app.unreachable_strategy {
        UnreachableStrategy::Disabled => None,
        UnreachableStrategy::Enabled { expunge_after_seconds, .. } => Some(expunge_after_seconds.saturating_mul(1000)),
    }
}

fn view(task: &Task, app: Option<&AppDefinition>) -> InstanceView {
    let checked = app.is_some_and(|a| !a.health_checks.is_empty());
    let running = task.state == TaskState::TASK_RUNNING;
    InstanceView {
        task_id: task.id.clone(),
        version: task.app_version.clone().unwrap_or_default(),
        healthy: running && (!checked || task.healthy == Some(true)),
        killing: task.kill_grace_ms.is_some() || task.state == TaskState::TASK_KILLING,
        launched_at_ms: task.created_at_ms,
    }
}

fn kill(task_id: &str, app: Option<&AppDefinition>, at_ms: u64) -> Command {
    let grace_ms = app.map(|a| a.kill_grace_ms()).unwrap_or_else(crate::core::tasks::default_grace_ms);
    Command::TaskKill { task_id: task_id.to_string(), grace_ms, at_ms }
}

/// One pass: the kills and step completions that move every deployment and app toward its
/// target, and how many new tasks each app needs (placed on offers afterwards).
pub fn pass(state: &State, now: u64) -> (Vec<Command>, BTreeMap<String, u32>) {
    let marathon = &state.marathon;
    let by_app = tasks_by_app(state);
    let empty = Vec::new();
    let mut commands = Vec::new();
    // Apps whose instances a deployment manages now, and how many tasks each still needs.
    let mut managed: HashMap<String, ()> = HashMap::new();
    let mut wanted: BTreeMap<String, u32> = BTreeMap::new();

    for d in marathon.deployments.values() {
        let mut step_done = true;
        for action in d.current_actions() {
            managed.insert(action.app.clone(), ());
            let tasks = by_app.get(action.app.as_str()).unwrap_or(&empty);
            let app = marathon.apps.get(&action.app).map(|r| &r.app);
            let decision = match action.action {
                ActionKind::StartApplication => Decision { done: true, ..Default::default() },
                ActionKind::StopApplication => {
                    let kill = tasks.iter().filter(|t| t.kill_grace_ms.is_none()).map(|t| t.id.clone()).collect();
                    // Tasks on unreachable agents cannot confirm their end; they are killed
                    // when their agent returns and do not hold the deployment up.
                    let done =
                        tasks.iter().all(|t| t.state == TaskState::TASK_UNREACHABLE && t.kill_grace_ms.is_some());
                    Decision { kill, launch: 0, done }
                }
                ActionKind::ScaleApplication | ActionKind::RestartApplication => {
                    let Some(app) = app else {
                        // Removed by a later forced change: nothing left to do here.
                        continue;
                    };
                    let views: Vec<InstanceView> =
                        tasks.iter().filter(|t| counts(t, Some(app), now)).map(|t| view(t, Some(app))).collect();
                    if action.action == ActionKind::RestartApplication {
                        let capacity = Capacity {
                            minimum_health_capacity: app.upgrade_strategy.minimum_health_capacity,
                            maximum_over_capacity: app.upgrade_strategy.maximum_over_capacity,
                        };
                        deployment::restart_decision(
                            app.instances,
                            app.version.as_deref().unwrap_or(""),
                            capacity,
                            &views,
                        )
                    } else {
                        let oldest_first = app.kill_selection == crate::core::marathon::app::KillSelection::OldestFirst;
                        deployment::scale_decision(app.instances, oldest_first, &views)
                    }
                }
            };
            let app = marathon.apps.get(&action.app).map(|r| &r.app);
            for id in &decision.kill {
                commands.push(kill(id, app, now));
            }
            if decision.launch > 0 {
                *wanted.entry(action.app.clone()).or_default() += decision.launch;
            }
            step_done &= decision.done;
        }
        if step_done {
            commands.push(Command::MarathonDeploymentStepDone { deployment_id: d.id.clone(), step: d.current_step });
        }
    }

    // Apps outside deployments: keep the instance count, replace what failed or is unhealthy.
    for (id, record) in &marathon.apps {
        let app = &record.app;
        let tasks = by_app.get(id.as_str()).unwrap_or(&empty);
        for task in tasks {
            if task.kill_grace_ms.is_some() {
                continue;
            }
            let expunge = unreachable_expunge_after_ms(app).is_some_and(|after| {
                task.state == TaskState::TASK_UNREACHABLE && now.saturating_sub(task.updated_at_ms) >= after
            });
            if expunge {
                commands.push(kill(&task.id, Some(app), now));
            }
        }
        if managed.contains_key(id) || marathon.deployments.values().any(|d| d.affects(id)) {
            continue;
        }
        let views: Vec<InstanceView> =
            tasks.iter().filter(|t| counts(t, Some(app), now)).map(|t| view(t, Some(app))).collect();
        let oldest_first = app.kill_selection == crate::core::marathon::app::KillSelection::OldestFirst;
        let decision = deployment::scale_decision(app.instances, oldest_first, &views);
        // Outside a deployment only unreachable tasks that came back make a surplus.
        for id in &decision.kill {
            commands.push(kill(id, Some(app), now));
        }
        if decision.launch > 0 {
            *wanted.entry(id.clone()).or_default() += decision.launch;
        }
    }

    (commands, wanted)
}

/// A task that ended badly: failed, or killed by its agent for failing health checks.
fn failed(task: &Task) -> bool {
    match task.state {
        TaskState::TASK_FAILED | TaskState::TASK_ERROR | TaskState::TASK_DROPPED => true,
        TaskState::TASK_KILLED => task.kill_grace_ms.is_none() && task.healthy == Some(false),
        _ => false,
    }
}

/// Updates an app's backoff from its failed tasks; returns until when launches wait.
fn delayed(scheduler: &Scheduler, app: &AppDefinition, failures: &[&Task], now: u64) -> Option<u64> {
    let mut backoff = scheduler.backoff.lock().expect("backoff lock");
    let entry = backoff.entry(app.id.to_string()).or_default();
    for task in failures {
        if entry.counted.insert(task.id.clone()) {
            let base = app.backoff_seconds.saturating_mul(1000);
            let max = app.max_launch_delay_seconds.saturating_mul(1000);
            entry.delay_ms =
                if entry.delay_ms == 0 { base } else { ((entry.delay_ms as f64 * app.backoff_factor) as u64).min(max) };
            entry.until_ms = task.updated_at_ms.saturating_add(entry.delay_ms);
        }
    }
    (entry.until_ms > now).then_some(entry.until_ms)
}

/// A Marathon task id: `grp_app.instance-<uuid>._app.1`.
fn task_id(app: &AppDefinition) -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    let uuid = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
    format!("{}.instance-{uuid}._app.1", app.id.segments().join("_"))
}

/// The task name Mesos-DNS builds names from: the app id's segments, innermost first.
fn task_name(app: &AppDefinition) -> String {
    let mut segments = app.id.segments();
    segments.reverse();
    segments.join(".")
}

/// The environment Marathon gives every task, plus the app's own.
fn environment(app: &AppDefinition) -> BTreeMap<String, String> {
    use crate::core::marathon::app::EnvValue;
    let mut env: BTreeMap<String, String> = app
        .env
        .iter()
        .filter_map(|(k, v)| match v {
            EnvValue::Value(v) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect();
    env.insert("MARATHON_APP_ID".into(), app.id.to_string());
    env.insert("MARATHON_APP_VERSION".into(), app.version.clone().unwrap_or_default());
    env.insert("MARATHON_APP_RESOURCE_CPUS".into(), format!("{}", app.cpus));
    env.insert("MARATHON_APP_RESOURCE_MEM".into(), format!("{}", app.mem));
    env.insert("MARATHON_APP_RESOURCE_DISK".into(), format!("{}", app.disk));
    env.insert("MARATHON_APP_RESOURCE_GPUS".into(), format!("{}", app.gpus));
    env.insert("MARATHON_APP_LABELS".into(), app.labels.keys().cloned().collect::<Vec<_>>().join(" "));
    for (k, v) in &app.labels {
        let key: String =
            k.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        env.insert(format!("MARATHON_APP_LABEL_{key}"), v.clone());
    }
    if let Some(image) = app.image() {
        env.insert("MARATHON_APP_DOCKER_IMAGE".into(), image.to_string());
    }
    env
}

fn spec(app: &AppDefinition) -> TaskSpec {
    let command = match &app.cmd {
        Some(cmd) => CommandSpec { shell: true, value: cmd.clone(), arguments: vec![] },
        None if !app.args.is_empty() => {
            CommandSpec { shell: false, value: app.args[0].clone(), arguments: app.args.clone() }
        }
        // An image's own entrypoint is not supported yet; validation requires cmd or args then.
        None => CommandSpec { shell: true, value: "true".into(), arguments: vec![] },
    };
    TaskSpec {
        name: task_name(app),
        command,
        image: app.image().map(str::to_string),
        resources: Resources { cpus: app.cpus, mem: app.mem, disk: app.disk, ports: vec![] },
        port_count: app.host_ports().len() as u16,
        env: environment(app),
        user: app.user.clone(),
        kill_grace_ms: app.kill_grace_ms(),
        labels: app.labels.clone(),
        health_checks: app.task_health_checks(),
        fetch: app.fetch.iter().map(crate::core::tasks::FetchUri::from).collect(),
    }
}

fn request(app: &AppDefinition) -> InstanceRequest {
    InstanceRequest {
        resources: Resources { cpus: app.cpus, mem: app.mem, disk: app.disk, ports: vec![] },
        ports: app.host_ports().into_iter().map(|p| u16::try_from(p).unwrap_or(0)).collect(),
        require_ports: app.require_ports,
        constraints: app.constraints.clone(),
        accepted_roles: app.accepted_resource_roles.clone().unwrap_or_else(|| vec!["*".to_string()]),
        instances: app.instances,
    }
}

fn agent_view<'a>(state: &'a State, agent_id: &'a str) -> Option<AgentView<'a>> {
    let agent = state.agents.get(agent_id)?;
    Some(AgentView {
        agent_id: &agent.id,
        hostname: &agent.hostname,
        attributes: &agent.attributes,
        region: agent.attributes.get("region").map(String::as_str),
        zone: agent.attributes.get("zone").map(String::as_str),
    })
}

/// An app with instances to launch now (not delayed, its image loaded).
struct Pending {
    app_id: String,
    count: u32,
    image: Option<Box<crate::core::ImageRecord>>,
}

/// Marathon as a framework for one allocation round: what it wants, and how it answers offers.
pub struct MarathonOffers<'a> {
    scheduler: &'a Scheduler,
    state: &'a State,
    by_app: HashMap<&'a str, Vec<&'a Task>>,
    pending: Vec<Pending>,
    now: u64,
}

impl<'a> MarathonOffers<'a> {
    /// Records the queue (waiting, delayed, blocked) and keeps the launchable apps.
    fn new(scheduler: &'a Scheduler, state: &'a State, wanted: BTreeMap<String, u32>, now: u64) -> Self {
        let mut queue = scheduler.queue.lock().expect("queue lock");
        queue.retain(|id, _| wanted.contains_key(id));
        let mut pending = Vec::new();
        let failures = failures_by_app(state);
        for (app_id, count) in wanted {
            let Some(record) = state.marathon.apps.get(&app_id) else { continue };
            let app = &record.app;
            let info = queue.entry(app_id.clone()).or_default();
            info.waiting = count;
            info.delayed_until_ms =
                delayed(scheduler, app, failures.get(app_id.as_str()).map(Vec::as_slice).unwrap_or(&[]), now);
            if info.delayed_until_ms.is_some() {
                continue;
            }
            let image = match app.image() {
                None => None,
                Some(reference) => match crate::core::images::resolve(state.images.values(), reference) {
                    Some(image) => Some(Box::new(image.clone())),
                    None => {
                        info.blocked = Some(format!(
                            "image {reference:?} is not loaded; load it with `medos image load FILE` (see `medos image list`)"
                        ));
                        continue;
                    }
                },
            };
            info.blocked = None;
            pending.push(Pending { app_id, count, image });
        }
        drop(queue);
        let mut newly_wanted = false;
        {
            let mut last = scheduler.last_wanted.lock().expect("wanted lock");
            let now_wanted: std::collections::BTreeSet<String> = pending.iter().map(|p| p.app_id.clone()).collect();
            if now_wanted.iter().any(|id| !last.contains(id)) {
                newly_wanted = true;
            }
            *last = now_wanted;
        }
        let offers = MarathonOffers { scheduler, state, by_app: tasks_by_app(state), pending, now };
        if newly_wanted {
            offers.scheduler.revive_wanted.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        offers
    }
}

impl Framework for MarathonOffers<'_> {
    fn id(&self) -> &str {
        FRAMEWORK_ID
    }

    fn roles(&self) -> Vec<String> {
        vec![ROLE_ANY.to_string(), ROLE_PUBLIC.to_string()]
    }

    fn wants_offers(&self) -> bool {
        !self.pending.is_empty()
    }

    fn resource_offers(&self, mut offers: Vec<Offer>) -> Vec<OfferAnswer> {
        let state = self.state;
        let mut queue = self.scheduler.queue.lock().expect("queue lock");
        let mut accepted: BTreeMap<usize, Vec<Task>> = BTreeMap::new();
        for pending in &self.pending {
            let Some(record) = state.marathon.apps.get(&pending.app_id) else { continue };
            let app = &record.app;
            let info = queue.entry(pending.app_id.clone()).or_default();
            let request = request(app);
            // What the constraints read from the instances placed so far: counted once, then
            // extended with each placement (nothing at all for an app without constraints).
            let mut placed = Placed::new(
                &request.constraints,
                self.by_app
                    .get(pending.app_id.as_str())
                    .into_iter()
                    .flatten()
                    .filter_map(|t| agent_view(state, &t.agent_id)),
            );
            let mut refusals = Vec::new();
            let mut start = 0;
            for _ in 0..pending.count {
                let mut chosen = None;
                refusals.clear();
                // Start after the last offer used, so instances spread and full offers are not
                // tried again and again.
                for step in 0..offers.len() {
                    let index = (start + step) % offers.len();
                    let offer = &offers[index];
                    info.processed_offers_count += 1;
                    match match_offer(&request, offer, &placed) {
                        Ok(matched) => {
                            info.summary.add(&Ok(()));
                            chosen = Some((index, matched));
                            break;
                        }
                        Err(reasons) => {
                            info.unused_offers_count += 1;
                            info.last_unused_offer_at_ms = Some(self.now);
                            info.summary.add(&Err(reasons.clone()));
                            refusals.push((offer.hostname.clone(), reasons));
                        }
                    }
                }
                let Some((index, matched)) = chosen else { break };
                start = index + 1;
                info.last_used_offer_at_ms = Some(self.now);
                info.waiting = info.waiting.saturating_sub(1);
                let offer = &mut offers[index];
                offer.resources.subtract(&Resources { cpus: app.cpus, mem: app.mem, disk: app.disk, ports: vec![] });
                offer.resources.ports = crate::core::resources::subtract_ports(&offer.resources.ports, &matched.ports);
                if let Some(view) = agent_view(state, &offer.agent_id) {
                    placed.add(&view);
                }
                accepted.entry(index).or_default().push(Task {
                    id: task_id(app),
                    framework_id: FRAMEWORK_ID.into(),
                    agent_id: offer.agent_id.clone(),
                    spec: spec(app),
                    state: TaskState::TASK_STAGING,
                    reason: None,
                    message: String::new(),
                    ports: matched.ports,
                    created_at_ms: self.now,
                    updated_at_ms: self.now,
                    exit_code: None,
                    healthy: None,
                    kill_grace_ms: None,
                    statuses: vec![],
                    image: pending.image.clone(),
                    app_id: Some(app.id.to_string()),
                    app_version: app.version.clone(),
                });
            }
            if !refusals.is_empty() || info.waiting == 0 {
                info.last_refusals = refusals;
            }
        }
        offers
            .into_iter()
            .enumerate()
            .map(|(index, offer)| match accepted.remove(&index) {
                Some(launch) => OfferAnswer::Accept { offer_id: offer.id, launch },
                None => OfferAnswer::Decline { offer_id: offer.id, refuse_seconds: DEFAULT_REFUSE_SECONDS },
            })
            .collect()
    }
}

/// The failed tasks of each app (for backoff), in one pass.
fn failures_by_app(state: &State) -> HashMap<&str, Vec<&Task>> {
    let mut map: HashMap<&str, Vec<&Task>> = HashMap::new();
    for task in state.tasks.values() {
        if task.framework_id == FRAMEWORK_ID
            && failed(task)
            && let Some(app) = task.app_id.as_deref()
        {
            map.entry(app).or_default().push(task);
        }
    }
    map
}
