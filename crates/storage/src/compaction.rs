//! Log compaction (`cleanup.policy=compact`): keeps, for every key, only its record with the
//! highest offset.
//!
//! # Work split and locking
//!
//! 1. [`PartitionLog::compaction_plan`](crate::PartitionLog::compaction_plan) (cheap, `&self`):
//!    the non-active segments below the bound min(high watermark, first unstable offset) to clean,
//!    their file handles and sizes, the later segments (read for the key map only, up to the
//!    bound), and the aborted transactions from the transaction indexes.
//! 2. [`CompactionPlan::execute`] (no lock): reads the old segment files through those handles,
//!    builds the key map and writes `NNN.{log,index,timeindex,txnindex}.cleaned`, fsynced.
//! 3. [`PartitionLog::install_compaction`](crate::PartitionLog::install_compaction) (`&mut self`,
//!    brief: renames plus a trusted open of each new segment): checks that no truncation happened
//!    and that every cleaned segment is still the same file, then swaps them in, oldest first.
//!
//! # Rules
//!
//! - **Key map**: full key bytes → highest offset, built over every record below the bound
//!   min(high watermark, first unstable offset), active segment included (so a key rewritten in
//!   the active segment is removed from older ones), records of aborted transactions excepted.
//!   Records at or above the high watermark may still be truncated away by a leader change, and
//!   records at or above the first unstable offset may belong to a transaction that will abort,
//!   so they never supersede anything, and segments reaching past the bound are not cleaned
//!   (Kafka's cleaner stops at the last stable offset too). Full keys mean no hash collisions;
//!   memory is the size of the distinct keys plus about 50 bytes per key.
//! - **Survivors**: a record survives when its key is null (kept; the broker rejects null keys on
//!   compacted topics), or when it is its key's latest record and not a removable tombstone.
//! - **Tombstones** (null value) that are their key's latest record are removed when their batch's
//!   maxTimestamp is >= 0 and older than `now_ms - delete_retention_ms` at cleaning time (a
//!   negative `delete_retention_ms` keeps them forever, as does a batch without timestamps).
//!   Segments are installed oldest first, so a crash between two segments can never leave a
//!   removed tombstone with an older value of its key still present.
//! - **Batches**: offsets are never renumbered. A batch keeping all its records is copied byte for
//!   byte; a partially cleaned one is rebuilt with the same baseOffset, lastOffsetDelta,
//!   timestamps (maxTimestamp is kept as it was), producer id/epoch/baseSequence, leader epoch and
//!   attributes, recordsCount = survivors (each keeping its offsetDelta), new CRC, re-compressed
//!   with its original codec. A batch losing all its records disappears, except that it is kept
//!   as an empty (recordsCount 0, uncompressed) batch when it is the last batch of its segment
//!   (so every segment keeps its next offset and segments stay contiguous), or the last batch or
//!   the last data batch of its producer id (so the producer state, sequence and epoch, survives a
//!   replay, as Kafka's `lastRecordsOfActiveProducers` rule; unlike Kafka, expired producers keep
//!   theirs too, since the scan below the bound decides, not the in-memory state).
//! - **Kept whole and ignored by the key map**: batches failing their CRC, and compressed
//!   batches that fail to decompress or would decompress past
//!   `max_decompressed_bytes` (64 MiB by default): a decompression bomb costs at most that much
//!   memory. Ignoring their keys only ever keeps more records, never fewer. Also control batches
//!   whose record cannot be read.
//!
//! # Transactions
//!
//! As Kafka's LogCleaner with its `CleanedTransactionMetadata` (see `compaction_txn`): both passes
//! walk the log in offset order from its first segment, and an aborted transaction (from the
//! transaction indexes) is "ongoing" from its first offset to its producer's ABORT marker.
//!
//! - **Aborted data** (a transactional batch of a producer inside an aborted transaction): all its
//!   records go, whatever their keys, and they feed no key map. The batch disappears unless it must
//!   keep its header (above), then it stays empty.
//! - **Committed data** (any other transactional batch): compacted by key like any other batch,
//!   transactional attribute kept.
//! - **Undecided data** are never reached: the cleanable range ends at the first unstable offset.
//! - **Markers** (control batches). A marker is *removable* when none of its transaction's batches
//!   was seen by this pass before it: for a COMMIT, no transactional batch of its producer since its
//!   previous marker; for an ABORT, no batch of the aborted transaction (an empty control batch is
//!   always removable). A marker that is not removable is kept as is; an ABORT one keeps its entry
//!   in the cleaned segment's transaction index. Removal takes two passes, Kafka's
//!   `deleteHorizonMs` rule: the first pass that finds a marker removable rewrites it with a delete
//!   horizon of `now + delete_retention_ms` (attribute bit 0x40, baseTimestamp = horizon, record
//!   timestamps and maxTimestamp kept, new CRC) and drops its aborted entry, whose transaction has no
//!   data left; a later pass at or after the horizon removes it (or empties it when it must keep its
//!   header). So a consumer that read part of a transaction has delete.retention.ms to reach its
//!   marker. Negative `delete_retention_ms` keeps markers forever. The earliest horizon set or seen
//!   makes [`PartitionLog::compaction_due`](crate::PartitionLog::compaction_due) true once reached,
//!   like a tombstone coming due.
//! - A cleaned segment's transaction index holds exactly the entries of the ABORT markers it kept
//!   with data; a segment whose entries change is rewritten even when no batch changed.
//!
//! # Crash safety
//!
//! Per segment: `.index.cleaned`/`.timeindex.cleaned` → `.swap`; then `.log.cleaned` →
//! `.log.swap` and fsync of the directory (the commit point); then the index swaps and finally
//! the log swap are renamed over the old files. On open, a `NNN.log.swap` wins (its index swaps
//! are renamed into place, then the log), stray index `.swap` files and all `.cleaned` files are
//! deleted.
//!
//! Steps 1 and 3 and both halves of this rename sequence are the log's side, in
//! `compaction_install.rs`. This module writes the `.cleaned` files (and removes those of a
//! result dropped without being installed).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::{read_varlong, rebuild_batch, verify_crc, BatchHeader, HEADER_LEN};
use crate::codec::{compress, decompress};
use crate::compaction_txn::TxnTracker;
use crate::control::{parse_control_record, with_delete_horizon};
use crate::error::{IoContext, StorageError};
use crate::segment::{remove_cleaned_files, CleanedWriter};
use crate::txn_index::AbortedTxn;


