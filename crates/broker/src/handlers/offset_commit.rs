//! OffsetCommit: a member (or a standalone consumer, generation -1) stores its positions; the
//! answer comes once the records are in `__consumer_offsets`.
//!
//! The old versions, as Kafka 3.9 serves them: v1 names each partition's commit time (-1: the
//! coordinator's); v0 stored offsets in ZooKeeper, which a KRaft broker refuses with
//! UNSUPPORTED_VERSION on every partition once any partition exists (`KafkaApis`'
//! `commitOffsetsToZookeeper` throws, and the request's error response answers for all).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::group::{error_code, CommitOffset, OffsetCommitRequest as Commit};

pub async fn handle(broker: &Arc<Broker>, req: OffsetCommitRequest, version: i16, session: &Session) -> OffsetCommitResponse {
    commit(broker, req, version, &[], session).await
}

/// OffsetCommit v1: `commit_timestamps[t][p]` is the commit time of `topics[t].partitions[p]`.
pub async fn handle_v1(broker: &Arc<Broker>, req: OffsetCommitRequest, commit_timestamps: &[Vec<i64>], session: &Session) -> OffsetCommitResponse {
    commit(broker, req, 1, commit_timestamps, session).await
}

/// As Kafka: READ on the group (else every partition GROUP_AUTHORIZATION_FAILED), READ on each
/// topic (else its partitions TOPIC_AUTHORIZATION_FAILED).
async fn commit(broker: &Arc<Broker>, req: OffsetCommitRequest, version: i16, commit_timestamps: &[Vec<i64>], session: &Session) -> OffsetCommitResponse {
    let authz = broker.authz(session);
    if !authz.allows_group(Operation::Read, &req.group_id) {
        return every_partition(&req, ResponseError::GroupAuthorizationFailed);
    }
    let image = broker.metadata.image();
    // Kafka answers UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist, per partition.
    let exists = |topic: &str, p: i32| image.topic(topic).is_some_and(|t| (0..t.partition_count()).contains(&p));
    // v0 never reaches a coordinator in Kafka: unknown partitions are reported as such, and if
    // any partition exists, every one is answered UNSUPPORTED_VERSION.
    if version == 0 && req.topics.iter().any(|t| t.partitions.iter().any(|p| exists(t.name.as_str(), p.partition_index))) {
        return every_partition(&req, ResponseError::UnsupportedVersion);
    }
    // (A v0 request that gets past here names no existing partition: no coordinator is asked.)
    let ready = if version == 0 { None } else { broker.groups.ready_for(&req.group_id.to_string()).err() };
    let mut offsets = Vec::new();
    let mut results: Vec<(String, i32, Option<ResponseError>)> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for (pi, p) in t.partitions.iter().enumerate() {
            let topic = t.name.to_string();
            // -1 is Kafka's DEFAULT_TIMESTAMP: the coordinator's time.
            let commit_timestamp_ms = commit_timestamps.get(ti).and_then(|ts| ts.get(pi)).copied().filter(|ts| *ts != -1);
            if !authz.allows_topic(Operation::Read, &topic) {
                results.push((topic, p.partition_index, Some(ResponseError::TopicAuthorizationFailed)));
            } else if ready.is_some() {
                results.push((topic, p.partition_index, ready));
            } else if !exists(&topic, p.partition_index) {
                results.push((topic, p.partition_index, Some(ResponseError::UnknownTopicOrPartition)));
            } else {
                offsets.push(CommitOffset {
                    topic,
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    commit_timestamp_ms,
                });
            }
        }
    }
    if !offsets.is_empty() {
        let commit = Commit {
            group_id: req.group_id.to_string(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|s| s.to_string()),
            offsets,
        };
        let (committed, persisted) = broker.groups.commit_offsets(commit, version).await;
        for r in committed {
            // Not in the log means not committed, whatever the state machine said.
            let error = r.error.or(persisted.err());
            results.push((r.topic, r.partition, error));
        }
    }
    // Answer in request order, topic by topic.
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for t in &req.topics {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let error = results
                    .iter()
                    .find(|(topic, i, _)| topic.as_str() == t.name.as_str() && *i == p.partition_index)
                    .and_then(|(_, _, e)| *e);
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error_code(error))
            })
            .collect();
        topics.push(OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_topic_id(t.topic_id).with_partitions(partitions));
    }
    OffsetCommitResponse::default().with_topics(topics)
}

fn every_partition(req: &OffsetCommitRequest, error: ResponseError) -> OffsetCommitResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(error.code()))
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
