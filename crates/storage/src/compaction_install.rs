//! The log's side of compaction; the cleaner itself (step 2, and the rules it follows) is
//! [`crate::compaction`].
//!
//! - Step 1, [`PartitionLog::compaction_plan`]: which segments to clean, from the segment list.
//! - [`PartitionLog::compaction_due`]: Kafka's dirty-ratio test, and tombstones coming due.
//! - Step 3, [`PartitionLog::install_compaction`]: checks that the result still fits the log,
//!   then swaps each cleaned segment in with the crash-safe rename sequence ([`swap_in`]).
//! - [`complete_interrupted_compaction`]: the other half of that sequence, run first thing by
//!   `PartitionLog::open`: a swap that passed its commit point is finished, anything else rolled
//!   back. Kept next to [`swap_in`] because the two must agree on every rename.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::fsync_dir;
use crate::codec::DEFAULT_MAX_DECOMPRESSED_BYTES;
use crate::compaction::{CompactionPlan, CompactionResult, CompactionStats, SegmentRef};
use crate::error::{IoContext, StorageError};
use crate::log::PartitionLog;
use crate::segment::{segment_path, suffixed_path, Segment, CLEANED_SUFFIX, INDEX_EXTS, LOG_EXT, SWAP_SUFFIX};

impl PartitionLog {
    /// Step 1 of a compaction (see [`crate::compaction`]): cheap, needs only shared access. Plans
    /// to clean every non-empty non-active segment that lies entirely below the bound
    /// min(`high_watermark`, first unstable offset); the records below that bound in later segments
    /// (the active one included) only feed the key map. Pass the partition's high watermark:
    /// records above it may still be truncated, so they must not supersede older ones (`i64::MAX`
    /// when nothing can be truncated, e.g. a single replica). The first unstable offset keeps an
    /// undecided transaction's data out of reach, as Kafka's cleaner stops at the last stable
    /// offset. `delete_retention_ms` < 0 keeps tombstones and transaction markers forever.
    pub fn compaction_plan(&self, now_ms: i64, delete_retention_ms: i64, high_watermark: i64) -> Result<CompactionPlan, StorageError> {
        let to_ref = |s: &Segment| SegmentRef {
            base_offset: s.base_offset(),
            next_offset: s.next_offset(),
            size: s.size(),
            file: s.file().clone(),
            path: s.log_path().to_path_buf(),
            aborted: s.txn_index().entries().collect(),
        };
        let n = self.segments.len();
        let bound = self.cleanable_bound(high_watermark);
        let cleanable = self.segments[..n - 1].iter().take_while(|s| s.next_offset() <= bound).count();
        let aborted = self.aborted_transactions(self.segments[0].base_offset(), bound)?;
        Ok(CompactionPlan {
            dir: self.dir.clone(),
            generation: self.generation,
            now_ms,
            delete_retention_ms,
            index_interval_bytes: self.config.index_interval_bytes,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            upper_bound: bound,
            segments: self.segments[..cleanable].iter().filter(|s| !s.is_empty()).map(to_ref).collect(),
            others: self.segments[cleanable..].iter().filter(|s| !s.is_empty()).map(to_ref).collect(),
            aborted,
        })
    }

    /// Where compaction must stop: the high watermark, or the first unstable offset when lower.
    fn cleanable_bound(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset().map_or(high_watermark, |fuo| fuo.min(high_watermark))
    }

    /// Whether a compaction pass is worth running now, as Kafka's cleaner decides: some segment
    /// below min(`high_watermark`, first unstable offset) other than the active one was never
    /// compacted and the dirty bytes are at least `min_cleanable_dirty_ratio` of the cleanable
    /// ones, or a tombstone or transaction marker that the last pass had to keep is due for removal.
    pub fn compaction_due(&self, now_ms: i64, high_watermark: i64) -> bool {
        let n = self.segments.len();
        let bound = self.cleanable_bound(high_watermark);
        let cleanable = self.segments[..n - 1].iter().take_while(|s| s.next_offset() <= bound);
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
    let indexes = INDEX_EXTS;
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
pub(crate) fn complete_interrupted_compaction(dir: &Path) -> Result<(), StorageError> {
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
        for ext in INDEX_EXTS {
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
