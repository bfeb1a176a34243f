//! One share partition (KIP-932): the records of one topic partition as one share group
//! consumes them. Kafka's `SharePartition`, reduced to what decides: which offsets are finished,
//! which are in flight and who holds them, and until when.
//!
//! The model: the *start offset* is the first offset not yet finished; the *end offset* the first
//! offset never acquired. Between them, an offset is either in `records` (in flight: available
//! for redelivery, or acquired by one member until its lock expires) or finished (acknowledged,
//! archived, or a gap or control record that was never deliverable). A finished record never
//! changes again, so it is simply forgotten: nothing at or below it can be delivered any more,
//! and the start offset moves up to the first record still in flight.
//!
//! Delivery counts go up on acquisition, as in Kafka; a record that comes back (released, or its
//! lock expired) with its count at `group.share.delivery.count.limit` is archived instead of
//! made available again.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

/// An acknowledgement's kind, as ShareFetch and ShareAcknowledge carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// An offset with no record (a compacted-away or control offset): finished.
    Gap,
    /// Processed: never delivered again.
    Accept,
    /// Given back: delivered again (unless its delivery count is at the limit).
    Release,
    /// Unprocessable: never delivered again.
    Reject,
}

impl AckType {
    /// The wire's `AcknowledgeTypes` value (0 gap, 1 accept, 2 release, 3 reject).
    pub fn from_wire(v: i8) -> Option<AckType> {
        match v {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// The limits a share partition works under (the group's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `group.share.record.lock.duration.ms`.
    pub lock_duration_ms: i64,
    /// `group.share.delivery.count.limit`.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks`: at most this many records in flight.
    pub max_record_locks: usize,
}

/// One in-flight record: available (no owner) or acquired by `owner` until `lock_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    delivery_count: i16,
    owner: Option<String>,
    lock_until: i64,
}

/// A range of records acquired by one fetch, with their delivery count (ShareFetch's
/// `AcquiredRecords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// A batch as the log holds it: its first and last offsets, and whether it is a control batch
/// (transaction markers: never delivered to share consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub control: bool,
}

/// What is persisted of a share partition: the start and end offsets and every in-flight record
/// as available (an acquisition is not persisted: after a restart the record is available again,
/// its delivery count kept), in ranges of equal delivery count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub start_offset: i64,
    pub end_offset: i64,
    /// (first offset, last offset, delivery count), ascending and disjoint.
    pub ranges: Vec<(i64, i64, i16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    start_offset: i64,
    end_offset: i64,
    records: BTreeMap<i64, InFlight>,
}

