//! The cluster DNS server of real in-process masters, queried over UDP and TCP with raw
//! hickory-proto messages: cluster names from the replicated state, NXDOMAIN and NODATA,
//! forwarding (with its cache and forward zones) to small upstream servers this test runs,
//! SERVFAIL when the upstream is dead, malformed packets, and Marathon task names that appear
//! while instances run and go away when they are killed.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use medos::agent::fake::FakeContainers;
use medos::master::config::DnsConfig;
use reqwest::Method;
use serde_json::json;
use support::{TestCluster, fast_tuning, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(20);

fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(name), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn rand_id(name: &str) -> u16 {
    name.bytes().fold(7u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)))
}

/// Sends `message` over UDP and waits (2 s at most) for the answer with the same id.
async fn udp(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let q = query(name, rtype);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await.ok()?.ok()?;
    let answer = Message::from_vec(&buf[..n]).expect("a well-formed answer");
    assert_eq!(answer.metadata.id, q.metadata.id);
    Some(answer)
}

/// Sends `message` over TCP (two-byte length prefix) and reads the answer.
async fn tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let q = query(name, rtype).to_vec().unwrap();
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len)).await.unwrap().unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn ipv4s(m: &Message) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn srvs(m: &Message) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// A tiny upstream: `A` questions get `answer`, names starting with `missing.` NXDOMAIN.
/// Counts the questions it gets.
struct Upstream {
    addr: SocketAddr,
    questions: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream(answer: Ipv4Addr) -> Upstream {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let questions = Arc::new(AtomicUsize::new(0));
    let counter = questions.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            for q in &request.queries {
                response.add_query(q.clone());
                if q.name().to_ascii().starts_with("missing.") {
                    response.metadata.response_code = ResponseCode::NXDomain;
                } else if q.query_type() == RecordType::A {
                    response.answers.push(Record::from_rdata(q.name().clone(), 300, RData::A(A(answer))));
                }
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
        }
    });
    Upstream { addr, questions, task }
}

/// A port nothing listens on (UDP and TCP are refused).
async fn dead_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.local_addr().unwrap()
}

fn dns_config(resolvers: Vec<String>, forward_zones: BTreeMap<String, Vec<String>>) -> DnsConfig {
    DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        resolvers,
        forward_zones,
        timeout_ms: 500,
        ..DnsConfig::default()
    }
}

