//! Mesos-DNS's HTTP API (`/mesos_dns/v1`) on a real in-process master with a fake agent: the
//! JSON of every endpoint for a Marathon app with running instances, the placeholder entry
//! Mesos-DNS answers for unknown names, 400 for malformed names, 401 without a token; and the
//! CLI's client methods and lookups against it.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use medos::agent::fake::FakeContainers;
use medos::api::client::Client;
use medos::cli::dns::LookupArgs;
use medos::master::config::DnsConfig;
use reqwest::Method;
use serde_json::{Value, json};
use support::{TestCluster, fast_tuning, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// GET `path`: status and JSON body.
async fn get(client: &Client, path: &str) -> (u16, Value) {
    let resp = client.send(Method::GET, path, None, false).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Asks the master's DNS server over UDP; the answers' addresses (A) or `target:port` (SRV),
/// sorted.
async fn dig(server: std::net::SocketAddr, name: &str, rtype: RecordType) -> Vec<String> {
    let mut q = Message::new(4242, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await.unwrap().unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    let mut out: Vec<String> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::SRV(srv) => Some(format!("{}:{}", srv.target, srv.port)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|e| e[field].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mesos_dns_http_api_answers_from_the_cluster_zone() {
    let dns = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        resolvers: vec!["127.0.0.1:5353".into()],
        forward_zones: BTreeMap::from([("corp.test".to_string(), vec!["127.0.0.2".to_string()])]),
        timeout_ms: 1500,
        ..DnsConfig::default()
    };
    let cluster = TestCluster::start_with_dns(1, fast_tuning(), dns).await;
    let _agent =
        medos::agent::start(cluster.agent_config("agent-1"), Arc::new(FakeContainers::default())).await.unwrap();
    cluster.wait_active_agents(1, WAIT).await;
    let master = cluster.any_master();
    let client = cluster.client("m1").await;

    // Without a token: 401 everywhere.
    let anonymous = Client::new(vec![cluster.url("m1")], &cluster.ca_pem(), None).unwrap();
    for path in [
        "/mesos_dns/v1/version",
        "/mesos_dns/v1/config",
        "/mesos_dns/v1/hosts/leader.mesos",
        "/mesos_dns/v1/services/_leader._tcp.mesos",
        "/mesos_dns/v1/enumerate",
    ] {
        assert_eq!(get(&anonymous, path).await.0, 401, "{path}");
    }

    // version and config.
    let (status, version) = get(&client, "/mesos_dns/v1/version").await;
    assert_eq!(status, 200);
    assert_eq!(version["Service"], "Mesos-DNS");
    assert!(!version["Version"].as_str().unwrap().is_empty());
    assert!(version["URL"].as_str().unwrap().ends_with("/mesos_dns/v1"));
    assert_eq!(client.mesos_dns_version().await.unwrap().service, "Mesos-DNS");
    let (status, config) = get(&client, "/mesos_dns/v1/config").await;
    assert_eq!(status, 200);
    let dns_port = cluster.nodes["m1"].running.as_ref().unwrap().dns_addr().unwrap().port();
    assert_eq!(config["Domain"], "mesos");
    assert_eq!(config["Resolvers"], json!(["127.0.0.1:5353"]));
    assert_eq!(config["ZoneResolvers"], json!({"corp.test": ["127.0.0.2"]}));
    assert_eq!(config["Timeout"], 2, "seconds, rounded up");
    assert_eq!(config["TTL"], 60);
    assert_eq!(config["Port"], dns_port);
    assert_eq!(config["Listener"], "127.0.0.1");
    assert_eq!(config["DnsOn"], true);
    assert_eq!(config["RecurseOn"], true);
    assert_eq!(config["SOAMname"], "ns1.mesos.");
    assert_eq!(config["Masters"], json!([cluster.url("m1").trim_start_matches("https://")]));
    assert_eq!(config["HttpPort"].as_u64(), cluster.url("m1").rsplit(':').next().unwrap().parse::<u64>().ok());
    assert_eq!(client.mesos_dns_config().await.unwrap().port, dns_port);

    // Masters' names, before any app.
    let (_, leader) = get(&client, "/mesos_dns/v1/hosts/Leader.MESOS").await;
    assert_eq!(leader, json!([{"host": "leader.mesos.", "ip": "127.0.0.1"}]));
    let (_, srv) = get(&client, "/mesos_dns/v1/services/_leader._tcp.mesos.").await;
    let api_port = cluster.url("m1").rsplit(':').next().unwrap().to_string();
    assert_eq!(
        srv,
        json!([{"service": "_leader._tcp.mesos.", "host": "leader.mesos.", "ip": "127.0.0.1", "port": api_port}])
    );

    // Unknown names: Mesos-DNS's one entry of empty fields (status 200); the client's methods
    // give an empty list.
    for (path, want) in [
        ("/mesos_dns/v1/hosts/web-grp.marathon.mesos", json!([{"host": "", "ip": ""}])),
        ("/mesos_dns/v1/hosts/example.com", json!([{"host": "", "ip": ""}])),
        (
            "/mesos_dns/v1/services/_web-grp._tcp.marathon.mesos",
            json!([{"service": "", "host": "", "ip": "", "port": ""}]),
        ),
    ] {
        assert_eq!(get(&client, path).await, (200, want), "{path}");
    }
    assert!(client.dns_hosts("web-grp.marathon.mesos").await.unwrap().is_empty());
    assert!(client.dns_services("_web-grp._tcp.marathon.mesos").await.unwrap().is_empty());

    // Malformed names: 400 naming the fault.
    let long = format!("/mesos_dns/v1/hosts/{}.mesos", "x".repeat(64));
    let (status, body) = get(&client, &long).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("at most 63"), "{body}");
    let (status, body) = get(&client, "/mesos_dns/v1/hosts/a..b").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("empty label"), "{body}");
    let (status, _) = get(&client, &format!("/mesos_dns/v1/services/{}", vec!["ab"; 100].join("."))).await;
    assert_eq!(status, 400);

    // An app with two running instances.
    let app = json!({
        "id": "/grp/web", "cmd": "sleep 1000", "instances": 2, "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http", "labels": {"VIP_0": "/grp/web:80"}}, {"port": 0, "protocol": "udp"}],
        "labels": {"DCOS_SERVICE_NAME": "web"}
    });
    client.marathon(Method::POST, "/v2/apps", Some(&app)).await.unwrap();
    let services = wait_for("two SRV records for the app", WAIT, || async {
        let s = client.dns_services("_web-grp._tcp.marathon.mesos").await.ok()?;
        (s.len() == 2).then_some(s)
    })
    .await;
    let (tcp_ports, udp_ports, task_ids) = {
        let state = master.state.read().unwrap();
        let mut tasks: Vec<_> = state
            .tasks
            .values()
            .filter(|t| t.app_id.as_deref() == Some("/grp/web") && !t.state.is_terminal())
            .collect();
        tasks.sort_by_key(|t| t.ports[0]);
        let tcp: Vec<String> = tasks.iter().map(|t| t.ports[0].to_string()).collect();
        let udp: Vec<String> = tasks.iter().map(|t| t.ports[1].to_string()).collect();
        let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
        (tcp, udp, ids)
    };
    assert_eq!(task_ids.len(), 2);

    // hosts: every instance's agent, once per address.
    let (status, hosts) = get(&client, "/mesos_dns/v1/hosts/web-grp.marathon.mesos").await;
    assert_eq!(status, 200);
    assert_eq!(hosts, json!([{"host": "web-grp.marathon.mesos.", "ip": "127.0.0.1"}]));
    assert_eq!(client.dns_hosts("WEB-GRP.marathon.mesos.").await.unwrap()[0].host, "web-grp.marathon.mesos.");

    // services: one entry per instance, the ports as strings, each target resolvable.
    let (_, raw) = get(&client, "/mesos_dns/v1/services/_web-grp._tcp.marathon.mesos").await;
    let mut ports = strings(&raw, "port");
    ports.sort_by_key(|p| p.parse::<u16>().unwrap());
    assert_eq!(ports, tcp_ports);
    assert_eq!(strings(&raw, "service"), vec!["_web-grp._tcp.marathon.mesos"; 2]);
    assert_eq!(strings(&raw, "ip"), vec!["127.0.0.1"; 2]);
    for s in &services {
        assert!(s.host.ends_with(".marathon.slave.mesos."), "{s:?}");
        let target = client.dns_hosts(&s.host).await.unwrap();
        assert_eq!(target.len(), 1, "{s:?}");
    }
    let (_, udp) = get(&client, "/mesos_dns/v1/services/_web-grp._udp.marathon.mesos").await;
    let mut ports = strings(&udp, "port");
    ports.sort_by_key(|p| p.parse::<u16>().unwrap());
    assert_eq!(ports, udp_ports);
    assert_eq!(client.dns_services("_http._web-grp._tcp.marathon.mesos").await.unwrap().len(), 2);

    // The DNS server gives the same answers.
    let server = cluster.nodes["m1"].running.as_ref().unwrap().dns_addr().unwrap();
    assert_eq!(dig(server, "web-grp.marathon.mesos.", RecordType::A).await, strings(&hosts, "ip"));
    let mut from_api: Vec<String> = services.iter().map(|s| format!("{}:{}", s.host, s.port)).collect();
    from_api.sort();
    assert_eq!(dig(server, "_web-grp._tcp.marathon.mesos.", RecordType::SRV).await, from_api);

    // enumerate: both built-in frameworks; the app's instances with their records.
    let (status, e) = get(&client, "/mesos_dns/v1/enumerate").await;
    assert_eq!(status, 200);
    let frameworks = e["frameworks"].as_array().unwrap();
    let names: Vec<&str> = frameworks.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["marathon", "medos-tasks"]);
    let tasks = frameworks[0]["tasks"].as_array().unwrap();
    let mut ids: Vec<String> = tasks.iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    let mut want_ids = task_ids.clone();
    want_ids.sort();
    assert_eq!(ids, want_ids);
    for t in tasks {
        assert_eq!(t["name"], "web.grp");
        let records = t["records"].as_array().unwrap();
        let has = |name: &str, rtype: &str| records.iter().any(|r| r["name"] == name && r["rtype"] == rtype);
        assert!(has("web-grp.marathon.mesos.", "A"), "{t}");
        assert!(has("web-grp.marathon.slave.mesos.", "A"), "{t}");
        assert!(has("_web-grp._tcp.marathon.mesos.", "SRV"), "{t}");
        assert!(has("_web-grp._udp.marathon.mesos.", "SRV"), "{t}");
        for r in records.iter().filter(|r| r["rtype"] == "SRV") {
            let (target, port) = r["host"].as_str().unwrap().rsplit_once(':').unwrap();
            assert!(target.ends_with(".marathon.slave.mesos."), "{r}");
            port.parse::<u16>().unwrap();
        }
    }
    let typed = client.dns_enumerate().await.unwrap();
    assert_eq!(typed.frameworks[0].tasks.len(), 2);

    // The CLI's lookups and service list, through the same client.
    let lookup = |name: &str, rtype: Option<&str>| LookupArgs { name: name.into(), rtype: rtype.map(String::from) };
    medos::cli::dns::lookup(&client, &lookup("web-grp.marathon.mesos", None), false).await.unwrap();
    medos::cli::dns::lookup(&client, &lookup("_web-grp._tcp.marathon.mesos", None), true).await.unwrap();
    let err = medos::cli::dns::lookup(&client, &lookup("nothing.marathon.mesos", None), false).await.unwrap_err();
    assert!(err.to_string().contains("no A records"), "{err}");
    let err = medos::cli::dns::lookup(&client, &lookup("web-grp.marathon.mesos", Some("MX")), false).await.unwrap_err();
    assert!(err.to_string().contains("unsupported record type"), "{err}");
    let err = medos::cli::dns::lookup(&client, &lookup("", None), false).await.unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let apps = client.marathon_apps().await.unwrap();
    let vips = client.vips().await.unwrap();
    assert_eq!(vips.len(), 1, "{vips:?}");
    assert_eq!(vips[0].names, vec!["grpweb.marathon.l4lb.thisdcos.directory"]);
    assert_eq!(vips[0].backends.len(), 2, "both instances: {vips:?}");
    let vip_ip = vips[0].vip.strip_suffix(":80").expect("the VIP's port").to_string();
    let vip_hosts = client.dns_hosts("grpweb.marathon.l4lb.thisdcos.directory").await.unwrap();
    assert_eq!(vip_hosts.iter().map(|h| h.ip.clone()).collect::<Vec<_>>(), vec![vip_ip]);
    let views = medos::cli::service::views(&apps, &vips, &client.mesos_dns_config().await.unwrap().domain);
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].dns, "web-grp.marathon.mesos");
    assert_eq!(views[0].srv, vec!["_web-grp._tcp.marathon.mesos", "_web-grp._udp.marathon.mesos"]);
    assert_eq!(views[0].service_path.as_deref(), Some("/service/web/"));
    assert_eq!(views[0].instances, 2);
    assert_eq!(views[0].vips, vec![format!("grpweb.marathon.l4lb.thisdcos.directory:80 ({})", vips[0].vip)]);

    // The app removed: its names answer the placeholder again.
    client.marathon(Method::DELETE, "/v2/apps/grp/web?force=true", None).await.unwrap();
    wait_for("the app's names to go away", WAIT, || async {
        client.dns_hosts("web-grp.marathon.mesos").await.ok()?.is_empty().then_some(())
    })
    .await;
    let (_, hosts) = get(&client, "/mesos_dns/v1/hosts/web-grp.marathon.mesos").await;
    assert_eq!(hosts, json!([{"host": "", "ip": ""}]));
    let e = client.dns_enumerate().await.unwrap();
    assert!(e.frameworks.iter().all(|f| f.tasks.is_empty()), "{e:?}");
}
