//! The cluster DNS server every master runs (UDP and TCP, hickory).
//!
//! Names under the cluster domain are answered, authoritatively, from this master's copy of
//! the replicated state (`core::dns::Zone`, rebuilt when the applied index or the leader
//! changes); any master answers, so clients may list every master as a nameserver. Every other
//! name is forwarded: to the servers of the longest matching `forward_zones` entry, else to
//! `resolvers`, through hickory's resolver (a cache that honours TTLs, negative answers
//! included; a timeout per upstream; the next upstream on failure). When every upstream fails
//! the answer is SERVFAIL; with no upstream configured, REFUSED. Malformed packets get FORMERR
//! from hickory's server (or are dropped when even the header is unreadable).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::core::State;
use crate::core::dns::{self as zone, Rcode, RecordData, Zone};
use crate::master::config::{DnsConfig, parse_upstream};

/// Idle TCP connections are closed after this long.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Cached upstream answers (per upstream group).
const CACHE_SIZE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    #[error(
        "cannot listen for DNS on {addr} ({proto}): {source}; port 53 needs root or CAP_NET_BIND_SERVICE: \
         set [dns] listen to another address or enabled = false"
    )]
    Listen { addr: SocketAddr, proto: &'static str, source: std::io::Error },
    #[error("invalid setting `{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("cannot set up the DNS forwarder: {0}")]
    Resolver(String),
}

/// Who leads the Raft group right now (a node id), read on every query that needs it.
pub type LeaderFn = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// A running DNS server; stops when dropped or [`DnsServer::stop`]ped.
pub struct DnsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    token: tokio_util::sync::CancellationToken,
}

impl DnsServer {
    /// Binds UDP and TCP on `config.listen` (port 0: one free port for both) and serves.
    pub async fn start(
        config: &DnsConfig,
        state: Arc<RwLock<State>>,
        applied: tokio::sync::watch::Receiver<u64>,
        leader: LeaderFn,
    ) -> Result<DnsServer, DnsServerError> {
        let handler = Handler::new(config, state, applied, leader)?;
        let (udp, tcp) = bind(config.listen).await?;
        let addr =
            udp.local_addr().map_err(|source| DnsServerError::Listen { addr: config.listen, proto: "udp", source })?;
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, 64 * 1024);
        let token = server.shutdown_token().clone();
        let task = tokio::spawn(async move {
            if let Err(e) = server.block_until_done().await {
                tracing::warn!(error = %e, "the DNS server stopped");
            }
        });
        tracing::info!(%addr, domain = %config.domain, "DNS server listening (udp, tcp)");
        Ok(DnsServer { addr, task, token })
    }

    /// The bound address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the sockets to close.
    pub async fn stop(mut self) {
        self.token.cancel();
        // Queries in flight finish (a forwarded one within the upstream timeout).
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Binds UDP then TCP on the same port; with port 0, retries until a free port is free on both.
async fn bind(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsServerError> {
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(listen).await.map_err(|source| DnsServerError::Listen {
            addr: listen,
            proto: "udp",
            source,
        })?;
        let addr = udp.local_addr().map_err(|source| DnsServerError::Listen { addr: listen, proto: "udp", source })?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if listen.port() == 0 && attempts < 10 => attempts += 1,
            Err(source) => return Err(DnsServerError::Listen { addr, proto: "tcp", source }),
        }
    }
}

/// The zone built for one applied index and leader.
struct CachedZone {
    applied: u64,
    leader: Option<u64>,
    zone: Arc<Zone>,
}

/// Upstream servers for names outside the cluster domain.
struct Forwarders {
    /// `(zone, resolver)`, longest zone first.
    zones: Vec<(Name, TokioResolver)>,
    default: Option<TokioResolver>,
}

impl Forwarders {
    fn new(config: &DnsConfig) -> Result<Forwarders, DnsServerError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let group = |field: &'static str, servers: &[String]| -> Result<TokioResolver, DnsServerError> {
            let addrs = servers
                .iter()
                .map(|s| parse_upstream(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| DnsServerError::Invalid { field, message })?;
            resolver(&addrs, timeout)
        };
        let default = if config.resolvers.is_empty() { None } else { Some(group("dns.resolvers", &config.resolvers)?) };
        let mut zones = Vec::new();
        for (zone, servers) in &config.forward_zones {
            let name = Name::from_ascii(format!("{}.", zone.trim_end_matches('.'))).map_err(|e| {
                DnsServerError::Invalid { field: "dns.forward_zones", message: format!("{zone:?}: {e}") }
            })?;
            zones.push((name, group("dns.forward_zones", servers)?));
        }
        zones.sort_by_key(|(name, _)| std::cmp::Reverse(name.num_labels()));
        Ok(Forwarders { zones, default })
    }

    fn for_name(&self, name: &Name) -> Option<&TokioResolver> {
        self.zones.iter().find(|(zone, _)| zone.zone_of(name)).map(|(_, r)| r).or(self.default.as_ref())
    }
}

/// A caching resolver that asks `servers` (UDP, TCP on truncation), in order.
fn resolver(servers: &[SocketAddr], timeout: Duration) -> Result<TokioResolver, DnsServerError> {
    let name_servers = servers
        .iter()
        .map(|addr| {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            ns
        })
        .collect();
    let mut builder =
        Resolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = CACHE_SIZE;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.preserve_intermediates = true;
    opts.num_concurrent_reqs = 1;
    opts.ndots = 0;
    builder.build().map_err(|e| DnsServerError::Resolver(e.to_string()))
}

