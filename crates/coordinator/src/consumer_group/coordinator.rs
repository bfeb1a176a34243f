//! [`ConsumerGroupCoordinator`]: every KIP-848 group of this coordinator, the heartbeat (join,
//! reconcile, leave), timers, and the views for ConsumerGroupDescribe, ListGroups and the
//! offset checks.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use regex::Regex;

use super::assignor::{Assignor, AssignorSpec};
use bytes::Bytes;

use super::member::{is_subset, Member, MemberState};
use super::record::{self, CurrentAssignment, Key, MemberMetadata, Value};
use crate::group::RecordError;
use super::types::*;
use super::ConsumerGroupConfig;

/// One consumer group.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) epoch: i32,
    /// The epoch of `target`.
    pub(super) assignment_epoch: i32,
    pub(super) members: BTreeMap<String, Member>,
    /// Each member's share of the target assignment.
    pub(super) target: BTreeMap<String, Assignment>,
    /// The subscribed topics as they were when `target` was computed: a change re-assigns.
    pub(super) subscribed_topics: BTreeMap<String, TopicMeta>,
    /// The members' subscription regexes, compiled once.
    pub(super) regexes: BTreeMap<String, Regex>,
    /// The value of each of the group's keys in `__consumer_offsets` as last written (or
    /// loaded): what the next write must change.
    pub(super) persisted: BTreeMap<Key, Bytes>,
}

/// Topics a regular expression never matches: Kafka's internal topics (`Topic.isInternal`).
const INTERNAL_TOPICS: [&str; 3] = ["__consumer_offsets", "__transaction_state", "__share_group_state"];

/// A subscription regex, matched against whole topic names (as Java's `Pattern.matches`). The
/// `regex` crate's syntax is close to RE2's, which KIP-848 specifies.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build()
}

impl Group {
    pub(super) fn new() -> Group {
        Group {
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed_topics: BTreeMap::new(),
            regexes: BTreeMap::new(),
            persisted: BTreeMap::new(),
        }
    }

    /// A member's subscription now: its topic names and the existing topics its regex matches.
    pub(super) fn subscription_of(&self, m: &Member, topics: &Topics) -> BTreeSet<String> {
        let mut names = m.subscribed_topic_names.clone();
        if let Some(re) = m.subscribed_topic_regex.as_ref().and_then(|r| self.regexes.get(r)) {
            names.extend(topics.keys().filter(|t| !INTERNAL_TOPICS.contains(&t.as_str()) && re.is_match(t)).cloned());
        }
        names
    }

    pub(super) fn subscribed(&self, topics: &Topics) -> BTreeMap<String, TopicMeta> {
        self.members
            .values()
            .flat_map(|m| self.subscription_of(m, topics))
            .filter_map(|name| topics.get(&name).map(|t| (name, t.clone())))
            .collect()
    }

