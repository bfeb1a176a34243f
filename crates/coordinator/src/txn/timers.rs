//! The coordinator's timers: transactions past their timeout are aborted, transactional ids idle past
//! `transactional.id.expiration.ms` are removed, and Complete* records whose append failed are asked for again.

use super::coordinator::{AllocProducerId, TransactionCoordinator};
use super::metadata::{Cause, Pending};
use super::state::TxnState;
use super::types::TxnEffect;

impl TransactionCoordinator {
    /// Everything due at `now_ms`, as appends to carry out (report each with `append_completed`):
    ///
    /// - An Ongoing transaction older than its timeout (from its first partition) is aborted as Kafka's
    ///   `abortTimedOutTransactions`: its producer is fenced (epoch bump) and a PrepareAbort is appended; its markers
    ///   follow from `append_completed`. `alloc` is needed only when, with transactions v2, the abort rotates an
    ///   exhausted producer id; if it fails, the next tick tries again.
    /// - An id in Empty/CompleteCommit/CompleteAbort with nothing pending and no transition for
    ///   `transactional.id.expiration.ms` gets a tombstone; once it is replicated the id is gone (a failed append
    ///   leaves it).
    /// - A CompleteCommit/CompleteAbort record whose append failed is asked for again (the markers are written;
    ///   only the record is missing).
    ///
    /// Kafka runs the first every `transaction.abort.timed.out.transaction.cleanup.interval.ms` and the second every
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` ([`super::TxnConfig`]); calling it more often is
    /// only more precise. It scans every id: cheap next to the appends it asks for.
    pub fn tick(&mut self, now_ms: i64, alloc: AllocProducerId) -> Vec<TxnEffect> {
        let mut fx = Vec::new();
        let expiration = self.config.transactional_id_expiration_ms;
        let mut timed_out = Vec::new();
        let mut retry = Vec::new();
        let mut expired = Vec::new();
        for (id, m) in &self.txns {
            match &m.pending {
                Some(Pending::RetryComplete) => retry.push(id.clone()),
                Some(_) => {}
                None if m.state == TxnState::Ongoing && m.start_ms.saturating_add(i64::from(m.timeout_ms)) < now_ms => timed_out.push(id.clone()),
                None if m.state.expiration_allowed() && m.last_update_ms <= now_ms.saturating_sub(expiration) => expired.push(id.clone()),
                None => {}
            }
        }
        for id in timed_out {
            tracing::debug!(transactional_id = %id, "aborting a transaction past its timeout");
            if let Ok(transit) = self.fence(&id, now_ms, alloc) {
                fx.push(TxnEffect::Append(self.begin(&id, transit, Cause::Timeout)));
            }
        }
        for id in retry {
            if let Some(m) = self.txns.get_mut(&id) {
                let transit = m.prepare_complete(now_ms);
                fx.push(TxnEffect::Append(self.begin(&id, transit, Cause::Complete)));
            }
        }
        for id in expired {
            if let Some(m) = self.txns.get(&id) {
                let transit = m.prepare_dead();
                fx.push(TxnEffect::Append(self.begin(&id, transit, Cause::Expire)));
            }
        }
        fx
    }

    /// The earliest time `tick` has work (`i64::MAX` if none; `i64::MIN` if it has some now); a caller may sleep
    /// until then.
    pub fn next_deadline(&self) -> i64 {
        let expiration = self.config.transactional_id_expiration_ms;
        self.txns
            .values()
            .filter_map(|m| match &m.pending {
                Some(Pending::RetryComplete) => Some(i64::MIN),
                Some(_) => None,
                None if m.state == TxnState::Ongoing => Some(m.start_ms.saturating_add(i64::from(m.timeout_ms)).saturating_add(1)),
                None if m.state.expiration_allowed() => Some(m.last_update_ms.saturating_add(expiration)),
                None => None,
            })
            .min()
            .unwrap_or(i64::MAX)
    }
}
