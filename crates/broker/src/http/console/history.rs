//! The last hour, for the console's charts: every `INTERVAL` a sampler notes each topic's
//! records (the sum of its partitions' log end offsets, as hosted here) and each group's total
//! lag and committed position. Rates are differences of those sums, so nothing on the produce or
//! fetch path counts anything for the console. Memory is bounded: `SAMPLES` per series and at
//! most `MAX_SERIES` series of each kind (the rest are not charted; the page says so).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::broker::Broker;

pub const INTERVAL: Duration = Duration::from_secs(10);
/// One hour of samples.
const SAMPLES: usize = 360;
pub const MAX_SERIES: usize = 1000;

/// One series: (time ms, value) samples, oldest first.
type Series = VecDeque<(i64, i64)>;

#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Topic → records appended so far (sum of log end offsets).
    topic_records: BTreeMap<String, Series>,
    /// Group → total lag in records.
    group_lag: BTreeMap<String, Series>,
    /// Group → sum of committed offsets (its consumption, as a rate).
    group_committed: BTreeMap<String, Series>,
}

/// What a chart asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Records appended per second.
    TopicRate,
    /// Records per second all topics together.
    TotalRate,
    /// Total lag in records.
    GroupLag,
    /// Records consumed (committed) per second.
    GroupRate,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "topic-rate" => Kind::TopicRate,
            "total-rate" => Kind::TotalRate,
            "group-lag" => Kind::GroupLag,
            "group-rate" => Kind::GroupRate,
            _ => return None,
        })
    }
}

fn push(map: &mut BTreeMap<String, Series>, key: &str, now: i64, value: i64) {
    if !map.contains_key(key) && map.len() >= MAX_SERIES {
        return;
    }
    let series = map.entry(key.to_string()).or_default();
    if series.len() == SAMPLES {
        series.pop_front();
    }
    series.push_back((now, value));
}

/// Keeps only the series whose keys are still there (deleted topics and groups go).
fn retain(map: &mut BTreeMap<String, Series>, present: &std::collections::BTreeSet<&str>) {
    map.retain(|k, _| present.contains(k.as_str()));
}

/// Per-second differences of a cumulative series; a drop (a topic recreated, a reset) counts 0.
fn rates(series: &Series) -> Vec<(i64, f64)> {
    series
        .iter()
        .zip(series.iter().skip(1))
        .map(|(a, b)| {
            let dt = (b.0 - a.0).max(1) as f64 / 1000.0;
            (b.0, ((b.1 - a.1).max(0)) as f64 / dt)
        })
        .collect()
}

impl History {
    /// Takes one sample of `broker` at `now` (ms).
    pub fn sample(&self, broker: &Broker, now: i64) {
        let mut topics: BTreeMap<String, i64> = BTreeMap::new();
        for p in broker.replicas.all() {
            if let Ok(end) = p.log_end_offset() {
                *topics.entry(p.topic.to_string()).or_default() += end;
            }
        }
        let (members, committed) = super::super::lag::committed(broker);
        let mut lag: BTreeMap<&str, i64> = members.iter().map(|(g, _)| (g.as_str(), 0)).collect();
        let mut position: BTreeMap<&str, i64> = lag.clone();
        for c in &committed {
            *position.entry(&c.group).or_default() += c.offset;
            if let Some(l) = super::super::lag::records(broker, &c.topic, c.partition, c.offset) {
                *lag.entry(&c.group).or_default() += l;
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (t, records) in &topics {
            push(&mut inner.topic_records, t, now, *records);
        }
        for (g, l) in &lag {
            push(&mut inner.group_lag, g, now, *l);
        }
        for (g, p) in &position {
            push(&mut inner.group_committed, g, now, *p);
        }
        retain(&mut inner.topic_records, &topics.keys().map(String::as_str).collect());
        let groups = lag.keys().copied().collect();
        retain(&mut inner.group_lag, &groups);
        retain(&mut inner.group_committed, &groups);
    }

    /// The chart's points: (time ms, value). `name` is the topic or group (ignored for totals).
    pub fn series(&self, kind: Kind, name: &str) -> Vec<(i64, f64)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            Kind::TopicRate => inner.topic_records.get(name).map(rates).unwrap_or_default(),
            Kind::GroupRate => inner.group_committed.get(name).map(rates).unwrap_or_default(),
            Kind::GroupLag => inner.group_lag.get(name).map(|s| s.iter().map(|&(t, v)| (t, v as f64)).collect()).unwrap_or_default(),
            Kind::TotalRate => {
                // Sum per sample time: every topic is sampled at the same instants.
                let mut sum: BTreeMap<i64, f64> = BTreeMap::new();
                for s in inner.topic_records.values() {
                    for (t, r) in rates(s) {
                        *sum.entry(t).or_default() += r;
                    }
                }
                sum.into_iter().collect()
            }
        }
    }

    /// Samples every `INTERVAL` until the broker stops.
    pub async fn run(self: std::sync::Arc<Self>, broker: std::sync::Arc<Broker>) {
        let mut stopping = broker.stopping();
        loop {
            let (h, b) = (self.clone(), broker.clone());
            // Reading sizes and groups takes locks and, for lag, a header read: off the runtime.
            let _ = tokio::task::spawn_blocking(move || h.sample(&b, crate::clock::now_ms())).await;
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_bounded_and_rates_never_negative() {
        let mut map = BTreeMap::new();
        for i in 0..(SAMPLES as i64 + 5) {
            push(&mut map, "t", i * 10_000, i * 100);
        }
        let s = &map["t"];
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s.front(), Some(&(50_000, 500)));
        assert!(rates(s).iter().all(|&(_, r)| (r - 10.0).abs() < 1e-9));
        let mut dropped: Series = VecDeque::from(vec![(0, 100), (10_000, 0), (20_000, 50)]);
        assert_eq!(rates(&dropped).iter().map(|p| p.1).collect::<Vec<_>>(), vec![0.0, 5.0]);
        dropped.clear();
        assert!(rates(&dropped).is_empty());
        for i in 0..MAX_SERIES + 10 {
            push(&mut map, &format!("g{i}"), 0, 0);
        }
        assert_eq!(map.len(), MAX_SERIES);
    }
}
