//! Table-driven tests of agents and tasks in the state machine and of placement.

use std::collections::BTreeMap;

use super::agents::{AgentMode, AgentRegistration, AgentStatus};
use super::command::{Command, Response};
use super::placement::place;
use super::resources::{PortRange, Resources};
use super::state::{COMPLETED_TASKS_KEPT, State};
use super::tasks::{CommandSpec, Task, TaskSpec, TaskState, TaskStatus};

fn agent(id: &str, cpus: f64) -> Command {
    Command::AgentRegister {
        registration: AgentRegistration {
            agent_id: id.into(),
            hostname: format!("host-{id}"),
            address: "127.0.0.1".into(),
            api: "https://127.0.0.1:1".into(),
            total: Resources { cpus, mem: 1024.0, disk: 1000.0, ports: vec![PortRange { begin: 31000, end: 31002 }] },
            attributes: BTreeMap::new(),
            public: false,
            version: "test".into(),
        },
        at_ms: 1,
    }
}

fn spec(cpus: f64, ports: u16) -> TaskSpec {
    TaskSpec {
        name: "t".into(),
        command: CommandSpec { shell: true, value: "sleep 10".into(), arguments: vec![] },
        image: None,
        resources: Resources { cpus, mem: 64.0, disk: 0.0, ports: vec![] },
        port_count: ports,
        env: BTreeMap::new(),
        user: None,
        kill_grace_ms: 1000,
        labels: BTreeMap::new(),
        health_checks: vec![],
        fetch: vec![],
    }
}

fn launch(state: &State, id: &str, cpus: f64, ports: u16) -> Command {
    let placement = place(state, &spec(cpus, ports)).expect("placeable");
    Command::TaskLaunch {
        task: Box::new(Task {
            id: id.into(),
            framework_id: "f".into(),
            agent_id: placement.agent_id,
            spec: spec(cpus, ports),
            state: TaskState::TASK_STAGING,
            reason: None,
            message: String::new(),
            ports: placement.ports,
            created_at_ms: 2,
            updated_at_ms: 2,
            exit_code: None,
            healthy: None,
            kill_grace_ms: None,
            statuses: vec![],
            image: None,
            app_id: None,
            app_version: None,
        }),
    }
}

fn status(task: &str, uuid: &str, state: TaskState) -> Command {
    Command::TaskStatusUpdate {
        status: TaskStatus {
            task_id: task.into(),
            uuid: uuid.into(),
            state,
            reason: None,
            message: String::new(),
            timestamp_ms: 3,
            exit_code: None,
            healthy: None,
            source: "SOURCE_EXECUTOR".into(),
        },
    }
}

/// Applies commands in order, each at the next index; returns the last response.
fn check(state: &mut State, commands: Vec<Command>) -> Response {
    let mut last = Response::Applied;
    for c in commands {
        let index = state.last_applied + 1;
        last = state.apply(index, &c);
    }
    last
}

#[test]
fn agents_register_reregister_and_become_unreachable() {
    let mut s = State::default();
    assert_eq!(
        check(&mut s, vec![agent("a1", 2.0)]),
        Response::AgentRegistered { agent_id: "a1".into(), reregistered: false }
    );
    let l = launch(&s, "t1", 0.5, 1);
    check(&mut s, vec![l, status("t1", "u1", TaskState::TASK_RUNNING)]);
    check(&mut s, vec![Command::AgentUnreachable { agent_id: "a1".into(), at_ms: 9 }]);
    assert_eq!(s.agents["a1"].status, AgentStatus::Unreachable);
    assert_eq!(s.tasks["t1"].state, TaskState::TASK_UNREACHABLE);
    assert_eq!(s.tasks["t1"].reason.as_deref(), Some("REASON_SLAVE_REMOVED"));
    // The agent returns: it is active again and its task comes back when the agent says so.
    assert_eq!(
        check(&mut s, vec![agent("a1", 2.0)]),
        Response::AgentRegistered { agent_id: "a1".into(), reregistered: true }
    );
    assert_eq!(s.agents["a1"].status, AgentStatus::Active);
    check(&mut s, vec![status("t1", "u2", TaskState::TASK_RUNNING)]);
    assert_eq!(s.tasks["t1"].state, TaskState::TASK_RUNNING);
}

#[test]
fn status_updates_are_idempotent_and_terminal_states_final() {
    let mut s = State::default();
    check(&mut s, vec![agent("a1", 2.0)]);
    let l = launch(&s, "t1", 0.5, 0);
    check(&mut s, vec![l]);
    let cases = [
        (status("t1", "u1", TaskState::TASK_STARTING), true),
        (status("t1", "u1", TaskState::TASK_STARTING), false),
        (status("t1", "u2", TaskState::TASK_RUNNING), true),
        (status("t1", "u3", TaskState::TASK_FINISHED), true),
        (status("t1", "u4", TaskState::TASK_RUNNING), false),
    ];
    for (command, applied) in cases {
        assert_eq!(check(&mut s, vec![command]), Response::TaskUpdated { task_id: "t1".into(), applied });
    }
    assert_eq!(s.tasks["t1"].state, TaskState::TASK_FINISHED);
    assert!(matches!(check(&mut s, vec![status("nope", "u", TaskState::TASK_RUNNING)]), Response::Rejected { .. }));
}

