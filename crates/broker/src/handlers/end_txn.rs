//! EndTxn: a transactional producer commits or aborts. The answer comes once the decision is
//! in `__transaction_state` (replicated); the markers are written to the partitions after it.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use strom_coordinator::txn::{error_code, legacy_error, TxnApi};

/// Needs WRITE on the transactional id, as Kafka.
pub async fn handle(broker: &Arc<Broker>, req: EndTxnRequest, version: i16, session: &Session) -> EndTxnResponse {
    if !broker.authz(session).allows_transactional_id(Operation::Write, &req.transactional_id) {
        return EndTxnResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let result = broker.transactions.end_txn(req.transactional_id.as_str(), req.producer_id.0, req.producer_epoch, req.committed, version).await;
    match result {
        // v5+ (transactions v2) carries the producer id and epoch for the next transaction.
        Ok((id, epoch)) => EndTxnResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch),
        Err(code) => EndTxnResponse::default()
            .with_error_code(error_code(legacy_error(TxnApi::EndTxn, version, Some(code)))).with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
    }
}
