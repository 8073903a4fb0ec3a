//! The whole installer journey on five simulated bare-metal hosts (3 masters, 2 agents), through
//! the real binary, the real OpenSSH client and the real systemd units on the hosts:
//! genconf → preflight → deploy (first with a wrong SSH user and with a port held on an agent
//! host: per-host errors, then a rerun that succeeds) → postflight → a Marathon app resolved
//! through a master's DNS (from this machine and from a task on an agent host) → a master host
//! killed (the cluster keeps working) and booted again → an agent host rebooted (it comes back
//! and the app is whole again) → upgrade to a rebuilt binary (one unit at a time, tasks kept)
//! → a rerun of deploy changes nothing → uninstall leaves every host clean.

use std::path::Path;
use std::time::{Duration, Instant};

use medos::api::client::Client;
use medos::installer::config::NodeRole;
use medos::installer::deploy::{self, Context, HostRole, SshOverrides};
use reqwest::Method;

use crate::hosts::sim;
use crate::hostsim::HostSim;
use crate::support::{MEDOS, eventually, shared_slot};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(self.code, Some(0), "{what} failed:\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

/// `medos installer --genconf-dir DIR --ssh-config SIM ARGS…` with the binary next to `dir`
/// (see [`shipped_binary`]).
async fn installer(sim: &HostSim, dir: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let out = tokio::process::Command::new(dir.with_file_name("medos"))
        .arg("installer")
        .arg("--genconf-dir")
        .arg(dir)
        .arg("--ssh-config")
        .arg(sim.ssh_config_path())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running medos installer");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    };
    eprintln!(
        "$ medos installer {} ({:.1}s, exit {:?})\n{}{}",
        args.join(" "),
        run.elapsed.as_secs_f64(),
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

/// This build's binary next to the genconf dir, without its debug line tables (genconf ships
/// the binary that runs it: half the bytes to copy and store on every host).
fn shipped_binary(dir: &Path) -> std::path::PathBuf {
    let bin = dir.with_file_name("medos");
    std::fs::copy(MEDOS, &bin).unwrap();
    let stripped = std::process::Command::new("strip").arg("--strip-debug").arg(&bin).status();
    if !stripped.is_ok_and(|s| s.success()) {
        eprintln!("strip failed or is missing: shipping the binary as built");
    }
    bin
}

/// The image `preload_images` names.
const PRELOADED: &str = "medos/busybox:1";

fn write_config(dir: &Path, sim: &HostSim, ssh_user: &str) {
    write_config_with(dir, sim, ssh_user, &[]);
}

/// 3 masters and 2 agents, plus `extra_agents`.
fn write_config_with(dir: &Path, sim: &HostSim, ssh_user: &str, extra_agents: &[String]) {
    let ip = |i: usize| sim.hosts()[i].ip.to_string();
    let mut agents = vec![ip(3), ip(4)];
    agents.extend(extra_agents.iter().cloned());
    // An image deploy loads into the cluster once it runs.
    let archive = dir.join("busybox.tar");
    if !archive.exists() {
        medos::image::testing::busybox_image(
            &archive,
            &medos::image::testing::ImageSpec::new(PRELOADED, medos::image::testing::ArchiveFormat::OciLayout),
        )
        .expect("building the busybox image");
    }
    // A package bundle deploy adds to the cluster (the default repository's httpd and its image).
    let bundle = dir.join("httpd.bundle");
    if !bundle.exists() {
        let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("universe/packages/H/httpd/0");
        let images = std::collections::BTreeMap::from([(PRELOADED.to_string(), archive.clone())]);
        medos::packages::bundle::build(&package, &images, &bundle, &dir.join("bundle-scratch"))
            .expect("bundling httpd");
    }
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "cluster_name: e2e-installer\nmaster_list: [{}, {}, {}]\nagent_list: [{}]\nssh_user: {ssh_user}\nresolvers: [{}]\npreload_images: [busybox.tar]\npreload_packages: [httpd.bundle]\n",
            ip(0),
            ip(1),
            ip(2),
            agents.join(", "),
            sim.gateway()
        ),
    )
    .unwrap();
}

fn unit_of(i: usize) -> &'static str {
    if i < 3 { "medos-master.service" } else { "medos-agent.service" }
}

