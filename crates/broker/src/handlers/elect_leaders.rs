//! ElectLeaders (KIP-460): preferred or unclean leader elections on demand
//! (`kafka-leader-election.sh`, `strom leader-election`). The rules are
//! `strom_metadata::elect::elect_leader`; `TopicAdmin::elect_leaders` commits them.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::Operation;
use strom_metadata::elect::ElectionType;

use crate::broker::Broker;
use crate::session::Session;

/// Needs ALTER on the cluster, as Kafka: refused, the whole answer and every named partition
/// carry CLUSTER_AUTHORIZATION_FAILED. An election type other than 0 (preferred) or 1 (unclean)
/// is INVALID_REQUEST, the same way (Kafka's `getErrorResponse`).
pub async fn handle(broker: &Arc<Broker>, req: ElectLeadersRequest, version: i16, session: &Session) -> ElectLeadersResponse {
    if !broker.authz(session).allows_cluster(Operation::Alter) {
        return refuse(&req, version, ResponseError::ClusterAuthorizationFailed, None);
    }
    let Some(kind) = ElectionType::from_wire(req.election_type) else {
        return refuse(&req, version, ResponseError::InvalidRequest, Some(format!("Unknown election type {}", req.election_type)));
    };
    let partitions = req.topic_partitions.as_ref().map(|ts| ts.iter().map(|t| (t.topic.to_string(), t.partitions.clone())).collect());
    match broker.topics.elect_leaders(kind, partitions).await {
        Ok(results) => {
            let results = results
                .into_iter()
                .map(|(topic, parts)| {
                    let partition_result = parts
                        .into_iter()
                        .map(|(i, r)| {
                            let p = PartitionResult::default().with_partition_id(i);
                            match r {
                                Ok(()) => p,
                                Err(e) => p.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
                            }
                        })
                        .collect();
                    ReplicaElectionResult::default().with_topic(TopicName(StrBytes::from_string(topic))).with_partition_result(partition_result)
                })
                .collect();
            ElectLeadersResponse::default().with_replica_election_results(results)
        }
        Err(e) => refuse(&req, version, e.code, Some(e.message)),
    }
}

/// v0 has no top-level error code: there only the partitions carry it.
fn refuse(req: &ElectLeadersRequest, version: i16, error: ResponseError, message: Option<String>) -> ElectLeadersResponse {
    let message = message.map(StrBytes::from_string);
    let results = req
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let partition_result = t
                .partitions
                .iter()
                .map(|&i| PartitionResult::default().with_partition_id(i).with_error_code(error.code()).with_error_message(message.clone()))
                .collect();
            ReplicaElectionResult::default().with_topic(t.topic.clone()).with_partition_result(partition_result)
        })
        .collect();
    let top = if version >= 1 { error.code() } else { 0 };
    ElectLeadersResponse::default().with_error_code(top).with_replica_election_results(results)
}
