//! The share-group coordinator: membership (ShareGroupHeartbeat), the assignment, share sessions
//! (ShareFetch / ShareAcknowledge epochs) and the share partitions of every group it coordinates.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::partition::{AckType, Acquired, Limits, LogBatch, SharePartition, Snapshot};
use super::member_record::{self, MemberValue, KEY_SHARE_CURRENT_ASSIGNMENT, KEY_SHARE_MEMBER_METADATA, KEY_SHARE_METADATA};
use super::record::{self, RecordError};
use super::state::StateEpochs;
use super::{AutoOffsetReset, ShareGroupConfig};
use crate::consumer_group::{Assignment, RawRecord, Topics};

/// One share partition: (group id, topic id, partition).
pub type ShareKey = (String, Uuid, i32);

/// ShareGroupHeartbeat (API 76), decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the previous heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareHeartbeatResponse {
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed, and on joining.
    pub assignment: Option<Assignment>,
}

impl ShareHeartbeatResponse {
    pub fn error(error: ResponseError, message: impl Into<String>) -> Self {
        ShareHeartbeatResponse { error: Some(error), error_message: Some(message.into()), ..Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub assignment: Assignment,
    session_deadline: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ShareMember>,
    /// The subscribed topics as last assigned: name → (id, partitions).
    subscribed: BTreeMap<String, (Uuid, i32)>,
    /// Replayed from the log, which does not hold `subscribed`: the first heartbeat takes it
    /// from the topics, bumping the epoch only if the assignment they give differs.
    replayed: bool,
}

/// ShareGroupDescribe's view of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareGroup {
    pub group_id: String,
    /// "Empty" or "Stable" (Kafka's share-group states; a share group never reconciles).
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ShareMember>,
}

/// A member removed by its session timeout, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredMember {
    pub group_id: String,
    pub member_id: String,
}

/// A share session: the partitions a member fetches from one broker, and the epoch its next
/// ShareFetch / ShareAcknowledge must carry (Kafka's ShareSessionCache).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShareSession {
    epoch: i32,
    partitions: BTreeSet<(Uuid, i32)>,
    /// When it was last used: one whose member left the group without closing it is dropped a
    /// session timeout later, its records released.
    last_used: i64,
}

/// Share-session epochs: 0 opens a session, -1 closes it.
pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

#[derive(Debug, Default)]
pub struct ShareGroupCoordinator {
    config: ShareGroupConfig,
    groups: BTreeMap<String, Group>,
    partitions: BTreeMap<ShareKey, SharePartition>,
    sessions: BTreeMap<(String, String), ShareSession>,
    /// Share partitions changed since their state was last taken for the log.
    dirty: BTreeSet<ShareKey>,
    /// Share partitions deleted since then: their records become tombstones.
    deleted: BTreeSet<ShareKey>,
    /// As the state's owner: each share partition's epochs (see [`StateEpochs`]); kept for a
    /// deleted state too, until a restart, so a leader holding it from before is fenced.
    epochs: BTreeMap<ShareKey, StateEpochs>,
    /// Groups whose epoch changed (or that were deleted) since their record was last taken.
    groups_dirty: BTreeSet<String>,
    /// Members that changed (or left) since their records were last taken.
    members_dirty: BTreeSet<(String, String)>,
    /// The settings of groups that have group configs (`set_group_config`); others use `config`.
    group_configs: BTreeMap<String, ShareGroupConfig>,
}

impl ShareGroupCoordinator {
    pub fn new(config: ShareGroupConfig) -> Self {
        ShareGroupCoordinator { config, ..Default::default() }
    }

    pub fn config(&self) -> &ShareGroupConfig {
        &self.config
    }

    fn limits(&self) -> Limits {
        self.config.limits()
    }

    /// Group `group_id`'s own settings (the broker's with its group configs over them; `None`:
    /// the broker's), as the caller read them from its metadata; later heartbeats, fetches and
    /// acquisitions of the group use them.
    pub fn set_group_config(&mut self, group_id: &str, config: Option<ShareGroupConfig>) {
        match config {
            Some(c) => {
                self.group_configs.insert(group_id.to_string(), c);
            }
            None => {
                self.group_configs.remove(group_id);
            }
        }
    }

