//! Detecting what this host offers: CPUs, memory, disk (overridable in the config).

use std::path::Path;

use crate::core::Resources;

use super::config::AgentConfig;

/// Memory kept back for the host and medos itself, as Mesos does: half of the RAM up to 1 GiB.
fn reserved_mem_mib(total: f64) -> f64 {
    (total / 2.0).min(1024.0)
}

fn mem_total_mib() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn disk_free_mib(path: &Path) -> f64 {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => (s.blocks_available() as f64) * (s.fragment_size() as f64) / (1024.0 * 1024.0),
        Err(_) => 0.0,
    }
}

/// Detected resources with the config's overrides applied.
pub fn detect(config: &AgentConfig) -> Result<Resources, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mem = mem_total_mib();
    let disk = disk_free_mib(&config.work_dir);
    Ok(Resources {
        cpus: config.resources.cpus.unwrap_or(cpus),
        mem: config.resources.mem.unwrap_or((mem - reserved_mem_mib(mem)).floor()),
        disk: config.resources.disk.unwrap_or((disk * 0.9).floor()),
        ports: config.port_ranges()?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_host_has_cpus_and_memory() {
        assert!(super::mem_total_mib() > 100.0);
        assert_eq!(super::reserved_mem_mib(24_000.0), 1024.0);
        assert_eq!(super::reserved_mem_mib(1000.0), 500.0);
    }
}
