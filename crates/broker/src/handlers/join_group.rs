//! JoinGroup: parks until the group's rebalance completes, then answers every member at once
//! (the leader also gets everyone's subscriptions to compute the assignment).

use kafka_protocol::error::ResponseError;
use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::{error_code, JoinRequest, JoinResponse};

pub async fn handle(
    broker: &Arc<Broker>,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    session: &Session,
) -> JoinGroupResponse {
    let peer = session.peer;
    let member_id = req.member_id.to_string();
    if !broker.authz(session).allows_group(Operation::Read, &req.group_id) {
        return encode(JoinResponse::error(ResponseError::GroupAuthorizationFailed, &member_id));
    }
    if let Err(code) = broker.groups.ready_for(&req.group_id.to_string()) {
        return encode(JoinResponse::error(code, &member_id));
    }
    let request = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id,
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 { req.session_timeout_ms } else { req.rebalance_timeout_ms },
        client_id: client_id.to_string(),
        // Kafka reports "/<ip>" as the member's host.
        client_host: format!("/{}", peer.ip()),
        request_version: version,
    };
    encode(broker.groups.join(request).await)
}

fn encode(r: JoinResponse) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(error_code(r.error))
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(r.leader_id))
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(members)
}
