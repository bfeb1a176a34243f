//! The leader-epoch cache (Kafka's `LeaderEpochFileCache`): the (epoch, start offset) of every
//! leadership the log has data or a start for, checkpointed to `leader-epoch-checkpoint`. It
//! answers OffsetForLeaderEpoch, which a follower uses after a leader change to find where its
//! log diverges from the new leader's and truncate there.
//!
//! [`LeaderEpochCache`] holds the entries and writes the checkpoint; `PartitionLog` decides when
//! (see its `append`, `append_replicated`, `truncate_to` and retention) and exposes the epoch
//! methods below.

use std::path::{Path, PathBuf};

use crate::checkpoint::{decode_entries, encode_entries, read_optional, write_atomic, LEADER_EPOCH_FILE};
use crate::error::StorageError;
use crate::log::PartitionLog;

/// The entries and where their checkpoint lives. Every mutation changes memory only;
/// [`LeaderEpochCache::persist`] writes the checkpoint.
#[derive(Clone, Debug)]
pub(crate) struct LeaderEpochCache {
    dir: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint in `dir`. A missing checkpoint is an empty cache, and so is an
    /// unreadable one (with a warning).
    pub(crate) fn load(dir: &Path) -> Result<LeaderEpochCache, StorageError> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let entries = match read_optional(&path)? {
            Some(bytes) => decode(&path, &bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable leader-epoch checkpoint");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Ok(LeaderEpochCache { dir: dir.to_path_buf(), entries })
    }

    /// Replaces the checkpoint with the entries in memory.
    pub(crate) fn persist(&self) -> Result<(), StorageError> {
        let entries: Vec<(i64, i64)> = self.entries.iter().map(|&(e, o)| (i64::from(e), o)).collect();
        write_atomic(&self.dir, LEADER_EPOCH_FILE, &encode_entries(&entries))
    }

    pub(crate) fn latest(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch <= `epoch` and the offset where the next
    /// epoch starts (`log_end_offset` for the latest epoch).
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.latest()?;
        if epoch == latest {
            return Some((latest, log_end_offset));
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= epoch);
        let &(_, next_start) = self.entries.get(higher)?;
        match higher.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(&(floor, _)) => Some((floor, next_start)),
            None => Some((epoch, next_start)),
        }
    }

    /// Appends (epoch, start), first dropping entries that start at or after `start` (an epoch
    /// that began but got no batch before the next one), so that starts stay strictly increasing.
    pub(crate) fn push(&mut self, epoch: i32, start: i64) {
        while self.entries.last().is_some_and(|&(_, s)| s >= start) {
            self.entries.pop();
        }
        debug_assert!(self.entries.last().is_none_or(|&(e, _)| e < epoch), "epochs increase");
        self.entries.push((epoch, start));
    }

    /// Kafka's truncateFromEnd: drops the entries that start at or after `end` (the log end
    /// offset after a truncation). Returns whether any was dropped.
    pub(crate) fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end);
        self.entries.len() != before
    }

    /// Kafka's truncateFromStart: entries that begin below the new start collapse into one that
    /// begins at it. Returns whether the entries changed.
    pub(crate) fn truncate_from_start(&mut self, start: i64) -> bool {
        let below = self.entries.partition_point(|&(_, s)| s <= start);
        if below == 0 {
            return false;
        }
        let (epoch, old_start) = self.entries[below - 1];
        if below == 1 && old_start == start {
            // Already begins exactly there.
            return false;
        }
        self.entries.drain(..below);
        self.entries.insert(0, (epoch, start));
        true
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<(i32, i64)>, StorageError> {
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

impl PartitionLog {
    /// Kafka's OffsetForLeaderEpoch: the largest epoch <= `epoch` and the offset where the next
    /// epoch starts (the log end offset for the latest epoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// A new leadership starts at the log end (Kafka's `maybeAssignEpochStartOffset`): recorded
    /// before any batch carries the epoch, so that OffsetForLeaderEpoch on the new leader answers
    /// a follower of the previous epoch with where that epoch ended here.
    pub fn assign_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        if epoch < 0 || self.latest_epoch().is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        let leo = self.log_end_offset();
        self.epochs.push(epoch, leo);
        self.epochs.persist()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache { dir: PathBuf::new(), entries: entries.to_vec() }
    }

    /// `truncate_from_start` reports a change exactly when the entries differ afterwards, for
    /// every start around every entry of a few caches (equal starts included: an older
    /// checkpoint may hold them).
    #[test]
    fn truncate_from_start_reports_exactly_the_changes() {
        let caches: &[&[(i32, i64)]] =
            &[&[], &[(0, 0)], &[(0, 0), (2, 5)], &[(1, 3), (2, 5), (4, 9)], &[(1, 3), (2, 3), (3, 7)]];
        for entries in caches {
            for start in -1..12 {
                let mut c = cache(entries);
                let changed = c.truncate_from_start(start);
                assert_eq!(changed, c.entries != *entries, "{entries:?} from {start}");
            }
        }
        let mut c = cache(&[(1, 3), (2, 5), (4, 9)]);
        assert!(c.truncate_from_start(6));
        assert_eq!(c.entries, vec![(2, 6), (4, 9)]);
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_decreasing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(c.latest(), None);
        c.push(0, 0);
        c.push(3, 10);
        c.push(4, 10);
        c.persist().unwrap();
        let loaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(loaded.entries, vec![(0, 0), (4, 10)]);
        assert_eq!(loaded.end_offset_for(2, 20), Some((0, 10)));
        assert_eq!(loaded.end_offset_for(4, 20), Some((4, 20)));
        let path = dir.path().join(LEADER_EPOCH_FILE);
        assert!(decode(&path, b"0\n2\n3 10\n1 20\n").is_err());
        assert!(decode(&path, b"0\n1\n4294967296 0\n").is_err());
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries, vec![]);
    }
}