    /// The group's assignor: the one most members asked for, else the configured default
    /// (Kafka picks the most requested one too).
    pub(super) fn assignor(&self, config: &ConsumerGroupConfig) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .and_then(|(name, _)| Assignor::from_name(name))
            .or_else(|| config.assignors.first().copied())
            .unwrap_or(Assignor::Uniform)
    }

    /// Bumps the group epoch and computes the target assignment for it.
    pub(super) fn bump(&mut self, topics: &Topics, config: &ConsumerGroupConfig) {
        self.epoch += 1;
        self.subscribed_topics = self.subscribed(topics);
        let assignor = self.assignor(config);
        let subscriptions: Vec<(&str, BTreeSet<String>)> = self.members.values().map(|m| (m.id.as_str(), self.subscription_of(m, topics))).collect();
        let mut spec = AssignorSpec::default();
        for (id, names) in &subscriptions {
            spec.members.insert(*id, (names, self.target.get(*id)));
        }
        for m in self.members.values() {
            if let Some(r) = &m.rack_id {
                spec.racks.insert(m.id.as_str(), r.as_str());
            }
        }
        self.target = assignor.assign(&spec, topics);
        self.assignment_epoch = self.epoch;
    }

    /// One reconciliation step of member `member_id`, with what it reports owning.
    pub(super) fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let empty = Assignment::new();
        let target = self.target.get(member_id).cloned().unwrap_or(empty);
        let others: Vec<&Member> = self.members.values().filter(|m| m.id != member_id).collect();
        let held = |t: &uuid::Uuid, p: i32| others.iter().any(|m| m.holds(t, p));
        let Some(mut member) = self.members.get(member_id).cloned() else { return };
        let was_unrevoked = member.state == MemberState::UnrevokedPartitions;
        member.reconcile(self.assignment_epoch, &target, owned, held);
        if member.state == MemberState::UnrevokedPartitions {
            if !was_unrevoked || member.revocation_deadline.is_none() {
                member.revocation_deadline = Some(now.saturating_add(i64::from(member.rebalance_timeout_ms.max(0))));
            }
        } else {
            member.revocation_deadline = None;
        }
        self.members.insert(member_id.to_string(), member);
    }

    pub(super) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub(super) fn remove_member(&mut self, member_id: &str, topics: &Topics, config: &ConsumerGroupConfig) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.forget_unused_regexes();
            self.bump(topics, config);
        }
    }

    /// The member holding instance id `instance_id`, or Kafka's answer when there is none.
    fn static_member(&self, instance_id: &str) -> Result<Member, HeartbeatResponse> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .cloned()
            .ok_or_else(|| HeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Instance id {instance_id} is unknown.")))
    }

    /// Static member `old_id` comes back as `new_id` (Kafka's replaceMember): the same
    /// subscription, assignment and target, at epoch 0; the old member id is forgotten.
    pub(super) fn replace_static(&mut self, old_id: &str, new_id: &str) {
        let Some(mut m) = self.members.remove(old_id) else { return };
        m.id = new_id.to_string();
        m.epoch = 0;
        m.previous_epoch = 0;
        if let Some(t) = self.target.remove(old_id) {
            self.target.insert(new_id.to_string(), t);
        }
        self.members.insert(new_id.to_string(), m);
    }

    pub(super) fn forget_unused_regexes(&mut self) {
        let used: BTreeSet<&String> = self.members.values().filter_map(|m| m.subscribed_topic_regex.as_ref()).collect();
        self.regexes.retain(|r, _| used.contains(r));
    }

    fn next_deadline(&self) -> Option<i64> {
        self.members.values().flat_map(|m| std::iter::once(m.session_deadline).chain(m.revocation_deadline).chain(m.classic_deadline)).min()
    }
}

