//! One segment: a `.log` file of whole batches with contiguous offsets starting at `base_offset`,
//! plus its sparse offset index, time index and aborted-transaction index ([`crate::txn_index`]).
//!
//! The in-memory `size` is the authority on how much of the file is valid: reads never go past
//! it, appends write at it, and recovery cuts the file to it.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{verify_crc, BatchHeader, HEADER_LEN};
use crate::error::{IoContext, StorageError};
use crate::index::{IndexFile, OffsetEntry, TimeEntry};
use crate::txn_index::{write_index, AbortedTxn, TxnIndex};
use crate::vectored::WriteVectoredAt;

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";
pub(crate) const TXN_INDEX_EXT: &str = "txnindex";
/// Every per-segment index file; the `.log` goes with them.
pub(crate) const INDEX_EXTS: [&str; 3] = [INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT];
/// Compaction output being written (deleted on open).
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Compaction output fully written and committed (completed on open).
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Index positions are u32, so a segment never grows beyond this.
pub(crate) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

pub(crate) fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// `NNN.ext` plus a suffix such as [`CLEANED_SUFFIX`].
pub(crate) fn suffixed_path(dir: &Path, base_offset: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}{suffix}"))
}

/// Running state that decides which batches get index entries. Shared by append and rebuild so a
/// rebuilt index is identical to the one written while appending.
///
/// Both indexes are sparse, as in Kafka: an entry every `index.interval.bytes` of log. A time
/// entry rides along with each offset entry and records the largest timestamp seen so far and
/// the batch that first reached it, so every batch before that point has a timestamp no larger.
/// A lookup may therefore start at the last entry below its target; the segment's exact maximum
/// lives in memory (rebuilt on open by walking the batches after the last index entry).
#[derive(Clone, Copy, Debug)]
struct IndexState {
    bytes_since_index: u64,
    max_timestamp: i64,
    /// Relative offset of the first batch that reached `max_timestamp`.
    max_timestamp_rel: u32,
    /// Timestamp of the last time-index entry; entries strictly increase.
    indexed_timestamp: i64,
}

impl IndexState {
    const EMPTY: IndexState = IndexState { bytes_since_index: 0, max_timestamp: -1, max_timestamp_rel: 0, indexed_timestamp: -1 };

