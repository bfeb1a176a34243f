//! Producer state (Kafka's ProducerStateManager): per producer id, the current epoch and the sequence/offset
//! ranges of the last few batches, so retried batches are recognised and gaps rejected; and, for
//! transactions (KIP-98), the first offset of its ongoing transaction, the coordinator epoch of its last
//! marker and its last batch's timestamp (for DescribeProducers and producer expiration).
//!
//! The state is derived from the log alone (batch headers, plus the control record of each marker), so it
//! can always be rebuilt by replaying the log; the snapshot only bounds how much must be replayed. Replay
//! validates nothing: the log is the truth. The leader's checks live in [`ProducerStateManager::check_all`]
//! (produce) and [`ProducerStateManager::check_marker`] (WriteTxnMarkers).
//!
//! Transactions: a transactional data batch from a producer without an ongoing transaction starts one at
//! its base offset; a marker ends it. An ABORT marker ending a transaction that had data yields an
//! [`AbortedTxn`] for the segment's aborted-transaction index, whose last stable offset is the first
//! unstable offset once it completed: the smallest first offset of the transactions still open, else the
//! marker's offset + 1 (Kafka's `ProducerStateManager.lastStableOffset`). A marker whose producer epoch
//! differs from the producer's (KIP-890 bumps it at every EndTxn) sets it and forgets the sequence
//! history, so the next batch starts at sequence 0.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

use crate::batch::{increment_sequence, BatchHeader};
use crate::control::{ControlRecord, TxnMarker};
use crate::error::StorageError;
use crate::txn_index::AbortedTxn;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5, the
/// producer's max.in.flight.requests.per.connection limit with idempotence).
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The batches are new and in order: write them.
    Append,
    /// A retry of a batch already in the log: write nothing, answer with its offsets.
    Duplicate { first_offset: i64, last_offset: i64 },
}

/// One producer as DescribeProducers (and `kafka-transactions --find-hanging`) shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the last record of its last batch; -1 when none is remembered (non-idempotent
    /// transactional writes, or right after a marker bumped the epoch).
    pub last_sequence: i32,
    /// maxTimestamp of its last batch or marker; -1 when unknown.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker; -1 before any.
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction.
    pub current_txn_start_offset: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    coordinator_epoch: i32,
    last_timestamp: i64,
    current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry { epoch, batches: VecDeque::new(), coordinator_epoch: -1, last_timestamp: -1, current_txn_first_offset: None }
    }

    fn find_duplicate(&self, h: &BatchHeader) -> Option<BatchMetadata> {
        if h.producer_epoch != self.epoch {
            return None;
        }
        let last_sequence = h.last_sequence();
        self.batches.iter().copied().find(|b| b.first_sequence == h.base_sequence && b.last_sequence == last_sequence)
    }

    /// A new epoch forgets the sequences of the old one (Kafka's `maybeUpdateProducerEpoch`).
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    fn push(&mut self, h: &BatchHeader) {
        self.set_epoch(h.producer_epoch);
        self.batches.push_back(BatchMetadata {
            first_sequence: h.base_sequence,
            last_sequence: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while self.batches.len() > MAX_BATCHES_PER_PRODUCER {
            self.batches.pop_front();
        }
    }

    /// Applies a batch of this producer that is now in the log (`control`: its parsed control record,
    /// None for data and for an empty control batch). Returns the first offset of the transaction a
    /// marker ended.
    fn apply(&mut self, h: &BatchHeader, control: Option<&ControlRecord>) -> Option<i64> {
        self.last_timestamp = h.max_timestamp;
        if h.is_control() {
            // An empty control batch is a marker whose transaction's data compaction removed: it still
            // ends the transaction (there is none left to end) and carries the epoch.
            self.set_epoch(h.producer_epoch);
            if let Some(c) = control {
                self.coordinator_epoch = c.coordinator_epoch;
            }
            return self.current_txn_first_offset.take();
        }
        if h.has_producer_sequence() {
            self.push(h);
        } else {
            self.set_epoch(h.producer_epoch);
        }
        if h.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(h.base_offset);
        }
        None
    }
}

