//! `medos installer genconf` through the real binary, and a master started from what it
//! generated: it tells a real notify socket (as systemd's would be) READY=1, its Raft role
//! and watchdog pings, accepts an agent joining with genconf's join token (so the
//! token-signing secret reached the master), and says STOPPING=1 on SIGTERM. As root, that
//! agent runs too and says READY=1 once it has registered. Bad input to
//! genconf: a clean non-zero exit naming the problem, nothing written.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{MEDOS, START_TIMEOUT, eventually, free_port, shared_slot};

/// Kills the master when the test ends, also on a panic (printing its log then).
struct Guard {
    child: Child,
    log: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- master log ---\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

/// Receives datagrams until one satisfies `want`, within `timeout`; returns it.
fn wait_for(socket: &UnixDatagram, timeout: Duration, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("{what}: not received within {timeout:?}; received: {seen:?}");
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if want(&message) {
                    return message;
                }
                seen.push(message);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn genconf(dir: &Path) -> std::process::Output {
    Command::new(MEDOS)
        .arg("installer")
        .arg("--genconf-dir")
        .arg(dir)
        .arg("genconf")
        .stdin(Stdio::null())
        .output()
        .expect("running medos installer genconf")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_from_genconf_notifies_systemd_and_signs_joins() {
    let _slot = shared_slot().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("genconf");
    std::fs::create_dir_all(&dir).unwrap();
    let (api, dns) = (free_port(), free_port());
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "cluster_name: e2e\nmaster_list: [127.0.0.1]\nports: {{api: {api}, dns: {dns}}}\n\
             data_dirs: {{master: {0}/master, agent: {0}/agent}}\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    let out = genconf(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: `master_list[0]`: 127.0.0.1 is a loopback address"), "{stderr}");
    assert!(stderr.contains("created the cluster CA"), "{stderr}");

    // The master's files, at their host paths under a staged root.
    let root = tmp.path().join("root");
    let node = dir.join("serve/nodes/127.0.0.1/root");
    std::fs::create_dir_all(&root).unwrap();
    assert!(Command::new("cp").arg("-a").arg(node.join("etc")).arg(&root).status().unwrap().success());
    let config_path = root.join("etc/medos/master.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let staged = config.replace("\"/etc/medos/", &format!("\"{}/etc/medos/", root.display()));
    std::fs::write(&config_path, staged).unwrap();

    let notify_path = tmp.path().join("notify");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    let log = tmp.path().join("master.log");
    let child = Command::new(MEDOS)
        .arg("master")
        .arg("--config")
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let guard = Guard { child, log };

    let ready = wait_for(&socket, START_TIMEOUT, "READY=1", |m| m.starts_with("READY=1"));
    assert!(ready.contains(&format!("STATUS=serving https://127.0.0.1:{api}")), "{ready}");
    wait_for(&socket, START_TIMEOUT, "the leader status", |m| m.starts_with("STATUS=leader of 1 masters"));
    wait_for(&socket, Duration::from_secs(10), "a watchdog ping", |m| m == "WATCHDOG=1");

    // An agent that is not listed joins with genconf's token and gets a certificate.
    let template = std::fs::read_to_string(dir.join("serve/join/agent.toml.in")).unwrap();
    let work = tmp.path().join("joiner");
    let agent_port = free_port();
    let agent_toml = template
        .replace("@NAME@", "agent-joiner")
        .replace("@ADDRESS@", "127.0.0.1")
        .replace("\"0.0.0.0:5051\"", &format!("\"127.0.0.1:{agent_port}\""))
        .replace(&format!("{}/agent", tmp.path().display()), &work.display().to_string());
    let agent_path = tmp.path().join("agent.toml");
    std::fs::write(&agent_path, agent_toml).unwrap();
    let agent = medos::agent::AgentConfig::load(&agent_path).unwrap();
    assert_eq!(agent.masters, [format!("https://127.0.0.1:{api}")]);
    eventually("joining with genconf's token", START_TIMEOUT, || {
        let agent = agent.clone();
        async move { medos::agent::join::ensure_credentials(&agent).await.map_err(|e| e.to_string()) }
    })
    .await;
    let certs = medos::pki::tls::load_certs(&agent.tls.cert).unwrap();
    assert_eq!(medos::pki::tls::peer_identity(&certs[0]).unwrap().name, "agent-joiner");
    assert_eq!(std::fs::read(&agent.tls.ca).unwrap(), std::fs::read(dir.join("pki/ca.crt")).unwrap());

    // As root (agents need it), the agent itself: READY=1 once it has registered.
    if nix::unistd::geteuid().is_root() {
        let agent_notify = tmp.path().join("agent-notify");
        let agent_socket = UnixDatagram::bind(&agent_notify).unwrap();
        let agent_log = tmp.path().join("agent.log");
        let child = Command::new(MEDOS)
            .arg("agent")
            .arg("--config")
            .arg(&agent_path)
            .env("NOTIFY_SOCKET", &agent_notify)
            .env("WATCHDOG_USEC", "1000000")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&agent_log).unwrap())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .unwrap();
        let agent_guard = Guard { child, log: agent_log };
        let ready = wait_for(&agent_socket, START_TIMEOUT, "the agent's READY=1", |m| m.starts_with("READY=1"));
        assert!(ready.contains("STATUS=registered as ") && ready.contains("with the leader"), "{ready}");
        wait_for(&agent_socket, Duration::from_secs(10), "the agent's watchdog ping", |m| m == "WATCHDOG=1");
        stop(agent_guard, &agent_socket, "the agent").await;
    } else {
        eprintln!("not root: skipping the agent's notifications (agents need root)");
    }

    stop(guard, &socket, "the master").await;
}

/// SIGTERM: STOPPING=1, then a clean exit.
async fn stop(mut guard: Guard, socket: &UnixDatagram, what: &str) {
    let pid = nix::unistd::Pid::from_raw(guard.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for(socket, Duration::from_secs(30), &format!("{what}'s STOPPING=1"), |m| m == "STOPPING=1");
    let status = eventually(&format!("{what} to exit"), Duration::from_secs(30), || {
        let status = guard.child.try_wait();
        async move { status.map_err(|e| e.to_string())?.ok_or_else(|| "still running".to_string()) }
    })
    .await;
    assert!(status.success(), "{what}: {status:?}");
}

#[test]
fn genconf_bad_input_exits_cleanly_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("genconf");
    std::fs::create_dir_all(&dir).unwrap();
    for (config, expected) in [
        ("cluster_name: x\nmaster_list: [10.0.0.1\n", "line "),
        (
            "cluster_name: x\nmaster_list: [10.0.0.1, 10.0.0.1]\n",
            "`master_list[1]`: 10.0.0.1 is already listed as master_list[0]",
        ),
        ("cluster_name: x\nmaster_list: []\n", "`master_list`: is empty"),
        ("cluster_name: x\nmaster_list: [10.0.0.1]\nports: {api: 99999}\n", "`ports.api`: 99999 is not a port"),
    ] {
        std::fs::write(dir.join("config.yaml"), config).unwrap();
        let out = genconf(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{config}: {stderr}");
        assert!(stderr.contains(expected) && stderr.contains("config.yaml is invalid"), "{config}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!dir.join("serve").exists() && !dir.join("pki").exists(), "{config}: something was written");
    }
    // An unknown key is only a warning.
    std::fs::write(dir.join("config.yaml"), "cluster_name: x\nmaster_list: [10.0.0.1]\nagnet_list: [10.0.0.2]\n")
        .unwrap();
    let out = genconf(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unknown key `agnet_list` is ignored; did you mean `agent_list`?"), "{stderr}");
}
