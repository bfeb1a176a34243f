//! `PartitionLog`: the ordered segments of one partition plus the metadata that travels with them
//! (log start offset, leader-epoch cache, idempotent-producer state).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{assign_offset, find_record, set_log_append_time, validate_batches, BatchHeader};
use crate::checkpoint::{
    decode_entries, encode_entries, fsync_dir, read_optional, write_atomic, CLEAN_SHUTDOWN_FILE, LEADER_EPOCH_FILE,
    LOG_START_OFFSET_FILE, PRODUCER_STATE_FILE, TMP_SUFFIX,
};
use crate::compaction::{CompactionPlan, CompactionResult, CompactionStats, SegmentRef, DEFAULT_MAX_DECOMPRESSED_BYTES};
use crate::error::{IoContext, StorageError};
use crate::producer_state::{ProducerStateManager, SequenceCheck};
use crate::segment::{
    segment_path, suffixed_path, Segment, CLEANED_SUFFIX, INDEX_EXT, LOG_EXT, MAX_SEGMENT_BYTES, SWAP_SUFFIX, TIME_INDEX_EXT,
};

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
        }
    }
}

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

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset, contiguous (each segment's next offset is the next one's base), never
    /// empty. The last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    producers: ProducerStateManager,
    /// (epoch, start offset), both strictly increasing.
    epochs: Vec<(i32, i64)>,
    /// Bumped by every truncation, so a compaction planned before one is not installed.
    generation: u64,
    /// Everything below this offset was compacted by the last pass; the bytes above it are the
    /// "dirty" part. In memory only: after a restart the first pass cleans everything once more.
    cleaned_through: i64,
    /// When the earliest tombstone the last pass had to keep becomes removable (`i64::MAX`:
    /// none), so a clean log is compacted again for its tombstones' sake only then.
    tombstones_due_ms: i64,
}

impl PartitionLog {
    /// Opens or creates the partition directory `dir`, recovering it unless the previous process
    /// shut down cleanly.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
        std::fs::create_dir_all(dir).at(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        complete_interrupted_compaction(dir)?;
        let bases = scan_dir(dir)?;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            // Older segments were fsynced (log and indexes) before their successor was created, so
            // only the last one can hold torn writes.
            let trust = clean || i + 1 < bases.len();
            let segment = Segment::open(dir, base, trust, config.index_interval_bytes)?;
            if let Some(prev) = segments.last() {
                if prev.next_offset() != base {
                    tracing::warn!(
                        dir = %dir.display(),
                        expected = prev.next_offset(),
                        found = base,
                        "offset gap between segments; dropping this segment and all later ones"
                    );
                    segment.delete()?;
                    for &later in &bases[i + 1..] {
                        remove_segment_files(dir, later)?;
                    }
                    break;
                }
            }
            segments.push(segment);
        }

