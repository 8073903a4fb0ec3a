//! A history checker for KV writes and linearizable reads.
//!
//! Clients record every operation with its start and end instants, its key, the value it
//! wrote or read, and its outcome. Writes are `Ok` (acknowledged, with the revision the
//! cluster gave them), `Failed` (certainly without effect: the request never reached a
//! master, or was refused) or `Indeterminate` (the answer was lost: it may or may not have
//! been applied). Every written value must be unique per key, so a read names the write it
//! observed.
//!
//! Revisions are Raft log indexes: globally unique and increasing in commit order. Each key is
//! a register, and the checker tests what linearizability implies for it:
//! - **no lost write**: after the run, a linearizable read of each key returns the write with
//!   the highest acknowledged revision, or a later (higher revision) indeterminate write;
//! - **no stale read**: a read that started after a revision `r` of its key became visible
//!   (a write to the key was acknowledged with `r`, or another read returned `r`) returns a
//!   revision `>= r`; likewise a write that started after that gets a revision `> r`;
//! - **no phantom**: every value read was written by an acknowledged or indeterminate write
//!   that had started before the read ended, and its `mod_revision` is that write's revision;
//! - acknowledged revisions are unique across all keys (a reused log index means a committed
//!   entry was overwritten).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

/// What a successful read returned for a present key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub value: String,
    pub mod_revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    Ok { revision: u64 },
    Failed,
    Indeterminate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// `None`: the key did not exist.
    Ok(Option<Observed>),
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Write { value: String, result: WriteResult },
    Read { result: ReadResult },
}

#[derive(Debug, Clone)]
pub struct Op {
    /// The client (worker) that ran the operation.
    pub worker: usize,
    pub key: String,
    pub start: Instant,
    pub end: Instant,
    pub event: Event,
}

/// A thread-safe recorder shared by the workers.
#[derive(Default)]
pub struct History {
    ops: Mutex<Vec<Op>>,
}

impl History {
    pub fn record(&self, op: Op) {
        self.ops.lock().expect("history lock").push(op);
    }

    /// Runs `f` on the operations recorded so far.
    pub fn inspect<T>(&self, f: impl FnOnce(&[Op]) -> T) -> T {
        f(&self.ops.lock().expect("history lock"))
    }

    pub fn snapshot(&self) -> Vec<Op> {
        self.inspect(|ops| ops.to_vec())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The final read does not show the latest acknowledged write.
    LostWrite { key: String, value: String, revision: u64, finally: Option<Observed> },
    /// A read returned an older revision than one already visible when it started.
    StaleRead { key: String, worker: usize, got: u64, expected_at_least: u64 },
    /// An acknowledged write got a revision not above one already visible when it started.
    WriteOrder { key: String, value: String, revision: u64, visible_before: u64 },
    /// A read returned a value no acknowledged or indeterminate write wrote.
    Phantom { key: String, value: String, why: &'static str },
    /// A read's `mod_revision` differs from the revision its write got.
    RevisionMismatch { key: String, value: String, written: u64, read: u64 },
    /// Two acknowledged writes got the same revision.
    DuplicateRevision { revision: u64, first: String, second: String },
    /// The history itself is unusable: a value was written twice to one key.
    DuplicateValue { key: String, value: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::LostWrite { key, value, revision, finally } => {
                write!(f, "lost write: {key}={value} acknowledged at revision {revision}, finally {finally:?}")
            }
            Violation::StaleRead { key, worker, got, expected_at_least } => write!(
                f,
                "stale read of {key} by worker {worker}: revision {got}, but {expected_at_least} was visible before it started"
            ),
            Violation::WriteOrder { key, value, revision, visible_before } => write!(
                f,
                "write {key}={value} acknowledged at revision {revision}, but {visible_before} was visible before it started"
            ),
            Violation::Phantom { key, value, why } => write!(f, "phantom read {key}={value}: {why}"),
            Violation::RevisionMismatch { key, value, written, read } => {
                write!(f, "{key}={value} was written at revision {written} but read at {read}")
            }
            Violation::DuplicateRevision { revision, first, second } => {
                write!(f, "revision {revision} acknowledged twice: {first} and {second}")
            }
            Violation::DuplicateValue { key, value } => write!(f, "bad history: {key}={value} written twice"),
        }
    }
}

/// Counts, to show a run did real work.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub writes_ok: usize,
    pub writes_failed: usize,
    pub writes_indeterminate: usize,
    pub reads_ok: usize,
    pub reads_failed: usize,
}

