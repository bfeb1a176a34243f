//! Connection limits, as Kafka's `ConnectionQuotas`:
//!
//! - `max.connections`: at that many open client connections the listeners stop accepting
//!   (the kernel's backlog holds new ones) until one closes. The inter-broker listener is
//!   exempt when there are other listeners, so brokers can always reach each other.
//! - `connection_creation_rate` of the `ip` quota entities (an address, or the default `ip`
//!   entity): a rate over `quota.window.num` samples of `quota.window.size.seconds`. A new
//!   connection above it is not counted and is closed after the throttle time, unserved
//!   (Kafka's delayed close: the client backs off instead of reconnecting at once).
//! - `max.connections.per.ip` and `max.connections.per.ip.overrides`: a connection from an
//!   address that already has that many is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use strom_metadata::quota::Quotas;

use super::Rate;

/// The static limits (broker keys).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub per_ip_overrides: HashMap<IpAddr, usize>,
}

impl Default for Limits {
    /// Kafka's defaults: no limits (`Int.MaxValue`).
    fn default() -> Limits {
        Limits { max_connections: i32::MAX as usize, max_per_ip: i32::MAX as usize, per_ip_overrides: HashMap::new() }
    }
}

#[derive(Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    rates: HashMap<IpAddr, Rate>,
}

struct Inner {
    limits: Limits,
    window_ms: i64,
    samples: usize,
    state: Mutex<State>,
    freed: tokio::sync::Notify,
}

pub struct ConnectionQuotas(Arc<Inner>);

/// What happens to a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Served; the slot is given back when dropped.
    Admitted(Slot),
    /// Over its address's `connection_creation_rate`: closed after this many ms, unserved.
    Throttled(i32),
    /// Its address already has this many connections: closed at once.
    TooMany(usize),
}

/// One counted connection.
#[derive(Debug)]
pub struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionQuotas").field("limits", &self.limits).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = crate::sync::lock(&self.inner.state);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
        drop(s);
        self.inner.freed.notify_waiters();
    }
}

impl ConnectionQuotas {
    pub fn new(limits: Limits, window_ms: i64, samples: usize) -> ConnectionQuotas {
        ConnectionQuotas(Arc::new(Inner { limits, window_ms, samples, state: Mutex::new(State::default()), freed: tokio::sync::Notify::new() }))
    }

    /// Open client connections.
    pub fn open(&self) -> usize {
        crate::sync::lock(&self.0.state).total
    }

    /// Waits until a connection may be accepted on a listener (`protected`: the inter-broker
    /// listener, which `max.connections` does not hold back).
    pub async fn wait_for_slot(&self, protected: bool) {
        loop {
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if protected || self.open() < self.0.limits.max_connections {
                return;
            }
            static LIMIT: crate::log_limit::RateLimit = crate::log_limit::RateLimit::new(10_000);
            if let Some(suppressed) = LIMIT.allow(crate::clock::now_ms()) {
                tracing::warn!(max = self.0.limits.max_connections, similar_since_last = suppressed, "max.connections reached: not accepting connections until one closes");
            }
            freed.await;
        }
    }

