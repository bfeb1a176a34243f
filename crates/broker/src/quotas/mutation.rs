//! `controller_mutation_rate` (KIP-599): the partitions a client may create or delete per
//! second (CreateTopics, CreatePartitions, DeleteTopics), as Kafka's
//! `ControllerMutationQuotaManager`: a token bucket per (user, client id) that refills at the
//! quota and holds at most `quota.window.num * quota.window.size.seconds` seconds of it (the
//! burst). A mutation takes its partitions from the bucket even when that drives it below zero;
//! the next one finds it empty.
//!
//! Strict (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+, the versions whose
//! clients know THROTTLING_QUOTA_EXCEEDED): a topic met with an empty bucket is refused with
//! that error and the time until the bucket is back to zero; the request is throttled by it.
//! Permissive (older versions): every topic is accepted, and the response's throttle time is
//! how long the client must wait for the bucket to refill to zero.
//!
//! A topic that fails for another reason takes nothing (the partitions are taken once the
//! mutation succeeded), and a `validate_only` request only checks.

use std::collections::HashMap;
use std::sync::Mutex;

use strom_metadata::quota::{Quotas, CONTROLLER_MUTATION_RATE};

use super::{user_of, PRUNE_ABOVE};

/// Kafka's message for THROTTLING_QUOTA_EXCEEDED.
pub const EXCEEDED: &str = "The throttling quota has been exceeded.";

/// One client's bucket: tokens (partitions) at `updated_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

impl Bucket {
    /// Kafka's `TokenBucket.refill`: the tokens grow at the quota per second up to the burst.
    fn refill(&mut self, quota: f64, burst: f64, now_ms: i64) {
        let elapsed_s = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + quota * elapsed_s).min(burst);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// The time until the bucket is back to zero (Kafka's `throttleTimeMs`: `-tokens / quota`).
    fn throttle_ms(&self, quota: f64) -> i32 {
        if self.tokens >= 0.0 || quota <= 0.0 {
            return 0;
        }
        (-self.tokens / quota * 1000.0).round().min(i32::MAX as f64) as i32
    }
}

pub(crate) struct MutationQuotas {
    window_ms: i64,
    samples: usize,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl MutationQuotas {
    pub(crate) fn new(window_ms: i64, samples: usize) -> MutationQuotas {
        MutationQuotas { window_ms, samples, buckets: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn for_request<'a>(&'a self, quotas: &Quotas, principal: &str, client_id: &str, strict: bool) -> Mutations<'a> {
        let user = user_of(principal);
        let quota = if quotas.is_empty() { None } else { quotas.resolve(user, client_id, CONTROLLER_MUTATION_RATE) };
        Mutations { owner: self, quota, key: (user.to_string(), client_id.to_string()), strict, throttle_ms: 0 }
    }

    fn burst(&self, quota: f64) -> f64 {
        self.samples as f64 * self.window_ms as f64 / 1000.0 * quota
    }

    /// Runs `f` on the client's bucket, refilled to `now_ms`; a new bucket starts full.
    fn with_bucket<T>(&self, key: &(String, String), quota: f64, now_ms: i64, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let burst = self.burst(quota);
        let mut buckets = crate::sync::lock(&self.buckets);
        if buckets.len() > PRUNE_ABOVE {
            // A bucket that refilled completely is the same as a new one.
            buckets.retain(|_, b| {
                let mut b = *b;
                b.refill(quota, burst, now_ms);
                b.tokens < burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: burst, updated_ms: now_ms });
        bucket.refill(quota, burst, now_ms);
        f(bucket)
    }
}

/// The quota as one request sees it.
pub struct Mutations<'a> {
    owner: &'a MutationQuotas,
    /// None: no quota applies, nothing is metered.
    quota: Option<f64>,
    key: (String, String),
    strict: bool,
    throttle_ms: i32,
}

impl Mutations<'_> {
    /// Before a topic's mutation: `Err(throttle ms)` when it must be refused with
    /// THROTTLING_QUOTA_EXCEEDED (strict, and the bucket is empty).
    pub fn check(&mut self, now_ms: i64) -> Result<(), i32> {
        let Some(quota) = self.quota.filter(|_| self.strict) else { return Ok(()) };
        let throttle = self.owner.with_bucket(&self.key, quota, now_ms, |b| b.throttle_ms(quota));
        if throttle > 0 {
            self.throttle_ms = self.throttle_ms.max(throttle);
            return Err(throttle);
        }
        Ok(())
    }

