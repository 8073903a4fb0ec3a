//! Membership changes on real processes: 1 -> 3 -> 5 -> 3 masters with `medos master add` and
//! `medos master remove`, and replacing a dead master.

use crate::support::{CONDITION_TIMEOUT, DevCluster, eventually, shared_slot};

/// Waits until `medos --json cluster status` and every running master agree that the voters
/// are exactly `expected` and one of them leads.
async fn assert_members(cluster: &DevCluster, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    eventually(&format!("membership {expected:?}"), CONDITION_TIMEOUT, || async {
        let out = cluster.cli(&["--json", "cluster", "status"]).await;
        if !out.status.success() {
            return Err(format!("cluster status failed: {}", out.stderr));
        }
        let status = out.json();
        let mut names: Vec<String> = status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["name"].as_str().unwrap_or("").to_string())
            .collect();
        names.sort();
        if names != expected {
            return Err(format!("CLI shows members {names:?}"));
        }
        let all_voters = status["members"].as_array().into_iter().flatten().all(|m| m["voter"] == true);
        if !all_voters {
            return Err(format!("not all voters yet: {}", status["members"]));
        }
        let leader = status["leader"].as_str().unwrap_or_default().to_string();
        if !expected.contains(&leader) {
            return Err(format!("leader {leader:?} is not a member"));
        }
        for name in &expected {
            let s = cluster.status_of(name).await?;
            let mut theirs: Vec<String> = s.members.iter().filter(|m| m.voter).map(|m| m.name.clone()).collect();
            theirs.sort();
            if theirs != expected {
                return Err(format!("{name} sees voters {theirs:?}"));
            }
        }
        Ok(())
    })
    .await
}

/// A write through the CLI and one through each member alone, each read back linearizably
/// through every member.
async fn assert_writes_work(cluster: &DevCluster, tag: &str) {
    let key = format!("members/{tag}");
    cluster.cli(&["kv", "put", &key, tag]).await.success("medos kv put");
    let out = cluster.cli(&["kv", "get", &key]).await.success("medos kv get");
    assert_eq!(out.stdout, tag.as_bytes());
    let running: Vec<String> = cluster.masters.iter().filter(|m| m.is_running()).map(|m| m.name.clone()).collect();
    for name in &running {
        let key = format!("members/{tag}/via-{name}");
        let written = cluster
            .client_for(name)
            .kv_put(&key, name.as_bytes(), None)
            .await
            .unwrap_or_else(|e| panic!("write via {name}: {e}"));
        for reader in &running {
            let item = cluster
                .client_for(reader)
                .kv_get(&key, false)
                .await
                .unwrap_or_else(|e| panic!("read via {reader}: {e}"))
                .unwrap_or_else(|| panic!("{key} missing on {reader}"));
            assert_eq!((item.value.as_slice(), item.mod_revision), (name.as_bytes(), written.revision));
        }
    }
}

async fn add(cluster: &mut DevCluster, name: &str) {
    let url = cluster.start_new_master(name).await;
    let out = cluster.cli(&["--json", "master", "add", &url]).await.success("medos master add");
    let added = out.json();
    assert_eq!(added["name"], name, "master add answers with the added master");
    assert_eq!(added["voter"], true);
}

async fn remove(cluster: &mut DevCluster, name: &str) {
    let out = cluster.cli(&["--json", "master", "remove", name]).await.success("medos master remove");
    assert_eq!(out.json()["name"], name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_are_added_removed_and_replaced() {
    let _slot = shared_slot().await;
    let mut cluster = DevCluster::start(1).await;
    assert_members(&cluster, &["master-1"]).await;
    assert_writes_work(&cluster, "one").await;

    // 1 -> 3
    add(&mut cluster, "master-2").await;
    add(&mut cluster, "master-3").await;
    assert_members(&cluster, &["master-1", "master-2", "master-3"]).await;
    assert_writes_work(&cluster, "three").await;

    // 3 -> 5
    add(&mut cluster, "master-4").await;
    add(&mut cluster, "master-5").await;
    assert_members(&cluster, &["master-1", "master-2", "master-3", "master-4", "master-5"]).await;
    assert_writes_work(&cluster, "five").await;

    // 5 -> 3: remove, then stop the processes
    remove(&mut cluster, "master-4").await;
    remove(&mut cluster, "master-5").await;
    assert_members(&cluster, &["master-1", "master-2", "master-3"]).await;
    for name in ["master-4", "master-5"] {
        cluster.stop_master(name).await;
        cluster.forget(name);
    }
    assert_writes_work(&cluster, "three-again").await;

    // Replace a dead master: kill one of three, remove it, add a fresh one.
    cluster.kill9("master-3");
    assert_writes_work(&cluster, "two-of-three").await;
    remove(&mut cluster, "master-3").await;
    cluster.forget("master-3");
    assert_members(&cluster, &["master-1", "master-2"]).await;
    add(&mut cluster, "master-6").await;
    assert_members(&cluster, &["master-1", "master-2", "master-6"]).await;
    assert_writes_work(&cluster, "replaced").await;
}
