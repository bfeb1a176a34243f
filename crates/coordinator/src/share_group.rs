//! KIP-932 share groups (queues): many members consume the same partitions, and each record is
//! handed to one of them at a time. Pure and deterministic like the other coordinators: every
//! call takes `now_ms` (and, where it assigns, the cluster's topics), nothing here reads a clock
//! or does I/O.
//!
//! - `coordinator.rs`: [`ShareGroupCoordinator`]: membership by ShareGroupHeartbeat (join at
//!   epoch 0, leave at -1, Kafka's epoch fencing), the group epoch bumped by membership and
//!   subscription changes, the uniform assignment (a partition may go to several members), the
//!   session timeout (`tick`), share sessions (ShareFetch / ShareAcknowledge epochs), and the
//!   share partitions of the groups it coordinates.
//! - `partition.rs`: [`SharePartition`]: one partition as one group consumes it: the start
//!   offset, in-flight records (available or acquired under a lock), delivery counts,
//!   ACCEPT / RELEASE / REJECT, lock expiry.
//! - `record.rs`: the share partitions' state as records of the group's `__consumer_offsets`
//!   partition (Strom's own key version; Kafka uses `__share_group_state`). `state.rs`: that
//!   state as the share-state APIs between a partition's leader and the owner carry it.
//! - `member_record.rs`: the membership (group epoch, members, their epochs and assignments) as
//!   Kafka's ShareGroup* records of the same partition.
//!
//! Persistence: after each call the caller takes the changed share partitions' records
//! ([`ShareGroupCoordinator::take_records`]: each one's whole state, so compaction keeps the
//! last), appends them and answers once they are replicated; a new coordinator replays them
//! ([`ShareGroupCoordinator::load_record`]). Acquisitions are not persisted as such: a replayed
//! record that was acquired is available again, its delivery count kept, so a restart loses no
//! expired acquisition and redelivers nothing acknowledged.
//!
//! One type, two roles: the group's coordinator uses it for membership and as the owner of the
//! share partitions' durable state (`read_state`, `write_state`, the records); each partition's
//! leader uses its own for share sessions and the share partitions it serves (`install`,
//! `acquire`, `acknowledge`, `take_dirty_of`). Membership is persisted too
//! (`member_record.rs`): after a coordinator restart or move, members go on with their epochs.

mod coordinator;
mod member_record;
mod partition;
mod record;
mod state;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use coordinator::{
    assign, DescribedShareGroup, ExpiredMember, ShareGroupCoordinator, ShareHeartbeat, ShareHeartbeatResponse, ShareKey, ShareMember, FINAL_EPOCH, INITIAL_EPOCH,
};
pub use member_record::is_share_group_key;
pub use partition::{AckType, Acquired, Limits, LogBatch, SharePartition, Snapshot};
pub use record::{is_share_state_key, RecordError, SHARE_STATE_KEY};
pub use state::{from_batches, to_batches, StateBatch, StateEpochs};

/// `share.auto.offset.reset`: where a share partition seen for the first time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// At the log end: only records produced from now on (Kafka's default).
    #[default]
    Latest,
    /// At the log start.
    Earliest,
}

/// Kafka's `group.share.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.share.record.lock.duration.ms`.
    pub record_lock_duration_ms: i32,
    /// `group.share.delivery.count.limit`.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks`.
    pub partition_max_record_locks: i32,
    /// `group.share.max.size`; `None` is unlimited.
    pub max_size: Option<usize>,
    /// `share.auto.offset.reset`.
    pub auto_offset_reset: AutoOffsetReset,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2_000,
            max_size: None,
            auto_offset_reset: AutoOffsetReset::Latest,
        }
    }
}

impl ShareGroupConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            lock_duration_ms: i64::from(self.record_lock_duration_ms),
            delivery_count_limit: self.delivery_count_limit,
            max_record_locks: self.partition_max_record_locks.max(1) as usize,
        }
    }
}
