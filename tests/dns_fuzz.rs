//! The cluster DNS server under hostile packets: random bytes, valid queries with bytes
//! flipped or cut short, compression pointer loops, over-long labels and names, wrong
//! question counts, over UDP and TCP. Every answer that comes back must be a well-formed
//! response to the packet's id, and the server must still answer correctly afterwards.
//! Seeded (`MEDOS_FUZZ_SEED` reruns one schedule); bounded in count and time.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use medos::master::config::DnsConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{TestCluster, fast_tuning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const PACKETS: usize = 3_000;

fn query(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// A header (id, flags: a standard query, and the given counts) followed by `body`.
fn raw(id: u16, qdcount: u16, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + body.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00]);
    p.extend_from_slice(&qdcount.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(body);
    p
}

/// A question for a name given as raw labels, type A, class IN.
fn question(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut q = Vec::new();
    for l in labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// One hostile packet of the kind `kind` (the id is the packet's index).
fn packet(rng: &mut StdRng, i: usize) -> Vec<u8> {
    let id = i as u16;
    let names = ["leader.mesos.", "web-grp.marathon.mesos.", "_web-grp._tcp.marathon.mesos.", "x.example.org."];
    let name = names[rng.random_range(0..names.len())];
    match i % 8 {
        // Random bytes of any length up to a large datagram.
        0 => (0..rng.random_range(0..700)).map(|_| rng.random()).collect(),
        // A valid query with 1-8 bytes flipped.
        1 => {
            let mut p = query(id, name, RecordType::SRV);
            for _ in 0..rng.random_range(1..=8) {
                let at = rng.random_range(0..p.len());
                p[at] ^= rng.random_range(1..=255u8);
            }
            p
        }
        // A valid query cut short.
        2 => {
            let p = query(id, name, RecordType::A);
            p[..rng.random_range(0..p.len())].to_vec()
        }
        // A compression pointer to itself, or to a pointer back to it.
        3 => {
            if rng.random_bool(0.5) {
                raw(id, 1, &[0xC0, 0x0C, 0, 1, 0, 1])
            } else {
                raw(id, 1, &[0x01, b'a', 0xC0, 0x0C, 0, 1, 0, 1])
            }
        }
        // A label longer than 63 bytes (its length byte then reads as a pointer or is invalid).
        4 => raw(id, 1, &question(&[vec![b'a'; rng.random_range(64..=255)], b"mesos".to_vec()])),
        // A name longer than 255 bytes in valid labels.
        5 => raw(id, 1, &question(&vec![vec![b'b'; 63]; rng.random_range(5..=9)])),
        // The question count disagrees with the questions.
        6 => {
            let body = question(&[b"leader".to_vec(), b"mesos".to_vec()]);
            raw(id, [0u16, 2, 5, u16::MAX][rng.random_range(0..4)], &body)
        }
        // Valid but odd: any type and class, random (valid) labels under the domain.
        _ => {
            let label: String = (0..rng.random_range(1..=63)).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
            let mut p = query(id, &format!("{label}.marathon.mesos."), RecordType::A);
            let n = p.len();
            p[n - 4..n - 2].copy_from_slice(&rng.random::<u16>().to_be_bytes());
            p[n - 2..].copy_from_slice(&rng.random::<u16>().to_be_bytes());
            p
        }
    }
}

/// Whether the server answers `leader.mesos` over UDP and TCP.
async fn answers(server: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query(4242, "leader.mesos.", RecordType::A), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("the server still answers over UDP")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!((m.metadata.id, m.metadata.response_code), (4242, ResponseCode::NoError));
    assert_eq!(m.answers.len(), 1, "{m:?}");

    let mut stream = TcpStream::connect(server).await.expect("the server still accepts TCP");
    let q = query(4343, "leader.mesos.", RecordType::A);
    stream.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len)).await.unwrap().unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!((m.metadata.id, m.metadata.response_code), (4343, ResponseCode::NoError));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_packets_get_formerr_or_nothing_and_never_stop_the_server() {
    let seed = std::env::var("MEDOS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("DNS fuzz seed {seed} (rerun with MEDOS_FUZZ_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dns = DnsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..DnsConfig::default() };
    let cluster = TestCluster::start_with_dns(1, fast_tuning(), dns).await;
    let leader = cluster.wait_leader().await;
    let server = cluster.nodes[&leader].running.as_ref().unwrap().dns_addr().expect("DNS runs");
    answers(server).await;

    // UDP: everything from one socket; a reader checks every answer that comes back.
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let replies = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (socket, replies) = (socket.clone(), replies.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
                let m = Message::from_vec(&buf[..n])
                    .unwrap_or_else(|e| panic!("an answer that does not parse ({e}): {:?}", &buf[..n]));
                assert_eq!(m.metadata.message_type, MessageType::Response, "{m:?}");
                replies.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut packets = Vec::with_capacity(PACKETS);
    for i in 0..PACKETS {
        let p = packet(&mut rng, i);
        socket.send_to(&p, server).await.unwrap();
        packets.push(p);
        if i % 100 == 99 {
            // Keep the burst within the socket buffers of a small machine.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    reader.await.expect("every answer is a well-formed response");
    assert!(replies.load(Ordering::Relaxed) > 0, "the valid and repairable packets got answers");
    answers(server).await;

    // TCP: the same kinds of packets, each on its own connection, with a length prefix that
    // sometimes lies; the server answers or closes, and never stalls the others.
    for p in packets.iter().step_by(50) {
        let mut stream = TcpStream::connect(server).await.expect("TCP connects");
        let prefix = if rng.random_bool(0.2) { rng.random::<u16>() } else { p.len() as u16 };
        let _ = stream.write_all(&prefix.to_be_bytes()).await;
        let _ = stream.write_all(p).await;
        let _ = stream.shutdown().await;
        let mut len = [0u8; 2];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut len)).await {
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf)).await {
                let m = Message::from_vec(&buf).expect("TCP answers parse");
                assert_eq!(m.metadata.message_type, MessageType::Response);
            }
        }
    }
    answers(server).await;
    cluster.shutdown().await;
}