    fn observe(
        &mut self,
        base_offset: i64,
        header: &BatchHeader,
        file_position: u64,
        interval: u32,
        offsets: &mut Vec<OffsetEntry>,
        times: &mut Vec<TimeEntry>,
    ) {
        let rel = header.base_offset - base_offset;
        debug_assert!((0..=i64::from(u32::MAX)).contains(&rel));
        debug_assert!(file_position <= MAX_SEGMENT_BYTES);
        let rel = rel as u32;
        if self.bytes_since_index >= u64::from(interval) {
            offsets.push(OffsetEntry { rel_offset: rel, position: file_position as u32 });
            if self.max_timestamp > self.indexed_timestamp {
                times.push(TimeEntry { timestamp: self.max_timestamp, rel_offset: self.max_timestamp_rel });
                self.indexed_timestamp = self.max_timestamp;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.len as u64;
        self.observe_timestamp(header.max_timestamp, rel);
    }

    fn observe_timestamp(&mut self, timestamp: i64, rel: u32) {
        if timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
            self.max_timestamp_rel = rel;
        }
    }
}

pub(crate) struct Segment {
    base_offset: i64,
    next_offset: i64,
    size: u64,
    state: IndexState,
    /// When the segment started to fill; drives segment.ms rolling.
    roll_base_ms: Option<i64>,
    log: Arc<File>,
    log_path: PathBuf,
    offset_index: IndexFile<OffsetEntry>,
    time_index: IndexFile<TimeEntry>,
    txn_index: TxnIndex,
    /// False when the aborted-transaction index was missing or damaged on open: its entries were dropped
    /// and the producer-state replay must cover this segment to regenerate them.
    txn_index_intact: bool,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment, StorageError> {
        let log_path = segment_path(dir, base_offset, LOG_EXT);
        let log = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&log_path).at(&log_path)?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            state: IndexState::EMPTY,
            roll_base_ms: None,
            log: Arc::new(log),
            log_path,
            offset_index: IndexFile::create(&segment_path(dir, base_offset, INDEX_EXT))?,
            time_index: IndexFile::create(&segment_path(dir, base_offset, TIME_INDEX_EXT))?,
            txn_index: TxnIndex::create(&segment_path(dir, base_offset, TXN_INDEX_EXT))?,
            txn_index_intact: true,
        })
    }

    /// Opens an existing segment. With `trust`, the file length and the index files are believed
    /// after a cheap consistency check (falling back to a full scan when it fails); without it,
    /// every batch is checked and the indexes are rebuilt.
    pub fn open(dir: &Path, base_offset: i64, trust: bool, interval: u32) -> Result<Segment, StorageError> {
        let log_path = segment_path(dir, base_offset, LOG_EXT);
        let log = OpenOptions::new().read(true).write(true).open(&log_path).at(&log_path)?;
        let file_len = log.metadata().at(&log_path)?.len();
        if trust {
            if let Some(segment) = Self::open_trusted(dir, base_offset, &log, &log_path, file_len)? {
                return Ok(segment);
            }
            tracing::warn!(segment = %log_path.display(), "segment index is inconsistent; rebuilding it");
        }
        Self::recover(dir, base_offset, log, log_path, file_len, interval, trust)
    }

    fn open_trusted(
        dir: &Path,
        base_offset: i64,
        log: &File,
        log_path: &Path,
        file_len: u64,
    ) -> Result<Option<Segment>, StorageError> {
        if file_len > MAX_SEGMENT_BYTES {
            return Ok(None);
        }
        let Some(offset_index) = IndexFile::<OffsetEntry>::load(&segment_path(dir, base_offset, INDEX_EXT))? else {
            return Ok(None);
        };
        let Some(time_index) = IndexFile::<TimeEntry>::load(&segment_path(dir, base_offset, TIME_INDEX_EXT))? else {
            return Ok(None);
        };
        let offsets = offset_index.entries();
        let offsets_sane = offsets.windows(2).all(|w| w[0].rel_offset < w[1].rel_offset && w[0].position < w[1].position)
            && offsets.last().is_none_or(|e| u64::from(e.position) < file_len);
        if !offsets_sane {
            return Ok(None);
        }
        // Walk the headers after the last index entry: the only part whose offsets we do not know.
        let (mut pos, mut next) = match offsets.last() {
            Some(e) => (u64::from(e.position), base_offset + i64::from(e.rel_offset)),
            None => (0, base_offset),
        };
        let times = time_index.entries();
        let mut state = IndexState {
            bytes_since_index: file_len - offsets.last().map_or(0, |e| u64::from(e.position)),
            max_timestamp: times.last().map_or(-1, |e| e.timestamp),
            max_timestamp_rel: times.last().map_or(0, |e| e.rel_offset),
            indexed_timestamp: times.last().map_or(-1, |e| e.timestamp),
        };
        while pos < file_len {
            let Ok(h) = read_header_at(log, pos, file_len) else { return Ok(None) };
            // Offsets strictly increase; a compacted segment may skip some (gaps).
            if h.base_offset < next || pos + h.len as u64 > file_len {
                return Ok(None);
            }
            // The time index does not cover the batches after its last entry.
            state.observe_timestamp(h.max_timestamp, (h.base_offset - base_offset) as u32);
            pos += h.len as u64;
            next = h.last_offset() + 1;
        }
        let times_sane = times.windows(2).all(|w| w[0].timestamp < w[1].timestamp && w[0].rel_offset <= w[1].rel_offset)
            && times.last().is_none_or(|e| i64::from(e.rel_offset) < next - base_offset);
        if !times_sane {
            return Ok(None);
        }
        let roll_base_ms = first_batch_timestamp(log, file_len);
        let (txn_index, txn_index_intact) = TxnIndex::open(&segment_path(dir, base_offset, TXN_INDEX_EXT), base_offset, next, true)?;
        Ok(Some(Segment {
            base_offset,
            next_offset: next,
            size: file_len,
            state,
            roll_base_ms,
            log: Arc::new(log.try_clone().at(log_path)?),
            log_path: log_path.to_path_buf(),
            offset_index,
            time_index,
            txn_index,
            txn_index_intact,
        }))
    }

    fn recover(
        dir: &Path,
        base_offset: i64,
        log: File,
        log_path: PathBuf,
        file_len: u64,
        interval: u32,
        trusted: bool,
    ) -> Result<Segment, StorageError> {
        let mut pos = 0u64;
        let mut next = base_offset;
        let mut state = IndexState::EMPTY;
        let (mut offsets, mut times) = (Vec::new(), Vec::new());
        let mut buf = Vec::new();
        let limit = file_len.min(MAX_SEGMENT_BYTES);
        let stop_reason = loop {
            if pos == limit {
                break None;
            }
            let h = match read_header_at(&log, pos, limit) {
                Ok(h) => h,
                Err(e) => break Some(e.to_string()),
            };
            // Offsets strictly increase; compaction leaves gaps, so a larger offset is fine.
            if h.base_offset < next {
                break Some(format!("batch offset {} where at least {next} was expected", h.base_offset));
            }
            if pos + h.len as u64 > limit {
                break Some("last batch is truncated".to_string());
            }
            buf.resize(h.len, 0);
            log.read_exact_at(&mut buf, pos).at(&log_path)?;
            if let Err(e) = verify_crc(&h, &buf) {
                break Some(e.to_string());
            }
            state.observe(base_offset, &h, pos, interval, &mut offsets, &mut times);
            pos += h.len as u64;
            next = h.last_offset() + 1;
        };
        if pos < file_len {
            tracing::warn!(
                segment = %log_path.display(),
                bytes_dropped = file_len - pos,
                valid_bytes = pos,
                reason = stop_reason.as_deref().unwrap_or("segment too large"),
                "truncating torn or corrupt tail of segment"
            );
            log.set_len(pos).at(&log_path)?;
            log.sync_all().at(&log_path)?;
        }
        let mut offset_index = IndexFile::create(&segment_path(dir, base_offset, INDEX_EXT))?;
        offset_index.rewrite(offsets)?;
        let mut time_index = IndexFile::create(&segment_path(dir, base_offset, TIME_INDEX_EXT))?;
        time_index.rewrite(times)?;
        let roll_base_ms = first_batch_timestamp(&log, pos);
        // A segment that was fsynced (only its offset or time index failed the check) must have a whole
        // aborted-transaction index too; the last one after a crash may have lost its tail with the log's.
        let (txn_index, txn_index_intact) = TxnIndex::open(&segment_path(dir, base_offset, TXN_INDEX_EXT), base_offset, next, trusted)?;
        Ok(Segment {
            base_offset,
            next_offset: next,
            size: pos,
            state,
            roll_base_ms,
            log: Arc::new(log),
            log_path,
            offset_index,
            time_index,
            txn_index,
            txn_index_intact,
        })
    }

    /// The segment's `.log` file handle (compaction reads it without the log's lock).
    pub fn file(&self) -> &Arc<File> {
        &self.log
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// One past the last offset in the segment (== base_offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The `.log` file's modification time in ms since the epoch (Kafka's `lastModified`, which
    /// ListOffsets v0 answers from).
    pub fn modified_ms(&self) -> Result<i64, StorageError> {
        let modified = self.log.metadata().and_then(|m| m.modified()).at(&self.log_path)?;
        Ok(modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Largest batch maxTimestamp in the segment, -1 when there is none.
    pub fn max_timestamp(&self) -> i64 {
        self.state.max_timestamp
    }

    /// The first batch that reached the segment's max timestamp.
    pub fn max_timestamp_offset(&self) -> Option<i64> {
        (self.state.max_timestamp >= 0).then(|| self.base_offset + i64::from(self.state.max_timestamp_rel))
    }

    pub fn roll_base_ms(&self) -> Option<i64> {
        self.roll_base_ms
    }

    /// Whether appending `bytes` more bytes ending at `last_offset` would break the limits of the
    /// index formats.
    pub fn can_hold(&self, bytes: u64, last_offset: i64) -> bool {
        self.size + bytes <= MAX_SEGMENT_BYTES && last_offset - self.base_offset <= i64::from(u32::MAX)
    }

    /// Header of the batch at `pos`, None at the end of the segment.
    pub fn read_header(&self, pos: u64) -> Result<Option<BatchHeader>, StorageError> {
        if pos >= self.size {
            return Ok(None);
        }
        let h = read_header_at(&self.log, pos, self.size).map_err(|e| StorageError::corrupt_log(&self.log_path, e.to_string()))?;
        if pos + h.len as u64 > self.size {
            return Err(StorageError::corrupt_log(&self.log_path, format!("batch at {pos} runs past the segment end")));
        }
        Ok(Some(h))
    }

    /// Header (with file position) of the first batch whose last offset is >= `offset`.
    pub fn find_batch(&self, offset: i64) -> Result<Option<BatchHeader>, StorageError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        self.scan_from(u64::from(self.offset_index.lookup(rel)), offset)
    }

    /// Header of the first batch holding a timestamp >= `timestamp` could be at or after this.
    pub fn find_batch_for_timestamp(&self, timestamp: i64) -> Result<Option<BatchHeader>, StorageError> {
        let rel = self.time_index.start_for(timestamp);
        self.find_batch(self.base_offset + i64::from(rel))
    }

    fn scan_from(&self, mut pos: u64, offset: i64) -> Result<Option<BatchHeader>, StorageError> {
        while let Some(h) = self.read_header(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some(h));
            }
            pos += h.len as u64;
        }
        Ok(None)
    }

    /// End of the last whole batch that ends at or before byte `limit`, starting from the batch
    /// boundary `from`: the nearest offset-index entry below `limit` bounds the header walk to about
    /// one index interval, so finding a fetch's end costs a few small reads, not a read of the data.
    pub fn boundary_at_or_before(&self, from: u64, limit: u64) -> Result<u64, StorageError> {
        let limit = limit.min(self.size);
        let indexed = u64::from(self.offset_index.floor_position(limit.min(MAX_SEGMENT_BYTES) as u32));
        // Index entries are batch starts, so both candidates are batch boundaries.
        let mut pos = indexed.max(from);
        while let Some(h) = self.read_header(pos)? {
            let end = pos + h.len as u64;
            if end > limit {
                break;
            }
            pos = end;
        }
        Ok(pos)
    }

    /// A range of this segment's file, for the broker to send without copying it through memory.
    pub fn slice(&self, position: u64, len: u64) -> crate::FileSlice {
        debug_assert!(position + len <= self.size, "slices never reach past the valid length");
        crate::FileSlice { file: self.log.clone(), path: self.log_path.clone(), position, len: len as usize }
    }

    /// Appends `len` bytes at `pos` to `out`.
    pub fn read_into(&self, pos: u64, len: usize, out: &mut Vec<u8>) -> Result<(), StorageError> {
        debug_assert!(pos + len as u64 <= self.size);
        let start = out.len();
        out.resize(start + len, 0);
        self.log.read_exact_at(&mut out[start..], pos).at(&self.log_path)
    }

    /// Writes already validated and offset-assigned batches, given as the pieces they are made of
    /// (a produce's patched headers between the request's own bytes), with one positional write,
    /// and the aborted transactions their ABORT markers close. On failure nothing changes: the
    /// file and indexes are cut back so no partial batch can be served and no entry points at a
    /// marker that is not there.
    pub fn append(
        &mut self,
        pieces: &mut [IoSlice<'_>],
        headers: &[BatchHeader],
        interval: u32,
        now_ms: i64,
        aborted: &[AbortedTxn],
    ) -> Result<(), StorageError> {
        let len = headers.last().map_or(0, |h| h.end_position());
        debug_assert!(headers.first().is_some_and(|h| h.base_offset == self.next_offset && h.position == 0));
        debug_assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), len);
        debug_assert!(self.can_hold(len as u64, headers.last().map_or(0, |h| h.last_offset())));
        let mut state = self.state;
        let (mut offsets, mut times) = (Vec::new(), Vec::new());
        for h in headers {
            state.observe(self.base_offset, h, self.size + h.position as u64, interval, &mut offsets, &mut times);
        }
        let (offsets_len, times_len) = (self.offset_index.entries().len(), self.time_index.entries().len());
        let first_new_marker = aborted.first().map_or(i64::MAX, |a| a.last_offset);
        let written = self
            .log
            .write_all_vectored_at(pieces, self.size)
            .at(&self.log_path)
            .and_then(|()| self.offset_index.append(&offsets))
            .and_then(|()| self.time_index.append(&times))
            .and_then(|()| if aborted.is_empty() { Ok(()) } else { self.txn_index.append(aborted) });
        if let Err(e) = written {
            tracing::error!(segment = %self.log_path.display(), error = %e, "append failed; cutting the segment back");
            let _ = self.log.set_len(self.size);
            let _ = self.offset_index.truncate(offsets_len);
            let _ = self.time_index.truncate(times_len);
            let _ = self.txn_index.truncate_from(first_new_marker);
            return Err(e);
        }
        self.size += len as u64;
        self.next_offset = headers.last().map_or(self.next_offset, |h| h.last_offset() + 1);
        self.state = state;
        self.roll_base_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Removes the batch holding `offset` and everything after it.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let Some(h) = self.find_batch(offset)? else { return Ok(()) };
        let new_size = h.position as u64;
        self.txn_index.truncate_from(h.base_offset)?;
        self.log.set_len(new_size).at(&self.log_path)?;
        let keep_offsets = self.offset_index.entries().partition_point(|e| u64::from(e.position) < new_size);
        self.offset_index.truncate(keep_offsets)?;
        let new_rel = h.base_offset - self.base_offset;
        let keep_times = self.time_index.entries().partition_point(|e| i64::from(e.rel_offset) < new_rel);
        self.time_index.truncate(keep_times)?;
        self.size = new_size;
        // The end of the last batch kept (compaction may leave a gap before the cut batch).
        self.next_offset = self.base_offset;
        let last_indexed = self.offset_index.entries().last().map_or(0, |e| u64::from(e.position));
        let last_time = self.time_index.entries().last().copied();
        let mut state = IndexState {
            bytes_since_index: new_size - last_indexed,
            max_timestamp: last_time.map_or(-1, |e| e.timestamp),
            max_timestamp_rel: last_time.map_or(0, |e| e.rel_offset),
            indexed_timestamp: last_time.map_or(-1, |e| e.timestamp),
        };
        // Batches after the last offset entry are not covered by the time index: walk them.
        let mut pos = last_indexed;
        while let Some(b) = self.read_header(pos)? {
            state.observe_timestamp(b.max_timestamp, (b.base_offset - self.base_offset) as u32);
            pos += b.len as u64;
            self.next_offset = b.last_offset() + 1;
        }
        self.state = state;
        if new_size == 0 {
            self.roll_base_ms = None;
        }
        Ok(())
    }

    /// fdatasync of the log and all three indexes.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.log.sync_data().at(&self.log_path)?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// fdatasync of the aborted-transaction index alone (before a producer-state snapshot: every entry
    /// below the snapshot's offset must be durable, since the replay on open regenerates only those above).
    /// Closes the index files of a segment that is no longer written (sealed by a roll, or an
    /// older segment after recovery): their entries stay in memory, and the next write, if any,
    /// reopens them. Keeps a node's open files at one per segment plus the active segment's
    /// indexes.
    pub fn release_index_files(&mut self) {
        self.offset_index.release();
        self.time_index.release();
        self.txn_index.release();
    }

    #[cfg(test)]
    pub fn open_index_files(&self) -> usize {
        usize::from(self.offset_index.is_open()) + usize::from(self.time_index.is_open()) + usize::from(self.txn_index.is_open())
    }

    pub fn sync_txn_index(&self) -> Result<(), StorageError> {
        self.txn_index.sync()
    }

    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }

    /// Appends entries for ABORT markers already in this segment (producer-state replay).
    pub fn append_aborted(&mut self, txns: &[AbortedTxn]) -> Result<(), StorageError> {
        debug_assert!(txns.iter().all(|t| (self.base_offset..self.next_offset).contains(&t.last_offset)));
        self.txn_index.append(txns)
    }

    /// Drops the aborted-transaction entries whose marker is at or above `offset` (they are about to be
    /// regenerated); returns whether any was dropped.
    pub fn truncate_aborted_from(&mut self, offset: i64) -> Result<bool, StorageError> {
        self.txn_index.truncate_from(offset)
    }

    pub fn txn_index_intact(&self) -> bool {
        self.txn_index_intact
    }

    pub fn set_txn_index_intact(&mut self) {
        self.txn_index_intact = true;
    }

    pub fn delete(self) -> Result<(), StorageError> {
        // The log goes first: an index without its log is an orphan that open() removes, while a
        // log without its index is merely rebuilt.
        for path in [self.log_path.as_path(), self.offset_index.path(), self.time_index.path(), self.txn_index.path()] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(path),
            }
        }
        Ok(())
    }
}