/// What a compaction did. Counts cover the segments that were installed, except `discarded`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments read and considered for cleaning.
    pub segments_planned: usize,
    /// Segments replaced by a cleaned copy.
    pub segments_cleaned: usize,
    /// Records removed (tombstones included).
    pub records_removed: u64,
    /// Tombstones removed because their delete retention had passed.
    pub tombstones_removed: u64,
    /// Batches kept whole without looking at their keys (unreadable control batches, unsupported or
    /// oversized compression, bad CRC).
    pub batches_kept_whole: u64,
    /// Records of aborted transactions removed (also counted in `records_removed`).
    pub aborted_records_removed: u64,
    /// Transaction markers removed (or emptied, when kept as their producer's last batch).
    pub markers_removed: u64,
    /// Size of the cleaned segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The log changed under the compaction (truncation, another compaction): nothing installed.
    pub discarded: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct SegmentRef {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub file: Arc<File>,
    pub path: PathBuf,
    /// The segment's aborted-transaction entries when planned: a cleaned copy whose entries differ
    /// is installed even when no batch changed.
    pub aborted: Vec<AbortedTxn>,
}

/// See [`PartitionLog::compaction_plan`](crate::PartitionLog::compaction_plan).
#[derive(Debug)]
pub struct CompactionPlan {
    pub(crate) dir: PathBuf,
    pub(crate) generation: u64,
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: i64,
    pub(crate) index_interval_bytes: u32,
    pub(crate) max_decompressed_bytes: usize,
    /// min(high watermark, first unstable offset): records at or above it neither get cleaned nor
    /// supersede older records.
    pub(crate) upper_bound: i64,
    /// Segments to clean, oldest first: non-active, non-empty, entirely below `upper_bound`.
    pub(crate) segments: Vec<SegmentRef>,
    /// The segments after them, read for the key map only (below `upper_bound`).
    pub(crate) others: Vec<SegmentRef>,
    /// The aborted transactions overlapping `[first segment's base, upper_bound)`, from the log's
    /// transaction indexes.
    pub(crate) aborted: Vec<AbortedTxn>,
}

