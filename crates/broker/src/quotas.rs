//! Client quotas, enforced as Kafka's quota managers do, each quota resolved from the image's
//! quotas (most specific entity first) for the (user, client id) of the request:
//!
//! - byte rates (`producer_byte_rate` for Produce, `consumer_byte_rate` for Fetch) and the
//!   request quota (`request_percentage`), as Kafka's `ClientQuotaManager` and
//!   `ClientRequestQuotaManager`: a rate measured over `quota.window.num` samples of
//!   `quota.window.size.seconds`; when a request takes it over the quota, the response carries
//!   the throttle time that brings the rate back to the quota, and the connection reads nothing
//!   more from that client until it has passed (KIP-219: clients also hold back on their side);
//! - `controller_mutation_rate` (KIP-599), a token bucket of partitions (`mutation.rs`);
//! - the connection limits: `ip` quotas (`connection_creation_rate`), `max.connections`,
//!   `max.connections.per.ip` and its overrides (`connections.rs`).
//!
//! **What `request_percentage` measures.** Kafka counts the time its network and I/O threads
//! spend on a client's requests, as a percentage of one thread. Strom has no such thread pools:
//! a connection's requests run as tasks on the runtime's worker threads. So Strom counts the
//! time a worker thread spends running the request's handler (the sum of the handler's polls,
//! `throttle::Timed`), not the time it waits (a long poll, a parked join, replication), as a
//! percentage of one core: a client with `request_percentage=50` may keep half a core busy.
//! Decoding the frame and writing the response are not counted. Exempt, as in Kafka: a
//! follower's Fetch and the other cluster actions (`throttle::exempt`).
//!
//! All rates are this broker's own (Kafka's quotas are per broker too).

use std::collections::HashMap;
use std::sync::Mutex;

use strom_metadata::quota::Quotas;

pub mod connections;
pub mod mutation;
pub mod throttle;

/// What is metered by a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Produce,
    Fetch,
    /// Handler time, in percent-seconds of one core (`request_percentage`).
    Request,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => strom_metadata::quota::PRODUCER_BYTE_RATE,
            Kind::Fetch => strom_metadata::quota::CONSUMER_BYTE_RATE,
            Kind::Request => strom_metadata::quota::REQUEST_PERCENTAGE,
        }
    }
}

/// A value per sample window, as Kafka's `Rate` over `SampledStat` samples.
#[derive(Default)]
pub(crate) struct Rate {
    /// (window start ms, sum), oldest first, at most `samples` of them.
    windows: Vec<(i64, f64)>,
}

impl Rate {
    pub(crate) fn record(&mut self, value: f64, window_ms: i64, samples: usize, now_ms: i64) {
        // Samples older than the whole measured window no longer count (Kafka's
        // `purgeObsoleteSamples`).
        self.windows.retain(|(start, _)| now_ms - start < window_ms * samples as i64);
        match self.windows.last_mut() {
            Some((start, b)) if now_ms - *start < window_ms => *b += value,
            _ => {
                self.windows.push((now_ms, value));
                if self.windows.len() > samples {
                    self.windows.remove(0);
                }
            }
        }
    }

    /// Whether nothing was recorded since `horizon`.
    pub(crate) fn idle_since(&self, horizon: i64) -> bool {
        self.windows.last().is_none_or(|(start, _)| *start < horizon)
    }

    /// Kafka's `QuotaUtils.throttleTime`: how long the client must wait for its rate over the
    /// measured window to fall back to `quota`, capped at `max_ms`.
    pub(crate) fn throttle_ms(&self, quota: f64, window_ms: i64, samples: usize, now_ms: i64, max_ms: i64) -> i32 {
        let Some((oldest, _)) = self.windows.first() else { return 0 };
        let total: f64 = self.windows.iter().map(|(_, b)| b).sum();
        // Kafka measures over at least the full sample windows but the current one.
        let elapsed_ms = (now_ms - oldest).max((samples as i64 - 1) * window_ms).max(1) as f64;
        let rate = total * 1000.0 / elapsed_ms;
        if rate <= quota || quota <= 0.0 {
            return 0;
        }
        let throttle = (rate - quota) / quota * elapsed_ms;
        throttle.min(max_ms as f64).min(i32::MAX as f64) as i32
    }
}

pub struct QuotaManager {
    window_ms: i64,
    samples: usize,
    rates: Mutex<HashMap<(Kind, String, String), Rate>>,
    mutations: mutation::MutationQuotas,
    pub connections: connections::ConnectionQuotas,
}

/// Past this many metered clients, idle ones are dropped (a client id per request would
/// otherwise grow the map without bound).
pub(crate) const PRUNE_ABOVE: usize = 10_000;

/// The user name of a `User:<name>` principal, as quota entities name users.
pub(crate) fn user_of(principal: &str) -> &str {
    principal.split_once(':').map_or(principal, |(_, n)| n)
}

impl QuotaManager {
    pub fn new(window_seconds: u64, samples: usize, limits: connections::Limits) -> QuotaManager {
        let window_ms = (window_seconds as i64).saturating_mul(1000).max(1);
        let samples = samples.max(2);
        QuotaManager {
            window_ms,
            samples,
            rates: Mutex::new(HashMap::new()),
            mutations: mutation::MutationQuotas::new(window_ms, samples),
            connections: connections::ConnectionQuotas::new(limits, window_ms, samples),
        }
    }

