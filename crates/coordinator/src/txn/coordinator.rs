//! [`TransactionCoordinator`]: the transactional ids of the loaded `__transaction_state` partitions, the request
//! entry points (InitProducerId, AddPartitionsToTxn/AddOffsetsToTxn, EndTxn), the completions the broker reports
//! (appends, markers), and partition load/unload. Timers are in `timers.rs`, read-only views in `views.rs`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::metadata::{Cause, Pending, Transit, TxnMetadata};
use super::record::{TxnLogKey, TxnLogValue};
use super::state::{TransactionVersion, TxnState};
use super::types::*;
use super::TxnConfig;

/// Hands out a new producer id (Kafka's `ProducerIdManager`: blocks of ids from the controller). Called only when
/// one is needed: a new transactional id, an epoch that ran out.
pub type AllocProducerId<'a> = &'a mut dyn FnMut() -> Result<i64, ResponseError>;

/// Owns every transactional id of the `__transaction_state` partitions this broker leads. Not thread-safe by itself:
/// the caller serialises calls (one mutex, or one task owning it).
#[derive(Debug)]
pub struct TransactionCoordinator {
    pub(super) config: TxnConfig,
    /// Loaded partitions, with the coordinator epoch (the partition's leader epoch) they were loaded in.
    pub(super) loaded: BTreeMap<i32, i32>,
    pub(super) txns: BTreeMap<String, TxnMetadata>,
    /// The last [`TxnAppend`] sequence number handed out.
    next_seq: u64,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TransactionCoordinator { config, loaded: BTreeMap::new(), txns: BTreeMap::new(), next_seq: 0 }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The coordinator epoch `partition` was loaded in, if it is loaded.
    pub fn loaded_epoch(&self, partition: i32) -> Option<i32> {
        self.loaded.get(&partition).copied()
    }

    // ---------------------------------------------------------------- load / unload

    /// This broker now leads `partition` of `__transaction_state` in leader epoch `coordinator_epoch`: rebuild its
    /// transactional ids from its records (in log order, up to the log end; a `None` value is a tombstone), replacing
    /// whatever was loaded for it before. Every transaction left in PrepareCommit/PrepareAbort gets its markers
    /// written again ([`TxnEffect::WriteMarkers`]): the predecessor may have died before writing them all, and
    /// markers are idempotent. Ongoing ones are left to their timeout, as Kafka does.
    ///
    /// A Dead or PrepareEpochFence record (Kafka never writes them) is treated as a tombstone.
    pub fn load_partition(
        &mut self,
        partition: i32,
        coordinator_epoch: i32,
        records: impl IntoIterator<Item = (TxnLogKey, Option<TxnLogValue>)>,
        now_ms: i64,
    ) -> Vec<TxnEffect> {
        self.unload_partition(partition);
        let mut latest: BTreeMap<String, TxnLogValue> = BTreeMap::new();
        for (key, value) in records {
            match value {
                Some(v) if !matches!(v.state, TxnState::Dead | TxnState::PrepareEpochFence) => {
                    latest.insert(key.transactional_id, v);
                }
                _ => {
                    latest.remove(&key.transactional_id);
                }
            }
        }
        self.loaded.insert(partition, coordinator_epoch);
        let mut fx = Vec::new();
        for (id, v) in latest {
            let prepare = v.state.is_prepare();
            self.txns.insert(id.clone(), TxnMetadata::from_value(&id, partition, v));
            if prepare {
                fx.extend(self.after_prepare(&id, now_ms));
            }
        }
        fx
    }

    /// This broker no longer leads `partition`: forget its ids. Parked requests still get their answer from
    /// `append_completed` (NOT_COORDINATOR), and marker work for them is dropped: the next leader redoes it.
    pub fn unload_partition(&mut self, partition: i32) {
        self.loaded.remove(&partition);
        self.txns.retain(|_, m| m.partition != partition);
    }

