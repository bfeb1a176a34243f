//! Reads of a partition replica: consumers' and followers' fetches, offset lookups. The rules a
//! read must follow live here once: leader-epoch fencing (KIP-320), the divergence check of a
//! follower's fetch (KIP-595's `diverging_epoch`), consumers below the high watermark only.

use kafka_protocol::error::ResponseError;
use strom_storage::{PartitionLog, ReadSlices, StorageError};

use super::{Partition, PartitionError};
use crate::sync::read;

/// Where a fetcher stands: its next offset, the leader epoch it believes current (-1: none
/// given) and, for a follower, the epoch of the last batch it has (-1: none).
#[derive(Clone, Copy, Debug)]
pub struct FetchPosition {
    pub offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

#[derive(Debug)]
pub enum ReadOutcome {
    /// Whole batches, as file ranges (sent later, outside any lock).
    Records(ReadSlices),
    /// The follower's last fetched epoch ends at `end_offset` here, before its fetch offset (or
    /// this log has an older epoch there): it has a suffix this leader never wrote, and truncates
    /// before it copies more.
    Diverging { epoch: i32, end_offset: i64 },
    /// The read failed (an offset out of range, a storage error); the positions are still valid.
    Failed(PartitionError),
}

#[derive(Debug)]
pub struct PartitionRead {
    pub outcome: ReadOutcome,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

impl Partition {
    /// KIP-320: a reader that names another leader epoch is fenced (it is behind) or ahead of
    /// this broker's metadata (it retries).
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), ResponseError> {
        let mine = self.leader_epoch();
        match current_leader_epoch {
            e if e < 0 || e == mine => Ok(()),
            e if e < mine => Err(ResponseError::FencedLeaderEpoch),
            _ => Err(ResponseError::UnknownLeaderEpoch),
        }
    }

    /// Where a follower's last fetched epoch ends on this log, if it ends before the follower's
    /// fetch offset or is another epoch: the follower's log diverges from here.
    fn diverging(log: &PartitionLog, pos: &FetchPosition) -> Option<(i32, i64)> {
        if pos.last_fetched_epoch < 0 {
            return None;
        }
        log.end_offset_for_epoch(pos.last_fetched_epoch).filter(|&(e, end)| e != pos.last_fetched_epoch || end < pos.offset)
    }

    /// A follower's fetch offset is its log end: the leader's record of what that replica has,
    /// which moves the high watermark. An offset past this log's end (a divergent follower) or
    /// from a diverging epoch is not a position on this log and is not recorded. Returns whether
    /// the high watermark moved.
    pub fn record_follower_position(&self, replica: i32, pos: &FetchPosition, now_ms: i64) -> bool {
        if !self.is_leader() || self.check_epoch(pos.current_leader_epoch).is_err() {
            return false;
        }
        let consistent = self
            .with_log(|l| {
                let known_epoch = pos.last_fetched_epoch < 0 || l.end_offset_for_epoch(pos.last_fetched_epoch).is_some();
                Ok(pos.offset <= l.log_end_offset() && known_epoch && Self::diverging(l, pos).is_none())
            })
            .unwrap_or(false);
        consistent && self.follower_fetched(replica, pos.offset, now_ms)
    }

    /// A fetch of up to `max_bytes` from `pos`: a consumer reads below the high watermark, a
    /// follower (`follower`) up to the log end, after the divergence check. Storage returns at
    /// least one whole batch (min-one-message), so a batch larger than `max_bytes` can still be read.
    pub fn fetch(&self, pos: &FetchPosition, max_bytes: usize, follower: bool) -> Result<PartitionRead, ResponseError> {
        self.check_epoch(pos.current_leader_epoch)?;
        let guard = read(&self.log);
        let log = guard.as_ref().ok_or(ResponseError::NotLeaderOrFollower)?;
        let high_watermark = self.high_watermark();
        let log_start_offset = log.log_start_offset();
        if follower {
            if let Some((epoch, end_offset)) = Self::diverging(log, pos) {
                return Ok(PartitionRead { outcome: ReadOutcome::Diverging { epoch, end_offset }, high_watermark, log_start_offset });
            }
        }
        let up_to = if follower { log.log_end_offset() } else { high_watermark };
        let outcome = match log.read_slices(pos.offset, max_bytes, up_to) {
            Ok(r) => ReadOutcome::Records(r),
            Err(e) => ReadOutcome::Failed(e.into()),
        };
        Ok(PartitionRead { outcome, high_watermark, log_start_offset })
    }

    /// Whole batches from `offset` up to the log end, bypassing the leader rules: what a new
    /// group coordinator replays (a leader's whole log becomes committed), and tests.
    pub fn read_to_end(&self, offset: i64, max_bytes: usize) -> Result<ReadSlices, PartitionError> {
        self.with_log(|log| log.read_slices(offset, max_bytes, log.log_end_offset()))
    }

    /// As a consumer reads: below the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadSlices, PartitionError> {
        self.with_log(|log| log.read_slices(offset, max_bytes, self.high_watermark()))
    }

    pub fn log_start_offset(&self) -> Result<i64, PartitionError> {
        self.with_log(|l| Ok(l.log_start_offset()))
    }

    pub fn log_end_offset(&self) -> Result<i64, PartitionError> {
        self.with_log(|l| Ok(l.log_end_offset()))
    }

    /// The latest leader epoch in this replica's log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.with_log(|l| Ok(l.latest_epoch())).ok().flatten()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and where the next one starts
    /// (the log end for the latest), or -1/-1 when this log knows no such epoch.
    pub fn epoch_end(&self, current_leader_epoch: i32, epoch: i32) -> Result<(i32, i64), ResponseError> {
        self.check_epoch(current_leader_epoch)?;
        if epoch < 0 {
            return Ok((-1, -1));
        }
        self.with_log(|l| Ok(l.end_offset_for_epoch(epoch).unwrap_or((-1, -1)))).map_err(|_| ResponseError::NotLeaderOrFollower)
    }

    /// ListOffsets: (timestamp, offset) for one of the special timestamps above or a time,
    /// below the high watermark; `None` when no record qualifies.
    pub fn list_offset(&self, timestamp: i64) -> Result<Option<(i64, i64)>, PartitionError> {
        let hw = self.high_watermark();
        self.with_log(|log| {
            Ok(match timestamp {
                LATEST => Some((-1, hw)),
                EARLIEST | EARLIEST_LOCAL => Some((-1, log.log_start_offset())),
                // No tiered storage: nothing is tiered.
                LATEST_TIERED => Some((-1, -1)),
                MAX_TIMESTAMP => log.max_timestamp()?.filter(|(_, off)| *off < hw),
                ts => log.offset_for_timestamp(ts)?.map(|(off, ts)| (ts, off)).filter(|(_, off)| *off < hw),
            })
        })
    }

    /// DeleteRecords: moves the log start to `offset` (-1: the high watermark), never past the
    /// high watermark, and only while this replica leads. Returns the new log start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        self.with_log_mut(|log| {
            if target < 0 || target > hw {
                return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: log.log_start_offset(), log_end_offset: log.log_end_offset() });
            }
            if target > log.log_start_offset() {
                log.advance_log_start_offset(target)?;
            }
            Ok(log.log_start_offset())
        })
    }

    /// Time- and size-based retention; returns how many segments were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, PartitionError> {
        self.with_log_mut(|log| log.enforce_retention(now_ms))
    }
}
