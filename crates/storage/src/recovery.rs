//! Recovery on open: which segment files make up the log after a crash, and bringing the
//! metadata that travels with them (log start offset, leader-epoch cache, producer state) back in
//! line with what survived. The crate docs' "Recovery" section gives the guarantees;
//! [`PartitionLog::open`] runs the steps in order. A compaction swap interrupted by a crash is
//! settled before any of this, by
//! [`complete_interrupted_compaction`](crate::compaction_install::complete_interrupted_compaction).
//!
//! Cutting a torn tail off the last segment happens in [`Segment::open`] (untrusted mode), which also
//! validates each segment's aborted-transaction index; [`PartitionLog::load_producer_state`] regenerates
//! the entries the replay covers.

use std::collections::BTreeSet;
use std::path::Path;

use crate::checkpoint::{read_optional, PRODUCER_STATE_FILE, TMP_SUFFIX};
use crate::control::parse_control_record;
use crate::error::{IoContext, StorageError};
use crate::log::PartitionLog;
use crate::producer_state::ProducerStateManager;
use crate::segment::{segment_path, Segment, INDEX_EXT, INDEX_EXTS, LOG_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT};

/// Opens the segments of `dir`, oldest first. Only the last one is scanned for torn writes
/// (unless the previous shutdown was clean); a segment that does not continue its
/// predecessor's offsets is deleted with every later one. Empty when `dir` holds no segment.
pub(crate) fn open_segments(dir: &Path, clean: bool, index_interval_bytes: u32) -> Result<Vec<Segment>, StorageError> {
    let bases = scan_dir(dir)?;
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        // Older segments were fsynced (log and indexes) before their successor was created, so
        // only the last one can hold torn writes.
        let trust = clean || i + 1 < bases.len();
        let segment = Segment::open(dir, base, trust, index_interval_bytes)?;
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
    Ok(segments)
}

impl PartitionLog {
    /// The metadata checks of `open`, once the recovered segments are in place: a log start
    /// offset past the recovered log end restarts the log empty there; the start offset is
    /// re-checkpointed when it moved (`checkpointed_start`: what the file said), segments below
    /// it are deleted, the leader-epoch cache is trimmed to the log and the producer state is
    /// rebuilt.
    pub(crate) fn reconcile_recovered(&mut self, checkpointed_start: Option<i64>) -> Result<(), StorageError> {
        if self.log_start_offset > self.log_end_offset() {
            tracing::warn!(
                dir = %self.dir.display(),
                log_start_offset = self.log_start_offset,
                log_end_offset = self.log_end_offset(),
                "log ends before its start offset after recovery; starting empty at the start offset"
            );
            self.reset_to(self.log_start_offset)?;
        }
        if checkpointed_start != Some(self.log_start_offset) {
            self.persist_log_start_offset()?;
        }
        self.delete_segments_below_start()?;
        let leo = self.log_end_offset();
        let trimmed_end = self.epochs.truncate_from_end(leo);
        let trimmed_start = self.epochs.truncate_from_start(self.log_start_offset);
        if trimmed_end || trimmed_start {
            self.epochs.persist()?;
        }
        self.load_producer_state()
    }

    /// Rebuilds the producer state from the snapshot plus the batches after it (or from the whole log
    /// when the snapshot is missing, damaged, of an older format or ahead of the log), regenerating the
    /// aborted-transaction index entries of every marker it replays, then snapshots it.
    ///
    /// Index entries below the snapshot's offset are trusted (they were fsynced before it was written);
    /// those at or above it are dropped and regenerated, which repairs a torn index tail after a crash
    /// and undoes truncated markers. A segment whose index was missing or damaged needs the replay to
    /// start at or before it, so a snapshot past its base is not used.
    pub(crate) fn load_producer_state(&mut self) -> Result<(), StorageError> {
        let path = self.dir.join(PRODUCER_STATE_FILE);
        let leo = self.log_end_offset();
        let first_base = self.segments[0].base_offset();
        let snapshot = match read_optional(&path)? {
            Some(bytes) => match ProducerStateManager::decode_snapshot(&path, &bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring damaged or outdated producer-state snapshot");
                    None
                }
            },
            None => None,
        };
        let damaged = self.segments.iter().find(|s| !s.txn_index_intact()).map(Segment::base_offset);
        if let Some(base) = damaged {
            tracing::warn!(dir = %self.dir.display(), base_offset = base, "aborted-transaction index missing or damaged; regenerating it by replay");
        }
        let (from, state, up_to_date) = match snapshot {
            Some((offset, state)) if offset <= leo && damaged.is_none_or(|d| offset <= d) => (offset, state, offset == leo),
            _ => (first_base, ProducerStateManager::new(), false),
        };
        self.producers = state;
        let from = from.max(first_base);
        let start = self.segment_index_for(from);
        let mut touched = false;
        for segment in &mut self.segments[start..] {
            touched |= segment.truncate_aborted_from(from)?;
        }
        let (mut replayed, mut regenerated) = (0usize, 0usize);
        let mut buf = Vec::new();
        for i in start..self.segments.len() {
            let Some(first) = self.segments[i].find_batch(from)? else { continue };
            let mut pos = first.position as u64;
            while let Some(h) = self.segments[i].read_header(pos)? {
                if h.base_offset >= from {
                    let control = if h.is_control() && h.records_count > 0 {
                        buf.clear();
                        self.segments[i].read_into(pos, h.len, &mut buf)?;
                        parse_control_record(&h, &buf).map_err(|e| StorageError::corrupt_log(self.segments[i].log_path(), e.to_string()))?
                    } else {
                        None
                    };
                    if let Some(aborted) = self.producers.record(&h, control.as_ref()) {
                        self.segments[i].append_aborted(&[aborted])?;
                        regenerated += 1;
                    }
                    replayed += 1;
                }
                pos += h.len as u64;
            }
        }
        if touched || regenerated > 0 {
            for segment in &self.segments[start..] {
                segment.sync_txn_index()?;
            }
        }
        let sealed = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter_mut().enumerate() {
            segment.set_txn_index_intact();
            // Recovery may have rewritten older segments' indexes; only the active one stays open.
            if i < sealed {
                segment.release_index_files();
            }
        }
        if replayed > 0 {
            tracing::info!(dir = %self.dir.display(), from, batches = replayed, aborted_transactions = regenerated, "replayed producer state");
        }
        if !up_to_date {
            self.write_producer_snapshot()?;
        }
        Ok(())
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
            INDEX_EXT | TIME_INDEX_EXT | TXN_INDEX_EXT => indexes.push((base, entry.path())),
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

fn remove_segment_files(dir: &Path, base: i64) -> Result<(), StorageError> {
    for ext in std::iter::once(LOG_EXT).chain(INDEX_EXTS) {
        let path = segment_path(dir, base, ext);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&path),
        }
    }
    Ok(())
}
