//! `PartitionLog`: the ordered segments of one partition plus the metadata that travels with them
//! (log start offset, leader-epoch cache, idempotent-producer state).
//!
//! This file holds the log's core: open, append, read, roll, retention, truncation and close.
//! Other `impl PartitionLog` blocks live with their topic: [`crate::recovery`] (what `open` does
//! after a crash), [`crate::leader_epochs`] (the epoch cache and OffsetForLeaderEpoch),
//! [`crate::transactions`] (markers, the last stable offset, aborted transactions, producers) and
//! [`crate::compaction_install`] (compaction's plan, schedule and crash-safe install).

use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{find_record, validate_batches, BatchHeader, Head, HEADER_LEN};
use crate::checkpoint::{
    fsync_dir, read_optional, write_atomic, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE, PRODUCER_STATE_FILE,
};
use crate::compaction_install::complete_interrupted_compaction;
use crate::config::LogConfig;
use crate::control::{parse_control_record, ControlRecord};
use crate::error::{IoContext, StorageError};
use crate::leader_epochs::LeaderEpochCache;
use crate::producer_state::{ProducerStateManager, SequenceCheck};
use crate::recovery;
use crate::segment::{Segment, MAX_SEGMENT_BYTES};
use crate::validate::RecordRules;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch maxTimestamp of the append (-1 when none; also for duplicates).
    pub max_timestamp: i64,
    /// Last offset of the first batch carrying `max_timestamp` (the first offset under
    /// LogAppendTime); header-level precision, as nothing looks inside batches on append.
    pub offset_of_max_timestamp: i64,
    /// The batch was a retry of one already in the log; nothing was written and the offsets are
    /// those of the original.
    pub duplicate: bool,
}

/// Whole batches of a read, as ranges of segment files.
#[derive(Clone, Debug)]
pub struct ReadSlices {
    pub slices: Vec<FileSlice>,
    /// Total bytes over all slices.
    pub len: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// See [`PartitionLog::sync_handle`].
#[derive(Debug)]
pub struct SyncHandle {
    file: Arc<File>,
    path: PathBuf,
    /// Every offset below this is durable once `sync` returns.
    pub up_to: i64,
}

impl SyncHandle {
    pub fn sync(&self) -> Result<(), StorageError> {
        self.file.sync_data().at(&self.path)
    }
}

/// A range of a segment file holding whole batches.
#[derive(Clone, Debug)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub position: u64,
    pub len: usize,
}

impl FileSlice {
    /// Appends the slice's bytes to `out` with one positional read.
    pub fn read_into(&self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        let start = out.len();
        out.resize(start + self.len, 0);
        self.file.read_exact_at(&mut out[start..], self.position).at(&self.path)
    }
}

#[derive(Clone, Debug)]
pub struct ReadResult {
    /// Zero or more whole batches, byte for byte as stored.
    pub data: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Fields are `pub(crate)` for the `impl PartitionLog` blocks of the sibling modules (see the
/// module docs); nothing else in the crate should touch them.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sorted by base offset, contiguous (each segment's next offset is the next one's base), never
    /// empty. The last one is the active segment.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) producers: ProducerStateManager,
    pub(crate) epochs: LeaderEpochCache,
    /// Bumped by every truncation, so a compaction planned before one is not installed.
    pub(crate) generation: u64,
    /// Everything below this offset was compacted by the last pass; the bytes above it are the
    /// "dirty" part. In memory only: after a restart the first pass cleans everything once more.
    pub(crate) cleaned_through: i64,
    /// When the earliest tombstone the last pass had to keep becomes removable (`i64::MAX`:
    /// none), so a clean log is compacted again for its tombstones' sake only then.
    pub(crate) tombstones_due_ms: i64,
}

impl PartitionLog {
    /// Opens or creates the partition directory `dir`, recovering it unless the previous process
    /// shut down cleanly (see [Recovery](crate#recovery)).
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
        std::fs::create_dir_all(dir).at(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        complete_interrupted_compaction(dir)?;
        let mut segments = recovery::open_segments(dir, clean, config.index_interval_bytes)?;
        let checkpointed_start = read_log_start_offset(dir)?;
        if segments.is_empty() {
            segments.push(Segment::create(dir, checkpointed_start.unwrap_or(0).max(0))?);
            fsync_dir(dir)?;
        }
        let first_base = segments[0].base_offset();
        let epochs = LeaderEpochCache::load(dir)?;
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: checkpointed_start.unwrap_or(first_base).max(first_base),
            producers: ProducerStateManager::new(),
            epochs,
            generation: 0,
            cleaned_through: 0,
            tombstones_due_ms: i64::MAX,
        };
        log.reconcile_recovered(checkpointed_start)?;
        if clean {
            std::fs::remove_file(&marker).at(&marker)?;
            fsync_dir(dir)?;
        }
        tracing::info!(
            dir = %dir.display(),
            clean,
            segments = log.segments.len(),
            log_start_offset = log.log_start_offset,
            log_end_offset = log.log_end_offset(),
            "opened partition log"
        );
        Ok(log)
    }