        let checkpointed_start = read_log_start_offset(dir)?;
        if segments.is_empty() {
            segments.push(Segment::create(dir, checkpointed_start.unwrap_or(0).max(0))?);
            fsync_dir(dir)?;
        }
        let first_base = segments[0].base_offset();
        let epochs = match read_optional(&dir.join(LEADER_EPOCH_FILE))? {
            Some(bytes) => decode_epochs(&dir.join(LEADER_EPOCH_FILE), &bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable leader-epoch checkpoint");
                Vec::new()
            }),
            None => Vec::new(),
        };
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
        if log.log_start_offset > log.log_end_offset() {
            tracing::warn!(
                dir = %dir.display(),
                log_start_offset = log.log_start_offset,
                log_end_offset = log.log_end_offset(),
                "log ends before its start offset after recovery; starting empty at the start offset"
            );
            log.reset_to(log.log_start_offset)?;
        }
        if checkpointed_start != Some(log.log_start_offset) {
            log.persist_log_start_offset()?;
        }
        log.delete_segments_below_start()?;
        let epochs_before = log.epochs.clone();
        let leo = log.log_end_offset();
        log.epochs.retain(|&(_, start)| start < leo);
        truncate_epochs_from_start(&mut log.epochs, log.log_start_offset);
        if log.epochs != epochs_before {
            log.persist_epochs()?;
        }
        log.load_producer_state()?;
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
    pub fn append(
        &mut self,
        batches: &mut [u8],
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
        if self.config.cleanup_policy.includes_compact() {
            for h in &headers {
                crate::compaction::check_keys(h, &batches[h.position..h.end_position()])?;
            }
        }
        if batches.len() as u64 > MAX_SEGMENT_BYTES {
            return Err(StorageError::MessageTooLarge { size: batches.len(), max: self.config.max_message_bytes });
        }
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        for h in headers.iter_mut() {
            assign_offset(batches, h, next, leader_epoch)?;
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
            for h in headers.iter_mut() {
                set_log_append_time(batches, h, t)?;
            }
        }
        if self.should_roll(batches.len() as u64, last_offset, now_ms) {
            self.roll()?;
        }
        if !self.active().can_hold(batches.len() as u64, last_offset) {
            return Err(StorageError::corrupt("append spans more offsets than a segment can index"));
        }
        if leader_epoch >= 0 && self.latest_epoch().is_none_or(|e| leader_epoch > e) {
            // Persisted before the data: an entry whose start has no data yet is harmless, data
            // whose epoch is unrecorded is not.
            let before = self.epochs.clone();
            push_epoch(&mut self.epochs, leader_epoch, first_offset);
            if let Err(e) = self.persist_epochs() {
                self.epochs = before;
                return Err(e);
            }
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut().append(batches, &headers, interval, now_ms)?;
        for h in &headers {
            self.producers.record(h);
        }
        let (max_timestamp, offset_of_max_timestamp) = match log_append_time {
            Some(t) => (t, first_offset),
            None => max_timestamp(&headers),
        };
        Ok(AppendInfo { first_offset, last_offset, max_timestamp, offset_of_max_timestamp, duplicate: false })
    }

    /// Appends batches copied from the partition's leader (a follower's fetch), keeping their
    /// offsets, leader epochs and timestamps: a replica's log is the leader's, byte for byte.
    /// Offsets must continue the log (compaction on the leader may leave gaps, never overlaps).
    /// Producer state and the epoch cache follow the batches, so the replica can take over as
    /// leader with idempotence and OffsetForLeaderEpoch intact.
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
                push_epoch(&mut self.epochs, epoch, h.base_offset);
                epochs_changed = true;
            }
        }
        if epochs_changed {
            // As on the leader: recorded before the data.
            self.persist_epochs()?;
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut().append(batches, &headers, interval, now_ms)?;
        for h in &headers {
            self.producers.record(h);
        }
        let (max_timestamp, offset_of_max_timestamp) = max_timestamp(&headers);
        debug_assert_eq!(self.log_end_offset(), last_offset + 1, "a replica's log end follows the leader's batches");
        Ok(Some(AppendInfo { first_offset, last_offset, max_timestamp, offset_of_max_timestamp, duplicate: false }))
    }

    fn should_roll(&self, bytes: u64, last_offset: i64, now_ms: i64) -> bool {
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
    fn roll(&mut self) -> Result<(), StorageError> {
        if self.active().is_empty() {
            return Ok(());
        }
        self.active().flush()?;
        let leo = self.log_end_offset();
        let segment = Segment::create(&self.dir, leo)?;
        fsync_dir(&self.dir)?;
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
        let (log_start_offset, log_end_offset) = (self.log_start_offset, self.log_end_offset());
        if offset < log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset, log_end_offset });
        }
        let mut slices = Vec::new();
        let mut total = 0u64;
        if offset < log_end_offset && offset < max_offset {
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
                if total == 0 && end <= start && start < visible_end {
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
        let before = self.epochs.len();
        self.epochs.retain(|&(_, start)| start < leo);
        if self.epochs.len() != before {
            self.persist_epochs()?;
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
        self.persist_epochs()?;
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

    /// Step 1 of a compaction (see [`crate::compaction`]): cheap, needs only shared access. Plans
    /// to clean every non-empty non-active segment that lies entirely below `high_watermark`; the
    /// records below `high_watermark` in later segments (the active one included) only feed the
    /// key map. Pass the partition's high watermark: records above it may still be truncated, so
    /// they must not supersede older ones (`i64::MAX` when nothing can be truncated, e.g. a
    /// single replica). `delete_retention_ms` < 0 keeps tombstones forever.
    pub fn compaction_plan(&self, now_ms: i64, delete_retention_ms: i64, high_watermark: i64) -> Result<CompactionPlan, StorageError> {
        let to_ref = |s: &Segment| SegmentRef {
            base_offset: s.base_offset(),
            next_offset: s.next_offset(),
            size: s.size(),
            file: s.file().clone(),
            path: s.log_path().to_path_buf(),
        };
        let n = self.segments.len();
        let cleanable = self.segments[..n - 1].iter().take_while(|s| s.next_offset() <= high_watermark).count();
        Ok(CompactionPlan {
            dir: self.dir.clone(),
            generation: self.generation,
            now_ms,
            delete_retention_ms,
            index_interval_bytes: self.config.index_interval_bytes,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            high_watermark,
            segments: self.segments[..cleanable].iter().filter(|s| !s.is_empty()).map(to_ref).collect(),
            others: self.segments[cleanable..].iter().filter(|s| !s.is_empty()).map(to_ref).collect(),
        })
    }

    /// Whether a compaction pass is worth running now, as Kafka's cleaner decides: some segment
    /// below `high_watermark` other than the active one was never compacted and the dirty
    /// bytes are at least `min_cleanable_dirty_ratio` of the cleanable ones, or a tombstone
    /// that the last pass had to keep is due for removal.
    pub fn compaction_due(&self, now_ms: i64, high_watermark: i64) -> bool {
        let n = self.segments.len();
        let cleanable = self.segments[..n - 1].iter().take_while(|s| s.next_offset() <= high_watermark);
        let (mut dirty, mut total) = (0u64, 0u64);
        for s in cleanable {
            total += s.size();
            if s.next_offset() > self.cleaned_through {
                dirty += s.size();
            }
        }
        if total == 0 {
            return false;
        }
        if dirty == 0 {
            return now_ms >= self.tombstones_due_ms;
        }
        dirty as f64 >= self.config.min_cleanable_dirty_ratio * total as f64
    }

    /// Step 3 of a compaction: swaps the cleaned copies in, oldest first, with the crash-safe
    /// rename sequence described in [`crate::compaction`]. Cost: a few renames, two directory
    /// fsyncs and a trusted open per cleaned segment. When the log was truncated since the plan,
    /// or a planned segment changed (another compaction installed first), nothing is installed
    /// and the result comes back with `discarded` set; segments that retention or DeleteRecords
    /// removed meanwhile are skipped. On an I/O error the in-memory log may lag the directory:
    /// reopen it.
    pub fn install_compaction(&mut self, result: CompactionResult) -> Result<CompactionStats, StorageError> {
        self.install_compaction_until(result, None)
    }

    /// Plan, execute and install in one call, all under the caller's exclusive access: simple,
    /// but blocks produce and fetch for the whole rewrite. Prefer the three steps.
    pub fn compact(&mut self, now_ms: i64, delete_retention_ms: i64, high_watermark: i64) -> Result<CompactionStats, StorageError> {
        let result = self.compaction_plan(now_ms, delete_retention_ms, high_watermark)?.execute()?;
        self.install_compaction(result)
    }

    /// `steps`: test hook simulating a crash after that many rename steps (None: all of them).
    pub(crate) fn install_compaction_until(
        &mut self,
        mut result: CompactionResult,
        mut steps: Option<usize>,
    ) -> Result<CompactionStats, StorageError> {
        if result.dir != self.dir {
            return Err(StorageError::corrupt_log(&result.dir, "compaction result belongs to another log"));
        }
        let mut stats = result.stats;
        let discard = |mut stats: CompactionStats| {
            stats.discarded = true;
            stats.segments_cleaned = 0;
            Ok(stats)
        };
        if result.generation != self.generation {
            tracing::info!(dir = %self.dir.display(), "log truncated during compaction; discarding the result");
            return discard(stats);
        }
        // Validate everything before touching any file.
        let first_base = self.segments[0].base_offset();
        let mut targets = Vec::new();
        for (k, cleaned) in result.segments.iter().enumerate() {
            match self.segments.iter().position(|s| s.base_offset() == cleaned.base_offset) {
                None if cleaned.base_offset < first_base => {
                    // Removed by retention or DeleteRecords meanwhile.
                    stats.segments_cleaned -= 1;
                }
                Some(i)
                    if i + 1 < self.segments.len()
                        && Arc::ptr_eq(self.segments[i].file(), &cleaned.old_file)
                        && self.segments[i].size() == cleaned.old_size
                        && self.segments[i].next_offset() == cleaned.old_next_offset =>
                {
                    targets.push((k, i));
                }
                _ => {
                    tracing::info!(dir = %self.dir.display(), base_offset = cleaned.base_offset, "segment changed during compaction; discarding the result");
                    return discard(stats);
                }
            }
        }
        // Whatever happens below, the planned range counts as cleaned only once it is installed.
        let planned_through = result.planned_through;
        let tombstones_due = result.tombstones_due_ms;
        for (k, i) in targets {
            let base = result.segments[k].base_offset;
            if !swap_in(&self.dir, base, &mut steps)? {
                // Simulated crash: leave the files exactly as they are.
                std::mem::forget(result);
                return Ok(stats);
            }
            result.segments[k].installed = true;
            let segment = Segment::open(&self.dir, base, true, self.config.index_interval_bytes)?;
            if segment.next_offset() != self.segments[i].next_offset() {
                return Err(StorageError::corrupt_log(segment.log_path(), "compacted segment changed its next offset"));
            }
            // The old files were renamed over, not deleted: readers holding slices keep them.
            self.segments[i] = segment;
        }
        self.cleaned_through = self.cleaned_through.max(planned_through);
        self.tombstones_due_ms = tombstones_due;
        tracing::info!(
            dir = %self.dir.display(),
            segments = stats.segments_cleaned,
            records_removed = stats.records_removed,
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            "compacted log"
        );
        Ok(stats)
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch <= `epoch` and the offset where the next
    /// epoch starts (the log end offset for the latest epoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let latest = self.latest_epoch()?;
        if epoch == latest {
            return Some((latest, self.log_end_offset()));
        }
        let higher = self.epochs.partition_point(|&(e, _)| e <= epoch);
        let &(_, next_start) = self.epochs.get(higher)?;
        match higher.checked_sub(1).and_then(|i| self.epochs.get(i)) {
            Some(&(floor, _)) => Some((floor, next_start)),
            None => Some((epoch, next_start)),
        }
    }

    /// A new leadership starts at the log end (Kafka's `maybeAssignEpochStartOffset`): recorded
    /// before any batch carries the epoch, so that OffsetForLeaderEpoch on the new leader answers
    /// a follower of the previous epoch with where that epoch ended here.
    pub fn assign_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        if epoch < 0 || self.latest_epoch().is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        let leo = self.log_end_offset();
        push_epoch(&mut self.epochs, epoch, leo);
        self.persist_epochs()
    }

    /// Starts the log over, empty, at `offset` (a follower whose leader no longer has the
    /// follower's log end: everything it has is below the leader's log start).
    pub fn reset_empty_at(&mut self, offset: i64) -> Result<(), StorageError> {
        tracing::info!(dir = %self.dir.display(), offset, "log restarted empty at the leader's log start");
        self.reset_to(offset)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|&(e, _)| e)
    }

    fn active(&self) -> &Segment {
        debug_assert!(!self.segments.is_empty());
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Index of the segment that holds `offset` (the last one whose base is <= it).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset() <= offset).saturating_sub(1)
    }

    fn set_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        self.log_start_offset = offset;
        // Persisted before any segment is deleted, so a crash in between only leaves segments
        // that the next open deletes.
        self.persist_log_start_offset()?;
        let before = self.epochs.clone();
        truncate_epochs_from_start(&mut self.epochs, offset);
        if self.epochs != before {
            self.persist_epochs()?;
        }
        Ok(())
    }

    fn delete_segments_below_start(&mut self) -> Result<(), StorageError> {
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
    fn reset_to(&mut self, offset: i64) -> Result<(), StorageError> {
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
        self.persist_epochs()?;
        self.producers.clear();
        self.write_producer_snapshot()
    }

    fn persist_log_start_offset(&self) -> Result<(), StorageError> {
        write_atomic(&self.dir, LOG_START_OFFSET_FILE, format!("0\n{}\n", self.log_start_offset).as_bytes())
    }

    fn persist_epochs(&self) -> Result<(), StorageError> {
        let entries: Vec<(i64, i64)> = self.epochs.iter().map(|&(e, o)| (i64::from(e), o)).collect();
        write_atomic(&self.dir, LEADER_EPOCH_FILE, &encode_entries(&entries))
    }

    fn write_producer_snapshot(&self) -> Result<(), StorageError> {
        write_atomic(&self.dir, PRODUCER_STATE_FILE, &self.producers.encode_snapshot(self.log_end_offset()))
    }

    /// Rebuilds the producer state from the snapshot plus the batch headers after it (or from the
    /// whole log when the snapshot is missing, damaged or ahead of the log), then snapshots it.
    fn load_producer_state(&mut self) -> Result<(), StorageError> {
        let path = self.dir.join(PRODUCER_STATE_FILE);
        let leo = self.log_end_offset();
        let snapshot = match read_optional(&path)? {
            Some(bytes) => match ProducerStateManager::decode_snapshot(&path, &bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring damaged producer-state snapshot");
                    None
                }
            },
            None => None,
        };
        let (from, state, up_to_date) = match snapshot {
            Some((offset, state)) if offset <= leo => (offset, state, offset == leo),
            _ => (self.segments[0].base_offset(), ProducerStateManager::new(), false),
        };
        self.producers = state;
        let from = from.max(self.segments[0].base_offset());
        let mut replayed = 0usize;
        for segment in &self.segments[self.segment_index_for(from)..] {
            let Some(first) = segment.find_batch(from)? else { continue };
            let mut pos = first.position as u64;
            while let Some(h) = segment.read_header(pos)? {
                if h.base_offset >= from {
                    self.producers.record(&h);
                    replayed += 1;
                }
                pos += h.len as u64;
            }
        }
        if replayed > 0 {
            tracing::info!(dir = %self.dir.display(), from, batches = replayed, "replayed producer state");
        }
        if !up_to_date {
            self.write_producer_snapshot()?;
        }
        Ok(())
    }
}

