//! OffsetDelete (KIP-496): drops a group's committed offsets for some partitions, unless the
//! group is still consuming them (GROUP_SUBSCRIBED_TO_TOPIC).

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::error_code;

/// As Kafka: DELETE on the group (else GROUP_AUTHORIZATION_FAILED), READ on each topic (else
/// its partitions TOPIC_AUTHORIZATION_FAILED, and their offsets stay).
pub async fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest, session: &Session) -> OffsetDeleteResponse {
    let authz = broker.authz(session);
    if !authz.allows_group(Operation::Delete, &req.group_id) {
        return OffsetDeleteResponse::default().with_error_code(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(code) = broker.groups.ready_for(req.group_id.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(code.code());
    }
    let readable = |topic: &str| authz.allows_topic(Operation::Read, topic);
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .filter(|t| readable(&t.name))
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), p.partition_index)))
        .collect();
    let group_id = req.group_id.to_string();
    let (r, persisted) = broker.groups.with(|c| c.delete_offsets(&group_id, &partitions)).await;
    if r.error.is_some() || persisted.is_err() {
        return OffsetDeleteResponse::default().with_error_code(error_code(r.error.or(persisted.err())));
    }
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    if !readable(&t.name) {
                        return OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code());
                    }
                    let error = r
                        .partitions
                        .iter()
                        .find(|x| x.topic.as_str() == t.name.as_str() && x.partition == p.partition_index)
                        .and_then(|x| x.error);
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error_code(error))
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(parts)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
