//! Transactional offset commits (KIP-98, KIP-447): TxnOffsetCommit, the transaction markers that decide them, and
//! their replay. Kafka's `OffsetMetadataManager` keeps them the same way: per producer id, pending until the marker
//! of the producer's transaction reaches the offsets partition; a commit marker moves them to the committed offsets
//! (unless a later plain commit of the partition is already there), an abort marker drops them.
//!
//! How the broker drives it:
//!
//! 1. TxnOffsetCommit: [`GroupCoordinator::commit_txn_offsets`]; append the records of its
//!    [`Effect::PersistTxnOffsets`] as one transactional batch ([`super::encode_txn_batch`]) to the group's offsets
//!    partition (the log checks the producer's epoch, and with KIP-890 that the partition is in the transaction, as
//!    for any transactional produce), wait for replication, report with `offsets_appended`, answer.
//! 2. WriteTxnMarkers reaching offsets partition P: append the marker ([`super::encode_marker_batch`]) to P, then
//!    [`GroupCoordinator::complete_txn`] with the groups of P.
//! 3. Loading P: every batch through [`super::read_batch`] and [`GroupCoordinator::load_batch`] with the groups of
//!    P, in log order.
//! 4. OffsetFetch with `require_stable` (v7+): [`GroupCoordinator::fetch_offsets_with`].

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::coordinator::GroupCoordinator;
use super::group::{Group, StoredOffset};
use super::record::{LogRecord, RecordError};
use super::types::*;
use crate::batch::DecodedBatch;

type PartitionKey = (String, i32);

/// Pending transactional offsets: Kafka's `pendingTransactionalOffsets` and `openTransactionsByGroup`.
#[derive(Debug, Default)]
pub(super) struct TxnOffsets {
    by_producer: BTreeMap<i64, BTreeMap<String, BTreeMap<PartitionKey, StoredOffset>>>,
    by_group: BTreeMap<String, BTreeSet<i64>>,
    /// Commits being appended, by commit id: (producer, group, offsets). They join the pending ones once replicated;
    /// a failed one leaves the earlier pending commit of its partitions in place, as Kafka's reverted write does.
    staged: BTreeMap<u64, Staged>,
}

#[derive(Debug)]
struct Staged {
    producer_id: i64,
    group_id: String,
    offsets: Vec<(PartitionKey, StoredOffset)>,
}

impl TxnOffsets {
    fn put(&mut self, producer_id: i64, group_id: &str, key: PartitionKey, offset: StoredOffset) {
        self.by_producer.entry(producer_id).or_default().entry(group_id.to_string()).or_default().insert(key, offset);
        self.by_group.entry(group_id.to_string()).or_default().insert(producer_id);
    }

    /// Whether some transaction has a commit pending for the partition (Kafka's `hasPendingTransactionalOffsets`),
    /// counting one still being appended (Kafka reads its latest, uncommitted state for a stable fetch).
    pub fn has(&self, group_id: &str, key: &PartitionKey) -> bool {
        let pending = self.by_group.get(group_id).is_some_and(|producers| {
            producers.iter().any(|p| self.by_producer.get(p).and_then(|g| g.get(group_id)).is_some_and(|o| o.contains_key(key)))
        });
        pending || self.staged.values().any(|s| s.group_id == group_id && s.offsets.iter().any(|(k, _)| k == key))
    }

    pub fn has_group(&self, group_id: &str) -> bool {
        self.by_group.contains_key(group_id) || self.staged.values().any(|s| s.group_id == group_id)
    }

    fn stage(&mut self, commit: u64, staged: Staged) {
        self.staged.insert(commit, staged);
    }

    /// The outcome of a staged commit's append; `false` if `commit` is not a staged one.
    pub fn appended(&mut self, commit: u64, replicated: bool) -> bool {
        let Some(staged) = self.staged.remove(&commit) else { return false };
        if replicated {
            for (key, offset) in staged.offsets {
                self.put(staged.producer_id, &staged.group_id, key, offset);
            }
        }
        true
    }

    /// Drop what `drop` selects from one producer's pending commits, keeping the group index in step.
    fn drop_where(&mut self, producer_id: i64, mut drop: impl FnMut(&str, &PartitionKey, &StoredOffset) -> bool) {
        let Some(groups) = self.by_producer.get_mut(&producer_id) else { return };
        for (group_id, offsets) in groups.iter_mut() {
            offsets.retain(|k, o| !drop(group_id, k, o));
            if offsets.is_empty() {
                if let Some(producers) = self.by_group.get_mut(group_id) {
                    producers.remove(&producer_id);
                    if producers.is_empty() {
                        self.by_group.remove(group_id);
                    }
                }
            }
        }
        groups.retain(|_, offsets| !offsets.is_empty());
        if groups.is_empty() {
            self.by_producer.remove(&producer_id);
        }
    }

