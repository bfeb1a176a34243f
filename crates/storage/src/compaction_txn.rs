//! Compaction's view of transactions, Kafka's `CleanedTransactionMetadata`: while the cleaner walks
//! the log in offset order it tells, for each batch, whether it belongs to an aborted transaction (its
//! records all go) and, for each marker, whether its transaction still has data in the log (the marker
//! must stay) and which aborted-transaction entries the cleaned segment's index keeps. The rules
//! themselves are stated in [`crate::compaction`]'s module docs.
//!
//! The aborted transactions come from the log's transaction indexes; each becomes "ongoing" once the
//! walk reaches its first offset and ends at its producer's ABORT marker. Transactional batches of a
//! producer without an ongoing aborted transaction are committed ones (the cleanable range never
//! reaches an undecided transaction).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::batch::BatchHeader;
use crate::control::ControlRecord;
use crate::txn_index::AbortedTxn;

pub(crate) struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Per producer: the aborted transaction the walk is inside, and whether any of its batches was seen.
    ongoing_aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers with a committed transaction whose batches were seen since their last marker.
    ongoing_committed: HashSet<i64>,
}

/// What to do with a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MarkerFate {
    /// None of its transaction's data are left before it: it may go once its delete horizon passed.
    pub removable: bool,
    /// An ABORT whose transaction still has data: its entry stays in the cleaned segment's index.
    pub keep_entry: Option<AbortedTxn>,
}

impl TxnTracker {
    pub fn new(aborted: &[AbortedTxn]) -> TxnTracker {
        let mut pending: Vec<AbortedTxn> = aborted.to_vec();
        pending.sort_by_key(|a| (a.first_offset, a.last_offset));
        TxnTracker { pending: pending.into(), ongoing_aborted: HashMap::new(), ongoing_committed: HashSet::new() }
    }

    fn consume_up_to(&mut self, offset: i64) {
        while self.pending.front().is_some_and(|a| a.first_offset <= offset) {
            if let Some(a) = self.pending.pop_front() {
                self.ongoing_aborted.entry(a.producer_id).or_insert((a, false));
            }
        }
    }

    /// A data batch: true when it belongs to an aborted transaction, so all its records go.
    pub fn on_batch(&mut self, h: &BatchHeader) -> bool {
        self.consume_up_to(h.last_offset());
        if !h.is_transactional() || h.producer_id < 0 {
            return false;
        }
        match self.ongoing_aborted.get_mut(&h.producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.ongoing_committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch (`control`: its record, None when empty or unreadable; `readable`: false when
    /// its record could not be parsed, which keeps it).
    pub fn on_control(&mut self, h: &BatchHeader, control: Option<&ControlRecord>, readable: bool) -> MarkerFate {
        self.consume_up_to(h.last_offset());
        let Some(c) = control else {
            // An empty control batch was already cleaned: nothing of its transaction is left.
            return MarkerFate { removable: readable, keep_entry: None };
        };
        if c.commit {
            // Removable when none of the transaction's batches was seen.
            MarkerFate { removable: !self.ongoing_committed.remove(&h.producer_id), keep_entry: None }
        } else {
            // Batches taken for committed ones before an ABORT mean the index lacked this transaction's
            // entry (it never should): keep the marker rather than lose the only record of the abort.
            let unindexed_data = self.ongoing_committed.remove(&h.producer_id);
            match self.ongoing_aborted.remove(&h.producer_id) {
                Some((txn, true)) => MarkerFate { removable: false, keep_entry: Some(txn) },
                _ => MarkerFate { removable: !unindexed_data, keep_entry: None },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pid: i64, base: i64, txn: bool, control: bool) -> BatchHeader {
        let mut b = crate::testutil::build_batch(&crate::testutil::BatchSpec::default());
        b[0..8].copy_from_slice(&base.to_be_bytes());
        let mut h = BatchHeader::parse(&b, 0).unwrap();
        h.producer_id = pid;
        h.attributes = if control { 0x30 } else if txn { 0x10 } else { 0 };
        h
    }

    #[test]
    fn aborted_data_go_and_markers_stay_while_data_remain() {
        let abort = |pid, first, last| AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: last + 1 };
        let mut t = TxnTracker::new(&[abort(2, 5, 9), abort(1, 0, 3)]);
        assert!(t.on_batch(&h(1, 0, true, false)));
        assert!(!t.on_batch(&h(7, 1, false, false)), "non-transactional");
        assert!(!t.on_batch(&h(3, 2, true, false)), "committed");
        let commit = ControlRecord { commit: true, coordinator_epoch: 0 };
        let abort_rec = ControlRecord { commit: false, coordinator_epoch: 0 };
        assert_eq!(t.on_control(&h(1, 3, true, true), Some(&abort_rec), true), MarkerFate { removable: false, keep_entry: Some(abort(1, 0, 3)) });
        assert!(!t.on_control(&h(3, 4, true, true), Some(&commit), true).removable);
        // pid 2's data are gone already: its ABORT marker may go, its entry is dropped.
        assert_eq!(t.on_control(&h(2, 9, true, true), Some(&abort_rec), true), MarkerFate { removable: true, keep_entry: None });
        // A commit whose data are gone, an empty control batch, an unreadable one.
        assert!(t.on_control(&h(3, 10, true, true), Some(&commit), true).removable);
        assert!(t.on_control(&h(3, 11, true, true), None, true).removable);
        assert!(!t.on_control(&h(3, 12, true, true), None, false).removable);
        // Transactional data followed by an ABORT the index does not know of: the marker stays.
        assert!(!t.on_batch(&h(4, 13, true, false)));
        assert!(!t.on_control(&h(4, 14, true, true), Some(&abort_rec), true).removable);
    }
}
