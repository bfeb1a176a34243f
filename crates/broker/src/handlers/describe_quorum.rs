//! DescribeQuorum (KIP-595, KIP-836; `kafka-metadata-quorum.sh describe`, `strom
//! metadata-quorum`): the controller quorum's leader, epoch, high watermark and each voter's
//! progress, from the active controller (`Controller::describe_quorum`, forwarded there when
//! this node is not it, as a Kafka broker forwards the request to its controller).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::Operation;

use crate::broker::Broker;
use crate::session::Session;

/// The one partition a quorum describes, as Kafka names its metadata log.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// Needs DESCRIBE on the cluster (top-level CLUSTER_AUTHORIZATION_FAILED). The request must name
/// exactly `__cluster_metadata` partition 0, else each named partition is answered
/// UNKNOWN_TOPIC_OR_PARTITION; with no active controller reachable, NOT_LEADER_OR_FOLLOWER
/// (retriable), as Kafka's Raft client answers.
pub async fn handle(broker: &Arc<Broker>, req: DescribeQuorumRequest, version: i16, session: &Session) -> DescribeQuorumResponse {
    if !broker.authz(session).allows_cluster(Operation::Describe) {
        // The error message came with v2.
        let message = (version >= 2).then(|| StrBytes::from_static_str("Cluster authorization failed."));
        return DescribeQuorumResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()).with_error_message(message);
    }
    let valid = matches!(req.topics.as_slice(), [t] if t.topic_name.as_str() == METADATA_TOPIC && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0));
    if !valid {
        return partition_errors(&req, ResponseError::UnknownTopicOrPartition);
    }
    let info = match broker.metadata.describe_quorum().await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "DescribeQuorum: no answer from the active controller");
            return partition_errors(&req, ResponseError::NotLeaderOrFollower);
        }
    };
    // The timestamps came with v1, the nodes and their endpoints with v2 (KIP-853).
    let state = |r: &strom_controller::ReplicaInfo| {
        let s = ReplicaState::default().with_replica_id(BrokerId(r.id)).with_log_end_offset(r.log_end_offset);
        if version >= 1 { s.with_last_fetch_timestamp(r.last_fetch_ms).with_last_caught_up_timestamp(r.last_caught_up_ms) } else { s }
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(info.leader_id))
        .with_leader_epoch(info.leader_epoch)
        .with_high_watermark(info.high_watermark)
        .with_current_voters(info.voters.iter().map(state).collect())
        .with_observers(info.observers.iter().map(state).collect());
    // v2 lists the voters' CONTROLLER endpoints (a single node has no such listener).
    let cluster = &broker.config.cluster;
    let nodes = info
        .voters
        .iter()
        .filter(|_| version >= 2)
        .map(|v| {
            let listeners = match (&cluster.controller_listener, cluster.voters.get(&v.id)) {
                (Some(l), Some((host, port))) => {
                    vec![Listener::default().with_name(StrBytes::from_string(l.name.clone())).with_host(StrBytes::from_string(host.clone())).with_port(*port)]
                }
                _ => Vec::new(),
            };
            Node::default().with_node_id(BrokerId(v.id)).with_listeners(listeners)
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default().with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC))).with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// Kafka's `getPartitionLevelErrorResponse`: every named partition with `error`.
fn partition_errors(req: &DescribeQuorumRequest, error: ResponseError) -> DescribeQuorumResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| PartitionData::default().with_partition_index(p.partition_index).with_error_code(error.code())).collect();
            TopicData::default().with_topic_name(t.topic_name.clone()).with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}