    /// How long a share session of group `group_id` may stay unused: its session timeout.
    fn idle_ms(&self, group_id: &str) -> i64 {
        i64::from(self.config_for(group_id).session_timeout_ms)
    }

    /// The settings group `group_id` runs with.
    pub fn config_for(&self, group_id: &str) -> &ShareGroupConfig {
        self.group_configs.get(group_id).unwrap_or(&self.config)
    }

    /// Whether `group_id` is a share group here (it has members, or share-partition state).
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id) || self.partitions.keys().any(|(g, _, _)| g == group_id)
    }

    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups.get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    /// ShareGroupHeartbeat: join (epoch 0), heartbeat, or leave (epoch -1). Kafka's checks and
    /// fencing (`GroupMetadataManager.shareGroupHeartbeat`). The assignment comes at once: in a
    /// share group a partition may be consumed by several members, so nothing is revoked first.
    pub fn heartbeat(&mut self, req: ShareHeartbeat, topics: &Topics, now_ms: i64) -> ShareHeartbeatResponse {
        if req.group_id.is_empty() {
            return ShareHeartbeatResponse::error(ResponseError::InvalidRequest, "GroupId can't be empty.");
        }
        if req.rack_id.as_deref() == Some("") {
            return ShareHeartbeatResponse::error(ResponseError::InvalidRequest, "RackId can't be empty.");
        }
        if req.member_epoch > 0 || req.member_epoch == -1 {
            if req.member_id.is_empty() {
                return ShareHeartbeatResponse::error(ResponseError::InvalidRequest, "MemberId can't be empty.");
            }
        } else if req.member_epoch == 0 {
            if req.subscribed_topic_names.as_ref().is_none_or(|n| n.is_empty()) {
                return ShareHeartbeatResponse::error(ResponseError::InvalidRequest, "SubscribedTopicNames must be set in first request.");
            }
        } else {
            return ShareHeartbeatResponse::error(ResponseError::InvalidRequest, "MemberEpoch is invalid.");
        }
        if req.member_epoch == -1 {
            let known = self.groups.get(&req.group_id).is_some_and(|g| g.members.contains_key(&req.member_id));
            if !known {
                return ShareHeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Member {} is not a member of group {}.", req.member_id, req.group_id));
            }
            // Its share sessions stay: the client closes them itself (ShareAcknowledge or ShareFetch
            // at epoch -1, with its last acknowledgements), possibly after this heartbeat.
            self.remove_member(&req.group_id, &req.member_id, topics, false);
            return ShareHeartbeatResponse { member_id: Some(req.member_id), member_epoch: -1, ..Default::default() };
        }
        if req.member_epoch > 0 && !self.groups.contains_key(&req.group_id) {
            // Membership lives in memory only (see the module's doc): after a restart a member is
            // told to join again.
            return ShareHeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Member {} is not a member of group {}.", req.member_id, req.group_id));
        }
        let config = self.config_for(&req.group_id).clone();
        let group = self.groups.entry(req.group_id.clone()).or_default();
        let member_id = if req.member_id.is_empty() { Uuid::new_v4().to_string() } else { req.member_id.clone() };
        let existing = group.members.get(&member_id).cloned();
        let before = match existing {
            Some(m) => {
                if req.member_epoch > m.member_epoch || (req.member_epoch < m.member_epoch && req.member_epoch != m.previous_epoch) {
                    return ShareHeartbeatResponse::error(
                        ResponseError::FencedMemberEpoch,
                        format!("The share group member has a member epoch ({}) other than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", req.member_epoch, m.member_epoch),
                    );
                }
                Some(m)
            }
            None if req.member_epoch == 0 => {
                if config.max_size.is_some_and(|max| group.members.len() >= max) {
                    return ShareHeartbeatResponse::error(ResponseError::GroupMaxSizeReached, format!("The share group has reached its maximum capacity of {} members.", config.max_size.unwrap_or(0)));
                }
                None
            }
            None => return ShareHeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Member {} is not a member of group {}.", member_id, req.group_id)),
        };
        let mut member = before.clone().unwrap_or(ShareMember {
            member_id: member_id.clone(),
            member_epoch: 0,
            previous_epoch: 0,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: BTreeSet::new(),
            assignment: Assignment::new(),
            session_deadline: 0,
        });
        let mut bump = before.is_none();
        if let Some(r) = req.rack_id {
            member.rack_id = Some(r);
        }
        if let Some(names) = req.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            bump |= names != member.subscribed_topic_names;
            member.subscribed_topic_names = names;
        }
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_deadline = now_ms.saturating_add(i64::from(config.session_timeout_ms));
        group.members.insert(member_id.clone(), member);
        if std::mem::take(&mut group.replayed) {
            let now = group.subscribed_now(topics);
            let target = assign(&group.members, &now);
            if group.members.iter().all(|(id, m)| target.get(id).cloned().unwrap_or_default() == m.assignment) {
                group.subscribed = now;
            }
        }
        let bumped = bump || group.subscribed_now(topics) != group.subscribed;
        if bumped {
            group.bump(topics);
        }
        let Some(m) = group.members.get_mut(&member_id) else {
            return ShareHeartbeatResponse::error(ResponseError::UnknownServerError, "member lost");
        };
        if m.member_epoch != group.assignment_epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = group.assignment_epoch;
        }
        // A new epoch comes with its assignment (a member replayed after a coordinator move may
        // hold a newer assignment than it was told).
        let changed = before.as_ref().is_none_or(|b| b.assignment != m.assignment || b.member_epoch != m.member_epoch);
        let stored_changed = before.as_ref().is_none_or(|b| !b.same_record(m));
        let m = m.clone();
        if bumped {
            self.groups_dirty.insert(req.group_id.clone());
            for id in group.members.keys() {
                self.members_dirty.insert((req.group_id.clone(), id.clone()));
            }
        } else if stored_changed {
            self.members_dirty.insert((req.group_id.clone(), member_id.clone()));
        }
        ShareHeartbeatResponse {
            error: None,
            error_message: None,
            member_id: Some(member_id),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: (req.member_epoch == 0 || changed).then(|| m.assignment.clone()),
        }
    }

    /// A member leaves (or expires): the group re-assigns. One that expired is gone: its records
    /// are released and its share sessions closed.
    fn remove_member(&mut self, group_id: &str, member_id: &str, topics: &Topics, expired: bool) {
        if let Some(g) = self.groups.get_mut(group_id) {
            g.members.remove(member_id);
            g.bump(topics);
            self.groups_dirty.insert(group_id.to_string());
            for id in g.members.keys() {
                self.members_dirty.insert((group_id.to_string(), id.clone()));
            }
        }
        self.members_dirty.insert((group_id.to_string(), member_id.to_string()));
        if !expired {
            return;
        }
        self.sessions.remove(&(group_id.to_string(), member_id.to_string()));
        let limits = self.limits();
        for (key, p) in self.partitions.iter_mut().filter(|((g, _, _), _)| g == group_id) {
            if p.release_member(member_id, &limits) {
                self.dirty.insert(key.clone());
            }
        }
    }

    /// Session timeouts (members) and acquisition-lock expiry (records). Returns the members
    /// removed.
    pub fn tick(&mut self, topics: &Topics, now_ms: i64) -> Vec<ExpiredMember> {
        let mut expired = Vec::new();
        for (group_id, g) in &self.groups {
            for m in g.members.values() {
                if m.session_deadline <= now_ms {
                    expired.push(ExpiredMember { group_id: group_id.clone(), member_id: m.member_id.clone() });
                }
            }
        }
        for e in &expired {
            self.remove_member(&e.group_id, &e.member_id, topics, true);
        }
        // Share sessions of members that left the group and never closed them.
        let abandoned: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|((g, m), s)| s.last_used.saturating_add(self.idle_ms(g)) <= now_ms && !self.groups.get(g).is_some_and(|g| g.members.contains_key(m)))
            .map(|(k, _)| k.clone())
            .collect();
        for (g, m) in abandoned {
            self.close_session(&g, &m);
        }
        let limits = self.limits();
        for (key, p) in self.partitions.iter_mut() {
            if p.expire_locks(now_ms, &limits) {
                self.dirty.insert(key.clone());
            }
        }
        expired
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> i64 {
        let sessions = self
            .groups
            .values()
            .flat_map(|g| g.members.values())
            .map(|m| m.session_deadline)
            .chain(self.sessions.iter().map(|((g, _), s)| s.last_used.saturating_add(self.idle_ms(g))))
            .min();
        let locks = self.partitions.values().filter_map(SharePartition::next_lock_expiry).min();
        sessions.into_iter().chain(locks).min().unwrap_or(i64::MAX)
    }

    /// ShareFetch's session handling (Kafka's `SharePartitionManager.newContext`): epoch 0 opens
    /// a new session with `add` (acknowledgements are not allowed then), -1 closes it (only
    /// acknowledgements; nothing is fetched), any other epoch must be the session's and updates
    /// it. Returns the partitions to fetch from.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_session(&mut self, group_id: &str, member_id: &str, epoch: i32, add: &[(Uuid, i32)], forget: &[(Uuid, i32)], has_acks: bool, now_ms: i64) -> Result<Vec<(Uuid, i32)>, ResponseError> {
        let key = (group_id.to_string(), member_id.to_string());
        match epoch {
            INITIAL_EPOCH => {
                if has_acks {
                    return Err(ResponseError::InvalidRequest);
                }
                let partitions: BTreeSet<(Uuid, i32)> = add.iter().copied().collect();
                self.sessions.insert(key, ShareSession { epoch: next_epoch(0), partitions: partitions.clone(), last_used: now_ms });
                Ok(partitions.into_iter().collect())
            }
            FINAL_EPOCH => {
                if !add.is_empty() && !has_acks {
                    return Err(ResponseError::InvalidRequest);
                }
                if !self.sessions.contains_key(&key) {
                    return Err(ResponseError::ShareSessionNotFound);
                }
                Ok(Vec::new())
            }
            e => {
                let s = self.sessions.get_mut(&key).ok_or(ResponseError::ShareSessionNotFound)?;
                if s.epoch != e {
                    return Err(ResponseError::InvalidShareSessionEpoch);
                }
                s.partitions.extend(add.iter().copied());
                for f in forget {
                    s.partitions.remove(f);
                }
                s.epoch = next_epoch(s.epoch);
                s.last_used = now_ms;
                Ok(s.partitions.iter().copied().collect())
            }
        }
    }

    /// Closes a share session (a ShareFetch or ShareAcknowledge at epoch -1, after its
    /// acknowledgements): what the member still holds is released.
    pub fn close_session(&mut self, group_id: &str, member_id: &str) {
        self.sessions.remove(&(group_id.to_string(), member_id.to_string()));
        let limits = self.limits();
        for (key, p) in self.partitions.iter_mut().filter(|((g, _, _), _)| g == group_id) {
            if p.release_member(member_id, &limits) {
                self.dirty.insert(key.clone());
            }
        }
    }

    /// ShareAcknowledge's session check (Kafka's `acknowledgeSessionUpdate`).
    pub fn acknowledge_session(&mut self, group_id: &str, member_id: &str, epoch: i32, now_ms: i64) -> Result<(), ResponseError> {
        if epoch == INITIAL_EPOCH {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        let s = self.sessions.get_mut(&(group_id.to_string(), member_id.to_string())).ok_or(ResponseError::ShareSessionNotFound)?;
        if epoch == FINAL_EPOCH {
            return Ok(());
        }
        if s.epoch != epoch {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        s.epoch = next_epoch(s.epoch);
        s.last_used = now_ms;
        Ok(())
    }

    /// The share partition's state, if it exists.
    pub fn partition(&self, key: &ShareKey) -> Option<&SharePartition> {
        self.partitions.get(key)
    }

    /// Where to read the log for `key`'s next acquisition. A share partition seen for the first
    /// time starts where `share.auto.offset.reset` says (`log_start`, `log_end`); one whose
    /// records the log no longer has moves up to `log_start`.
    pub fn prepare_fetch(&mut self, key: &ShareKey, log_start: i64, log_end: i64, now_ms: i64) -> i64 {
        let reset = self.config_for(&key.0).auto_offset_reset;
        let p = self.partitions.entry(key.clone()).or_insert_with(|| {
            self.dirty.insert(key.clone());
            SharePartition::new(match reset {
                AutoOffsetReset::Earliest => log_start,
                AutoOffsetReset::Latest => log_end,
            })
        });
        if p.log_start_moved(log_start) {
            self.dirty.insert(key.clone());
        }
        p.next_fetch_offset(now_ms)
    }

    /// Acquires records of `batches` for `member_id` (see [`SharePartition::acquire`]).
    pub fn acquire(&mut self, key: &ShareKey, member_id: &str, batches: &[LogBatch], max_records: usize, now_ms: i64) -> Vec<Acquired> {
        // The lock lasts the group's `share.record.lock.duration.ms`.
        let limits = self.config_for(&key.0).limits();
        let Some(p) = self.partitions.get_mut(key) else { return Vec::new() };
        let before = p.snapshot();
        let acquired = p.acquire(member_id, batches, max_records, now_ms, &limits);
        if p.snapshot() != before {
            self.dirty.insert(key.clone());
        }
        acquired
    }

    /// One acknowledgement batch of `member_id` (see [`SharePartition::acknowledge`]). A share
    /// partition never fetched from has nothing acquired: INVALID_RECORD_STATE.
    pub fn acknowledge(&mut self, key: &ShareKey, member_id: &str, first: i64, last: i64, types: &[i8], now_ms: i64) -> Result<(), ResponseError> {
        let types: Vec<AckType> = types.iter().map(|t| AckType::from_wire(*t)).collect::<Option<_>>().ok_or(ResponseError::InvalidRequest)?;
        let limits = self.limits();
        let p = self.partitions.get_mut(key).ok_or(ResponseError::InvalidRecordState)?;
        p.acknowledge(member_id, first, last, &types, now_ms, &limits)?;
        self.dirty.insert(key.clone());
        Ok(())
    }

    /// The records to append for the share partitions changed since the last call: each one's
    /// whole state (a snapshot), keyed so that compaction keeps only the latest.
    pub fn take_records(&mut self) -> Vec<(String, RawRecord)> {
        let dirty = std::mem::take(&mut self.dirty);
        let deleted = std::mem::take(&mut self.deleted);
        let mut out: Vec<(String, RawRecord)> = deleted.into_iter().map(|key| (key.0.clone(), (record::encode_key(&key), None))).collect();
        out.extend(dirty.into_iter().filter_map(|key| {
            let p = self.partitions.get(&key)?;
            let epochs = self.epochs.get(&key).copied().unwrap_or_default();
            Some((key.0.clone(), record::encode(&key, &p.snapshot(), epochs)))
        }));
        for g in std::mem::take(&mut self.groups_dirty) {
            let value = self.groups.get(&g).map(|group| member_record::encode(&MemberValue::Group { epoch: group.group_epoch }));
            out.push((g.clone(), (member_record::key(KEY_SHARE_METADATA, &g, None), value)));
        }
        for (g, m) in std::mem::take(&mut self.members_dirty) {
            let member = self.groups.get(&g).and_then(|group| group.members.get(&m));
            let (metadata, assignment) = match member {
                Some(mm) => (
                    Some(member_record::encode(&MemberValue::Member {
                        rack_id: mm.rack_id.clone(),
                        client_id: mm.client_id.clone(),
                        client_host: mm.client_host.clone(),
                        subscribed_topic_names: mm.subscribed_topic_names.iter().cloned().collect(),
                    })),
                    Some(member_record::encode(&MemberValue::Assignment { member_epoch: mm.member_epoch, previous_member_epoch: mm.previous_epoch, assigned: mm.assignment.clone() })),
                ),
                None => (None, None),
            };
            out.push((g.clone(), (member_record::key(KEY_SHARE_MEMBER_METADATA, &g, Some(&m)), metadata)));
            out.push((g.clone(), (member_record::key(KEY_SHARE_CURRENT_ASSIGNMENT, &g, Some(&m)), assignment)));
        }
        out
    }

    /// AlterShareGroupOffsets of one partition: the share partition starts again at
    /// `start_offset`, nothing in flight. Only while the group has no members (NON_EMPTY_GROUP).
    pub fn alter_start_offset(&mut self, key: &ShareKey, start_offset: i64) -> Result<(), ResponseError> {
        if self.has_members(&key.0) {
            return Err(ResponseError::NonEmptyGroup);
        }
        if start_offset < 0 {
            return Err(ResponseError::InvalidRequest);
        }
        self.partitions.insert(key.clone(), SharePartition::new(start_offset));
        self.deleted.remove(key);
        self.dirty.insert(key.clone());
        self.bump_state_epoch(key);
        Ok(())
    }

    /// DeleteShareGroupOffsets of one topic, or (`None`) DeleteGroups of the whole group: the
    /// share partitions' state is dropped (tombstoned); the next fetch starts where
    /// `share.auto.offset.reset` says. Only while the group has no members (NON_EMPTY_GROUP).
    pub fn delete_state(&mut self, group_id: &str, topic: Option<Uuid>) -> Result<(), ResponseError> {
        if self.has_members(group_id) {
            return Err(ResponseError::NonEmptyGroup);
        }
        let keys: Vec<ShareKey> = self.partitions.keys().filter(|(g, t, _)| g == group_id && topic.is_none_or(|id| *t == id)).cloned().collect();
        for key in keys {
            self.partitions.remove(&key);
            self.dirty.remove(&key);
            self.bump_state_epoch(&key);
            self.deleted.insert(key);
        }
        if topic.is_none() {
            if self.groups.remove(group_id).is_some() {
                self.groups_dirty.insert(group_id.to_string());
            }
            self.sessions.retain(|(g, _), _| g != group_id);
        }
        Ok(())
    }

    /// Replays one share-state record from the offsets topic (the last one of a key wins).
    pub fn load_record(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        let k = record::decode_key(key)?;
        match value {
            None => {
                self.partitions.remove(&k);
                self.epochs.remove(&k);
            }
            Some(v) => {
                let (s, epochs) = record::decode_value(v)?;
                self.partitions.insert(k.clone(), SharePartition::from_snapshot(&s));
                self.epochs.insert(k, epochs);
            }
        }
        Ok(())
    }

    /// Replays one of a share group's membership records (`member_record.rs`; the last one of a
    /// key wins). A replayed member's session starts now: one that is gone expires a session
    /// timeout later.
    pub fn load_member_record(&mut self, key: &[u8], value: Option<&[u8]>, now_ms: i64) -> Result<(), RecordError> {
        let map = |e: crate::group::RecordError| RecordError::Member(e.to_string());
        let k = crate::consumer_group::record::Key::decode(key).map_err(map)?;
        let value = value.map(|v| member_record::decode(k.kind, v)).transpose().map_err(map)?;
        let deadline = now_ms.saturating_add(i64::from(self.config_for(&k.group_id).session_timeout_ms));
        match (k.member_id, value) {
            (None, Some(MemberValue::Group { epoch })) => {
                let g = self.groups.entry(k.group_id).or_default();
                g.group_epoch = epoch;
                g.assignment_epoch = epoch;
                g.replayed = true;
            }
            (None, None) => {
                self.groups.remove(&k.group_id);
            }
            (None, Some(_)) => return Err(RecordError::Invalid("a member record under a group key")),
            (Some(m), None) => {
                if let Some(g) = self.groups.get_mut(&k.group_id) {
                    g.members.remove(&m);
                }
            }
            (Some(m), Some(v)) => {
                let g = self.groups.entry(k.group_id).or_default();
                g.replayed = true;
                let member = g.members.entry(m.clone()).or_insert_with(|| ShareMember {
                    member_id: m,
                    member_epoch: 0,
                    previous_epoch: 0,
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    subscribed_topic_names: BTreeSet::new(),
                    assignment: Assignment::new(),
                    session_deadline: deadline,
                });
                member.session_deadline = deadline;
                match v {
                    MemberValue::Member { rack_id, client_id, client_host, subscribed_topic_names } => {
                        member.rack_id = rack_id;
                        member.client_id = client_id;
                        member.client_host = client_host;
                        member.subscribed_topic_names = subscribed_topic_names.into_iter().collect();
                    }
                    MemberValue::Assignment { member_epoch, previous_member_epoch, assigned } => {
                        member.member_epoch = member_epoch;
                        member.previous_epoch = previous_member_epoch;
                        member.assignment = assigned;
                    }
                    MemberValue::Group { .. } => return Err(RecordError::Invalid("a group record under a member key")),
                }
            }
        }
        Ok(())
    }

    /// Forgets the groups `unload` names (their offsets partition moved away).
    pub fn unload(&mut self, mut unload: impl FnMut(&str) -> bool) {
        self.groups.retain(|id, _| !unload(id));
        self.partitions.retain(|(g, _, _), _| !unload(g));
        self.sessions.retain(|(g, _), _| !unload(g));
        self.dirty.retain(|(g, _, _)| !unload(g));
        self.deleted.retain(|(g, _, _)| !unload(g));
        self.epochs.retain(|(g, _, _), _| !unload(g));
        self.groups_dirty.retain(|g| !unload(g));
        self.members_dirty.retain(|(g, _)| !unload(g));
    }

    fn bump_state_epoch(&mut self, key: &ShareKey) {
        let e = self.epochs.entry(key.clone()).or_default();
        e.state_epoch = e.state_epoch.wrapping_add(1).max(1);
    }

    /// ReadShareGroupState, as the state's owner: the stored state (`None`: never written, or
    /// deleted) and its state epoch. A leader older than the last one to read or write is
    /// FENCED_LEADER_EPOCH; a newer one becomes the last (stored with the state, so it stays
    /// fenced after a restart of the owner).
    pub fn read_state(&mut self, key: &ShareKey, leader_epoch: i32) -> Result<(Option<Snapshot>, i32), ResponseError> {
        let e = self.epochs.entry(key.clone()).or_default();
        if leader_epoch < e.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        let state_epoch = e.state_epoch;
        if leader_epoch > e.leader_epoch {
            e.leader_epoch = leader_epoch;
            if self.partitions.contains_key(key) {
                self.dirty.insert(key.clone());
            }
        }
        Ok((self.partitions.get(key).map(SharePartition::snapshot), state_epoch))
    }

    /// WriteShareGroupState, as the state's owner: `snapshot` replaces the stored state. Refused
    /// from a leader older than the last one (FENCED_LEADER_EPOCH) and from one that read the
    /// state before an administrator reset or deleted it (FENCED_STATE_EPOCH).
    pub fn write_state(&mut self, key: &ShareKey, leader_epoch: i32, state_epoch: i32, snapshot: &Snapshot) -> Result<(), ResponseError> {
        let e = self.epochs.entry(key.clone()).or_default();
        if leader_epoch < e.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        if state_epoch != e.state_epoch {
            return Err(ResponseError::FencedStateEpoch);
        }
        e.leader_epoch = leader_epoch;
        self.partitions.insert(key.clone(), SharePartition::from_snapshot(snapshot));
        self.deleted.remove(key);
        self.dirty.insert(key.clone());
        Ok(())
    }

    /// As a partition's leader: the share partition starts from the state its owner returned
    /// (`None`: there is none, and the next fetch starts it where `share.auto.offset.reset`
    /// says). Whatever was held here before is dropped.
    pub fn install(&mut self, key: &ShareKey, snapshot: Option<&Snapshot>) {
        self.forget(key);
        if let Some(s) = snapshot {
            self.partitions.insert(key.clone(), SharePartition::from_snapshot(s));
        }
    }

    /// As a partition's leader: drops a share partition (its leadership or its state moved on).
    pub fn forget(&mut self, key: &ShareKey) {
        self.partitions.remove(key);
        self.dirty.remove(key);
    }

    /// The share partitions of `group_id` changed since their state was last taken.
    pub fn dirty_of(&self, group_id: &str) -> Vec<ShareKey> {
        self.dirty.iter().filter(|(g, _, _)| g == group_id).cloned().collect()
    }

    /// As a partition's leader: takes the changed share partitions of `group_id` with their
    /// state, to write to the owner.
    pub fn take_dirty_of(&mut self, group_id: &str) -> Vec<(ShareKey, Snapshot)> {
        let keys = self.dirty_of(group_id);
        keys.into_iter()
            .filter_map(|k| {
                self.dirty.remove(&k);
                let s = self.partitions.get(&k)?.snapshot();
                Some((k, s))
            })
            .collect()
    }

    /// A state that could not be written is written again with the next one.
    pub fn mark_dirty(&mut self, key: &ShareKey) {
        if self.partitions.contains_key(key) {
            self.dirty.insert(key.clone());
        }
    }

    /// Gives back records acquired for `member_id` that could not be handed out (their state
    /// could not be stored): available again, delivery counts kept.
    pub fn release(&mut self, key: &ShareKey, member_id: &str, acquired: &[Acquired]) {
        let limits = self.limits();
        if let Some(p) = self.partitions.get_mut(key) {
            if p.release_ranges(member_id, acquired, &limits) {
                self.dirty.insert(key.clone());
            }
        }
    }

    /// As a partition's leader: undoes `member`'s acquisitions of `acquired`, which its fetch
    /// could not deliver (see [`SharePartition::unacquire_ranges`]).
    pub fn unacquire(&mut self, key: &ShareKey, member_id: &str, acquired: &[Acquired]) {
        if let Some(p) = self.partitions.get_mut(key) {
            if p.unacquire_ranges(member_id, acquired) {
                self.dirty.insert(key.clone());
            }
        }
    }

    /// ShareGroupDescribe: `None` if `group_id` is not a share group here.
    pub fn describe(&self, group_id: &str) -> Option<DescribedShareGroup> {
        if !self.contains(group_id) {
            return None;
        }
        let g = self.groups.get(group_id).cloned().unwrap_or_default();
        Some(DescribedShareGroup {
            group_id: group_id.to_string(),
            state: if g.members.is_empty() { "Empty" } else { "Stable" },
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            members: g.members.into_values().collect(),
        })
    }

    /// Every share group with its state, for ListGroups.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let mut ids: BTreeSet<&str> = self.groups.keys().map(String::as_str).collect();
        ids.extend(self.partitions.keys().map(|(g, _, _)| g.as_str()));
        ids.into_iter().map(|id| (id.to_string(), if self.has_members(id) { "Stable" } else { "Empty" })).collect()
    }

    /// Every share partition of `group_id` with its start offset (DescribeShareGroupOffsets).
    pub fn start_offsets(&self, group_id: &str) -> Vec<((Uuid, i32), i64)> {
        self.partitions.iter().filter(|((g, _, _), _)| g == group_id).map(|((_, t, p), sp)| ((*t, *p), sp.start_offset())).collect()
    }
}

