//! Per-partition settings: [`LogConfig`] (Kafka's topic-level segment, retention and size
//! settings) and [`CleanupPolicy`].

#[cfg(doc)]
use crate::PartitionLog;

#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Roll when the active segment would exceed this size.
    pub segment_bytes: u64,
    /// Roll when the active segment started filling longer ago than this.
    pub segment_ms: i64,
    /// -1: keep forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    pub index_interval_bytes: u32,
    /// Largest batch accepted.
    pub max_message_bytes: u32,
    /// Kafka's cleanup.policy. Time and size retention apply only when it includes delete;
    /// compaction is run by the broker (see [`PartitionLog::compaction_plan`]).
    pub cleanup_policy: CleanupPolicy,
    /// Kafka's delete.retention.ms: how long tombstones outlive their batch's maxTimestamp before
    /// compaction removes them. The broker passes it to [`PartitionLog::compaction_plan`].
    pub delete_retention_ms: i64,
    /// Kafka's min.cleanable.dirty.ratio: compact only once this share of the cleanable bytes
    /// was written since the last compaction (see [`PartitionLog::compaction_due`]).
    pub min_cleanable_dirty_ratio: f64,
    /// Kafka's message.timestamp.before.max.ms / after.max.ms: how far a CreateTime record's
    /// timestamp may lie before or after the broker's clock (INVALID_TIMESTAMP beyond);
    /// i64::MAX: no bound.
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
}

/// Kafka's cleanup.policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: time and size retention.
    #[default]
    Delete,
    /// `compact`: compaction only, no retention deletion.
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

impl CleanupPolicy {
    pub fn includes_delete(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    pub fn includes_compact(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Parses Kafka's `cleanup.policy` list: `delete`, `compact`, or both in either order
    /// (comma-separated, spaces allowed). None for anything else, including an empty list.
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let (mut delete, mut compact) = (false, false);
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (false, true) => Some(CleanupPolicy::Delete),
            (true, false) => Some(CleanupPolicy::Compact),
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (false, false) => None,
        }
    }
}

/// A base for tests only: the defaults a broker's topics get come from the key table of
/// `strom-config`, the one place a default is written.
#[cfg(test)]
impl Default for LogConfig {
    fn default() -> Self {
        const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: WEEK_MS,
            retention_ms: WEEK_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
        }
    }
}
