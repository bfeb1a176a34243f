//! ConsumerGroupHeartbeat (API 68, KIP-848): a member joins (epoch 0), heartbeats with its
//! epoch and the partitions it owns, and hears its assignment and new epoch; epoch -1 leaves
//! (-2 for a static member). The coordinator of the group answers, as for classic groups, once
//! the group's changed records are replicated in `__consumer_offsets`.

use kafka_protocol::error::ResponseError;
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use strom_coordinator::consumer_group::{Assignment as Partitions, HeartbeatRequest};
use strom_coordinator::group::error_code;

/// Needs READ on the group (GROUP_AUTHORIZATION_FAILED), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: ConsumerGroupHeartbeatRequest, client_id: &str, session: &crate::session::Session) -> ConsumerGroupHeartbeatResponse {
    let peer = session.peer;
    if !broker.authz(session).allows_group(strom_metadata::acl::Operation::Read, &req.group_id) {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code()).with_member_epoch(req.member_epoch);
    }
    if let Err(code) = broker.groups.ready_for(req.group_id.as_str()) {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(code.code()).with_member_epoch(req.member_epoch);
    }
    let owned = req.topic_partitions.map(|tps| {
        let mut owned = Partitions::new();
        for tp in tps {
            owned.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        owned
    });
    let beat = HeartbeatRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req.subscribed_topic_names.map(|ns| ns.into_iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
    };
    let r = broker.groups.consumer_heartbeat(beat).await;
    if let (Some(code), Some(message)) = (r.error, &r.error_message) {
        // Debug only: a client may repeat a refused heartbeat every few seconds.
        tracing::debug!(group = %req.group_id.as_str(), error = ?code, message = %message, "consumer-group heartbeat refused");
    }
    let assignment = r.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(topic_id, ps)| TopicPartitions::default().with_topic_id(topic_id).with_partitions(ps.into_iter().collect()))
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error_code(r.error))
        .with_error_message(r.error_message.map(StrBytes::from_string))
        .with_member_id(r.member_id.map(StrBytes::from_string))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(assignment)
}