/// Answers the cluster domain from the state and forwards the rest.
struct Handler {
    domain: String,
    state: Arc<RwLock<State>>,
    /// The applied index, without the state's lock: a cached zone is served while a long apply
    /// holds the lock, instead of every query waiting for it.
    applied: tokio::sync::watch::Receiver<u64>,
    leader: LeaderFn,
    zone: Mutex<Option<CachedZone>>,
    forwarders: Forwarders,
}

impl Handler {
    fn new(
        config: &DnsConfig,
        state: Arc<RwLock<State>>,
        applied: tokio::sync::watch::Receiver<u64>,
        leader: LeaderFn,
    ) -> Result<Handler, DnsServerError> {
        zone::validate_domain(&config.domain)
            .map_err(|message| DnsServerError::Invalid { field: "dns.domain", message })?;
        Ok(Handler {
            domain: config.domain.clone(),
            state,
            applied,
            leader,
            zone: Mutex::new(None),
            forwarders: Forwarders::new(config)?,
        })
    }

    /// The zone for the current state, rebuilt only when the state or the leader changed.
    /// Holds the state's read lock only while building (never across an await).
    fn zone(&self) -> Arc<Zone> {
        let leader = (self.leader)();
        let applied = *self.applied.borrow();
        let mut cached = self.zone.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref()
            && c.applied == applied
            && c.leader == leader
        {
            return c.zone.clone();
        }
        let (zone, applied) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            (Arc::new(Zone::build(&state, &self.domain, leader)), state.last_applied)
        };
        *cached = Some(CachedZone { applied, leader, zone: zone.clone() });
        zone
    }

    fn in_domain(&self, name: &str) -> bool {
        zone::in_cluster_zones(name, &self.domain)
    }
}

fn record_type(t: RecordType) -> zone::RecordType {
    match t {
        RecordType::A => zone::RecordType::A,
        RecordType::AAAA => zone::RecordType::Aaaa,
        RecordType::SRV => zone::RecordType::Srv,
        RecordType::NS => zone::RecordType::Ns,
        RecordType::SOA => zone::RecordType::Soa,
        RecordType::ANY => zone::RecordType::Any,
        other => zone::RecordType::Other(u16::from(other)),
    }
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(s).ok()
}

/// A zone record as a wire record (`None` for a name hickory refuses, which labels avoid).
fn to_record(r: &zone::Record) -> Option<Record> {
    let data = match &r.data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Srv { priority, weight, port, target } => {
            RData::SRV(SRV::new(*priority, *weight, *port, name(target)?))
        }
        RecordData::Ns(n) => RData::NS(NS(name(n)?)),
        RecordData::Soa(s) => RData::SOA(SOA::new(
            name(&s.mname)?,
            name(&s.rname)?,
            s.serial,
            i32::try_from(s.refresh).unwrap_or(i32::MAX),
            i32::try_from(s.retry).unwrap_or(i32::MAX),
            i32::try_from(s.expire).unwrap_or(i32::MAX),
            s.minimum,
        )),
    };
    Some(Record::from_rdata(name(&r.name)?, r.ttl, data))
}

/// What to send: code, flags and the three sections.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn error(code: ResponseCode) -> Reply {
        Reply { code, authoritative: false, answers: vec![], authorities: vec![], additionals: vec![] }
    }
}

impl Handler {
    async fn reply(&self, request: &Request) -> Reply {
        if request.metadata.op_code != OpCode::Query {
            return Reply::error(ResponseCode::NotImp);
        }
        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => return Reply::error(ResponseCode::FormErr),
        };
        let query = info.query.original();
        let qname = query.name().to_ascii();
        let qtype = query.query_type();
        if self.in_domain(&qname) {
            // The zone changes with every task; there is nothing stable to transfer.
            if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
                return Reply::error(ResponseCode::Refused);
            }
            if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
                return Reply::error(ResponseCode::Refused);
            }
            let zone = self.zone();
            let Some(answer) = zone.answer(&qname, record_type(qtype)) else {
                return Reply::error(ResponseCode::ServFail);
            };
            tracing::debug!(name = %qname, r#type = %qtype, answers = answer.answers.len(), nxdomain = answer.is_nxdomain(), "cluster DNS answer");
            return Reply {
                code: if answer.rcode == Rcode::NxDomain { ResponseCode::NXDomain } else { ResponseCode::NoError },
                authoritative: true,
                answers: answer.answers.iter().filter_map(to_record).collect(),
                authorities: answer.authority.iter().filter_map(to_record).collect(),
                additionals: vec![],
            };
        }
        let mut fqdn = query.name().clone();
        fqdn.set_fqdn(true);
        let Some(resolver) = self.forwarders.for_name(&fqdn) else {
            tracing::debug!(name = %qname, "no upstream resolver configured; refused");
            return Reply::error(ResponseCode::Refused);
        };
        match resolver.lookup(fqdn, qtype).await {
            Ok(lookup) => Reply {
                code: ResponseCode::NoError,
                authoritative: false,
                answers: lookup.answers().to_vec(),
                authorities: lookup.authorities().to_vec(),
                additionals: vec![],
            },
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Reply {
                code: none.response_code,
                authoritative: false,
                answers: vec![],
                authorities: none.soa.map(|soa| vec![soa.into_record_of_rdata()]).unwrap_or_default(),
                additionals: vec![],
            },
            Err(e) => {
                tracing::debug!(name = %qname, r#type = %qtype, error = %e, "every upstream failed; SERVFAIL");
                Reply::error(ResponseCode::ServFail)
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let reply = self.reply(request).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.code;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        let builder = MessageResponseBuilder::from_message_request(request);
        let message = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "could not send a DNS response");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header { metadata, counts: Default::default() })
            }
        }
    }
}
