//! ConsumerGroupDescribe (API 69, KIP-848): a consumer group's state, epochs, assignor and
//! members with their current and target assignments. A group id that is not a consumer group
//! here (a classic group, or none) is GROUP_ID_NOT_FOUND, as Kafka answers: clients then fall
//! back to DescribeGroups.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::error::ResponseError;

use crate::broker::Broker;
use strom_coordinator::consumer_group::Assignment as Partitions;

/// "Not requested" for the authorized-operations field.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Each group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED otherwise), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: ConsumerGroupDescribeRequest, session: &crate::session::Session) -> ConsumerGroupDescribeResponse {
    let authz = broker.authz(session);
    let image = broker.metadata.image();
    // Topic ids to names; a topic deleted meanwhile is left out.
    let assignment = |a: Partitions| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .filter_map(|(id, ps)| {
                    let t = image.topic_by_id(id)?;
                    Some(
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_topic_name(TopicName(StrBytes::from_string(t.name.clone())))
                            .with_partitions(ps.into_iter().collect()),
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
            if !authz.allows_group(strom_metadata::acl::Operation::Describe, &id) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let base = if req.include_authorized_operations {
                base.with_authorized_operations(authz.operations(strom_metadata::acl::ResourceType::Group, &id))
            } else {
                base
            };
            if let Err(code) = broker.groups.ready_for(id.as_str()) {
                return base.with_error_code(code.code());
            }
            let Some(g) = broker.groups.describe_consumer_group(id.as_str()) else {
                return base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!("Group {} is not a consumer group.", id.as_str()))));
            };
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_rack_id(m.rack_id.map(StrBytes::from_string))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_subscribed_topic_names(m.subscribed_topic_names.into_iter().map(|n| TopicName(StrBytes::from_string(n))).collect())
                        .with_subscribed_topic_regex(m.subscribed_topic_regex.map(StrBytes::from_string))
                        .with_assignment(assignment(m.assignment))
                        .with_target_assignment(assignment(m.target_assignment))
                        // v1's member type: 0 a classic-protocol member, 1 a consumer-protocol one.
                        .with_member_type(if m.classic { 0 } else { 1 })
                })
                .collect();
            base.with_group_state(StrBytes::from_static_str(g.state.as_str()))
                .with_group_epoch(g.group_epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(StrBytes::from_string(g.assignor_name))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