pub(crate) struct CleanedSegment {
    pub base_offset: i64,
    pub old_file: Arc<File>,
    pub old_size: u64,
    pub old_next_offset: i64,
    pub installed: bool,
}

/// Cleaned copies written by [`CompactionPlan::execute`], waiting to be installed. Dropping it
/// without installing deletes the copies.
pub struct CompactionResult {
    pub(crate) dir: PathBuf,
    pub(crate) generation: u64,
    /// The next offset of the last planned segment: below it the log is clean once installed.
    pub(crate) planned_through: i64,
    /// When the earliest kept tombstone may go (`i64::MAX`: none kept).
    pub(crate) tombstones_due_ms: i64,
    pub(crate) segments: Vec<CleanedSegment>,
    pub(crate) stats: CompactionStats,
}

impl std::fmt::Debug for CompactionResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionResult")
            .field("dir", &self.dir)
            .field("segments", &self.segments.iter().map(|s| s.base_offset).collect::<Vec<_>>())
            .field("stats", &self.stats)
            .finish()
    }
}

impl CompactionResult {
    /// What the compaction would do once installed.
    pub fn stats(&self) -> &CompactionStats {
        &self.stats
    }
}

impl Drop for CompactionResult {
    fn drop(&mut self) {
        for s in self.segments.iter().filter(|s| !s.installed) {
            remove_cleaned_files(&self.dir, s.base_offset);
        }
    }
}

impl CompactionPlan {
    /// Number of segments that will be considered for cleaning.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Caps the decompressed size of one batch (default [`crate::DEFAULT_MAX_DECOMPRESSED_BYTES`]);
    /// batches beyond it are kept whole.
    pub fn set_max_decompressed_bytes(&mut self, bytes: usize) {
        self.max_decompressed_bytes = bytes;
    }

