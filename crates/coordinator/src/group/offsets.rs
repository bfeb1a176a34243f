//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, retention.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use super::coordinator::GroupCoordinator;
use super::group::{Group, StoredOffset};
use super::record::OffsetRecord;
use super::types::*;

impl GroupCoordinator {
    /// OffsetCommit. The group's membership is checked as Kafka's `doCommitOffsets`; a commit
    /// with generation -1 to an Empty (or unknown, then created) group is a standalone consumer.
    pub fn commit_offsets(&mut self, req: OffsetCommitRequest, now_ms: i64) -> (Vec<PartitionResult>, Vec<Effect>) {
        let mut fx = Vec::new();
        let all = |offsets: &[CommitOffset], error: ErrorCode| {
            offsets
                .iter()
                .map(|o| PartitionResult { topic: o.topic.clone(), partition: o.partition, error })
                .collect::<Vec<_>>()
        };
        if req.group_id.is_empty() {
            return (all(&req.offsets, Some(ResponseError::InvalidGroupId)), fx);
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A member of a generation this coordinator never saw.
                return (all(&req.offsets, Some(ResponseError::IllegalGeneration)), fx);
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let max_metadata = self.config.offset_metadata_max_bytes;
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return (all(&req.offsets, Some(ResponseError::UnknownServerError)), fx);
        };
        let check = if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            Some(ResponseError::FencedInstanceId)
        } else if req.generation_id < 0 && group.state == GroupState::Empty {
            None
        } else if !group.has_member(&req.member_id) {
            Some(ResponseError::UnknownMemberId)
        } else if req.generation_id != group.generation_id {
            Some(ResponseError::IllegalGeneration)
        } else {
            match group.state {
                // Commits during PreparingRebalance are allowed: the member learns about the
                // rebalance from its next heartbeat (Kafka's comment).
                GroupState::Stable | GroupState::PreparingRebalance => None,
                GroupState::CompletingRebalance => Some(ResponseError::RebalanceInProgress),
                GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            }
        };
        if check.is_some() {
            return (all(&req.offsets, check), fx);
        }
        // A commit is a sign of life, like a heartbeat.
        if let Some(m) = group.members.iter_mut().find(|m| m.id == req.member_id) {
            m.last_heartbeat_ms = now_ms;
        }
        self.last_commit += 1;
        let commit = self.last_commit;
        let (results, records, staged) = stage_offsets(&req.group_id, req.offsets, max_metadata, commit, now_ms);
        if !records.is_empty() {
            group.pending_commits.insert(commit, staged);
            fx.push(Effect::PersistOffsets { group_id: req.group_id, offsets: records, commit });
        }
        (results, fx)
    }

    /// The outcome of a `PersistOffsets` append (replicated, or failed): a replicated commit
    /// becomes what OffsetFetch shows, unless a later commit of the same partition got there
    /// first; a failed one is dropped (its record may still be in the log, and then comes back
    /// on the next load, as on Kafka).
    ///
    /// The same for a `PersistTxnOffsets`: a replicated one stays pending until its marker, a failed one is dropped.
    pub fn offsets_appended(&mut self, group_id: &str, commit: u64, replicated: bool) {
        // Commit ids are unique across plain and transactional commits.
        if self.txn_offsets_appended(commit, replicated) {
            return;
        }
        let Some(group) = self.groups.get_mut(group_id) else { return };
        let Some(staged) = group.pending_commits.remove(&commit) else { return };
        if !replicated {
            return;
        }
        for (key, offset) in staged {
            if group.offsets.get(&key).is_none_or(|current| current.commit < offset.commit) {
                group.offsets.insert(key, offset);
            }
        }
    }

    /// OffsetFetch: the given partitions (-1 where nothing is committed), or with `None` every
    /// committed partition of the group. Transactional commits not yet decided are not shown.
    pub fn fetch_offsets(&self, group_id: &str, partitions: Option<&[(String, i32)]>) -> OffsetFetchResponse {
        self.fetch_offsets_with(group_id, partitions, false)
    }

    /// OffsetFetch with `require_stable` (v7+, KIP-447): a partition with a transactional commit pending answers
    /// UNSTABLE_OFFSET_COMMIT (the consumer retries until the transaction is decided) rather than an offset that
    /// may be about to change; without it, the last committed offset.
    pub fn fetch_offsets_with(&self, group_id: &str, partitions: Option<&[(String, i32)]>, require_stable: bool) -> OffsetFetchResponse {
        if group_id.is_empty() {
            return OffsetFetchResponse { error: Some(ResponseError::InvalidGroupId), partitions: Vec::new() };
        }
        let group = self.groups.get(group_id);
        let fetched = |topic: &str, partition: i32, o: Option<&StoredOffset>| {
            if require_stable && self.has_pending_txn_offsets(group_id, topic, partition) {
                return FetchedOffset {
                    topic: topic.to_string(),
                    partition,
                    error: Some(ResponseError::UnstableOffsetCommit),
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                };
            }
            FetchedOffset {
                topic: topic.to_string(),
                partition,
                error: None,
                offset: o.map_or(-1, |o| o.offset),
                leader_epoch: o.map_or(-1, |o| o.leader_epoch),
                metadata: o.map(|o| o.metadata.clone()).unwrap_or_default(),
            }
        };
        let partitions = match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|(t, p)| fetched(t, *p, group.and_then(|g| g.offsets.get(&(t.clone(), *p)))))
                .collect(),
            None => {
                group.map(|g| g.offsets.iter().map(|((t, p), o)| fetched(t, *p, Some(o))).collect()).unwrap_or_default()
            }
        };
        OffsetFetchResponse { error: None, partitions }
    }

    /// OffsetDelete (KIP-496): refused for topics the group's members are subscribed to.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (OffsetDeleteResponse, Vec<Effect>) {
        let mut fx = Vec::new();
        let top = |error| OffsetDeleteResponse { error: Some(error), partitions: Vec::new() };
        if group_id.is_empty() {
            return (top(ResponseError::InvalidGroupId), fx);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return (top(ResponseError::GroupIdNotFound), fx);
        };
        let subscribed = if group.state == GroupState::Empty {
            Subscribed::Topics(BTreeSet::new())
        } else if group.protocol_type.as_deref() == Some("consumer") {
            consumer_subscriptions(group)
        } else {
            // Kafka only knows the subscriptions of the "consumer" protocol.
            return (top(ResponseError::NonEmptyGroup), fx);
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut deleted = Vec::new();
        for (topic, partition) in partitions {
            let error = if subscribed.contains(topic) {
                Some(ResponseError::GroupSubscribedToTopic)
            } else {
                // A pending transactional commit is tombstoned too (Kafka), so its marker brings nothing back.
                let key = (topic.clone(), *partition);
                let pending = self.txn.has(group_id, &key);
                if group.offsets.remove(&key).is_some() || pending {
                    self.txn.remove_partition(group_id, &key);
                    deleted.push(key);
                }
                None
            };
            results.push(PartitionResult { topic: topic.clone(), partition: *partition, error });
        }
        if !deleted.is_empty() {
            fx.push(Effect::DeleteOffsets { group_id: group_id.to_string(), partitions: deleted });
        }
        (OffsetDeleteResponse { error: None, partitions: results }, fx)
    }

    /// Offset retention, to be called periodically (Kafka: every
    /// `offsets.retention.check.interval.ms`, default 10 minutes).
    ///
    /// Only groups without members lose offsets. A group that had members (it has a protocol
    /// type) keeps an offset for `offsets.retention.ms` after the later of becoming Empty and the
    /// offset's commit; a standalone group (never had members) measures from each commit. Kafka
    /// measures the first case from becoming Empty alone, which can drop a standalone commit made
    /// to a long-empty group right away; taking the later of the two avoids that. Offsets of
    /// Stable groups for topics no longer subscribed are not expired (Kafka does; not done here).
    /// An Empty group left with no offsets is deleted, as Kafka's cleanup does.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<Effect> {
        self.expire_offsets_except(now_ms, |_| false)
    }

    /// `expire_offsets`, keeping every offset of the groups `in_use` names (a KIP-848 consumer
    /// group with members, whose offsets this coordinator stores: Kafka expires them only once
    /// the group is empty).
    pub fn expire_offsets_except(&mut self, now_ms: i64, in_use: impl Fn(&str) -> bool) -> Vec<Effect> {
        let retention = self.config.offsets_retention_ms;
        let mut fx = Vec::new();
        let mut dead = Vec::new();
        for g in self.groups.values_mut() {
            if g.state != GroupState::Empty || in_use(&g.id) {
                continue;
            }
            let empty_since = if g.protocol_type.is_some() { g.state_timestamp_ms } else { i64::MIN };
            // An offset with a transactional commit pending is kept until the transaction is decided (Kafka).
            let txn = &self.txn;
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, o)| now_ms.saturating_sub(o.commit_timestamp_ms.max(empty_since)) >= retention)
                .filter(|(k, _)| !txn.has(&g.id, k))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &expired {
                g.offsets.remove(k);
            }
            if !expired.is_empty() {
                fx.push(Effect::DeleteOffsets { group_id: g.id.clone(), partitions: expired });
            }
            // Nor is a group with open transactions removed.
            if g.offsets.is_empty() && g.pending.is_empty() && g.pending_commits.is_empty() && !txn.has_group(&g.id) {
                dead.push(g.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
            fx.push(Effect::DeleteGroup { group_id: id });
        }
        fx
    }
}

