//! Classic-protocol members inside a consumer group, and the online conversions between the
//! protocols (Kafka's GroupMetadataManager: classicGroupJoinToConsumerGroup,
//! classicGroupSyncToConsumerGroup, classicGroupHeartbeatToConsumerGroup,
//! classicGroupLeaveToConsumerGroup, convertToConsumerGroup, convertToClassicGroup).
//!
//! A classic member is an ordinary member of the group (same target assignment, same
//! reconciliation, so the revoke-before-assign rule holds across both kinds) whose requests are
//! the classic ones:
//!
//! - JoinGroup carries its subscription and the partitions it still owns (embedded consumer
//!   protocol); the member is updated, the group epoch bumped if its subscription changed, and it
//!   reconciles once against what it owns. The answer names no leader and no members: the member
//!   sends an empty SyncGroup and the coordinator's assignment comes back in its answer. The
//!   generation is the member epoch.
//! - Heartbeat answers REBALANCE_IN_PROGRESS when the member must rejoin: the group epoch moved
//!   past its epoch, it must revoke partitions, or partitions it waits for were released.
//! - Its session is the classic session timeout it joined with; a member told to rejoin must
//!   rejoin, and one that joined must sync, within its rebalance timeout.

use kafka_protocol::error::ResponseError;

use super::coordinator::{ConsumerGroupCoordinator, Group};
use super::embedded;
use super::member::{Member, MemberState};
use super::record::ClassicMemberMetadata;
use super::types::*;
use crate::group::{
    ErrorCode, HeartbeatRequest as ClassicHeartbeat, JoinRequest, JoinResponse, LeaveMember, LeaveMemberResult, LeaveResponse, MigratingGroup, MigratingMember, SyncRequest, SyncResponse,
};

/// The embedded protocol's type: the only one a consumer group takes.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A consumer group converted back to a classic group: the caller appends `tombstones` (the
/// consumer group's records) and hands `group` to the classic coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downgraded {
    pub group_id: String,
    pub tombstones: Vec<RawRecord>,
    pub group: MigratingGroup,
}

impl ConsumerGroupCoordinator {
    /// Whether a ConsumerGroupHeartbeat may convert classic group `group` (Kafka's
    /// validateOnlineUpgrade): the policy allows it, its members use the consumer embedded
    /// protocol, and they fit in a consumer group.
    pub fn can_upgrade(&self, group: &MigratingGroup) -> bool {
        self.config.migration_policy.upgrade_enabled()
            && group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
            && !group.members.is_empty()
            && self.config.max_size.is_none_or(|max| group.members.len() <= max)
    }

    /// The upgrade (Kafka's ConsumerGroup.fromClassicGroup): classic group `group_id`'s members
    /// become members of a new consumer group at the classic generation, Stable, each with its
    /// current assignment as its target. Errors when a member's embedded protocol cannot be
    /// read; nothing changes then.
    pub fn upgrade(&mut self, group_id: &str, classic: &MigratingGroup, topics: &Topics, now_ms: i64) -> Result<(), embedded::Malformed> {
        let mut g = Group::new();
        g.epoch = classic.generation_id;
        g.assignment_epoch = classic.generation_id;
        for m in &classic.members {
            let protocol = classic.protocol_name.as_deref().or_else(|| m.protocols.first().map(|(n, _)| n.as_str())).unwrap_or_default();
            let metadata = m.protocols.iter().find(|(n, _)| n == protocol).map(|(_, md)| md.clone()).ok_or(embedded::Malformed)?;
            let subscription = embedded::decode_subscription(&metadata)?;
            let assigned = embedded::to_assignment(&embedded::decode_assignment(&m.assignment)?, topics);
            let mut member = Member::new(m.member_id.clone(), now_ms, m.session_timeout_ms);
            member.epoch = classic.generation_id;
            member.previous_epoch = classic.generation_id;
            member.instance_id = m.instance_id.clone();
            member.rack_id = subscription.rack_id.filter(|r| !r.is_empty());
            member.rebalance_timeout_ms = m.rebalance_timeout_ms;
            member.client_id = m.client_id.clone();
            member.client_host = m.client_host.clone();
            member.subscribed_topic_names = subscription.topics.into_iter().collect();
            member.assigned = assigned.clone();
            member.classic = Some(ClassicMemberMetadata { session_timeout_ms: m.session_timeout_ms, protocols: m.protocols.clone() });
            g.target.insert(m.member_id.clone(), assigned);
            g.members.insert(m.member_id.clone(), member);
        }
        g.subscribed_topics = g.subscribed(topics);
        self.groups.insert(group_id.to_string(), g);
        Ok(())
    }

