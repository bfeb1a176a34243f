//! The consumer-group coordinator's state machine: Kafka's classic group protocol
//! (GroupCoordinator / GroupMetadata / MemberMetadata), pure and deterministic.
//!
//! No networking, no clocks, no I/O: every call takes `now_ms`, and whatever the outside world
//! must do is returned as an [`Effect`]:
//!
//! - JoinGroup/SyncGroup requests that must wait return `Pending(ticket)`; the call that unblocks
//!   them (another member's join, the leader's sync, a leave, [`GroupCoordinator::tick`]) emits
//!   `CompleteJoin`/`CompleteSync` with that ticket. Every ticket is completed exactly once.
//! - Persistence (`PersistGroup`, `PersistOffsets`, `DeleteGroup`, `DeleteOffsets`) is to be
//!   appended to `__consumer_offsets` as [`LogRecord`]s ([`Effect::log_records`]); on restart
//!   [`GroupCoordinator::replay`] rebuilds offsets and group metadata from them.
//!
//! - Transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447) stay pending per producer until the marker of
//!   their transaction reaches the offsets partition (`txn_offsets.rs` says how the broker drives them).
//!
//! The in-memory state is updated when the call returns, before the caller has written the
//! records; if the append fails the caller should fail the request (the client retries) and the
//! change is only lost on a restart. Kafka instead applies after the write; the difference is
//! only visible when the log write fails.

mod batch;
mod coordinator;
#[allow(clippy::module_inception)]
mod group;
mod member;
mod migration;
mod offsets;
mod record;
mod txn_offsets;
mod types;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

pub use batch::{decode_batch, encode_batch, encode_marker_batch, encode_txn_batch, read_batch};
pub use coordinator::GroupCoordinator;
pub use migration::{MigratingGroup, MigratingMember};
pub use record::{GroupRecord, LogRecord, MemberRecord, OffsetRecord, RecordError, GROUP_VALUE_VERSION, OFFSET_VALUE_VERSION};
pub use types::*;

/// Thresholds, with Apache Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an Empty group waits
    /// for more members. 0 completes as soon as every member has joined.
    pub group_initial_rebalance_delay_ms: i64,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `group.max.size`; `None` is unlimited (Kafka's default is `Int.MaxValue`).
    pub group_max_size: Option<usize>,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 10_080 * 60 * 1000,
            group_max_size: None,
            offset_metadata_max_bytes: 4096,
        }
    }
}