#[derive(Debug)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub stats: Stats,
}

impl Report {
    /// Panics listing the violations (at most 20) if there are any.
    pub fn assert_ok(&self) {
        if self.violations.is_empty() {
            return;
        }
        let shown: Vec<String> = self.violations.iter().take(20).map(|v| format!("  {v}")).collect();
        panic!("history check failed: {} violation(s), {:?}\n{}", self.violations.len(), self.stats, shown.join("\n"));
    }
}

/// The writes to one key, by value.
struct KeyWrites<'a> {
    by_value: HashMap<&'a str, &'a Op>,
}

fn write_result(op: &Op) -> Option<(&str, &WriteResult)> {
    match &op.event {
        Event::Write { value, result } => Some((value, result)),
        Event::Read { .. } => None,
    }
}

/// Checks `ops` and the `finals` (a linearizable read of each key after every operation
/// ended; `None` = key absent). Keys written in `ops` but missing from `finals` are not
/// checked for lost writes.
pub fn check(ops: &[Op], finals: &BTreeMap<String, Option<Observed>>) -> Report {
    let mut violations = Vec::new();
    let mut stats = Stats::default();
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
        match &op.event {
            Event::Write { result: WriteResult::Ok { .. }, .. } => stats.writes_ok += 1,
            Event::Write { result: WriteResult::Failed, .. } => stats.writes_failed += 1,
            Event::Write { result: WriteResult::Indeterminate, .. } => stats.writes_indeterminate += 1,
            Event::Read { result: ReadResult::Ok(_) } => stats.reads_ok += 1,
            Event::Read { result: ReadResult::Failed } => stats.reads_failed += 1,
        }
    }

    // Acknowledged revisions are unique across all keys.
    let mut revisions: HashMap<u64, String> = HashMap::new();
    for op in ops {
        if let Some((value, WriteResult::Ok { revision })) = write_result(op) {
            let this = format!("{}={value}", op.key);
            if let Some(first) = revisions.insert(*revision, this.clone()) {
                violations.push(Violation::DuplicateRevision { revision: *revision, first, second: this });
            }
        }
    }

    for (key, key_ops) in &by_key {
        let mut writes = KeyWrites { by_value: HashMap::new() };
        for op in key_ops {
            if let Some((value, _)) = write_result(op)
                && writes.by_value.insert(value, op).is_some()
            {
                violations.push(Violation::DuplicateValue { key: key.to_string(), value: value.to_string() });
            }
        }
        check_reads(key, key_ops, &writes, &mut violations);
        check_real_time_order(key, key_ops, &mut violations);
        if let Some(finally) = finals.get(*key) {
            check_final(key, key_ops, &writes, finally, &mut violations);
        }
    }
    Report { violations, stats }
}

/// Every value read was written (acknowledged or indeterminate, started before the read
/// ended) and carries that write's revision.
fn check_reads(key: &str, ops: &[&Op], writes: &KeyWrites<'_>, violations: &mut Vec<Violation>) {
    for read in ops {
        let Event::Read { result: ReadResult::Ok(Some(seen)) } = &read.event else { continue };
        if let Some(v) = check_observed(key, seen, writes, Some(read.end)) {
            violations.push(v);
        }
    }
}

fn check_observed(key: &str, seen: &Observed, writes: &KeyWrites<'_>, read_end: Option<Instant>) -> Option<Violation> {
    let phantom = |why| Violation::Phantom { key: key.to_string(), value: seen.value.clone(), why };
    let Some(write) = writes.by_value.get(seen.value.as_str()) else {
        return Some(phantom("no write wrote this value"));
    };
    if read_end.is_some_and(|end| write.start > end) {
        return Some(phantom("its write started after the read ended"));
    }
    match write_result(write).map(|(_, r)| r) {
        Some(WriteResult::Failed) => Some(phantom("its write failed")),
        Some(WriteResult::Ok { revision }) if *revision != seen.mod_revision => Some(Violation::RevisionMismatch {
            key: key.to_string(),
            value: seen.value.clone(),
            written: *revision,
            read: seen.mod_revision,
        }),
        _ => None,
    }
}