enum Subscribed {
    Topics(BTreeSet<String>),
    /// Some member's metadata could not be parsed: treat every topic as subscribed, because
    /// deleting the offsets of a topic a member consumes would rewind it.
    Unknown,
}

impl Subscribed {
    fn contains(&self, topic: &str) -> bool {
        match self {
            Subscribed::Topics(t) => t.contains(topic),
            Subscribed::Unknown => true,
        }
    }
}

/// The union of the topics in the members' ConsumerProtocolSubscription metadata (every
/// protocol they offered, so a member whose preferred protocol was not chosen still counts).
fn consumer_subscriptions(group: &Group) -> Subscribed {
    let mut topics = BTreeSet::new();
    for m in &group.members {
        for (_, metadata) in &m.protocols {
            match parse_subscription_topics(metadata) {
                Some(ts) => topics.extend(ts),
                None => return Subscribed::Unknown,
            }
        }
    }
    Subscribed::Topics(topics)
}

/// ConsumerProtocolSubscription starts, in every version (0-3, none flexible), with
/// `version: int16, topics: [string]` (int32 count, int16-length strings).
pub(super) fn parse_subscription_topics(b: &[u8]) -> Option<Vec<String>> {
    let rest = b.get(2..)?;
    let count = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let mut rest = rest.get(4..)?;
    if count < 0 || count as usize > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = rest.get(2..2 + len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        rest = rest.get(2 + len..)?;
    }
    Some(topics)
}