    /// Validates, sequence-checks, assigns offsets to and writes the batches of a produce request.
    /// Besides the batch format, the producer rules of a Kafka leader apply (see
    /// [`ProducerStateManager::check_all`]): no control batches (InvalidRecord), producer epochs
    /// (InvalidProducerEpoch), sequences (OutOfOrderSequence) and transaction state (InvalidTxnState).
    /// `batches` is only read: the rewritten headers are written from copies beside it.
    pub fn append(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: Option<i64>,
    ) -> Result<AppendInfo, StorageError> {
        let mut headers = validate_batches(batches, self.config.max_message_bytes)?;
        for h in &headers {
            // Offsets are assigned from lastOffsetDelta, so it must agree with the record count
            // or a client could burn offsets (or leave holes) at will.
            if h.records_count < 1 || i64::from(h.last_offset_delta) != i64::from(h.records_count) - 1 {
                return Err(StorageError::corrupt(format!(
                    "batch has {} records but lastOffsetDelta {}",
                    h.records_count, h.last_offset_delta
                )));
            }
        }
        let rules = RecordRules::new(&self.config, log_append_time.is_none(), now_ms);
        if rules.any(&headers) {
            // Every refused record is named (Kafka's record_errors), not just the first.
            let mut errors = Vec::new();
            let mut first_index = 0i32;
            for h in &headers {
                rules.check(h, &batches[h.position..h.end_position()], first_index, &mut errors)?;
                first_index = first_index.saturating_add(h.records_count);
            }
            if !errors.is_empty() {
                return Err(StorageError::InvalidRecords { records: errors });
            }
        }
        if batches.len() as u64 > MAX_SEGMENT_BYTES {
            return Err(StorageError::MessageTooLarge { size: batches.len(), max: self.config.max_message_bytes });
        }
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut heads = Vec::with_capacity(headers.len());
        for h in headers.iter_mut() {
            let mut head = Head::of(&batches[h.position..h.end_position()])?;
            head.assign_offset(h, next, leader_epoch);
            heads.push(head);
            next = next.checked_add(h.offset_count()).ok_or_else(|| StorageError::corrupt("offset overflow"))?;
        }
        let last_offset = next - 1;
        if let SequenceCheck::Duplicate { first_offset, last_offset } = self.producers.check_all(&headers)? {
            return Ok(AppendInfo {
                first_offset,
                last_offset,
                max_timestamp: -1,
                offset_of_max_timestamp: -1,
                duplicate: true,
            });
        }
        if let Some(t) = log_append_time {
            for (h, head) in headers.iter_mut().zip(&mut heads) {
                head.set_log_append_time(h, &batches[h.position + HEADER_LEN..h.end_position()], t);
            }
        }
        if self.should_roll(batches.len() as u64, last_offset, now_ms) {
            self.roll()?;
        }
        if !self.active().can_hold(batches.len() as u64, last_offset) {
            return Err(StorageError::corrupt("append spans more offsets than a segment can index"));
        }
        self.note_leader_epoch(leader_epoch, first_offset)?;
        let interval = self.config.index_interval_bytes;
        // Each batch is written as its patched head and then its own bytes after the header.
        let mut pieces = Vec::with_capacity(headers.len() * 2);
        for (h, head) in headers.iter().zip(&heads) {
            pieces.push(IoSlice::new(head.bytes()));
            pieces.push(IoSlice::new(&batches[h.position + HEADER_LEN..h.end_position()]));
        }
        // Client batches are never control batches (check_all), so nothing here ends a transaction.
        self.active_mut().append(&mut pieces, &headers, interval, now_ms, &[])?;
        for h in &headers {
            self.producers.record(h, None);
        }
        let (max_timestamp, offset_of_max_timestamp) = match log_append_time {
            Some(t) => (t, first_offset),
            None => max_timestamp(&headers),
        };
        Ok(AppendInfo { first_offset, last_offset, max_timestamp, offset_of_max_timestamp, duplicate: false })
    }

