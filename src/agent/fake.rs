//! An in-memory [`Containers`] for tests of the agent and the protocol: it records launches
//! and kills, and lets the test decide when and how containers end.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::executor::{Containers, Exit};
use crate::core::Task;

#[derive(Default)]
pub struct FakeContainers {
    running: Mutex<BTreeMap<String, Option<Exit>>>,
    pub launched: Mutex<Vec<String>>,
    pub killed: Mutex<Vec<String>>,
    /// Commands containing this text fail to launch.
    pub fail_launch_containing: Mutex<Option<String>>,
}

impl FakeContainers {
    /// Ends a running container with `exit`.
    pub fn finish(&self, task_id: &str, exit: Exit) {
        if let Some(slot) = self.running.lock().expect("fake lock").get_mut(task_id) {
            *slot = Some(exit);
        }
    }

    pub fn is_running(&self, task_id: &str) -> bool {
        matches!(self.running.lock().expect("fake lock").get(task_id), Some(None))
    }
}

impl Containers for FakeContainers {
    fn launch(&self, task: &Task, sandbox: &Path) -> Result<(), String> {
        if let Some(text) = &*self.fail_launch_containing.lock().expect("fake lock")
            && task.spec.command.value.contains(text.as_str())
        {
            return Err(format!("fake launch failure for {}", task.id));
        }
        assert!(sandbox.is_dir(), "the executor creates the sandbox before launching");
        self.running.lock().expect("fake lock").insert(task.id.clone(), None);
        self.launched.lock().expect("fake lock").push(task.id.clone());
        Ok(())
    }

    fn kill(&self, task_id: &str, _grace: Duration) -> Result<(), String> {
        self.killed.lock().expect("fake lock").push(task_id.to_string());
        self.finish(task_id, Exit { code: None, signal: Some(15), oom: false });
        Ok(())
    }

    fn exit(&self, task_id: &str) -> Result<Option<Exit>, String> {
        self.running.lock().expect("fake lock").get(task_id).copied().ok_or_else(|| format!("no container {task_id}"))
    }

    fn destroy(&self, _task_id: &str) {}
}
