//! Client byte-rate quotas, enforced as Kafka's `ClientQuotaManager` does: each (user, client
//! id) has a rate measured over `quota.window.num` samples of `quota.window.size.seconds`;
//! when a request takes it over the quota that applies (`producer_byte_rate` for Produce,
//! `consumer_byte_rate` for Fetch, resolved from the image's quotas, most specific entity
//! first), the response carries the throttle time that brings the rate back to the quota, and
//! the connection reads nothing more from that client until it has passed (KIP-219: clients
//! also hold back on their side).
//!
//! The rates are this broker's own (Kafka's quotas are per broker too).

use std::collections::HashMap;
use std::sync::Mutex;

use strom_metadata::quota::Quotas;

/// What is metered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Produce,
    Fetch,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => strom_metadata::quota::PRODUCER_BYTE_RATE,
            Kind::Fetch => strom_metadata::quota::CONSUMER_BYTE_RATE,
        }
    }
}

/// One client's bytes per sample window.
struct Rate {
    /// (window start ms, bytes), oldest first, at most `samples` of them.
    windows: Vec<(i64, f64)>,
}

pub struct QuotaManager {
    window_ms: i64,
    samples: usize,
    rates: Mutex<HashMap<(Kind, String, String), Rate>>,
}

/// Past this many metered clients, idle ones are dropped (a client id per request would
/// otherwise grow the map without bound).
const PRUNE_ABOVE: usize = 10_000;

impl QuotaManager {
    pub fn new(window_seconds: u64, samples: usize) -> QuotaManager {
        QuotaManager { window_ms: (window_seconds as i64).saturating_mul(1000).max(1), samples: samples.max(2), rates: Mutex::new(HashMap::new()) }
    }

    /// Records `bytes` of `kind` for the client and returns the throttle time in ms (0 when it
    /// is within its quota, or has none). `principal` is `User:<name>`.
    pub fn record(&self, quotas: &Quotas, kind: Kind, principal: &str, client_id: &str, bytes: usize, now_ms: i64) -> i32 {
        if quotas.is_empty() {
            return 0;
        }
        let user = principal.split_once(':').map_or(principal, |(_, n)| n);
        let Some(quota) = quotas.resolve(user, client_id, kind.key()) else { return 0 };
        let mut rates = crate::sync::lock(&self.rates);
        if rates.len() > PRUNE_ABOVE {
            let horizon = now_ms - self.window_ms * self.samples as i64;
            rates.retain(|_, r| r.windows.last().is_some_and(|(start, _)| *start >= horizon));
        }
        let rate = rates.entry((kind, user.to_string(), client_id.to_string())).or_insert_with(|| Rate { windows: Vec::new() });
        match rate.windows.last_mut() {
            Some((start, b)) if now_ms - *start < self.window_ms => *b += bytes as f64,
            _ => {
                rate.windows.push((now_ms, bytes as f64));
                if rate.windows.len() > self.samples {
                    rate.windows.remove(0);
                }
            }
        }
        throttle_ms(&rate.windows, quota, self.window_ms, self.samples, now_ms)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long the client must wait for its rate over the
/// measured window to fall back to the quota, capped at the whole window.
fn throttle_ms(windows: &[(i64, f64)], quota: f64, window_ms: i64, samples: usize, now_ms: i64) -> i32 {
    let Some((oldest, _)) = windows.first() else { return 0 };
    let total: f64 = windows.iter().map(|(_, b)| b).sum();
    // Kafka measures over at least the full sample windows but the current one.
    let elapsed_ms = (now_ms - oldest).max((samples as i64 - 1) * window_ms).max(1) as f64;
    let rate = total * 1000.0 / elapsed_ms;
    if rate <= quota || quota <= 0.0 {
        return 0;
    }
    let throttle = (rate - quota) / quota * elapsed_ms;
    throttle.min((window_ms * samples as i64) as f64) as i32
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_metadata::quota::{QuotaEntity, PRODUCER_BYTE_RATE, USER};

    use super::*;

    #[test]
    fn throttles_what_goes_over_and_nothing_else() {
        let mut q = Quotas::default();
        let m = QuotaManager::new(1, 11);
        assert_eq!(m.record(&q, Kind::Produce, "User:alice", "c", 10_000_000, 0), 0, "no quotas, no throttling");
        let set: BTreeMap<String, f64> = [(PRODUCER_BYTE_RATE.to_string(), 1000.0)].into_iter().collect();
        q.alter(&QuotaEntity::new(vec![(USER.into(), Some("alice".into()))]), &set, &[]);
        // 10 s of measured window at 1000 B/s allow 10,000 bytes.
        assert_eq!(m.record(&q, Kind::Produce, "User:alice", "c", 5_000, 0), 0);
        let t = m.record(&q, Kind::Produce, "User:alice", "c", 10_000, 100);
        // 15,000 bytes over 10 s: 1,500 B/s, half over: 5 s.
        assert_eq!(t, 5_000);
        assert_eq!(m.record(&q, Kind::Produce, "User:bob", "c", 1_000_000, 100), 0, "bob has no quota");
        assert_eq!(m.record(&q, Kind::Fetch, "User:alice", "c", 1_000_000, 100), 0, "no consumer quota");
        // A huge burst is capped at the whole window (11 s).
        assert_eq!(m.record(&q, Kind::Produce, "User:alice", "c", 1_000_000_000, 200), 11_000);
    }
}
