//! Share-partition state as records of the group's `__consumer_offsets` partition.
//!
//! Kafka keeps share state in a topic of its own, `__share_group_state`, written by a share
//! coordinator that partition leaders call over the network. Strom keeps it beside the group it
//! belongs to: one record per share partition, its whole state (start and end offsets, the
//! in-flight records and their delivery counts), under a key of the group, topic id and
//! partition, so the offsets topic's compaction keeps only the latest. The key's version,
//! [`SHARE_STATE_KEY`], is Strom's own: Kafka's record types in `__consumer_offsets` stop well
//! below it, so neither Kafka's loader nor Strom's other coordinators mistake it.
//!
//! The group's coordinator is the state's owner: partition leaders read and write it with
//! ReadShareGroupState / WriteShareGroupState (`state.rs`), and the owner appends each new state
//! here before it answers.
//!
//! Key: version (i16), group id (i16 length + UTF-8), topic id (16 bytes), partition (i32).
//! Value: version (i16, 1), leader epoch (i32), state epoch (i32) (both absent in version 0),
//! start offset (i64), end offset (i64), range count (i32), then per range first offset (i64),
//! last offset (i64), delivery count (i16). Big-endian, as Kafka's.

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

use super::coordinator::ShareKey;
use super::partition::Snapshot;
use super::state::{StateEpochs, MAX_IN_FLIGHT};
use crate::consumer_group::RawRecord;

/// The key version of a share-partition state record (Strom's own; see the module doc).
pub const SHARE_STATE_KEY: i16 = 0x5300;


#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("share-state record truncated")]
    Truncated,
    #[error("share-state record of unknown version {0}")]
    Version(i16),
    #[error("share-state record is inconsistent: {0}")]
    Invalid(&'static str),
    #[error("share-group membership record: {0}")]
    Member(String),
}

/// Whether `key` is a share-partition state record's.
pub fn is_share_state_key(key: &[u8]) -> bool {
    key.len() >= 2 && i16::from_be_bytes([key[0], key[1]]) == SHARE_STATE_KEY
}

pub fn encode(key: &ShareKey, s: &Snapshot, epochs: StateEpochs) -> RawRecord {
    let mut k = BytesMut::with_capacity(24 + key.0.len());
    k.put_i16(SHARE_STATE_KEY);
    k.put_i16(key.0.len().min(i16::MAX as usize) as i16);
    k.put_slice(&key.0.as_bytes()[..key.0.len().min(i16::MAX as usize)]);
    k.put_slice(key.1.as_bytes());
    k.put_i32(key.2);
    let mut v = BytesMut::with_capacity(30 + 18 * s.ranges.len());
    v.put_i16(1);
    v.put_i32(epochs.leader_epoch);
    v.put_i32(epochs.state_epoch);
    v.put_i64(s.start_offset);
    v.put_i64(s.end_offset);
    v.put_i32(s.ranges.len() as i32);
    for (first, last, dc) in &s.ranges {
        v.put_i64(*first);
        v.put_i64(*last);
        v.put_i16(*dc);
    }
    (k.freeze(), Some(v.freeze()))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().map_err(|_| RecordError::Truncated)?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().map_err(|_| RecordError::Truncated)?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| RecordError::Truncated)?))
    }
}

pub fn decode_key(key: &[u8]) -> Result<ShareKey, RecordError> {
    let mut r = Reader(key);
    let version = r.i16()?;
    if version != SHARE_STATE_KEY {
        return Err(RecordError::Version(version));
    }
    let len = r.i16()?;
    let len = usize::try_from(len).map_err(|_| RecordError::Invalid("negative group id length"))?;
    let group = std::str::from_utf8(r.take(len)?).map_err(|_| RecordError::Invalid("group id is not UTF-8"))?.to_string();
    let topic = Uuid::from_slice(r.take(16)?).map_err(|_| RecordError::Truncated)?;
    let partition = r.i32()?;
    Ok((group, topic, partition))
}

/// The key for a deleted state (a tombstone has no value).
pub fn encode_key(key: &ShareKey) -> bytes::Bytes {
    encode(key, &Snapshot::default(), StateEpochs::default()).0
}

pub fn decode_value(value: &[u8]) -> Result<(Snapshot, StateEpochs), RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    let epochs = match version {
        0 => StateEpochs::default(),
        1 => StateEpochs { leader_epoch: r.i32()?, state_epoch: r.i32()? },
        v => return Err(RecordError::Version(v)),
    };
    let start_offset = r.i64()?;
    let end_offset = r.i64()?;
    if start_offset < 0 || end_offset < start_offset {
        return Err(RecordError::Invalid("offsets out of order"));
    }
    let n = r.i32()?;
    let n = usize::try_from(n).map_err(|_| RecordError::Invalid("negative range count"))?;
    // Each range takes 18 bytes: a count the value cannot hold is corrupt (and never allocated).
    if n > r.0.len() / 18 {
        return Err(RecordError::Truncated);
    }
    let mut ranges = Vec::with_capacity(n);
    let (mut next, mut total) = (start_offset, 0i64);
    for _ in 0..n {
        let (first, last, dc) = (r.i64()?, r.i64()?, r.i16()?);
        if first < next || last < first || last >= end_offset || dc < 0 {
            return Err(RecordError::Invalid("ranges out of order"));
        }
        total += last - first + 1;
        if total > MAX_IN_FLIGHT {
            return Err(RecordError::Invalid("too many records in flight"));
        }
        next = last + 1;
        ranges.push((first, last, dc));
    }
    Ok((Snapshot { start_offset, end_offset, ranges }, epochs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_corruption() {
        let key = ("g".to_string(), Uuid::from_u128(7), 3);
        let s = Snapshot { start_offset: 5, end_offset: 20, ranges: vec![(5, 6, 2), (9, 19, 1)] };
        let epochs = StateEpochs { leader_epoch: 4, state_epoch: 2 };
        let (k, v) = encode(&key, &s, epochs);
        let v = v.expect("a value");
        assert!(is_share_state_key(&k));
        assert_eq!(decode_key(&k), Ok(key));
        assert_eq!(decode_value(&v), Ok((s.clone(), epochs)));
        // Version 0 (before the epochs) still loads, with no epochs.
        let mut v0 = vec![0u8, 0];
        v0.extend_from_slice(&v[10..]);
        assert_eq!(decode_value(&v0), Ok((s, StateEpochs::default())));
        for cut in 0..v.len() {
            assert!(decode_value(&v[..cut]).is_err());
        }
        // A range past the end offset.
        let bad = Snapshot { start_offset: 5, end_offset: 6, ranges: vec![(5, 9, 1)] };
        let (_, v) = encode(&("g".into(), Uuid::nil(), 0), &bad, epochs);
        assert!(decode_value(&v.expect("a value")).is_err());
    }
}