/// The partitions of a commit (plain or transactional) to write: each one's result, its log record
/// and the offset to keep once the record is replicated. A partition whose metadata is over
/// `offset.metadata.max.bytes` is refused alone (OFFSET_METADATA_TOO_LARGE), as on Kafka.
pub(super) fn stage_offsets(
    group_id: &str,
    offsets: Vec<CommitOffset>,
    max_metadata: usize,
    commit: u64,
    now_ms: i64,
) -> (Vec<PartitionResult>, Vec<OffsetRecord>, Vec<((String, i32), StoredOffset)>) {
    let mut results = Vec::with_capacity(offsets.len());
    let mut records = Vec::new();
    let mut staged = Vec::new();
    for o in offsets {
        if o.metadata.len() > max_metadata {
            results.push(PartitionResult { topic: o.topic, partition: o.partition, error: Some(ResponseError::OffsetMetadataTooLarge) });
            continue;
        }
        let commit_timestamp_ms = o.commit_timestamp_ms.unwrap_or(now_ms);
        staged.push((
            (o.topic.clone(), o.partition),
            StoredOffset { offset: o.offset, leader_epoch: o.leader_epoch, metadata: o.metadata.clone(), commit_timestamp_ms, commit },
        ));
        records.push(OffsetRecord {
            group_id: group_id.to_string(),
            topic: o.topic.clone(),
            partition: o.partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata,
            commit_timestamp_ms,
        });
        results.push(PartitionResult { topic: o.topic, partition: o.partition, error: None });
    }
    (results, records, staged)
}
