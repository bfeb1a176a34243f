//! The log's side of Kafka transactions (KIP-98): writing commit/abort markers on the leader, the first
//! unstable offset (from which the broker derives the last stable offset), the aborted transactions a
//! read_committed fetch needs, and the producer listing and expiry.
//!
//! The producer rules live in [`crate::producer_state`], the marker bytes in [`crate::control`] and the
//! per-segment aborted-transaction index in [`crate::txn_index`]; compaction's handling of transactions
//! is described in [`crate::compaction`].

use std::io::IoSlice;

use crate::batch::BatchHeader;
use crate::control::{build_marker_batch, ControlRecord, TxnMarker};
use crate::error::StorageError;
use crate::log::{AppendInfo, PartitionLog};
use crate::producer_state::ProducerInfo;
use crate::txn_index::AbortedTxn;

impl PartitionLog {
    /// Writes a COMMIT or ABORT marker for `marker.producer_id` (the leader's side of WriteTxnMarkers):
    /// a control batch (magic 2, attributes transactional|control, baseSequence -1, one record, CRC-32C)
    /// stamped `now_ms`. Checked as Kafka's `appendEndTxnMarker`: an older producer epoch is fenced
    /// (InvalidProducerEpoch), an older coordinator epoch too (TransactionCoordinatorFenced). A marker for
    /// a producer without an ongoing transaction is written all the same (the coordinator may retry),
    /// and changes nothing but the producer's epochs: a retried WriteTxnMarkers is safe. An ABORT that
    /// closes a transaction with data adds an entry to the segment's aborted-transaction index.
    pub fn append_marker(&mut self, marker: &TxnMarker, leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, StorageError> {
        if marker.producer_id < 0 {
            return Err(StorageError::InvalidRecord(format!("a transaction marker needs a producer id, got {}", marker.producer_id)));
        }
        self.producers.check_marker(marker)?;
        let offset = self.log_end_offset();
        let batch = build_marker_batch(marker, offset, leader_epoch, now_ms);
        let h = BatchHeader::parse(&batch, 0)?;
        let control = ControlRecord { commit: marker.commit, coordinator_epoch: marker.coordinator_epoch };
        if self.should_roll(batch.len() as u64, offset, now_ms) {
            self.roll()?;
        }
        if !self.active().can_hold(batch.len() as u64, offset) {
            return Err(StorageError::corrupt("marker does not fit the active segment"));
        }
        self.note_leader_epoch(leader_epoch, offset)?;
        let aborted = self.producers.preview(&[(h, Some(control))]);
        let interval = self.config.index_interval_bytes;
        self.active_mut().append(&mut [IoSlice::new(&batch)], &[h], interval, now_ms, &aborted)?;
        let recorded = self.producers.record(&h, Some(&control));
        debug_assert_eq!(recorded.into_iter().collect::<Vec<_>>(), aborted);
        Ok(AppendInfo { first_offset: offset, last_offset: offset, max_timestamp: now_ms, offset_of_max_timestamp: offset, duplicate: false })
    }

    /// The smallest first offset of any ongoing transaction (None when there is none); never below the
    /// log start offset, as Kafka's. The broker's last stable offset is min(high watermark, this).
    ///
    /// Unlike Kafka's, it does not count transactions whose marker is written but not yet replicated
    /// (above the high watermark): the coordinator's decision is final once it writes markers, and the
    /// aborted-transaction entry exists as soon as the marker does, so a read_committed fetch up to the
    /// high watermark already learns that such a transaction aborted.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset().map(|first| first.max(self.log_start_offset))
    }

    /// Where `producer_id`'s open transaction starts, if it has one here under `producer_epoch`:
    /// its next transactional batch of that epoch continues that transaction (no KIP-890
    /// verification needed). A batch of a newer epoch does not: with transactions v2 every
    /// EndTxn bumps the epoch, and a batch of the next transaction may arrive before the marker
    /// that ends this one. A map lookup, cheap enough for every transactional produce.
    pub fn open_transaction(&self, producer_id: i64, producer_epoch: i16) -> Option<i64> {
        self.producers.open_transaction(producer_id, producer_epoch)
    }

    /// Every aborted transaction with `last_offset >= from && first_offset < upper_bound`, in marker
    /// order (Kafka's `collectAbortedTransactions`): the segments' transaction indexes are read from
    /// the one holding `from` on, and the search stops at the first entry whose last stable offset is
    /// at or past `upper_bound` (no later entry can start below it). In memory; cost proportional to the
    /// entries scanned.
    pub fn aborted_transactions(&self, from: i64, upper_bound: i64) -> Result<Vec<AbortedTxn>, StorageError> {
        let mut out = Vec::new();
        for segment in &self.segments[self.segment_index_for(from)..] {
            if segment.txn_index().collect(from, upper_bound, &mut out) {
                break;
            }
        }
        Ok(out)
    }

    /// Every producer known to the partition, by id (DescribeProducers, `--find-hanging`).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.producers.producers()
    }

    /// Forgets the producers without an ongoing transaction whose last write is at least
    /// `expiration_ms` (producer.id.expiration.ms) older than `now_ms`; returns how many. In memory only,
    /// as in Kafka: a replay after a restart may bring some back until they expire again.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, expiration_ms)
    }
}