fn state_code(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(code: i8) -> MemberState {
    match code {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        // Kafka's UNKNOWN (127) and anything newer: reconciled afresh from what the member owns.
        _ => MemberState::Stable,
    }
}

impl Group {
    /// The group as Kafka's records, by key (the value encoded).
    fn records(&self, group_id: &str) -> BTreeMap<Key, Bytes> {
        let key = |kind, member: Option<&str>| Key { kind, group_id: group_id.to_string(), member_id: member.map(str::to_string) };
        let mut out = BTreeMap::new();
        out.insert(key(record::KEY_METADATA, None), Value::Metadata { epoch: self.epoch }.encode());
        let topics = self.subscribed_topics.iter().map(|(name, t)| (t.id, name.clone(), t.partitions, t.racks.to_vec())).collect();
        out.insert(key(record::KEY_PARTITION_METADATA, None), Value::PartitionMetadata { topics }.encode());
        out.insert(key(record::KEY_TARGET_METADATA, None), Value::TargetMetadata { assignment_epoch: self.assignment_epoch }.encode());
        for m in self.members.values() {
            let meta = MemberMetadata {
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: m.server_assignor.clone(),
                classic: m.classic.clone(),
            };
            out.insert(key(record::KEY_MEMBER_METADATA, Some(&m.id)), Value::Member(meta).encode());
            let target = self.target.get(&m.id).cloned().unwrap_or_default();
            out.insert(key(record::KEY_TARGET_MEMBER, Some(&m.id)), Value::TargetMember(target).encode());
            let current = CurrentAssignment {
                member_epoch: m.epoch,
                previous_member_epoch: m.previous_epoch,
                state: state_code(m.state),
                assigned: m.assigned.clone(),
                pending_revocation: m.pending_revocation.clone(),
            };
            out.insert(key(record::KEY_CURRENT_ASSIGNMENT, Some(&m.id)), Value::CurrentAssignment(current).encode());
        }
        out
    }

    /// The records that bring the log from `persisted` to the group's state, in the order Kafka
    /// writes them: a member's metadata before the group epoch it bumps, the target before the
    /// members' assignments; a removed member's assignment, target and metadata tombstoned.
    fn changes(&mut self, group_id: &str) -> Vec<RawRecord> {
        let now = self.records(group_id);
        let order = [record::KEY_MEMBER_METADATA, record::KEY_METADATA, record::KEY_PARTITION_METADATA, record::KEY_TARGET_MEMBER, record::KEY_TARGET_METADATA, record::KEY_CURRENT_ASSIGNMENT];
        let mut out = Vec::new();
        for kind in order {
            for (k, v) in now.iter().filter(|(k, _)| k.kind == kind) {
                if self.persisted.get(k) != Some(v) {
                    out.push((k.encode(), Some(v.clone())));
                }
            }
        }
        for kind in [record::KEY_CURRENT_ASSIGNMENT, record::KEY_TARGET_MEMBER, record::KEY_MEMBER_METADATA] {
            for k in self.persisted.keys().filter(|k| k.kind == kind && !now.contains_key(*k)) {
                out.push((k.encode(), None));
            }
        }
        self.persisted = now;
        out
    }

    /// Applies one record read back from the log.
    fn load(&mut self, key: &Key, value: Option<Value>, encoded: Option<&[u8]>, session_timeout_ms: i32, now: i64) {
        match encoded {
            Some(v) => {
                self.persisted.insert(key.clone(), Bytes::copy_from_slice(v));
            }
            None => {
                self.persisted.remove(key);
            }
        }
        let member_id = key.member_id.clone().unwrap_or_default();
        fn member<'g>(g: &'g mut Group, id: &str, now: i64, session_timeout_ms: i32) -> &'g mut Member {
            g.members.entry(id.to_string()).or_insert_with(|| Member::new(id.to_string(), now, session_timeout_ms))
        }
        match (key.kind, value) {
            (_, Some(Value::Metadata { epoch })) => self.epoch = epoch,
            (_, Some(Value::PartitionMetadata { topics })) => {
                self.subscribed_topics = topics.into_iter().map(|(id, name, partitions, racks)| (name, TopicMeta { id, partitions, racks: racks.into() })).collect();
            }
            (_, Some(Value::TargetMetadata { assignment_epoch })) => self.assignment_epoch = assignment_epoch,
            (_, Some(Value::TargetMember(a))) => {
                self.target.insert(member_id.clone(), a);
            }
            (_, Some(Value::Member(meta))) => {
                if let Some(re) = meta.subscribed_topic_regex.as_deref().and_then(|r| compile(r).ok()) {
                    self.regexes.insert(meta.subscribed_topic_regex.clone().unwrap_or_default(), re);
                }
                let m = member(self, &member_id, now, session_timeout_ms);
                m.instance_id = meta.instance_id;
                m.rack_id = meta.rack_id;
                m.client_id = meta.client_id;
                m.client_host = meta.client_host;
                m.subscribed_topic_names = meta.subscribed_topic_names.into_iter().collect();
                m.subscribed_topic_regex = meta.subscribed_topic_regex;
                m.rebalance_timeout_ms = meta.rebalance_timeout_ms;
                m.server_assignor = meta.server_assignor;
                if let Some(c) = &meta.classic {
                    m.session_deadline = now.saturating_add(i64::from(c.session_timeout_ms));
                }
                m.classic = meta.classic;
            }
            (_, Some(Value::CurrentAssignment(c))) => {
                let m = member(self, &member_id, now, session_timeout_ms);
                m.epoch = c.member_epoch;
                m.previous_epoch = c.previous_member_epoch;
                m.state = state_of(c.state);
                m.assigned = c.assigned;
                m.pending_revocation = c.pending_revocation;
                // A loaded member's revocation gets a fresh rebalance timeout.
                m.revocation_deadline = (m.state == MemberState::UnrevokedPartitions)
                    .then(|| now.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))));
            }
            (record::KEY_MEMBER_METADATA, None) => {
                self.members.remove(&member_id);
                self.forget_unused_regexes();
            }
            (record::KEY_TARGET_MEMBER, None) => {
                self.target.remove(&member_id);
            }
            (record::KEY_PARTITION_METADATA, None) => self.subscribed_topics.clear(),
            // The group's own tombstone is handled by the coordinator; the others need nothing.
            (_, None) => {}
        }
    }
}

