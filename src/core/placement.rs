//! Choosing an agent for a task: resource fit, host ports, and why each agent said no.

use serde::{Deserialize, Serialize};

use super::resources::Resources;
use super::state::State;
use super::tasks::TaskSpec;

/// Where a task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub agent_id: String,
    pub ports: Vec<u16>,
}

/// Why one agent could not take the task ("why is it pending?").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub agent_id: String,
    pub hostname: String,
    pub reason: String,
}

/// The resources still free on an agent, and the ports in use there.
pub fn free_on(state: &State, agent_id: &str) -> Option<(Resources, Vec<u16>)> {
    let agent = state.agents.get(agent_id)?;
    let mut free = agent.total.clone();
    let mut used_ports = Vec::new();
    for task in state.tasks.values().filter(|t| t.agent_id == agent_id && t.state.holds_resources()) {
        free.subtract(&task.spec.resources);
        used_ports.extend(task.ports.iter().copied());
    }
    used_ports.sort_unstable();
    Some((free, used_ports))
}

/// The lowest `count` free ports from the agent's ranges.
fn pick_ports(total: &Resources, used: &[u16], count: u16) -> Option<Vec<u16>> {
    let mut picked = Vec::new();
    for range in &total.ports {
        for port in range.begin..=range.end {
            if picked.len() == usize::from(count) {
                return Some(picked);
            }
            if used.binary_search(&port).is_err() {
                picked.push(port);
            }
        }
    }
    (picked.len() == usize::from(count)).then_some(picked)
}

/// Places `spec` on the agent with the most free CPU that fits it (ties: lowest id), or
/// explains per agent why none could.
pub fn place(state: &State, spec: &TaskSpec) -> Result<Placement, Vec<Refusal>> {
    let mut best: Option<(f64, Placement)> = None;
    let mut refusals = Vec::new();
    for agent in state.agents.values() {
        let refuse = |reason: String| Refusal { agent_id: agent.id.clone(), hostname: agent.hostname.clone(), reason };
        if !agent.accepts_tasks() {
            refusals.push(refuse(format!("agent is {:?} ({:?})", agent.status, agent.mode).to_lowercase()));
            continue;
        }
        let (free, used) = free_on(state, &agent.id).expect("agent exists");
        let need = &spec.resources;
        if !free.fits(need) {
            let mut short = Vec::new();
            if need.cpus > free.cpus + 0.0005 {
                short.push(format!("cpus {:.2} free < {:.2} needed", free.cpus, need.cpus));
            }
            if need.mem > free.mem + 0.0005 {
                short.push(format!("mem {:.0} MiB free < {:.0} needed", free.mem, need.mem));
            }
            if need.disk > free.disk + 0.0005 {
                short.push(format!("disk {:.0} MiB free < {:.0} needed", free.disk, need.disk));
            }
            refusals.push(refuse(format!("insufficient resources: {}", short.join(", "))));
            continue;
        }
        let Some(ports) = pick_ports(&agent.total, &used, spec.port_count) else {
            refusals.push(refuse(format!("fewer than {} free ports", spec.port_count)));
            continue;
        };
        let better = best.as_ref().is_none_or(|(cpus, _)| free.cpus > *cpus);
        if better {
            best = Some((free.cpus, Placement { agent_id: agent.id.clone(), ports }));
        }
    }
    match best {
        Some((_, placement)) => Ok(placement),
        None => Err(refusals),
    }
}
