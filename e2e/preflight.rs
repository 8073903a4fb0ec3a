//! `installer::preflight` against simulated bare-metal hosts (`hostsim.rs`) over the real
//! OpenSSH client: a clean pass on three hosts; a port held on one host named with its host and
//! port; a wrong SSH user refused on every host with what to check; an absent host unreachable.

use std::path::PathBuf;
use std::time::Duration;

use medos::installer::config::{Hosts, SshSettings};
use medos::installer::preflight::{PortCheck, Report, Requirements, Settings, Status, preflight};
use medos::installer::ssh::{HostKeyChecking, Runner, SshError, summary_table};

use crate::hosts::sim;
use crate::hostsim::HostSim;
use crate::support::shared_slot;

const MASTER_API: u16 = 8443;
const DNS: u16 = 53;
const AGENT_API: u16 = 5051;

fn hosts(sim: &HostSim, user: &str) -> Hosts {
    let ips: Vec<String> = sim.hosts().iter().map(|h| h.ip.to_string()).collect();
    Hosts {
        masters: vec![ips[0].clone()],
        agents: vec![ips[1].clone()],
        public_agents: vec![ips[2].clone()],
        ssh: SshSettings { user: user.into(), port: 22, key_path: Some(sim.key_path().to_path_buf()) },
    }
}

fn settings(sim: &HostSim, hosts: &Hosts) -> Settings {
    let master = Requirements {
        ports: vec![
            PortCheck::tcp(MASTER_API, "master API and Raft"),
            PortCheck::tcp(DNS, "cluster DNS"),
            PortCheck::udp(DNS, "cluster DNS"),
        ],
        data_dir: PathBuf::from("/var/lib/medos/master"),
        min_disk_bytes: 1 << 30,
        min_memory_bytes: 256 << 20,
    };
    let agent = Requirements {
        ports: vec![PortCheck::tcp(AGENT_API, "agent API")],
        data_dir: PathBuf::from("/var/lib/medos/agent"),
        min_disk_bytes: 1 << 30,
        min_memory_bytes: 256 << 20,
    };
    let mut s = Settings::new(hosts, master, agent);
    s.ssh.known_hosts = Some(sim.known_hosts_path());
    s.ssh.host_key_checking = HostKeyChecking::Yes;
    s.timeout = Duration::from_secs(60);
    s
}