/// Owns every consumer group this broker coordinates. The caller serialises calls.
#[derive(Debug)]
pub struct ConsumerGroupCoordinator {
    pub(super) config: ConsumerGroupConfig,
    pub(super) groups: BTreeMap<String, Group>,
    /// The settings of groups that have group configs (`set_group_config`); others use `config`.
    group_configs: BTreeMap<String, ConsumerGroupConfig>,
    /// Groups converted back to classic groups (`classic.rs`), for the caller to take.
    pub(super) downgrades: Vec<super::Downgraded>,
}

fn fenced_instance(member_id: &str, instance_id: &str, holder: &str) -> HeartbeatResponse {
    HeartbeatResponse::error(ResponseError::FencedInstanceId, format!("Static member {member_id} with instance id {instance_id} was fenced by member {holder}."))
}

fn invalid(message: &str) -> HeartbeatResponse {
    HeartbeatResponse::error(ResponseError::InvalidRequest, message)
}

impl ConsumerGroupCoordinator {
    pub fn new(config: ConsumerGroupConfig) -> Self {
        ConsumerGroupCoordinator { config, groups: BTreeMap::new(), group_configs: BTreeMap::new(), downgrades: Vec::new() }
    }

    pub fn config(&self) -> &ConsumerGroupConfig {
        &self.config
    }

    /// Group `group_id`'s own settings (the broker's with its group configs over them: session
    /// timeout, heartbeat interval; `None`: the broker's), as the caller read them from its
    /// metadata. Its later heartbeats use them.
    pub fn set_group_config(&mut self, group_id: &str, config: Option<ConsumerGroupConfig>) {
        match config {
            Some(c) => {
                self.group_configs.insert(group_id.to_string(), c);
            }
            None => {
                self.group_configs.remove(group_id);
            }
        }
    }

    /// The settings group `group_id` runs with.
    pub fn config_for(&self, group_id: &str) -> &ConsumerGroupConfig {
        self.group_configs.get(group_id).unwrap_or(&self.config)
    }