/// A revision that became visible at `at`: an acknowledged write's end, or a read's end.
struct Visible {
    at: Instant,
    revision: u64,
}

/// Reads and acknowledged writes respect real time: nothing that starts after revision `r`
/// was visible sees (reads) or gets (writes) an older revision.
fn check_real_time_order(key: &str, ops: &[&Op], violations: &mut Vec<Violation>) {
    let mut visible: Vec<Visible> = ops
        .iter()
        .filter_map(|op| match &op.event {
            Event::Write { result: WriteResult::Ok { revision }, .. } => {
                Some(Visible { at: op.end, revision: *revision })
            }
            Event::Read { result: ReadResult::Ok(seen) } => {
                Some(Visible { at: op.end, revision: seen.as_ref().map_or(0, |s| s.mod_revision) })
            }
            _ => None,
        })
        .collect();
    visible.sort_by_key(|v| v.at);
    // prefix_max[i] = the highest revision visible at or before visible[i].at
    let mut prefix_max = Vec::with_capacity(visible.len());
    let mut max = 0;
    for v in &visible {
        max = max.max(v.revision);
        prefix_max.push(max);
    }
    let visible_before = |start: Instant| {
        let n = visible.partition_point(|v| v.at < start);
        if n == 0 { 0 } else { prefix_max[n - 1] }
    };
    for op in ops {
        match &op.event {
            Event::Read { result: ReadResult::Ok(seen) } => {
                let got = seen.as_ref().map_or(0, |s| s.mod_revision);
                let expected_at_least = visible_before(op.start);
                if got < expected_at_least {
                    violations.push(Violation::StaleRead {
                        key: key.to_string(),
                        worker: op.worker,
                        got,
                        expected_at_least,
                    });
                }
            }
            Event::Write { value, result: WriteResult::Ok { revision } } => {
                let before = visible_before(op.start);
                if *revision <= before {
                    violations.push(Violation::WriteOrder {
                        key: key.to_string(),
                        value: value.clone(),
                        revision: *revision,
                        visible_before: before,
                    });
                }
            }
            _ => {}
        }
    }
}