    /// After a topic's mutation succeeded: takes its partitions from the bucket.
    pub fn record(&mut self, partitions: usize, now_ms: i64) {
        let Some(quota) = self.quota else { return };
        let strict = self.strict;
        let throttle = self.owner.with_bucket(&self.key, quota, now_ms, |b| {
            b.tokens -= partitions as f64;
            b.throttle_ms(quota)
        });
        // Strict: the mutation that empties the bucket is not throttled, the next one is
        // refused (Kafka's StrictControllerMutationQuota records without checking).
        if !strict {
            self.throttle_ms = self.throttle_ms.max(throttle);
        }
    }

    /// The response's throttle time.
    pub fn throttle_ms(&self) -> i32 {
        self.throttle_ms
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_metadata::quota::{QuotaEntity, CLIENT_ID};

    use super::*;

    fn quotas(rate: f64) -> Quotas {
        let mut q = Quotas::default();
        let values: BTreeMap<String, f64> = [(CONTROLLER_MUTATION_RATE.to_string(), rate)].into_iter().collect();
        q.alter(&QuotaEntity::new(vec![(CLIENT_ID.into(), Some("admin".into()))]), &values, &[]);
        q
    }

    #[test]
    fn strict_refuses_once_the_burst_is_spent() {
        // 2 partitions/s over 11 windows of 1 s: a burst of 22 partitions.
        let m = MutationQuotas::new(1000, 11);
        let q = quotas(2.0);
        let mut r = m.for_request(&q, "User:ANONYMOUS", "admin", true);
        for _ in 0..2 {
            assert_eq!(r.check(0), Ok(()));
            r.record(10, 0);
        }
        // 2 left: the next topic takes 10, going 8 below zero; accepted, not throttled.
        assert_eq!(r.check(0), Ok(()));
        r.record(10, 0);
        assert_eq!(r.throttle_ms(), 0);
        // Now refused: 8 partitions at 2/s is 4 s.
        assert_eq!(r.check(0), Err(4_000));
        assert_eq!(r.throttle_ms(), 4_000);
        // Another request a second later: 2 refilled, 6 short, 3 s.
        let mut r = m.for_request(&q, "User:ANONYMOUS", "admin", true);
        assert_eq!(r.check(1_000), Err(3_000));
        // Once refilled to zero it is accepted again.
        let mut r = m.for_request(&q, "User:ANONYMOUS", "admin", true);
        assert_eq!(r.check(4_000), Ok(()));
        // Other clients have their own bucket, or none.
        let mut other = m.for_request(&q, "User:ANONYMOUS", "other", true);
        assert_eq!(other.check(4_000), Ok(()));
        other.record(1_000, 4_000);
        assert_eq!(other.check(4_000), Ok(()), "no quota for this client");
    }

    #[test]
    fn permissive_accepts_and_throttles() {
        let m = MutationQuotas::new(1000, 11);
        let q = quotas(1.0);
        let mut r = m.for_request(&q, "User:ANONYMOUS", "admin", false);
        // 11 in the bucket; 15 taken leaves 4 owed: 4 s.
        r.record(15, 0);
        assert_eq!(r.check(0), Ok(()), "permissive never refuses");
        r.record(1, 0);
        assert_eq!(r.throttle_ms(), 5_000);
        // The bucket never holds more than the burst.
        let mut r = m.for_request(&q, "User:ANONYMOUS", "admin", false);
        r.record(11, 1_000_000);
        assert_eq!(r.throttle_ms(), 0);
        r.record(1, 1_000_000);
        assert_eq!(r.throttle_ms(), 1_000);
    }
}
