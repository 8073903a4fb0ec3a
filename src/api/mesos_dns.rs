//! Mesos-DNS's HTTP API under `/mesos_dns/v1/` (DC/OS's Admin Router path to Mesos-DNS):
//! `version`, `config`, `hosts/{host}`, `services/{service}` and `enumerate`, answered by any
//! master from its replicated state through the same `core::dns::Zone` its DNS server answers
//! from, so the two always agree.
//!
//! Shapes follow Mesos-DNS (its `resolver` HTTP handlers):
//! - `hosts` lists `{"host", "ip"}` for every A and AAAA address of the name (lower-cased, with
//!   its trailing dot); `services` lists `{"service", "host", "ip", "port"}` for every SRV
//!   record (`service` as asked, `port` a string, `ip` the target's first address).
//! - A name without records (or outside the cluster domain) is answered, as Mesos-DNS does,
//!   with one entry whose fields are all empty strings (`[{"host":"","ip":""}]`), status 200.
//! - `config` names this master's `[dns]` settings with Mesos-DNS's field names where they
//!   map (`Domain`, `Resolvers`, `ZoneResolvers`, `Timeout` in seconds, `TTL`, `Port` (the
//!   bound one),
//!   `Listener`, `HttpPort`, `DnsOn`, `SOA*`, `Masters`, …); medos has no polling, so no
//!   `RefreshSeconds`, `Zk` or state timeouts.
//! - `enumerate` is `{"frameworks": [{"name", "tasks": [{"name", "id", "records": [{"name",
//!   "host", "rtype"}]}]}]}`; the built-in frameworks are always listed, and each named task
//!   lists every record it gives the zone (Mesos-DNS drops a record another task of the same
//!   framework already produced; medos lists it under each task).
//!
//! Reads wait for a read barrier (linearizable) unless `?stale`; names are case-insensitive
//! and the trailing dot is optional. A malformed name (empty, over 253 characters, a label
//! over 63, characters other than letters, digits, `-`, `_`) is a 400 naming the fault.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::query::{Params, flag};
use crate::core::dns::{self, Enumeration, HostEntry, ServiceEntry, Zone};
use crate::master::Master;

/// Where the API lives on every master.
pub const PREFIX: &str = "/mesos_dns/v1";

/// The routes (merged into the token-protected router).
pub fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route(&format!("{PREFIX}/version"), get(version))
        .route(&format!("{PREFIX}/config"), get(config))
        .route(&format!("{PREFIX}/hosts/{{host}}"), get(hosts))
        .route(&format!("{PREFIX}/services/{{service}}"), get(services))
        .route(&format!("{PREFIX}/enumerate"), get(enumerate))
        .route(VIPS_PATH, get(vips))
}

/// Every VIP with its names, apps and ready instances.
pub const VIPS_PATH: &str = "/v1/vips";

/// `GET /v1/vips`: the table every agent serves (`core::vips::routes`).
pub async fn vips(
    State(master): State<Arc<Master>>,
    query: QueryResult,
) -> Result<Json<Vec<crate::core::vips::VipRoute>>, ApiError> {
    barrier(&master, query).await?;
    let state = master.state.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(crate::core::vips::routes(&state)))
}

/// `GET /mesos_dns/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    #[serde(rename = "Service")]
    pub service: String,
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "URL")]
    pub url: String,
}

/// `GET /mesos_dns/v1/config`: Mesos-DNS's configuration fields that medos has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    #[serde(rename = "Domain")]
    pub domain: String,
    #[serde(rename = "Resolvers")]
    pub resolvers: Vec<String>,
    #[serde(rename = "ZoneResolvers")]
    pub zone_resolvers: BTreeMap<String, Vec<String>>,
    /// Per upstream, in whole seconds (Mesos-DNS's unit; rounded up).
    #[serde(rename = "Timeout")]
    pub timeout: u64,
    /// The same, in milliseconds (medos's `timeout_ms`).
    #[serde(rename = "TimeoutMs")]
    pub timeout_ms: u64,
    #[serde(rename = "TTL")]
    pub ttl: u32,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "Listener")]
    pub listener: String,
    #[serde(rename = "HttpPort")]
    pub http_port: Option<u16>,
    #[serde(rename = "DnsOn")]
    pub dns_on: bool,
    #[serde(rename = "HttpOn")]
    pub http_on: bool,
    #[serde(rename = "RecurseOn")]
    pub recurse_on: bool,
    #[serde(rename = "ExternalOn")]
    pub external_on: bool,
    #[serde(rename = "EnumerationOn")]
    pub enumeration_on: bool,
    #[serde(rename = "SRVRecordDefaultWeight")]
    pub srv_record_default_weight: u16,
    #[serde(rename = "SOAMname")]
    pub soa_mname: String,
    #[serde(rename = "SOARname")]
    pub soa_rname: String,
    #[serde(rename = "SOASerial")]
    pub soa_serial: u32,
    #[serde(rename = "SOARefresh")]
    pub soa_refresh: u32,
    #[serde(rename = "SOARetry")]
    pub soa_retry: u32,
    #[serde(rename = "SOAExpire")]
    pub soa_expire: u32,
    #[serde(rename = "SOAMinttl")]
    pub soa_minttl: u32,
    /// Every master's API address (`host:port`).
    #[serde(rename = "Masters")]
    pub masters: Vec<String>,
    #[serde(rename = "IPSources")]
    pub ip_sources: Vec<String>,
}

type QueryResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

/// Waits for a linearizable view unless `?stale`; rejects unknown-shaped queries.
async fn barrier(master: &Master, query: QueryResult) -> Result<(), ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !flag(&params, "stale")? {
        master.read_barrier().await?;
    }
    Ok(())
}

/// The zone of this master's state and the current leader (the state lock is held only while
/// building).
fn zone(master: &Master) -> Zone {
    let leader = master.raft.metrics().borrow().current_leader;
    let state = master.state.read().unwrap_or_else(|e| e.into_inner());
    Zone::build(&state, &master.config.dns.domain, leader)
}

fn checked(name: &str) -> Result<(), ApiError> {
    dns::validate_name(name).map_err(ApiError::BadRequest)
}

/// `GET /mesos_dns/v1/version`.
pub async fn version(State(master): State<Arc<Master>>) -> Json<Version> {
    Json(Version {
        service: "Mesos-DNS".into(),
        version: super::cluster::VERSION.into(),
        url: format!("{}{PREFIX}", master.advertise.trim_end_matches('/')),
    })
}

/// `GET /mesos_dns/v1/config`.
pub async fn config(State(master): State<Arc<Master>>, query: QueryResult) -> Result<Json<DnsSettings>, ApiError> {
    barrier(&master, query).await?;
    let z = zone(&master);
    let soa = z.soa().clone();
    let masters: Vec<String> = {
        let state = master.state.read().unwrap_or_else(|e| e.into_inner());
        state.masters.iter().map(|m| authority(&m.api).to_string()).collect()
    };
    let c = &master.config.dns;
    let forwards = !c.resolvers.is_empty() || !c.forward_zones.is_empty();
    Ok(Json(DnsSettings {
        domain: c.domain.trim_end_matches('.').to_string(),
        resolvers: c.resolvers.clone(),
        zone_resolvers: c.forward_zones.clone(),
        timeout: c.timeout_ms.div_ceil(1000),
        timeout_ms: c.timeout_ms,
        ttl: dns::TTL,
        port: master.dns_addr.get().map_or(c.listen.port(), |a| a.port()),
        listener: c.listen.ip().to_string(),
        http_port: authority(&master.advertise).rsplit_once(':').and_then(|(_, p)| p.parse().ok()),
        dns_on: c.enabled,
        http_on: true,
        recurse_on: forwards,
        external_on: forwards,
        enumeration_on: true,
        srv_record_default_weight: 1,
        soa_mname: soa.mname,
        soa_rname: soa.rname,
        soa_serial: soa.serial,
        soa_refresh: soa.refresh,
        soa_retry: soa.retry,
        soa_expire: soa.expire,
        soa_minttl: soa.minimum,
        masters,
        ip_sources: vec!["host".into()],
    }))
}

/// `host:port` of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// `GET /mesos_dns/v1/hosts/{host}`.
pub async fn hosts(
    State(master): State<Arc<Master>>,
    Path(host): Path<String>,
    query: QueryResult,
) -> Result<Json<Vec<HostEntry>>, ApiError> {
    checked(&host)?;
    barrier(&master, query).await?;
    let mut entries = zone(&master).hosts(&host);
    if entries.is_empty() {
        entries.push(HostEntry { host: String::new(), ip: String::new() });
    }
    Ok(Json(entries))
}

/// `GET /mesos_dns/v1/services/{service}`.
pub async fn services(
    State(master): State<Arc<Master>>,
    Path(service): Path<String>,
    query: QueryResult,
) -> Result<Json<Vec<ServiceEntry>>, ApiError> {
    checked(&service)?;
    barrier(&master, query).await?;
    let mut entries = zone(&master).services(&service);
    if entries.is_empty() {
        entries.push(ServiceEntry {
            service: String::new(),
            host: String::new(),
            ip: String::new(),
            port: String::new(),
        });
    }
    Ok(Json(entries))
}

/// `GET /mesos_dns/v1/enumerate`.
pub async fn enumerate(State(master): State<Arc<Master>>, query: QueryResult) -> Result<Json<Enumeration>, ApiError> {
    barrier(&master, query).await?;
    let state = master.state.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(dns::enumerate(&state, &master.config.dns.domain)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn authorities_of_urls() {
        assert_eq!(super::authority("https://10.0.0.1:7443"), "10.0.0.1:7443");
        assert_eq!(super::authority("https://[fd00::1]:7443/x?y"), "[fd00::1]:7443");
        assert_eq!(super::authority("10.0.0.1:7443"), "10.0.0.1:7443");
    }
}
