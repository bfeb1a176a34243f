//! Warnings a client can cause, logged at most once per interval each, with how many were left
//! out meanwhile: one client sending refused requests in a loop must not flood the log (issue
//! 16 saw 1,052 warnings in 30 s), while the operator still learns that it happens, and how often.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// One kind of warning's limiter: a `static` beside the line it limits.
pub struct RateLimit {
    every_ms: i64,
    last_ms: AtomicI64,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub const fn new(every_ms: i64) -> RateLimit {
        RateLimit { every_ms, last_ms: AtomicI64::new(i64::MIN), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)` when the warning may be logged now, `n` being how many were left out since the
    /// last one logged; `None` when it is left out (and counted).
    pub fn allow(&self, now_ms: i64) -> Option<u64> {
        let last = self.last_ms.load(Relaxed);
        if now_ms.saturating_sub(last) >= self.every_ms && self.last_ms.compare_exchange(last, now_ms, Relaxed, Relaxed).is_ok() {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_with_the_count_left_out() {
        let limit = RateLimit::new(10_000);
        assert_eq!(limit.allow(1_000), Some(0));
        for t in 1_001..1_101 {
            assert_eq!(limit.allow(t), None);
        }
        assert_eq!(limit.allow(10_999), None);
        assert_eq!(limit.allow(11_000), Some(101));
        assert_eq!(limit.allow(11_001), None);
        assert_eq!(limit.allow(30_000), Some(1));
    }
}
