//! Images end to end in one process with real containers (root): an image archive built from
//! busybox is verified and uploaded, every master holds its blobs, an agent fetches and
//! unpacks the layers and runs a task inside the image's root filesystem.

mod support;

use std::sync::Arc;
use std::time::Duration;

use medos::agent::containers::{ImageSource, RuntimeContainers};
use medos::agent::runtime::{InitProgram, LinuxRuntime, RuntimeConfig};
use medos::api::tasks::RunTask;
use medos::core::TaskState;
use medos::image::testing::{ArchiveFormat, ImageSpec, busybox_image};
use medos::image::{Digest, LayerCache};
use support::{TestCluster, fast_tuning, wait_for};

async fn real_agent(cluster: &TestCluster, name: &str) -> medos::agent::RunningAgent {
    let config = cluster.agent_config(name);
    let mut runtime_config = RuntimeConfig::new(config.work_dir.join("runtime"));
    runtime_config.init = InitProgram::Subcommand { path: env!("CARGO_BIN_EXE_medos").into() };
    runtime_config.subreaper = true;
    let runtime = LinuxRuntime::new(runtime_config).expect("the runtime needs root");
    let images = ImageSource {
        http: reqwest::Client::builder()
            .use_preconfigured_tls(config.tls.mutual_client_config().unwrap())
            .build()
            .unwrap(),
        masters: config.masters.clone(),
        layers: LayerCache::new(config.work_dir.join("layers")).unwrap(),
        work_dir: config.work_dir.clone(),
    };
    let containers = RuntimeContainers::new(Arc::new(runtime), config.hostname.clone(), Some(images)).await.unwrap();
    medos::agent::start(config, Arc::new(containers)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_task_runs_in_the_images_root_filesystem() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("busybox.tar");
    busybox_image(&archive, &ImageSpec::new("busybox:test", ArchiveFormat::DockerSave)).unwrap();

    let loaded =
        medos::cli::image::load_archive(&client, &archive, None, &scratch.path().join("staging"), true).await.unwrap();
    assert_eq!(loaded.len(), 1);
    let image = loaded[0].clone();
    assert_eq!(image.names, ["busybox:test"]);
    // Every master holds every blob once the image is registered.
    for node in cluster.nodes.values() {
        let m = &node.running.as_ref().unwrap().master;
        for blob in image.blobs() {
            assert!(m.blobs.has(&Digest::parse(&blob, "d").unwrap()), "{} lacks {blob}", m.name);
        }
    }
    // Loading again uploads nothing new and keeps one image.
    medos::cli::image::load_archive(&client, &archive, Some("busybox:again".into()), &scratch.path().join("s2"), true)
        .await
        .unwrap();
    let images = client.images().await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].names, ["busybox:test", "busybox:again"], "loading with --tag adds a name");

    let agent = real_agent(&cluster, "agent-img").await;
    let m = cluster.any_master();
    wait_for("the agent to register", Duration::from_secs(20), || {
        let m = m.clone();
        async move { (!m.state.read().unwrap().agents.is_empty()).then_some(()) }
    })
    .await;
    let request: RunTask = serde_json::from_value(serde_json::json!({
        "name": "inside",
        "image": "busybox:again",
        "cmd": "ls / > $MESOS_SANDBOX/root.txt; echo written > /proof; cat /proof; hostname",
        "mem": 64
    }))
    .unwrap();
    let task = client.run_task(&request).await.unwrap();
    let master = cluster.any_master();
    let done = wait_for("the image task to end", Duration::from_secs(60), || {
        let m = master.clone();
        let id = task.id.clone();
        async move { m.state.read().unwrap().tasks.get(&id).filter(|t| t.state.is_terminal()).cloned() }
    })
    .await;
    assert_eq!(done.state, TaskState::TASK_FINISHED, "{}", done.message);
    let sandbox = cluster.agent_config("agent-img").work_dir.join("sandboxes").join(&task.id);
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert_eq!(stdout, "written\ninside\n");
    let root = std::fs::read_to_string(sandbox.join("root.txt")).unwrap();
    assert!(root.lines().any(|l| l == "bin"), "{root}");
    assert!(!root.lines().any(|l| l == "work" || l == "usr" || l == "boot"), "the host's root is not visible: {root}");
    assert!(!std::path::Path::new("/proof").exists(), "writes stay in the task's layer");

    // An unknown image is refused at launch with a clear message.
    let bad: RunTask = serde_json::from_value(serde_json::json!({ "image": "nope:1", "cmd": "true" })).unwrap();
    let err = client.run_task(&bad).await.unwrap_err();
    assert!(err.to_string().contains("medos image load"), "{err}");
    agent.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_match_its_digest_is_refused() {
    let cluster = TestCluster::start(1, fast_tuning()).await;
    let client = cluster.client("m1").await;
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("blob");
    std::fs::write(&file, b"not what the digest says").unwrap();
    let claimed = Digest::of(b"something else").to_string();
    let err = client.upload_blob(&claimed, &file, |_| {}).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("digest"), "{err}");
    assert!(!client.has_blob(&claimed).await.unwrap());
    // Registering an image whose blobs are missing names them.
    let archive = scratch.path().join("img.tar");
    busybox_image(&archive, &ImageSpec::new("busybox:x", ArchiveFormat::OciLayout)).unwrap();
    let store = medos::image::BlobStore::new(scratch.path().join("local")).unwrap();
    let image = medos::image::import_archive(&store, &archive, &mut |_| {}).unwrap().remove(0);
    let err = client.register_image(&medos::api::images::RegisterImage { image, tag: None }).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("upload these blobs first"), "{err}");
    cluster.shutdown().await;
}
