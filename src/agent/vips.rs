//! The agent's VIP load balancer: every agent listens on each VIP (`127.x.y.z:port`, see
//! `core::vips`) and forwards each connection to one of the VIP's ready instances, which the
//! leader sends on the event stream whenever they change.
//!
//! A user-space TCP proxy on loopback, chosen over IPVS and nftables DNAT because it needs no
//! kernel module (this machine's kernel has no `ip_vs`), no firewall tool, no route or
//! interface, and no privilege, so it works the same on cgroup-v1 and v2 hosts, in containers
//! and in `medos dev`. It also fails over per connection: an instance that refuses or does not
//! answer within [`CONNECT_TIMEOUT`] is skipped for the next one, so a connection is not lost
//! to an instance that died since the leader's last table. Tasks share the host's network
//! namespace, so host processes and tasks reach the same listeners. Several agents on one host
//! (as in `medos dev`) all bind each VIP with `SO_REUSEPORT`; the kernel spreads connections
//! over them and each forwards with the same table. The cost is a copy through user space per
//! byte (not benchmarked yet); TCP only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::core::vips::VipRoute;

/// How long one instance may take to accept before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Backends {
    list: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    /// The instances to try, starting at the next one in round-robin order.
    fn order(&self) -> Vec<SocketAddr> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        if list.is_empty() {
            return vec![];
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % list.len();
        list[start..].iter().chain(&list[..start]).copied().collect()
    }
}

struct Listener {
    backends: Arc<Backends>,
    task: JoinHandle<()>,
}

/// The VIPs this agent serves.
#[derive(Default)]
pub struct VipProxy {
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
}

impl Drop for VipProxy {
    fn drop(&mut self) {
        for listener in self.listeners.get_mut().unwrap_or_else(|e| e.into_inner()).values() {
            listener.task.abort();
        }
    }
}

impl VipProxy {
    /// Serves exactly `routes`: new VIPs start listening, gone ones stop (connections already
    /// forwarded go on), and every VIP's instances are replaced. A VIP that cannot be bound is
    /// logged and tried again with the next table.
    pub fn update(&self, routes: &[VipRoute]) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted = HashMap::new();
        for route in routes.iter().filter(|r| r.protocol == "tcp") {
            let Ok(vip) = route.vip.parse::<SocketAddr>() else {
                tracing::warn!(vip = %route.vip, "ignoring a VIP that is not IP:port");
                continue;
            };
            let backends: Vec<SocketAddr> = route.backends.iter().filter_map(|b| b.parse().ok()).collect();
            wanted.insert(vip, backends);
        }
        listeners.retain(|vip, listener| {
            let keep = wanted.contains_key(vip) && !listener.task.is_finished();
            if !keep {
                listener.task.abort();
                tracing::debug!(%vip, "VIP no longer served here");
            }
            keep
        });
        for (vip, backends) in wanted {
            if let Some(listener) = listeners.get(&vip) {
                *listener.backends.list.write().unwrap_or_else(|e| e.into_inner()) = backends;
                continue;
            }
            let socket = match bind(vip) {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::warn!(%vip, error = %e, "cannot listen on the VIP; connections to it from this host fail until the next update");
                    continue;
                }
            };
            let shared = Arc::new(Backends { list: RwLock::new(backends), next: AtomicUsize::new(0) });
            let task = tokio::spawn(serve(vip, socket, shared.clone()));
            tracing::debug!(%vip, "serving VIP");
            listeners.insert(vip, Listener { backends: shared, task });
        }
    }

    /// The VIPs served now with their instances, sorted (diagnostics and tests).
    pub fn table(&self) -> Vec<(SocketAddr, Vec<SocketAddr>)> {
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = listeners
            .iter()
            .map(|(vip, l)| (*vip, l.backends.list.read().unwrap_or_else(|e| e.into_inner()).clone()))
            .collect();
        out.sort();
        out
    }
}

fn bind(vip: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if vip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    // Every agent on the host serves the same VIPs.
    socket.set_reuseport(true)?;
    socket.bind(vip)?;
    socket.listen(1024)
}

