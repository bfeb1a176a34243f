//! The metrics computed from state when `/metrics` is scraped: nothing on the request path
//! maintains them. Partition health from the metadata image (an `Arc` snapshot), log sizes and
//! high watermarks from the hosted replicas, consumer lag from the group coordinator's committed
//! offsets (copied out under its lock, which is then released) and the partitions' high
//! watermarks and batch headers, the data directory's free space, and the process (`process`).
//!
//! Per-partition series are capped (`metrics.partition.series.max` per family, in topic and
//! partition order): a broker with 100,000 partitions must not answer a scrape with millions of
//! lines. What the cap leaves out is counted in `strom_metrics_series_dropped`, and the log says
//! so once.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::broker::Broker;
use crate::clock::now_ms;

/// The scrape's bounds, and whether the log already said that series were dropped.
pub struct Limits {
    partition_series_max: usize,
    dropped_logged: AtomicBool,
}

impl Limits {
    pub fn new(partition_series_max: usize) -> Limits {
        Limits { partition_series_max, dropped_logged: AtomicBool::new(false) }
    }
}

/// Prometheus text, one family at a time.
pub struct Out<'a> {
    text: &'a mut String,
}

impl<'a> Out<'a> {
    pub fn new(text: &'a mut String) -> Out<'a> {
        Out { text }
    }

    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                escape_into(self.text, v);
                self.text.push('"');
            }
            self.text.push('}');
        }
        // Integers print without a fraction; Prometheus parses either.
        if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.text, " {}", value as i64);
        } else {
            let _ = writeln!(self.text, " {value}");
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the text format quotes it: backslash, double quote and newline escaped
/// (group ids and client-chosen names can hold anything).
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends the state metrics to `text`.
pub fn render(broker: &Broker, limits: &Limits, text: &mut String) {
    let mut out = Out::new(text);
    let me = broker.config.node_id;
    let image = broker.metadata.image();
    let active = broker.metadata.is_active();
    out.single("strom_controller_active", "gauge", "1 on the node that is the active controller, else 0", if active { 1.0 } else { 0.0 });

    // Partition health, as Kafka's ReplicaManager reports it: for the partitions led here.
    let (mut under_replicated, mut under_min_isr, mut offline) = (0u64, 0u64, 0u64);
    for topic in image.topics.values() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader < 0 {
                offline += 1;
            }
            if p.leader != me {
                continue;
            }
            if p.isr.len() < p.replicas.len() {
                under_replicated += 1;
            }
            let min_isr = broker.replicas.partition(&topic.name, index as i32).map_or(1, |r| r.min_insync_replicas().max(1));
            if p.isr.len() < min_isr as usize {
                under_min_isr += 1;
            }
        }
    }
    out.single("strom_partitions_under_replicated", "gauge", "partitions led here whose ISR is smaller than their replica set", under_replicated as f64);
    out.single("strom_partitions_under_min_isr", "gauge", "partitions led here whose ISR is smaller than min.insync.replicas", under_min_isr as f64);
    // As Kafka's OfflinePartitionsCount: reported by the active controller only, so that a sum
    // over the cluster's nodes counts each partition once.
    out.single("strom_partitions_offline", "gauge", "partitions without a leader (on the active controller; 0 elsewhere)", if active { offline as f64 } else { 0.0 });

    let cap = limits.partition_series_max;
    let mut dropped = 0usize;

    let mut hosted = broker.replicas.all();
    hosted.sort_by(|a, b| (&*a.topic, a.index).cmp(&(&*b.topic, b.index)));
    dropped += hosted.len().saturating_sub(cap) * 2;
    hosted.truncate(cap);
    out.family("strom_partition_log_size_bytes", "gauge", "bytes of the replica's segment files");
    for p in &hosted {
        if let Ok(size) = p.size_bytes() {
            out.sample("strom_partition_log_size_bytes", &[("topic", &p.topic), ("partition", &p.index.to_string())], size as f64);
        }
    }
    out.family("strom_partition_high_watermark", "gauge", "the replica's high watermark");
    for p in &hosted {
        out.sample("strom_partition_high_watermark", &[("topic", &p.topic), ("partition", &p.index.to_string())], p.high_watermark() as f64);
    }

    let (members, committed) = super::lag::committed(broker);
    out.family("strom_consumer_group_members", "gauge", "members of each consumer group coordinated here");
    for (group, n) in &members {
        out.sample("strom_consumer_group_members", &[("group", group)], *n as f64);
    }
    let now = now_ms();
    let lags: Vec<(&super::lag::Committed, i64)> =
        committed.iter().filter_map(|c| Some((c, super::lag::records(broker, &c.topic, c.partition, c.offset)?))).collect();
    dropped += lags.len().saturating_sub(cap) * 2;
    let lags: Vec<_> = lags.into_iter().take(cap).collect();
    out.family("strom_consumer_group_lag", "gauge", "records from the group's committed offset to the high watermark");
    for (c, lag) in &lags {
        out.sample("strom_consumer_group_lag", &[("group", &c.group), ("topic", &c.topic), ("partition", &c.partition.to_string())], *lag as f64);
    }
    out.family("strom_consumer_group_lag_seconds", "gauge", "age of the oldest record the group has not consumed (0 when it has consumed everything)");
    for (c, lag) in &lags {
        if let Some(s) = super::lag::seconds(broker, &c.topic, c.partition, c.offset, *lag, now) {
            out.sample("strom_consumer_group_lag_seconds", &[("group", &c.group), ("topic", &c.topic), ("partition", &c.partition.to_string())], s);
        }
    }
    out.single("strom_metrics_series_dropped", "gauge", "per-partition series left out of this scrape by metrics.partition.series.max", dropped as f64);
    if dropped > 0 && !limits.dropped_logged.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            max = cap,
            dropped,
            "/metrics leaves out per-partition series beyond metrics.partition.series.max (said once; strom_metrics_series_dropped counts them at each scrape)"
        );
    }

    if let Some((free, _)) = crate::disk_guard::space(&broker.config.log_dir) {
        out.single("strom_log_dir_free_bytes", "gauge", "bytes available to the broker on the data directory's file system", free as f64);
    }
    super::process::render(&mut out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_integers_print_plain() {
        let mut text = String::new();
        let mut out = Out::new(&mut text);
        out.family("m", "gauge", "help");
        out.sample("m", &[("group", "a\"b\\c\nd"), ("p", "0")], 3.0);
        out.sample("m", &[], 0.25);
        assert_eq!(text, "# HELP m help\n# TYPE m gauge\nm{group=\"a\\\"b\\\\c\\nd\",p=\"0\"} 3\nm 0.25\n");
    }
}
