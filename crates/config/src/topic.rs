//! What a topic's configs mean for its partitions, and the check of a topic-level value.

use strom_storage::{CleanupPolicy, LogConfig};

use crate::keys::{by_topic_key, key, INERT_TOPIC_KEYS};
use crate::resolve::Resolver;
use crate::ConfigError;

/// A topic's effective settings: the broker defaults with its overrides on top.
#[derive(Clone, Debug)]
pub struct TopicSettings {
    pub log: LogConfig,
    pub log_append_time: bool,
    /// The codec produced batches are stored in (`compression.type`).
    pub compression: CompressionType,
    /// fsync before acknowledging once this many messages are unflushed (Kafka's flush.messages).
    pub flush_messages: i64,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
    /// Serve Fetch v0-3 consumers by down-converting (Kafka's message.downconversion.enable).
    pub down_conversion: bool,
    /// KIP-73: the replicas whose leader's sending is throttled (`partition:leader broker`).
    pub leader_throttled_replicas: ThrottledReplicas,
    /// KIP-73: the replicas whose follower's fetching is throttled (`partition:follower broker`).
    pub follower_throttled_replicas: ThrottledReplicas,
}

/// `compression.type`: what codec a topic's batches are stored in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompressionType {
    /// Each batch as the producer compressed it.
    #[default]
    Producer,
    /// Every batch in this codec (the batch attribute's value: 0 uncompressed, 1 gzip, 2 snappy,
    /// 3 lz4, 4 zstd).
    Codec(i16),
}

impl CompressionType {
    pub fn parse(value: &str) -> Option<CompressionType> {
        Some(match value.trim() {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Codec(0),
            "gzip" => CompressionType::Codec(1),
            "snappy" => CompressionType::Codec(2),
            "lz4" => CompressionType::Codec(3),
            "zstd" => CompressionType::Codec(4),
            _ => return None,
        })
    }
}

/// A throttled-replica list (`leader/follower.replication.throttled.replicas`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// `*`: every replica of the topic.
    All,
    /// (partition, broker id) pairs; empty: none.
    Listed(Vec<(i32, i32)>),
    #[default]
    None,
}

impl ThrottledReplicas {
    /// Kafka's ThrottledReplicaListValidator: `*`, or comma-separated `partition:brokerId`
    /// pairs (blank entries are allowed and mean nothing, as Kafka's list parsing leaves them).
    pub fn parse(value: &str) -> Option<ThrottledReplicas> {
        let v = value.trim();
        if v == "*" {
            return Some(ThrottledReplicas::All);
        }
        let mut pairs = Vec::new();
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (p, b) = item.split_once(':')?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            if !digits(p) || !digits(b) {
                return None;
            }
            pairs.push((p.parse().ok()?, b.parse().ok()?));
        }
        Some(if pairs.is_empty() { ThrottledReplicas::None } else { ThrottledReplicas::Listed(pairs) })
    }

    /// Whether the list names replica `broker` of `partition` (Kafka filters the list by this
    /// broker's id and throttles the partitions left).
    pub fn covers(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(pairs) => pairs.contains(&(partition, broker)),
            ThrottledReplicas::None => false,
        }
    }
}