    /// Counts a new connection from `ip`, or says why it is not served.
    pub fn admit(&self, ip: IpAddr, quotas: &Quotas, now_ms: i64) -> Admission {
        let inner = &self.0;
        let mut s = crate::sync::lock(&inner.state);
        if let Some(quota) = quotas.resolve_ip(ip) {
            if s.rates.len() > super::PRUNE_ABOVE {
                let horizon = now_ms - inner.window_ms * inner.samples as i64;
                s.rates.retain(|_, r| !r.idle_since(horizon));
            }
            let rate = s.rates.entry(ip).or_default();
            rate.record(1.0, inner.window_ms, inner.samples, now_ms);
            // Capped at one sample window, as Kafka's ConnectionQuotas caps it.
            let throttle = rate.throttle_ms(quota, inner.window_ms, inner.samples, now_ms, inner.window_ms);
            if throttle > 0 {
                // Not accepted, so not counted (Kafka un-records it too).
                rate.record(-1.0, inner.window_ms, inner.samples, now_ms);
                return Admission::Throttled(throttle);
            }
        }
        let max = inner.limits.per_ip_overrides.get(&ip).copied().unwrap_or(inner.limits.max_per_ip);
        let count = s.per_ip.get(&ip).copied().unwrap_or(0);
        if count >= max {
            return Admission::TooMany(max);
        }
        s.per_ip.insert(ip, count + 1);
        s.total += 1;
        Admission::Admitted(Slot { inner: inner.clone(), ip })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strom_metadata::quota::{QuotaEntity, CONNECTION_CREATION_RATE, IP};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn per_ip_limits_and_overrides() {
        let limits = Limits { max_connections: 100, max_per_ip: 2, per_ip_overrides: [(ip("10.0.0.9"), 0)].into_iter().collect() };
        let c = ConnectionQuotas::new(limits, 1000, 11);
        let q = Quotas::default();
        let a = c.admit(ip("10.0.0.1"), &q, 0);
        let b = c.admit(ip("10.0.0.1"), &q, 0);
        assert!(matches!((&a, &b), (Admission::Admitted(_), Admission::Admitted(_))));
        assert!(matches!(c.admit(ip("10.0.0.1"), &q, 0), Admission::TooMany(2)));
        assert!(matches!(c.admit(ip("10.0.0.2"), &q, 0), Admission::Admitted(_)), "another address has its own count");
        assert!(matches!(c.admit(ip("10.0.0.9"), &q, 0), Admission::TooMany(0)), "an override of 0 refuses every connection");
        assert_eq!(c.open(), 2, "refused and closed connections are not counted");
        drop(a);
        assert_eq!(c.open(), 1);
        assert!(matches!(c.admit(ip("10.0.0.1"), &q, 0), Admission::Admitted(_)), "a closed connection frees its slot");
    }

    #[test]
    fn connection_creation_rate_per_ip_and_default() {
        let c = ConnectionQuotas::new(Limits::default(), 1000, 11);
        let mut q = Quotas::default();
        let rate = |v: f64| [(CONNECTION_CREATION_RATE.to_string(), v)].into_iter().collect::<BTreeMap<_, _>>();
        q.alter(&QuotaEntity::new(vec![(IP.into(), None)]), &rate(1.0), &[]);
        q.alter(&QuotaEntity::new(vec![(IP.into(), Some("10.0.0.2".into()))]), &rate(100.0), &[]);
        // 1 connection/s measured over 10 s: 10 are within the default quota, the 11th is over
        // (11 over 10 s), 100 ms over: the throttle is 1 s of the 10 s window (capped at one sample window).
        let mut kept = Vec::new();
        for _ in 0..10 {
            match c.admit(ip("10.0.0.1"), &q, 0) {
                Admission::Admitted(s) => kept.push(s),
                other => panic!("refused within the quota: {other:?}"),
            }
        }
        assert!(matches!(c.admit(ip("10.0.0.1"), &q, 0), Admission::Throttled(1_000)));
        // The throttled connection was not counted: still over only by the next one.
        assert!(matches!(c.admit(ip("10.0.0.1"), &q, 0), Admission::Throttled(1_000)));
        // Closing connections does not give back creation rate.
        kept.clear();
        assert!(matches!(c.admit(ip("10.0.0.1"), &q, 0), Admission::Throttled(_)));
        // The address with its own, higher quota is not throttled.
        for _ in 0..50 {
            assert!(matches!(c.admit(ip("10.0.0.2"), &q, 0), Admission::Admitted(_)));
        }
        // After the window the address may connect again.
        assert!(matches!(c.admit(ip("10.0.0.1"), &q, 20_000), Admission::Admitted(_)));
    }
}