impl SharePartition {
    /// A share partition that starts consuming at `start_offset` (from `share.auto.offset.reset`).
    pub fn new(start_offset: i64) -> Self {
        SharePartition { start_offset, end_offset: start_offset, records: BTreeMap::new() }
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Records in flight (available for redelivery or acquired).
    pub fn in_flight(&self) -> usize {
        self.records.len()
    }

    /// Who holds `offset` now, if anyone (a lock past its time counts as expired).
    pub fn owner(&self, offset: i64, now_ms: i64) -> Option<&str> {
        self.records.get(&offset).filter(|r| r.lock_until > now_ms).and_then(|r| r.owner.as_deref())
    }

    /// The delivery count of an in-flight record.
    pub fn delivery_count(&self, offset: i64) -> Option<i16> {
        self.records.get(&offset).map(|r| r.delivery_count)
    }

    /// Whether `offset` is finished (acknowledged, archived, or never deliverable).
    pub fn is_finished(&self, offset: i64) -> bool {
        offset < self.start_offset || (offset < self.end_offset && !self.records.contains_key(&offset))
    }

    /// Where the log must be read from for the next acquisition: the first available in-flight
    /// record, else the end offset.
    pub fn next_fetch_offset(&self, now_ms: i64) -> i64 {
        self.records.iter().find(|(_, r)| r.owner.is_none() || r.lock_until <= now_ms).map_or(self.end_offset, |(o, _)| *o)
    }

    /// The log's start moved past records of ours (retention, DeleteRecords): they can never be
    /// delivered, so they are finished.
    pub fn log_start_moved(&mut self, log_start: i64) -> bool {
        if log_start <= self.start_offset {
            return false;
        }
        self.records = self.records.split_off(&log_start);
        self.end_offset = self.end_offset.max(log_start);
        self.advance_start();
        true
    }

    /// Expired locks make their records available again (archived at the delivery limit).
    /// Returns whether anything changed.
    pub fn expire_locks(&mut self, now_ms: i64, limits: &Limits) -> bool {
        let expired: Vec<i64> = self.records.iter().filter(|(_, r)| r.owner.is_some() && r.lock_until <= now_ms).map(|(o, _)| *o).collect();
        for o in &expired {
            self.give_back(*o, limits);
        }
        self.advance_start();
        !expired.is_empty()
    }

    /// The earliest lock expiry, for the caller's timer.
    pub fn next_lock_expiry(&self) -> Option<i64> {
        self.records.values().filter(|r| r.owner.is_some()).map(|r| r.lock_until).min()
    }

    /// Acquires for `member` up to `max_records` records among `batches` (read from the log at
    /// `next_fetch_offset`, in offset order): first records available again, then new ones,
    /// while fewer than `max_record_locks` are in flight. Control batches and offsets the log
    /// skips (compaction) are finished as they are passed.
    pub fn acquire(&mut self, member: &str, batches: &[LogBatch], max_records: usize, now_ms: i64, limits: &Limits) -> Vec<Acquired> {
        self.expire_locks(now_ms, limits);
        let lock_until = now_ms.saturating_add(limits.lock_duration_ms);
        let mut acquired: Vec<Acquired> = Vec::new();
        let mut take = |offset: i64, delivery_count: i16| match acquired.last_mut() {
            Some(a) if a.last_offset + 1 == offset && a.delivery_count == delivery_count => a.last_offset = offset,
            _ => acquired.push(Acquired { first_offset: offset, last_offset: offset, delivery_count }),
        };
        let mut count = 0usize;
        'batches: for b in batches {
            if b.last_offset < b.first_offset {
                continue;
            }
            if b.first_offset >= self.end_offset {
                // Offsets the log no longer has between the end offset and this batch.
                self.end_offset = b.first_offset;
            }
            if b.control {
                if b.last_offset >= self.end_offset {
                    self.end_offset = b.last_offset + 1;
                }
                continue;
            }
            let from = b.first_offset.max(self.start_offset);
            for offset in from..=b.last_offset {
                if count >= max_records {
                    break 'batches;
                }
                if offset < self.end_offset {
                    let Some(r) = self.records.get_mut(&offset) else { continue };
                    if r.owner.is_some() {
                        continue;
                    }
                    if r.delivery_count >= limits.delivery_count_limit {
                        // Came back at the limit before a restart: archived now.
                        self.records.remove(&offset);
                        continue;
                    }
                    r.delivery_count = r.delivery_count.saturating_add(1);
                    r.owner = Some(member.to_string());
                    r.lock_until = lock_until;
                    take(offset, r.delivery_count);
                } else {
                    if self.records.len() >= limits.max_record_locks {
                        break 'batches;
                    }
                    self.records.insert(offset, InFlight { delivery_count: 1, owner: Some(member.to_string()), lock_until });
                    self.end_offset = offset + 1;
                    take(offset, 1);
                }
                count += 1;
            }
        }
        self.advance_start();
        acquired
    }

    /// Acknowledges `first..=last` for `member`: one type for the whole range, or one per
    /// offset. Every offset must be acquired by `member` under a lock still held, else nothing
    /// changes and the answer is INVALID_RECORD_STATE (INVALID_REQUEST for a malformed batch).
    pub fn acknowledge(&mut self, member: &str, first: i64, last: i64, types: &[AckType], now_ms: i64, limits: &Limits) -> Result<(), ResponseError> {
        let len = last.checked_sub(first).and_then(|d| d.checked_add(1)).filter(|n| *n > 0).ok_or(ResponseError::InvalidRequest)?;
        if types.is_empty() || (types.len() != 1 && types.len() as i64 != len) {
            return Err(ResponseError::InvalidRequest);
        }
        if len > self.end_offset.saturating_sub(self.start_offset).max(0) {
            return Err(ResponseError::InvalidRecordState);
        }
        let ty = |offset: i64| if types.len() == 1 { types[0] } else { types[(offset - first) as usize] };
        for offset in first..=last {
            let held = self.records.get(&offset).is_some_and(|r| r.owner.as_deref() == Some(member) && r.lock_until > now_ms);
            // A gap may be acknowledged for an offset the log has no record at (already finished).
            let gap_ok = ty(offset) == AckType::Gap && self.is_finished(offset);
            if !held && !gap_ok {
                return Err(ResponseError::InvalidRecordState);
            }
        }
        for offset in first..=last {
            match ty(offset) {
                AckType::Accept | AckType::Reject | AckType::Gap => {
                    self.records.remove(&offset);
                }
                AckType::Release => self.give_back(offset, limits),
            }
        }
        self.advance_start();
        Ok(())
    }

