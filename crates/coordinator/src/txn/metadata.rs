//! One transactional id's metadata (Kafka's `TransactionMetadata`) and its transitions.
//!
//! A change is prepared as a [`Transit`] (Kafka's `TxnTransitMetadata`): the whole record to persist. The metadata
//! only moves once the record is replicated ([`TxnMetadata::apply`], Kafka's `completeTransitionTo`, which applies
//! only the fields each target state owns). Until then the id is pending, and requests for it are answered
//! CONCURRENT_TRANSACTIONS. What is persisted and what is kept in memory follow Kafka field by field, including
//! its quirks: `last_producer_epoch` is never persisted (-1 after a load), and a fence bumps the epoch in memory
//! before its record is written.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use super::record::TxnLogValue;
use super::state::{TransactionVersion, TxnState};
use super::types::{TopicPartition, TxnSnapshot};

/// Kafka does not let a client use an epoch of `i16::MAX - 1` or more: the coordinator must always be able to bump
/// once more to fence it (`isEpochExhausted`).
pub(super) fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The full persisted image after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Transit {
    pub producer_id: i64,
    /// The producer id before this transition (Kafka's `prevProducerId` of a transit).
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    pub client_version: TransactionVersion,
}

impl Transit {
    pub fn value(&self) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: if self.state == TxnState::Empty { BTreeSet::new() } else { self.partitions.clone() },
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_transaction_version: self.client_version,
        }
    }
}

