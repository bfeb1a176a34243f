//! Plain request, response and effect types of the transaction coordinator.
//!
//! As for the group coordinator, these are not `kafka-protocol` message structs: the handlers translate between the
//! wire and these (versions, the legacy error codes of [`legacy_error`]). Errors are `Option<ResponseError>`, `None`
//! being Kafka's error code 0.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::record::{TxnLogKey, TxnLogValue};
use super::state::{TransactionVersion, TxnState};
pub use crate::group::{error_code, ErrorCode};

/// A partition taking part in a transaction. Ordered by topic, then partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition { topic: topic.to_string(), partition }
    }
}

/// A response that can carry an error instead of its result: what the broker answers a parked request with when
/// its append failed ([`AppendOutcome::reply`]).
pub trait TxnResponse {
    fn error(error: ResponseError) -> Self;
}

/// AddPartitionsToTxn/AddOffsetsToTxn answer one error for the whole transaction (the handler spreads it over the
/// partitions, as Kafka's does).
impl TxnResponse for ErrorCode {
    fn error(error: ResponseError) -> Self {
        Some(error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    pub error: ErrorCode,
    /// -1 on error.
    pub producer_id: i64,
    /// -1 on error.
    pub producer_epoch: i16,
}

impl TxnResponse for InitProducerIdResponse {
    fn error(error: ResponseError) -> Self {
        InitProducerIdResponse { error: Some(error), producer_id: -1, producer_epoch: -1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnResponse {
    pub error: ErrorCode,
    /// EndTxn v5+ (transactions v2): the producer id and epoch the client continues with (bumped at every EndTxn;
    /// a new producer id with epoch 0 when the epoch ran out). -1 otherwise, and on error.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl EndTxnResponse {
    pub fn ok(producer_id: i64, producer_epoch: i16) -> Self {
        EndTxnResponse { error: None, producer_id, producer_epoch }
    }
}

impl TxnResponse for EndTxnResponse {
    fn error(error: ResponseError) -> Self {
        EndTxnResponse { error: Some(error), producer_id: -1, producer_epoch: -1 }
    }
}

/// What a request is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnReply<R> {
    /// Answer now; nothing was changed that needs persisting.
    Now(R),
    /// Append `append` to `__transaction_state` (acks=all), wait for its replication, then report the outcome with
    /// [`super::TransactionCoordinator::append_completed`]: its [`AppendOutcome::reply`] turns `then` into the
    /// answer (`then` itself on success, the error otherwise). The transaction is pending meanwhile: other requests
    /// for it are answered CONCURRENT_TRANSACTIONS.
    AfterAppend { append: TxnAppend, then: R },
}

impl<R> TxnReply<R> {
    /// The answer if there is nothing to append.
    pub fn now(self) -> Option<R> {
        match self {
            TxnReply::Now(r) => Some(r),
            TxnReply::AfterAppend { .. } => None,
        }
    }
}

/// One record to append to `__transaction_state`, for one transactional id. Only one is ever outstanding per id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnAppend {
    pub transactional_id: String,
    /// The `__transaction_state` partition to append to.
    pub partition: i32,
    /// The leader epoch of that partition this coordinator loaded it in; if the broker no longer leads it in this
    /// epoch, the append must fail (NOT_COORDINATOR), as Kafka checks before appending.
    pub coordinator_epoch: i32,
    pub key: TxnLogKey,
    /// `None`: a tombstone (the id expires).
    pub value: Option<TxnLogValue>,
    /// The value version to write (the cluster's `transaction.version`: 1 from TV1).
    pub value_version: i16,
    /// Kafka waits up to the transaction's timeout for the append's replication.
    pub timeout_ms: i32,
    /// Identifies this append among all the coordinator asked for, so that a stale report is ignored.
    pub(crate) seq: u64,
}

impl TxnAppend {
    pub fn key_bytes(&self) -> Bytes {
        self.key.encode()
    }

    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.as_ref().map(|v| v.encode(self.value_version))
    }
}

/// The outcome of an append, as [`super::TransactionCoordinator::append_completed`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// `Ok`: the transition is applied. `Err`: the parked request fails with this (the append's error, or
    /// NOT_COORDINATOR when the partition was unloaded or reloaded meanwhile).
    pub result: Result<(), ResponseError>,
    /// Follow-up work: markers to write after a Prepare*, a record to append.
    pub effects: Vec<TxnEffect>,
}

impl AppendOutcome {
    /// The parked request's answer: `then` on success, else its error form.
    pub fn reply<R: TxnResponse>(&self, then: R) -> R {
        match self.result {
            Ok(()) => then,
            Err(e) => R::error(e),
        }
    }
}

/// Work the coordinator asks for on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnEffect {
    /// Append this record (no client waits for it: a timeout's abort, an expiration's tombstone, the
    /// CompleteCommit/CompleteAbort after the markers) and report with `append_completed`.
    Append(TxnAppend),
    /// Send WriteTxnMarkers for these partitions (grouped by their leaders), retrying until every one is written (a
    /// partition that no longer exists counts as written, as Kafka) or `unload_partition` drops the coordinator;
    /// then call `markers_written` with these fields. Emitted once a Prepare* is persisted, and again for every
    /// Prepare* a `load_partition` finds: the failover completes what the predecessor left.
    WriteMarkers {
        transactional_id: String,
        producer_id: i64,
        /// The epoch to write the markers with (with transactions v2, the one EndTxn bumped to, which fences the
        /// producer's late writes of the ended transaction).
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        partitions: Vec<TopicPartition>,
        /// The transaction version the transaction ended with (WriteTxnMarkers' `TransactionVersion`).
        transaction_version: TransactionVersion,
    },
}

/// The APIs whose PRODUCER_FENCED old clients do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
}

/// The coordinator answers PRODUCER_FENCED; Kafka's handlers send INVALID_PRODUCER_EPOCH instead to clients from
/// before that code (InitProducerId v0-3, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v0-1), which handle both the
/// same way.
pub fn legacy_error(api: TxnApi, request_version: i16, error: ErrorCode) -> ErrorCode {
    let first_with_fenced = match api {
        TxnApi::InitProducerId => 4,
        TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn => 2,
    };
    match error {
        Some(ResponseError::ProducerFenced) if request_version < first_with_fenced => Some(ResponseError::InvalidProducerEpoch),
        e => e,
    }
}

/// DescribeTransactions for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTransaction {
    /// TRANSACTIONAL_ID_NOT_FOUND for an unknown (or expiring) id, INVALID_REQUEST for "".
    pub error: ErrorCode,
    pub transactional_id: String,
    /// "" on error.
    pub state: String,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransaction {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListTransactionsResponse {
    pub transactions: Vec<ListedTransaction>,
    /// State filters that name no state (ListTransactions reports them back).
    pub unknown_state_filters: Vec<String>,
}

/// Introspection of one transactional id (tests, debugging, admin tooling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSnapshot {
    pub transactional_id: String,
    /// The `__transaction_state` partition it belongs to.
    pub partition: i32,
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: Vec<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    pub client_transaction_version: TransactionVersion,
    /// The state it is moving to (Kafka's `pendingState`): set while a record is being appended or markers written.
    pub pending: Option<TxnState>,
    /// A fence's record failed to append: the epoch in memory is ahead of the log (Kafka's `hasFailedEpochFence`).
    pub has_failed_epoch_fence: bool,
}