    fn producers_of(&self, group_id: &str) -> Vec<i64> {
        self.by_group.get(group_id).map(|p| p.iter().copied().collect()).unwrap_or_default()
    }

    /// A tombstone of the partition: its pending commits go too.
    pub fn remove_partition(&mut self, group_id: &str, key: &PartitionKey) {
        for p in self.producers_of(group_id) {
            self.drop_where(p, |g, k, _| g == group_id && k == key);
        }
    }

    /// Drop the group's pending commits; returns their partitions.
    pub fn remove_group(&mut self, group_id: &str) -> BTreeSet<PartitionKey> {
        let mut removed = BTreeSet::new();
        for p in self.producers_of(group_id) {
            self.drop_where(p, |g, k, _| {
                let hit = g == group_id;
                if hit {
                    removed.insert(k.clone());
                }
                hit
            });
        }
        removed
    }

    /// Keep the pending (and staged) commits of the groups `keep` selects.
    pub fn retain_groups(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = self.by_group.keys().filter(|g| !keep(g)).cloned().collect();
        for g in gone {
            self.remove_group(&g);
        }
        self.staged.retain(|_, s| keep(&s.group_id));
    }

    /// Take the producer's pending commits of the groups `in_partition` selects.
    fn take(&mut self, producer_id: i64, mut in_partition: impl FnMut(&str) -> bool) -> Vec<(String, PartitionKey, StoredOffset)> {
        let mut taken = Vec::new();
        self.drop_where(producer_id, |g, k, o| {
            let hit = in_partition(g);
            if hit {
                taken.push((g.to_string(), k.clone(), o.clone()));
            }
            hit
        });
        taken
    }
}