impl ShareMember {
    /// Whether `other` has the same stored form (everything but the session deadline).
    fn same_record(&self, other: &ShareMember) -> bool {
        (self.member_epoch, self.previous_epoch, &self.rack_id, &self.client_id, &self.client_host, &self.subscribed_topic_names, &self.assignment)
            == (other.member_epoch, other.previous_epoch, &other.rack_id, &other.client_id, &other.client_host, &other.subscribed_topic_names, &other.assignment)
    }
}

impl Group {
    /// The subscribed topics that exist now.
    fn subscribed_now(&self, topics: &Topics) -> BTreeMap<String, (Uuid, i32)> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter())
            .filter_map(|n| topics.get(n).map(|t| (n.clone(), (t.id, t.partitions))))
            .collect()
    }

    /// A new group epoch and its assignment, which every member gets with its next heartbeat.
    fn bump(&mut self, topics: &Topics) {
        self.group_epoch += 1;
        self.subscribed = self.subscribed_now(topics);
        let target = assign(&self.members, &self.subscribed);
        for (id, m) in self.members.iter_mut() {
            m.assignment = target.get(id).cloned().unwrap_or_default();
        }
        self.assignment_epoch = self.group_epoch;
    }
}

/// The uniform assignment of a share group, topic by topic among the members subscribed to it
/// (in member-id order): with at least as many members as partitions, member i gets partition
/// i mod P, so every partition is consumed and shared as evenly as possible; with fewer, partition
/// j goes to member j mod M, so every member has work. Several members may hold one partition:
/// the share partition hands each record to one of them.
pub fn assign(members: &BTreeMap<String, ShareMember>, subscribed: &BTreeMap<String, (Uuid, i32)>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    for (name, (id, partitions)) in subscribed {
        let ms: Vec<&String> = members.values().filter(|m| m.subscribed_topic_names.contains(name)).map(|m| &m.member_id).collect();
        let (m, p) = (ms.len(), (*partitions).max(0) as usize);
        if m == 0 || p == 0 {
            continue;
        }
        if m >= p {
            for (i, member) in ms.iter().enumerate() {
                out.entry((*member).clone()).or_default().entry(*id).or_default().insert((i % p) as i32);
            }
        } else {
            for j in 0..p {
                out.entry(ms[j % m].clone()).or_default().entry(*id).or_default().insert(j as i32);
            }
        }
    }
    out
}