/// `(InvocationID, ActiveEnterTimestampMonotonic)` of host `i`'s unit.
fn unit_run(sim: &HostSim, i: usize) -> (String, u64) {
    let out = sim.ssh_ok(i, &format!("systemctl show -p InvocationID -p ActiveEnterTimestampMonotonic {}", unit_of(i)));
    let mut id = String::new();
    let mut at = 0;
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("InvocationID=") {
            id = v.trim().to_string();
        }
        if let Some(v) = line.strip_prefix("ActiveEnterTimestampMonotonic=") {
            at = v.trim().parse().unwrap_or(0);
        }
    }
    assert!(!id.is_empty() && at > 0, "host {i}: {out}");
    (id, at)
}

/// The running tasks of Marathon app `/web`: `(task id, agent address)`.
async fn web_tasks(client: &Client) -> Result<Vec<(String, String)>, String> {
    let tasks = client.marathon(Method::GET, "/v2/apps/web/tasks", None).await.map_err(|e| e.to_string())?;
    let mut found: Vec<(String, String)> = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .map(|t| (t["id"].as_str().unwrap_or_default().to_string(), t["host"].as_str().unwrap_or_default().to_string()))
        .collect();
    found.sort();
    Ok(found)
}

/// Runs `cmd` as a task and waits until it finishes; its final state.
async fn run_task(client: &Client, cmd: &str) -> medos::core::TaskState {
    let request: medos::api::tasks::RunTask =
        serde_json::from_value(serde_json::json!({"cmd": cmd, "cpus": 0.1, "mem": 32})).unwrap();
    let task = client.run_task(&request).await.expect("starting a task");
    eventually(&format!("task {cmd:?} to end"), Duration::from_secs(60), || async {
        let t = client.task(&task.id).await.map_err(|e| e.to_string())?;
        if t.state.is_terminal() { Ok(t.state) } else { Err(format!("{:?}", t.state)) }
    })
    .await
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genconf_preflight_deploy_postflight_upgrade_uninstall_on_five_hosts() {
    let _slot = shared_slot().await;
    let Some(mut sim) = sim(5) else { return };
    let journey = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("genconf");
    std::fs::create_dir_all(&dir).unwrap();
    let ips: Vec<String> = sim.hosts().iter().map(|h| h.ip.to_string()).collect();
    let binary = shipped_binary(&dir);

    write_config(&dir, &sim, "root");
    let t = Instant::now();
    installer(&sim, &dir, &["genconf"]).await.ok("genconf");
    let pf = installer(&sim, &dir, &["preflight"]).await.ok("preflight");
    for ip in &ips {
        assert!(pf.stdout.lines().any(|l| l.starts_with(ip.as_str()) && l.contains(" ok")), "{ip}: {}", pf.stdout);
    }

    // Bad input: a listed host that does not answer is named, and nothing is installed yet.
    let absent = std::net::Ipv4Addr::new(10, 77, sim.gateway().octets()[2], 200).to_string();
    write_config_with(&dir, &sim, "root", std::slice::from_ref(&absent));
    installer(&sim, &dir, &["genconf"]).await.ok("genconf with an absent host");
    let unreachable = installer(&sim, &dir, &["deploy"]).await;
    assert_eq!(unreachable.code, Some(1), "{}", unreachable.stderr);
    assert!(unreachable.stderr.contains("copying serve/ failed on 1 of 6 hosts"), "{}", unreachable.stderr);
    assert!(unreachable.stderr.contains(&format!("{absent}: cannot reach {absent}:22")), "{}", unreachable.stderr);
    write_config(&dir, &sim, "root");
    installer(&sim, &dir, &["genconf"]).await.ok("genconf without it");

    // Bad input: a wrong SSH user is refused on every host, each named, nothing installed.
    write_config(&dir, &sim, "nobody");
    let bad = installer(&sim, &dir, &["deploy"]).await;
    assert_eq!(bad.code, Some(1), "{}", bad.stderr);
    for ip in &ips {
        assert!(bad.stderr.contains(&format!("{ip} refused the login as \"nobody\"")), "{ip}: {}", bad.stderr);
    }
    assert!(bad.stderr.contains("rerun `medos installer deploy`"), "{}", bad.stderr);
    write_config(&dir, &sim, "root");

    // A port held on an agent host: the deploy names that host and stops; freed, a rerun works.
    sim.ssh_ok(3, "systemd-run --unit=squatter socat TCP-LISTEN:5051,fork,reuseaddr EXEC:/bin/true");
    eventually("socat to listen on 5051", Duration::from_secs(30), || async {
        let tcp = sim.ssh_ok(3, "cat /proc/net/tcp /proc/net/tcp6");
        let listening = tcp.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&format!(":{:04X}", 5051)) && f[3] == "0A"
        });
        if listening { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    let failed = installer(&sim, &dir, &["deploy"]).await;
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(failed.stderr.contains("installing the agents failed on 1 of 2 hosts"), "{}", failed.stderr);
    assert!(failed.stderr.contains(&format!("{}: install.sh agent failed on {}", ips[3], ips[3])), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("cannot listen on 0.0.0.0:5051"),
        "the reason, from the unit's log: {}",
        failed.stderr
    );
    sim.ssh_ok(3, "systemctl stop squatter");

    let deployed = installer(&sim, &dir, &["deploy"]).await.ok("deploy after freeing the port");
    assert!(deployed.stderr.contains("deployed 5 hosts"), "{}", deployed.stderr);
    let post = installer(&sim, &dir, &["postflight"]).await.ok("postflight");
    eprintln!("bare hosts → healthy cluster (with the failed attempts): {:.1}s", t.elapsed().as_secs_f64());
    for want in ["raft", "agent", "dns", "smoke task"] {
        assert!(post.stdout.lines().any(|l| l.starts_with(want) && l.contains(" ok ")), "{want}: {}", post.stdout);
    }
    assert!(!post.stdout.contains("FAILED"), "{}", post.stdout);
    let status = installer(&sim, &dir, &["status"]).await.ok("status");
    for ip in &ips {
        assert!(
            status.stdout.lines().any(|l| l.starts_with(ip.as_str()) && l.contains(" active ")),
            "{}",
            status.stdout
        );
    }
    assert!(status.stdout.contains("leader: master-"), "{}", status.stdout);

    let overrides = SshOverrides { config_file: Some(sim.ssh_config_path().to_path_buf()), ..Default::default() };
    let ctx = Context::load(&dir, &overrides).expect("loading the genconf dir");
    let client = ctx.admin_client().await.expect("logging in");
    assert!(deployed.stderr.contains(&format!("preloaded image {PRELOADED}")), "{}", deployed.stderr);
    let images = client.images().await.expect("image list");
    assert!(images.iter().any(|i| i.names.iter().any(|n| n == PRELOADED)), "preload_images loaded: {images:?}");
    assert!(deployed.stderr.contains("preloaded package httpd 1.0.0"), "{}", deployed.stderr);
    let httpd = client.package_describe("httpd", None).await.expect("the preloaded package in the local repository");
    assert_eq!(httpd.version, "1.0.0");

    // A Marathon app, one instance per agent, resolved through a master's DNS.
    let app = serde_json::json!({
        "id": "/web", "cmd": "sleep 100000", "instances": 2, "cpus": 0.1, "mem": 32,
        "constraints": [["hostname", "UNIQUE"]],
    });
    client.marathon(Method::POST, "/v2/apps", Some(&app)).await.expect("creating /web");
    let before_kill = eventually("/web to run twice", Duration::from_secs(60), || async {
        let tasks = web_tasks(&client).await?;
        if tasks.len() == 2 { Ok(tasks) } else { Err(format!("{tasks:?}")) }
    })
    .await;
    let agents: Vec<&str> = vec![&ips[3], &ips[4]];
    let dns = std::net::SocketAddr::new(ips[0].parse().unwrap(), 53);
    eventually("web.marathon.mesos through a master's DNS", Duration::from_secs(30), || async {
        let mut got: Vec<String> = deploy::dns_query_a(dns, "web.marathon.mesos")
            .await
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .map(|a| a.to_string())
            .collect();
        got.sort();
        if got == agents { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    // From a host: a task's resolv.conf names the masters' DNS.
    assert_eq!(run_task(&client, "getent hosts web.marathon.mesos").await, medos::core::TaskState::TASK_FINISHED);

    // A master host dies: the cluster keeps working; booted again, it rejoins.
    sim.kill_host(1);
    eventually("a write with a master host gone", Duration::from_secs(60), || async {
        client.kv_put("installer/e2e", b"still here", None).await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(web_tasks(&client).await.unwrap(), before_kill, "the app's tasks are untouched");
    sim.boot(1);
    let masters: Vec<HostRole> =
        ips[..3].iter().map(|h| HostRole { host: h.clone(), role: NodeRole::Master }).collect();
    deploy::wait_masters(&ctx, &masters, Duration::from_secs(120)).await.expect("the master rejoins after its boot");

    // An agent host reboots: its agent comes back (the unit is enabled) and /web is whole again.
    sim.reboot(4);
    let after_reboot = eventually("/web to run on both agents again", Duration::from_secs(120), || async {
        let tasks = web_tasks(&client).await?;
        let mut hosts: Vec<&str> = tasks.iter().map(|(_, h)| h.as_str()).collect();
        hosts.sort();
        if hosts == agents { Ok(tasks) } else { Err(format!("{tasks:?}")) }
    })
    .await;
    let agent_roles: Vec<HostRole> =
        ips[3..].iter().map(|h| HostRole { host: h.clone(), role: NodeRole::Agent }).collect();
    deploy::wait_agents(&client, &agent_roles, Duration::from_secs(60)).await.expect("both agents active");

    // Upgrade to a rebuilt binary (the same code with other bytes: another checksum).
    let new_binary = tmp.path().join("medos-rebuilt");
    std::fs::copy(&binary, &new_binary).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&new_binary).unwrap();
        f.write_all(format!("\nmedos-rebuilt-{}\n", rand::random::<u64>()).as_bytes()).unwrap();
    }
    let new_sum = sha256(&new_binary);
    let before: Vec<(String, u64)> = (0..5).map(|i| unit_run(&sim, i)).collect();
    // Writes go on during the upgrade: the longest time without a successful write is bounded
    // (a leader's restart costs an election, never the quorum).
    let writer_client = ctx.admin_client().await.expect("a second client");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut ok, mut last_ok, mut worst) = (0u32, Instant::now(), Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let put = tokio::time::timeout(
                    Duration::from_secs(15),
                    writer_client.kv_put("installer/upgrade", b"x", None),
                );
                if let Ok(Ok(_)) = put.await {
                    ok += 1;
                    worst = worst.max(last_ok.elapsed());
                    last_ok = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, worst.max(last_ok.elapsed()))
        }
    });
    let up = installer(&sim, &dir, &["upgrade", "--binary", new_binary.to_str().unwrap()]).await.ok("upgrade");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (writes, worst_gap) = writer.await.unwrap();
    eprintln!("during the upgrade: {writes} writes, longest gap {:.1}s", worst_gap.as_secs_f64());
    assert!(writes >= 20, "only {writes} writes succeeded during the upgrade");
    assert!(worst_gap < Duration::from_secs(15), "no write succeeded for {worst_gap:?} during the upgrade");
    assert_eq!(up.stderr.matches("upgraded and restarted").count(), 5, "{}", up.stderr);
    let after: Vec<(String, u64)> = (0..5).map(|i| unit_run(&sim, i)).collect();
    for i in 0..5 {
        assert_ne!(before[i].0, after[i].0, "host {i}'s unit was restarted");
        let installed = sim.ssh_ok(i, "sha256sum /opt/medos/bin/medos");
        assert!(installed.starts_with(&new_sum), "host {i} runs {installed}");
        let exe = sim.ssh_ok(i, &format!("readlink /proc/$(systemctl show -p MainPID --value {})/exe", unit_of(i)));
        assert_eq!(exe.trim(), "/opt/medos/bin/medos", "host {i}: the unit runs the new file");
    }
    // One at a time, in order: masters, then agents; each became active after the previous one.
    for i in 1..5 {
        assert!(after[i].1 > after[i - 1].1, "host {i} restarted before host {}: {after:?}", i - 1);
    }
    assert_eq!(web_tasks(&client).await.unwrap(), after_reboot, "the agents' tasks kept running through the upgrade");
    assert_eq!(sha256(&dir.join("serve/medos")), new_sum, "serve/ holds the new binary for later deploys");

    // A rerun of deploy changes nothing.
    let rerun = installer(&sim, &dir, &["deploy"]).await.ok("deploy rerun");
    assert!(rerun.stderr.contains("0 changed, 5 unchanged"), "{}", rerun.stderr);
    let again: Vec<(String, u64)> = (0..5).map(|i| unit_run(&sim, i)).collect();
    assert_eq!(again, after, "a rerun restarted nothing");

    // Uninstall: every host clean (the command checks; so does the test, independently).
    let un = installer(&sim, &dir, &["uninstall"]).await.ok("uninstall");
    assert!(un.stderr.contains("5 hosts are clean"), "{}", un.stderr);
    for i in 0..5 {
        let left = sim.ssh_ok(
            i,
            "for p in /opt/medos /etc/medos /usr/local/bin/medos /etc/systemd/system/medos-master.service \
             /etc/systemd/system/medos-agent.service /var/lib/medos/master /var/lib/medos/agent; do \
             [ -e $p ] && echo $p; done; pgrep -a sleep; systemctl list-unit-files --no-legend 'medos*'; \
             find /sys/fs/cgroup -maxdepth 4 -name 'medos*'; true",
        );
        assert_eq!(left.trim(), "", "host {i} is not clean");
    }
    let status = installer(&sim, &dir, &["status"]).await.ok("status after uninstall");
    assert!(status.stdout.contains("cluster: "), "{}", status.stdout);
    eprintln!("installer journey: {:.1}s after the hosts booted", journey.elapsed().as_secs_f64());
}

/// Benchmark B8 (run by `benches/installer.sh`, ignored otherwise): fresh bare hosts →
/// genconf, preflight, deploy, postflight, `MEDOS_B8_ROUNDS` times (default 3) with the binary
/// `MEDOS_B8_BINARY` (default: this build's). Prints one `B8 …` line per round (seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark B8: run through benches/installer.sh"]
async fn b8_bare_hosts_to_healthy_cluster() {
    let _slot = crate::support::exclusive_slot().await;
    let rounds: usize = std::env::var("MEDOS_B8_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let binary = std::env::var("MEDOS_B8_BINARY").unwrap_or_else(|_| MEDOS.to_string());
    for round in 1..=rounds {
        let Some(sim) = sim(5) else { return };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("genconf");
        std::fs::create_dir_all(&dir).unwrap();
        write_config(&dir, &sim, "root");
        let mut times = Vec::new();
        let total = Instant::now();
        for step in ["genconf", "preflight", "deploy", "postflight"] {
            let start = Instant::now();
            let out = tokio::process::Command::new(&binary)
                .arg("installer")
                .arg("--genconf-dir")
                .arg(&dir)
                .arg("--ssh-config")
                .arg(sim.ssh_config_path())
                .arg(step)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .expect("running medos installer");
            assert!(
                out.status.success(),
                "{step}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            times.push((step, start.elapsed().as_secs_f64()));
        }
        let size = std::fs::metadata(dir.join("serve/medos")).map(|m| m.len()).unwrap_or(0);
        let line: Vec<String> = times.iter().map(|(s, t)| format!("{s}={t:.2}")).collect();
        println!("B8 round={round} {} total={:.2} binary_bytes={size}", line.join(" "), total.elapsed().as_secs_f64());
    }
}
