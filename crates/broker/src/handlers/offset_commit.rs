//! OffsetCommit: a member (or a standalone consumer, generation -1) stores its positions; the
//! answer comes once the records are in `__consumer_offsets`.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::broker::Broker;
use strom_coordinator::group::{error_code, CommitOffset, OffsetCommitRequest as Commit};

pub async fn handle(broker: &Arc<Broker>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let image = broker.metadata.image();
    let ready = broker.groups.ready_for(&req.group_id.to_string()).err();
    // Kafka answers UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist, per partition.
    let exists = |topic: &str, p: i32| image.topic(topic).is_some_and(|t| (0..t.partition_count()).contains(&p));
    let mut offsets = Vec::new();
    let mut results: Vec<(String, i32, Option<ResponseError>)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let topic = t.name.to_string();
            if ready.is_some() {
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
                    commit_timestamp_ms: None,
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
        let (committed, persisted) = broker.groups.commit_offsets(commit).await;
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
