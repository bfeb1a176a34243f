//! ListPartitionReassignments: the partitions being moved, with their replicas, the ones being
//! added and the ones being removed (all of them, or those of the requested partitions).

use std::sync::Arc;

use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka.
pub fn handle(broker: &Arc<Broker>, req: ListPartitionReassignmentsRequest, session: &Session) -> ListPartitionReassignmentsResponse {
    if !broker.authz(session).allows_cluster(Operation::Describe) {
        return ListPartitionReassignmentsResponse::default().with_error_code(kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code());
    }
    let image = broker.metadata.image();
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| t.name.as_str() == topic && t.partition_indexes.contains(&index)),
    };
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let topics = image
        .topics
        .values()
        .filter_map(|t| {
            let partitions: Vec<OngoingPartitionReassignment> = t
                .partitions
                .iter()
                .enumerate()
                .filter(|(i, p)| p.reassigning() && wanted(&t.name, *i as i32))
                .map(|(i, p)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(i as i32)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding))
                        .with_removing_replicas(ids(&p.removing))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default().with_name(TopicName(StrBytes::from_string(t.name.clone()))).with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