/// Why a record is being appended: what its completion answers, and what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    InitProducerId,
    AddPartitions,
    EndTxn,
    /// An InitProducerId found the transaction Ongoing: fence its producer and abort it.
    Fence,
    /// The transaction ran past its timeout: fence and abort.
    Timeout,
    /// CompleteCommit/CompleteAbort once the markers are written.
    Complete,
    /// The tombstone of an expired id.
    Expire,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    /// A record is being appended; `append_completed` with this `seq` applies `transit`.
    Append { seq: u64, transit: Transit, cause: Cause },
    /// A Prepare* is persisted; the broker writes the markers, then calls `markers_written`.
    Markers,
    /// The append of the Complete* record failed; the next `tick` asks for it again.
    RetryComplete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TxnMetadata {
    pub id: String,
    /// The `__transaction_state` partition holding its records.
    pub partition: i32,
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, for KIP-360 retries of InitProducerId and TV2 retries of EndTxn.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the transaction started (its first partition), -1 if none; the timeout counts from here.
    pub start_ms: i64,
    /// The last transition; `transactional.id.expiration.ms` counts from here.
    pub last_update_ms: i64,
    pub client_version: TransactionVersion,
    pub pending: Option<Pending>,
    /// A fence's record failed to append: its in-memory epoch bump stands, and the next fence does not bump again.
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A new id before its first InitProducerId is persisted (Kafka puts it in the cache at once, epoch -1).
    pub fn placeholder(id: &str, partition: i32, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            id: id.to_string(),
            partition,
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
            client_version: TransactionVersion::Tv0,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    /// As a load rebuilds it from its last record (`readTxnRecordValue`).
    pub fn from_value(id: &str, partition: i32, v: TxnLogValue) -> Self {
        TxnMetadata {
            id: id.to_string(),
            partition,
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: if v.state == TxnState::Empty { BTreeSet::new() } else { v.partitions },
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_version: v.client_transaction_version,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    /// The state it is moving to (Kafka's `pendingState`).
    pub fn pending_state(&self) -> Option<TxnState> {
        match &self.pending {
            None => None,
            Some(Pending::Append { transit, .. }) => Some(transit.state),
            Some(Pending::Markers) | Some(Pending::RetryComplete) => Some(if self.state == TxnState::PrepareCommit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            }),
        }
    }

    pub fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }

    /// Kafka's `prepareTransitionTo` defaults: everything as now, the current producer id becoming the previous.
    fn transit(&self, state: TxnState) -> Transit {
        debug_assert!(self.state.can_transition_to(state), "{:?} -> {state:?}", self.state);
        Transit {
            producer_id: self.producer_id,
            previous_producer_id: self.producer_id,
            next_producer_id: -1,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state,
            partitions: self.partitions.clone(),
            start_ms: self.start_ms,
            last_update_ms: self.last_update_ms,
            client_version: self.client_version,
        }
    }

    /// InitProducerId on an Empty/Complete* transaction (`prepareIncrementProducerEpoch`), with KIP-360's
    /// `expected_epoch`: the current epoch (the producer recovers: bump), the previous one (a retry of a bump that
    /// succeeded: answer it again) or anything else (PRODUCER_FENCED). The caller rotates an exhausted epoch first.
    pub fn prepare_increment_epoch(&self, timeout_ms: i32, expected_epoch: Option<i16>, now: i64) -> Result<Transit, ResponseError> {
        let bumped = self.producer_epoch.saturating_add(1);
        let (epoch, last) = match expected_epoch {
            None => (bumped, -1),
            Some(e) if self.producer_epoch == -1 || e == self.producer_epoch => (bumped, self.producer_epoch),
            Some(e) if e == self.last_producer_epoch => (self.producer_epoch, self.last_producer_epoch),
            Some(_) => return Err(ResponseError::ProducerFenced),
        };
        let mut t = self.transit(TxnState::Empty);
        t.producer_epoch = epoch;
        t.last_producer_epoch = last;
        t.timeout_ms = timeout_ms;
        t.partitions.clear();
        t.start_ms = -1;
        t.last_update_ms = now;
        Ok(t)
    }

    /// InitProducerId when the epoch ran out: a new producer id at epoch 0 (`prepareProducerIdRotation`); the old
    /// epoch is remembered for a KIP-360 retry.
    pub fn prepare_rotation(&self, new_producer_id: i64, timeout_ms: i32, now: i64, record_last_epoch: bool) -> Transit {
        let mut t = self.transit(TxnState::Empty);
        t.producer_id = new_producer_id;
        t.producer_epoch = 0;
        t.last_producer_epoch = if record_last_epoch { self.producer_epoch } else { -1 };
        t.timeout_ms = timeout_ms;
        t.partitions.clear();
        t.start_ms = -1;
        t.last_update_ms = now;
        t
    }

    /// AddPartitionsToTxn/AddOffsetsToTxn (`prepareAddPartitions`): the transaction starts with its first partition.
    pub fn prepare_add_partitions(&self, added: &BTreeSet<TopicPartition>, now: i64, client_version: TransactionVersion) -> Transit {
        let mut t = self.transit(TxnState::Ongoing);
        if matches!(self.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort) {
            t.start_ms = now;
        }
        t.partitions.extend(added.iter().cloned());
        t.last_update_ms = now;
        t.client_version = client_version;
        t
    }

    /// EndTxn, or an abort the coordinator starts (`prepareAbortOrCommit`). With transactions v2 the epoch is bumped
    /// (not past `i16::MAX`: an abort at the maximum goes through unbumped so the id can recover), and
    /// `next_producer_id` is the id to rotate to when the epoch ran out. An abort of a transaction that had no
    /// partition (TV2 lets a client abort blindly) starts now.
    pub fn prepare_abort_or_commit(&self, state: TxnState, client_version: TransactionVersion, next_producer_id: i64, now: i64, no_partition_added: bool) -> Transit {
        let mut t = self.transit(state);
        if client_version.supports_epoch_bump() {
            if !(self.producer_epoch == i16::MAX && state == TxnState::PrepareAbort) {
                t.producer_epoch = self.producer_epoch.saturating_add(1);
            }
            t.last_producer_epoch = self.producer_epoch;
        }
        if no_partition_added {
            t.start_ms = now;
        }
        t.next_producer_id = next_producer_id;
        t.last_update_ms = now;
        t.client_version = client_version;
        t
    }

    /// The markers are written (`prepareComplete`): a TV2 transaction that ran out of epochs moves to its next
    /// producer id at epoch 0, keeping the last epoch the client saw.
    pub fn prepare_complete(&mut self, now: i64) -> Transit {
        // The Prepare* was persisted, so a fence that failed before is behind us.
        self.has_failed_epoch_fence = false;
        let state = if self.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        let mut t = self.transit(state);
        if self.client_version.supports_epoch_bump() && self.next_producer_id != -1 {
            t.producer_id = self.next_producer_id;
            t.producer_epoch = 0;
        }
        t.next_producer_id = -1;
        t.partitions.clear();
        t.last_update_ms = now;
        t
    }

    /// Expiration (`prepareDead`): never persisted as such; the record is a tombstone.
    pub fn prepare_dead(&self) -> Transit {
        let mut t = self.transit(TxnState::Dead);
        t.partitions.clear();
        t
    }

    /// Kafka's `completeTransitionTo`: apply a persisted transit, each target state taking the fields it owns. Two
    /// deviations, so that memory is what a failover would load from the record just written (Kafka's memory and log
    /// disagree there until a failover): InitProducerId also resets the start time to the -1 it persists, and every
    /// record sets the previous producer id it persists. The latter only changes which error a stale retry from
    /// before a rotation gets once a newer transaction started (INVALID_PRODUCER_ID_MAPPING rather than
    /// PRODUCER_FENCED).
    pub fn apply(&mut self, t: &Transit) {
        debug_assert!(self.state.can_transition_to(t.state), "{:?} -> {:?}", self.state, t.state);
        let tv2 = t.client_version.supports_epoch_bump();
        match t.state {
            TxnState::Empty => {
                self.timeout_ms = t.timeout_ms;
                self.producer_epoch = t.producer_epoch;
                self.last_producer_epoch = t.last_producer_epoch;
                self.producer_id = t.producer_id;
                self.previous_producer_id = t.previous_producer_id;
                self.start_ms = t.start_ms;
            }
            TxnState::Ongoing => {
                self.start_ms = t.start_ms;
                self.partitions.extend(t.partitions.iter().cloned());
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                if tv2 {
                    self.producer_epoch = t.producer_epoch;
                    self.last_producer_epoch = t.last_producer_epoch;
                    self.next_producer_id = t.next_producer_id;
                    self.start_ms = t.start_ms;
                }
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.start_ms = t.start_ms;
                self.partitions.clear();
                if tv2 {
                    self.producer_epoch = t.producer_epoch;
                    self.last_producer_epoch = t.last_producer_epoch;
                    self.previous_producer_id = t.previous_producer_id;
                    self.producer_id = t.producer_id;
                    self.next_producer_id = t.next_producer_id;
                }
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {}
        }
        self.previous_producer_id = t.previous_producer_id;
        self.client_version = t.client_version;
        self.last_update_ms = t.last_update_ms;
        self.state = t.state;
        self.pending = None;
    }

    pub fn snapshot(&self) -> TxnSnapshot {
        TxnSnapshot {
            transactional_id: self.id.clone(),
            partition: self.partition,
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.iter().cloned().collect(),
            start_ms: self.start_ms,
            last_update_ms: self.last_update_ms,
            client_transaction_version: self.client_version,
            pending: self.pending_state(),
            has_failed_epoch_fence: self.has_failed_epoch_fence,
        }
    }
}