/// Reads and parses the header at `pos`, refusing to read past `limit`.
fn read_header_at(log: &File, pos: u64, limit: u64) -> Result<BatchHeader, StorageError> {
    if limit.saturating_sub(pos) < HEADER_LEN as u64 {
        return Err(StorageError::corrupt("batch header is truncated"));
    }
    let mut h = [0u8; HEADER_LEN];
    log.read_exact_at(&mut h, pos).map_err(|e| StorageError::corrupt(format!("reading header: {e}")))?;
    BatchHeader::from_array(&h, pos as usize)
}

fn first_batch_timestamp(log: &File, size: u64) -> Option<i64> {
    read_header_at(log, 0, size).ok().map(|h| h.max_timestamp).filter(|ts| *ts >= 0)
}

/// Writes a compacted copy of a segment to `NNN.log.cleaned` (+ `.index.cleaned`,
/// `.timeindex.cleaned`, `.txnindex.cleaned`), building its offset and time indexes exactly as appends
/// would; the aborted-transaction entries are the cleaner's ([`CleanedWriter::push_aborted`]). Batches
/// must be whole, valid, and in strictly increasing offset order.
pub(crate) struct CleanedWriter {
    base_offset: i64,
    interval: u32,
    log: std::io::BufWriter<File>,
    log_path: PathBuf,
    size: u64,
    next_offset: i64,
    state: IndexState,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    aborted: Vec<AbortedTxn>,
    dir: PathBuf,
}

