//! The invocation's time budget.
//!
//! AWS's rotation functions never read the deadline: a single-user setSecret can try six
//! connections at five seconds each and be killed by Lambda mid-way. We derive every timeout from
//! the invocation's deadline, keeping a reserve to report a clean, retryable failure (or, for the
//! custom resource, to send FAILED) before Lambda kills the process.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// When work must stop: the invocation's deadline minus the reserve.
    work_deadline: Instant,
    /// Lambda's own deadline.
    hard_deadline: Instant,
}

impl Budget {
    /// From the invocation's deadline in milliseconds since the Unix epoch (what the Runtime API
    /// sends in `Lambda-Runtime-Deadline-Ms`), keeping `reserve` for reporting.
    pub fn from_deadline_ms(deadline_ms: u64, reserve: Duration) -> Self {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Self::from_remaining(remaining, reserve)
    }

    pub fn from_remaining(remaining: Duration, reserve: Duration) -> Self {
        let now = Instant::now();
        let hard_deadline = now + remaining;
        // Keep at least a tenth of the time for work even when the reserve is larger than it.
        let reserve = reserve.min(remaining.mul_f32(0.9));
        Self { work_deadline: hard_deadline - reserve, hard_deadline }
    }

    /// Work (connections, statements, API calls) must be finished by then.
    pub fn deadline(&self) -> Instant {
        self.work_deadline
    }

    pub fn hard_deadline(&self) -> Instant {
        self.hard_deadline
    }

    pub fn remaining(&self) -> Duration {
        self.work_deadline.saturating_duration_since(Instant::now())
    }

    pub fn is_spent(&self) -> bool {
        self.remaining().is_zero()
    }

    /// A deadline for one operation: at most `cap` from now, never past the work deadline.
    pub fn deadline_for(&self, cap: Duration) -> Instant {
        (Instant::now() + cap).min(self.work_deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_reserve_is_kept_and_caps_never_pass_the_deadline() {
        let budget = Budget::from_remaining(Duration::from_secs(30), Duration::from_secs(3));
        let left = budget.remaining();
        assert!(left <= Duration::from_secs(27) && left > Duration::from_secs(26), "{left:?}");
        assert!(budget.deadline_for(Duration::from_secs(60)) <= budget.deadline());
        assert!(budget.deadline_for(Duration::from_secs(1)) < budget.deadline());
    }

    #[tokio::test]
    async fn a_tiny_budget_still_leaves_some_time_to_work() {
        let budget = Budget::from_remaining(Duration::from_millis(100), Duration::from_secs(3));
        assert!(budget.remaining() >= Duration::from_millis(9));
        let past = Budget::from_deadline_ms(1_000, Duration::from_secs(1));
        assert!(past.is_spent());
    }
}
