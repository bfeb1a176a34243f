//! AlterShareGroupOffsets (API 91, KIP-932): sets share partitions' start offsets
//! (`kafka-share-groups.sh --reset-offsets`); each starts again there with nothing in flight.
//! Only while the group has no members: NON_EMPTY_GROUP otherwise, as Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{AlterShareGroupOffsetsResponsePartition as Partition, AlterShareGroupOffsetsResponseTopic as Topic};
use kafka_protocol::messages::{AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse};
use uuid::Uuid;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Needs READ on the group and on each topic, as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: AlterShareGroupOffsetsRequest, session: &Session) -> AlterShareGroupOffsetsResponse {
    let authz = broker.authz(session);
    let top = |code: ResponseError| AlterShareGroupOffsetsResponse::default().with_error_code(code.code());
    if !authz.allows_group(Operation::Read, &req.group_id) {
        return top(ResponseError::GroupAuthorizationFailed);
    }
    if let Err(code) = broker.groups.ready_for(req.group_id.as_str()) {
        return top(code);
    }
    if broker.groups.is_consumer_group(req.group_id.as_str()) {
        return top(ResponseError::GroupIdNotFound);
    }
    let image = broker.metadata.image();
    let group_id = req.group_id.to_string();
    let (topics, stored) = broker
        .groups
        .share_call(|share, _now| {
            req.topics
                .iter()
                .map(|t| {
                    let topic = image.topics.get(t.topic_name.as_str());
                    let allowed = authz.allows_topic(Operation::Read, &t.topic_name);
                    let partitions: Vec<(i32, Option<ResponseError>)> = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let error = if !allowed {
                                Some(ResponseError::TopicAuthorizationFailed)
                            } else {
                                match topic {
                                    Some(tp) if p.partition_index >= 0 && p.partition_index < tp.partition_count() => {
                                        share.alter_start_offset(&(group_id.clone(), tp.id, p.partition_index), p.start_offset).err()
                                    }
                                    _ => Some(ResponseError::UnknownTopicOrPartition),
                                }
                            };
                            (p.partition_index, error)
                        })
                        .collect();
                    (t.topic_name.clone(), topic.map_or(Uuid::nil(), |tp| tp.id), partitions)
                })
                .collect::<Vec<_>>()
        })
        .await;
    let responses = topics
        .into_iter()
        .map(|(name, id, partitions)| {
            let partitions = partitions.into_iter().map(|(p, e)| Partition::default().with_partition_index(p).with_error_code(e.or(stored.err()).map_or(0, |e| e.code()))).collect();
            Topic::default().with_topic_name(name).with_topic_id(id).with_partitions(partitions)
        })
        .collect();
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}
