//! ShareGroupDescribe (API 77, KIP-932): a share group's state, epochs, assignor and members with
//! their assignments. A group id that is not a share group here is GROUP_ID_NOT_FOUND, as Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_coordinator::consumer_group::Assignment as Partitions;
use strom_metadata::acl::{Operation, ResourceType};

/// "Not requested" for the authorized-operations field.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Each group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED otherwise), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: ShareGroupDescribeRequest, session: &Session) -> ShareGroupDescribeResponse {
    let authz = broker.authz(session);
    let image = broker.metadata.image();
    // Topic ids to names; a topic deleted meanwhile is left out.
    let assignment = |a: &Partitions| {
        Assignment::default().with_topic_partitions(
            a.iter()
                .filter_map(|(id, ps)| {
                    let t = image.topic_by_id(*id)?;
                    Some(
                        TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_topic_name(TopicName(StrBytes::from_string(t.name.clone())))
                            .with_partitions(ps.iter().copied().collect()),
                    )
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default().with_group_id(id.clone()).with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if !authz.allows_group(Operation::Describe, &id) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let base = if req.include_authorized_operations { base.with_authorized_operations(authz.operations(ResourceType::Group, &id)) } else { base };
            if let Err(code) = broker.groups.ready_for(id.as_str()) {
                return base.with_error_code(code.code());
            }
            let Some(g) = broker.groups.describe_share_group(id.as_str()) else {
                return base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!("Group {} is not a share group.", id.as_str()))));
            };
            let members = g
                .members
                .iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(StrBytes::from_string(m.client_id.clone()))
                        .with_client_host(StrBytes::from_string(m.client_host.clone()))
                        .with_subscribed_topic_names(m.subscribed_topic_names.iter().map(|n| TopicName(StrBytes::from_string(n.clone()))).collect())
                        .with_assignment(assignment(&m.assignment))
                })
                .collect();
            base.with_group_state(StrBytes::from_static_str(g.state))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(StrBytes::from_static_str("simple"))
                .with_members(members)
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}
