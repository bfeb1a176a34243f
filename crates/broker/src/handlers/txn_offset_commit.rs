//! TxnOffsetCommit: a transactional producer commits a group's offsets inside its transaction
//! (`send_offsets_to_transaction`). They are stored pending and become the group's committed
//! offsets only with the transaction's commit marker (KIP-98); a producer that is not the
//! group's current member (wrong generation or member id, KIP-447) is refused. As for a
//! Produce, the group's `__consumer_offsets` partition must be in the transaction (KIP-890):
//! verified for v0-4, whose clients sent AddOffsetsToTxn, added here for v5 (transactions v2),
//! whose clients do not.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::coordinator_topic::OFFSETS_TOPIC;
use crate::txn_service::{is_busy, TxnCheck};
use strom_coordinator::group::{error_code, CommitOffset, TxnOffsetCommitRequest as Commit};

/// As Kafka: WRITE on the transactional id, READ on the group (every partition answered with
/// the failure), READ on each topic (its partitions TOPIC_AUTHORIZATION_FAILED).
pub async fn handle(broker: &Arc<Broker>, req: TxnOffsetCommitRequest, version: i16, session: &Session) -> TxnOffsetCommitResponse {
    let authz = broker.authz(session);
    let ready = if !authz.allows_transactional_id(Operation::Write, &req.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authz.allows_group(Operation::Read, &req.group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        match broker.groups.ready_for(req.group_id.as_str()) {
            Ok(()) => in_transaction(broker, &req, version).await.err(),
            Err(code) => Some(code),
        }
    };
    let mut results: Vec<(String, i32, Option<ResponseError>)> = Vec::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let topic = t.name.to_string();
            match ready {
                Some(code) => results.push((topic, p.partition_index, Some(code))),
                None if !authz.allows_topic(Operation::Read, &topic) => results.push((topic, p.partition_index, Some(ResponseError::TopicAuthorizationFailed))),
                None => offsets.push(CommitOffset {
                    topic,
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    commit_timestamp_ms: None,
                }),
            }
        }
    }
    if !offsets.is_empty() {
        let commit = Commit {
            group_id: req.group_id.to_string(),
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            generation_id: req.generation_id,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            offsets,
        };
        let (committed, persisted) = broker.groups.commit_txn_offsets(commit).await;
        for r in committed {
            results.push((r.topic, r.partition, r.error.or(persisted.err())));
        }
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = results.iter().find(|(topic, i, _)| topic.as_str() == t.name.as_str() && *i == p.partition_index).and_then(|(_, _, e)| *e);
                    TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(error_code(error))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Whether the group's offsets partition is in the producer's transaction, with the error
/// Kafka's group coordinator answers if not: a fenced producer INVALID_PRODUCER_EPOCH, a
/// partition not in the transaction TRANSACTION_ABORTABLE (INVALID_TXN_STATE before v4), a
/// coordinator that cannot answer now COORDINATOR_NOT_AVAILABLE (the client retries).
async fn in_transaction(broker: &Arc<Broker>, req: &TxnOffsetCommitRequest, version: i16) -> Result<(), ResponseError> {
    let index = broker.groups.topic.partition_of(req.group_id.as_str());
    let (producer_id, epoch) = (req.producer_id.0, req.producer_epoch);
    let open = broker.replicas.partition(OFFSETS_TOPIC, index).is_some_and(|p| p.has_open_transaction(producer_id, epoch));
    if open {
        return Ok(());
    }
    let check = if version >= 5 { TxnCheck::Add } else { TxnCheck::Verify };
    match broker.transactions.check_partition(req.transactional_id.as_str(), producer_id, epoch, check, (OFFSETS_TOPIC, index)).await {
        None => Ok(()),
        Some(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch),
        Some(ResponseError::TransactionAbortable) if version < 4 => Err(ResponseError::InvalidTxnState),
        Some(e) if is_busy(e) => Err(ResponseError::CoordinatorNotAvailable),
        Some(e) => Err(e),
    }
}
