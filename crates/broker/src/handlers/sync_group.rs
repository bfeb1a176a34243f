//! SyncGroup: the leader hands in the assignment; every member (the leader too) parks until
//! then and leaves with its own share.

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::{error_code, SyncRequest, SyncResponse};

pub async fn handle(broker: &Arc<Broker>, req: SyncGroupRequest, session: &Session) -> SyncGroupResponse {
    let allowed = broker.authz(session).allows_group(Operation::Read, &req.group_id);
    let ready = if allowed { broker.groups.ready_for(&req.group_id.to_string()) } else { Err(kafka_protocol::error::ResponseError::GroupAuthorizationFailed) };
    let r = match ready {
        Err(code) => SyncResponse::error(code),
        Ok(()) => {
            let request = SyncRequest {
                group_id: req.group_id.to_string(),
                generation_id: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.map(|s| s.to_string()),
                protocol_type: req.protocol_type.map(|s| s.to_string()),
                protocol_name: req.protocol_name.map(|s| s.to_string()),
                assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
            };
            broker.groups.sync(request).await
        }
    };
    SyncGroupResponse::default()
        .with_error_code(error_code(r.error))
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
        .with_assignment(r.assignment)
}