fn dns_addr(cluster: &TestCluster, name: &str) -> SocketAddr {
    cluster.nodes[name].running.as_ref().unwrap().dns_addr().expect("DNS runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_answer_cluster_names_and_forward_the_rest() {
    let default = upstream(Ipv4Addr::new(192, 0, 2, 7)).await;
    let corp = upstream(Ipv4Addr::new(192, 0, 2, 99)).await;
    let dead = dead_port().await;
    let zones = BTreeMap::from([
        ("corp.test".to_string(), vec![corp.addr.to_string()]),
        ("dead.test".to_string(), vec![dead.to_string()]),
    ]);
    let cluster =
        TestCluster::start_with_dns(3, fast_tuning(), dns_config(vec![default.addr.to_string()], zones)).await;
    let leader = cluster.wait_leader().await;
    let leader_port = cluster.nodes[&leader].config.listen.port();

    for name in ["m1", "m2", "m3"] {
        let server = dns_addr(&cluster, name);
        // leader.mesos names the leader (its SRV carries the leader's API port), on every master.
        let answer = wait_for(&format!("{name}: _leader._tcp.mesos"), WAIT, || async {
            let m = udp(server, "_leader._tcp.mesos.", RecordType::SRV).await?;
            (srvs(&m) == vec![(leader_port, "leader.mesos.".to_string())]).then_some(m)
        })
        .await;
        assert!(answer.metadata.authoritative, "{name}: cluster answers are authoritative");
        let m = udp(server, "leader.mesos.", RecordType::A).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);
        // Over TCP too, case-insensitively.
        let m = tcp(server, "LEADER.Mesos.", RecordType::A).await;
        assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);
        assert!(m.metadata.authoritative);
    }

    let server = dns_addr(&cluster, "m1");
    // Every master: master0..2 exist, master3 does not.
    for i in 0..3 {
        let m = udp(server, &format!("master{i}.mesos."), RecordType::A).await.unwrap();
        assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST], "master{i}");
    }
    let m = tcp(server, "master.mesos.", RecordType::A).await;
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);

    // NXDOMAIN and NODATA, both with the SOA.
    let m = udp(server, "master3.mesos.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(matches!(m.authorities.first().map(|r| &r.data), Some(RData::SOA(_))));
    let m = udp(server, "nothing-here.marathon.mesos.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = tcp(server, "leader.mesos.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(matches!(m.authorities.first().map(|r| &r.data), Some(RData::SOA(_))));
    let m = tcp(server, "mesos.", RecordType::AXFR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused, "no zone transfers");
    let m = udp(server, "mesos.", RecordType::SOA).await.unwrap();
    assert!(matches!(m.answers.first().map(|r| &r.data), Some(RData::SOA(_))));

    // Other names go to the upstream; its answers are cached.
    let m = udp(server, "www.example.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::new(192, 0, 2, 7)]);
    assert!(!m.metadata.authoritative);
    assert!(m.metadata.recursion_available);
    let asked = default.questions.load(Ordering::SeqCst);
    let m = tcp(server, "www.example.test.", RecordType::A).await;
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::new(192, 0, 2, 7)]);
    assert_eq!(default.questions.load(Ordering::SeqCst), asked, "the second answer came from the cache");
    let m = udp(server, "missing.example.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Forward zones go to their own servers.
    let m = udp(server, "host.corp.test.", RecordType::A).await.unwrap();
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::new(192, 0, 2, 99)]);
    assert_eq!(corp.questions.load(Ordering::SeqCst), 1);

    // A dead upstream: SERVFAIL (within the timeout), and the server keeps serving.
    let m = udp(server, "x.dead.test.", RecordType::A).await.expect("an answer, not silence");
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);

    // Malformed packets: a short one is dropped, a broken body gets FORMERR; neither hurts.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&[1, 2, 3], server).await.unwrap();
    let mut garbage = query("leader.mesos.", RecordType::A).to_vec().unwrap();
    // The question's name becomes a compression pointer to itself.
    garbage[12] = 0xc0;
    garbage[13] = 12;
    socket.send_to(&garbage, server).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("FORMERR for the broken packet (the short one gets nothing)")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let m = udp(server, "leader.mesos.", RecordType::A).await.expect("still serving");
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);

    // The leader stops: the others name the new leader, and the stopped master's DNS is gone.
    let old_server = dns_addr(&cluster, &leader);
    let mut cluster = cluster;
    cluster.stop(&leader).await;
    let new_leader = cluster.wait_leader().await;
    let new_port = cluster.nodes[&new_leader].config.listen.port();
    let survivor = dns_addr(&cluster, &new_leader);
    wait_for("the new leader in _leader._tcp.mesos", WAIT, || async {
        let m = udp(survivor, "_leader._tcp.mesos.", RecordType::SRV).await?;
        (srvs(&m) == vec![(new_port, "leader.mesos.".to_string())]).then_some(())
    })
    .await;
    assert!(TcpStream::connect(old_server).await.is_err(), "the stopped master no longer serves DNS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_upstream_means_refused_and_a_dead_one_servfail() {
    let dead = dead_port().await;
    let cluster = TestCluster::start_with_dns(1, fast_tuning(), dns_config(vec![], BTreeMap::new())).await;
    let server = dns_addr(&cluster, "m1");
    let m = udp(server, "www.example.test.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    drop(cluster);

    let cluster =
        TestCluster::start_with_dns(1, fast_tuning(), dns_config(vec![dead.to_string()], BTreeMap::new())).await;
    let server = dns_addr(&cluster, "m1");
    let m = tcp(server, "www.example.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let m = udp(server, "leader.mesos.", RecordType::A).await.unwrap();
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marathon_task_names_follow_running_instances() {
    let cluster = TestCluster::start_with_dns(1, fast_tuning(), dns_config(vec![], BTreeMap::new())).await;
    let config = cluster.agent_config("agent-1");
    let _agent = medos::agent::start(config, Arc::new(FakeContainers::default())).await.unwrap();
    cluster.wait_active_agents(1, WAIT).await;
    let master = cluster.any_master();
    let server = dns_addr(&cluster, "m1");
    let m = udp(server, "agent.mesos.", RecordType::A).await.unwrap();
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);
    let m = udp(server, "web-grp.marathon.mesos.", RecordType::A).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    let client = cluster.client("m1").await;
    let app = json!({
        "id": "/grp/web", "cmd": "sleep 1000", "instances": 2, "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": 0, "protocol": "tcp"}, {"port": 0, "protocol": "udp", "name": "stats"}]
    });
    client.marathon(Method::POST, "/v2/apps", Some(&app)).await.unwrap();

    // Both instances running: A, SRV per protocol, named port.
    let tcp_srvs = wait_for("two SRV records for the app", WAIT, || async {
        let m = udp(server, "_web-grp._tcp.marathon.mesos.", RecordType::SRV).await?;
        let s = srvs(&m);
        (s.len() == 2).then_some(s)
    })
    .await;
    let host_ports: Vec<u16> = {
        let state = master.state.read().unwrap();
        let mut ports: Vec<u16> = state
            .tasks
            .values()
            .filter(|t| t.app_id.as_deref() == Some("/grp/web") && !t.state.is_terminal())
            .map(|t| t.ports[0])
            .collect();
        ports.sort();
        ports
    };
    assert_eq!(tcp_srvs.iter().map(|(p, _)| *p).collect::<Vec<_>>(), host_ports);
    for (_, target) in &tcp_srvs {
        assert!(target.ends_with(".marathon.slave.mesos."), "{target}");
        let m = udp(server, target, RecordType::A).await.unwrap();
        assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST], "{target}");
    }
    let m = udp(server, "web-grp.marathon.mesos.", RecordType::A).await.unwrap();
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);
    assert_eq!(m.answers[0].ttl, medos::core::dns::TASK_TTL);
    let m = tcp(server, "web-grp.marathon.slave.mesos.", RecordType::A).await;
    assert_eq!(ipv4s(&m), vec![Ipv4Addr::LOCALHOST]);
    let m = udp(server, "_web-grp._udp.marathon.mesos.", RecordType::SRV).await.unwrap();
    assert_eq!(srvs(&m).len(), 2);
    let m = udp(server, "_stats._web-grp._udp.marathon.mesos.", RecordType::SRV).await.unwrap();
    assert_eq!(srvs(&m).len(), 2);

    // The app removed: its instances are killed and its names go away.
    // Forced: the start deployment may still be finishing its last step.
    client.marathon(Method::DELETE, "/v2/apps/grp/web?force=true", None).await.unwrap();
    wait_for("the app's names to go away", WAIT, || async {
        let m = udp(server, "web-grp.marathon.mesos.", RecordType::A).await?;
        (m.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;
    let m = udp(server, "_web-grp._tcp.marathon.mesos.", RecordType::SRV).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}
