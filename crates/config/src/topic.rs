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
    /// fsync before acknowledging once this many messages are unflushed (Kafka's flush.messages).
    pub flush_messages: i64,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
    /// Serve Fetch v0-3 consumers by down-converting (Kafka's message.downconversion.enable).
    pub down_conversion: bool,
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
            flush_messages: r.int("log.flush.interval.messages")?,
            min_insync_replicas: r.int("min.insync.replicas")?,
            unclean_leader_election: r.bool("unclean.leader.election.enable")?,
            down_conversion: r.bool("log.message.downconversion.enable")?,
        })
    }
}

/// Validates one topic config value; the error text goes back to the client in INVALID_CONFIG.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    match by_topic_key(name) {
        Some(k) => k.check_value(name, value).map_err(|e| e.to_string()),
        None if INERT_TOPIC_KEYS.contains(&name) => Ok(()),
        None => Err(format!("unknown topic config `{name}`")),
    }
}