    /// Releases everything `member` holds (it left the group or closed its share session).
    pub fn release_member(&mut self, member: &str, limits: &Limits) -> bool {
        let held: Vec<i64> = self.records.iter().filter(|(_, r)| r.owner.as_deref() == Some(member)).map(|(o, _)| *o).collect();
        for o in &held {
            self.give_back(*o, limits);
        }
        self.advance_start();
        !held.is_empty()
    }

    /// Releases the records of `ranges` that `member` holds.
    pub fn release_ranges(&mut self, member: &str, ranges: &[Acquired], limits: &Limits) -> bool {
        let held: Vec<i64> = ranges
            .iter()
            .filter(|a| a.first_offset <= a.last_offset)
            .flat_map(|a| self.records.range(a.first_offset..=a.last_offset).filter(|(_, r)| r.owner.as_deref() == Some(member)).map(|(o, _)| *o).collect::<Vec<_>>())
            .collect();
        for o in &held {
            self.give_back(*o, limits);
        }
        self.advance_start();
        !held.is_empty()
    }

    /// Takes back records of `ranges` that `member` acquired but that never reached it (the
    /// fetch that acquired them could not answer with them): available again with the delivery
    /// count they had before, so an acquisition no client saw never counts towards the limit.
    pub fn unacquire_ranges(&mut self, member: &str, ranges: &[Acquired]) -> bool {
        let mut changed = false;
        for a in ranges.iter().filter(|a| a.first_offset <= a.last_offset) {
            for (_, r) in self.records.range_mut(a.first_offset..=a.last_offset) {
                if r.owner.as_deref() == Some(member) {
                    r.owner = None;
                    r.lock_until = 0;
                    r.delivery_count = r.delivery_count.saturating_sub(1).max(0);
                    changed = true;
                }
            }
        }
        changed
    }

    /// An acquired record comes back: available again, or archived at the delivery limit.
    fn give_back(&mut self, offset: i64, limits: &Limits) {
        if let Some(r) = self.records.get_mut(&offset) {
            if r.delivery_count >= limits.delivery_count_limit {
                self.records.remove(&offset);
            } else {
                r.owner = None;
                r.lock_until = 0;
            }
        }
    }

    fn advance_start(&mut self) {
        self.start_offset = self.records.keys().next().copied().unwrap_or(self.end_offset).max(self.start_offset);
    }

    /// The persisted form (see [`Snapshot`]).
    pub fn snapshot(&self) -> Snapshot {
        let mut ranges: Vec<(i64, i64, i16)> = Vec::new();
        for (o, r) in &self.records {
            match ranges.last_mut() {
                Some((_, last, dc)) if *last + 1 == *o && *dc == r.delivery_count => *last = *o,
                _ => ranges.push((*o, *o, r.delivery_count)),
            }
        }
        Snapshot { start_offset: self.start_offset, end_offset: self.end_offset, ranges }
    }

    /// The share partition a snapshot describes: every in-flight record available.
    pub fn from_snapshot(s: &Snapshot) -> Self {
        let mut records = BTreeMap::new();
        for (first, last, dc) in &s.ranges {
            // Bounded by the snapshot's own end offset, so a corrupt range cannot make it grow.
            for o in (*first).max(s.start_offset)..=(*last).min(s.end_offset - 1) {
                records.insert(o, InFlight { delivery_count: *dc, owner: None, lock_until: 0 });
            }
        }
        let mut p = SharePartition { start_offset: s.start_offset, end_offset: s.end_offset.max(s.start_offset), records };
        p.advance_start();
        p
    }
}
