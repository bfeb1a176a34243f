//! WriteTxnMarkers: a transaction coordinator (on this or another broker) asks this partition
//! leader to end a transaction in some of its partitions (`txn_markers::MarkerWriter::write_local`).

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use strom_storage::TxnMarker;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// Sent by transaction coordinators: needs CLUSTER_ACTION (every partition answered
/// CLUSTER_AUTHORIZATION_FAILED otherwise), as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: WriteTxnMarkersRequest, session: &Session) -> WriteTxnMarkersResponse {
    let allowed = broker.authz(session).allows_cluster(Operation::ClusterAction);
    let mut markers = Vec::with_capacity(req.markers.len());
    for m in req.markers {
        if !allowed {
            let code = kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t.partition_indexes.iter().map(|&i| WritableTxnMarkerPartitionResult::default().with_partition_index(i).with_error_code(code)).collect();
                    WritableTxnMarkerTopicResult::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            markers.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
            continue;
        }
        let marker = TxnMarker { producer_id: m.producer_id.0, producer_epoch: m.producer_epoch, commit: m.transaction_result, coordinator_epoch: m.coordinator_epoch };
        let partitions: Vec<(String, i32)> = m.topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&i| (t.name.to_string(), i))).collect();
        let mut errors = broker.transactions.markers.write_local(&marker, &partitions).await.into_iter();
        let topics = m
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|&i| {
                        let code = errors.next().flatten().map_or(0, |e| e.code());
                        WritableTxnMarkerPartitionResult::default().with_partition_index(i).with_error_code(code)
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default().with_name(t.name).with_partitions(partitions)
            })
            .collect();
        markers.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
