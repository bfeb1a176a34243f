//! Heartbeat: keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS).

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::{error_code, HeartbeatRequest as Beat};

pub async fn handle(broker: &Arc<Broker>, req: HeartbeatRequest, session: &Session) -> HeartbeatResponse {
    let allowed = broker.authz(session).allows_group(Operation::Read, &req.group_id);
    let ready = if allowed { broker.groups.ready_for(&req.group_id.to_string()) } else { Err(kafka_protocol::error::ResponseError::GroupAuthorizationFailed) };
    let error = match ready {
        Err(code) => Some(code),
        Ok(()) => {
            let beat = Beat {
                group_id: req.group_id.to_string(),
                generation_id: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.map(|s| s.to_string()),
            };
            broker.groups.heartbeat(beat)
        }
    };
    HeartbeatResponse::default().with_error_code(error_code(error))
}
