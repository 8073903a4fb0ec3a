//! Leader loss under load: kill -9 of the leader, and repeated kills and restarts of any
//! master, with concurrent writers and linearizable readers whose history must check out.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{self, Event, WriteResult};
use crate::support::{CONDITION_TIMEOUT, DevCluster, exclusive_slot, shared_slot};
use crate::workload::{Keys, Spec, Workload, keys_of, read_finals};

/// The failover bound asserted by default. openraft 0.9 lets a follower campaign only after
/// the leader lease (`election_max_ms`, 1.4 s) plus its own election timeout (drawn once per
/// process from 0.7-1.4 s), so a clean failover takes 2.2-2.7 s here; a split vote between the
/// two survivors (about one run in four) adds another timeout, ~4 s in all. 3 s would be
/// flaky, so the bound is 5 s and the measured time is printed.
/// `MEDOS_E2E_FAILOVER_LIMIT_MS` overrides it.
const FAILOVER_LIMIT: Duration = Duration::from_millis(5000);

fn failover_limit() -> Duration {
    std::env::var("MEDOS_E2E_FAILOVER_LIMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(FAILOVER_LIMIT)
}

fn shared_keys(prefix: &str, n: usize) -> Keys {
    Keys::Shared((0..n).map(|i| format!("{prefix}/{i}")).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_under_write_load_fails_over_quickly_and_loses_nothing() {
    // Alone on the machine: this test measures time.
    let _slot = exclusive_slot().await;
    let mut cluster = DevCluster::start(3).await;
    let workload = Workload::start(&cluster, Spec { writers: 4, readers: 2, keys: shared_keys("failover", 8) });
    workload.wait_for_acked_writes(50, Instant::now(), CONDITION_TIMEOUT).await;

    let old_leader = cluster.leader().await;
    let term_before = cluster.status_of(&old_leader).await.expect("leader status").term;
    let killed_at = cluster.kill9(&old_leader);
    // Recovered: a write that was sent after the kill has been acknowledged.
    workload.wait_for_acked_writes(1, killed_at, Duration::from_secs(30)).await;
    let recovered_after = workload.history.inspect(|ops| {
        ops.iter()
            .filter(|op| {
                op.start >= killed_at && matches!(op.event, Event::Write { result: WriteResult::Ok { .. }, .. })
            })
            .map(|op| op.end - killed_at)
            .min()
            .expect("an acknowledged write after the kill")
    });
    println!("failover: first write acknowledged {recovered_after:?} after kill -9 of the leader {old_leader}");
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader, "a surviving master leads");
    let term_after = cluster.status_of(&new_leader).await.expect("leader status").term;
    println!("failover: {new_leader} leads in term {term_after} (the killed leader led term {term_before})");

    // Bring the old leader back under load and let it catch up.
    let restarted_at = Instant::now();
    cluster.restart(&old_leader);
    cluster.wait_healthy(&old_leader).await;
    workload.wait_for_acked_writes(50, restarted_at, CONDITION_TIMEOUT).await;
    let ops = workload.stop().await;
    cluster.wait_all_caught_up().await;

    let finals = read_finals(&cluster, &keys_of(&ops)).await;
    let report = history::check(&ops, &finals);
    println!("failover history: {:?}", report.stats);
    report.assert_ok();
    assert!(report.stats.reads_ok > 0, "the readers read something");
    let limit = failover_limit();
    assert!(
        recovered_after <= limit,
        "writes resumed {recovered_after:?} after the leader was killed (limit {limit:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_stays_linearizable_while_masters_are_killed_and_restarted() {
    let _slot = shared_slot().await;
    let seed = std::env::var("MEDOS_E2E_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    });
    println!("chaos seed {seed} (rerun with MEDOS_E2E_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut cluster = DevCluster::start(3).await;
    // Few keys, so that reads and writes on the same key overlap a lot.
    let workload = Workload::start(&cluster, Spec { writers: 3, readers: 3, keys: shared_keys("chaos", 3) });
    workload.wait_for_acked_writes(20, Instant::now(), CONDITION_TIMEOUT).await;

    let chaos_for = Duration::from_secs(22);
    let began = Instant::now();
    let mut rounds = Vec::new();
    while began.elapsed() < chaos_for {
        // Half the time the leader, otherwise any master; one at a time.
        let victim = if rng.random_bool(0.5) {
            cluster.leader().await
        } else {
            cluster.names()[rng.random_range(0..cluster.masters.len())].clone()
        };
        let killed_at = cluster.kill9(&victim);
        // The fault schedule: how long the victim stays down.
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        cluster.restart(&victim);
        cluster.wait_healthy(&victim).await;
        // Progress between faults: the cluster takes writes again before the next kill.
        workload.wait_for_acked_writes(5, killed_at, CONDITION_TIMEOUT).await;
        rounds.push(victim);
    }
    let ops = workload.stop().await;
    cluster.wait_all_caught_up().await;
    let finals = read_finals(&cluster, &keys_of(&ops)).await;
    let report = history::check(&ops, &finals);
    println!("chaos: {} kills ({rounds:?}), {:?}", rounds.len(), report.stats);
    report.assert_ok();
    assert!(rounds.len() >= 3, "at least 3 kill/restart rounds ran: {rounds:?}");
    assert!(
        report.stats.writes_ok >= 50 && report.stats.reads_ok >= 50,
        "too little work to mean anything: {:?}",
        report.stats
    );
}
