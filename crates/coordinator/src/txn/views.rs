//! Read-only views: DescribeTransactions, ListTransactions, and snapshots for tests and tooling.

use super::coordinator::TransactionCoordinator;
use super::state::TxnState;
use super::types::*;
use kafka_protocol::error::ResponseError;

impl TransactionCoordinator {
    /// DescribeTransactions for one id (the broker answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS for ids
    /// of partitions it does not serve before asking).
    pub fn describe_transaction(&self, transactional_id: &str) -> DescribedTransaction {
        let error = |e| DescribedTransaction {
            error: Some(e),
            transactional_id: transactional_id.to_string(),
            state: String::new(),
            timeout_ms: 0,
            start_ms: -1,
            producer_id: -1,
            producer_epoch: -1,
            partitions: Vec::new(),
        };
        if transactional_id.is_empty() {
            return error(ResponseError::InvalidRequest);
        }
        match self.txns.get(transactional_id) {
            // Dead is an id being expired: Kafka reports it as gone.
            None => error(ResponseError::TransactionalIdNotFound),
            Some(m) if m.state == TxnState::Dead => error(ResponseError::TransactionalIdNotFound),
            Some(m) => DescribedTransaction {
                error: None,
                transactional_id: transactional_id.to_string(),
                state: m.state.name().to_string(),
                timeout_ms: m.timeout_ms,
                start_ms: m.start_ms,
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                partitions: m.partitions.iter().cloned().collect(),
            },
        }
    }

    /// ListTransactions: every id of the loaded partitions, filtered as Kafka's `listTransactionStates`: by state
    /// name (none: all; names that are no state are reported back), by producer id (none: all), and with KIP-994's
    /// `DurationFilter` (-1: none) to those that started more than `duration_filter_ms` before `now_ms`.
    pub fn list_transactions(&self, state_filters: &[String], producer_ids: &[i64], duration_filter_ms: i64, now_ms: i64) -> ListTransactionsResponse {
        let mut states = Vec::new();
        let mut unknown_state_filters = Vec::new();
        for name in state_filters {
            match TxnState::from_name(name) {
                Some(s) => states.push(s),
                None => unknown_state_filters.push(name.clone()),
            }
        }
        let transactions = self
            .txns
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| state_filters.is_empty() || states.contains(&m.state))
            .filter(|m| duration_filter_ms < 0 || now_ms.saturating_sub(m.start_ms) > duration_filter_ms)
            .map(|m| ListedTransaction { transactional_id: m.id.clone(), producer_id: m.producer_id, state: m.state })
            .collect();
        ListTransactionsResponse { transactions, unknown_state_filters }
    }

    pub fn snapshot(&self, transactional_id: &str) -> Option<TxnSnapshot> {
        self.txns.get(transactional_id).map(|m| m.snapshot())
    }

    pub fn transactional_ids(&self) -> impl Iterator<Item = &str> {
        self.txns.keys().map(String::as_str)
    }
}