impl GroupCoordinator {
    /// TxnOffsetCommit, validated as Kafka's (`validateTransactionalOffsetCommit`, the classic group's
    /// `validateOffsetCommit` for a transactional commit): an unknown group is created when the generation is
    /// negative (a producer outside group management), else ILLEGAL_GENERATION; a generation of -1 commits to an
    /// Empty group; with member information (v3+), an unknown static instance or member is UNKNOWN_MEMBER_ID, an
    /// instance id known under another member id FENCED_INSTANCE_ID, another generation ILLEGAL_GENERATION; without
    /// it (v0-2), any group is accepted. Unlike a plain commit, a rebalance in progress does not refuse it. The
    /// producer's epoch is not checked here: the log checks it when the batch is appended.
    ///
    /// The offsets stay pending for (group, producer id), invisible to OffsetFetch, until [`Self::complete_txn`].
    pub fn commit_txn_offsets(&mut self, req: TxnOffsetCommitRequest, now_ms: i64) -> (Vec<PartitionResult>, Vec<Effect>) {
        let mut fx = Vec::new();
        let all = |offsets: &[CommitOffset], error: ResponseError| {
            offsets.iter().map(|o| PartitionResult { topic: o.topic.clone(), partition: o.partition, error: Some(error) }).collect::<Vec<_>>()
        };
        if req.group_id.is_empty() {
            return (all(&req.offsets, ResponseError::InvalidGroupId), fx);
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                return (all(&req.offsets, ResponseError::IllegalGeneration), fx);
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let Some(group) = self.groups.get(&req.group_id) else {
            return (all(&req.offsets, ResponseError::UnknownServerError), fx);
        };
        if let Some(error) = validate_txn_commit(group, &req) {
            return (all(&req.offsets, error), fx);
        }
        let max_metadata = self.config.offset_metadata_max_bytes;
        self.last_commit += 1;
        let commit = self.last_commit;
        let (results, records, staged) = super::offsets::stage_offsets(&req.group_id, req.offsets, max_metadata, commit, now_ms);
        if !records.is_empty() {
            // A stable fetch waits for it from now on; it joins the pending commits once replicated.
            self.txn.stage(commit, Staged { producer_id: req.producer_id, group_id: req.group_id.clone(), offsets: staged });
            fx.push(Effect::PersistTxnOffsets {
                group_id: req.group_id,
                producer_id: req.producer_id,
                producer_epoch: req.producer_epoch,
                offsets: records,
                commit,
            });
        }
        (results, fx)
    }

    /// The outcome of a `PersistTxnOffsets` append (reported through `offsets_appended`): replicated, its offsets
    /// are pending; failed, they are dropped. `false` if `commit` is no transactional commit in flight.
    pub(super) fn txn_offsets_appended(&mut self, commit: u64, replicated: bool) -> bool {
        self.txn.appended(commit, replicated)
    }

    /// The marker of `producer_id`'s transaction is written to an offsets partition (live: WriteTxnMarkers; in a
    /// replay: its control batch): its pending offsets for the groups of that partition (`in_partition`; a
    /// producer's transaction may span several offsets partitions, each with its own marker) are committed or
    /// dropped. A committed offset replaces the group's current one unless that one is more recent (a plain commit
    /// written after the transactional one: Kafka keeps the later record). Kafka's `replayEndTransactionMarker`.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, in_partition: impl FnMut(&str) -> bool, now_ms: i64) {
        let taken = self.txn.take(producer_id, in_partition);
        if !commit {
            return;
        }
        for (group_id, key, offset) in taken {
            let group = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id, now_ms));
            if group.offsets.get(&key).is_none_or(|current| current.commit < offset.commit) {
                group.offsets.insert(key, offset);
            }
        }
    }

    /// A replayed control batch: the same as [`Self::complete_txn`].
    pub fn replay_marker(&mut self, producer_id: i64, commit: bool, in_partition: impl FnMut(&str) -> bool, now_ms: i64) {
        self.complete_txn(producer_id, commit, in_partition, now_ms);
    }

    /// One record of a transactional batch of `producer_id`, read back from the log: an offset commit becomes
    /// pending (the group is created if needed, as Kafka's replay does); anything else applies as in `load`.
    pub fn load_txn_record(&mut self, key: &[u8], value: Option<&[u8]>, producer_id: i64, now_ms: i64) -> Result<(), RecordError> {
        match LogRecord::decode(key, value)? {
            LogRecord::Offset(o) => {
                self.last_commit += 1;
                let offset = StoredOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                    commit_timestamp_ms: o.commit_timestamp_ms,
                    commit: self.last_commit,
                };
                self.groups.entry(o.group_id.clone()).or_insert_with(|| Group::new(&o.group_id, now_ms));
                self.txn.put(producer_id, &o.group_id, (o.topic, o.partition), offset);
            }
            other => self.load(other, now_ms),
        }
        Ok(())
    }

    /// Apply one batch of the offsets partition being loaded (in log order; `in_partition` selects that partition's
    /// groups): a control batch is a marker, a transactional batch holds pending offsets, any other is applied as
    /// `load_record`. Returns the records that could not be decoded (offset, error); they are skipped.
    pub fn load_batch(&mut self, batch: &DecodedBatch, in_partition: impl FnMut(&str) -> bool, now_ms: i64) -> Vec<(i64, RecordError)> {
        let mut bad = Vec::new();
        if let Some(marker) = batch.marker {
            self.replay_marker(batch.producer_id, marker.commit, in_partition, now_ms);
            return bad;
        }
        for (key, value, offset) in &batch.records {
            let r = if batch.transactional {
                self.load_txn_record(key, value.as_deref(), batch.producer_id, now_ms)
            } else {
                self.load_record(key, value.as_deref(), now_ms)
            };
            if let Err(e) = r {
                bad.push((*offset, e));
            }
        }
        bad
    }

    /// Whether a transaction has an offset commit pending for the partition (KIP-447's unstable offsets).
    pub fn has_pending_txn_offsets(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.txn.has(group_id, &(topic.to_string(), partition))
    }

    /// The producers with offset commits pending in the group (replicated, waiting for their marker).
    pub fn open_transactions(&self, group_id: &str) -> Vec<i64> {
        self.txn.producers_of(group_id)
    }
}

/// The classic group's `validateOffsetCommit` for a transactional commit (the group exists).
fn validate_txn_commit(group: &Group, req: &TxnOffsetCommitRequest) -> ErrorCode {
    if req.generation_id < 0 && group.state == GroupState::Empty {
        return None;
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        if let Some(instance) = req.group_instance_id.as_deref() {
            match group.static_member_id(instance) {
                None => return Some(ResponseError::UnknownMemberId),
                Some(known) if known != req.member_id => return Some(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !group.has_member(&req.member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
    }
    None
}
