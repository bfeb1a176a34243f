//! The rules a produced batch's records must follow, one by one (Kafka's LogValidator): a
//! compacted topic's records need keys, a CreateTime topic's record timestamps must lie within
//! `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` of the broker's clock,
//! and a producer may not mark its batch LogAppendTime (only the broker stamps that; Kafka lets
//! it pass only for a CreateTime topic's records that carry a timestamp). Every refused record
//! is named (Kafka's ProduceResponse `record_errors`, KIP-467).
//!
//! The produce path otherwise never decodes records, so records are read only when a rule can
//! be broken: a compacted topic, a lower timestamp bound, a batch whose header says its newest
//! timestamp is past the upper bound, or a batch marked LogAppendTime. With the defaults (no
//! bounds) and a topic that is not compacted, nothing here runs.

use std::borrow::Cow;

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::codec::{decompress, DEFAULT_MAX_DECOMPRESSED_BYTES};
use crate::compaction::parse_records;
use crate::error::{RecordError, RecordRule, StorageError};
use crate::LogConfig;

/// Kafka's RecordBatch.NO_TIMESTAMP: a record without a timestamp is not checked.
const NO_TIMESTAMP: i64 = -1;

/// What a log's configuration asks of each record of an append, at the moment `now_ms`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordRules {
    keys_required: bool,
    /// The earliest and latest timestamps accepted; None: no bound (the default, i64::MAX ms).
    earliest: Option<i64>,
    latest: Option<i64>,
    /// Kafka's message prints the window even when a side is unbounded, as Java's wrapping
    /// arithmetic computes it.
    window: (i64, i64),
    create_time: bool,
}

impl RecordRules {
    /// `create_time`: the topic keeps producers' timestamps (under LogAppendTime the broker
    /// stamps batches itself and their timestamps are not checked, as in Kafka).
    pub(crate) fn new(config: &LogConfig, create_time: bool, now_ms: i64) -> RecordRules {
        let (before, after) = (config.message_timestamp_before_max_ms, config.message_timestamp_after_max_ms);
        let bounded = |limit: i64| create_time && limit != i64::MAX;
        RecordRules {
            keys_required: config.cleanup_policy.includes_compact(),
            earliest: bounded(before).then(|| now_ms.saturating_sub(before)),
            latest: bounded(after).then(|| now_ms.saturating_add(after)),
            window: (now_ms.wrapping_sub(before), now_ms.wrapping_add(after)),
            create_time,
        }
    }

    /// Whether any record of these batches could break a rule.
    pub(crate) fn any(&self, headers: &[BatchHeader]) -> bool {
        self.keys_required || self.earliest.is_some() || self.latest.is_some() || headers.iter().any(BatchHeader::is_log_append_time)
    }

    /// Whether `h`'s records must be read: its header alone shows every timestamp is within
    /// the upper bound (maxTimestamp), never within the lower one (no minimum in the header).
    fn must_read(&self, h: &BatchHeader) -> bool {
        self.keys_required || self.earliest.is_some() || self.latest.is_some_and(|l| h.max_timestamp > l) || h.is_log_append_time()
    }

    fn timestamp_ok(&self, ts: i64) -> bool {
        ts == NO_TIMESTAMP || (self.earliest.is_none_or(|e| ts >= e) && self.latest.is_none_or(|l| ts <= l))
    }

    /// Pushes to `errors` every record of `batch` (header `h`) that breaks a rule, its index
    /// counted from `first_index` (the records of the request's earlier batches for the
    /// partition). One error per record, the key's first, as Kafka's validateRecord.
    pub(crate) fn check(&self, h: &BatchHeader, batch: &[u8], first_index: i32, errors: &mut Vec<RecordError>) -> Result<(), StorageError> {
        if !self.must_read(h) {
            return Ok(());
        }
        let payload = batch.get(HEADER_LEN..).ok_or_else(|| StorageError::corrupt("batch shorter than its header"))?;
        let data = match h.compression() {
            0 => Cow::Borrowed(payload),
            codec => Cow::Owned(decompress(codec, payload, DEFAULT_MAX_DECOMPRESSED_BYTES).map_err(StorageError::corrupt)?),
        };
        for (i, r) in parse_records(&data, h)?.iter().enumerate() {
            // records_count is an i32, so the index of a record of this batch fits one.
            let batch_index = first_index.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
            let timestamp = h.base_timestamp.wrapping_add(r.timestamp_delta);
            let offset = h.base_offset.wrapping_add(i64::from(r.offset_delta));
            let rule = if self.keys_required && r.key.is_none() {
                RecordRule::KeyRequired
            } else if self.create_time && timestamp != NO_TIMESTAMP {
                if self.timestamp_ok(timestamp) {
                    continue;
                }
                RecordRule::TimestampOutOfRange { timestamp, offset, earliest: self.window.0, latest: self.window.1 }
            } else if h.is_log_append_time() {
                RecordRule::LogAppendTimeFromProducer { offset }
            } else {
                continue;
            };
            errors.push(RecordError { batch_index, rule });
        }
        Ok(())
    }
}