    /// Records a leader epoch starting at `first_offset` when it is newer than the cache's latest.
    pub(crate) fn note_leader_epoch(&mut self, leader_epoch: i32, first_offset: i64) -> Result<(), StorageError> {
        if leader_epoch >= 0 && self.latest_epoch().is_none_or(|e| leader_epoch > e) {
            // Persisted before the data: an entry whose start has no data yet is harmless, data
            // whose epoch is unrecorded is not.
            let before = self.epochs.clone();
            self.epochs.push(leader_epoch, first_offset);
            if let Err(e) = self.epochs.persist() {
                self.epochs = before;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Appends batches copied from the partition's leader (a follower's fetch), keeping their
    /// offsets, leader epochs and timestamps: a replica's log is the leader's, byte for byte.
    /// Offsets must continue the log (compaction on the leader may leave gaps, never overlaps).
    /// Producer state, transaction index and the epoch cache follow the batches, so the replica can
    /// take over as leader with idempotence, transactions and OffsetForLeaderEpoch intact. A control
    /// batch that is not a well-formed transaction marker is refused (CorruptMessage) before anything
    /// is written.
    pub fn append_replicated(&mut self, batches: &[u8], now_ms: i64) -> Result<Option<AppendInfo>, StorageError> {
        let headers = validate_batches(batches, u32::MAX)?;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else { return Ok(None) };
        let mut expected = self.log_end_offset();
        for h in &headers {
            if h.base_offset < expected || h.last_offset() < h.base_offset {
                return Err(StorageError::corrupt(format!(
                    "replicated batch at offset {} does not continue the log (next offset {expected})",
                    h.base_offset
                )));
            }
            expected = h.last_offset() + 1;
        }
        // The control records are parsed before anything is written: a malformed marker refuses the fetch.
        let mut controls: Vec<(BatchHeader, Option<ControlRecord>)> = Vec::with_capacity(headers.len());
        for h in &headers {
            let control = if h.is_control() { parse_control_record(h, &batches[h.position..h.end_position()])? } else { None };
            controls.push((*h, control));
        }
        let (first_offset, last_offset) = (first.base_offset, last.last_offset());
        if self.should_roll(batches.len() as u64, last_offset, now_ms) {
            self.roll()?;
        }
        if !self.active().can_hold(batches.len() as u64, last_offset) {
            return Err(StorageError::corrupt("replicated batches span more offsets than a segment can index"));
        }
        let mut epochs_changed = false;
        for h in &headers {
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && self.latest_epoch().is_none_or(|e| epoch > e) {
                self.epochs.push(epoch, h.base_offset);
                epochs_changed = true;
            }
        }
        if epochs_changed {
            // As on the leader: recorded before the data.
            self.epochs.persist()?;
        }
        let interval = self.config.index_interval_bytes;
        let aborted = if headers.iter().any(BatchHeader::is_control) { self.producers.preview(&controls) } else { Vec::new() };
        self.active_mut().append(&mut [IoSlice::new(batches)], &headers, interval, now_ms, &aborted)?;
        let mut recorded = Vec::new();
        for (h, control) in &controls {
            recorded.extend(self.producers.record(h, control.as_ref()));
        }
        debug_assert_eq!(recorded, aborted, "the preview of the aborted transactions is what recording them yields");
        let (max_timestamp, offset_of_max_timestamp) = max_timestamp(&headers);
        debug_assert_eq!(self.log_end_offset(), last_offset + 1, "a replica's log end follows the leader's batches");
        Ok(Some(AppendInfo { first_offset, last_offset, max_timestamp, offset_of_max_timestamp, duplicate: false }))
    }

    pub(crate) fn should_roll(&self, bytes: u64, last_offset: i64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        active.size() + bytes > self.config.segment_bytes
            || !active.can_hold(bytes, last_offset)
            || active.roll_base_ms().is_some_and(|base| now_ms.saturating_sub(base) > self.config.segment_ms)
    }

    /// Closes the active segment for writing (fsynced, so recovery never needs to scan it) and
    /// starts a new one at the log end offset.
    pub(crate) fn roll(&mut self) -> Result<(), StorageError> {
        if self.active().is_empty() {
            return Ok(());
        }
        self.active().flush()?;
        let leo = self.log_end_offset();
        let segment = Segment::create(&self.dir, leo)?;
        fsync_dir(&self.dir)?;
        self.active_mut().release_index_files();
        self.segments.push(segment);
        tracing::debug!(dir = %self.dir.display(), base_offset = leo, "rolled segment");
        self.write_producer_snapshot()
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (but at least one batch), all
    /// ending below `max_offset`, copied into memory. The broker's fetch path uses
    /// [`PartitionLog::read_slices`] instead and lets the kernel move the bytes.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult, StorageError> {
        let r = self.read_slices(offset, max_bytes, max_offset)?;
        let mut data = Vec::with_capacity(r.len);
        for slice in &r.slices {
            slice.read_into(&mut data)?;
        }
        Ok(ReadResult { data: Bytes::from(data), log_start_offset: r.log_start_offset, log_end_offset: r.log_end_offset })
    }

    /// As [`PartitionLog::read`], but returns the file ranges holding the batches instead of their
    /// bytes. The ranges stay readable after retention deletes or truncation shortens the file
    /// (the slice holds the file open; a shortened file yields fewer bytes, which the caller must
    /// treat as an error).
    pub fn read_slices(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadSlices, StorageError> {
        self.read_slices_within(offset, max_bytes, max_offset, true)
    }

    /// As [`PartitionLog::read_slices`], with the min-one-message rule as a choice: when
    /// `min_one` is false nothing beyond `max_bytes` is returned, not even a first batch that
    /// alone is larger (then the read is empty). A Fetch response grants the exception only to
    /// the first partition that returns data (Kafka's `minOneMessage`, KIP-74); every later
    /// partition must fit in what is left of the response's limit.
    pub fn read_slices_within(&self, offset: i64, max_bytes: usize, max_offset: i64, min_one: bool) -> Result<ReadSlices, StorageError> {
        let (log_start_offset, log_end_offset) = (self.log_start_offset, self.log_end_offset());
        if offset < log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset, log_end_offset });
        }
        let mut slices = Vec::new();
        let mut total = 0u64;
        // A partition reached once the response is full costs no index lookup.
        if offset < log_end_offset && offset < max_offset && (max_bytes > 0 || min_one) {
            let first = self.segment_index_for(offset);
            for (i, segment) in self.segments[first..].iter().enumerate() {
                let start = if i == 0 {
                    match segment.find_batch(offset)? {
                        Some(h) => h.position as u64,
                        None => continue,
                    }
                } else {
                    0
                };
                if start >= segment.size() {
                    continue;
                }
                // Batches ending at or above the high watermark are not visible yet.
                let visible_end = if max_offset < segment.next_offset() {
                    segment.find_batch(max_offset)?.map_or(segment.size(), |h| h.position as u64)
                } else {
                    segment.size()
                };
                let budget = (max_bytes as u64).saturating_sub(total);
                let mut end = segment.boundary_at_or_before(start, start.saturating_add(budget))?.min(visible_end);
                if min_one && total == 0 && end <= start && start < visible_end {
                    // The first batch goes out whole even when larger than the budget.
                    if let Some(h) = segment.read_header(start)? {
                        end = start + h.len as u64;
                    }
                }
                if end > start {
                    slices.push(segment.slice(start, end - start));
                    total += end - start;
                }
                if end < segment.size() || total >= max_bytes as u64 {
                    break;
                }
            }
        }
        debug_assert_eq!(total, slices.iter().map(|s| s.len as u64).sum::<u64>());
        Ok(ReadSlices { slices, len: total as usize, log_start_offset, log_end_offset })
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// (offset, timestamp) of the first record at or after the log start whose timestamp is >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let lso = self.log_start_offset;
        let mut buf = Vec::new();
        for segment in &self.segments {
            if segment.max_timestamp() < ts || segment.next_offset() <= lso {
                continue;
            }
            let by_time = segment.find_batch_for_timestamp(ts)?;
            let by_start = segment.find_batch(lso)?;
            let Some(start) = by_time.into_iter().chain(by_start).map(|h| h.position as u64).max() else {
                continue;
            };
            let mut pos = start;
            while let Some(h) = segment.read_header(pos)? {
                pos += h.len as u64;
                if h.max_timestamp < ts || h.last_offset() < lso {
                    continue;
                }
                if h.compression() != 0 {
                    return Ok(Some((h.base_offset.max(lso), h.max_timestamp)));
                }
                buf.clear();
                segment.read_into(h.position as u64, h.len, &mut buf)?;
                if let Some(found) = find_record(&h, &buf, |o, t| o >= lso && t >= ts)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// (max timestamp, offset of its first record) over the whole log; None when it is empty,
    /// (-1, -1) when no batch carries a timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        if self.size_bytes() == 0 {
            return Ok(None);
        }
        let mut best: Option<&Segment> = None;
        for segment in &self.segments {
            if segment.max_timestamp() >= 0 && best.is_none_or(|b| segment.max_timestamp() > b.max_timestamp()) {
                best = Some(segment);
            }
        }
        let Some(segment) = best else { return Ok(Some((-1, -1))) };
        let Some(batch_offset) = segment.max_timestamp_offset() else { return Ok(Some((-1, -1))) };
        let h = segment
            .find_batch(batch_offset)?
            .ok_or_else(|| StorageError::corrupt(format!("time index points at missing offset {batch_offset}")))?;
        if h.compression() != 0 {
            return Ok(Some((h.max_timestamp, h.last_offset())));
        }
        let mut buf = Vec::new();
        segment.read_into(h.position as u64, h.len, &mut buf)?;
        Ok(Some(match find_record(&h, &buf, |_, t| t == h.max_timestamp)? {
            Some((offset, ts)) => (ts, offset),
            None => (h.max_timestamp, h.last_offset()),
        }))
    }

    /// ListOffsets v0's answer (Kafka's `legacyFetchOffsetsBefore`): up to `max` offsets, highest
    /// first, taken from the segment boundaries. Each segment stands for its base offset (not
    /// below the log start) at its file's modification time, and a non-empty active segment adds
    /// the log end at `now_ms`; `timestamp` -1 starts from the last of these, -2 from the first,
    /// any other from the last one modified at or before it. Old clients built their own time
    /// index from this coarse list, so it must be Kafka's, not a record-level lookup.
    pub fn legacy_offsets_before(&self, timestamp: i64, max: usize, now_ms: i64) -> Result<Vec<i64>, StorageError> {
        let mut points = Vec::with_capacity(self.segments.len() + 1);
        for segment in &self.segments {
            points.push((segment.base_offset().max(self.log_start_offset), segment.modified_ms()?));
        }
        if !self.active().is_empty() {
            points.push((self.log_end_offset(), now_ms));
        }
        let start = match timestamp {
            -1 => points.len().checked_sub(1),
            -2 => (!points.is_empty()).then_some(0),
            ts => points.iter().rposition(|(_, mtime)| *mtime <= ts),
        };
        let Some(start) = start else { return Ok(Vec::new()) };
        let mut out: Vec<i64> = points[..=start].iter().rev().take(max).map(|(offset, _)| *offset).collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// DeleteRecords: raises the log start offset and drops the segments entirely below it.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        if offset > leo {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: leo });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.set_log_start_offset(offset)?;
        self.delete_segments_below_start()
    }

    /// Time- and size-based retention (only when the cleanup policy includes delete); also rolls
    /// an over-age active segment, whatever the policy. Returns how many segments were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let active = self.active();
        if !active.is_empty() && active.roll_base_ms().is_some_and(|b| now_ms.saturating_sub(b) > self.config.segment_ms) {
            self.roll()?;
        }
        if !self.config.cleanup_policy.includes_delete() {
            return Ok(0);
        }
        let n = self.segments.len();
        // An empty active segment is never deleted: it holds the log end offset.
        let deletable = |i: usize, s: &Segment| !(i + 1 == n && s.is_empty());
        let mut count = 0;
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            while count < n {
                let s = &self.segments[count];
                let expired = s.max_timestamp() >= 0 && now_ms.saturating_sub(s.max_timestamp()) > retention_ms;
                if !(deletable(count, s) && expired) {
                    break;
                }
                count += 1;
            }
        }
        let retention_bytes = self.config.retention_bytes;
        if retention_bytes >= 0 {
            let total: u64 = self.segments[count..].iter().map(Segment::size).sum();
            let mut excess = total as i64 - retention_bytes;
            while count < n && excess > 0 {
                let s = &self.segments[count];
                if !(deletable(count, s) && excess >= s.size() as i64) {
                    break;
                }
                excess -= s.size() as i64;
                count += 1;
            }
        }
        if count == 0 {
            return Ok(0);
        }
        if count == n {
            // Keep the log end offset: offsets must never be reused.
            self.roll()?;
        }
        let new_start = self.segments[count].base_offset();
        if new_start > self.log_start_offset {
            self.set_log_start_offset(new_start)?;
        }
        self.delete_first_segments(count)?;
        tracing::info!(dir = %self.dir.display(), deleted = count, log_start_offset = self.log_start_offset, "retention deleted segments");
        Ok(count)
    }

    /// Removes every batch holding an offset >= `offset` (the batch holding `offset` goes whole).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset() {
            // Nothing to cut, but an epoch that starts at the log end goes all the same: this
            // replica led in it without appending (an epoch is recorded when leadership is
            // taken), and the leader it now follows never wrote in it. Kept, it would make every
            // fetch look divergent, for good (Kafka's truncateTo does the same).
            if self.epochs.truncate_from_end(self.log_end_offset()) {
                self.epochs.persist()?;
            }
            return Ok(());
        }
        self.generation += 1;
        if offset < self.log_start_offset {
            return self.reset_to(offset);
        }
        while self.segments.len() > 1 && self.active().base_offset() >= offset {
            if let Some(segment) = self.segments.pop() {
                segment.delete()?;
            }
        }
        self.active_mut().truncate_to(offset)?;
        if self.log_end_offset() < self.log_start_offset {
            // The batch holding `offset` started below the log start: nothing visible remains.
            return self.reset_to(offset);
        }
        self.active().flush()?;
        let leo = self.log_end_offset();
        if self.epochs.truncate_from_end(leo) {
            self.epochs.persist()?;
        }
        self.load_producer_state()?;
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = leo, "truncated log");
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.active().flush()
    }

    /// What a caller needs to make everything appended so far durable *without* holding this
    /// log's lock (group commit: appends go on while the fsync runs). Older segments were synced
    /// when they rolled, so syncing the active segment's file covers everything below `up_to`.
    pub fn sync_handle(&self) -> SyncHandle {
        let active = self.active();
        let slice = active.slice(0, 0);
        SyncHandle { file: slice.file, path: slice.path, up_to: self.log_end_offset() }
    }

    /// Clean shutdown: after this the next open trusts the files without scanning.
    pub fn close(self) -> Result<(), StorageError> {
        // Non-active segments were flushed when rolled.
        self.active().flush()?;
        self.write_producer_snapshot()?;
        self.epochs.persist()?;
        write_atomic(&self.dir, CLEAN_SHUTDOWN_FILE, b"")?;
        tracing::info!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), "closed partition log");
        Ok(())
    }

    /// Deletes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).at(&dir)
    }

    /// Starts the log over, empty, at `offset` (a follower whose leader no longer has the
    /// follower's log end: everything it has is below the leader's log start).
    pub fn reset_empty_at(&mut self, offset: i64) -> Result<(), StorageError> {
        tracing::info!(dir = %self.dir.display(), offset, "log restarted empty at the leader's log start");
        self.reset_to(offset)
    }

    pub(crate) fn active(&self) -> &Segment {
        debug_assert!(!self.segments.is_empty());
        &self.segments[self.segments.len() - 1]
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Index of the segment that holds `offset` (the last one whose base is <= it).
    pub(crate) fn segment_index_for(&self, offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset() <= offset).saturating_sub(1)
    }

    fn set_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        self.log_start_offset = offset;
        // Persisted before any segment is deleted, so a crash in between only leaves segments
        // that the next open deletes.
        self.persist_log_start_offset()?;
        if self.epochs.truncate_from_start(offset) {
            self.epochs.persist()?;
        }
        Ok(())
    }

    pub(crate) fn delete_segments_below_start(&mut self) -> Result<(), StorageError> {
        let count = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.next_offset() <= self.log_start_offset)
            .count();
        self.delete_first_segments(count)
    }

    fn delete_first_segments(&mut self, count: usize) -> Result<(), StorageError> {
        debug_assert!(count < self.segments.len());
        for segment in self.segments.drain(..count) {
            segment.delete()?;
        }
        Ok(())
    }

    /// Drops all data and starts an empty log at `offset`.
    pub(crate) fn reset_to(&mut self, offset: i64) -> Result<(), StorageError> {
        self.generation += 1;
        // The start offset goes first: should we crash with no segment left, open() recreates the
        // log at the checkpointed start, which must not be below offsets already handed out.
        self.log_start_offset = offset;
        self.persist_log_start_offset()?;
        // The list of segments must never be empty, even when an I/O error interrupts this. A
        // segment already based at `offset` is emptied and kept: creating a new one would clobber
        // its files.
        let mut old = std::mem::take(&mut self.segments);
        let new = match old.iter().position(|s| s.base_offset() == offset) {
            Some(i) => old.remove(i),
            None => match Segment::create(&self.dir, offset) {
                Ok(segment) => segment,
                Err(e) => {
                    self.segments = old;
                    return Err(e);
                }
            },
        };
        self.segments.push(new);
        for segment in old.into_iter().rev() {
            segment.delete()?;
        }
        self.active_mut().truncate_to(offset)?;
        fsync_dir(&self.dir)?;
        self.epochs.clear();
        self.epochs.persist()?;
        self.producers.clear();
        self.write_producer_snapshot()
    }

    pub(crate) fn persist_log_start_offset(&self) -> Result<(), StorageError> {
        write_atomic(&self.dir, LOG_START_OFFSET_FILE, format!("0\n{}\n", self.log_start_offset).as_bytes())
    }

    pub(crate) fn write_producer_snapshot(&self) -> Result<(), StorageError> {
        // Every aborted-transaction entry below the snapshot's offset must be durable first: the replay
        // on open regenerates only the entries above it. Older segments' indexes were synced when they
        // rolled (and by the replay that regenerated them).
        self.active().sync_txn_index()?;
        write_atomic(&self.dir, PRODUCER_STATE_FILE, &self.producers.encode_snapshot(self.log_end_offset()))
    }
}

