//! OffsetFetch: committed positions of one group (v0-7) or of several at once (v8+); -1 where
//! nothing is committed, every committed partition when the topic list is null. Answered by
//! the group's coordinator only, as Kafka's: NOT_COORDINATOR elsewhere (also before
//! `__consumer_offsets` exists), COORDINATOR_LOAD_IN_PROGRESS while its partition loads.
//!
//! v0 read offsets from ZooKeeper: a KRaft Kafka 3.9 answers it with UNSUPPORTED_VERSION on
//! every requested partition (`KafkaApis.handleOffsetFetchRequestFromZookeeper` throws, and the
//! request's error response puts the error on each partition, at offset -1, metadata "").

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::authz::Authz;
use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::{error_code, FetchedOffset};

pub fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16, session: &Session) -> OffsetFetchResponse {
    let authz = broker.authz(session);
    if version == 0 {
        let requested = req.topics.unwrap_or_default().into_iter().flat_map(|t| {
            t.partition_indexes.into_iter().map(move |p| FetchedOffset {
                topic: t.name.to_string(),
                partition: p,
                error: Some(ResponseError::UnsupportedVersion),
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            })
        });
        let topics = group_by_topic(requested.collect(), |name, parts| {
            OffsetFetchResponseTopic::default().with_name(name).with_partitions(
                parts
                    .into_iter()
                    .map(|o| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(o.partition)
                            .with_committed_offset(o.offset)
                            .with_metadata(Some(StrBytes::from_string(o.metadata)))
                            .with_error_code(error_code(o.error))
                    })
                    .collect(),
            )
        });
        return OffsetFetchResponse::default().with_topics(topics);
    }
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter().flat_map(|t| t.partition_indexes.into_iter().map(move |p| (t.name.to_string(), p))).collect()
                });
                // v9: a consumer-group member names itself and its epoch, which must be current.
                let (error, offsets) = match broker.groups.check_offset_fetch(g.group_id.as_str(), g.member_id.as_deref(), g.member_epoch) {
                    Some(code) if broker.groups.ready_for(g.group_id.as_str()).is_ok() => (Some(code), Vec::new()),
                    _ => fetch(broker, &authz, &g.group_id, wanted, req.require_stable),
                };
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(error_code(error))
                    .with_topics(group_by_topic(offsets, |name, parts| {
                        OffsetFetchResponseTopics::default().with_name(name).with_partitions(
                            parts
                                .into_iter()
                                .map(|o| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(o.partition)
                                        .with_committed_offset(o.offset)
                                        .with_committed_leader_epoch(o.leader_epoch)
                                        .with_metadata(Some(StrBytes::from_string(o.metadata)))
                                        .with_error_code(error_code(o.error))
                                })
                                .collect(),
                        )
                    }))
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req
        .topics
        .map(|ts| ts.into_iter().flat_map(|t| t.partition_indexes.into_iter().map(move |p| (t.name.to_string(), p))).collect());
    let (error, offsets) = fetch(broker, &authz, &req.group_id, wanted, req.require_stable);
    // Before v2 there is no top-level error: Kafka puts it on every partition.
    let partition_error = if version < 2 { error } else { None };
    let topics = group_by_topic(offsets, |name, parts| {
        OffsetFetchResponseTopic::default().with_name(name).with_partitions(
            parts
                .into_iter()
                .map(|o| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(o.partition)
                        .with_committed_offset(o.offset)
                        .with_committed_leader_epoch(o.leader_epoch)
                        .with_metadata(Some(StrBytes::from_string(o.metadata)))
                        .with_error_code(error_code(partition_error.or(o.error)))
                })
                .collect(),
        )
    });
    OffsetFetchResponse::default().with_error_code(error_code(error)).with_topics(topics)
}

/// One group's answer. On an error the requested partitions come back at -1 (Kafka's shape).
/// `require_stable` (v7+, KIP-447): a partition with a transactional commit still pending
/// answers UNSTABLE_OFFSET_COMMIT (the client retries) instead of the last committed offset.
///
/// As Kafka: the group needs DESCRIBE (else GROUP_AUTHORIZATION_FAILED); a requested topic the
/// principal may not DESCRIBE is answered TOPIC_AUTHORIZATION_FAILED, and left out of an
/// all-topics answer.
fn fetch(broker: &Arc<Broker>, authz: &Authz<'_>, group_id: &GroupId, wanted: Option<Vec<(String, i32)>>, require_stable: bool) -> (Option<ResponseError>, Vec<FetchedOffset>) {
    let unknown = |wanted: Option<Vec<(String, i32)>>| {
        wanted
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partition)| FetchedOffset { topic, partition, error: None, offset: -1, leader_epoch: -1, metadata: String::new() })
            .collect()
    };
    if !authz.allows_group(Operation::Describe, group_id) {
        return (Some(ResponseError::GroupAuthorizationFailed), unknown(wanted));
    }
    if let Err(code) = broker.groups.ready_for(group_id.as_str()) {
        return (Some(code), unknown(wanted));
    }
    let describable = |topic: &str| authz.allows_topic(Operation::Describe, topic);
    let (allowed, denied): (Option<Vec<(String, i32)>>, Vec<(String, i32)>) = match wanted {
        None => (None, Vec::new()),
        Some(w) => {
            let (a, d) = w.into_iter().partition(|(t, _)| describable(t));
            (Some(a), d)
        }
    };
    let denied = denied.into_iter().map(|(topic, partition)| FetchedOffset {
        topic,
        partition,
        error: Some(ResponseError::TopicAuthorizationFailed),
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
    });
    let r = broker.groups.read(|c| c.fetch_offsets_with(group_id.as_str(), allowed.as_deref(), require_stable));
    match r.error {
        Some(e) => (Some(e), unknown(allowed)),
        None => (None, r.partitions.into_iter().filter(|o| describable(&o.topic)).chain(denied).collect()),
    }
}

fn group_by_topic<T>(offsets: Vec<FetchedOffset>, make: impl Fn(TopicName, Vec<FetchedOffset>) -> T) -> Vec<T> {
    let mut topics: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for o in offsets {
        match topics.iter_mut().find(|(t, _)| *t == o.topic) {
            Some((_, v)) => v.push(o),
            None => topics.push((o.topic.clone(), vec![o])),
        }
    }
    topics.into_iter().map(|(t, parts)| make(TopicName(StrBytes::from_string(t)), parts)).collect()
}
