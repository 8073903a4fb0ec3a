//! Durability: SIGKILL of every master mid-burst loses no acknowledged write (medos fsyncs
//! before acknowledging; sled alone would lose unflushed writes), and a graceful restart of
//! the whole cluster keeps its state and identity.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::history::{self, Event, WriteResult};
use crate::support::{CONDITION_TIMEOUT, DevCluster, shared_slot};
use crate::workload::{Keys, Spec, Workload, keys_of, list_finals};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_of_all_masters() {
    let _slot = shared_slot().await;
    let mut cluster = DevCluster::start(3).await;
    let workload = Workload::start(&cluster, Spec { writers: 8, readers: 0, keys: Keys::Unique("crash/".into()) });
    workload.wait_for_acked_writes(150, Instant::now(), CONDITION_TIMEOUT).await;

    let names = cluster.names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let killed_at = cluster.kill9_all(&names);
    let ops = workload.stop().await;
    let in_flight = ops.iter().filter(|op| op.start < killed_at && op.end > killed_at).count();
    println!("crash: killed all masters with {in_flight} write(s) in flight");

    for name in &names {
        cluster.restart(name);
    }
    cluster.wait_all_caught_up().await;

    let keys = keys_of(&ops);
    let finals = list_finals(&cluster, "crash/", &keys).await;
    let phantom_keys: Vec<&String> = finals.keys().filter(|k| !keys.contains(k)).collect();
    assert!(phantom_keys.is_empty(), "keys nobody wrote: {phantom_keys:?}");
    let report = history::check(&ops, &finals);
    println!("crash history: {:?}", report.stats);
    report.assert_ok();
    // Spelled out: every acknowledged write is there, with its revision.
    let mut missing = Vec::new();
    for op in &ops {
        if let Event::Write { value, result: WriteResult::Ok { revision } } = &op.event {
            match &finals[&op.key] {
                Some(seen) if seen.value == *value && seen.mod_revision == *revision => {}
                other => missing.push(format!("{}={value}@{revision}: {other:?}", op.key)),
            }
        }
    }
    assert!(missing.is_empty(), "{} acknowledged write(s) lost: {missing:?}", missing.len());
    assert!(report.stats.writes_ok >= 150);

    // And the cluster takes writes again.
    cluster.client().kv_put("crash-after", b"ok", None).await.expect("a write after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_all_masters_keeps_the_state_and_the_cluster_id() {
    let _slot = shared_slot().await;
    let mut cluster = DevCluster::start(3).await;
    let client = cluster.client();
    let mut written = BTreeMap::new();
    for i in 0..20 {
        let key = format!("restart/{i}");
        let value = format!("value {i}");
        let r = client.kv_put(&key, value.as_bytes(), None).await.expect("put");
        written.insert(key, (value, r.revision));
    }
    let cluster_id = cluster.cluster_id.clone();
    let ports_before = cluster.urls();

    let status = cluster.stop_dev().await;
    assert!(status.success(), "medos dev exits 0 on SIGTERM, got {status}");
    cluster.restart_dev().await; // asserts the readiness line names the same cluster id
    assert_eq!(cluster.cluster_id, cluster_id);
    assert_eq!(cluster.urls(), ports_before, "the masters keep their addresses");

    // The old token still works (the token secret is replicated state), and so does the data.
    let client = cluster.client();
    let meta = client.metadata().await.expect("metadata");
    assert_eq!(meta["CLUSTER_ID"], cluster_id.as_str());
    let items = client.kv_list("restart/", false).await.expect("list");
    let found: BTreeMap<String, (String, u64)> =
        items.into_iter().map(|i| (i.key, (String::from_utf8_lossy(&i.value).into_owned(), i.mod_revision))).collect();
    assert_eq!(found, written, "every key survives a restart with its value and revision");
    let after = client.kv_put("restart/after", b"x", None).await.expect("a write after the restart");
    let highest = written.values().map(|(_, r)| *r).max().unwrap();
    assert!(after.revision > highest, "revisions keep growing: {} after {highest}", after.revision);
    let status = cluster.status_of("master-1").await.expect("status");
    assert_eq!(status.cluster_id.as_deref(), Some(cluster_id.as_str()));
    assert_eq!(status.members.len(), 3);
}
