//! AlterPartitionReassignments (KIP-455): move partitions to other brokers while they serve.
//! The rules are `Broker::reassign_partitions`; the controller finishes each move once the new
//! replicas have caught up.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::topics::Reassignment;

/// Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: AlterPartitionReassignmentsRequest, session: &Session) -> AlterPartitionReassignmentsResponse {
    if !broker.authz(session).allows_cluster(Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code())
            .with_allow_replication_factor_change(req.allow_replication_factor_change);
    }
    let changes: Vec<Reassignment> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Reassignment {
                topic: t.name.to_string(),
                index: p.partition_index,
                target: p.replicas.as_ref().map(|rs| rs.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    let mut results = broker.topics.reassign_partitions(changes, req.allow_replication_factor_change).await.into_iter();
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let resp = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match results.next() {
                        Some(Err(e)) => resp.with_error_code(e.code.code()).with_error_message(Some(StrBytes::from_string(e.message))),
                        _ => resp,
                    }
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}
