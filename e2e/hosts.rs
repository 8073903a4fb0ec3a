//! The simulated bare-metal hosts themselves (`hostsim.rs`): they boot with systemd, answer
//! SSH with the run's key, reach each other, come back from a reboot, power off hard, and
//! leave nothing behind.

use std::path::Path;
use std::time::Instant;

use crate::hostsim::{self, HostSim};
use crate::support::shared_slot;

/// `None` (after printing why) when simulated hosts cannot run on this machine. Callers
/// hold `shared_slot()`, so no simulation runs while a test measures time. Blocking: the
/// tests are multi-threaded tokio tests, so this holds up one worker only.
pub fn sim(n: usize) -> Option<HostSim> {
    if let Some(why) = hostsim::unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(HostSim::start(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_boot_answer_ssh_and_reach_each_other() {
    let _slot = shared_slot().await;
    let Some(sim) = sim(3) else { return };
    let hosts = sim.hosts().to_vec();
    let mut machine_ids = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let out = sim.ssh_ok(i, "hostname; cat /etc/machine-id; cat /proc/1/comm; systemctl is-system-running || true");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&h.name.as_str()), "hostname of {}: {out}", h.name);
        assert_eq!(lines.get(2), Some(&"systemd"), "PID 1 of {}: {out}", h.name);
        assert!(matches!(lines.get(3), Some(&"running") | Some(&"degraded")), "{} is not up: {out}", h.name);
        machine_ids.push(lines[1].to_string());
        for other in &hosts {
            sim.ssh_ok(
                i,
                &format!(
                    "ping -c1 -W2 {} >/dev/null && getent hosts {} | grep -q '^{} '",
                    other.ip, other.name, other.ip
                ),
            );
        }
    }
    // The ssh config the installer can be pointed at (`ssh -F`): user, key and known hosts.
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(sim.ssh_config_path())
        .arg(hosts[2].ip.to_string())
        .arg("hostname")
        .output()
        .expect("running ssh");
    assert!(out.status.success(), "ssh -F: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hosts[2].name);
    machine_ids.sort();
    machine_ids.dedup();
    assert_eq!(machine_ids.len(), 3, "machine-ids are not unique: {machine_ids:?}");
    // The cgroup v1 fix-up: systemd inside can manage the controllers (a unit's memory limit
    // lands in its cgroup).
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        let out = sim.ssh_ok(
            0,
            "systemd-run --unit=limit-probe -p MemoryMax=64M sleep 30 >/dev/null 2>&1; \
             cat /sys/fs/cgroup/memory/system.slice/limit-probe.service/memory.limit_in_bytes; systemctl stop limit-probe",
        );
        assert_eq!(out.trim(), (64u64 << 20).to_string(), "MemoryMax not enforced inside the host");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_brings_a_host_back_and_kill_powers_it_off() {
    let _slot = shared_slot().await;
    let Some(mut sim) = sim(2) else { return };
    sim.ssh_ok(0, "echo kept > /var/tmp/marker");
    let old_pid = sim.hosts()[0].pid;
    let start = Instant::now();
    sim.reboot(0);
    eprintln!("reboot took {:.1} s", start.elapsed().as_secs_f64());
    assert_eq!(sim.boots(0), 2);
    assert_ne!(sim.hosts()[0].pid, old_pid, "the host's PID 1 should be new after a reboot");
    assert!(!Path::new(&format!("/proc/{old_pid}")).exists(), "the old PID 1 is still alive");
    assert_eq!(sim.ssh_ok(0, "cat /var/tmp/marker").trim(), "kept", "the disk survives a reboot");
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        // The cgroup v1 fix-up is redone on every boot.
        let opts = sim.ssh_ok(0, "awk '$5 == \"/sys/fs/cgroup/memory\" {print $6}' /proc/self/mountinfo");
        assert!(opts.starts_with("rw"), "the memory controller is read-only after the reboot: {opts}");
    }
    let state = sim.ssh_ok(0, "systemctl is-system-running || true");
    assert!(matches!(state.trim(), "running" | "degraded"), "h1 after the reboot: {state}");

    let pid = sim.hosts()[1].pid;
    sim.kill_host(1);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "PID 1 of a killed host is still alive");
    let out = sim.ssh(1, "true");
    assert_eq!(out.status.code(), Some(255), "ssh to a powered-off host should fail");
    // The other host is unaffected.
    sim.ssh_ok(0, "true");
    sim.boot(1);
    assert_eq!(sim.ssh_ok(1, "cat /etc/hostname").trim(), "h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_simulation_removes_everything() {
    let _slot = shared_slot().await;
    let Some(sim) = sim(2) else { return };
    let fp = sim.footprint();
    assert!(Path::new("/sys/class/net").join(&fp.bridge).exists());
    drop(sim);
    for pid in &fp.pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "host PID 1 {pid} survived");
    }
    assert!(!Path::new("/sys/class/net").join(&fp.bridge).exists(), "bridge {} left behind", fp.bridge);
    for v in &fp.veths {
        assert!(!Path::new("/sys/class/net").join(v).exists(), "veth {v} left behind");
    }
    for ns in &fp.netns {
        assert!(!Path::new("/run/netns").join(ns).exists(), "netns {ns} left behind");
    }
    for cg in &fp.cgroups {
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    assert_eq!(fp.mounts.len(), 2);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for m in &fp.mounts {
        assert!(!mountinfo.contains(&format!(" {} ", m.display())), "{} still mounted", m.display());
    }
    assert!(!fp.dir.exists() || std::env::var_os("MEDOS_E2E_KEEP").is_some(), "{} left behind", fp.dir.display());
}
