//! DescribeTransactions: the state of transactional ids this broker coordinates
//! (`kafka-transactions.sh --describe`). As Kafka's coordinator: NOT_COORDINATOR for the others
//! (also before `__transaction_state` exists), COORDINATOR_LOAD_IN_PROGRESS while the id's
//! partition loads, TRANSACTIONAL_ID_NOT_FOUND for an id it does not know.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::session::Session;
use strom_metadata::acl::Operation;

/// As Kafka: each id needs DESCRIBE (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and only the
/// partitions of topics the principal may DESCRIBE are shown.
pub fn handle(broker: &Arc<Broker>, req: DescribeTransactionsRequest, session: &Session) -> DescribeTransactionsResponse {
    let authz = broker.authz(session);
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let resp = TransactionState::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
            // Kafka refuses an empty id before it looks for the id's coordinator.
            if id.is_empty() {
                return resp.with_error_code(ResponseError::InvalidRequest.code());
            }
            if !authz.allows_transactional_id(Operation::Describe, &id) {
                return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            if let Err(code) = broker.transactions.topic.ready_for(id.as_str()) {
                return resp.with_error_code(code.code());
            }
            let d = broker.transactions.read(|c| c.describe_transaction(id.as_str()));
            if let Some(e) = d.error {
                return resp.with_error_code(e.code());
            }
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for tp in d.partitions.into_iter().filter(|tp| authz.allows_topic(Operation::Describe, &tp.topic)) {
                topics.entry(tp.topic).or_default().push(tp.partition);
            }
            resp.with_transaction_state(StrBytes::from_string(d.state))
                .with_transaction_timeout_ms(d.timeout_ms)
                .with_transaction_start_time_ms(d.start_ms)
                .with_producer_id(ProducerId(d.producer_id))
                .with_producer_epoch(d.producer_epoch)
                .with_topics(topics.into_iter().map(|(t, ps)| TopicData::default().with_topic(TopicName(StrBytes::from_string(t))).with_partitions(ps)).collect())
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
