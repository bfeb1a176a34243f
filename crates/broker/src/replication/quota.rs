//! KIP-73's replication throttles, as Kafka's `ReplicationQuotaManager`: one byte rate for what
//! this broker sends as a leader and one for what it fetches as a follower, each held to its
//! bound (`leader.replication.throttled.rate`, `follower.replication.throttled.rate`).
//!
//! Only throttled replicas (a topic's `leader/follower.replication.throttled.replicas` naming
//! this broker) count towards a rate, and only they are held back, and only while they are not
//! in sync: the leader answers such a follower's partition with no records while its rate is over
//! the bound (Kafka's `shouldLeaderThrottle`), the follower leaves such a partition out of its
//! fetch (`shouldFollowerThrottle`). An in-sync replica is never held back, so throttling never
//! makes a replica drop out of the ISR; its bytes still count if it is listed.
//!
//! The rate is Kafka's `Rate` over a `SampledStat`: `samples` windows of `window_ms`, the oldest
//! dropped once `samples` windows old, the sum divided by the time since the oldest window
//! began, but never less than `samples - 1` whole windows (so a burst right after an idle spell
//! is measured over the full span, not over its own few milliseconds). Exceeded means the rate is
//! above the bound, checked before a read; the bytes are recorded after it, so one read may go
//! over by up to what it carries, as in Kafka.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::sync::lock;

/// Bytes per window: (window start ms, bytes), oldest first.
struct Windows {
    samples: Vec<(i64, u64)>,
}

/// One throttled byte rate and its bound.
pub struct ReplicationQuota {
    window_ms: i64,
    samples: usize,
    /// Bytes per second; `u64::MAX` (or Long.MAX, Kafka's default) is no bound.
    bound: AtomicU64,
    windows: Mutex<Windows>,
    /// Every byte recorded (`strom_replication_throttled_bytes_total`).
    counter: metrics::Counter,
}

impl ReplicationQuota {
    /// `side` labels the metric: `leader` or `follower`.
    pub fn new(side: &'static str, window_seconds: u64, samples: usize, bound: u64) -> ReplicationQuota {
        ReplicationQuota {
            window_ms: (window_seconds.min(i64::MAX as u64 / 1000) as i64 * 1000).max(1),
            samples: samples.max(1),
            bound: AtomicU64::new(bound),
            windows: Mutex::new(Windows { samples: Vec::new() }),
            counter: metrics::counter!(crate::metrics::REPLICATION_THROTTLED_BYTES, "side" => side),
        }
    }

    /// Sets the bound (a dynamic config changed).
    pub fn set_bound(&self, bytes_per_second: u64) {
        self.bound.store(bytes_per_second, Ordering::Relaxed);
    }

    pub fn bound(&self) -> u64 {
        self.bound.load(Ordering::Relaxed)
    }

    fn unbounded(&self) -> bool {
        self.bound() >= i64::MAX as u64
    }

    /// Counts `bytes` of throttled replication at `now_ms`.
    pub fn record(&self, bytes: u64, now_ms: i64) {
        if bytes == 0 {
            return;
        }
        self.counter.increment(bytes);
        let mut w = lock(&self.windows);
        self.purge(&mut w, now_ms);
        match w.samples.last_mut() {
            Some((start, b)) if now_ms - *start < self.window_ms => *b = b.saturating_add(bytes),
            _ => {
                w.samples.push((now_ms, bytes));
                if w.samples.len() > self.samples {
                    w.samples.remove(0);
                }
            }
        }
    }

    /// The measured rate in bytes per second at `now_ms`.
    pub fn rate(&self, now_ms: i64) -> f64 {
        let mut w = lock(&self.windows);
        self.purge(&mut w, now_ms);
        let total: u64 = w.samples.iter().map(|(_, b)| b).sum();
        let oldest = w.samples.first().map_or(now_ms, |(start, _)| *start);
        let mut elapsed = (now_ms - oldest).max(0);
        let full = elapsed / self.window_ms;
        let min_full = self.samples as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window_ms;
        }
        total as f64 * 1000.0 / elapsed.max(1) as f64
    }

    /// Whether the rate is above the bound: throttled replicas that are not in sync wait.
    pub fn is_exceeded(&self, now_ms: i64) -> bool {
        !self.unbounded() && self.rate(now_ms) > self.bound() as f64
    }

    /// Kafka's `purgeObsoleteSamples`: a window that began `samples` windows ago is forgotten.
    fn purge(&self, w: &mut Windows, now_ms: i64) {
        let horizon = self.window_ms.saturating_mul(self.samples as i64);
        w.samples.retain(|(start, _)| now_ms - *start < horizon);
    }
}

