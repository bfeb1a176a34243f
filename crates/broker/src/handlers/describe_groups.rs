//! DescribeGroups: state, protocol and members of each group. As Kafka: by the group's
//! coordinator only (NOT_COORDINATOR elsewhere, also before `__consumer_offsets` exists;
//! COORDINATOR_LOAD_IN_PROGRESS while its partition loads), and there an unknown group is
//! reported as Dead with no error.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::{Operation, ResourceType};
use strom_coordinator::group::error_code;

/// "Not requested" for the authorized-operations field.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Each group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED otherwise), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: DescribeGroupsRequest, session: &Session) -> DescribeGroupsResponse {
    let authz = broker.authz(session);
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if !authz.allows_group(Operation::Describe, &id) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code())
                    .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            }
            let operations = if req.include_authorized_operations { authz.operations(ResourceType::Group, &id) } else { OPERATIONS_NOT_REQUESTED };
            if let Err(code) = broker.groups.ready_for(id.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(code.code())
                    .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            }
            // A KIP-848 consumer group is not described here: Kafka 3.9 reports it Dead (its
            // offsets-only classic entry would otherwise show as an Empty classic group).
            if broker.groups.is_consumer_group(id.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_group_state(StrBytes::from_static_str("Dead"))
                    .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            }
            let g = broker.groups.read(|c| c.describe_group(id.as_str()));
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            DescribedGroup::default()
                .with_error_code(error_code(g.error))
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_group_state(StrBytes::from_static_str(g.state.as_str()))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_protocol_data(StrBytes::from_string(g.protocol))
                .with_members(members)
                .with_authorized_operations(operations)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
