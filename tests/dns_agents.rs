//! Agents learn the cluster DNS from the masters: each master records where its DNS server
//! answers, and an agent writes the tasks' `resolv.conf` with the masters first and the
//! cluster's search domains (the runtime binds it into every task; `e2e/dns.rs` checks that
//! a real task resolves an app's name through it).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use medos::agent::fake::FakeContainers;
use medos::master::config::DnsConfig;
use support::{TestCluster, fast_tuning, wait_for};

const WAIT: Duration = Duration::from_secs(20);

/// Port 53 on a random loopback address free for UDP and TCP (a `nameserver` line has no port).
fn free_address_on_53() -> SocketAddr {
    for _ in 0..50 {
        let [a, b]: [u8; 2] = rand::random();
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, a.max(1), b, 1)), 53);
        if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no loopback address with port 53 free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_write_the_tasks_resolv_conf_from_the_masters_dns() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: port 53 needs root");
        return;
    }
    let addr = free_address_on_53();
    let dns = DnsConfig { listen: addr, ..DnsConfig::default() };
    let cluster = TestCluster::start_with_dns(1, fast_tuning(), dns).await;
    let master = cluster.any_master();
    wait_for("the master to record its DNS address", WAIT, || {
        let m = master.clone();
        async move { (m.state.read().unwrap().dns_servers() == [addr.to_string()]).then_some(()) }
    })
    .await;

    let config = cluster.agent_config("agent-1");
    let resolv_conf = config.work_dir.join(medos::agent::dns::RESOLV_CONF);
    let _agent = medos::agent::start(config, Arc::new(FakeContainers::default())).await.unwrap();
    let text = wait_for("the agent to write the tasks' resolv.conf", WAIT, || {
        let path = resolv_conf.clone();
        async move { std::fs::read_to_string(&path).ok() }
    })
    .await;
    let first_nameserver = text.lines().find(|l| l.starts_with("nameserver"));
    assert_eq!(first_nameserver, Some(format!("nameserver {}", addr.ip()).as_str()), "{text}");
    assert!(text.contains("\nsearch marathon.mesos mesos"), "{text}");
    cluster.shutdown().await;
}
