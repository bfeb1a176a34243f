//! The classic side of the online migration between the group protocols (KIP-848's
//! upgrade/downgrade, Kafka's convertToConsumerGroup and convertToClassicGroup): a classic
//! group's members handed to a consumer group, and a consumer group's classic members taken
//! back. The group's committed offsets stay here either way (this coordinator keeps every group
//! id's offsets), so the classic group itself is never removed: it is left Empty while the
//! consumer group holds the members.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::coordinator::GroupCoordinator;
use super::group::Group;
use super::member::{select_protocol, Member};
use super::types::*;

/// One member of a group that changes protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratingMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Its current assignment in the embedded consumer protocol (empty: none).
    pub assignment: Bytes,
}

/// A group's membership as it changes protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratingGroup {
    /// The classic generation (upgrade), or the consumer group's epoch (downgrade).
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    /// The protocol the classic group selected (`None` before its first rebalance completed).
    pub protocol_name: Option<String>,
    pub members: Vec<MigratingMember>,
}

impl GroupCoordinator {
    /// The members of classic group `group_id` as a consumer group would take them over; `None`
    /// when it has none.
    pub fn migrating_members(&self, group_id: &str) -> Option<MigratingGroup> {
        let g = self.groups.get(group_id)?;
        if g.members.is_empty() {
            return None;
        }
        Some(MigratingGroup {
            generation_id: g.generation_id,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            members: g
                .members
                .iter()
                .map(|m| MigratingMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m.protocols.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// The upgrade: classic group `group_id` gives its members to a consumer group. Parked
    /// JoinGroup and SyncGroup requests are answered REBALANCE_IN_PROGRESS (their members rejoin,
    /// now into the consumer group, as Kafka's convertToConsumerGroup), and the group is left
    /// Empty with its offsets, its record written so (where Kafka writes a tombstone: Strom's
    /// classic entry also holds the offsets a tombstone would drop on replay).
    pub fn release_members(&mut self, group_id: &str, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.with_group(group_id, now_ms, &mut fx, |g, ctx| {
            let ids: Vec<String> = g.members.iter().map(|m| m.id.clone()).collect();
            for id in ids {
                g.remove_member(&id, ResponseError::RebalanceInProgress, ctx);
            }
            g.pending.clear();
            g.rebalance = None;
            g.leader_id = None;
            g.protocol_name = None;
            g.transition(GroupState::Empty, ctx.now);
            g.persist(ctx);
        });
        fx
    }

    /// The downgrade: a consumer group's classic members become classic group `group_id`'s, at
    /// generation `generation_id` with their assignments, Stable, and a rebalance starts at
    /// once (Kafka's convertToClassicGroup: the members hear REBALANCE_IN_PROGRESS on their next
    /// heartbeat and rejoin). The group's offsets, kept here, stay.
    pub fn adopt_members(&mut self, group_id: &str, group: MigratingGroup, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now_ms));
        self.with_group(group_id, now_ms, &mut fx, |g, ctx| {
            g.generation_id = group.generation_id;
            g.protocol_type = group.protocol_type;
            g.members = group
                .members
                .into_iter()
                .map(|m| Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m.protocols,
                    assignment: m.assignment,
                    join_ticket: None,
                    sync_ticket: None,
                    last_heartbeat_ms: ctx.now,
                })
                .collect();
            g.protocol_name = select_protocol(&g.members);
            g.leader_id = g.members.first().map(|m| m.id.clone());
            g.pending.clear();
            g.rebalance = None;
            g.transition(GroupState::Stable, ctx.now);
            // Written Stable with the assignments first: the rebalance's own record follows.
            g.persist(ctx);
            g.maybe_prepare_rebalance(ctx);
        });
        fx
    }
}
