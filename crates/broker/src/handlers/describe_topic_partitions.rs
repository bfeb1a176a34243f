//! DescribeTopicPartitions (KIP-966; Kafka 4's admin client describes topics with it): topics
//! with their ids and partitions (leader, epoch, replicas, ISR, offline replicas), sorted by
//! name and paged: at most `response_partition_limit` partitions (capped by
//! `max.request.partition.size.limit`) per response, with a cursor (topic, partition) where the
//! next request continues. Kafka's rules (`DescribeTopicPartitionsRequestHandler`,
//! `KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse`), from one image snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{Operation, ResourceType};
use strom_metadata::{MetadataImage, TopicImage};
use uuid::Uuid;

use crate::broker::Broker;
use crate::coordinator_topic::is_internal;
use crate::session::Session;
use crate::topics::validate_topic_name;

/// An empty topic list asks for every topic (the ones the principal may not DESCRIBE left out);
/// a named topic the principal may not describe is answered TOPIC_AUTHORIZATION_FAILED after
/// the others, without an id, whether it exists or not. A cursor must name a requested topic
/// and a partition ≥ 0, or every requested topic is answered INVALID_REQUEST.
pub fn handle(broker: &Arc<Broker>, req: DescribeTopicPartitionsRequest, session: &Session) -> DescribeTopicPartitionsResponse {
    let image = broker.metadata.image();
    let authz = broker.authz(session);
    let all = req.topics.is_empty();
    let cursor_topic = req.cursor.as_ref().map(|c| c.topic_name.to_string()).unwrap_or_default();
    let from_cursor = |name: &str| name >= cursor_topic.as_str();
    let topics: BTreeSet<String> = if all {
        image.topics.keys().filter(|n| from_cursor(n)).cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).filter(|n| from_cursor(n)).collect()
    };
    if let Some(c) = &req.cursor {
        let invalid = if !all && !topics.contains(c.topic_name.as_str()) {
            Some(format!("DescribeTopicPartitionsRequest topic list should contain the cursor topic: {}", c.topic_name.as_str()))
        } else if c.partition_index < 0 {
            Some(format!("DescribeTopicPartitionsRequest cursor partition must be valid: {}-{}", c.topic_name.as_str(), c.partition_index))
        } else {
            None
        };
        if let Some(why) = invalid {
            tracing::debug!(%why, "DescribeTopicPartitions refused");
            let topics = req.topics.iter().map(|t| error_topic(t.name.to_string(), Uuid::nil(), ResponseError::InvalidRequest)).collect();
            return DescribeTopicPartitionsResponse::default().with_topics(topics);
        }
    }
    let (authorized, refused): (Vec<String>, Vec<String>) = topics.into_iter().partition(|n| authz.allows_topic(Operation::Describe, n));
    let limit = req.response_partition_limit.min(broker.config.max_request_partition_size_limit).max(1) as usize;
    let start_of = |name: &str| match &req.cursor {
        Some(c) if c.topic_name.as_str() == name => c.partition_index as usize,
        _ => 0,
    };
    let mut remaining = limit;
    let mut out = Vec::new();
    let mut next_cursor = None;
    for name in authorized {
        if remaining == 0 {
            // Every partition of the topics before is listed: the next page starts here.
            next_cursor = Some(Cursor::default().with_topic_name(TopicName(StrBytes::from_string(name))).with_partition_index(0));
            break;
        }
        match image.topic(&name) {
            Some(t) => {
                let start = start_of(&name);
                let end = t.partitions.len().min(start.saturating_add(remaining));
                let partitions = partitions(&image, t, start, end);
                let listed = partitions.len();
                out.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                        .with_topic_id(t.id)
                        .with_is_internal(is_internal(&name))
                        .with_partitions(partitions)
                        .with_topic_authorized_operations(authz.operations(ResourceType::Topic, &name)),
                );
                if end < t.partitions.len() {
                    next_cursor = Some(Cursor::default().with_topic_name(TopicName(StrBytes::from_string(name))).with_partition_index(end as i32));
                    break;
                }
                remaining -= listed;
            }
            // Only a named topic can be missing (listing all takes names from the image).
            None if !all => {
                let code = if validate_topic_name(&name).is_ok() { ResponseError::UnknownTopicOrPartition } else { ResponseError::InvalidTopicException };
                out.push(error_topic(name, Uuid::nil(), code));
            }
            None => {}
        }
    }
    if !all {
        out.extend(refused.into_iter().map(|n| error_topic(n, Uuid::nil(), ResponseError::TopicAuthorizationFailed)));
    }
    DescribeTopicPartitionsResponse::default().with_topics(out).with_next_cursor(next_cursor)
}

/// Partitions `start..end` of `t` (an empty list when `start` is past the last). The leader is
/// given as the image has it (-1 while there is none), offline replicas are those on a fenced
/// or unregistered broker; Strom has no eligible leader replicas (KIP-966's ELR): empty lists.
fn partitions(image: &MetadataImage, t: &TopicImage, start: usize, end: usize) -> Vec<DescribeTopicPartitionsResponsePartition> {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    (start..end)
        .filter_map(|i| Some((i, t.partitions.get(i)?)))
        .map(|(i, p)| {
            let offline: Vec<i32> = p.replicas.iter().copied().filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced)).collect();
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(ids(&offline))
        })
        .collect()
}

fn error_topic(name: String, id: Uuid, code: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code.code())
        .with_name(Some(TopicName(StrBytes::from_string(name))))
        .with_topic_id(id)
        .with_is_internal(false)
}
