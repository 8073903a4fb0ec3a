//! Service discovery on a real cluster: `medos dev --masters 3 --agents 2` with real
//! containers, asked with `dig` (Debian's bind9-dnsutils) and through `/service/<name>/`.
//!
//! One cluster, one story:
//! 1. every master answers an app's Mesos-DNS names: A for the app, SRV with the host ports of
//!    its healthy instances, NXDOMAIN for names that do not exist; other names are forwarded
//!    to the upstream `medos dev --dns-resolver` names (a DNS server the test runs on
//!    loopback);
//!    tasks resolve the app's name themselves (their resolv.conf names the masters) and reach
//!    it through its VIP by name;
//! 2. `/service/disco-web/` reaches both instances (each serves its own port number), and so
//!    does its VIP: `disco-web.marathon.l4lb.thisdcos.directory` resolves on every master, and
//!    fresh connections to `VIP:8080` from this host are balanced over both instances;
//! 3. after a rolling restart the SRV records and the VIP name exactly the new instances;
//! 4. `kill -9` of an agent: its instance leaves the names and the VIP once the masters mark
//!    it unreachable, and its replacement appears;
//! 5. the agent returns and `kill -9` of the leader: the surviving masters keep answering,
//!    `_leader._tcp` names the new leader's API port, and the names end with the app's
//!    instances once the returned agent's surplus instance is killed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use medos::api::client::Client;
use reqwest::Method;
use serde_json::Value;
use tokio::net::UdpSocket;

use crate::support::{CONDITION_TIMEOUT, DevCluster, eventually, shared_slot};

/// Two instances that each serve their own port number on `/`, healthy once serving.
const DISCO_WEB: &str = r#"{
  "id": "/disco/web",
  "cmd": "echo $PORT0 > index.html && exec python3 -m http.server $PORT0",
  "cpus": 0.1,
  "mem": 64,
  "instances": 2,
  "labels": {"DCOS_SERVICE_NAME": "disco-web"},
  "portDefinitions": [{"port": 0, "name": "http", "labels": {"VIP_0": "/disco-web:8080"}}],
  "healthChecks": [{
    "protocol": "MESOS_HTTP", "portIndex": 0, "path": "/",
    "gracePeriodSeconds": 20, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3,
    "delaySeconds": 0
  }],
  "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5}
}"#;
const APP: &str = "/disco/web";
const NAME: &str = "web-disco.marathon.mesos";
const SRV_NAME: &str = "_web-disco._tcp.marathon.mesos";
const VIP_NAME: &str = "disco-web.marathon.l4lb.thisdcos.directory";
const VIP_PORT: u16 = 8080;
/// What the test's upstream answers for every A question.
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
/// How long a name may lag the task states `/v2/apps` shows (the issue asks for a second; the
/// margin covers a loaded 2-core machine).
const FRESH: Duration = Duration::from_secs(5);

/// A DNS server on loopback that answers every A question with [`UPSTREAM_ANSWER`].
async fn upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binding the upstream");
    let addr = socket.local_addr().expect("upstream address");
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            for q in &request.queries {
                response.add_query(q.clone());
                if q.query_type() == RecordType::A {
                    response.answers.push(Record::from_rdata(q.name().clone(), 300, RData::A(A(UPSTREAM_ANSWER))));
                }
            }
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    (addr, task)
}