    // ---------------------------------------------------------------- InitProducerId

    /// InitProducerId for a transactional id owned by `partition` of `__transaction_state` (the caller maps ids to
    /// partitions with [`crate::partition_for`], as it routes FindCoordinator). A null transactional id (an
    /// idempotent producer) needs no coordinator: the broker hands it a producer id at epoch 0 directly.
    ///
    /// Kafka's rules: a timeout above `transaction.max.timeout.ms` (or not positive) is INVALID_TRANSACTION_TIMEOUT;
    /// a new id gets a new producer id at epoch 0; an Empty/Complete* one has its epoch bumped (a new producer id when
    /// the epoch ran out); an Ongoing one is fenced (its epoch bumped) and aborted, and the client is told
    /// CONCURRENT_TRANSACTIONS to retry once the abort completed; a Prepare* one is CONCURRENT_TRANSACTIONS. With
    /// KIP-360's `expected` (producer id, epoch) of a producer recovering, a mismatch is PRODUCER_FENCED, and the
    /// previous epoch answers a retry with the current one (see [`legacy_error`] for old clients).
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        partition: i32,
        now_ms: i64,
        alloc: AllocProducerId,
    ) -> TxnReply<InitProducerIdResponse> {
        let fail = |e| TxnReply::Now(InitProducerIdResponse::error(e));
        if transactional_id.is_empty() {
            return fail(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return fail(ResponseError::InvalidTransactionTimeout);
        }
        if !self.loaded.contains_key(&partition) {
            return fail(ResponseError::NotCoordinator);
        }
        if !self.txns.contains_key(transactional_id) {
            let producer_id = match alloc() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            self.txns.insert(transactional_id.to_string(), TxnMetadata::placeholder(transactional_id, partition, producer_id, timeout_ms, now_ms));
        }
        let Some(meta) = self.txns.get(transactional_id) else { return fail(ResponseError::UnknownServerError) };
        if meta.pending.is_some() {
            return fail(ResponseError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            // Accepted: a just-created id (it recovers from UNKNOWN_PRODUCER_ID), the current producer id (its epoch
            // is checked below), or the previous one with an exhausted epoch (a retry across a rotation).
            let valid = meta.producer_epoch == -1
                || pid == meta.producer_id
                || (pid == meta.previous_producer_id && super::metadata::epoch_exhausted(epoch));
            if !valid {
                return fail(ResponseError::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => fail(ResponseError::ConcurrentTransactions),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let transit = if meta.epoch_exhausted() && expected.is_none_or(|(_, e)| e == meta.producer_epoch) {
                    match alloc() {
                        Ok(new_pid) => meta.prepare_rotation(new_pid, timeout_ms, now_ms, expected.is_some()),
                        Err(e) => return fail(e),
                    }
                } else {
                    match meta.prepare_increment_epoch(timeout_ms, expected.map(|(_, e)| e), now_ms) {
                        Ok(t) => t,
                        Err(e) => return fail(e),
                    }
                };
                let then = InitProducerIdResponse { error: None, producer_id: transit.producer_id, producer_epoch: transit.producer_epoch };
                TxnReply::AfterAppend { append: self.begin(transactional_id, transit, Cause::InitProducerId), then }
            }
            TxnState::Ongoing => match self.fence(transactional_id, now_ms, alloc) {
                // The bumped epoch is never returned: the client retries, and its retry bumps again.
                Ok(transit) => TxnReply::AfterAppend {
                    append: self.begin(transactional_id, transit, Cause::Fence),
                    then: InitProducerIdResponse::error(ResponseError::ConcurrentTransactions),
                },
                Err(e) => fail(e),
            },
            TxnState::Dead | TxnState::PrepareEpochFence => fail(ResponseError::UnknownServerError),
        }
    }

    /// Fence the producer of an Ongoing transaction and prepare its abort, under the cluster's transaction version
    /// (the client is not the one ending it). As Kafka: the fenced epoch is set in memory at once (the old producer
    /// is refused from now on, even should the record fail to append), a fence whose record failed does not bump
    /// again, and with TV2 the abort bumps once more and rotates an exhausted producer id.
    pub(super) fn fence(&mut self, transactional_id: &str, now_ms: i64, alloc: AllocProducerId) -> Result<Transit, ResponseError> {
        let tv = self.config.transaction_version;
        let meta = self.txns.get(transactional_id).ok_or(ResponseError::UnknownServerError)?;
        let next_producer_id = if tv.supports_epoch_bump() && meta.epoch_exhausted() { alloc()? } else { -1 };
        let meta = self.txns.get_mut(transactional_id).ok_or(ResponseError::UnknownServerError)?;
        if !(meta.has_failed_epoch_fence || meta.producer_epoch == i16::MAX) {
            meta.producer_epoch += 1;
        }
        meta.last_producer_epoch = -1;
        Ok(meta.prepare_abort_or_commit(TxnState::PrepareAbort, tv, next_producer_id, now_ms, false))
    }

    // ---------------------------------------------------------------- AddPartitionsToTxn / AddOffsetsToTxn

    /// AddPartitionsToTxn, and AddOffsetsToTxn with the group's `__consumer_offsets` partition. `client_version`:
    /// [`TransactionVersion::for_add_partitions_to_txn`] of the request's version, [`TransactionVersion::Tv0`] for
    /// AddOffsetsToTxn. Kafka's rules: an unknown id or another producer id is INVALID_PRODUCER_ID_MAPPING, another
    /// epoch PRODUCER_FENCED, a pending change or a Prepare* CONCURRENT_TRANSACTIONS; partitions all already in the
    /// Ongoing transaction are answered at once, without an append. The transaction starts (its timeout runs) with
    /// its first partition.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: impl IntoIterator<Item = TopicPartition>,
        client_version: TransactionVersion,
        now_ms: i64,
    ) -> TxnReply<ErrorCode> {
        let fail = |e| TxnReply::Now(Some(e));
        if transactional_id.is_empty() {
            return fail(ResponseError::InvalidRequest);
        }
        let Some(meta) = self.txns.get(transactional_id) else { return fail(ResponseError::InvalidProducerIdMapping) };
        if meta.producer_id != producer_id {
            return fail(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return fail(ResponseError::ProducerFenced);
        }
        if meta.pending.is_some() || meta.state.is_prepare() {
            return fail(ResponseError::ConcurrentTransactions);
        }
        if matches!(meta.state, TxnState::Dead | TxnState::PrepareEpochFence) {
            return fail(ResponseError::UnknownServerError);
        }
        let added: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        if meta.state == TxnState::Ongoing && added.is_subset(&meta.partitions) {
            return TxnReply::Now(None);
        }
        let transit = meta.prepare_add_partitions(&added, now_ms, client_version);
        TxnReply::AfterAppend { append: self.begin(transactional_id, transit, Cause::AddPartitions), then: None }
    }

    /// AddPartitionsToTxn v4+ with `VerifyOnly` (KIP-890 part 1: a partition leader checks that a transactional
    /// produce belongs to an ongoing transaction): read-only. Each partition is NONE if it is in the transaction,
    /// TRANSACTION_ABORTABLE if not; or all get one error (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED,
    /// CONCURRENT_TRANSACTIONS while Prepare*). A pending change is not checked, as Kafka: partitions enter the set
    /// once their record is persisted and leave it once the markers are.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let partitions: Vec<TopicPartition> = partitions.into_iter().collect();
        let all = |e: ResponseError| -> Vec<(TopicPartition, ErrorCode)> { partitions.iter().map(|p| (p.clone(), Some(e))).collect() };
        if transactional_id.is_empty() {
            return all(ResponseError::InvalidRequest);
        }
        let Some(meta) = self.txns.get(transactional_id) else { return all(ResponseError::InvalidProducerIdMapping) };
        if meta.producer_id != producer_id {
            return all(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return all(ResponseError::ProducerFenced);
        }
        if meta.state.is_prepare() {
            return all(ResponseError::ConcurrentTransactions);
        }
        partitions
            .into_iter()
            .map(|p| {
                let e = if meta.partitions.contains(&p) { None } else { Some(ResponseError::TransactionAbortable) };
                (p, e)
            })
            .collect()
    }

    // ---------------------------------------------------------------- EndTxn

    /// EndTxn. `client_version` is [`TransactionVersion::for_end_txn`] of the request's version.
    ///
    /// Transactions v0/v1 (EndTxn v0-4): the producer id and epoch must be the current ones exactly; an Ongoing
    /// transaction goes to Prepare*; a retry of a completed EndTxn (CompleteCommit + commit, CompleteAbort + abort)
    /// is answered OK, one of an EndTxn whose markers are still being written CONCURRENT_TRANSACTIONS (the client
    /// retries until it is complete), and a mismatch (commit after abort, ...) or an Empty transaction
    /// INVALID_TXN_STATE. The response carries no producer id/epoch.
    ///
    /// Transactions v2 (KIP-890 part 2, EndTxn v5+): every EndTxn bumps the epoch, and the response carries the
    /// epoch (or, when it ran out, the new producer id at epoch 0) to continue with. A retry is recognised by the
    /// epoch just below the current one (or the last epoch of the rotated producer id). An Empty or completed
    /// transaction may be aborted (the client cannot know whether its transaction started): that bumps the epoch
    /// too. Kafka's table (retry: the epoch below the current; PF: PRODUCER_FENCED; ITS: INVALID_TXN_STATE;
    /// bump: a new Prepare*):
    ///
    /// ```text
    ///                   abort          commit
    ///                   retry current  retry current
    /// Empty             PF    bump     PF    ITS
    /// CompleteAbort     OK    bump     ITS   ITS
    /// CompleteCommit    ITS   bump     OK    ITS
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_version: TransactionVersion,
        now_ms: i64,
        alloc: AllocProducerId,
    ) -> TxnReply<EndTxnResponse> {
        use TxnState::*;
        let fail = |e| TxnReply::Now(EndTxnResponse::error(e));
        if transactional_id.is_empty() {
            return fail(ResponseError::InvalidRequest);
        }
        let Some(meta) = self.txns.get(transactional_id) else { return fail(ResponseError::InvalidProducerIdMapping) };
        let target = if commit { PrepareCommit } else { PrepareAbort };
        if !client_version.supports_epoch_bump() {
            if meta.producer_id != producer_id {
                return fail(ResponseError::InvalidProducerIdMapping);
            }
            if producer_epoch != meta.producer_epoch {
                return fail(ResponseError::ProducerFenced);
            }
            if meta.pending.is_some() {
                return fail(ResponseError::ConcurrentTransactions);
            }
            return match (meta.state, commit) {
                (Ongoing, _) => {
                    let transit = meta.prepare_abort_or_commit(target, TransactionVersion::Tv0, -1, now_ms, false);
                    TxnReply::AfterAppend { append: self.begin(transactional_id, transit, Cause::EndTxn), then: EndTxnResponse::ok(-1, -1) }
                }
                (CompleteCommit, true) | (CompleteAbort, false) => TxnReply::Now(EndTxnResponse::ok(-1, -1)),
                (PrepareCommit, true) | (PrepareAbort, false) => fail(ResponseError::ConcurrentTransactions),
                (Dead | PrepareEpochFence, _) => fail(ResponseError::UnknownServerError),
                _ => fail(ResponseError::InvalidTxnState),
            };
        }
        let retry_on_overflow = meta.previous_producer_id == producer_id && producer_epoch == i16::MAX - 1 && meta.producer_epoch == 0;
        let retry_on_bump = i32::from(meta.producer_epoch) == i32::from(producer_epoch) + 1;
        let valid = match meta.state {
            PrepareCommit | PrepareAbort => retry_on_bump,
            CompleteCommit | CompleteAbort => retry_on_bump || retry_on_overflow || producer_epoch == meta.producer_epoch,
            Ongoing | Empty | Dead | PrepareEpochFence => producer_epoch == meta.producer_epoch,
        };
        let retry = retry_on_bump || retry_on_overflow;
        if meta.producer_id != producer_id && !retry_on_overflow {
            return fail(ResponseError::InvalidProducerIdMapping);
        }
        if !valid {
            return fail(ResponseError::ProducerFenced);
        }
        if meta.pending.is_some() {
            return fail(ResponseError::ConcurrentTransactions);
        }
        let current = TxnReply::Now(EndTxnResponse::ok(meta.producer_id, meta.producer_epoch));
        match (meta.state, commit) {
            (Ongoing, _) => self.prepare_end(transactional_id, target, false, client_version, now_ms, alloc),
            (CompleteCommit, true) | (CompleteAbort, false) if retry => current,
            (CompleteCommit, false) | (CompleteAbort, false) | (Empty, false) if !retry => {
                self.prepare_end(transactional_id, PrepareAbort, true, client_version, now_ms, alloc)
            }
            (PrepareCommit, true) | (PrepareAbort, false) => fail(ResponseError::ConcurrentTransactions),
            (Dead | PrepareEpochFence, _) => fail(ResponseError::UnknownServerError),
            _ => fail(ResponseError::InvalidTxnState),
        }
    }

    /// A TV2 EndTxn's Prepare*: rotate the producer id if the epoch ran out, and answer the id/epoch to go on with.
    fn prepare_end(
        &mut self,
        transactional_id: &str,
        target: TxnState,
        no_partition_added: bool,
        client_version: TransactionVersion,
        now_ms: i64,
        alloc: AllocProducerId,
    ) -> TxnReply<EndTxnResponse> {
        let Some(meta) = self.txns.get(transactional_id) else { return TxnReply::Now(EndTxnResponse::error(ResponseError::UnknownServerError)) };
        let next_producer_id = if meta.epoch_exhausted() {
            match alloc() {
                Ok(p) => p,
                Err(e) => return TxnReply::Now(EndTxnResponse::error(e)),
            }
        } else {
            -1
        };
        let transit = meta.prepare_abort_or_commit(target, client_version, next_producer_id, now_ms, no_partition_added);
        // The client sees the epoch run out as MAX-1 followed by the new id at 0.
        let then = if transit.next_producer_id != -1 {
            EndTxnResponse::ok(transit.next_producer_id, 0)
        } else {
            EndTxnResponse::ok(transit.producer_id, transit.producer_epoch)
        };
        TxnReply::AfterAppend { append: self.begin(transactional_id, transit, Cause::EndTxn), then }
    }

    // ---------------------------------------------------------------- completions

    /// Mark `transactional_id` pending on `transit` and build the record to append.
    pub(super) fn begin(&mut self, transactional_id: &str, transit: Transit, cause: Cause) -> TxnAppend {
        self.next_seq += 1;
        let seq = self.next_seq;
        let value_version = self.config.transaction_version.log_value_version();
        let value = (cause != Cause::Expire).then(|| transit.value());
        let timeout_ms = transit.timeout_ms;
        let (partition, coordinator_epoch) = match self.txns.get_mut(transactional_id) {
            Some(meta) => {
                meta.pending = Some(Pending::Append { seq, transit, cause });
                (meta.partition, self.loaded.get(&meta.partition).copied().unwrap_or(-1))
            }
            None => (-1, -1),
        };
        TxnAppend {
            transactional_id: transactional_id.to_string(),
            partition,
            coordinator_epoch,
            key: TxnLogKey::new(transactional_id),
            value,
            value_version,
            timeout_ms,
            seq,
        }
    }

    /// A Prepare* is in place (persisted, or loaded): ask for its markers, or, with no partition to mark (a TV2
    /// abort of a transaction that had none), for the Complete* record right away.
    fn after_prepare(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnEffect> {
        let coordinator_epoch = self.txns.get(transactional_id).and_then(|m| self.loaded.get(&m.partition)).copied().unwrap_or(-1);
        let meta = self.txns.get_mut(transactional_id)?;
        if meta.partitions.is_empty() {
            let transit = meta.prepare_complete(now_ms);
            return Some(TxnEffect::Append(self.begin(transactional_id, transit, Cause::Complete)));
        }
        meta.pending = Some(Pending::Markers);
        Some(TxnEffect::WriteMarkers {
            transactional_id: transactional_id.to_string(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            coordinator_epoch,
            commit: meta.state == TxnState::PrepareCommit,
            partitions: meta.partitions.iter().cloned().collect(),
            transaction_version: meta.client_version,
        })
    }

    /// The outcome of appending `append` (and waiting for its replication; map append failures to coordinator
    /// errors as Kafka: COORDINATOR_NOT_AVAILABLE for a missing partition, too few replicas or a timeout,
    /// NOT_COORDINATOR for a lost leadership). On success the transition is applied; on failure the pending change
    /// is dropped (the client retries), except a Complete* record, which the next `tick` asks for again. A report for
    /// an append of an unloaded or reloaded partition, or one already reported, changes nothing and is answered
    /// NOT_COORDINATOR (or its own error).
    pub fn append_completed(&mut self, append: &TxnAppend, result: Result<(), ResponseError>, now_ms: i64) -> AppendOutcome {
        let stale = AppendOutcome { result: result.and(Err(ResponseError::NotCoordinator)), effects: Vec::new() };
        let id = append.transactional_id.as_str();
        let Some(meta) = self.txns.get_mut(id) else { return stale };
        if self.loaded.get(&meta.partition) != Some(&append.coordinator_epoch) {
            return stale;
        }
        let (transit, cause) = match meta.pending.take() {
            Some(Pending::Append { seq, transit, cause }) if seq == append.seq => (transit, cause),
            other => {
                meta.pending = other;
                return stale;
            }
        };
        if let Err(e) = result {
            match cause {
                Cause::Complete => meta.pending = Some(Pending::RetryComplete),
                Cause::Fence | Cause::Timeout => meta.has_failed_epoch_fence = true,
                _ => {}
            }
            return AppendOutcome { result: Err(e), effects: Vec::new() };
        }
        if cause == Cause::Expire {
            self.txns.remove(id);
            return AppendOutcome { result: Ok(()), effects: Vec::new() };
        }
        meta.apply(&transit);
        let effects = if transit.state.is_prepare() { self.after_prepare(id, now_ms).into_iter().collect() } else { Vec::new() };
        AppendOutcome { result: Ok(()), effects }
    }

    /// Every marker of a [`TxnEffect::WriteMarkers`] is written: returns the CompleteCommit/CompleteAbort record to
    /// append (then `append_completed` as for any). A report that does not match the transaction's markers in flight
    /// (unloaded, reloaded, already reported) is ignored.
    pub fn markers_written(&mut self, transactional_id: &str, producer_id: i64, producer_epoch: i16, coordinator_epoch: i32, now_ms: i64) -> Vec<TxnEffect> {
        let Some(meta) = self.txns.get_mut(transactional_id) else { return Vec::new() };
        let current = self.loaded.get(&meta.partition) == Some(&coordinator_epoch)
            && meta.pending == Some(Pending::Markers)
            && meta.producer_id == producer_id
            && meta.producer_epoch == producer_epoch;
        if !current {
            return Vec::new();
        }
        let transit = meta.prepare_complete(now_ms);
        vec![TxnEffect::Append(self.begin(transactional_id, transit, Cause::Complete))]
    }
}
