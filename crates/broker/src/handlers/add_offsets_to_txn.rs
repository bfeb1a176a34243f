//! AddOffsetsToTxn: a transactional producer will commit a group's offsets in its transaction
//! (`send_offsets_to_transaction`): the group's `__consumer_offsets` partition joins it, so the
//! transaction's marker lands there too.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::broker::Broker;
use strom_coordinator::txn::{error_code, legacy_error, TransactionVersion, TxnApi};
use crate::coordinator_topic::OFFSETS_TOPIC;

pub async fn handle(broker: &Arc<Broker>, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let partition = (OFFSETS_TOPIC.to_string(), broker.groups.topic.partition_of(req.group_id.as_str()));
    let result = broker.transactions.add_partitions(req.transactional_id.as_str(), req.producer_id.0, req.producer_epoch, vec![partition], TransactionVersion::Tv0).await;
    AddOffsetsToTxnResponse::default().with_error_code(error_code(legacy_error(TxnApi::AddOffsetsToTxn, version, result.err())))
}
