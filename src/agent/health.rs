//! Health checks run by the agent, with Marathon's MESOS_HTTP, MESOS_HTTPS, MESOS_TCP and
//! COMMAND semantics: the first check runs `delaySeconds` after the task is seen running,
//! then every `intervalSeconds`, each bounded by `timeoutSeconds`; HTTP answers 200-399 are
//! healthy. Failures inside `gracePeriodSeconds` before the first success do not count. A task
//! is healthy when all its checks are; every change is reported to the masters as a
//! TASK_RUNNING update with `healthy` set; every failure is reported with how many in a row
//! failed. As Mesos's executors do for MESOS_* checks, the agent kills a task whose check failed
//! `maxConsecutiveFailures` times in a row (0 never kills); the framework then replaces it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::executor::Executor;
use crate::core::Task;
use crate::core::tasks::{HealthCheck, HealthProtocol};

struct CheckState {
    next_at: Instant,
    in_flight: bool,
    healthy: Option<bool>,
    ever_healthy: bool,
    consecutive_failures: u32,
}

struct TaskHealth {
    seen_at: Instant,
    checks: Vec<CheckState>,
    reported: Option<bool>,
}

/// The result of one probe.
struct Outcome {
    task_id: String,
    index: usize,
    result: Result<(), String>,
}

/// Runs one probe.
pub async fn probe(executor: &Executor, task: &Task, check: &HealthCheck) -> Result<(), String> {
    let timeout = Duration::from_secs(check.timeout_seconds);
    let port = match check.port {
        Some(p) => p,
        None => *task.ports.get(check.port_index.unwrap_or(0)).ok_or("the task has no such port")?,
    };
    match check.protocol {
        HealthProtocol::MesosTcp => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", port))).await {
                Err(_) => Err(format!("TCP connect to port {port} timed out after {timeout:?}")),
                Ok(Err(e)) => Err(format!("TCP connect to port {port}: {e}")),
                Ok(Ok(_)) => Ok(()),
            }
        }
        HealthProtocol::MesosHttp | HealthProtocol::MesosHttps => {
            let scheme = if check.protocol == HealthProtocol::MesosHttps { "https" } else { "http" };
            let path = check.path.as_deref().unwrap_or("/");
            let url = format!("{scheme}://127.0.0.1:{port}{path}");
            // Like Mesos, HTTPS checks do not verify the task's certificate.
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(crate::pki::tls::trust_on_first_use_config())
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let resp = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            let code = resp.status().as_u16();
            if (200..400).contains(&code) { Ok(()) } else { Err(format!("GET {url} answered {code}")) }
        }
        HealthProtocol::Command => {
            let command = check.command.as_ref().map(|c| c.value.clone()).unwrap_or_default();
            let containers = executor.containers();
            let id = task.id.clone();
            let code = tokio::task::spawn_blocking(move || containers.run_check(&id, &command, timeout))
                .await
                .map_err(|e| e.to_string())??;
            if code == 0 { Ok(()) } else { Err(format!("command exited with status {code}")) }
        }
    }
}

/// Runs health checks for every running task until the agent stops.
pub async fn run(executor: Arc<Executor>) {
    let mut tasks: HashMap<String, TaskHealth> = HashMap::new();
    let (tx, mut rx) = mpsc::channel::<Outcome>(256);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(outcome) = rx.recv() => {
                record(&executor, &mut tasks, outcome);
                continue;
            }
        }
        let running: HashMap<String, Task> = executor
            .running()
            .into_iter()
            .filter(|t| !t.spec.health_checks.is_empty())
            .map(|t| (t.id.clone(), t))
            .collect();
        tasks.retain(|id, _| running.contains_key(id));
        let now = Instant::now();
        for (id, task) in &running {
            let health = tasks.entry(id.clone()).or_insert_with(|| TaskHealth {
                seen_at: now,
                reported: None,
                checks: task
                    .spec
                    .health_checks
                    .iter()
                    .map(|c| CheckState {
                        next_at: now + Duration::from_secs(c.delay_seconds),
                        in_flight: false,
                        healthy: None,
                        ever_healthy: false,
                        consecutive_failures: 0,
                    })
                    .collect(),
            });
            for (index, state) in health.checks.iter_mut().enumerate() {
                if state.in_flight || now < state.next_at {
                    continue;
                }
                let check = task.spec.health_checks[index].clone();
                state.in_flight = true;
                state.next_at = now + Duration::from_secs(check.interval_seconds);
                let (executor, task, tx) = (executor.clone(), task.clone(), tx.clone());
                tokio::spawn(async move {
                    let result = probe(&executor, &task, &check).await;
                    let _ = tx.send(Outcome { task_id: task.id.clone(), index, result }).await;
                });
            }
        }
    }
}

fn record(executor: &Executor, tasks: &mut HashMap<String, TaskHealth>, outcome: Outcome) {
    let Some(health) = tasks.get_mut(&outcome.task_id) else { return };
    let Some(task) = executor.running().into_iter().find(|t| t.id == outcome.task_id) else { return };
    let Some(check) = task.spec.health_checks.get(outcome.index) else { return };
    let state = &mut health.checks[outcome.index];
    state.in_flight = false;
    let mut message = String::new();
    match outcome.result {
        Ok(()) => {
            state.ever_healthy = true;
            state.consecutive_failures = 0;
            state.healthy = Some(true);
        }
        Err(e) => {
            let in_grace =
                !state.ever_healthy && health.seen_at.elapsed() < Duration::from_secs(check.grace_period_seconds);
            if in_grace {
                tracing::debug!(task = %outcome.task_id, error = %e, "health check failed during the grace period");
                return;
            }
            state.consecutive_failures += 1;
            state.healthy = Some(false);
            message = format!(
                "health check {} failed {} time(s) in a row (max {}): {e}",
                outcome.index, state.consecutive_failures, check.max_consecutive_failures
            );
        }
    }
    let all: Option<bool> =
        health.checks.iter().map(|c| c.healthy).collect::<Option<Vec<bool>>>().map(|v| v.iter().all(|h| *h));
    let combined = match all {
        Some(h) => h,
        // Not every check has an answer yet: only a failure is worth reporting.
        None if health.checks.iter().any(|c| c.healthy == Some(false)) => false,
        None => return,
    };
    if health.reported != Some(combined) || (!combined && !message.is_empty()) {
        health.reported = Some(combined);
        tracing::info!(task = %outcome.task_id, healthy = combined, "task health changed");
        executor.report_health(&outcome.task_id, combined, message);
    }
    let exhausted = health.checks.iter().zip(&task.spec.health_checks).find(|(state, check)| {
        check.max_consecutive_failures > 0 && state.consecutive_failures >= check.max_consecutive_failures
    });
    if let Some((state, _)) = exhausted {
        tracing::warn!(
            task = %outcome.task_id,
            failures = state.consecutive_failures,
            "killing the task: a health check failed too many times in a row"
        );
        executor.kill(&outcome.task_id, Duration::from_millis(task.spec.kill_grace_ms));
    }
}
