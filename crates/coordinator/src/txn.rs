//! Kafka's transaction coordinator (`TransactionCoordinator`, `TransactionStateManager`, `TransactionMetadata`) as
//! a pure, deterministic state machine: KIP-98 transactions, KIP-360 producer recovery, KIP-890 (verification and
//! transactions v2), KIP-994 duration filters.
//!
//! No networking, no clocks, no I/O: every call takes `now_ms`, and whatever the world must do comes back as data.
//! As Kafka's `pendingState`, a change that must be persisted is not applied at once:
//!
//! 1. A request that changes a transaction returns [`TxnReply::AfterAppend`]: the record to append to
//!    `__transaction_state` and the answer to give once it is replicated. The transaction is pending meanwhile
//!    (other requests for it get CONCURRENT_TRANSACTIONS).
//! 2. The broker appends, waits for replication, and calls [`TransactionCoordinator::append_completed`], which
//!    applies the transition (or drops it on failure) and returns the parked request's fate and follow-up
//!    [`TxnEffect`]s: after a PrepareCommit/PrepareAbort, [`TxnEffect::WriteMarkers`]. Kafka answers EndTxn then;
//!    markers are asynchronous.
//! 3. Once every marker is written the broker calls [`TransactionCoordinator::markers_written`], which asks for the
//!    CompleteCommit/CompleteAbort record ([`TxnEffect::Append`], reported like any append).
//!
//! [`TransactionCoordinator::tick`] aborts transactions past their timeout and expires idle ids;
//! [`TransactionCoordinator::load_partition`] rebuilds a partition's ids from its log on a leadership change (and
//! asks again for the markers of every Prepare* it finds), `unload_partition` forgets them. The coordinator epoch
//! (the partition's leader epoch) comes with the load, is carried by appends and markers, and a report for an older
//! load changes nothing.
//!
//! Records are Kafka's own `__transaction_state` key/value formats ([`TxnLogKey`], [`TxnLogValue`]), so a Kafka log
//! replays here and Kafka's tools read Strom's.

mod batch;
mod coordinator;
mod metadata;
mod record;
mod state;
mod timers;
mod types;
mod views;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use crate::partition_for;
pub use batch::{decode_batch, encode_batch};
pub use coordinator::{AllocProducerId, TransactionCoordinator};
pub use record::{decode_record, TxnLogKey, TxnLogValue, TxnRecordError};
pub use state::{TransactionVersion, TxnState};
pub use types::*;

/// Kafka's name for the transaction log topic.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Thresholds, with Apache Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (900000, 15 minutes): the longest timeout InitProducerId accepts, so that a
    /// stuck producer cannot hold back consumers reading committed data for longer.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (604800000, 7 days): an id whose transactions ended and which saw no
    /// transition this long is removed (its producer id and epoch with it).
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10000): how often the broker should call
    /// `tick` for timeouts.
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (3600000): how often Kafka looks for expired ids.
    pub remove_expired_transaction_cleanup_interval_ms: i64,
    /// The cluster's finalized `transaction.version` feature level (a new Kafka 4.x cluster has 2): from TV1 the
    /// records are written as value version 1 (flexible); the aborts the coordinator starts itself (timeouts,
    /// fencing) follow this level's epoch rules.
    pub transaction_version: TransactionVersion,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            transaction_version: TransactionVersion::Tv2,
        }
    }
}