impl CleanedWriter {
    pub fn create(dir: &Path, base_offset: i64, interval: u32) -> Result<CleanedWriter, StorageError> {
        let log_path = suffixed_path(dir, base_offset, LOG_EXT, CLEANED_SUFFIX);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&log_path).at(&log_path)?;
        Ok(CleanedWriter {
            base_offset,
            interval,
            log: std::io::BufWriter::with_capacity(1 << 16, file),
            log_path,
            size: 0,
            next_offset: base_offset,
            state: IndexState::EMPTY,
            offsets: Vec::new(),
            times: Vec::new(),
            aborted: Vec::new(),
            dir: dir.to_path_buf(),
        })
    }

    pub fn append(&mut self, batch: &[u8]) -> Result<(), StorageError> {
        use std::io::Write;
        let h = BatchHeader::parse(batch, 0)?;
        if h.len != batch.len() || h.base_offset < self.next_offset || self.size + batch.len() as u64 > MAX_SEGMENT_BYTES {
            return Err(StorageError::corrupt_log(&self.log_path, "compacted batch does not fit the segment"));
        }
        self.state.observe(self.base_offset, &h, self.size, self.interval, &mut self.offsets, &mut self.times);
        self.log.write_all(batch).at(&self.log_path)?;
        self.size += batch.len() as u64;
        self.next_offset = h.last_offset() + 1;
        Ok(())
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Records an aborted transaction whose ABORT marker this copy keeps (appended just before).
    pub fn push_aborted(&mut self, txn: AbortedTxn) {
        self.aborted.push(txn);
    }

    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }

    /// Writes the indexes and fsyncs all four files. Returns the log size.
    pub fn finish(self) -> Result<u64, StorageError> {
        let file = self.log.into_inner().map_err(|e| e.into_error()).at(&self.log_path)?;
        file.sync_all().at(&self.log_path)?;
        let mut offsets = IndexFile::create(&suffixed_path(&self.dir, self.base_offset, INDEX_EXT, CLEANED_SUFFIX))?;
        offsets.append(&self.offsets)?;
        offsets.sync()?;
        let mut times = IndexFile::create(&suffixed_path(&self.dir, self.base_offset, TIME_INDEX_EXT, CLEANED_SUFFIX))?;
        times.append(&self.times)?;
        times.sync()?;
        write_index(&suffixed_path(&self.dir, self.base_offset, TXN_INDEX_EXT, CLEANED_SUFFIX), &self.aborted)?;
        Ok(self.size)
    }
}

/// Removes the `.cleaned` files of segment `base_offset`, if any.
pub(crate) fn remove_cleaned_files(dir: &Path, base_offset: i64) {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
        let _ = std::fs::remove_file(suffixed_path(dir, base_offset, ext, CLEANED_SUFFIX));
    }
}
