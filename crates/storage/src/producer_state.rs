//! Idempotent-producer state: per producer id, the current epoch and the sequence/offset ranges of
//! the last few batches, so retried batches are recognised and gaps rejected (Kafka semantics).
//!
//! The state is derived from batch headers alone, so it can always be rebuilt by replaying the log;
//! the snapshot only bounds how much must be replayed.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::batch::{increment_sequence, BatchHeader};
use crate::error::StorageError;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    fn find_duplicate(&self, h: &BatchHeader) -> Option<BatchMetadata> {
        if h.producer_epoch != self.epoch {
            return None;
        }
        let last_sequence = h.last_sequence();
        self.batches.iter().copied().find(|b| b.first_sequence == h.base_sequence && b.last_sequence == last_sequence)
    }

    fn push(&mut self, h: &BatchHeader) {
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
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
}

/// Checks that `h` may follow `entry` (None: a producer never seen).
fn validate(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<(), StorageError> {
    let out_of_order = |expected| StorageError::OutOfOrderSequence {
        producer_id: h.producer_id,
        expected,
        found: h.base_sequence,
    };
    let expected = match entry {
        None => 0,
        Some(e) if h.producer_epoch < e.epoch => {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current_epoch: e.epoch,
            });
        }
        Some(e) if h.producer_epoch > e.epoch => 0,
        Some(e) => e.batches.back().map_or(0, |b| increment_sequence(b.last_sequence, 1)),
    };
    if h.base_sequence == expected {
        Ok(())
    } else {
        Err(out_of_order(expected))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
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

    /// Checks one batch against the committed state.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, StorageError> {
        self.check_all(std::slice::from_ref(h))
    }

    /// Checks the batches of one append, in order, without changing anything. A later batch of the
    /// same producer is checked against the earlier ones of the same append; a duplicate is looked
    /// up in the committed state only, and the first one found answers for the whole append (as in
    /// Kafka). The headers must carry their assigned offsets.
    pub fn check_all(&self, headers: &[BatchHeader]) -> Result<SequenceCheck, StorageError> {
        let mut staged: Vec<(i64, ProducerEntry)> = Vec::new();
        for h in headers.iter().filter(|h| h.has_producer_sequence()) {
            let committed = self.producers.get(&h.producer_id);
            if let Some(dup) = committed.and_then(|e| e.find_duplicate(h)) {
                return Ok(SequenceCheck::Duplicate { first_offset: dup.first_offset, last_offset: dup.last_offset });
            }
            let slot = staged.iter().position(|(pid, _)| *pid == h.producer_id);
            let current = slot.map(|i| &staged[i].1).or(committed);
            validate(current, h)?;
            let mut next = current.cloned().unwrap_or_default();
            next.push(h);
            match slot {
                Some(i) => staged[i].1 = next,
                None => staged.push((h.producer_id, next)),
            }
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch that is now in the log. Used after a checked append and when replaying the
    /// log, where nothing is validated: the log is the truth.
    pub fn record(&mut self, h: &BatchHeader) {
        if h.has_producer_sequence() {
            self.producers.entry(h.producer_id).or_default().push(h);
        }
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Binary snapshot taken at log offset `offset` (the state covers all batches below it),
    /// protected by a CRC-32C so a damaged snapshot is detected and replaced by a replay.
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(16 + ids.len() * 40);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let Some(e) = self.producers.get(&id) else { continue };
            debug_assert!(e.batches.len() <= MAX_BATCHES_PER_PRODUCER);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
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

    /// Decodes a snapshot into (offset, state).
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
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = r.i64().ok_or_else(truncated)?;
            let epoch = r.i16().ok_or_else(truncated)?;
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
            producers.insert(id, ProducerEntry { epoch, batches });
        }
        if r.pos != body.len() {
            return Err(bad("trailing bytes"));
        }
        Ok((offset, ProducerStateManager { producers }))
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"SPS1";

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
            m.record(&h);
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
        m.record(&h);
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
        m.record(&header(3, 0, i32::MAX - 1, 2, 2));
        assert_eq!(m.last_sequence(3), Some(i32::MAX));
        assert_eq!(m.check(&header(3, 0, 0, 1, 4)).unwrap(), SequenceCheck::Append);
        assert!(matches!(m.check(&header(3, 0, 1, 1, 4)), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut m = ProducerStateManager::new();
        for pid in 0..4 {
            for i in 0..(pid + 3) {
                m.record(&header(pid, pid as i16, i as i32, 1, pid * 100 + i));
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
