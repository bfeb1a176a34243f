//! [`GroupCoordinator`]: all groups, request entry points, timers, replay.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::group::{Ctx, Group};
use super::record::{GroupRecord, LogRecord};
use super::txn_offsets::TxnOffsets;
use super::types::*;
use super::GroupConfig;

/// Owns every group this broker coordinates. Not thread-safe by itself: the caller serialises
/// calls (one mutex, or one task owning it).
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    pub(super) groups: BTreeMap<String, Group>,
    next_ticket: u64,
    /// The last commit id handed out: to commits (`commit_offsets`, `commit_txn_offsets`) and, in log order, to the
    /// offsets loaded, so that a later commit id is a later position in the log (Kafka compares record offsets to
    /// decide between a transactional commit and a plain one).
    pub(super) last_commit: u64,
    /// No timer of any group is due before this; `tick` returns at once until then. Lowered
    /// whenever a call may have set an earlier deadline, recomputed exactly by a due tick.
    next_deadline: i64,
    /// Transactional offset commits waiting for their transaction's marker.
    pub(super) txn: TxnOffsets,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            next_ticket: 0,
            last_commit: 0,
            next_deadline: i64::MAX,
            txn: TxnOffsets::default(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Run `f` on group `group_id` (which must exist) with a context, then note its deadline.
    pub(super) fn with_group<R>(
        &mut self,
        group_id: &str,
        now: i64,
        fx: &mut Vec<Effect>,
        f: impl FnOnce(&mut Group, &mut Ctx) -> R,
    ) -> Option<R> {
        let group = self.groups.get_mut(group_id)?;
        let mut ctx = Ctx { now, config: &self.config, next_ticket: &mut self.next_ticket, fx };
        let r = f(group, &mut ctx);
        if let Some(d) = group.next_deadline() {
            self.next_deadline = self.next_deadline.min(d);
        }
        Some(r)
    }

    pub fn join_group(&mut self, req: JoinRequest, now_ms: i64) -> (JoinOutcome, Vec<Effect>) {
        let mut fx = Vec::new();
        if req.group_id.is_empty() {
            return (JoinOutcome::Ready(JoinResponse::error(ResponseError::InvalidGroupId, &req.member_id)), fx);
        }
        if req.session_timeout_ms < self.config.group_min_session_timeout_ms
            || req.session_timeout_ms > self.config.group_max_session_timeout_ms
        {
            return (JoinOutcome::Ready(JoinResponse::error(ResponseError::InvalidSessionTimeout, &req.member_id)), fx);
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return (JoinOutcome::Ready(JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id)), fx);
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let group_id = req.group_id.clone();
        let member_id = req.member_id.clone();
        let out = self
            .with_group(&group_id, now_ms, &mut fx, |g, ctx| g.join(req, ctx))
            .unwrap_or_else(|| JoinOutcome::Ready(JoinResponse::error(ResponseError::UnknownServerError, &member_id)));
        (out, fx)
    }

    pub fn sync_group(&mut self, req: SyncRequest, now_ms: i64) -> (SyncOutcome, Vec<Effect>) {
        let mut fx = Vec::new();
        let group_id = req.group_id.clone();
        let out = if group_id.is_empty() {
            SyncOutcome::Ready(SyncResponse::error(ResponseError::InvalidGroupId))
        } else {
            self.with_group(&group_id, now_ms, &mut fx, |g, ctx| g.sync(req, ctx))
                .unwrap_or(SyncOutcome::Ready(SyncResponse::error(ResponseError::UnknownMemberId)))
        };
        (out, fx)
    }

    /// The caller could not append a `PersistGroup` record for `generation`: see
    /// `Group::assignment_not_stored`.
    pub fn assignment_not_stored(&mut self, group_id: &str, generation: i32, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.with_group(group_id, now_ms, &mut fx, |g, ctx| g.assignment_not_stored(generation, ctx));
        fx
    }

    /// Heartbeats never complete parked requests, so there are no effects.
    pub fn heartbeat(&mut self, req: HeartbeatRequest, now_ms: i64) -> ErrorCode {
        if req.group_id.is_empty() {
            return Some(ResponseError::InvalidGroupId);
        }
        let mut fx = Vec::new();
        let r = self
            .with_group(&req.group_id, now_ms, &mut fx, |g, ctx| g.heartbeat(&req, ctx))
            .unwrap_or(Some(ResponseError::UnknownMemberId));
        debug_assert!(fx.is_empty());
        r
    }

    pub fn leave_group(
        &mut self,
        group_id: &str,
        members: Vec<LeaveMember>,
        now_ms: i64,
    ) -> (LeaveResponse, Vec<Effect>) {
        let mut fx = Vec::new();
        if group_id.is_empty() {
            return (LeaveResponse { error: Some(ResponseError::InvalidGroupId), members: Vec::new() }, fx);
        }
        let mut results = Vec::with_capacity(members.len());
        for m in members {
            let error = self
                .with_group(group_id, now_ms, &mut fx, |g, ctx| {
                    g.leave(&m.member_id, m.group_instance_id.as_deref(), ctx)
                })
                .unwrap_or(Some(ResponseError::UnknownMemberId));
            results.push(LeaveMemberResult { member_id: m.member_id, group_instance_id: m.group_instance_id, error });
        }
        (LeaveResponse { error: None, members: results }, fx)
    }

    /// Session expiry, rebalance timeouts, the initial rebalance delay, pending member ids.
    /// Call it periodically (e.g. every 100-500 ms) and whenever convenient; cheap when nothing
    /// is due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if now_ms < self.next_deadline {
            return fx;
        }
        let mut next = i64::MAX;
        let mut ctx = Ctx { now: now_ms, config: &self.config, next_ticket: &mut self.next_ticket, fx: &mut fx };
        for group in self.groups.values_mut() {
            if group.next_deadline().is_some_and(|d| d <= now_ms) {
                group.tick(&mut ctx);
            }
            if let Some(d) = group.next_deadline() {
                next = next.min(d);
            }
        }
        self.next_deadline = next;
        fx
    }

    /// The earliest time `tick` has work (`i64::MAX` if none); a caller may sleep until then.
    pub fn next_deadline(&self) -> i64 {
        self.next_deadline
    }

    // ---------------------------------------------------------------- admin

    /// ListGroups; an empty `states` filter lists every group.
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DescribeGroups for one group; an unknown group is reported Dead with no error (as Kafka).
    pub fn describe_group(&self, group_id: &str) -> DescribedGroup {
        if group_id.is_empty() {
            return DescribedGroup {
                error: Some(ResponseError::InvalidGroupId),
                group_id: String::new(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        }
        match self.groups.get(group_id) {
            Some(g) => g.describe(),
            None => DescribedGroup {
                error: None,
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups: only Empty groups; their offsets and metadata are tombstoned.
    pub fn delete_groups(&mut self, group_ids: &[String]) -> (Vec<(String, ErrorCode)>, Vec<Effect>) {
        let mut fx = Vec::new();
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let error = match self.groups.get(id) {
                _ if id.is_empty() => Some(ResponseError::InvalidGroupId),
                None => Some(ResponseError::GroupIdNotFound),
                Some(g) if g.state != GroupState::Empty => Some(ResponseError::NonEmptyGroup),
                Some(_) => {
                    if let Some(g) = self.groups.remove(id) {
                        // Pending MEMBER_ID_REQUIRED ids of an Empty group are simply forgotten:
                        // their rejoin gets UNKNOWN_MEMBER_ID and the client starts over. Pending
                        // transactional offsets are tombstoned too (Kafka's `deleteAllOffsets`), so that
                        // a later commit marker brings nothing back.
                        let mut partitions: BTreeSet<(String, i32)> = g.offsets.into_keys().collect();
                        partitions.extend(self.txn.remove_group(id));
                        if !partitions.is_empty() {
                            fx.push(Effect::DeleteOffsets { group_id: id.clone(), partitions: partitions.into_iter().collect() });
                        }
                        fx.push(Effect::DeleteGroup { group_id: id.clone() });
                    }
                    None
                }
            };
            results.push((id.clone(), error));
        }
        (results, fx)
    }

    pub fn snapshot(&self, group_id: &str) -> Option<GroupSnapshot> {
        self.groups.get(group_id).map(Group::snapshot)
    }

    /// The metadata record the group would persist now.
    pub fn group_record(&self, group_id: &str) -> Option<GroupRecord> {
        self.groups.get(group_id).map(Group::record)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    // ---------------------------------------------------------------- replay

    /// Apply one record read back from `__consumer_offsets` (in log order), of a non-transactional batch (see
    /// `load_batch` for all batches). `now_ms` starts the sessions of loaded members.
    pub fn load(&mut self, record: LogRecord, now_ms: i64) {
        match record {
            LogRecord::Group(r) => {
                let id = r.group_id.clone();
                let g = self.groups.entry(id.clone()).or_insert_with(|| Group::new(&id, now_ms));
                g.load_record(r, now_ms);
                if let Some(d) = g.next_deadline() {
                    self.next_deadline = self.next_deadline.min(d);
                }
            }
            LogRecord::GroupTombstone { group_id } => {
                self.groups.remove(&group_id);
                self.txn.remove_group(&group_id);
            }
            LogRecord::Offset(o) => {
                self.last_commit += 1;
                let commit = self.last_commit;
                let g = self.groups.entry(o.group_id.clone()).or_insert_with(|| Group::new(&o.group_id, now_ms));
                g.offsets.insert(
                    (o.topic, o.partition),
                    super::group::StoredOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_timestamp_ms: o.commit_timestamp_ms,
                        commit,
                    },
                );
            }
            LogRecord::OffsetTombstone { group_id, topic, partition } => {
                let key = (topic, partition);
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.offsets.remove(&key);
                }
                // A tombstone also drops the partition's pending transactional commits (Kafka's replay).
                self.txn.remove_partition(&group_id, &key);
            }
        }
    }

    /// Decode and apply one record as read from the log (`value` is `None` for a tombstone).
    pub fn load_record(&mut self, key: &[u8], value: Option<&[u8]>, now_ms: i64) -> Result<(), super::RecordError> {
        self.load(LogRecord::decode(key, value)?, now_ms);
        Ok(())
    }

    /// Forgets the groups `unload` selects, with their pending transactional offsets: their offsets partition is
    /// coordinated elsewhere now (or is about to be loaded afresh). Returns the tickets of their parked JoinGroup
    /// and SyncGroup requests, which the caller answers with NOT_COORDINATOR.
    pub fn unload(&mut self, mut unload: impl FnMut(&str) -> bool) -> (Vec<Ticket>, Vec<Ticket>) {
        let (mut joins, mut syncs) = (Vec::new(), Vec::new());
        self.txn.retain_groups(|id| !unload(id));
        self.groups.retain(|id, g| {
            if !unload(id) {
                return true;
            }
            for m in &g.members {
                joins.extend(m.join_ticket);
                syncs.extend(m.sync_ticket);
            }
            false
        });
        (joins, syncs)
    }

    /// Rebuild a coordinator from the log, in order.
    pub fn replay(config: GroupConfig, records: impl IntoIterator<Item = LogRecord>, now_ms: i64) -> Self {
        let mut c = GroupCoordinator::new(config);
        for r in records {
            c.load(r, now_ms);
        }
        c
    }
}

impl Effect {
    /// The producer whose transactional batch must hold this effect's records ([`Effect::PersistTxnOffsets`]);
    /// `None`: a plain batch.
    pub fn txn_producer(&self) -> Option<(i64, i16)> {
        match self {
            Effect::PersistTxnOffsets { producer_id, producer_epoch, .. } => Some((*producer_id, *producer_epoch)),
            _ => None,
        }
    }

    /// The records a persistence effect asks to append, in order (none for completions). Those of
    /// [`Effect::PersistTxnOffsets`] belong in a transactional batch of their own ([`Effect::txn_producer`]).
    pub fn log_records(&self) -> Vec<LogRecord> {
        match self {
            Effect::CompleteJoin { .. } | Effect::CompleteSync { .. } => Vec::new(),
            Effect::PersistGroup { record, .. } => vec![LogRecord::Group(record.clone())],
            Effect::PersistOffsets { offsets, .. } | Effect::PersistTxnOffsets { offsets, .. } => {
                offsets.iter().cloned().map(LogRecord::Offset).collect()
            }
            Effect::DeleteGroup { group_id } => vec![LogRecord::GroupTombstone { group_id: group_id.clone() }],
            Effect::DeleteOffsets { group_id, partitions } => partitions
                .iter()
                .map(|(topic, partition)| LogRecord::OffsetTombstone {
                    group_id: group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect(),
        }
    }
}