/// Both sides' quotas, shared by the fetch handler (leader) and the fetchers (follower).
pub struct ReplicationQuotas {
    pub leader: ReplicationQuota,
    pub follower: ReplicationQuota,
}

impl ReplicationQuotas {
    pub fn new(t: &strom_config::ReplicationThrottle) -> ReplicationQuotas {
        ReplicationQuotas {
            leader: ReplicationQuota::new("leader", t.window_size_seconds, t.window_num, t.leader_rate),
            follower: ReplicationQuota::new("follower", t.window_size_seconds, t.window_num, t.follower_rate),
        }
    }

    /// The bounds of the config in force (dynamic configs included).
    pub fn set_bounds(&self, t: &strom_config::ReplicationThrottle) {
        self.leader.set_bound(t.leader_rate);
        self.follower.set_bound(t.follower_rate);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_default_bound_never_throttles() {
        let q = ReplicationQuota::new("leader", 1, 11, i64::MAX as u64);
        q.record(u64::MAX / 2, 0);
        assert!(!q.is_exceeded(0));
    }

    #[test]
    fn a_rate_is_measured_over_at_least_all_but_one_windows() {
        // 11 windows of 1 s: 10,000 bytes at once are 1,000 B/s, not 10,000 B/s per ms.
        let q = ReplicationQuota::new("leader", 1, 11, 1_000);
        q.record(10_000, 0);
        assert_eq!(q.rate(0), 1_000.0);
        assert!(!q.is_exceeded(0), "exactly at the bound is within it, as Kafka's upper bound");
        q.record(100, 10);
        assert!(q.is_exceeded(10));
        // 10,100 bytes over the first 5 s, measured as 10 s: still over.
        assert!(q.is_exceeded(5_000));
        // Once the windows age past the span they are forgotten, and the rate falls to zero.
        assert!(!q.is_exceeded(11_010));
        assert_eq!(q.rate(11_010), 0.0);
    }

    #[test]
    fn a_lowered_bound_applies_at_once() {
        let q = ReplicationQuota::new("follower", 1, 2, u64::MAX);
        q.record(5_000, 0);
        assert!(!q.is_exceeded(500));
        q.set_bound(1_000);
        assert!(q.is_exceeded(500));
        q.set_bound(i64::MAX as u64);
        assert!(!q.is_exceeded(500));
    }

    proptest! {
        /// A sender that sends `chunk` bytes whenever the quota is not exceeded (as a leader
        /// answering a throttled follower does) stays within the bound plus one chunk per
        /// measured span, over any long run, and gets that much: the property the e2e test
        /// observes on the wire.
        #[test]
        fn a_throttled_sender_keeps_to_the_bound(bound in 1_000u64..1_000_000, chunk in 1u64..200_000, samples in 2usize..12, step_ms in 1i64..200) {
            let q = ReplicationQuota::new("leader", 1, samples, bound);
            let mut sent = 0u64;
            let end = 60_000i64;
            let mut now = 0i64;
            while now < end {
                if !q.is_exceeded(now) {
                    q.record(chunk, now);
                    sent += chunk;
                }
                now += step_ms;
            }
            // Over the run the sender gets at most the bound for the run and one span more,
            // plus one chunk over for each span (a span's windows are forgotten together, and
            // the read that crosses the bound is not cut short, as in Kafka).
            let span_s = samples as u64;
            let end_s = end as u64 / 1000;
            let allowed = bound * (end_s + span_s) + chunk * (end_s / span_s + 1);
            prop_assert!(sent <= allowed, "sent {sent} > allowed {allowed}");
            // And it is not starved: it gets the bound over the run less a span and, per span,
            // the steps it may take to notice that the span's windows were forgotten and that
            // the new oldest window allows more; or all it offered if that is less.
            let spans = end_s / span_s + 1;
            let idle_ms = span_s * 1000 + 2 * spans * step_ms as u64;
            let floor = (bound * (end as u64).saturating_sub(idle_ms) / 1000).min(chunk * ((end / step_ms) as u64));
            prop_assert!(sent >= floor, "sent {sent} < {floor}");
        }
    }
}
