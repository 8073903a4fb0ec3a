//! In-process cluster tests: election, forwarding, partitions, restarts, snapshots and
//! membership changes on real masters (Raft, sled, TLS, HTTP) inside one process.

mod support;

use std::time::Duration;

use medos::api::client::ClientError;
use support::{TestCluster, fast_tuning, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_masters_elect_one_leader_and_replicate_writes() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let written = client.kv_put("greeting", b"hello", None).await.unwrap();
    for name in ["m1", "m2", "m3"] {
        let node = cluster.nodes[name].running.as_ref().unwrap().master.clone();
        wait_for("replication to every master", Duration::from_secs(10), || {
            let node = node.clone();
            async move {
                let state = node.state.read().unwrap();
                let entry = state.kv.get("greeting")?;
                (entry.value == b"hello" && entry.mod_revision == written.revision).then_some(())
            }
        })
        .await;
    }
    let status = client.cluster_status().await.unwrap();
    assert_eq!(status.leader.as_deref(), Some(leader.as_str()));
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 3);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_forward_writes_and_serve_linearizable_reads() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let leader = cluster.wait_leader().await;
    let followers: Vec<&str> = ["m1", "m2", "m3"].into_iter().filter(|n| *n != leader).collect();
    let writer = cluster.client(followers[0]).await;
    let reader = cluster.client(followers[1]).await;
    for i in 0..20u64 {
        let value = format!("v{i}");
        let w = writer.kv_put("counter", value.as_bytes(), None).await.unwrap();
        // A linearizable read on another follower right after the ack must see the write.
        let item = reader.kv_get("counter", false).await.unwrap().expect("key exists");
        assert_eq!(item.value, value.as_bytes(), "stale read on {}", followers[1]);
        assert!(item.mod_revision >= w.revision);
    }
    // Compare-and-swap through a follower.
    let current = reader.kv_get("counter", false).await.unwrap().unwrap().mod_revision;
    let err = writer.kv_put("counter", b"x", Some(current - 1)).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    writer.kv_put("counter", b"x", Some(current)).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_leader_cannot_commit_or_serve_linearizable_reads() {
    let cluster = TestCluster::start(3, fast_tuning()).await;
    let old = cluster.wait_leader().await;
    let old_client = cluster.client(&old).await;
    old_client.kv_put("k", b"before", None).await.unwrap();

    cluster.faults.isolate(cluster.id(&old));
    let err = old_client.kv_put("k", b"minority", None).await.unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 503, .. }), "minority write must fail: {err}");
    let err = old_client.kv_get("k", false).await.unwrap_err();
    assert!(matches!(err, ClientError::Api { status: 503, .. }), "minority linearizable read must fail: {err}");

    let majority: Vec<&str> = ["m1", "m2", "m3"].into_iter().filter(|n| *n != old).collect();
    let new = cluster.wait_leader_among(&majority).await;
    assert_ne!(new, old);
    let new_client = cluster.client(&new).await;
    new_client.kv_put("k", b"majority", None).await.unwrap();

    cluster.faults.heal();
    cluster.wait_leader().await;
    let item = wait_for("the old leader to catch up", Duration::from_secs(20), || async {
        old_client.kv_get("k", false).await.ok().flatten().filter(|i| i.value == b"majority")
    })
    .await;
    assert_eq!(item.value, b"majority", "the minority write must never appear");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_every_master_keeps_the_state() {
    let mut cluster = TestCluster::start(3, fast_tuning()).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    for i in 0..30 {
        client.kv_put(&format!("key/{i}"), format!("{i}").as_bytes(), None).await.unwrap();
    }
    let cluster_id = cluster.nodes["m1"].running.as_ref().unwrap().master.identity().cluster_id;
    for name in ["m1", "m2", "m3"] {
        cluster.stop(name).await;
    }
    for name in ["m1", "m2", "m3"] {
        cluster.restart(name).await;
    }
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let items = client.kv_list("key/", false).await.unwrap();
    assert_eq!(items.len(), 30);
    assert_eq!(cluster.nodes["m2"].running.as_ref().unwrap().master.identity().cluster_id, cluster_id);
    client.kv_put("after", b"restart", None).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_master_catches_up_by_snapshot() {
    let mut tuning = fast_tuning();
    tuning.snapshot_every = 40;
    tuning.keep_after_snapshot = 5;
    let mut cluster = TestCluster::start(3, tuning).await;
    let leader = cluster.wait_leader().await;
    let laggard = ["m1", "m2", "m3"].into_iter().find(|n| *n != leader).unwrap().to_string();
    cluster.stop(&laggard).await;

    let client = cluster.client(&leader).await;
    for i in 0..150 {
        client.kv_put(&format!("bulk/{i}"), b"x", None).await.unwrap();
    }
    let leader_master = cluster.nodes[&leader].running.as_ref().unwrap().master.clone();
    wait_for("the leader to snapshot and purge its log", Duration::from_secs(20), || {
        let m = leader_master.clone();
        async move {
            let metrics = m.raft.metrics().borrow().clone();
            (metrics.snapshot.is_some() && metrics.purged.is_some_and(|p| p.index > 10)).then_some(())
        }
    })
    .await;
    let stored = leader_master.log_store.stored_entries().unwrap();
    assert!(stored < 150, "the log must be bounded after purging, still {stored} entries");

    cluster.restart(&laggard).await;
    let lag_master = cluster.nodes[&laggard].running.as_ref().unwrap().master.clone();
    wait_for("the laggard to install a snapshot and catch up", Duration::from_secs(30), || {
        let m = lag_master.clone();
        async move {
            let metrics = m.raft.metrics().borrow().clone();
            let caught_up = m.state.read().unwrap().kv.get("bulk/149").is_some();
            (caught_up && metrics.snapshot.is_some()).then_some(())
        }
    })
    .await;
    assert_eq!(lag_master.state.read().unwrap().kv.list("bulk/").count(), 150);
    cluster.shutdown().await;
}

async fn voters(cluster: &TestCluster, via: &str) -> Vec<String> {
    let client = cluster.client(via).await;
    let status = client.cluster_status().await.unwrap();
    let mut names: Vec<String> = status.members.iter().filter(|m| m.voter).map(|m| m.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_grows_from_one_to_five_and_shrinks_to_three() {
    let mut cluster = TestCluster::start(1, fast_tuning()).await;
    let client = cluster.client("m1").await;
    client.kv_put("before", b"growth", None).await.unwrap();
    for name in ["m2", "m3", "m4", "m5"] {
        let api = cluster.spawn_joiner(name).await;
        let added = client.add_master(&api).await.unwrap();
        assert!(added.voter);
        assert_eq!(added.name, name);
    }
    assert_eq!(voters(&cluster, "m1").await, ["m1", "m2", "m3", "m4", "m5"]);
    // A joiner received the earlier state by replication.
    let m5 = cluster.nodes["m5"].running.as_ref().unwrap().master.clone();
    wait_for("m5 to hold earlier writes", Duration::from_secs(10), || {
        let m5 = m5.clone();
        async move { m5.state.read().unwrap().kv.get("before").map(|_| ()) }
    })
    .await;

    // Shrink to three through a follower (the request is forwarded to the leader).
    let leader = cluster.wait_leader().await;
    let via = ["m1", "m2", "m3"].into_iter().find(|n| *n != leader).unwrap();
    let follower_client = cluster.client(via).await;
    for name in ["m4", "m5"] {
        follower_client.remove_master(name).await.unwrap();
    }
    cluster.stop("m4").await;
    cluster.stop("m5").await;
    assert_eq!(voters(&cluster, via).await, ["m1", "m2", "m3"]);
    let leader = cluster.wait_leader().await;
    cluster.client(&leader).await.kv_put("after", b"shrink", None).await.unwrap();

    // Unknown names are reported, not ignored.
    let err = follower_client.remove_master("nobody").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_master_is_replaced_without_losing_quorum() {
    let mut cluster = TestCluster::start(3, fast_tuning()).await;
    let leader = cluster.wait_leader().await;
    let dead = ["m1", "m2", "m3"].into_iter().find(|n| *n != leader).unwrap().to_string();
    cluster.crash(&dead);
    let client = cluster.client(&leader).await;
    client.remove_master(&dead).await.unwrap();
    let api = cluster.spawn_joiner("m9").await;
    client.add_master(&api).await.unwrap();
    let mut expected: Vec<String> =
        ["m1", "m2", "m3", "m9"].iter().filter(|n| **n != dead).map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(voters(&cluster, &leader).await, expected);
    // With the replacement in place, losing one more master still leaves a majority.
    let other = expected.iter().find(|n| **n != leader && n.as_str() != "m9").unwrap().clone();
    cluster.crash(&other);
    client.kv_put("still", b"writable", None).await.unwrap();
    cluster.shutdown().await;
}

/// A leader that is stopped and restarted before the others notice must not resume its old
/// term with the commit index it last persisted: that write is not fsync'd, so it can lag
/// what the leader had committed and acknowledged, and a read barrier on the restored leader
/// would pass (the followers still accept its term) and serve old data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_leader_rejoins_as_a_follower_and_serves_no_stale_read() {
    use medos::master::engine::{Engine, SledEngine};
    use medos::master::store::LogStore;
    use openraft::storage::{RaftLogReader, RaftLogStorage};

    // Followers wait seconds before electing, so the leader is back within its own term.
    let tuning = medos::master::config::RaftTuning { election_min_ms: 6_000, election_max_ms: 7_000, ..fast_tuning() };
    let mut cluster = TestCluster::start(3, tuning).await;
    let leader = cluster.wait_leader().await;
    let client = cluster.client(&leader).await;
    let old = client.kv_put("register", b"old", None).await.unwrap().revision;
    let mut latest = old;
    for i in 0..20 {
        latest = client.kv_put("register", format!("new{i}").as_bytes(), None).await.unwrap().revision;
    }
    let term = |cluster: &TestCluster, name: &str| {
        cluster.nodes[name].running.as_ref().map(|r| r.master.raft.metrics().borrow().current_term)
    };
    let old_term = term(&cluster, &leader).unwrap();
    cluster.stop(&leader).await;

    // The persisted commit index falls back to the first write, as after a crash that lost
    // the last unflushed updates of it.
    let db = cluster.data_dir(&leader).join("raft.sled");
    {
        // The stopped master's Raft core releases the database asynchronously.
        let engine = wait_for("the data dir to be released", Duration::from_secs(20), || async {
            SledEngine::open(&db, 1 << 20).ok().map(std::sync::Arc::new)
        })
        .await;
        let mut store = LogStore::new(engine.clone());
        let entry = store.try_get_log_entries(old..=old).await.unwrap().pop().expect("the first write is in the log");
        store.save_committed(Some(entry.log_id)).await.unwrap();
        engine.flush().await.unwrap();
    }
    cluster.restart(&leader).await;

    // It rejoins as a follower: leadership goes to an election in a later term (openraft
    // alone would restore it as leader of its old term at once).
    let new_leader = cluster.wait_leader().await;
    let new_term = term(&cluster, &new_leader).unwrap();
    assert!(new_term > old_term, "{new_leader} leads in term {new_term}, the term {leader} led before its restart");
    let item = wait_for("a linearizable read through the restarted master", Duration::from_secs(30), || async {
        client.kv_get("register", false).await.ok().flatten()
    })
    .await;
    assert_eq!(
        String::from_utf8_lossy(&item.value),
        "new19",
        "the restarted master served revision {} after revision {latest} was acknowledged",
        item.mod_revision
    );
    cluster.shutdown().await;
}