async fn serve(vip: SocketAddr, listener: tokio::net::TcpListener, backends: Arc<Backends>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%vip, error = %e, "accepting a VIP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let backends = backends.clone();
        tokio::spawn(async move {
            let Some((mut upstream, backend)) = connect(&backends).await else {
                tracing::debug!(%vip, %peer, "no instance of the VIP accepted; closing the connection");
                return;
            };
            let mut client = client;
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%vip, %backend, error = %e, "VIP connection ended with an error");
            }
        });
    }
}

/// Connects to the next instance that accepts, in round-robin order.
async fn connect(backends: &Backends) -> Option<(TcpStream, SocketAddr)> {
    for backend in backends.order() {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => return Some((stream, backend)),
            Ok(Err(e)) => tracing::debug!(%backend, error = %e, "VIP instance refused; trying the next"),
            Err(_) => tracing::debug!(%backend, "VIP instance did not answer in time; trying the next"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A backend that answers every connection with its name and echoes what it reads.
    async fn backend(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = s.write_all(name.as_bytes()).await;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    fn route(vip: SocketAddr, backends: &[SocketAddr]) -> VipRoute {
        VipRoute {
            vip: vip.to_string(),
            protocol: "tcp".into(),
            names: vec![],
            apps: vec!["/web".into()],
            backends: backends.iter().map(|b| b.to_string()).collect(),
        }
    }

    async fn hello(vip: SocketAddr) -> std::io::Result<String> {
        let mut s = TcpStream::connect(vip).await?;
        let mut name = [0u8; 2];
        s.read_exact(&mut name).await?;
        s.write_all(b"ping").await?;
        let mut echo = [0u8; 4];
        s.read_exact(&mut echo).await?;
        assert_eq!(&echo, b"ping");
        Ok(String::from_utf8_lossy(&name).into_owned())
    }

    fn free_vip() -> SocketAddr {
        // A loopback address of its own per test run, and a port free on it.
        let ip = std::net::Ipv4Addr::new(127, 78, rand::random::<u8>(), rand::random::<u8>().max(1));
        let probe = std::net::TcpListener::bind((ip, 0)).unwrap();
        probe.local_addr().unwrap()
    }

    #[tokio::test]
    async fn connections_are_balanced_and_follow_table_updates() {
        let (a, _ta) = backend("aa").await;
        let (b, _tb) = backend("bb").await;
        let vip = free_vip();
        let proxy = VipProxy::default();
        proxy.update(&[route(vip, &[a, b])]);
        let mut seen = BTreeMap::new();
        for _ in 0..6 {
            *seen.entry(hello(vip).await.unwrap()).or_insert(0) += 1;
        }
        assert_eq!(seen, BTreeMap::from([("aa".to_string(), 3), ("bb".to_string(), 3)]));

        // A second agent on the same host serves the same VIP.
        let other = VipProxy::default();
        other.update(&[route(vip, &[a, b])]);
        assert_eq!(other.table(), vec![(vip, vec![a, b])]);

        // New instances only: every connection goes to b.
        proxy.update(&[route(vip, &[b])]);
        other.update(&[route(vip, &[b])]);
        for _ in 0..4 {
            assert_eq!(hello(vip).await.unwrap(), "bb");
        }

        // The VIP is gone: nobody listens on it any more.
        proxy.update(&[]);
        drop(other);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(vip).await.is_ok() {
            assert!(Instant::now() < deadline, "the VIP still accepts connections after it was removed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_dead_instance_is_skipped_and_no_instance_closes_the_connection() {
        let (a, _ta) = backend("aa").await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let vip = free_vip();
        let proxy = VipProxy::default();
        proxy.update(&[route(vip, &[dead, a])]);
        for _ in 0..4 {
            assert_eq!(hello(vip).await.unwrap(), "aa");
        }
        proxy.update(&[route(vip, &[])]);
        let mut s = TcpStream::connect(vip).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)), "a VIP without instances must close the connection: {n:?}");
    }
}
