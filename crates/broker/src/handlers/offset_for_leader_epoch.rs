//! OffsetForLeaderEpoch: where a leader epoch ends in this leader's log (KIP-101, KIP-279).
//! Followers ask it before copying from a new leader, to cut a suffix the new leader never had;
//! consumers ask it after a leader change to detect log truncation (KIP-320).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// As Kafka: CLUSTER_ACTION on the cluster (a follower) allows every topic, else each topic needs
/// DESCRIBE (a consumer validating its position after a leader change).
pub fn handle(broker: &Arc<Broker>, req: OffsetForLeaderEpochRequest, session: &Session) -> OffsetForLeaderEpochResponse {
    let authz = broker.authz(session);
    let cluster_action = authz.allows_cluster(Operation::ClusterAction);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    if !cluster_action && !authz.allows_topic(Operation::Describe, &t.topic) {
                        return resp.with_error_code(kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code());
                    }
                    match end_offset(broker, t.topic.as_str(), p.partition, p.current_leader_epoch, p.leader_epoch) {
                        Ok((epoch, end)) => resp.with_leader_epoch(epoch).with_end_offset(end),
                        Err(code) => resp.with_error_code(code.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// Kafka's answer (`Partition::epoch_end`), from the partition's leader only.
fn end_offset(broker: &Broker, topic: &str, index: i32, current: i32, epoch: i32) -> Result<(i32, i64), ResponseError> {
    broker.replicas.leader(topic, index)?.epoch_end(current, epoch)
}
