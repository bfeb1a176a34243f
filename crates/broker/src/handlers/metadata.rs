//! Metadata: brokers, topics and partition leaders, from one snapshot of the metadata image.
//! Unknown topics are created here when `auto.create.topics.enable` and the client allow it,
//! as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::TopicImage;
use crate::topics::validate_topic_name;

/// "Not requested" for the authorized-operations fields.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = BrokerId(broker.config.node_id);
    // v0 had no flag: auto-creation was always requested.
    let client_allows_create = version < 4 || req.allow_auto_topic_creation;
    let image = broker.metadata.image();
    // In v0 the list could not be null: an empty list meant "all topics".
    let requested = match req.topics {
        Some(t) if t.is_empty() && version == 0 => None,
        other => other,
    };
    let topics = match requested {
        None => image.topics.values().map(|t| topic_response(node, t)).collect(),
        Some(requested) => requested
            .into_iter()
            .map(|t| {
                let name = t.name.map(|n| n.0.to_string());
                let found = match &name {
                    Some(n) => image.topic(n).cloned(),
                    None => image.topic_by_id(t.topic_id).cloned(),
                };
                match (found, name) {
                    (Some(topic), _) => topic_response(node, &topic),
                    (None, Some(name)) => {
                        if let Err(e) = validate_topic_name(&name) {
                            return error_topic(Some(name), Uuid::nil(), e.code);
                        }
                        if client_allows_create && broker.config.auto_create_topics {
                            match broker.auto_create_topic(&name) {
                                Ok(topic) => topic_response(node, &topic),
                                Err(e) => error_topic(Some(name), Uuid::nil(), e.code),
                            }
                        } else {
                            error_topic(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition)
                        }
                    }
                    (None, None) => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                }
            })
            .collect(),
    };
    let mut brokers = Vec::new();
    if let Some(l) = broker.config.advertised_listeners.first() {
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(StrBytes::from_string(l.host.clone()))
                .with_port(i32::from(l.port)),
        );
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn topic_response(node: BrokerId, t: &TopicImage) -> MetadataResponseTopic {
    let partitions = (0..t.partitions)
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(crate::group_service::is_internal(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn error_topic(name: Option<String>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
