//! Pacing for the leader's loops: they wake on every applied batch, but each pass scans the
//! state, so under a stream of small commits (status updates) passes are spaced out and the
//! changes in between are handled together by the next one.

use std::time::{Duration, Instant};

/// Keeps consecutive passes of a loop at least `min` apart.
pub struct Pace {
    min: Duration,
    last: Option<Instant>,
}

impl Pace {
    pub fn new(min: Duration) -> Self {
        Self { min, last: None }
    }

    /// Waits until `min` has passed since the previous pass began, then marks a new one.
    pub async fn next_pass(&mut self) {
        if let Some(last) = self.last {
            let due = last + self.min;
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        self.last = Some(Instant::now());
    }
}