/// Appends to `out` the whole batches of `segment` from `start` that fit the budget and end below
/// `max_offset`. Returns true when the read is complete (budget or `max_offset` reached).
/// Kafka's truncateFromStart: entries that begin below the new start collapse into one that
/// begins at it.
/// Appends (epoch, start), first dropping entries that start at or after `start` (an epoch that
/// began but got no batch before the next one), so that starts stay strictly increasing.
fn push_epoch(epochs: &mut Vec<(i32, i64)>, epoch: i32, start: i64) {
    while epochs.last().is_some_and(|&(_, s)| s >= start) {
        epochs.pop();
    }
    debug_assert!(epochs.last().is_none_or(|&(e, _)| e < epoch), "epochs increase");
    epochs.push((epoch, start));
}

fn truncate_epochs_from_start(epochs: &mut Vec<(i32, i64)>, start: i64) {
    let below = epochs.partition_point(|&(_, s)| s <= start);
    if below == 0 {
        return;
    }
    let (epoch, _) = epochs[below - 1];
    epochs.drain(..below);
    epochs.insert(0, (epoch, start));
}

fn decode_epochs(path: &Path, bytes: &[u8]) -> Result<Vec<(i32, i64)>, StorageError> {
    let entries = decode_entries(path, bytes)?;
    let epochs: Vec<(i32, i64)> = entries
        .into_iter()
        .map(|(e, o)| i32::try_from(e).map(|e| (e, o)))
        .collect::<Result<_, _>>()
        .map_err(|_| StorageError::corrupt_log(path, "epoch out of range"))?;
    if epochs.windows(2).any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1) {
        return Err(StorageError::corrupt_log(path, "entries are not increasing"));
    }
    Ok(epochs)
}

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

