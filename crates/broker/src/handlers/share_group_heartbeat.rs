//! ShareGroupHeartbeat (API 76, KIP-932): a share consumer joins (epoch 0, with its
//! subscription), heartbeats with its epoch and hears its assignment, or leaves (epoch -1). The
//! group's coordinator answers; a leaving member's records are released first.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_coordinator::group::error_code;
use strom_coordinator::share_group::ShareHeartbeat;
use strom_metadata::acl::Operation;

/// Needs READ on the group (GROUP_AUTHORIZATION_FAILED), and DESCRIBE on each subscribed topic
/// (TOPIC_AUTHORIZATION_FAILED), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: ShareGroupHeartbeatRequest, client_id: &str, session: &Session) -> ShareGroupHeartbeatResponse {
    let refuse = |code: ResponseError| ShareGroupHeartbeatResponse::default().with_error_code(code.code()).with_member_epoch(req.member_epoch);
    let authz = broker.authz(session);
    if !authz.allows_group(Operation::Read, &req.group_id) {
        return refuse(ResponseError::GroupAuthorizationFailed);
    }
    if let Some(names) = &req.subscribed_topic_names {
        if names.iter().any(|n| !authz.allows_topic(Operation::Describe, n)) {
            return refuse(ResponseError::TopicAuthorizationFailed);
        }
    }
    if let Err(code) = broker.groups.ready_for(req.group_id.as_str()) {
        return refuse(code);
    }
    let beat = ShareHeartbeat {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|s| s.to_string()),
        subscribed_topic_names: req.subscribed_topic_names.map(|ns| ns.into_iter().map(|n| n.to_string()).collect()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", session.peer.ip()),
    };
    let r = broker.groups.share_heartbeat(beat).await;
    if let (Some(code), Some(message)) = (r.error, &r.error_message) {
        // Debug only: a client may repeat a refused heartbeat every few seconds.
        tracing::debug!(group = %req.group_id.as_str(), error = ?code, message = %message, "share-group heartbeat refused");
    }
    let assignment = r.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(topic_id, ps)| TopicPartitions::default().with_topic_id(topic_id).with_partitions(ps.into_iter().collect()))
                .collect(),
        )
    });
    ShareGroupHeartbeatResponse::default()
        .with_error_code(error_code(r.error))
        .with_error_message(r.error_message.map(StrBytes::from_string))
        .with_member_id(r.member_id.map(StrBytes::from_string))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
        .with_assignment(assignment)
}