/// The checkpoint written by [`PartitionLog::persist_log_start_offset`] (None when absent).
fn read_log_start_offset(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(LOG_START_OFFSET_FILE);
    let Some(bytes) = read_optional(&path)? else { return Ok(None) };
    let parsed = std::str::from_utf8(&bytes).ok().and_then(|text| {
        let mut lines = text.lines();
        (lines.next() == Some("0")).then_some(())?;
        lines.next()?.trim().parse::<i64>().ok()
    });
    match parsed {
        Some(offset) if offset >= 0 => Ok(Some(offset)),
        _ => Err(StorageError::corrupt_log(&path, "unreadable log start offset")),
    }
}

/// The largest batch maxTimestamp of an append and the last offset of the first batch carrying
/// it ((-1, -1) when none).
fn max_timestamp(headers: &[BatchHeader]) -> (i64, i64) {
    headers.iter().fold((-1, -1), |(ts, off), h| if h.max_timestamp > ts { (h.max_timestamp, h.last_offset()) } else { (ts, off) })
}

#[cfg(test)]
impl PartitionLog {
    /// (base offset, next offset, size) of every segment, oldest first.
    pub(crate) fn segment_info(&self) -> Vec<(i64, i64, u64)> {
        self.segments.iter().map(|s| (s.base_offset(), s.next_offset(), s.size())).collect()
    }

    /// Starts a new segment now (when the active one holds data).
    pub(crate) fn force_roll(&mut self) {
        self.roll().unwrap();
    }
}
