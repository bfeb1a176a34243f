//! Strom's partition log: segments, indexes, recovery, retention and idempotent-producer state.
//! No networking; the broker calls [`PartitionLog`] under its own locks.
//!
//! # On-disk layout of a partition directory
//!
//! - `NNNNNNNNNNNNNNNNNNNN.log` — a segment: Kafka RecordBatch v2 batches, byte for byte as the
//!   broker accepted them except for the rewritten baseOffset / partitionLeaderEpoch (and, under
//!   LogAppendTime, timestamps and CRC). The name is the base offset, zero-padded to 20 digits.
//! - `NNNNNNNNNNNNNNNNNNNN.index` — sparse offset index: big-endian (u32 offset relative to the
//!   base, u32 byte position) of a batch start, one entry per `index_interval_bytes` of data.
//! - `NNNNNNNNNNNNNNNNNNNN.timeindex` — sparse time index, written with each offset-index entry
//!   (as Kafka does): (i64 largest timestamp so far, u32 relative offset of the batch that first
//!   reached it), strictly increasing. Batches after the last entry are walked on open, so the
//!   segment's exact maximum is always known in memory.
//! - `log-start-offset` — text checkpoint of the DeleteRecords / retention start offset.
//! - `leader-epoch-checkpoint` — Kafka-style text list of (epoch, start offset).
//! - `producer-state` — CRC-protected snapshot of the idempotent-producer state and the log
//!   offset it covers (everything below).
//! - `.clean-shutdown` — present only between a clean `close` and the next `open`.
//! - `NNN.{log,index,timeindex}.cleaned` / `.swap` — compaction output in flight; see
//!   [`compaction`] for the rename protocol and what `open` does with leftovers.
//!
//! Metadata files are replaced atomically (tmp file, fsync, rename, fsync directory).
//!
//! # Invariants
//!
//! - A segment file holds whole batches with strictly increasing offsets, none below its base
//!   offset; segments are contiguous with each other (a segment's next offset is the next one's
//!   base). Offsets within a segment are contiguous too unless it was compacted: compaction
//!   leaves gaps but always keeps the segment's last batch (possibly empty), so its next offset
//!   never changes. The valid length of a segment is tracked in memory; reads never return bytes
//!   past it, so a read returns whole batches only.
//! - A segment stops receiving appends only after its log and index files were fsynced, and only
//!   then is its successor created. Hence after a crash only the last segment can hold a torn
//!   write; older segments are trusted after a cheap consistency check of their indexes (a failed
//!   check rebuilds them by a full scan).
//! - Index files are caches: an entry is never trusted past the valid file length, and a stale or
//!   missing index is rebuilt from its segment.
//!
//! # Recovery
//!
//! First, `open` completes or rolls back an interrupted compaction swap. Without the
//! clean-shutdown marker, it then scans the last segment batch by batch, checking framing, magic,
//! CRC and that offsets increase, cuts the file at the first bad byte (logging how many
//! bytes were dropped) and rebuilds its indexes. A segment that does not continue its
//! predecessor's offsets is dropped with everything after it. The result is always a prefix of
//! whole batches of what was written; everything fsynced (by `flush`, a roll or `close`) is kept.
//! The producer state is reloaded from its snapshot and the batch headers after it (or the whole
//! log when the snapshot is missing, damaged or ahead of the recovered log). The leader-epoch cache
//! is trimmed to the recovered log.
//!
//! # Where things are
//!
//! - `log` — [`PartitionLog`]'s core: open, append, read, roll, retention, truncation, close; and
//!   the types its reads and appends return.
//! - `recovery` — what `open` does after a crash: which segments survive, and bringing the log
//!   start offset, leader-epoch cache and producer state in line with them.
//! - `leader_epochs` — the leader-epoch cache and its checkpoint; OffsetForLeaderEpoch.
//! - [`compaction`] — the cleaner: plan execution, the rules for what survives, the crash-safety
//!   protocol. `compaction_install` — the log's side: planning, when a pass is due, installing
//!   the cleaned segments, and finishing an interrupted install on open.
//! - `config` — [`LogConfig`] and [`CleanupPolicy`].
//! - `segment` — one segment: its log file and both indexes; torn-tail truncation on open.
//!   `index` — the offset and time index files.
//! - `batch` — RecordBatch v2 parsing, validation, CRC and the rewrites done on append.
//! - `producer_state` — idempotent-producer sequence checks and their snapshot.
//! - `checkpoint` — atomic replacement of the small metadata files and their text format.

mod batch;
mod checkpoint;
pub mod compaction;
mod compaction_install;
mod config;
mod error;
mod index;
mod leader_epochs;
mod log;
mod producer_state;
mod recovery;
mod segment;

#[cfg(test)]
mod testutil;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod compaction_tests;

pub use batch::{validate_batches, BatchHeader, HEADER_LEN};
pub use checkpoint::replace_file;
pub use compaction::{CompactionPlan, CompactionResult, CompactionStats};
pub use config::{CleanupPolicy, LogConfig};
pub use error::StorageError;
pub use log::{AppendInfo, FileSlice, PartitionLog, ReadResult, ReadSlices, SyncHandle};
pub use producer_state::{ProducerStateManager, SequenceCheck};

// The broker shares logs between threads behind a lock.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    // Compaction's heavy step runs on another thread, without the log's lock.
    assert_send_sync::<CompactionPlan>();
    assert_send_sync::<CompactionResult>();
};
