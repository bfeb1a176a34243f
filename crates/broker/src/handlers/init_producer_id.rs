//! InitProducerId: a fresh producer id for an idempotent producer (epoch 0), or, with a
//! `transactional.id`, the transaction coordinator's id and epoch for it (KIP-98; KIP-360 when
//! the producer names its current id and epoch to recover from an error).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::{Operation, ResourceType};
use strom_coordinator::txn::{error_code, legacy_error, TxnApi};

/// As Kafka: a transactional producer needs WRITE on its transactional id; an idempotent one
/// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED).
pub async fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest, version: i16, session: &Session) -> InitProducerIdResponse {
    let authz = broker.authz(session);
    let resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let answer = match req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        Some(txn_id) if !authz.allows_transactional_id(Operation::Write, txn_id) => Err(ResponseError::TransactionalIdAuthorizationFailed),
        None if !authz.allows_cluster(Operation::IdempotentWrite) && !authz.allows_some(Operation::Write, ResourceType::Topic) => {
            Err(ResponseError::ClusterAuthorizationFailed)
        }
        Some(txn_id) => {
            let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
            broker.transactions.init_producer_id(txn_id.as_str(), req.transaction_timeout_ms, expected).await
        }
        None => broker.producer_ids.next().await.map(|id| (id, 0)).map_err(|e| {
            tracing::error!(error = %e, "cannot allocate producer ids");
            ResponseError::KafkaStorageError
        }),
    };
    match answer {
        Ok((id, epoch)) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(epoch),
        // Clients before v4 know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED (Kafka's mapping).
        Err(code) => resp.with_error_code(error_code(legacy_error(TxnApi::InitProducerId, version, Some(code)))),
    }
}
