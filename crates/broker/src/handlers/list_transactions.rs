//! ListTransactions: the transactional ids this broker coordinates, filtered by state, producer
//! id and (v1+, KIP-994) how long their transaction has been open. Admin clients ask every
//! broker and merge the answers. As Kafka's `TransactionStateManager`: COORDINATOR_LOAD_IN_PROGRESS
//! while a partition led here is loading; an empty list before `__transaction_state` exists
//! (this request never creates it).

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;
use crate::clock::now_ms;

/// Lists the transactional ids the principal may DESCRIBE, as Kafka.
pub fn handle(broker: &Arc<Broker>, req: ListTransactionsRequest, session: &Session) -> ListTransactionsResponse {
    let authz = broker.authz(session);
    if let Err(code) = broker.transactions.topic.all_loaded() {
        return ListTransactionsResponse::default().with_error_code(code.code());
    }
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let producers: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let listed = broker.transactions.read(|c| c.list_transactions(&states, &producers, req.duration_filter, now_ms()));
    ListTransactionsResponse::default()
        .with_unknown_state_filters(listed.unknown_state_filters.into_iter().map(StrBytes::from_string).collect())
        .with_transaction_states(
            listed
                .transactions
                .into_iter()
                .filter(|t| authz.allows_transactional_id(Operation::Describe, &t.transactional_id))
                .map(|t| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                        .with_producer_id(ProducerId(t.producer_id))
                        .with_transaction_state(StrBytes::from_static_str(t.state.name()))
                })
                .collect(),
        )
}