    /// The groups converted back to classic groups since the last call (by `heartbeat`, `tick`).
    pub fn take_downgrades(&mut self) -> Vec<Downgraded> {
        std::mem::take(&mut self.downgrades)
    }

    /// Removes member `member_id`, or, when the members left all use the classic protocol and
    /// the policy allows it, converts the group to a classic group without it (Kafka's
    /// consumerGroupFenceMember and validateOnlineDowngradeWithFencedMember).
    pub(super) fn fence(&mut self, group_id: &str, member_id: &str, topics: &Topics) {
        let config = self.config_for(group_id).clone();
        let Some(g) = self.groups.get_mut(group_id) else { return };
        let downgrade = config.migration_policy.downgrade_enabled()
            && g.members.len() > 1
            && g.members.values().all(|m| m.id == member_id || m.classic.is_some());
        if !downgrade {
            g.remove_member(member_id, topics, &config);
            return;
        }
        let Some(g) = self.groups.remove(group_id) else { return };
        let mut keys: Vec<&super::record::Key> = g.persisted.keys().collect();
        keys.sort_by_key(|k| (k.kind == super::record::KEY_METADATA, k.kind));
        let tombstones = keys.into_iter().map(|k| (k.encode(), None)).collect();
        let members = g
            .members
            .values()
            .filter(|m| m.id != member_id)
            .filter_map(|m| {
                let c = m.classic.as_ref()?;
                let version = c.protocols.first().and_then(|(_, md)| embedded::version(md).ok()).unwrap_or(0);
                Some(MigratingMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: c.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: c.protocols.clone(),
                    assignment: embedded::encode_assignment(version, &m.assigned, topics),
                })
            })
            .collect();
        let group = MigratingGroup { generation_id: g.epoch, protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()), protocol_name: None, members };
        self.downgrades.push(Downgraded { group_id: group_id.to_string(), tombstones, group });
    }

    /// JoinGroup by a classic member into consumer group `group_id`, which has members (the
    /// caller checked): Kafka's classicGroupJoinToConsumerGroup. The answer is final (the member
    /// never waits for others); the group's records follow from `take_records`.
    pub fn classic_join(&mut self, req: JoinRequest, topics: &Topics, now_ms: i64) -> JoinResponse {
        let config = self.config_for(&req.group_id).clone();
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return JoinResponse::error(ResponseError::UnknownMemberId, &req.member_id);
        };
        let unknown = req.member_id.is_empty();
        let member_id = if unknown { uuid::Uuid::new_v4().to_string() } else { req.member_id.clone() };
        if !group.members.contains_key(&member_id) && config.max_size.is_some_and(|max| group.members.len() >= max) {
            return JoinResponse::error(ResponseError::GroupMaxSizeReached, &member_id);
        }
        // Kafka's supportsClassicProtocols: the consumer protocol type, and a protocol every
        // classic member supports.
        let classic_members: Vec<&Member> = group.members.values().filter(|m| m.classic.is_some() && m.id != member_id).collect();
        let supported = req.protocol_type == CONSUMER_PROTOCOL_TYPE
            && !req.protocols.is_empty()
            && (classic_members.is_empty()
                || req.protocols.iter().any(|(n, _)| classic_members.iter().all(|m| m.classic.as_ref().is_some_and(|c| c.protocols.iter().any(|(p, _)| p == n)))));
        if !supported {
            return JoinResponse::error(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }
        if req.request_version >= 4 && unknown && req.group_instance_id.is_none() {
            // The two-step join: the member comes back with this id.
            return JoinResponse::error(ResponseError::MemberIdRequired, &member_id);
        }
        let subscription = match req.protocols.first().map(|(_, md)| embedded::decode_subscription(md)) {
            Some(Ok(s)) => s,
            _ => return JoinResponse::error(ResponseError::InconsistentGroupProtocol, &req.member_id),
        };
        if let Some(instance_id) = req.group_instance_id.as_deref() {
            let holder = group.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id)).map(|m| m.id.clone());
            match holder {
                Some(old) if old != member_id && !unknown => return JoinResponse::error(ResponseError::FencedInstanceId, &member_id),
                // The instance is back under a new member id: it takes the old member's place and
                // partitions (the old id is fenced), as a classic static member does.
                Some(old) if old != member_id => group.replace_static(&old, &member_id),
                _ => {}
            }
        }
        let before = group.members.get(&member_id).cloned();
        let is_new = before.is_none();
        let mut member = before.clone().unwrap_or_else(|| Member::new(member_id.clone(), now_ms, req.session_timeout_ms));
        member.instance_id = req.group_instance_id.clone().or(member.instance_id);
        if let Some(r) = subscription.rack_id.clone().filter(|r| !r.is_empty()) {
            member.rack_id = Some(r);
        }
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        let names: std::collections::BTreeSet<String> = subscription.topics.iter().cloned().collect();
        let subscription_changed = is_new || names != member.subscribed_topic_names || before.as_ref().is_some_and(|b| b.rack_id != member.rack_id);
        member.subscribed_topic_names = names;
        member.subscribed_topic_regex = None;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.classic = Some(ClassicMemberMetadata { session_timeout_ms: req.session_timeout_ms, protocols: req.protocols.clone() });
        member.session_deadline = now_ms.saturating_add(i64::from(req.session_timeout_ms));
        // It must sync within its rebalance timeout (Kafka's sync timeout).
        member.classic_deadline = Some(now_ms.saturating_add(i64::from(req.rebalance_timeout_ms.max(0))));
        group.members.insert(member_id.clone(), member);
        group.forget_unused_regexes();
        if subscription_changed || group.subscribed(topics) != group.subscribed_topics {
            group.bump(topics, &config);
        }
        let owned = embedded::to_assignment(&subscription.owned, topics);
        group.reconcile(&member_id, Some(&owned), now_ms);
        let epoch = group.members.get(&member_id).map_or(0, |m| m.epoch);
        let protocol_name = req.protocols.first().map(|(n, _)| n.clone());
        JoinResponse {
            error: None,
            generation_id: epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name,
            leader_id: String::new(),
            member_id,
            members: Vec::new(),
        }
    }

    /// The classic member a request names (by instance id when it has one), or Kafka's error.
    fn classic_member<'g>(group: &'g mut Group, member_id: &str, instance_id: Option<&str>) -> Result<&'g mut Member, ResponseError> {
        let id = match instance_id {
            Some(i) => {
                let holder = group.members.values().find(|m| m.instance_id.as_deref() == Some(i)).map(|m| m.id.clone()).ok_or(ResponseError::UnknownMemberId)?;
                if holder != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
                holder
            }
            None => member_id.to_string(),
        };
        match group.members.get_mut(&id) {
            Some(m) if m.classic.is_some() => Ok(m),
            _ => Err(ResponseError::UnknownMemberId),
        }
    }

    /// SyncGroup by a classic member of a consumer group (Kafka's classicGroupSyncToConsumerGroup):
    /// its assigned partitions in the embedded protocol. `None`: not a consumer group here.
    pub fn classic_sync(&mut self, req: &SyncRequest, topics: &Topics, now_ms: i64) -> Option<SyncResponse> {
        let group = self.groups.get_mut(&req.group_id)?;
        let group_epoch = group.epoch;
        let m = match Self::classic_member(group, &req.member_id, req.group_instance_id.as_deref()) {
            Ok(m) => m,
            Err(e) => return Some(SyncResponse::error(e)),
        };
        if req.generation_id != m.epoch {
            return Some(SyncResponse::error(ResponseError::IllegalGeneration));
        }
        let c = m.classic.as_ref()?;
        let protocol_name = c.protocols.first().map(|(n, _)| n.clone()).unwrap_or_default();
        if req.protocol_type.as_deref().is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE) || req.protocol_name.as_deref().is_some_and(|n| n != protocol_name) {
            return Some(SyncResponse::error(ResponseError::InconsistentGroupProtocol));
        }
        if group_epoch > m.epoch && m.state != MemberState::UnrevokedPartitions {
            m.classic_deadline.get_or_insert(now_ms.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))));
            return Some(SyncResponse::error(ResponseError::RebalanceInProgress));
        }
        let version = c.protocols.first().and_then(|(_, md)| embedded::version(md).ok()).unwrap_or(0);
        let session = c.session_timeout_ms;
        m.classic_deadline = None;
        m.session_deadline = now_ms.saturating_add(i64::from(session));
        Some(SyncResponse {
            error: None,
            protocol_type: req.protocol_type.clone(),
            protocol_name: req.protocol_name.clone(),
            assignment: embedded::encode_assignment(version, &m.assigned, topics),
        })
    }

    /// Heartbeat by a classic member of a consumer group (Kafka's
    /// classicGroupHeartbeatToConsumerGroup). `None`: not a consumer group here.
    pub fn classic_heartbeat(&mut self, req: &ClassicHeartbeat, now_ms: i64) -> Option<ErrorCode> {
        let group = self.groups.get_mut(&req.group_id)?;
        let group_epoch = group.epoch;
        let waiting = group.members.get(&req.member_id).is_some_and(|m| group.waiting_on_unreleased(m));
        let m = match Self::classic_member(group, &req.member_id, req.group_instance_id.as_deref()) {
            Ok(m) => m,
            Err(e) => return Some(Some(e)),
        };
        if req.generation_id != m.epoch {
            return Some(Some(ResponseError::IllegalGeneration));
        }
        let session = m.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        m.session_deadline = now_ms.saturating_add(i64::from(session));
        let rejoin = m.epoch < group_epoch
            || m.state == MemberState::UnrevokedPartitions
            || (m.state == MemberState::UnreleasedPartitions && !waiting);
        if rejoin {
            // It must rejoin within its rebalance timeout (Kafka's join timeout).
            m.classic_deadline.get_or_insert(now_ms.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))));
            return Some(Some(ResponseError::RebalanceInProgress));
        }
        Some(None)
    }

    /// LeaveGroup of classic members of a consumer group (Kafka's
    /// classicGroupLeaveToConsumerGroup). `None`: not a consumer group here.
    pub fn classic_leave(&mut self, group_id: &str, members: &[LeaveMember], topics: &Topics) -> Option<LeaveResponse> {
        let config = self.config_for(group_id).clone();
        let group = self.groups.get_mut(group_id)?;
        let mut results = Vec::new();
        for l in members {
            let found = match l.group_instance_id.as_deref() {
                Some(i) => {
                    let holder = group.members.values().find(|m| m.instance_id.as_deref() == Some(i)).map(|m| m.id.clone());
                    match holder {
                        None => Err(ResponseError::UnknownMemberId),
                        // An admin may remove a static member by its instance id alone.
                        Some(h) if !l.member_id.is_empty() && h != l.member_id => Err(ResponseError::FencedInstanceId),
                        Some(h) => Ok(h),
                    }
                }
                None => Ok(l.member_id.clone()),
            };
            let found = found.and_then(|id| match group.members.get(&id) {
                Some(m) if m.classic.is_some() => Ok(id),
                _ => Err(ResponseError::UnknownMemberId),
            });
            match found {
                Ok(id) => {
                    group.remove_member(&id, topics, &config);
                    results.push(LeaveMemberResult { member_id: id, group_instance_id: l.group_instance_id.clone(), error: None });
                }
                Err(e) => results.push(LeaveMemberResult { member_id: l.member_id.clone(), group_instance_id: l.group_instance_id.clone(), error: Some(e) }),
            }
        }
        Some(LeaveResponse { error: None, members: results })
    }
}

impl Group {
    /// Whether partitions of `m`'s target it does not have yet are still held by other members
    /// (Kafka's waitingOnUnreleasedPartition): if not, it should rejoin to get them.
    fn waiting_on_unreleased(&self, m: &Member) -> bool {
        let Some(target) = self.target.get(&m.id) else { return false };
        target.iter().any(|(topic, ps)| {
            ps.iter().any(|p| {
                !m.assigned.get(topic).is_some_and(|a| a.contains(p)) && self.members.values().any(|o| o.id != m.id && o.holds(topic, *p))
            })
        })
    }
}