fn show(report: &Report) -> String {
    format!("{}\n{:#?}", report.render(), report.hosts.iter().map(|h| (&h.host, &h.checks)).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_passes_on_three_bare_hosts() {
    let _slot = shared_slot().await;
    let Some(sim) = sim(3) else { return };
    let hosts = hosts(&sim, "root");
    let logs = tempfile::tempdir().unwrap();
    let report = preflight(&hosts, &settings(&sim, &hosts), logs.path()).await.expect("preflight runs");
    eprintln!("{}", report.render());
    assert!(report.passed(), "preflight should pass on bare hosts:\n{}", show(&report));
    for h in &report.hosts {
        let names: Vec<&str> = h.checks.iter().map(|c| c.name).collect();
        for want in [
            "os",
            "kernel",
            "systemd",
            "cgroups",
            "overlayfs",
            "ports",
            "disk",
            "memory",
            "hostname",
            "reachability",
            "clock",
        ] {
            assert!(names.contains(&want), "{}: no {want} check in {names:?}", h.host);
        }
        let reach = h.checks.iter().find(|c| c.name == "reachability").unwrap();
        assert_eq!(reach.detail, "reaches 2", "{}", h.host);
        let log = std::fs::read_to_string(logs.path().join(format!("{}.log", h.host))).expect("a log per host");
        assert!(log.contains("@@machine-id") && log.contains("date +%s.%N"), "the log holds the full output: {log}");
    }
    assert!(report.cluster.iter().all(|c| c.status == Status::Pass), "{:#?}", report.cluster);

    // The runner underneath: a copy lands atomically with its mode; a step failing on one
    // host is that host's failure, with the tail of its output, in the summary.
    let runner = Runner::new(settings(&sim, &hosts).ssh, logs.path()).unwrap();
    let all: Vec<String> = sim.hosts().iter().map(|h| h.ip.to_string()).collect();
    let copied =
        runner
            .on_hosts(&all, "copy", |host| {
                let runner = &runner;
                async move {
                    runner.copy(host, b"hello\n", "/etc/medos-test/dir/file", 0o640, Duration::from_secs(30)).await
                }
            })
            .await;
    assert!(copied.iter().all(|o| o.result.is_ok()), "{}", summary_table(&copied));
    for i in 0..3 {
        assert_eq!(sim.ssh_ok(i, "stat -c '%a %s' /etc/medos-test/dir/file; ls /etc/medos-test/dir"), "640 6\nfile\n");
    }
    let ran = runner
        .on_hosts(&all, "check", |host| {
            let runner = &runner;
            async move {
                runner
                    .run(
                        host,
                        "hostname check",
                        "echo checking; if [ $(hostname) = h2 ]; then echo nope >&2; exit 3; fi",
                        None,
                        Duration::from_secs(30),
                    )
                    .await
            }
        })
        .await;
    let table = summary_table(&ran);
    eprintln!("{table}");
    let failed: Vec<&str> = ran.iter().filter(|o| o.result.is_err()).map(|o| o.host.as_str()).collect();
    assert_eq!(failed, vec![all[1].as_str()], "{table}");
    let err = ran[1].result.as_ref().unwrap_err().to_string();
    assert_eq!(err, format!("hostname check failed on {} (exit status 3):\nchecking\nnope", all[1]));
    assert!(table.contains("FAILED") && table.contains("hostname check failed on"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_busy_ports_wrong_users_and_absent_hosts() {
    let _slot = shared_slot().await;
    let Some(sim) = sim(3) else { return };
    let logs = tempfile::tempdir().unwrap();

    // A wrong SSH user: every host refuses the login, and the error says what to check.
    let mut wrong = hosts(&sim, "nobody");
    let absent = format!("{}", std::net::Ipv4Addr::new(10, 77, sim.gateway().octets()[2], 200));
    wrong.agents.push(absent.clone());
    let mut s = settings(&sim, &wrong);
    s.ssh.connect_timeout = Duration::from_secs(3);
    let report = preflight(&wrong, &s, logs.path()).await.expect("preflight runs");
    eprintln!("{}", report.render());
    assert!(!report.passed());
    for h in &report.hosts {
        let err = h.error.as_deref().unwrap_or_else(|| panic!("{} should have failed:\n{}", h.host, show(&report)));
        if h.host == absent {
            assert!(matches!(h.ssh_error, Some(SshError::Unreachable { .. })), "{}: {err}", h.host);
            assert!(err.starts_with(&format!("cannot reach {absent}:22")), "{err}");
        } else {
            assert!(matches!(h.ssh_error, Some(SshError::AuthFailed { .. })), "{}: {err}", h.host);
            assert!(err.contains(&h.host) && err.contains("\"nobody\"") && err.contains("ssh_key_path"), "{err}");
        }
    }
    let rendered = report.render();
    assert!(rendered.contains("refused the login as \"nobody\""), "{rendered}");
    assert!(rendered.contains("login refused") && rendered.contains("unreachable"), "{rendered}");

    // A port held on the agent host: preflight names that host and port, the others pass.
    sim.ssh_ok(1, &format!("systemd-run --unit=squatter socat TCP-LISTEN:{AGENT_API},fork,reuseaddr EXEC:/bin/true"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sim.ssh_ok(1, "cat /proc/net/tcp /proc/net/tcp6").contains(&format!(":{AGENT_API:04X} 00000000:0000 0A")) {
        assert!(std::time::Instant::now() < deadline, "socat did not start listening on {AGENT_API}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let hosts = hosts(&sim, "root");
    let report = preflight(&hosts, &settings(&sim, &hosts), logs.path()).await.expect("preflight runs");
    eprintln!("{}", report.render());
    assert!(!report.passed());
    let problems = report.problems();
    assert_eq!(problems.len(), 1, "only the busy port:\n{}", show(&report));
    let (host, check) = problems[0];
    assert_eq!(host, hosts.agents[0]);
    assert_eq!(check.name, "ports");
    assert_eq!(check.detail, format!("in use: {AGENT_API}/tcp (agent API)"));
    assert!(check.fix.as_deref().unwrap_or_default().contains(&format!("sport = :{AGENT_API}")));
    let rendered = report.render();
    assert!(rendered.contains(&format!("FAIL {} ports: in use: {AGENT_API}/tcp", hosts.agents[0])), "{rendered}");
}
