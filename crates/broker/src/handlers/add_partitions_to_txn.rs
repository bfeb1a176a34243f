//! AddPartitionsToTxn: a transactional producer names the partitions it is about to write
//! (v0-3), or a partition leader asks whether a producer's partitions are in its transaction
//! (v4+, KIP-890 part 1's verify-only form) or adds them for a transactions v2 producer (v4+
//! without verify-only, KIP-890 part 2); several transactions per request from v4.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::txn::{legacy_error, TransactionVersion, TxnApi};

/// As Kafka: v4+ comes from brokers and needs CLUSTER_ACTION; a client's v0-3 needs WRITE on
/// the transactional id (every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each
/// topic (those partitions TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED).
pub async fn handle(broker: &Arc<Broker>, req: AddPartitionsToTxnRequest, version: i16, session: &Session) -> AddPartitionsToTxnResponse {
    let authz = broker.authz(session);
    if version <= 3 {
        let partitions = flatten(&req.v3_and_below_topics);
        let id = req.v3_and_below_transactional_id.as_str();
        let denied: Vec<bool> = partitions.iter().map(|(t, _)| !authz.allows_topic(Operation::Write, t)).collect();
        let errors = if !authz.allows_transactional_id(Operation::Write, id) {
            vec![Some(ResponseError::TransactionalIdAuthorizationFailed); partitions.len()]
        } else if denied.contains(&true) {
            denied.iter().map(|d| Some(if *d { ResponseError::TopicAuthorizationFailed } else { ResponseError::OperationNotAttempted })).collect()
        } else {
            add(broker, id, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, partitions, version).await
        };
        // Clients before v2 know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED (Kafka's mapping).
        let errors: Vec<_> = errors.into_iter().map(|e| legacy_error(TxnApi::AddPartitionsToTxn, version, e)).collect();
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results(&req.v3_and_below_topics, &errors));
    }
    if !authz.allows_cluster(Operation::ClusterAction) {
        return AddPartitionsToTxnResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let partitions = flatten(&t.topics);
        let id = t.transactional_id.as_str();
        let errors = if t.verify_only {
            broker.transactions.verify(id, t.producer_id.0, t.producer_epoch, &partitions)
        } else {
            add(broker, id, t.producer_id.0, t.producer_epoch, partitions, version).await
        };
        out.push(AddPartitionsToTxnResult::default().with_transactional_id(t.transactional_id.clone()).with_topic_results(results(&t.topics, &errors)));
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// Adds the partitions, all or none, as Kafka: if one of them does not exist, it is
/// UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED, and the coordinator is not
/// asked (a transaction must never hold a partition no leader can write a marker to).
async fn add(broker: &Arc<Broker>, id: &str, producer_id: i64, epoch: i16, partitions: Vec<(String, i32)>, version: i16) -> Vec<Option<ResponseError>> {
    let image = broker.metadata.image();
    let exists = |(topic, p): &(String, i32)| image.topic(topic).is_some_and(|t| (0..t.partition_count()).contains(p));
    if !partitions.iter().all(exists) {
        return partitions
            .iter()
            .map(|tp| Some(if exists(tp) { ResponseError::OperationNotAttempted } else { ResponseError::UnknownTopicOrPartition }))
            .collect();
    }
    let n = partitions.len();
    let client_version = TransactionVersion::for_add_partitions_to_txn(version);
    let result = broker.transactions.add_partitions(id, producer_id, epoch, partitions, client_version).await;
    vec![result.err(); n]
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p))).collect()
}

/// Per-partition answers in request order (`errors` is parallel to `flatten(topics)`).
fn results(topics: &[AddPartitionsToTxnTopic], errors: &[Option<ResponseError>]) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut errors = errors.iter();
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = errors.next().copied().flatten().map_or(0, |e| e.code());
                    AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(partitions)
        })
        .collect()
}
