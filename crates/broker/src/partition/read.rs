//! Reads of a partition replica: consumers' and followers' fetches, offset lookups. The rules a
//! read must follow live here once: leader-epoch fencing (KIP-320), the divergence check of a
//! follower's fetch (KIP-595's `diverging_epoch`), consumers below the high watermark only, and
//! `read_committed` consumers below the last stable offset (KIP-98).

use kafka_protocol::error::ResponseError;
use strom_storage::{AbortedTxn, PartitionLog, ReadSlices, StorageError};

use super::{Partition, PartitionError};
use strom_metadata::read_replica::ReplicaView;

use crate::sync::{lock, read};

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
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `read_committed` only: the aborted transactions overlapping the read, for the client to
    /// skip their batches (Kafka's FetchResponse `aborted_transactions`).
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Who reads, and so how far: a follower to the log end, a consumer to the high watermark, a
/// `read_committed` consumer to the last stable offset (Kafka's `FetchIsolation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    Follower,
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// A consumer's isolation from the wire (Fetch and ListOffsets `isolation_level`: 1 is
    /// read_committed, anything else read_uncommitted, as Kafka reads it).
    pub fn of_consumer(isolation_level: i8) -> Isolation {
        if isolation_level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
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

    /// The log start a follower reported with its fetch: a consumer is not sent to a follower
    /// whose log no longer has its offset (KIP-392).
    pub fn record_follower_log_start(&self, replica: i32, log_start: i64) {
        if let Some(s) = lock(&self.leader_state).as_mut() {
            s.on_follower_log_start(replica, log_start);
        }
    }

    /// The last stable offset of `log`: below it every transaction is decided (committed or
    /// aborted). The high watermark, or the first offset of the earliest open transaction if that
    /// is lower.
    fn last_stable(log: &PartitionLog, high_watermark: i64) -> i64 {
        log.first_unstable_offset().map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The last stable offset (see `last_stable`).
    pub fn last_stable_offset(&self) -> Result<i64, PartitionError> {
        let hw = self.high_watermark();
        self.with_log(|log| Ok(Self::last_stable(log, hw)))
    }

    /// A fetch of up to `max_bytes` from `pos`, as far as `isolation` may read, after the
    /// divergence check for a follower. With `min_one` the first batch is returned whole even
    /// when larger than `max_bytes` (Kafka's min-one-message rule, which a Fetch grants only to
    /// the first partition of a response that returns data).
    pub fn fetch(&self, pos: &FetchPosition, max_bytes: usize, min_one: bool, isolation: Isolation) -> Result<PartitionRead, ResponseError> {
        self.check_epoch(pos.current_leader_epoch)?;
        let guard = read(&self.log);
        let log = guard.as_ref().ok_or(ResponseError::NotLeaderOrFollower)?;
        let high_watermark = self.high_watermark();
        let last_stable_offset = Self::last_stable(log, high_watermark);
        let log_start_offset = log.log_start_offset();
        let read = |outcome, aborted| PartitionRead { outcome, high_watermark, last_stable_offset, log_start_offset, aborted };
        if isolation == Isolation::Follower {
            if let Some((epoch, end_offset)) = Self::diverging(log, pos) {
                return Ok(read(ReadOutcome::Diverging { epoch, end_offset }, None));
            }
        }
        let up_to = match isolation {
            Isolation::Follower => log.log_end_offset(),
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        let slices = match log.read_slices_within(pos.offset, max_bytes, up_to, min_one) {
            Ok(r) => r,
            Err(e) => return Ok(read(ReadOutcome::Failed(e.into()), None)),
        };
        if isolation != Isolation::ReadCommitted {
            return Ok(read(ReadOutcome::Records(slices), None));
        }
        // Everything read lies below the LSO; the client needs the aborted transactions that
        // overlap it (a few more is harmless: they are only offset ranges to skip).
        let aborted = if slices.len == 0 { Ok(Vec::new()) } else { log.aborted_transactions(pos.offset, up_to) };
        Ok(match aborted {
            Ok(aborted) => read(ReadOutcome::Records(slices), Some(aborted)),
            Err(e) => read(ReadOutcome::Failed(e.into()), None),
        })
    }

    /// While this replica leads: itself and the followers that could serve a consumer at
    /// `fetch_offset` instead (KIP-392, `LeaderState::read_replicas`).
    pub fn read_replica_views(&self, fetch_offset: i64, now_ms: i64) -> Option<(ReplicaView, Vec<ReplicaView>)> {
        let state = lock(&self.leader_state);
        let s = state.as_ref()?;
        Some((s.leader_view(), s.read_replicas(fetch_offset, now_ms)))
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

    /// The timestamp of the oldest record at or after `offset` below the high watermark, as its
    /// batch's header says it (the first record's timestamp, or the append time of a
    /// LogAppendTime batch); `None` when nothing is there. A batch that starts before `offset`
    /// gives its first record's timestamp: at most the batch's span older than the record at
    /// `offset`. Reads one batch header (61 bytes), never records: consumer lag in seconds.
    pub fn first_timestamp_from(&self, offset: i64) -> Option<i64> {
        let read = self.read(offset, 1).ok()?;
        let slice = read.slices.first()?;
        let mut header = [0u8; strom_storage::HEADER_LEN];
        if slice.len < header.len() {
            return None;
        }
        std::os::unix::fs::FileExt::read_exact_at(&*slice.file, &mut header, slice.position).ok()?;
        let h = strom_storage::BatchHeader::parse(&header, 0).ok()?;
        Some(if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp })
    }

    /// Bytes of the replica's segment files.
    pub fn size_bytes(&self) -> Result<u64, PartitionError> {
        self.with_log(|l| Ok(l.size_bytes()))
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
    /// below the high watermark (below the last stable offset for `read_committed`, as Kafka);
    /// `None` when no record qualifies.
    pub fn list_offset(&self, timestamp: i64, isolation: Isolation) -> Result<Option<(i64, i64)>, PartitionError> {
        let high_watermark = self.high_watermark();
        self.with_log(|log| {
            // Kafka's fetchOffsetForTimestamp: consumers up to what they may read, replicas and
            // tools (no isolation) up to the log end.
            let hw = match isolation {
                Isolation::ReadCommitted => Self::last_stable(log, high_watermark),
                Isolation::ReadUncommitted => high_watermark,
                Isolation::Follower => log.log_end_offset(),
            };
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

    /// ListOffsets v0 (Kafka's `legacyFetchOffsetsForTimestamp`): the log's segment-boundary
    /// offsets before `timestamp`, highest first. A consumer (`replica_id` -1) never sees an
    /// offset past the high watermark: those are dropped and the high watermark leads instead.
    pub fn legacy_offsets_before(&self, timestamp: i64, max: usize, from_consumer: bool, now_ms: i64) -> Result<Vec<i64>, PartitionError> {
        let hw = self.high_watermark();
        let offsets = self.with_log(|log| log.legacy_offsets_before(timestamp, max, now_ms))?;
        if !from_consumer || offsets.iter().all(|o| *o <= hw) {
            return Ok(offsets);
        }
        Ok(std::iter::once(hw).chain(offsets.into_iter().skip_while(|o| *o > hw)).collect())
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

    /// The producers this log knows (DescribeProducers).
    pub fn producers(&self) -> Result<Vec<strom_storage::ProducerInfo>, PartitionError> {
        self.with_log(|log| Ok(log.producers()))
    }

    /// Forgets producers idle past `expiration_ms`; returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<usize, PartitionError> {
        self.with_log_mut(|log| Ok(log.expire_producers(now_ms, expiration_ms)))
    }

    /// Time- and size-based retention; returns how many segments were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, PartitionError> {
        self.with_log_mut(|log| log.enforce_retention(now_ms))
    }
}