    /// Whether `group_id` is a consumer group here.
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// Whether `group_id` is a consumer group with members (a classic JoinGroup joins it then).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups.get(group_id).is_some_and(|g| !g.members.is_empty())
    }

    /// ConsumerGroupHeartbeat. `topics` are the cluster's topics now.
    pub fn heartbeat(&mut self, req: HeartbeatRequest, topics: &Topics, now_ms: i64) -> HeartbeatResponse {
        // The request's checks, as Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
        if req.group_id.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if req.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        if req.member_epoch != 0 && req.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if req.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && req.instance_id.is_none() {
            return invalid("InstanceId can't be null when MemberEpoch is -2.");
        }
        if req.member_epoch == 0 {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
            }
        }
        let regex = match req.subscribed_topic_regex.as_deref() {
            // An empty regex clears the member's (librdkafka sends one with a topic list).
            Some(r) if !r.is_empty() => match compile(r) {
                Ok(re) => Some((r.to_string(), re)),
                Err(e) => return HeartbeatResponse::error(ResponseError::InvalidRegularExpression, format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}")),
            },
            _ => None,
        };
        if let Some(a) = &req.server_assignor {
            if !self.config.assignors.iter().any(|c| c.name() == a) {
                return HeartbeatResponse::error(ResponseError::UnsupportedAssignor, format!("ServerAssignor {a} is not supported. Supported assignors: {}.", self.assignor_names()));
            }
        }
        if req.member_epoch < 0 {
            return self.leave(req, topics);
        }
        self.join_or_beat(req, regex, topics, now_ms)
    }

    fn assignor_names(&self) -> String {
        self.config.assignors.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    }

    fn leave(&mut self, req: HeartbeatRequest, topics: &Topics) -> HeartbeatResponse {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return HeartbeatResponse::error(ResponseError::GroupIdNotFound, format!("Group {} not found.", req.group_id));
        };
        if let Some(instance_id) = req.instance_id.as_deref() {
            // A static member is found by its instance id (Kafka's consumerGroupLeave).
            let member = match group.static_member(instance_id) {
                Ok(m) => m,
                Err(e) => return e,
            };
            if member.id != req.member_id {
                return fenced_instance(&req.member_id, instance_id, &member.id);
            }
            if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                // Gone for now: the member keeps its assignment, and its partitions stay out of
                // others' reach, until it comes back with the same instance id or its session
                // times out (the session deadline of its last heartbeat is left running).
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                    m.pending_revocation = Assignment::new();
                    m.revocation_deadline = None;
                }
                return HeartbeatResponse { member_id: Some(req.member_id), member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH, ..Default::default() };
            }
        } else if !group.members.contains_key(&req.member_id) {
            return HeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Member {} is not a member of group {}.", req.member_id, req.group_id));
        }
        self.fence(&req.group_id, &req.member_id, topics);
        HeartbeatResponse { member_id: Some(req.member_id), member_epoch: req.member_epoch, heartbeat_interval_ms: 0, ..Default::default() }
    }

    fn join_or_beat(&mut self, req: HeartbeatRequest, regex: Option<(String, Regex)>, topics: &Topics, now: i64) -> HeartbeatResponse {
        let config = self.config_for(&req.group_id).clone();
        let joining = req.member_epoch == 0;
        if !joining && !self.groups.contains_key(&req.group_id) {
            // Kafka answers GROUP_ID_NOT_FOUND here; its groups survive a coordinator restart in
            // the log, Strom's (not persisted yet) do not, so the member is told to rejoin.
            return HeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Member {} is not a member of group {}.", req.member_id, req.group_id));
        }
        let group = self.groups.entry(req.group_id.clone()).or_insert_with(Group::new);
        let member_id = if req.member_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { req.member_id.clone() };
        // Checked before a static member is replaced, as Kafka's throwIfConsumerGroupIsFull: a
        // returning instance under a new member id is refused too while the group is full.
        if !group.members.contains_key(&member_id) && config.max_size.is_some_and(|max| group.members.len() >= max) {
            return HeartbeatResponse::error(ResponseError::GroupMaxSizeReached, format!("The consumer group has reached its maximum capacity of {} members.", config.max_size.unwrap_or(0)));
        }
        if let Some(instance_id) = req.instance_id.as_deref() {
            // Kafka's getOrMaybeSubscribeStaticConsumerGroupMember.
            let holder = group.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id)).cloned();
            match holder {
                Some(old) if joining => {
                    if old.epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        return HeartbeatResponse::error(
                            ResponseError::UnreleasedInstanceId,
                            format!("Static member {member_id} with instance id {instance_id} cannot join the group because the instance id is owned by {} member.", old.id),
                        );
                    }
                    // The instance is back (under a new member id, or its old one): it takes the
                    // place of the member that left, with its assignment and its target, at
                    // epoch 0. The subscription is the same, so the group epoch stays.
                    group.replace_static(&old.id, &member_id);
                }
                Some(old) if old.id != member_id => return fenced_instance(&member_id, instance_id, &old.id),
                Some(_) => {}
                None if joining => {}
                None => return HeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Instance id {instance_id} is unknown.")),
            }
        }
        let existing = group.members.get(&member_id).cloned();
        let before = match existing {
            Some(m) => {
                // Kafka's epoch check: a greater epoch, or a smaller one that is not the previous
                // epoch of a member whose owned partitions are within its assignment, is fenced.
                let lost_response = req.member_epoch == m.previous_epoch && req.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned));
                if req.member_epoch > m.epoch || (req.member_epoch < m.epoch && !lost_response) {
                    return HeartbeatResponse::error(
                        ResponseError::FencedMemberEpoch,
                        format!("The consumer group member has a member epoch ({}) other than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", req.member_epoch, m.epoch),
                    );
                }
                m
            }
            None if joining => Member::new(member_id.clone(), now, config.session_timeout_ms),
            None => {
                return HeartbeatResponse::error(ResponseError::UnknownMemberId, format!("Member {} is not a member of group {}.", member_id, req.group_id));
            }
        };
        let is_new = !group.members.contains_key(&member_id);
        let mut member = before.clone();
        if let Some(i) = req.instance_id {
            member.instance_id = Some(i);
        }
        if let Some(r) = req.rack_id {
            member.rack_id = Some(r);
        }
        if req.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(a) = req.server_assignor {
            member.server_assignor = Some(a);
        }
        let mut subscription_changed = is_new;
        if let Some(names) = req.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            subscription_changed |= names != member.subscribed_topic_names;
            member.subscribed_topic_names = names;
        }
        if req.subscribed_topic_regex.is_some() {
            // Set (or, empty, cleared) by this heartbeat; null leaves it as it was.
            member.subscribed_topic_regex = regex.as_ref().map(|(p, _)| p.clone());
            if let Some((p, re)) = regex {
                group.regexes.entry(p).or_insert(re);
            }
        }
        subscription_changed |= member.subscribed_topic_regex != before.subscribed_topic_regex;
        subscription_changed |= member.server_assignor != before.server_assignor;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_deadline = now.saturating_add(i64::from(config.session_timeout_ms));
        group.members.insert(member_id.clone(), member);
        group.forget_unused_regexes();
        // A subscribed topic (one named, or one a regex matches) created, deleted or grown since the target was computed also
        // re-assigns (Kafka's subscription metadata).
        if subscription_changed || group.subscribed(topics) != group.subscribed_topics {
            group.bump(topics, &config);
        }
        group.reconcile(&member_id, req.owned.as_ref(), now);
        let after = group.members.get(&member_id);
        let full = joining || (req.rebalance_timeout_ms != -1 && req.owned.is_some());
        let changed = after.is_none_or(|a| a.assigned != before.assigned) || is_new;
        HeartbeatResponse {
            error: None,
            error_message: None,
            member_id: Some(member_id.clone()),
            member_epoch: after.map_or(0, |m| m.epoch),
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: if full || changed { after.map(|m| m.assigned.clone()) } else { None },
        }
    }

    /// Removes members whose session expired or who did not revoke partitions within their
    /// rebalance timeout, re-assigning their partitions. Cheap when nothing is due.
    pub fn tick(&mut self, topics: &Topics, now_ms: i64) -> Vec<Expired> {
        let mut expired = Vec::new();
        for (group_id, group) in &self.groups {
            if group.next_deadline().is_none_or(|d| d > now_ms) {
                continue;
            }
            for m in group.members.values() {
                if m.session_deadline <= now_ms {
                    expired.push(Expired { group_id: group_id.clone(), member_id: m.id.clone(), session: true });
                } else if m.revocation_deadline.is_some_and(|d| d <= now_ms) || m.classic_deadline.is_some_and(|d| d <= now_ms) {
                    expired.push(Expired { group_id: group_id.clone(), member_id: m.id.clone(), session: false });
                }
            }
        }
        // Expired classic members go first: a consumer-protocol member expiring in the same tick
        // may convert the group to a classic one, which must not take members already expired.
        let classic = |c: &Self, e: &Expired| c.groups.get(&e.group_id).and_then(|g| g.members.get(&e.member_id)).is_some_and(|m| m.classic.is_some());
        let (first, then): (Vec<&Expired>, Vec<&Expired>) = expired.iter().partition(|e| classic(self, e));
        for e in first.into_iter().chain(then) {
            // A member removed by a timer may be the group's last consumer-protocol member: the
            // group may go back to the classic protocol (Kafka's consumerGroupFenceMember).
            self.fence(&e.group_id, &e.member_id, topics);
        }
        expired
    }

    /// The earliest time `tick` has work, `i64::MAX` if none.
    pub fn next_deadline(&self) -> i64 {
        self.groups.values().filter_map(Group::next_deadline).min().unwrap_or(i64::MAX)
    }

    /// ConsumerGroupDescribe of one group; `None` if it is not a consumer group here.
    pub fn describe(&self, group_id: &str) -> Option<DescribedConsumerGroup> {
        let g = self.groups.get(group_id)?;
        let members = g
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                assignment: m.assigned.clone(),
                target_assignment: g.target.get(&m.id).cloned().unwrap_or_default(),
                classic: m.classic.is_some(),
            })
            .collect();
        Some(DescribedConsumerGroup {
            group_id: group_id.to_string(),
            state: g.state(),
            group_epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor_name: g.assignor(&self.config).name().to_string(),
            members,
        })
    }

    /// ListGroups: every consumer group with its state.
    pub fn list(&self) -> Vec<(String, ConsumerGroupState)> {
        self.groups.iter().map(|(id, g)| (id.clone(), g.state())).collect()
    }

    /// May `member_id` at `member_epoch` commit or fetch this group's offsets? (Kafka's
    /// ConsumerGroup.validateOffsetCommit/validateOffsetFetch.) A negative epoch is an admin or
    /// a consumer outside the group: it may commit while the group has no members, and always
    /// fetch when it names no member. A member commits with OffsetCommit v9 or later (older
    /// versions cannot carry a member epoch: UNSUPPORTED_VERSION, as Kafka).
    pub fn offset_access(&self, group_id: &str, member_id: Option<&str>, member_epoch: i32, commit_version: Option<i16>) -> OffsetAccess {
        let Some(g) = self.groups.get(group_id) else { return OffsetAccess::NotConsumerGroup };
        match commit_version {
            Some(_) if member_epoch < 0 && g.members.is_empty() => return OffsetAccess::Allowed,
            None if member_id.is_none() && member_epoch < 0 => return OffsetAccess::Allowed,
            _ => {}
        }
        match g.members.get(member_id.unwrap_or_default()) {
            None => OffsetAccess::Refused(ResponseError::UnknownMemberId),
            // A classic member commits with any version, against its generation (Kafka's
            // validateMemberEpoch for classic members: ILLEGAL_GENERATION).
            Some(m) if m.classic.is_some() && m.epoch != member_epoch => OffsetAccess::Refused(ResponseError::IllegalGeneration),
            Some(m) if m.classic.is_some() => OffsetAccess::Allowed,
            Some(_) if commit_version.is_some_and(|v| v < 9) => OffsetAccess::Refused(ResponseError::UnsupportedVersion),
            Some(m) if m.epoch != member_epoch => OffsetAccess::Refused(ResponseError::StaleMemberEpoch),
            Some(_) => OffsetAccess::Allowed,
        }
    }

    /// DeleteGroups: a consumer group without members is forgotten (its offsets are the
    /// caller's); one with members is refused NON_EMPTY_GROUP. `None`: not a consumer group.
    /// The tombstones of its records are to be appended.
    pub fn delete(&mut self, group_id: &str) -> Option<Result<Vec<RawRecord>, ResponseError>> {
        let g = self.groups.get(group_id)?;
        if !g.members.is_empty() {
            return Some(Err(ResponseError::NonEmptyGroup));
        }
        let g = self.groups.remove(group_id)?;
        // The group's metadata last, as Kafka does: a replay that stops short keeps the group.
        let mut keys: Vec<&Key> = g.persisted.keys().collect();
        keys.sort_by_key(|k| (k.kind == record::KEY_METADATA, k.kind));
        Some(Ok(keys.into_iter().map(|k| (k.encode(), None)).collect()))
    }

    /// The records (key, value; `None` a tombstone) that store group `group_id`'s changes since
    /// the last call: to be appended to its `__consumer_offsets` partition.
    pub fn take_records(&mut self, group_id: &str) -> Vec<RawRecord> {
        match self.groups.get_mut(group_id) {
            Some(g) => g.changes(group_id),
            None => Vec::new(),
        }
    }

    /// Applies one record of a consumer group read back from `__consumer_offsets`, in log order
    /// (`value` `None`: a tombstone). Loaded members' sessions start at `now_ms`.
    pub fn load_record(&mut self, key: &[u8], value: Option<&[u8]>, now_ms: i64) -> Result<(), RecordError> {
        let key = Key::decode(key)?;
        let decoded = value.map(|v| Value::decode(key.kind, v)).transpose()?;
        if key.kind == record::KEY_METADATA && decoded.is_none() {
            self.groups.remove(&key.group_id);
            return Ok(());
        }
        let session = self.config_for(&key.group_id).session_timeout_ms;
        let group = self.groups.entry(key.group_id.clone()).or_insert_with(Group::new);
        group.load(&key, decoded, value, session, now_ms);
        Ok(())
    }

    /// Forgets the groups `unload` selects: their offsets partition is coordinated elsewhere now.
    pub fn unload(&mut self, mut unload: impl FnMut(&str) -> bool) {
        self.groups.retain(|id, _| !unload(id));
    }
}
