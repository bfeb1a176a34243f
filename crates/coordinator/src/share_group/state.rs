//! A share partition's persisted state as Kafka's share-state APIs carry it between a partition's
//! leader and the state's owner (ReadShareGroupState, WriteShareGroupState): a start offset and
//! *state batches* (first offset, last offset, delivery state, delivery count), plus the two
//! epochs that fence stale writers.
//!
//! Kafka's delivery states: 0 available, 1 acquired, 2 acknowledged, 4 archived. Strom's
//! [`Snapshot`] keeps only the records still in flight (all available: an acquisition is never
//! persisted as such) and the end offset, the first offset never acquired; the finished records
//! between the start and the end offset are written as acknowledged batches, so the end offset
//! survives the trip and nothing finished is ever delivered again.

use kafka_protocol::error::ResponseError;

use super::partition::Snapshot;

/// Kafka's `RecordState` values on the wire.
pub const AVAILABLE: i8 = 0;
pub const ACQUIRED: i8 = 1;
pub const ACKNOWLEDGED: i8 = 2;
pub const ARCHIVED: i8 = 4;

/// At most this many records in flight in a state: Kafka's maximum of
/// `group.share.partition.max.record.locks`. A larger one is refused as corrupt.
pub const MAX_IN_FLIGHT: i64 = 10_000;

/// One state batch: (first offset, last offset, delivery state, delivery count).
pub type StateBatch = (i64, i64, i8, i16);

/// The epochs an owner keeps per share partition (Kafka's share coordinator keeps the same two):
/// the leader epoch of the last leader that read or wrote it (an older leader is fenced), and
/// the state epoch, bumped when an administrator resets or deletes the state (a leader holding
/// the state from before must read it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateEpochs {
    pub leader_epoch: i32,
    pub state_epoch: i32,
}

impl Default for StateEpochs {
    fn default() -> Self {
        StateEpochs { leader_epoch: -1, state_epoch: 0 }
    }
}

/// The state batches of a snapshot: in-flight ranges as available, the gaps between them (and up
/// to the end offset) as acknowledged.
pub fn to_batches(s: &Snapshot) -> Vec<StateBatch> {
    let mut out = Vec::with_capacity(2 * s.ranges.len() + 1);
    let mut next = s.start_offset;
    for (first, last, dc) in &s.ranges {
        if *first > next {
            out.push((next, first - 1, ACKNOWLEDGED, 1));
        }
        out.push((*first, *last, AVAILABLE, *dc));
        next = last + 1;
    }
    if s.end_offset > next {
        out.push((next, s.end_offset - 1, ACKNOWLEDGED, 1));
    }
    out
}

/// The snapshot state batches describe, checked as a stored record is: batches ascending,
/// disjoint, at or above the start offset, known states, delivery counts not negative, at most
/// [`MAX_IN_FLIGHT`] records in flight. Acquired records count as available (their lock was
/// the writer's). INVALID_REQUEST for anything else.
pub fn from_batches(start_offset: i64, batches: &[StateBatch]) -> Result<Snapshot, ResponseError> {
    if start_offset < 0 {
        return Err(ResponseError::InvalidRequest);
    }
    let (mut next, mut end, mut total) = (start_offset, start_offset, 0i64);
    let mut ranges: Vec<(i64, i64, i16)> = Vec::new();
    for &(first, last, state, dc) in batches {
        if first < next || last < first || dc < 0 {
            return Err(ResponseError::InvalidRequest);
        }
        let after = last.checked_add(1).ok_or(ResponseError::InvalidRequest)?;
        match state {
            AVAILABLE | ACQUIRED => {
                total += last - first + 1;
                if total > MAX_IN_FLIGHT {
                    return Err(ResponseError::InvalidRequest);
                }
                match ranges.last_mut() {
                    Some((_, l, d)) if *l + 1 == first && *d == dc => *l = last,
                    _ => ranges.push((first, last, dc)),
                }
            }
            ACKNOWLEDGED | ARCHIVED => {}
            _ => return Err(ResponseError::InvalidRequest),
        }
        next = after;
        end = after;
    }
    // The start offset is the first record not finished.
    let start = ranges.first().map_or(end, |r| r.0);
    Ok(Snapshot { start_offset: start, end_offset: end, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_through_state_batches() {
        let cases = [
            Snapshot { start_offset: 5, end_offset: 20, ranges: vec![(5, 6, 2), (9, 12, 1), (13, 15, 3)] },
            Snapshot { start_offset: 7, end_offset: 7, ranges: vec![] },
            Snapshot { start_offset: 0, end_offset: 4, ranges: vec![(0, 3, 1)] },
        ];
        for s in cases {
            let b = to_batches(&s);
            assert_eq!(from_batches(s.start_offset, &b), Ok(s.clone()), "{b:?}");
        }
        // Finished records after the last one in flight keep the end offset: never re-acquired.
        let s = Snapshot { start_offset: 5, end_offset: 20, ranges: vec![(5, 6, 2)] };
        assert_eq!(to_batches(&s).last(), Some(&(7, 19, ACKNOWLEDGED, 1)));
    }

    #[test]
    fn refuses_malformed_batches() {
        assert!(from_batches(-1, &[]).is_err());
        assert!(from_batches(5, &[(4, 6, AVAILABLE, 1)]).is_err(), "below the start offset");
        assert!(from_batches(0, &[(0, 3, AVAILABLE, 1), (2, 5, AVAILABLE, 1)]).is_err(), "overlapping");
        assert!(from_batches(0, &[(3, 2, AVAILABLE, 1)]).is_err(), "backwards");
        assert!(from_batches(0, &[(0, 2, 3, 1)]).is_err(), "unknown state");
        assert!(from_batches(0, &[(0, 2, AVAILABLE, -1)]).is_err(), "negative count");
        assert!(from_batches(0, &[(0, MAX_IN_FLIGHT, AVAILABLE, 1)]).is_err(), "too many in flight");
        assert!(from_batches(0, &[(0, i64::MAX, ACKNOWLEDGED, 1)]).is_err(), "offset overflow");
        assert!(from_batches(0, &[(0, i64::MAX, AVAILABLE, 1)]).is_err(), "offset overflow");
    }
}