impl TopicSettings {
    /// Reads the topic-level keys through their broker names; a topic override reaches `r` under
    /// the broker key it overrides, so Kafka's precedence (`log.retention.ms` over `.minutes`
    /// over `.hours`) applies to both levels alike.
    pub(crate) fn resolve(r: &Resolver) -> Result<TopicSettings, ConfigError> {
        const HOUR_MS: i64 = 3_600_000;
        let segment_ms: i64 = match r.set("log.roll.ms")? {
            Some(_) => r.int("log.roll.ms")?,
            None => r.int::<i64>("log.roll.hours")?.saturating_mul(HOUR_MS),
        };
        let retention_ms: i64 = if r.set("log.retention.ms")?.is_some() {
            r.int("log.retention.ms")?
        } else if r.set("log.retention.minutes")?.is_some() {
            let m: i64 = r.int("log.retention.minutes")?;
            if m < 0 { -1 } else { m.saturating_mul(60_000) }
        } else {
            let h: i64 = r.int("log.retention.hours")?;
            if h < 0 { -1 } else { h.saturating_mul(HOUR_MS) }
        };
        // The derived keys are shown with the value they resolved to.
        for (name, value) in [("log.roll.ms", segment_ms), ("log.retention.ms", retention_ms)] {
            if let Some(k) = key(name) {
                r.remember(k, value.to_string());
            }
        }
        let policy = r.text("log.cleanup.policy")?.unwrap_or_default();
        // Kafka (3.6+): the deprecated difference.max.ms stands in for either bound left at its
        // default (Long.MAX_VALUE).
        let difference: i64 = r.int("log.message.timestamp.difference.max.ms")?;
        let bound = |v: i64| if v == i64::MAX { difference } else { v };
        Ok(TopicSettings {
            log: LogConfig {
                segment_bytes: r.int("log.segment.bytes")?,
                segment_ms,
                retention_ms,
                retention_bytes: r.int("log.retention.bytes")?,
                index_interval_bytes: r.int("log.index.interval.bytes")?,
                max_message_bytes: r.int("message.max.bytes")?,
                cleanup_policy: CleanupPolicy::parse(policy).unwrap_or_default(),
                delete_retention_ms: r.int("log.cleaner.delete.retention.ms")?,
                min_cleanable_dirty_ratio: r.float("log.cleaner.min.cleanable.ratio")?,
                message_timestamp_before_max_ms: bound(r.int("log.message.timestamp.before.max.ms")?),
                message_timestamp_after_max_ms: bound(r.int("log.message.timestamp.after.max.ms")?),
            },
            log_append_time: r.text("log.message.timestamp.type")? == Some("LogAppendTime"),
            compression: CompressionType::parse(r.text("compression.type")?.unwrap_or("producer")).unwrap_or_default(),
            flush_messages: r.int("log.flush.interval.messages")?,
            min_insync_replicas: r.int("min.insync.replicas")?,
            unclean_leader_election: r.bool("unclean.leader.election.enable")?,
            down_conversion: r.bool("log.message.downconversion.enable")?,
            leader_throttled_replicas: throttled(r, "leader.replication.throttled.replicas")?,
            follower_throttled_replicas: throttled(r, "follower.replication.throttled.replicas")?,
        })
    }
}

fn throttled(r: &Resolver, name: &str) -> Result<ThrottledReplicas, ConfigError> {
    let v = r.text(name)?.unwrap_or_default();
    ThrottledReplicas::parse(v).ok_or_else(|| crate::resolve::invalid(name, v, "not a throttled-replica list".into()))
}

/// Validates one topic config value; the error text goes back to the client in INVALID_CONFIG.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    match by_topic_key(name) {
        Some(k) => k.check_value(name, value).map_err(|e| e.to_string()),
        None if INERT_TOPIC_KEYS.contains(&name) => Ok(()),
        None => Err(format!("unknown topic config `{name}`")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::BrokerConfig;

    /// The throttled-replica lists reach a topic's settings, filtered per broker as Kafka's
    /// `parseThrottledPartitions` does; a broker's properties cannot hold them.
    #[test]
    fn throttled_replica_lists_are_topic_settings() {
        let broker = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
        assert_eq!(broker.topic_defaults.leader_throttled_replicas, ThrottledReplicas::None);
        let overrides: BTreeMap<String, String> =
            [("leader.replication.throttled.replicas", "0:1, 1:2"), ("follower.replication.throttled.replicas", "*")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let s = broker.topic_settings(&overrides);
        assert!(s.leader_throttled_replicas.covers(0, 1) && s.leader_throttled_replicas.covers(1, 2));
        assert!(!s.leader_throttled_replicas.covers(0, 2) && !s.leader_throttled_replicas.covers(1, 1));
        assert!(s.follower_throttled_replicas.covers(7, 9));
        let shown: Vec<_> = broker.topic_values(&overrides).into_iter().filter(|(k, _)| k.topic_only).map(|(k, v)| (k.name, v)).collect();
        assert_eq!(shown, vec![("follower.replication.throttled.replicas", "*".to_string()), ("leader.replication.throttled.replicas", "0:1, 1:2".to_string())]);
        assert!(validate_topic_config("leader.replication.throttled.replicas", "0:1").is_ok());
        assert!(validate_topic_config("leader.replication.throttled.replicas", "0-1").is_err());
        let props: BTreeMap<String, String> = [("leader.replication.throttled.replicas".to_string(), "*".to_string())].into();
        assert!(matches!(BrokerConfig::from_props(&props), Err(crate::ConfigError::UnknownKey(k)) if k == "leader.replication.throttled.replicas"));
        let rate: BTreeMap<String, String> = [("leader.replication.throttled.rate".to_string(), "1000".to_string())].into();
        assert_eq!(BrokerConfig::from_props(&rate).unwrap().replication_throttle.leader_rate, 1000);
    }
}