    /// The heavy part, run without the log's lock: reads the planned segments through their file
    /// handles and writes cleaned copies next to them. Nothing visible changes until
    /// [`PartitionLog::install_compaction`](crate::PartitionLog::install_compaction).
    pub fn execute(self) -> Result<CompactionResult, StorageError> {
        let cap = self.max_decompressed_bytes;
        let mut result = CompactionResult {
            dir: self.dir.clone(),
            generation: self.generation,
            planned_through: self.segments.last().map_or(0, |s| s.next_offset),
            tombstones_due_ms: i64::MAX,
            segments: Vec::new(),
            stats: CompactionStats { segments_planned: self.segments.len(), ..CompactionStats::default() },
        };
        if self.segments.is_empty() {
            return Ok(result);
        }
        // Pass 1: the latest offset of every key (aborted records excepted), and the last batch and
        // last data batch of every producer.
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut producer_last: HashMap<i64, i64> = HashMap::new();
        let mut producer_last_data: HashMap<i64, i64> = HashMap::new();
        let hw = self.upper_bound;
        let mut txns = TxnTracker::new(&self.aborted);
        for seg in self.segments.iter().chain(self.others.iter().filter(|s| s.base_offset < hw)) {
            for_each_batch(seg, |h, batch| {
                if h.base_offset >= hw {
                    return Ok(());
                }
                if h.producer_id >= 0 {
                    producer_last.insert(h.producer_id, h.base_offset);
                    if !h.is_control() {
                        producer_last_data.insert(h.producer_id, h.base_offset);
                    }
                }
                if h.is_control() {
                    let control = parse_control_record(h, batch);
                    txns.on_control(h, control.as_ref().ok().and_then(Option::as_ref), control.is_ok());
                    return Ok(());
                }
                if txns.on_batch(h) {
                    return Ok(()); // aborted: its records supersede nothing
                }
                if let Analysis::Records { data, records } = analyze(h, batch, cap) {
                    for r in &records {
                        let Some((ks, ke)) = r.key else { continue };
                        let offset = h.base_offset + i64::from(r.offset_delta);
                        if offset >= hw {
                            break;
                        }
                        match latest.get_mut(&data[ks..ke]) {
                            Some(l) => *l = (*l).max(offset),
                            None => {
                                latest.insert(data[ks..ke].to_vec(), offset);
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }

        // Pass 2: write the survivors of each segment.
        let horizon =
            if self.delete_retention_ms < 0 { i64::MIN } else { self.now_ms.saturating_sub(self.delete_retention_ms) };
        let mut tombstones_due = i64::MAX;
        let mut txns = TxnTracker::new(&self.aborted);
        for seg in &self.segments {
            let mut writer = CleanedWriter::create(&self.dir, seg.base_offset, self.index_interval_bytes)?;
            result.segments.push(CleanedSegment {
                base_offset: seg.base_offset,
                old_file: seg.file.clone(),
                old_size: seg.size,
                old_next_offset: seg.next_offset,
                installed: false,
            });
            let mut changed = false;
            let mut stats = CompactionStats::default();
            for_each_batch(seg, |h, batch| {
                let must_keep_header = h.end_position() as u64 == seg.size
                    || (h.producer_id >= 0
                        && (producer_last.get(&h.producer_id) == Some(&h.base_offset)
                            || producer_last_data.get(&h.producer_id) == Some(&h.base_offset)));
                if h.is_control() {
                    let control = parse_control_record(h, batch);
                    let readable = control.is_ok();
                    let control = control.ok().flatten();
                    let fate = txns.on_control(h, control.as_ref(), readable);
                    if !readable {
                        stats.batches_kept_whole += 1;
                        return writer.append(batch);
                    }
                    let action = if !fate.removable {
                        MarkerAction::Keep
                    } else if h.records_count == 0 {
                        if must_keep_header { MarkerAction::Keep } else { MarkerAction::Remove }
                    } else {
                        match h.delete_horizon_ms() {
                            Some(due) if due <= self.now_ms => {
                                if must_keep_header { MarkerAction::Empty } else { MarkerAction::Remove }
                            }
                            Some(due) => {
                                tombstones_due = tombstones_due.min(due);
                                MarkerAction::Keep
                            }
                            None if self.delete_retention_ms < 0 => MarkerAction::Keep,
                            None => {
                                let due = self.now_ms.saturating_add(self.delete_retention_ms);
                                tombstones_due = tombstones_due.min(due);
                                MarkerAction::Stamp(due)
                            }
                        }
                    };
                    match action {
                        MarkerAction::Keep => writer.append(batch)?,
                        MarkerAction::Remove => {
                            changed = true;
                            stats.markers_removed += u64::from(h.records_count > 0);
                        }
                        MarkerAction::Empty => {
                            changed = true;
                            stats.markers_removed += 1;
                            writer.append(&rebuild_batch(batch, &[], 0, 0))?;
                        }
                        MarkerAction::Stamp(due) => {
                            changed = true;
                            match with_delete_horizon(h, batch, due)? {
                                Some(stamped) => writer.append(&stamped)?,
                                None => writer.append(batch)?,
                            }
                        }
                    }
                    if let Some(txn) = fate.keep_entry {
                        writer.push_aborted(txn);
                    }
                    return Ok(());
                }
                if txns.on_batch(h) {
                    // An aborted transaction's batch: every record goes, whatever its key.
                    let n = u64::try_from(h.records_count).unwrap_or(0);
                    stats.records_removed += n;
                    stats.aborted_records_removed += n;
                    if must_keep_header && h.records_count == 0 {
                        return writer.append(batch);
                    }
                    changed = true;
                    return if must_keep_header { writer.append(&rebuild_batch(batch, &[], 0, 0)) } else { Ok(()) };
                }
                let (data, records) = match analyze(h, batch, cap) {
                    Analysis::Opaque(reason) => {
                        tracing::trace!(base_offset = h.base_offset, reason, "compaction keeps batch whole");
                        stats.batches_kept_whole += 1;
                        return writer.append(batch);
                    }
                    Analysis::Records { data, records } => (data, records),
                };
                let mut keep = Vec::with_capacity(records.len());
                for r in &records {
                    let survives = match r.key {
                        None => true,
                        Some((ks, ke)) => {
                            let offset = h.base_offset + i64::from(r.offset_delta);
                            let is_latest = latest.get(&data[ks..ke]).is_none_or(|&l| l <= offset);
                            if !is_latest {
                                false
                            } else if r.tombstone && h.max_timestamp >= 0 && h.max_timestamp < horizon {
                                stats.tombstones_removed += 1;
                                false
                            } else {
                                if r.tombstone && self.delete_retention_ms >= 0 {
                                    let due = h.max_timestamp.max(0).saturating_add(self.delete_retention_ms).saturating_add(1);
                                    tombstones_due = tombstones_due.min(due);
                                }
                                true
                            }
                        }
                    };
                    if survives {
                        keep.push(r);
                    }
                }
                stats.records_removed += (records.len() - keep.len()) as u64;
                // An already empty batch that is no longer needed goes; anything else untouched is copied.
                if keep.len() == records.len() && (must_keep_header || !records.is_empty()) {
                    return writer.append(batch);
                }
                changed = true;
                if keep.is_empty() {
                    return if must_keep_header { writer.append(&rebuild_batch(batch, &[], 0, 0)) } else { Ok(()) };
                }
                let mut payload = Vec::with_capacity(keep.iter().map(|r| r.end - r.start).sum());
                for r in &keep {
                    payload.extend_from_slice(&data[r.start..r.end]);
                }
                let codec = h.compression();
                let rebuilt = if codec == 0 {
                    rebuild_batch(batch, &payload, keep.len() as i32, 0)
                } else {
                    match compress(codec, &payload) {
                        Some(compressed) => rebuild_batch(batch, &compressed, keep.len() as i32, codec),
                        None => rebuild_batch(batch, &payload, keep.len() as i32, 0),
                    }
                };
                writer.append(&rebuilt)
            })?;
            changed |= writer.aborted() != seg.aborted.as_slice();
            if !changed {
                drop(writer);
                remove_cleaned_files(&self.dir, seg.base_offset);
                result.segments.pop();
                continue;
            }
            if writer.next_offset() != seg.next_offset {
                return Err(StorageError::corrupt_log(&seg.path, "compacted copy does not end where the segment ends"));
            }
            let new_size = writer.finish()?;
            result.stats.bytes_before += seg.size;
            result.stats.bytes_after += new_size;
            result.stats.records_removed += stats.records_removed;
            result.stats.tombstones_removed += stats.tombstones_removed;
            result.stats.batches_kept_whole += stats.batches_kept_whole;
            result.stats.aborted_records_removed += stats.aborted_records_removed;
            result.stats.markers_removed += stats.markers_removed;
            result.stats.segments_cleaned += 1;
        }
        result.tombstones_due_ms = tombstones_due;
        Ok(result)
    }
}

/// What pass 2 does with a transaction marker.
enum MarkerAction {
    Keep,
    /// Its transaction's data are gone and its delete horizon passed.
    Remove,
    /// As `Remove`, but kept without its record as its producer's last batch.
    Empty,
    /// Its transaction's data are gone: keep it until this delete horizon, written into the batch.
    Stamp(i64),
}

fn for_each_batch(
    seg: &SegmentRef,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut pos = 0u64;
    let mut buf = Vec::new();
    while pos < seg.size {
        if seg.size - pos < HEADER_LEN as u64 {
            return Err(StorageError::corrupt_log(&seg.path, format!("truncated batch header at {pos}")));
        }
        let mut h = [0u8; HEADER_LEN];
        seg.file.read_exact_at(&mut h, pos).at(&seg.path)?;
        let header = BatchHeader::from_array(&h, pos as usize).map_err(|e| StorageError::corrupt_log(&seg.path, e.to_string()))?;
        if pos + header.len as u64 > seg.size {
            return Err(StorageError::corrupt_log(&seg.path, format!("batch at {pos} runs past the segment end")));
        }
        buf.resize(header.len, 0);
        seg.file.read_exact_at(&mut buf, pos).at(&seg.path)?;
        f(&header, &buf)?;
        pos += header.len as u64;
    }
    Ok(())
}

/// One record inside the (decompressed) records field.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    /// Byte range of the whole record, length prefix included.
    start: usize,
    end: usize,
    pub(crate) offset_delta: i32,
    pub(crate) timestamp_delta: i64,
    pub(crate) key: Option<(usize, usize)>,
    /// Byte range of the value; None for a tombstone.
    pub(crate) value: Option<(usize, usize)>,
    /// Byte range of the headers (their count, then each header), up to the record's end.
    pub(crate) headers: (usize, usize),
    tombstone: bool,
}

enum Analysis<'a> {
    /// Keep the batch whole; its keys are unknown.
    Opaque(&'static str),
    Records { data: Cow<'a, [u8]>, records: Vec<Record> },
}

fn analyze<'a>(h: &BatchHeader, batch: &'a [u8], cap: usize) -> Analysis<'a> {
    if h.is_control() {
        return Analysis::Opaque("control batch");
    }
    if verify_crc(h, batch).is_err() {
        return Analysis::Opaque("CRC mismatch");
    }
    let payload = &batch[HEADER_LEN..];
    let data = match h.compression() {
        0 => Cow::Borrowed(payload),
        codec => match decompress(codec, payload, cap) {
            Ok(d) => Cow::Owned(d),
            Err(reason) => return Analysis::Opaque(reason),
        },
    };
    match parse_records(&data, h) {
        Ok(records) => Analysis::Records { data, records },
        Err(_) => Analysis::Opaque("malformed records"),
    }
}

pub(crate) fn parse_records(data: &[u8], h: &BatchHeader) -> Result<Vec<Record>, StorageError> {
    let bad = |why: &str| StorageError::corrupt(format!("batch at offset {}: {why}", h.base_offset));
    let mut records = Vec::with_capacity((h.records_count as usize).min(4096));
    let mut pos = 0usize;
    let mut prev_delta = -1i64;
    for _ in 0..h.records_count {
        let start = pos;
        let len = read_varlong(data, &mut pos, 5)?;
        if len < 1 || len as u64 > (data.len() - pos) as u64 {
            return Err(bad("record length runs past the records"));
        }
        let end = pos + len as usize;
        let rec = &data[..end];
        let mut p = pos + 1; // attributes
        let timestamp_delta = read_varlong(rec, &mut p, 10)?;
        let offset_delta = read_varlong(rec, &mut p, 5)?;
        if offset_delta <= prev_delta || offset_delta > i64::from(h.last_offset_delta) {
            return Err(bad("offset deltas are not increasing within the batch"));
        }
        let key_len = read_varlong(rec, &mut p, 5)?;
        let key = if key_len < 0 {
            None
        } else {
            let ke = p.checked_add(key_len as usize).filter(|&e| e <= end).ok_or_else(|| bad("key runs past its record"))?;
            let k = (p, ke);
            p = ke;
            Some(k)
        };
        let value_len = read_varlong(rec, &mut p, 5)?;
        let value = if value_len < 0 {
            None
        } else {
            let ve = p.checked_add(value_len as usize).filter(|&e| e <= end).ok_or_else(|| bad("value runs past its record"))?;
            let v = (p, ve);
            p = ve;
            Some(v)
        };
        let headers = (p, end);
        records.push(Record { start, end, offset_delta: offset_delta as i32, timestamp_delta, key, value, headers, tombstone: value_len < 0 });
        prev_delta = offset_delta;
        pos = end;
    }
    if pos != data.len() {
        return Err(bad("bytes after the last record"));
    }
    Ok(records)
}
