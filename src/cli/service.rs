//! `medos service list`: every Marathon app with the names it is discovered by: its Mesos-DNS
//! name (`app-grp.marathon.<domain>`), its SRV names, and its `/service/<name>/` path on the
//! masters when labelled `DCOS_SERVICE_NAME`, and its VIPs (`name.marathon.l4lb.thisdcos.directory`
//! with the address and port they balance on).

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;

use super::config::Target;
use super::output;
use crate::core::dns::app_label;
use crate::core::vips::VipRoute;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Marathon apps with their DNS names, SRV names, /service path and instances.
    #[command(alias = "ls")]
    List,
}

/// One app and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    pub id: String,
    /// `app-grp.marathon.<domain>` (A: the agents of its running instances).
    pub dns: String,
    /// `_app-grp._<proto>.marathon.<domain>`, one per protocol of its ports; empty without ports.
    pub srv: Vec<String>,
    /// `/service/<name>/` when the app is labelled `DCOS_SERVICE_NAME`.
    pub service_path: Option<String>,
    /// The app's VIPs: `name:port (IP:port)`, or `IP:port` for IP VIPs.
    pub vips: Vec<String>,
    pub instances: u64,
    pub running: u64,
}

/// Builds the views from Marathon's `/v2/apps` answer (`apps`) and the VIP table, sorted by id.
pub fn views(apps: &[Value], vips: &[VipRoute], domain: &str) -> Vec<ServiceView> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut out: Vec<ServiceView> = apps
        .iter()
        .filter_map(|app| {
            let id = app["id"].as_str()?.to_string();
            let label = app_label(&id);
            let mut protocols: Vec<String> = Vec::new();
            for port in app["portDefinitions"].as_array().into_iter().flatten() {
                let list = port["protocol"].as_str().unwrap_or("tcp");
                let mut any = false;
                for p in list.split(',').map(|p| p.trim().to_ascii_lowercase()) {
                    if p == "tcp" || p == "udp" {
                        any = true;
                        if !protocols.contains(&p) {
                            protocols.push(p);
                        }
                    }
                }
                if !any && !protocols.iter().any(|p| p == "tcp") {
                    protocols.push("tcp".into());
                }
            }
            protocols.sort();
            let srv = if label.is_empty() {
                vec![]
            } else {
                protocols.iter().map(|p| format!("_{label}._{p}.marathon.{domain}")).collect()
            };
            let service_path = app["labels"]["DCOS_SERVICE_NAME"]
                .as_str()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("/service/{}/", n.trim_matches('/')));
            let vips = vips
                .iter()
                .filter(|r| r.apps.contains(&id))
                .map(|r| match (r.names.first(), r.vip.rsplit_once(':')) {
                    (Some(name), Some((_, port))) => format!("{name}:{port} ({})", r.vip),
                    _ => r.vip.clone(),
                })
                .collect();
            Some(ServiceView {
                vips,
                dns: if label.is_empty() { String::new() } else { format!("{label}.marathon.{domain}") },
                srv,
                service_path,
                instances: app["instances"].as_u64().unwrap_or(0),
                running: app["tasksRunning"].as_u64().unwrap_or(0),
                id,
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

pub async fn run(cmd: ServiceCommand, json: bool) -> Result<()> {
    let client = Target::resolve()?.client()?;
    match cmd {
        ServiceCommand::List => {
            let domain = client.mesos_dns_config().await?.domain;
            let apps = client.marathon_apps().await?;
            let vips = client.vips().await?;
            let views = views(&apps, &vips, &domain);
            if json {
                output::json(&views);
                return Ok(());
            }
            let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
            let rows = views
                .into_iter()
                .map(|v| {
                    vec![
                        v.id,
                        dash(v.dns),
                        dash(v.srv.join(" ")),
                        dash(v.service_path.unwrap_or_default()),
                        dash(v.vips.join(" ")),
                        format!("{}/{}", v.running, v.instances),
                    ]
                })
                .collect();
            output::table(&["app", "dns name", "srv", "service path", "vips", "running"], rows);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn apps_get_their_names_paths_and_counts() {
        let apps = vec![
            json!({"id": "/grp/web", "instances": 3, "tasksRunning": 2,
                   "portDefinitions": [{"port": 0, "protocol": "tcp"}, {"port": 0, "protocol": "udp,tcp"}],
                   "labels": {"DCOS_SERVICE_NAME": "web"}}),
            json!({"id": "/batch", "instances": 0, "tasksRunning": 0, "portDefinitions": [], "labels": {}}),
            json!({"id": "/My_App", "instances": 1, "portDefinitions": [{"port": 0}]}),
            json!({"no": "id"}),
        ];
        let vips = vec![VipRoute {
            vip: "127.77.0.9:80".into(),
            protocol: "tcp".into(),
            names: vec!["web.marathon.l4lb.thisdcos.directory".into()],
            apps: vec!["/grp/web".into()],
            backends: vec![],
        }];
        let v = views(&apps, &vips, "Mesos.");
        assert_eq!(v.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec!["/My_App", "/batch", "/grp/web"]);
        let web = &v[2];
        assert_eq!(web.dns, "web-grp.marathon.mesos");
        assert_eq!(web.srv, vec!["_web-grp._tcp.marathon.mesos", "_web-grp._udp.marathon.mesos"]);
        assert_eq!(web.service_path.as_deref(), Some("/service/web/"));
        assert_eq!((web.running, web.instances), (2, 3));
        assert_eq!(web.vips, vec!["web.marathon.l4lb.thisdcos.directory:80 (127.77.0.9:80)"]);
        assert!(v[0].vips.is_empty());
        assert_eq!(v[1].srv, Vec::<String>::new());
        assert_eq!(v[1].service_path, None);
        assert_eq!(v[0].dns, "my-app.marathon.mesos");
        assert_eq!(v[0].srv, vec!["_my-app._tcp.marathon.mesos"]);
    }
}
