//! How tasks find the cluster DNS: the agent writes a `resolv.conf` naming the masters' DNS
//! servers first (then the host's own nameservers as a fallback) and the cluster's search
//! domains (`marathon.mesos mesos`) before the host's, and the runtime binds it read-only at
//! `/etc/resolv.conf` in every task it starts afterwards (image and host tasks alike). The
//! masters' addresses come from the leader at registration and on the event stream whenever
//! they change.
//!
//! A `nameserver` line has no port, so only masters serving DNS on port 53 can be named; when
//! none does (`medos dev` as a user, or `[dns] listen` on another port), tasks keep the
//! host's `/etc/resolv.conf`.

use std::net::SocketAddr;
use std::path::Path;

use crate::api::agent_protocol::ClusterDns;

/// The file under the agent's work dir.
pub const RESOLV_CONF: &str = "resolv.conf";
/// glibc reads at most 3 nameservers and 6 search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH: usize = 6;

/// The tasks' `resolv.conf` for `dns`, keeping the host's (`host`, the text of its
/// `/etc/resolv.conf`) nameservers after the masters' and its search domains and options;
/// `None` when no master can be named (none serves DNS on port 53).
pub fn render(dns: &ClusterDns, host: &str) -> Option<String> {
    let mut nameservers: Vec<String> = Vec::new();
    for server in &dns.servers {
        if let Ok(addr) = server.parse::<SocketAddr>()
            && addr.port() == 53
            && !nameservers.contains(&addr.ip().to_string())
        {
            nameservers.push(addr.ip().to_string());
        }
    }
    if nameservers.is_empty() {
        return None;
    }
    let domain = dns.domain.trim_end_matches('.');
    let mut search = vec![format!("marathon.{domain}"), domain.to_string()];
    let mut options = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ns) = words.next()
                    && !nameservers.iter().any(|n| n == ns)
                {
                    nameservers.push(ns.to_string());
                }
            }
            Some("search") | Some("domain") => {
                for d in words {
                    if !search.iter().any(|s| s == d) {
                        search.push(d.to_string());
                    }
                }
            }
            Some("options") => options.push(line.trim().to_string()),
            _ => {}
        }
    }
    nameservers.truncate(MAX_NAMESERVERS);
    search.truncate(MAX_SEARCH);
    let mut text = String::from("# Written by the medos agent: the cluster DNS (the masters) first.\n");
    for ns in &nameservers {
        text.push_str(&format!("nameserver {ns}\n"));
    }
    text.push_str(&format!("search {}\n", search.join(" ")));
    for o in options {
        text.push_str(&o);
        text.push('\n');
    }
    Some(text)
}

/// Writes (or, when no master can be named, removes) the tasks' `resolv.conf` at `path`.
/// Tasks started afterwards see it; running ones keep what they had.
pub fn update(path: &Path, dns: Option<&ClusterDns>) -> Result<(), String> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    match dns.and_then(|d| render(d, &host)) {
        Some(text) => {
            if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
                crate::atomic_file::write_atomic(path, text.as_bytes())?;
                tracing::info!(path = %path.display(), "tasks resolve names through the cluster DNS");
            }
            Ok(())
        }
        None => match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::info!("no master serves DNS on port 53; tasks use the host's /etc/resolv.conf");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", path.display())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(servers: &[&str]) -> ClusterDns {
        ClusterDns { servers: servers.iter().map(|s| s.to_string()).collect(), domain: "mesos".into() }
    }

    #[test]
    fn masters_first_then_the_hosts_nameservers_search_domains_and_options() {
        let host =
            "# host\nnameserver 10.0.0.53\nnameserver 10.0.0.1\nsearch corp.example mesos\noptions ndots:2 timeout:1\n";
        let cases: Vec<(ClusterDns, &str, Option<&str>)> = vec![
            (
                dns(&["10.0.0.1:53", "10.0.0.2:53"]),
                host,
                Some(
                    "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.53\nsearch marathon.mesos mesos corp.example\noptions ndots:2 timeout:1\n",
                ),
            ),
            // At most three nameservers: three masters leave no room for the host's.
            (
                dns(&["10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"]),
                host,
                Some(
                    "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch marathon.mesos mesos corp.example\noptions ndots:2 timeout:1\n",
                ),
            ),
            // Only port 53 can be named; other ports are left out.
            (dns(&["127.0.0.1:5353", "[::1]:53"]), "", Some("nameserver ::1\nsearch marathon.mesos mesos\n")),
            (dns(&["127.0.0.1:5353", "not an address"]), host, None),
            (dns(&[]), host, None),
        ];
        for (i, (dns, host, expected)) in cases.into_iter().enumerate() {
            let got = render(&dns, host);
            let body = got.as_deref().map(|t| t.split_once('\n').unwrap().1);
            assert_eq!(body, expected, "case {i}");
        }
        let custom = ClusterDns { servers: vec!["10.0.0.1:53".into()], domain: "dc1.example.".into() };
        assert!(render(&custom, "").unwrap().contains("search marathon.dc1.example dc1.example\n"));
    }

    #[test]
    fn update_writes_and_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESOLV_CONF);
        update(&path, Some(&dns(&["10.0.0.1:53"]))).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("nameserver 10.0.0.1\n"));
        update(&path, Some(&dns(&["10.0.0.1:5353"]))).unwrap();
        assert!(!path.exists(), "no master on port 53: the host's file applies");
        update(&path, None).unwrap();
        assert!(!path.exists());
    }
}