    /// Records `value` of `kind` (bytes, or for `Request` percent-seconds: see
    /// [`throttle::percent_seconds`]) for the client and returns the throttle time in ms (0 when
    /// it is within its quota, or has none). `principal` is `User:<name>`.
    pub fn record(&self, quotas: &Quotas, kind: Kind, principal: &str, client_id: &str, value: f64, now_ms: i64) -> i32 {
        if quotas.is_empty() {
            return 0;
        }
        let user = user_of(principal);
        let Some(quota) = quotas.resolve(user, client_id, kind.key()) else { return 0 };
        let mut rates = crate::sync::lock(&self.rates);
        if rates.len() > PRUNE_ABOVE {
            let horizon = now_ms - self.window_ms * self.samples as i64;
            rates.retain(|_, r| !r.idle_since(horizon));
        }
        let rate = rates.entry((kind, user.to_string(), client_id.to_string())).or_default();
        rate.record(value, self.window_ms, self.samples, now_ms);
        // Kafka caps a request-quota throttle at one sample window (`ClientRequestQuotaManager`),
        // a byte-rate throttle at the whole measured window.
        let max_ms = match kind {
            Kind::Request => self.window_ms,
            Kind::Produce | Kind::Fetch => self.window_ms * self.samples as i64,
        };
        rate.throttle_ms(quota, self.window_ms, self.samples, now_ms, max_ms)
    }

    /// The controller mutation quota of one request (`mutation.rs`).
    pub fn mutations<'a>(&'a self, quotas: &Quotas, principal: &str, client_id: &str, strict: bool) -> mutation::Mutations<'a> {
        self.mutations.for_request(quotas, principal, client_id, strict)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_metadata::quota::{QuotaEntity, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE, USER};

    use super::*;

    fn manager() -> QuotaManager {
        QuotaManager::new(1, 11, connections::Limits::default())
    }

    fn set(q: &mut Quotas, user: &str, key: &str, v: f64) {
        let values: BTreeMap<String, f64> = [(key.to_string(), v)].into_iter().collect();
        q.alter(&QuotaEntity::new(vec![(USER.into(), Some(user.into()))]), &values, &[]);
    }

    #[test]
    fn throttles_what_goes_over_and_nothing_else() {
        let mut q = Quotas::default();
        let m = manager();
        assert_eq!(m.record(&q, Kind::Produce, "User:alice", "c", 10_000_000.0, 0), 0, "no quotas, no throttling");
        set(&mut q, "alice", PRODUCER_BYTE_RATE, 1000.0);
        // 10 s of measured window at 1000 B/s allow 10,000 bytes.
        assert_eq!(m.record(&q, Kind::Produce, "User:alice", "c", 5_000.0, 0), 0);
        let t = m.record(&q, Kind::Produce, "User:alice", "c", 10_000.0, 100);
        // 15,000 bytes over 10 s: 1,500 B/s, half over: 5 s.
        assert_eq!(t, 5_000);
        assert_eq!(m.record(&q, Kind::Produce, "User:bob", "c", 1_000_000.0, 100), 0, "bob has no quota");
        assert_eq!(m.record(&q, Kind::Fetch, "User:alice", "c", 1_000_000.0, 100), 0, "no consumer quota");
        // A huge burst is capped at the whole window (11 s).
        assert_eq!(m.record(&q, Kind::Produce, "User:alice", "c", 1_000_000_000.0, 200), 11_000);
    }

    #[test]
    fn request_percentage_is_handler_time_as_a_share_of_one_core() {
        let mut q = Quotas::default();
        set(&mut q, "alice", REQUEST_PERCENTAGE, 10.0);
        let m = manager();
        // 10% of a core over the 10 s measured: 1 s of handler time is allowed.
        let half_second = throttle::percent_seconds(std::time::Duration::from_millis(500));
        assert_eq!(half_second, 50.0);
        assert_eq!(m.record(&q, Kind::Request, "User:alice", "c", half_second, 0), 0);
        assert_eq!(m.record(&q, Kind::Request, "User:alice", "c", half_second, 10), 0, "exactly at the quota");
        // 1.5 s over 10 s is 15%: half over the quota, 5 s to wait, capped at one window (1 s),
        // as Kafka's ClientRequestQuotaManager caps it.
        assert_eq!(m.record(&q, Kind::Request, "User:alice", "c", half_second, 20), 1_000);
        // Other clients of other users are not affected.
        assert_eq!(m.record(&q, Kind::Request, "User:bob", "c", 1_000.0, 20), 0);
        // Once the samples age out, the client is under its quota again.
        assert_eq!(m.record(&q, Kind::Request, "User:alice", "c", 0.0, 60_000), 0);
    }

    #[test]
    fn a_rate_forgets_samples_older_than_its_window() {
        let mut r = Rate::default();
        for s in 0..20 {
            r.record(10.0, 1000, 11, s * 1000);
        }
        assert_eq!(r.windows.len(), 11);
        // 110 over the last 10 s (the oldest sample started 10 s ago): 11 per s.
        assert_eq!(r.throttle_ms(11.0, 1000, 11, 19_000, 100_000), 0);
        assert_eq!(r.throttle_ms(5.5, 1000, 11, 19_000, 100_000), 10_000);
        assert!(r.idle_since(19_001) && !r.idle_since(19_000));
    }
}