/// `dig @ADDR -p PORT NAME TYPE +short +tries=1 +time=2`: the answer lines, or the status
/// (`NXDOMAIN`, `SERVFAIL`, …) when the answer is not NOERROR.
async fn dig(server: &str, name: &str, rtype: &str) -> Result<Vec<String>, String> {
    let (host, port) = server.rsplit_once(':').expect("DNS address with a port");
    let out = tokio::process::Command::new("dig")
        .args([&format!("@{host}"), "-p", port, name, rtype, "+tries=1", "+time=2", "+noall", "+answer", "+comments"])
        .output()
        .await
        .map_err(|e| format!("running dig (apt-get install bind9-dnsutils): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or_default().to_string())
        .ok_or_else(|| format!("dig {name} {rtype} @{server} gave no answer: {text}"))?;
    if status != "NOERROR" {
        return Err(status);
    }
    let mut answers: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
        .collect();
    answers.sort();
    Ok(answers)
}

/// The ports of an SRV answer (`priority weight port target` lines).
fn srv_ports(answers: &[String]) -> BTreeSet<u16> {
    answers.iter().filter_map(|a| a.split_whitespace().nth(2)?.parse().ok()).collect()
}

async fn app(client: &Client) -> Result<Value, String> {
    let v = client.marathon(Method::GET, &format!("/v2/apps{APP}"), None).await.map_err(|e| e.to_string())?;
    Ok(v["app"].clone())
}

/// The app's healthy running instances (task id → host port), once no deployment runs.
async fn healthy(client: &Client, instances: usize) -> BTreeMap<String, u16> {
    eventually(&format!("{instances} healthy instances of {APP}"), CONDITION_TIMEOUT, || async {
        let app = app(client).await?;
        let tasks = app["tasks"].as_array().cloned().unwrap_or_default();
        let healthy: BTreeMap<String, u16> = tasks
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == Value::Bool(true))
            .filter_map(|t| Some((t["id"].as_str()?.to_string(), t["ports"][0].as_u64()? as u16)))
            .collect();
        // Instances on a lost agent stay listed as TASK_UNREACHABLE until expunged.
        let live = tasks.iter().filter(|t| t["state"] != "TASK_UNREACHABLE").count();
        let idle = app["deployments"].as_array().is_some_and(|d| d.is_empty());
        if idle && healthy.len() == instances && live == instances {
            Ok(healthy)
        } else {
            Err(format!("{} healthy of {} tasks, deployments {}", healthy.len(), tasks.len(), app["deployments"]))
        }
    })
    .await
}

fn ports(instances: &BTreeMap<String, u16>) -> BTreeSet<u16> {
    instances.values().copied().collect()
}

/// The SRV answer's (port, target) pairs; a target names one instance.
async fn srv(server: &str) -> Result<BTreeSet<(u16, String)>, String> {
    let answers = dig(server, SRV_NAME, "SRV").await?;
    Ok(answers
        .iter()
        .filter_map(|a| {
            let words: Vec<&str> = a.split_whitespace().collect();
            Some((words.get(2)?.parse().ok()?, words.get(3)?.to_string()))
        })
        .collect())
}

/// Waits until every master in `servers` answers the app's SRV name with exactly `ports`,
/// none of the targets in `gone`; returns the targets.
async fn srv_follows(
    servers: &[String],
    ports: &BTreeSet<u16>,
    gone: &BTreeSet<String>,
    when: &str,
) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    for server in servers {
        targets = eventually(&format!("{SRV_NAME} at {server} to name ports {ports:?} {when}"), FRESH, || async {
            let got = srv(server).await?;
            let got_ports: BTreeSet<u16> = got.iter().map(|(p, _)| *p).collect();
            let got_targets: BTreeSet<String> = got.into_iter().map(|(_, t)| t).collect();
            if &got_ports == ports && got_targets.is_disjoint(gone) {
                Ok(got_targets)
            } else {
                Err(format!("got ports {got_ports:?}, targets {got_targets:?}"))
            }
        })
        .await;
    }
    targets
}

/// The instances (by the port each serves) that answer `GET /` through `vip` over `n` fresh
/// connections.
async fn through_vip(vip: SocketAddr, n: usize) -> Result<BTreeSet<u16>, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let resp = http.get(format!("http://{vip}/")).send().await.map_err(|e| format!("GET through {vip}: {e}"))?;
        let body = resp.text().await.map_err(|e| e.to_string())?;
        seen.insert(body.trim().parse::<u16>().map_err(|e| format!("{body:?} through {vip}: {e}"))?);
    }
    Ok(seen)
}

