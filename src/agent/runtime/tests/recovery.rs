//! Agent restarts: containers outlive the runtime object and are recovered from disk.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::support::{TestRuntime, eventually};
use crate::agent::runtime::state::{ShimState, read_json};
use crate::agent::runtime::status::Termination;
use crate::agent::runtime::{ContainerRuntime, ContainerState};

#[tokio::test]
async fn recovery_reattaches_and_reports_exits_that_happened_while_down() {
    let mut t = TestRuntime::new();
    let a = t.spec("keeps-running", "echo up; while [ ! -e stop ]; do sleep 0.05; done; exit 3");
    let b = t.spec("ends-while-down", "echo up; while [ ! -e stop ]; do sleep 0.05; done; exit 4");
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let (a_sandbox, b_sandbox) = (a.sandbox.clone(), b.sandbox.clone());
    let before = t.rt().launch(a).await.unwrap();
    t.rt().launch(b).await.unwrap();
    t.wait_for_log("ends-while-down", "stdout", "up").await;

    // The agent dies. B ends while no agent runs; its shim records the status on disk.
    t.crash();
    std::fs::write(b_sandbox.join("stop"), b"").unwrap();
    let b_exit = t.container_dir("ends-while-down").exit();
    eventually("B's exit to be recorded", Duration::from_secs(20), || b_exit.exists()).await;

    t.start_again();
    let recovered = t.rt().recover().await.unwrap();
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    let a_now = recovered.iter().find(|c| c.id == a_id).unwrap();
    assert_eq!(a_now.state, ContainerState::Running);
    assert_eq!(a_now.init_pid, before.init_pid, "the same container, not a new one");
    assert_eq!(a_now.task_pid, before.task_pid);
    let b_now = recovered.iter().find(|c| c.id == b_id).unwrap();
    match &b_now.state {
        ContainerState::Exited(status) => assert_eq!(status.code(), Some(4), "{status:?}"),
        other => panic!("B should have ended: {other:?}"),
    }

    // The recovered container is watched: its end is seen, and kill/destroy work on it.
    std::fs::write(a_sandbox.join("stop"), b"").unwrap();
    assert_eq!(t.rt().wait(&a_id).await.unwrap().code(), Some(3));
    t.rt().destroy(&a_id).await.unwrap();
    t.rt().destroy(&b_id).await.unwrap();
    assert!(t.state_entries().is_empty());
}

#[tokio::test]
async fn a_killed_shim_is_reported_as_unknown_and_takes_the_task_with_it() {
    let t = TestRuntime::new();
    let spec = t.spec("orphan", "echo up; exec sleep 600");
    let id = spec.id.clone();
    let container = t.rt().launch(spec).await.unwrap();
    t.wait_for_log("orphan", "stdout", "up").await;
    let state: ShimState = read_json(&t.container_dir("orphan").state()).unwrap().unwrap();
    state.shim.signal(Signal::SIGKILL).unwrap();
    let status = t.rt().wait(&id).await.unwrap();
    match &status.termination {
        Termination::Unknown { reason } => assert!(reason.contains("shim"), "{reason}"),
        other => panic!("expected an unknown status, got {other:?}"),
    }
    // The init's parent-death signal took the container down.
    let task = state.task.unwrap();
    assert_eq!(task.pid, container.task_pid.unwrap());
    eventually("the task to die with its shim", Duration::from_secs(10), || !task.is_alive()).await;
    // The verdict was recorded, so a restarted agent reports the same.
    let recorded: crate::agent::runtime::ExitStatus = read_json(&t.container_dir("orphan").exit()).unwrap().unwrap();
    assert_eq!(recorded.termination, status.termination);
}

/// `config.json` and `state.json` are not synced: after a host crash they can be empty. Recovery
/// reads an empty one as never written, instead of failing on it.
#[tokio::test]
async fn empty_files_left_by_a_host_crash_read_as_never_written() {
    let mut t = TestRuntime::new();
    let spec = t.spec("crashed", "echo up; exec sleep 600");
    let id = spec.id.clone();
    t.rt().launch(spec).await.unwrap();
    t.wait_for_log("crashed", "stdout", "up").await;
    // The host "crashes": every process dies and the unsynced state file comes back empty.
    t.crash();
    let dir = t.container_dir("crashed");
    let state: ShimState = read_json(&dir.state()).unwrap().unwrap();
    for p in [state.init, Some(state.shim)].into_iter().flatten() {
        p.signal(Signal::SIGKILL).unwrap();
    }
    eventually("the shim to die", Duration::from_secs(10), || !state.shim.is_alive()).await;
    std::fs::write(dir.state(), b"").unwrap();
    // A second container whose plan never reached the disk.
    let unplanned = t.container_dir("unplanned");
    std::fs::create_dir_all(&unplanned.path).unwrap();
    std::fs::write(unplanned.plan(), b"").unwrap();

    t.start_again();
    let recovered = t.rt().recover().await.unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    match &recovered[0].state {
        ContainerState::Exited(status) => {
            assert!(matches!(status.termination, Termination::Unknown { .. }), "{status:?}")
        }
        other => panic!("the crashed container cannot be running: {other:?}"),
    }
    assert!(!unplanned.path.exists(), "a container without a plan is removed");
    t.rt().destroy(&id).await.unwrap();
    assert!(t.state_entries().is_empty());
}
