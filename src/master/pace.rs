//! Pacing for the leader's loops: they wake on every applied batch, but each pass scans the
//! state, so under a stream of small commits (status updates) passes are spaced out and the
//! changes in between are handled together by the next one. The gap after a pass is
//! [`GAP_PER_COST`] times as long as the pass took, so a loop takes at most about a fifth of the
//! CPU it runs on and leaves the rest to applying commits and answering agents, and at least a
//! small floor; a cheap pass (a small cluster) is followed by a short gap, so latency stays low
//! where scans cost little.

use std::time::{Duration, Instant};

/// The gap after a pass, in multiples of what the pass cost.
pub const GAP_PER_COST: u32 = 4;

pub struct Pace {
    min_gap: Duration,
    /// The next pass may start from here.
    ready_at: Option<Instant>,
    /// When the current pass started.
    started: Instant,
}

impl Pace {
    pub fn new(min_gap: Duration) -> Self {
        Self { min_gap, ready_at: None, started: Instant::now() }
    }

    /// Waits until the gap after the previous pass has passed, then starts a pass.
    pub async fn next_pass(&mut self) {
        if let Some(ready_at) = self.ready_at
            && ready_at > Instant::now()
        {
            tokio::time::sleep_until(ready_at.into()).await;
        }
        self.started = Instant::now();
    }

    /// Ends the pass's work (what follows, such as waiting for commits, costs no CPU): the
    /// next pass waits [`GAP_PER_COST`] times as long as this one took, and at least `min_gap`.
    pub fn done(&mut self) {
        let now = Instant::now();
        self.ready_at = Some(now + ((now - self.started) * GAP_PER_COST).max(self.min_gap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gap_follows_the_cost_of_the_pass_with_a_floor() {
        let floor = Duration::from_millis(20);
        let mut pace = Pace::new(floor);
        let t0 = Instant::now();
        pace.next_pass().await;
        assert!(t0.elapsed() < floor, "the first pass starts at once");
        pace.done();
        let t1 = Instant::now();
        pace.next_pass().await;
        assert!(t1.elapsed() >= floor - Duration::from_millis(1), "a cheap pass is followed by the floor");
        // A pass that costs 30 ms (a stand-in for a long scan) is followed by four times that.
        std::thread::sleep(Duration::from_millis(30));
        pace.done();
        let t2 = Instant::now();
        pace.next_pass().await;
        assert!(t2.elapsed() >= Duration::from_millis(119), "gap {:?} after a 30 ms pass", t2.elapsed());
    }
}
