//! Images on `medos dev` through the CLI: `medos image load` of a busybox `docker save` archive
//! built in the test (no registry), `medos image list`, a task in the image's root filesystem
//! that runs with limits and streams its log, and `medos image remove`.

use std::time::Duration;

use medos::image::testing::{ArchiveFormat, ImageSpec, busybox_image};

use crate::support::{DevCluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busybox_image_task_runs_on_dev_from_a_loaded_archive() {
    let cluster = DevCluster::start_with_agents(1, 1).await;
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("busybox.tar");
    busybox_image(&archive, &ImageSpec::new("busybox:e2e", ArchiveFormat::DockerSave)).unwrap();

    cluster.cli(&["image", "load", archive.to_str().unwrap()]).await.success("image load");
    let list = cluster.cli(&["--json", "image", "list"]).await.success("image list").json();
    assert_eq!(list[0]["names"][0], "busybox:e2e", "{list}");

    let run = cluster
        .cli(&["task", "run", "--image", "busybox:e2e", "--mem", "32", "--wait", "--", "ls /; echo in-image; exit 4"])
        .await;
    assert_eq!(run.status.code(), Some(4), "the task's exit code: {}", run.stderr);
    let task_id = run.stdout_text().lines().next().unwrap().to_string();
    let log = eventually("the task's log", Duration::from_secs(20), || {
        let id = task_id.clone();
        let cluster = &cluster;
        async move {
            let out = cluster.cli(&["task", "log", &id, "--lines", "50"]).await;
            let text = out.stdout_text();
            if out.status.success() && text.contains("in-image") {
                Ok(text)
            } else {
                Err(format!("{text}{}", out.stderr))
            }
        }
    })
    .await;
    assert!(log.lines().any(|l| l == "bin"), "the image's root: {log}");
    assert!(!log.lines().any(|l| l == "usr" || l == "boot"), "not the host's root: {log}");

    let missing = cluster.cli(&["task", "run", "--image", "nothing:here", "--", "true"]).await;
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("medos image load"), "{}", missing.stderr);

    cluster.cli(&["image", "remove", "busybox:e2e"]).await.success("image remove");
    let list = cluster.cli(&["--json", "image", "list"]).await.success("image list").json();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}
