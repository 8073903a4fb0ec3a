//! An air-gapped install on `medos dev`: the default repository's `httpd` package and the
//! busybox image it runs travel in one bundle (`medos package bundle`), are added to a cluster
//! that has no repository and no image (`medos package add`), install with options, serve
//! through `/service/<name>/`, show in `medos package list`, and uninstall cleanly.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;

use crate::support::{CONDITION_TIMEOUT, DevCluster, eventually, shared_slot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_installs_a_package_and_its_image_on_a_cluster_without_a_network() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: agents need root for namespaces and cgroups");
        return;
    }
    let _slot = shared_slot().await;
    let c = DevCluster::start_with_agents(1, 1).await;
    let client = c.client();
    let package_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("universe/packages/H/httpd/0");
    let archive = c.dir.join("busybox.tar");
    let bundle = c.dir.join("httpd.bundle");
    let (archive_s, bundle_s) = (archive.to_str().unwrap(), bundle.to_str().unwrap());

    c.cli(&["image", "build-busybox", archive_s]).await.success("medos image build-busybox");
    let image_flag = format!("medos/busybox:1={archive_s}");
    c.cli(&["package", "bundle", package_dir.to_str().unwrap(), "--image", &image_flag, "--output", bundle_s])
        .await
        .success("medos package bundle");

    // A damaged copy is refused before anything reaches the cluster.
    let mut damaged = std::fs::read(&bundle).unwrap();
    let at = damaged.len() / 2;
    damaged[at] ^= 0xff;
    let damaged_path = c.dir.join("damaged.bundle");
    std::fs::write(&damaged_path, &damaged).unwrap();
    let refused = c.cli(&["package", "add", damaged_path.to_str().unwrap()]).await;
    assert!(!refused.status.success(), "a damaged bundle must be refused: {}", refused.stdout_text());
    let images = c.cli(&["--json", "image", "list"]).await.success("image list").json();
    assert_eq!(images, serde_json::json!([]), "nothing uploaded from a damaged bundle");

    c.cli(&["package", "add", bundle_s]).await.success("medos package add");
    let images = c.cli(&["--json", "image", "list"]).await.success("image list").json();
    assert_eq!(images[0]["names"][0], "medos/busybox:1", "{images}");

    let options = c.dir.join("options.json");
    std::fs::write(
        &options,
        r#"{"service": {"name": "offline-web", "instances": 1}, "httpd": {"message": "no network needed"}}"#,
    )
    .unwrap();
    c.cli(&["package", "install", "httpd", "--options", options.to_str().unwrap(), "--yes"])
        .await
        .success("medos package install");

    let body = eventually("/service/offline-web/ to answer", CONDITION_TIMEOUT, || async {
        let resp = client.send(Method::GET, "/service/offline-web/", None, false).await.map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("status {}", resp.status()));
        }
        resp.text().await.map_err(|e| e.to_string())
    })
    .await;
    assert!(body.starts_with("no network needed "), "the page: {body:?}");

    let listed = c.cli(&["--json", "package", "list"]).await.success("package list").json();
    let text = listed.to_string();
    assert!(text.contains("offline-web") && text.contains("httpd"), "{listed}");

    c.cli(&["package", "uninstall", "httpd", "--app-id", "offline-web", "--yes"]).await.success("package uninstall");
    eventually("the app to be gone", Duration::from_secs(30), || async {
        match client.marathon(Method::GET, "/v2/apps/offline-web", None).await {
            Err(e) if e.to_string().contains("404") || e.to_string().contains("does not exist") => Ok(()),
            other => Err(format!("still there: {other:?}")),
        }
    })
    .await;
}