/// Waits until the VIP name resolves to one address on every master and connections to it
/// reach exactly the instances serving `want`; answers the VIP.
async fn vip_follows(dns: &[String], want: &BTreeSet<u16>, when: &str) -> SocketAddr {
    eventually(&format!("{VIP_NAME}:{VIP_PORT} to reach the instances on {want:?} {when}"), FRESH, || async {
        let mut addresses = BTreeSet::new();
        for server in dns {
            addresses.extend(dig(server, VIP_NAME, "A").await?);
        }
        let [ip] = addresses.iter().collect::<Vec<_>>()[..] else {
            return Err(format!("the masters answer {addresses:?}"));
        };
        let vip = SocketAddr::new(ip.parse().map_err(|e| format!("{ip}: {e}"))?, VIP_PORT);
        // Round robin per agent: twice the instances reach each of them.
        let seen = through_vip(vip, 4 * want.len()).await?;
        if &seen == want { Ok(vip) } else { Err(format!("{vip} reached {seen:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_and_the_service_proxy_follow_an_app_through_restarts_and_failures() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: agents need root for namespaces and cgroups");
        return;
    }
    let _slot = shared_slot().await;
    let (upstream, _upstream_task) = upstream().await;
    let mut c = DevCluster::start_with_dev_args(3, 2, &["--dns-resolver".into(), upstream.to_string()]).await;
    let client = c.client();
    let dns: Vec<String> =
        c.masters.iter().map(|m| m.dns.clone().expect("medos dev lists every master's DNS")).collect();

    // 1. Names on every master, NXDOMAIN, forwarding.
    let app_json: Value = serde_json::from_str(DISCO_WEB).unwrap();
    client.marathon(Method::POST, "/v2/apps", Some(&app_json)).await.expect("POST /v2/apps");
    let first = healthy(&client, 2).await;
    let none = BTreeSet::new();
    let first_targets = srv_follows(&dns, &ports(&first), &none, "once both are healthy").await;
    assert_eq!(first_targets.len(), 2, "one SRV target per instance: {first_targets:?}");
    for server in &dns {
        assert_eq!(dig(server, NAME, "A").await, Ok(vec!["127.0.0.1".to_string()]), "{NAME} at {server}");
        assert!(first_targets.iter().all(|t| t.ends_with(".marathon.slave.mesos.")), "SRV targets: {first_targets:?}");
        for target in &first_targets {
            assert_eq!(dig(server, target, "A").await, Ok(vec!["127.0.0.1".to_string()]), "{target} at {server}");
        }
        assert_eq!(dig(server, "nothing-here.marathon.mesos", "A").await, Err("NXDOMAIN".into()));
        assert_eq!(
            dig(server, "service.example.org", "A").await,
            Ok(vec![UPSTREAM_ANSWER.to_string()]),
            "forwarded through {server}"
        );
    }

    // Tasks find the cluster DNS: their /etc/resolv.conf names the masters and the search
    // domains, so a short app name resolves from inside a task.
    let probe: Value = serde_json::json!({
        "id": "/disco/probe", "cpus": 0.1, "mem": 32, "instances": 1,
        "cmd": format!(
            "cp /etc/resolv.conf resolv.txt; until getent hosts web-disco > resolved.tmp; do sleep 0.2; done; \
             mv resolved.tmp resolved.txt; \
             until python3 -c \"import urllib.request as u; print(u.urlopen('http://{VIP_NAME}:{VIP_PORT}/', timeout=2).read().decode().strip())\" > vip.tmp; \
             do sleep 0.2; done; mv vip.tmp vip.txt; exec sleep 100000"
        )
    });
    client.marathon(Method::POST, "/v2/apps", Some(&probe)).await.expect("POST the probe");
    let resolved = eventually("the probe task to resolve web-disco", CONDITION_TIMEOUT, || async {
        let v = client.marathon(Method::GET, "/v2/apps/disco/probe", None).await.map_err(|e| e.to_string())?;
        let task = v["app"]["tasks"][0].clone();
        let (Some(id), Some(host)) = (task["id"].as_str(), task["host"].as_str()) else {
            return Err("no task yet".into());
        };
        let sandbox = c.agent(host).sandbox(id);
        let resolved = std::fs::read_to_string(sandbox.join("resolved.txt")).map_err(|e| e.to_string())?;
        let resolv = std::fs::read_to_string(sandbox.join("resolv.txt")).map_err(|e| e.to_string())?;
        let through_vip = std::fs::read_to_string(sandbox.join("vip.txt")).map_err(|e| e.to_string())?;
        Ok((resolved, resolv, through_vip))
    })
    .await;
    // A task reaches the app through its VIP, by name, like any client on an agent host.
    let vip_port: u16 = resolved.2.trim().parse().unwrap_or_else(|e| panic!("{:?} through the VIP: {e}", resolved.2));
    assert!(ports(&first).contains(&vip_port), "the task reached {vip_port} through the VIP; instances {first:?}");
    assert!(resolved.0.starts_with("127.0.0.1"), "getent answer: {}", resolved.0);
    for server in &dns {
        let ip = server.rsplit_once(':').unwrap().0;
        assert!(
            resolved.1.contains(&format!("nameserver {ip}\n")),
            "{server} in the task's resolv.conf:\n{}",
            resolved.1
        );
    }
    assert!(resolved.1.contains("search marathon.mesos mesos"), "{}", resolved.1);
    client.marathon(Method::DELETE, "/v2/apps/disco/probe?force=true", None).await.expect("removing the probe");

    // 2. The service proxy reaches both instances.
    eventually("/service/disco-web/ to reach both instances", CONDITION_TIMEOUT, || async {
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let resp = client.send(Method::GET, "/service/disco-web/", None, false).await.map_err(|e| e.to_string())?;
            if resp.status() != 200 {
                return Err(format!("status {}", resp.status()));
            }
            let port: u16 = resp.text().await.map_err(|e| e.to_string())?.trim().parse().map_err(|e| format!("{e}"))?;
            seen.insert(port);
        }
        if seen == ports(&first) { Ok(()) } else { Err(format!("reached {seen:?}, instances {first:?}")) }
    })
    .await;
    let vip = vip_follows(&dns, &ports(&first), "once both are healthy").await;
    assert!(vip.ip().is_loopback(), "VIPs come from the loopback range: {vip}");

    // 3. A rolling restart: the names move to the new instances (ports may be reused, the
    //    per-instance targets are new).
    client.marathon(Method::POST, &format!("/v2/apps{APP}/restart"), None).await.expect("restart");
    let restarted = eventually("the restart to replace both instances", CONDITION_TIMEOUT, || async {
        let now = healthy(&client, 2).await;
        if now.keys().all(|id| !first.contains_key(id)) { Ok(now) } else { Err(format!("old tasks in {now:?}")) }
    })
    .await;
    let restarted_targets = srv_follows(&dns, &ports(&restarted), &first_targets, "after the rolling restart").await;
    assert_eq!(vip_follows(&dns, &ports(&restarted), "after the rolling restart").await, vip, "a VIP is stable");

    // 4. An agent dies: its instance leaves the names, the replacement joins them.
    let a = app(&client).await.unwrap();
    let victim_task = a["tasks"][0].clone();
    let victim_host = victim_task["host"].as_str().unwrap().to_string();
    let victim_id = victim_task["id"].as_str().unwrap().to_string();
    // Nothing spreads the instances: the agent may hold one or both.
    let lost = a["tasks"].as_array().unwrap().iter().filter(|t| t["host"] == victim_task["host"]).count();
    c.kill9_agent(&victim_host);
    let healed = eventually("a replacement of the lost instance", CONDITION_TIMEOUT, || async {
        let now = healthy(&client, 2).await;
        if now.contains_key(&victim_id) { Err(format!("{victim_id} still counted in {now:?}")) } else { Ok(now) }
    })
    .await;
    let healed_targets = srv_follows(&dns, &ports(&healed), &none, "after the agent loss").await;
    vip_follows(&dns, &ports(&healed), "after the agent loss").await;
    assert_eq!(
        healed_targets.intersection(&restarted_targets).count(),
        2 - lost,
        "only instances on live agents keep their names: before {restarted_targets:?}, after {healed_targets:?}"
    );
    c.restart_agent(&victim_host);

    // 5. The leader dies: the others keep answering and name the new leader.
    let leader = c.leader().await;
    let leader_index = c.masters.iter().position(|m| m.name == leader).unwrap();
    c.kill9(&leader);
    let survivors: Vec<String> =
        dns.iter().enumerate().filter(|(i, _)| *i != leader_index).map(|(_, d)| d.clone()).collect();
    let new_leader = c.leader().await;
    let new_port: u16 = c.master(&new_leader).api.rsplit(':').next().unwrap().parse().unwrap();
    for server in &survivors {
        eventually(&format!("_leader._tcp at {server} to name {new_leader}"), CONDITION_TIMEOUT, || async {
            let got = srv_ports(&dig(server, "_leader._tcp.mesos", "SRV").await?);
            if got == BTreeSet::from([new_port]) { Ok(()) } else { Err(format!("got {got:?}")) }
        })
        .await;
    }
    // The returned agent's instance ran on; it is the surplus the new leader kills, and the
    // names end with the app's instances.
    let settled = healthy(&client, 2).await;
    srv_follows(&survivors, &ports(&settled), &none, "after the leader failover").await;
    assert_eq!(vip_follows(&survivors, &ports(&settled), "after the leader failover").await, vip);
    c.restart(&leader);
    c.wait_healthy(&leader).await;
    client.marathon(Method::DELETE, &format!("/v2/apps{APP}?force=true"), None).await.expect("removing the app");
}
