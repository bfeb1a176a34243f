//! AddOffsetsToTxn: a transactional producer will commit a group's offsets in its transaction
//! (`send_offsets_to_transaction`): the group's `__consumer_offsets` partition joins it, so the
//! transaction's marker lands there too.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::txn::{error_code, legacy_error, TransactionVersion, TxnApi};
use crate::coordinator_topic::OFFSETS_TOPIC;

/// As Kafka: WRITE on the transactional id, then READ on the group.
pub async fn handle(broker: &Arc<Broker>, req: AddOffsetsToTxnRequest, version: i16, session: &Session) -> AddOffsetsToTxnResponse {
    let authz = broker.authz(session);
    if !authz.allows_transactional_id(Operation::Write, &req.transactional_id) {
        return AddOffsetsToTxnResponse::default().with_error_code(kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !authz.allows_group(Operation::Read, &req.group_id) {
        return AddOffsetsToTxnResponse::default().with_error_code(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code());
    }
    let partition = (OFFSETS_TOPIC.to_string(), broker.groups.topic.partition_of(req.group_id.as_str()));
    let result = broker.transactions.add_partitions(req.transactional_id.as_str(), req.producer_id.0, req.producer_epoch, vec![partition], TransactionVersion::Tv0).await;
    AddOffsetsToTxnResponse::default().with_error_code(error_code(legacy_error(TxnApi::AddOffsetsToTxn, version, result.err())))
}
