//! LeaveGroup: one member (v0-2) or a batch of members by id or instance id (v3+, KIP-345).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::{error_code, LeaveMember};

pub async fn handle(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16, session: &Session) -> LeaveGroupResponse {
    if !broker.authz(session).allows_group(Operation::Read, &req.group_id) {
        return LeaveGroupResponse::default().with_error_code(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(code) = broker.groups.ready_for(&req.group_id.to_string()) {
        return LeaveGroupResponse::default().with_error_code(code.code());
    }
    let members: Vec<LeaveMember> = if version < 3 {
        vec![LeaveMember { member_id: req.member_id.to_string(), group_instance_id: None }]
    } else {
        req.members
            .into_iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
            })
            .collect()
    };
    let group_id = req.group_id.to_string();
    let (r, _) = broker.groups.leave(&group_id, members).await;
    if version < 3 {
        // One member, reported at the top level.
        let error = r.error.or_else(|| r.members.first().and_then(|m| m.error));
        return LeaveGroupResponse::default().with_error_code(error_code(error));
    }
    // A leave whose group record could not be written (logged) still happened: the member is
    // gone, and after a restart its reloaded session simply expires.
    let top = r.error;
    let members = r
        .members
        .into_iter()
        .map(|m| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_error_code(error_code(m.error))
        })
        .collect();
    LeaveGroupResponse::default().with_error_code(error_code(top)).with_members(members)
}