/// Base offsets of the segments in `dir`, ascending. Removes leftovers of interrupted operations:
/// temporary checkpoint files and index files whose log is gone.
fn scan_dir(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut logs = BTreeSet::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            std::fs::remove_file(entry.path()).at(&entry.path())?;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else { continue };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else { continue };
        match ext {
            LOG_EXT => {
                logs.insert(base);
            }
            INDEX_EXT | TIME_INDEX_EXT => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            tracing::warn!(file = %path.display(), "removing index without its segment");
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(logs.into_iter().collect())
}

/// Takes one rename step unless the test budget is exhausted.
fn proceed(steps: &mut Option<usize>) -> bool {
    match steps {
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
        None => true,
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    std::fs::rename(from, to).at(from)
}

/// The rename sequence that replaces segment `base` by its `.cleaned` copy. Returns false when the
/// test budget stopped it early.
fn swap_in(dir: &Path, base: i64, steps: &mut Option<usize>) -> Result<bool, StorageError> {
    let indexes = [INDEX_EXT, TIME_INDEX_EXT];
    if !proceed(steps) {
        return Ok(false);
    }
    for ext in indexes {
        rename(&suffixed_path(dir, base, ext, CLEANED_SUFFIX), &suffixed_path(dir, base, ext, SWAP_SUFFIX))?;
    }
    if !proceed(steps) {
        return Ok(false);
    }
    // Commit point: from here on, open() completes the swap.
    rename(&suffixed_path(dir, base, LOG_EXT, CLEANED_SUFFIX), &suffixed_path(dir, base, LOG_EXT, SWAP_SUFFIX))?;
    fsync_dir(dir)?;
    if !proceed(steps) {
        return Ok(false);
    }
    for ext in indexes {
        rename(&suffixed_path(dir, base, ext, SWAP_SUFFIX), &segment_path(dir, base, ext))?;
    }
    if !proceed(steps) {
        return Ok(false);
    }
    rename(&suffixed_path(dir, base, LOG_EXT, SWAP_SUFFIX), &segment_path(dir, base, LOG_EXT))?;
    fsync_dir(dir)?;
    Ok(true)
}

/// Finishes or rolls back a compaction interrupted by a crash: a `NNN.log.swap` was fully written
/// and committed, so it replaces `NNN.log` (its index swaps first, when still there); index
/// `.swap` files without a log swap and every `.cleaned` file are uncommitted leftovers.
fn complete_interrupted_compaction(dir: &Path) -> Result<(), StorageError> {
    let log_swap_suffix = format!(".{LOG_EXT}{SWAP_SUFFIX}");
    let mut committed = BTreeSet::new();
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(&log_swap_suffix) {
            if let Ok(base) = stem.parse::<i64>() {
                if stem.len() == 20 {
                    committed.insert(base);
                    continue;
                }
            }
        }
        if name.ends_with(CLEANED_SUFFIX) || name.ends_with(SWAP_SUFFIX) {
            leftovers.push(entry.path());
        }
    }
    let changed = !committed.is_empty() || !leftovers.is_empty();
    for &base in &committed {
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            let swap = suffixed_path(dir, base, ext, SWAP_SUFFIX);
            if swap.exists() {
                rename(&swap, &segment_path(dir, base, ext))?;
            }
        }
        rename(&suffixed_path(dir, base, LOG_EXT, SWAP_SUFFIX), &segment_path(dir, base, LOG_EXT))?;
        tracing::info!(dir = %dir.display(), base_offset = base, "completed interrupted compaction swap");
    }
    for path in leftovers {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(file = %path.display(), "removed leftover of an interrupted compaction"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&path),
        }
    }
    if changed {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn remove_segment_files(dir: &Path, base: i64) -> Result<(), StorageError> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
        let path = segment_path(dir, base, ext);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&path),
        }
    }
    Ok(())
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