#[test]
fn launches_are_checked_against_the_agent_at_apply_time() {
    let mut s = State::default();
    check(&mut s, vec![agent("a1", 1.0)]);
    let first = launch(&s, "t1", 0.75, 2);
    // Placed against the same (old) state: the second launch no longer fits when applied.
    let second = launch(&s, "t2", 0.75, 0);
    let ports_clash = launch(&s, "t3", 0.1, 2);
    assert_eq!(check(&mut s, vec![first.clone()]), Response::TaskLaunched { task_id: "t1".into() });
    assert!(matches!(check(&mut s, vec![first]), Response::Rejected { message } if message.contains("already in use")));
    assert!(
        matches!(check(&mut s, vec![second]), Response::Rejected { message } if message.contains("no longer has room"))
    );
    assert!(matches!(check(&mut s, vec![ports_clash]), Response::Rejected { message } if message.contains("ports")));
    check(&mut s, vec![Command::AgentSetMode { agent_id: "a1".into(), mode: AgentMode::Draining, at_ms: 5 }]);
    let refusals = place(&s, &spec(0.1, 0)).unwrap_err();
    assert!(refusals[0].reason.contains("draining"), "{refusals:?}");
}

#[test]
fn placement_prefers_the_least_loaded_agent_and_explains_refusals() {
    let mut s = State::default();
    check(&mut s, vec![agent("a1", 1.0), agent("a2", 4.0)]);
    assert_eq!(place(&s, &spec(0.5, 0)).unwrap().agent_id, "a2");
    let refusals = place(&s, &spec(8.0, 0)).unwrap_err();
    assert_eq!(refusals.len(), 2);
    assert!(refusals.iter().all(|r| r.reason.contains("cpus")), "{refusals:?}");
    let too_many_ports = place(&s, &spec(0.1, 4)).unwrap_err();
    assert!(too_many_ports[0].reason.contains("ports"));
    assert_eq!(place(&s, &spec(0.1, 3)).unwrap().ports, vec![31000, 31001, 31002]);
}

#[test]
fn kills_are_recorded_and_completed_tasks_are_bounded() {
    let mut s = State::default();
    check(&mut s, vec![agent("a1", 2000.0)]);
    let l = launch(&s, "k", 0.1, 0);
    check(&mut s, vec![l]);
    assert_eq!(
        check(&mut s, vec![Command::TaskKill { task_id: "k".into(), grace_ms: 500, at_ms: 4 }]),
        Response::TaskKillRequested { task_id: "k".into() }
    );
    assert_eq!(s.tasks["k"].kill_grace_ms, Some(500));
    for i in 0..(COMPLETED_TASKS_KEPT + 5) {
        let id = format!("done-{i}");
        let l = launch(&s, &id, 0.1, 0);
        check(&mut s, vec![l, status(&id, "end", TaskState::TASK_FINISHED)]);
    }
    let done = s.tasks.values().filter(|t| t.state.is_terminal()).count();
    assert_eq!(done, COMPLETED_TASKS_KEPT);
    assert!(s.tasks.contains_key("k"), "running tasks are never trimmed");
}

#[test]
fn batched_launches_are_checked_one_by_one_against_what_the_batch_already_took() {
    let mut state = State::default();
    state.apply(1, &agent("a1", 2.0));
    let task_of = |command: Command| match command {
        Command::TaskLaunch { task } => *task,
        other => panic!("{other:?}"),
    };
    let first = task_of(launch(&state, "first", 1.5, 1));
    // Placed against the same empty agent: together they do not fit.
    let second = task_of(launch(&state, "second", 1.0, 0));
    let mut same_port = task_of(launch(&state, "same-port", 0.1, 1));
    same_port.ports = first.ports.clone();
    let mut twice = task_of(launch(&state, "twice", 0.1, 2));
    twice.ports = vec![31001, 31001];
    let fits = task_of(launch(&state, "fits", 0.4, 1));
    let mut fits = fits;
    fits.ports = vec![31002];
    let batch = Command::TaskLaunchBatch { tasks: vec![first, second, same_port, twice, fits] };
    match state.apply(2, &batch) {
        Response::TasksLaunched { launched, rejected } => {
            assert_eq!(launched, ["first", "fits"]);
            let refused: Vec<&str> = rejected.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(refused, ["second", "same-port", "twice"]);
            assert!(rejected[0].1.contains("no longer has room"), "{rejected:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state.tasks.len(), 2);
}