/// Checks the epoch of a data batch of `h.producer_id` and, for idempotent batches, that its sequence
/// follows `entry` (None: a producer never seen).
fn validate(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<(), StorageError> {
    if let Some(e) = entry {
        if h.producer_epoch < e.epoch {
            return Err(StorageError::InvalidProducerEpoch { producer_id: h.producer_id, epoch: h.producer_epoch, current_epoch: e.epoch });
        }
    }
    if !h.has_producer_sequence() {
        return Ok(());
    }
    let expected = match entry {
        None => 0,
        Some(e) if h.producer_epoch > e.epoch => 0,
        Some(e) => e.batches.back().map_or(0, |b| increment_sequence(b.last_sequence, 1)),
    };
    if h.base_sequence == expected {
        Ok(())
    } else {
        Err(StorageError::OutOfOrderSequence { producer_id: h.producer_id, expected, found: h.base_sequence })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// first offset → producer id of every ongoing transaction. Derived from `producers` (never
    /// snapshotted), so the first unstable offset and a completed transaction's last stable offset are
    /// a map lookup.
    ongoing: BTreeMap<i64, i64>,
}

/// The state of the producers touched by one append, over the committed state: what checks and previews
/// see without changing anything.
struct Staged<'a> {
    base: &'a ProducerStateManager,
    entries: HashMap<i64, ProducerEntry>,
}

impl<'a> Staged<'a> {
    fn new(base: &'a ProducerStateManager) -> Staged<'a> {
        Staged { base, entries: HashMap::new() }
    }

    fn current(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id).or_else(|| self.base.producers.get(&producer_id))
    }

    /// The smallest first offset of the ongoing transactions, staged changes included.
    fn first_ongoing(&self) -> Option<i64> {
        let committed = self.base.ongoing.iter().find(|(_, pid)| !self.entries.contains_key(pid)).map(|(&o, _)| o);
        let staged = self.entries.values().filter_map(|e| e.current_txn_first_offset).min();
        committed.into_iter().chain(staged).min()
    }

    fn apply(&mut self, h: &BatchHeader, control: Option<&ControlRecord>) -> Option<AbortedTxn> {
        let pid = h.producer_id;
        let mut next = self.current(pid).cloned().unwrap_or_else(|| ProducerEntry::new(h.producer_epoch));
        let ended = next.apply(h, control);
        self.entries.insert(pid, next);
        let first_offset = ended.filter(|_| control.is_some_and(|c| !c.commit))?;
        let last_stable_offset = self.first_ongoing().unwrap_or(h.base_offset + 1);
        Some(AbortedTxn { producer_id: pid, first_offset, last_offset: h.base_offset, last_stable_offset })
    }
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Sequence number of the last batch written by the producer.
    pub fn last_sequence(&self, producer_id: i64) -> Option<i32> {
        self.producers.get(&producer_id).and_then(|e| e.batches.back()).map(|b| b.last_sequence)
    }

    /// The smallest first offset of any ongoing transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Where `producer_id`'s open transaction starts in this log, if it has one under `producer_epoch`.
    pub fn open_transaction(&self, producer_id: i64, producer_epoch: i16) -> Option<i64> {
        self.producers.get(&producer_id).filter(|e| e.epoch == producer_epoch).and_then(|e| e.current_txn_first_offset)
    }

    /// Every producer, by id.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerInfo {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset,
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    /// Forgets the producers without an ongoing transaction whose last write is `expiration_ms` or more
    /// old (Kafka's `isProducerExpired`, producer.id.expiration.ms). Returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.current_txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Checks one batch against the committed state.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, StorageError> {
        self.check_all(std::slice::from_ref(h))
    }

    /// Checks the batches of a produce request, in order, without changing anything, as Kafka's leader
    /// does for client appends: no control batches (INVALID_RECORD), transactional batches need a
    /// producer id, an older producer epoch is fenced, idempotent sequences must follow on, and a
    /// producer with an ongoing transaction may only write transactional batches (INVALID_TXN_STATE).
    /// A later batch of the same producer is checked against the earlier ones of the same append; a
    /// duplicate is looked up in the committed state only, and the first one found answers for the whole
    /// append (as in Kafka). The headers must carry their assigned offsets.
    pub fn check_all(&self, headers: &[BatchHeader]) -> Result<SequenceCheck, StorageError> {
        let mut staged = Staged::new(self);
        for h in headers {
            if h.is_control() {
                return Err(StorageError::InvalidRecord("clients are not allowed to write control records".into()));
            }
            if h.producer_id < 0 {
                if h.is_transactional() {
                    return Err(StorageError::InvalidRecord("a transactional batch needs a producer id".into()));
                }
                continue;
            }
            if h.has_producer_sequence() {
                if let Some(dup) = self.producers.get(&h.producer_id).and_then(|e| e.find_duplicate(h)) {
                    return Ok(SequenceCheck::Duplicate { first_offset: dup.first_offset, last_offset: dup.last_offset });
                }
            }
            let current = staged.current(h.producer_id);
            validate(current, h)?;
            if let Some(first) = current.and_then(|e| e.current_txn_first_offset).filter(|_| !h.is_transactional()) {
                return Err(StorageError::InvalidTxnState {
                    producer_id: h.producer_id,
                    reason: format!("non-transactional batch while its transaction started at offset {first} is ongoing"),
                });
            }
            staged.apply(h, None);
        }
        Ok(SequenceCheck::Append)
    }

    /// Checks a marker the coordinator wants written, as Kafka's `appendEndTxnMarker`: an older producer
    /// epoch is fenced (InvalidProducerEpoch), so is an older coordinator epoch (a zombie coordinator).
    /// A marker for a producer without an ongoing transaction passes: it is written, harmlessly.
    pub fn check_marker(&self, marker: &TxnMarker) -> Result<(), StorageError> {
        let Some(e) = self.producers.get(&marker.producer_id) else { return Ok(()) };
        if marker.producer_epoch < e.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: marker.producer_id,
                epoch: marker.producer_epoch,
                current_epoch: e.epoch,
            });
        }
        if marker.coordinator_epoch < e.coordinator_epoch {
            return Err(StorageError::TransactionCoordinatorFenced {
                producer_id: marker.producer_id,
                coordinator_epoch: marker.coordinator_epoch,
                current_coordinator_epoch: e.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// The aborted transactions that recording `batches` (in order, with their control records) would
    /// complete, without changing anything: written to the transaction index together with the batches.
    pub(crate) fn preview(&self, batches: &[(BatchHeader, Option<ControlRecord>)]) -> Vec<AbortedTxn> {
        let mut staged = Staged::new(self);
        batches.iter().filter(|(h, _)| h.producer_id >= 0).filter_map(|(h, c)| staged.apply(h, c.as_ref())).collect()
    }

    /// Records a batch that is now in the log; `control` is its parsed control record (None for data
    /// batches and empty control batches). Used after a checked append and when replaying the log,
    /// where nothing is validated: the log is the truth. Returns the aborted transaction an ABORT
    /// marker completed, for the transaction index.
    pub(crate) fn record(&mut self, h: &BatchHeader, control: Option<&ControlRecord>) -> Option<AbortedTxn> {
        if h.producer_id < 0 {
            return None;
        }
        let pid = h.producer_id;
        let entry = self.producers.entry(pid).or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        let before = entry.current_txn_first_offset;
        let ended = entry.apply(h, control);
        let after = entry.current_txn_first_offset;
        if before != after {
            if let Some(b) = before {
                self.ongoing.remove(&b);
            }
            if let Some(a) = after {
                self.ongoing.insert(a, pid);
            }
        }
        let first_offset = ended.filter(|_| control.is_some_and(|c| !c.commit))?;
        let last_stable_offset = self.first_unstable_offset().unwrap_or(h.base_offset + 1);
        Some(AbortedTxn { producer_id: pid, first_offset, last_offset: h.base_offset, last_stable_offset })
    }

    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
    }

    /// Binary snapshot taken at log offset `offset` (the state covers all batches below it),
    /// protected by a CRC-32C so a damaged snapshot is detected and replaced by a replay.
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(16 + ids.len() * 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let Some(e) = self.producers.get(&id) else { continue };
            debug_assert!(e.batches.len() <= MAX_BATCHES_PER_PRODUCER);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot into (offset, state). A snapshot of an older format (SPS1, before
    /// transactions) is refused like a damaged one: the caller replays the log instead.
    pub(crate) fn decode_snapshot(path: &Path, bytes: &[u8]) -> Result<(i64, ProducerStateManager), StorageError> {
        let bad = |why: &str| StorageError::corrupt_log(path, why);
        let body_len = bytes.len().checked_sub(4).ok_or_else(|| bad("too short"))?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err(bad("CRC mismatch"));
        }
        let mut r = Reader { bytes: body, pos: 0 };
        if r.take(4).ok_or_else(|| bad("too short"))? != SNAPSHOT_MAGIC {
            return Err(bad("unknown format"));
        }
        let truncated = || bad("truncated");
        let offset = r.i64().ok_or_else(truncated)?;
        let count = r.u32().ok_or_else(truncated)?;
        let mut state = ProducerStateManager::new();
        for _ in 0..count {
            let id = r.i64().ok_or_else(truncated)?;
            let epoch = r.i16().ok_or_else(truncated)?;
            let coordinator_epoch = r.i32().ok_or_else(truncated)?;
            let last_timestamp = r.i64().ok_or_else(truncated)?;
            let txn = r.i64().ok_or_else(truncated)?;
            if id < 0 || txn < -1 {
                return Err(bad("invalid producer entry"));
            }
            let n = r.take(1).ok_or_else(truncated)?[0] as usize;
            if n > MAX_BATCHES_PER_PRODUCER {
                return Err(bad("too many batches for a producer"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_sequence: r.i32().ok_or_else(truncated)?,
                    last_sequence: r.i32().ok_or_else(truncated)?,
                    first_offset: r.i64().ok_or_else(truncated)?,
                    last_offset: r.i64().ok_or_else(truncated)?,
                });
            }
            let current_txn_first_offset = (txn >= 0).then_some(txn);
            let entry = ProducerEntry { epoch, batches, coordinator_epoch, last_timestamp, current_txn_first_offset };
            if state.producers.insert(id, entry).is_some() {
                return Err(bad("producer listed twice"));
            }
            if let Some(first) = current_txn_first_offset {
                if state.ongoing.insert(first, id).is_some() {
                    return Err(bad("two transactions start at the same offset"));
                }
            }
        }
        if r.pos != body.len() {
            return Err(bad("trailing bytes"));
        }
        Ok((offset, state))
    }
}

/// Version 2 adds the transaction fields (coordinator epoch, last timestamp, ongoing transaction).
const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS2";

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{build_batch, BatchSpec};

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let buf = build_batch(&BatchSpec {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            timestamps: vec![0; records],
            ..BatchSpec::default()
        });
        let mut h = BatchHeader::parse(&buf, 0).unwrap();
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut m = ProducerStateManager::new();
        // Unknown producers must start at 0.
        assert!(matches!(m.check(&header(1, 0, 3, 1, 0)), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));
        let mut offset = 0;
        for i in 0..7 {
            let h = header(1, 0, i * 2, 2, offset);
            assert_eq!(m.check(&h).unwrap(), SequenceCheck::Append);
            m.record(&h, None);
            offset += 2;
        }
        // The last 5 batches (sequences 4..=13) are duplicates; older ones are not remembered.
        for i in 2..7 {
            assert_eq!(
                m.check(&header(1, 0, i * 2, 2, 999)).unwrap(),
                SequenceCheck::Duplicate { first_offset: i64::from(i) * 2, last_offset: i64::from(i) * 2 + 1 }
            );
        }
        assert!(matches!(m.check(&header(1, 0, 2, 2, 999)), Err(StorageError::OutOfOrderSequence { .. })));
        // Same start, different length: not a duplicate.
        assert!(matches!(m.check(&header(1, 0, 12, 1, 999)), Err(StorageError::OutOfOrderSequence { .. })));
        assert!(matches!(m.check(&header(1, 0, 15, 1, 999)), Err(StorageError::OutOfOrderSequence { expected: 14, .. })));
        assert_eq!(m.check(&header(1, 0, 14, 1, 999)).unwrap(), SequenceCheck::Append);
        // Epochs.
        assert!(matches!(m.check(&header(1, -1, 14, 1, 999)), Err(StorageError::InvalidProducerEpoch { current_epoch: 0, .. })));
        assert!(matches!(m.check(&header(1, 1, 14, 1, 999)), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));
        let h = header(1, 1, 0, 1, 14);
        assert_eq!(m.check(&h).unwrap(), SequenceCheck::Append);
        m.record(&h, None);
        assert_eq!(m.epoch(1), Some(1));
        assert!(matches!(m.check(&header(1, 0, 14, 1, 999)), Err(StorageError::InvalidProducerEpoch { .. })));
        // Non-idempotent batches are never checked.
        assert_eq!(m.check(&header(-1, -1, -1, 1, 0)).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn check_all_sees_earlier_batches_of_the_same_append() {
        let m = ProducerStateManager::new();
        let a = header(7, 0, 0, 3, 0);
        let b = header(7, 0, 3, 1, 3);
        assert_eq!(m.check_all(&[a, b]).unwrap(), SequenceCheck::Append);
        let gap = header(7, 0, 5, 1, 3);
        assert!(m.check_all(&[a, gap]).is_err());
    }

    #[test]
    fn sequence_wraps_around() {
        let mut m = ProducerStateManager::new();
        // Force a batch ending at i32::MAX through replay (record does not validate).
        m.record(&header(3, 0, i32::MAX - 1, 2, 2), None);
        assert_eq!(m.last_sequence(3), Some(i32::MAX));
        assert_eq!(m.check(&header(3, 0, 0, 1, 4)).unwrap(), SequenceCheck::Append);
        assert!(matches!(m.check(&header(3, 0, 1, 1, 4)), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut h = header(pid, epoch, seq, records, base_offset);
        h.attributes |= 0x10;
        h.max_timestamp = 100 + base_offset;
        h
    }

    fn marker_header(pid: i64, epoch: i16, base_offset: i64) -> BatchHeader {
        let marker = TxnMarker { producer_id: pid, producer_epoch: epoch, commit: false, coordinator_epoch: 0 };
        let b = crate::control::build_marker_batch(&marker, base_offset, 0, 500 + base_offset);
        BatchHeader::parse(&b, 0).unwrap()
    }

    fn control(commit: bool, coordinator_epoch: i32) -> Option<ControlRecord> {
        Some(ControlRecord { commit, coordinator_epoch })
    }

    #[test]
    fn transactions_start_end_and_give_the_last_stable_offset() {
        let mut m = ProducerStateManager::new();
        let steps = [
            (txn_header(1, 0, 0, 2, 0), None),
            (txn_header(2, 0, 0, 1, 2), None),
            (txn_header(1, 0, 2, 1, 3), None),
            (txn_header(3, 0, 0, 1, 4), None),
            (marker_header(2, 0, 5), control(false, 3)),
            (marker_header(1, 0, 6), control(false, 3)),
            (marker_header(3, 0, 7), control(true, 3)),
            (marker_header(3, 0, 8), control(false, 3)),
        ];
        // The preview of a whole sequence equals recording it step by step.
        let items: Vec<_> = steps.to_vec();
        let preview = m.preview(&items);
        let mut recorded = Vec::new();
        let mut fuo = Vec::new();
        for (h, c) in &steps {
            recorded.extend(m.record(h, c.as_ref()));
            fuo.push(m.first_unstable_offset());
        }
        assert_eq!(preview, recorded);
        assert_eq!(fuo, [Some(0), Some(0), Some(0), Some(0), Some(0), Some(4), None, None]);
        // pid 2 aborted while 1 (from 0) was open; pid 1 while 3 (from 4) was; the marker of 3 at 8
        // closes nothing (already committed at 7).
        let a = |pid, first, last, lso| AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso };
        assert_eq!(recorded, vec![a(2, 2, 5, 0), a(1, 0, 6, 4)]);
        let p = m.producers();
        assert_eq!(p.iter().map(|p| (p.producer_id, p.coordinator_epoch, p.last_timestamp)).collect::<Vec<_>>(), [(1, 3, 506), (2, 3, 505), (3, 3, 508)]);
        // Markers fence older producer and coordinator epochs.
        let mk = |epoch, coordinator_epoch| TxnMarker { producer_id: 1, producer_epoch: epoch, commit: true, coordinator_epoch };
        assert!(m.check_marker(&mk(0, 3)).is_ok());
        assert!(m.check_marker(&mk(0, 4)).is_ok());
        assert!(matches!(m.check_marker(&mk(0, 2)), Err(StorageError::TransactionCoordinatorFenced { .. })));
        assert!(matches!(m.check_marker(&mk(-1, 3)), Err(StorageError::InvalidProducerEpoch { .. })));
        assert!(m.check_marker(&TxnMarker { producer_id: 99, ..mk(0, 0) }).is_ok());
    }

    #[test]
    fn snapshot_round_trip_with_transactions() {
        let mut m = ProducerStateManager::new();
        m.record(&txn_header(1, 0, 0, 2, 0), None);
        m.record(&txn_header(2, 4, 0, 1, 2), None);
        m.record(&marker_header(2, 5, 3), control(true, 9).as_ref());
        m.record(&txn_header(3, 0, 0, 1, 4), None);
        m.record(&header(4, 0, 0, 1, 5), None);
        let path = Path::new("producer-state");
        let bytes = m.encode_snapshot(6);
        let (offset, back) = ProducerStateManager::decode_snapshot(path, &bytes).unwrap();
        assert_eq!((offset, &back), (6, &m));
        assert_eq!(back.first_unstable_offset(), Some(0));
        assert_eq!(back.producers(), m.producers());
        for i in 0..bytes.len() {
            for x in [0x01, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= x;
                assert!(ProducerStateManager::decode_snapshot(path, &bad).is_err(), "flip at {i}");
            }
        }
        // The format before transactions is not read.
        let mut old = bytes.clone();
        old[..4].copy_from_slice(b"SPS1");
        let n = old.len() - 4;
        let crc = crc32c::crc32c(&old[..n]);
        old[n..].copy_from_slice(&crc.to_be_bytes());
        assert!(ProducerStateManager::decode_snapshot(path, &old).is_err());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut m = ProducerStateManager::new();
        for pid in 0..4 {
            for i in 0..(pid + 3) {
                m.record(&header(pid, pid as i16, i as i32, 1, pid * 100 + i), None);
            }
        }
        let path = Path::new("producer-state");
        let bytes = m.encode_snapshot(42);
        let (offset, back) = ProducerStateManager::decode_snapshot(path, &bytes).unwrap();
        assert_eq!(offset, 42);
        assert_eq!(back, m);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(ProducerStateManager::decode_snapshot(path, &bad).is_err(), "flip at {i}");
        }
        assert!(ProducerStateManager::decode_snapshot(path, &bytes[..bytes.len() - 1]).is_err());
        assert!(ProducerStateManager::decode_snapshot(path, &[]).is_err());
    }
}