/// The final read shows the acknowledged write with the highest revision, or a later
/// indeterminate write.
fn check_final(
    key: &str,
    ops: &[&Op],
    writes: &KeyWrites<'_>,
    finally: &Option<Observed>,
    violations: &mut Vec<Violation>,
) {
    let latest = ops
        .iter()
        .filter_map(|op| match write_result(op) {
            Some((value, WriteResult::Ok { revision })) => Some((*revision, value)),
            _ => None,
        })
        .max();
    if let Some(seen) = finally
        && let Some(v) = check_observed(key, seen, writes, None)
    {
        violations.push(v);
        return;
    }
    let Some((revision, value)) = latest else { return };
    let lost = match finally {
        None => true,
        // Revisions are unique, so `>=` with the right value, or `>` with an indeterminate
        // write's value (check_observed vetted it), is the only correct answer.
        Some(seen) => seen.mod_revision < revision || (seen.mod_revision == revision && seen.value != value),
    };
    if lost {
        violations.push(Violation::LostWrite {
            key: key.to_string(),
            value: value.to_string(),
            revision,
            finally: finally.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Builds histories on a shared time base: `at(ms)`.
    struct H {
        base: Instant,
        ops: Vec<Op>,
    }

    impl H {
        fn new() -> Self {
            Self { base: Instant::now(), ops: Vec::new() }
        }
        fn at(&self, ms: u64) -> Instant {
            self.base + Duration::from_millis(ms)
        }
        fn write(mut self, key: &str, value: &str, span: (u64, u64), result: WriteResult) -> Self {
            let op = Op {
                worker: 0,
                key: key.into(),
                start: self.at(span.0),
                end: self.at(span.1),
                event: Event::Write { value: value.into(), result },
            };
            self.ops.push(op);
            self
        }
        fn ok(self, key: &str, value: &str, span: (u64, u64), revision: u64) -> Self {
            self.write(key, value, span, WriteResult::Ok { revision })
        }
        fn read(mut self, key: &str, span: (u64, u64), seen: Option<(&str, u64)>) -> Self {
            let seen = seen.map(|(v, r)| Observed { value: v.into(), mod_revision: r });
            let op = Op {
                worker: 1,
                key: key.into(),
                start: self.at(span.0),
                end: self.at(span.1),
                event: Event::Read { result: ReadResult::Ok(seen) },
            };
            self.ops.push(op);
            self
        }
    }

    fn finals(items: &[(&str, Option<(&str, u64)>)]) -> BTreeMap<String, Option<Observed>> {
        items
            .iter()
            .map(|(k, o)| (k.to_string(), o.map(|(v, r)| Observed { value: v.into(), mod_revision: r })))
            .collect()
    }

    /// The kinds of violation found, by name, in order.
    fn kinds(h: H, f: &[(&str, Option<(&str, u64)>)]) -> Vec<&'static str> {
        check(&h.ops, &finals(f))
            .violations
            .iter()
            .map(|v| match v {
                Violation::LostWrite { .. } => "lost",
                Violation::StaleRead { .. } => "stale",
                Violation::WriteOrder { .. } => "order",
                Violation::Phantom { .. } => "phantom",
                Violation::RevisionMismatch { .. } => "mismatch",
                Violation::DuplicateRevision { .. } => "dup-revision",
                Violation::DuplicateValue { .. } => "dup-value",
            })
            .collect()
    }

    #[test]
    fn sequential_history_passes() {
        let h = H::new()
            .read("k", (0, 1), None)
            .ok("k", "a", (2, 3), 5)
            .read("k", (4, 5), Some(("a", 5)))
            .ok("k", "b", (6, 7), 9)
            .read("k", (8, 9), Some(("b", 9)));
        assert_eq!(kinds(h, &[("k", Some(("b", 9)))]), Vec::<&str>::new());
    }

    #[test]
    fn concurrent_read_may_see_old_or_new_value() {
        let old = H::new().ok("k", "a", (0, 1), 5).ok("k", "b", (10, 20), 9).read("k", (11, 19), Some(("a", 5)));
        assert_eq!(kinds(old, &[("k", Some(("b", 9)))]), Vec::<&str>::new());
        let new = H::new().ok("k", "a", (0, 1), 5).ok("k", "b", (10, 20), 9).read("k", (11, 19), Some(("b", 9)));
        assert_eq!(kinds(new, &[("k", Some(("b", 9)))]), Vec::<&str>::new());
    }

    #[test]
    fn indeterminate_writes_may_or_may_not_appear() {
        let appears = H::new().ok("k", "a", (0, 1), 5).write("k", "b", (2, 3), WriteResult::Indeterminate).read(
            "k",
            (4, 5),
            Some(("b", 7)),
        );
        assert_eq!(kinds(appears, &[("k", Some(("b", 7)))]), Vec::<&str>::new());
        let vanishes = H::new().ok("k", "a", (0, 1), 5).write("k", "b", (2, 3), WriteResult::Indeterminate).read(
            "k",
            (4, 5),
            Some(("a", 5)),
        );
        assert_eq!(kinds(vanishes, &[("k", Some(("a", 5)))]), Vec::<&str>::new());
        // An indeterminate write may take effect long after its request was given up on.
        let late = H::new().write("k", "b", (0, 1), WriteResult::Indeterminate).ok("k", "c", (2, 3), 8).read(
            "k",
            (4, 5),
            Some(("c", 8)),
        );
        assert_eq!(kinds(late, &[("k", Some(("b", 12)))]), Vec::<&str>::new());
    }

    #[test]
    fn failed_writes_never_appear() {
        let h = H::new().ok("k", "a", (0, 1), 5).write("k", "b", (2, 3), WriteResult::Failed).read(
            "k",
            (4, 5),
            Some(("a", 5)),
        );
        assert_eq!(kinds(h, &[("k", Some(("a", 5)))]), Vec::<&str>::new());
    }

    #[test]
    fn lost_writes_fail() {
        let gone = H::new().ok("k", "a", (0, 1), 5);
        assert_eq!(kinds(gone, &[("k", None)]), ["lost"]);
        let older = H::new().ok("k", "a", (0, 1), 5).ok("k", "b", (2, 3), 7);
        assert_eq!(kinds(older, &[("k", Some(("a", 5)))]), ["lost"]);
        // An indeterminate write's value is no excuse when its revision is older.
        let under = H::new().write("k", "x", (0, 1), WriteResult::Indeterminate).ok("k", "b", (2, 3), 7);
        assert_eq!(kinds(under, &[("k", Some(("x", 6)))]), ["lost"]);
    }

    #[test]
    fn stale_reads_fail() {
        let absent = H::new().ok("k", "a", (0, 10), 5).read("k", (20, 30), None);
        assert_eq!(kinds(absent, &[("k", Some(("a", 5)))]), ["stale"]);
        let older = H::new().ok("k", "a", (0, 1), 5).ok("k", "b", (2, 3), 7).read("k", (4, 5), Some(("a", 5)));
        assert_eq!(kinds(older, &[("k", Some(("b", 7)))]), ["stale"]);
        // Read after read: once a read returned revision 7, a later read must not go back.
        let regress = H::new()
            .ok("k", "a", (0, 1), 5)
            .write("k", "b", (2, 3), WriteResult::Indeterminate)
            .read("k", (4, 5), Some(("b", 7)))
            .read("k", (6, 7), Some(("a", 5)));
        assert_eq!(kinds(regress, &[("k", Some(("b", 7)))]), ["stale"]);
    }

    #[test]
    fn phantom_values_fail() {
        let never = H::new().ok("k", "a", (0, 1), 5).read("k", (2, 3), Some(("zzz", 6)));
        assert_eq!(kinds(never, &[("k", Some(("a", 5)))]), ["phantom"]);
        let failed = H::new().write("k", "a", (0, 1), WriteResult::Failed).read("k", (2, 3), Some(("a", 5)));
        assert_eq!(kinds(failed, &[]), ["phantom"]);
        let future = H::new().read("k", (0, 1), Some(("a", 5))).write("k", "a", (2, 3), WriteResult::Indeterminate);
        assert_eq!(kinds(future, &[]), ["phantom"]);
        let final_phantom = H::new().ok("k", "a", (0, 1), 5);
        assert_eq!(kinds(final_phantom, &[("k", Some(("zzz", 9)))]), ["phantom"]);
    }

    #[test]
    fn wrong_revisions_fail() {
        let mismatch = H::new().ok("k", "a", (0, 1), 5).read("k", (2, 3), Some(("a", 6)));
        assert_eq!(kinds(mismatch, &[("k", Some(("a", 5)))]), ["mismatch"]);
        let reused = H::new().ok("k", "a", (0, 1), 5).ok("j", "b", (2, 3), 5);
        assert_eq!(kinds(reused, &[("k", Some(("a", 5))), ("j", Some(("b", 5)))]), ["dup-revision"]);
        let backwards = H::new().ok("k", "a", (0, 1), 7).ok("k", "b", (2, 3), 5);
        assert_eq!(kinds(backwards, &[]), ["order"]);
    }

    #[test]
    fn a_value_written_twice_makes_the_history_unusable() {
        let h = H::new().ok("k", "a", (0, 1), 5).ok("k", "a", (2, 3), 7);
        assert_eq!(kinds(h, &[]), ["dup-value"]);
    }

    #[test]
    fn report_panics_with_the_violations() {
        let h = H::new().ok("k", "a", (0, 1), 5);
        let report = check(&h.ops, &finals(&[("k", None)]));
        let panic = std::panic::catch_unwind(|| report.assert_ok()).unwrap_err();
        let text = panic.downcast_ref::<String>().unwrap();
        assert!(text.contains("lost write: k=a acknowledged at revision 5"), "{text}");
    }
}
